import { test } from 'node:test';
import assert from 'node:assert/strict';
import protobuf from 'protobufjs/minimal.js';
import { decodeFrame, encodeFrame, isWattsplitError, EnergySource, EnergyUnit, type ITelemetryFrame } from './index.js';
import { readInt64, readUint64 } from './varint64-reader.js';

/** protobufjs's own readers (LongBits + toNumber), put back for the duration of `f`. */
function withProtobufjsReaders<T>(f: () => T): T {
  const proto = protobuf.Reader.prototype as unknown as { uint64: unknown; int64: unknown };
  const mine = { uint64: proto.uint64, int64: proto.int64 };
  (protobuf.Reader as unknown as { _configure(b: unknown): void })._configure(protobuf.BufferReader);
  try {
    assert.notEqual(proto.uint64, mine.uint64, 'protobufjs readers restored');
    return f();
  } finally {
    proto.uint64 = mine.uint64;
    proto.int64 = mine.int64;
  }
}

const TWO_32 = 2 ** 32;
/** Varint bytes of a 64-bit value given as its two unsigned 32-bit halves. */
function varint(lo: number, hi: number): Uint8Array {
  const w = protobuf.Writer.create();
  // Writer.uint64 takes a Long-like {low, high} and encodes exactly those 64 bits.
  w.uint64({ low: lo | 0, high: hi | 0, unsigned: true });
  return w.finish();
}

function halvesCases(): [number, number][] {
  const fixed: [number, number][] = [
    [0, 0], [1, 0], [127, 0], [128, 0], [2 ** 14 - 1, 0], [2 ** 14, 0], [2 ** 21, 0], [2 ** 28 - 1, 0], [2 ** 28, 0],
    [2 ** 31, 0], [TWO_32 - 1, 0], [0, 1], [0, 7], [0, 8], [12345, 2 ** 21 - 1], [TWO_32 - 1, 2 ** 21 - 1], [0, 2 ** 21],
    [0, 2 ** 31], [TWO_32 - 1, TWO_32 - 1], [1, 2 ** 31], [0, 2 ** 24], [5, 2 ** 17 + 3],
  ];
  // deterministic pseudo-random halves, every byte length from 1 to 10
  let s = 0x9e3779b9;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), s);
  for (let n = 0; n < 2000; n++) {
    const bits = n % 65;
    const lo = bits === 0 ? 0 : bits >= 32 ? next() : next() >>> (32 - bits);
    const hi = bits <= 32 ? 0 : bits === 64 ? next() : next() >>> (64 - bits);
    fixed.push([lo, hi]);
  }
  return fixed;
}

test('uint64 and int64 read every 1-10 byte varint as protobufjs LongBits.toNumber does', () => {
  const cases = halvesCases();
  const bytes = cases.map(([lo, hi]) => varint(lo, hi));
  const expected = withProtobufjsReaders(() => bytes.map((b) => [Number(protobuf.Reader.create(b).uint64()), Number(protobuf.Reader.create(b).int64())]));
  for (const [k, b] of bytes.entries()) {
    const [lo, hi] = cases[k]!;
    const r = protobuf.Reader.create(b);
    const u = readUint64.call(r);
    assert.equal(r.pos, b.length, `uint64 of ${lo},${hi} consumed its ${b.length} bytes`);
    assert.equal(u, expected[k]![0], `uint64 of halves ${lo},${hi}`);
    assert.equal(u, lo + hi * TWO_32);
    const s = readInt64.call(protobuf.Reader.create(b));
    assert.equal(s, expected[k]![1], `int64 of halves ${lo},${hi}`);
    if (hi < 2 ** 31) assert.equal(s, u);
    else assert.ok(s < 0);
  }
  // the installed readers are these (telemetry.ts), on the Buffer reader too
  assert.equal(protobuf.Reader.create(Buffer.from(varint(5, 1))).uint64(), 5 + TWO_32);
  assert.equal(protobuf.Reader.create(varint(TWO_32 - 1, TWO_32 - 1)).int64(), -1);
});

test('consecutive varints in one buffer are read in order, each advancing the position by its length', () => {
  const w = protobuf.Writer.create();
  const values = [0, 300, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER, 1];
  for (const v of values) w.uint64(v);
  w.int64(-42);
  const r = protobuf.Reader.create(w.finish());
  for (const v of values) assert.equal(r.uint64(), v);
  assert.equal(r.int64(), -42);
  assert.equal(r.pos, r.len);
});

test('a varint cut short is a RangeError, and a frame cut inside one is FRAME_DECODE_FAILED', () => {
  for (const [lo, hi] of [[300, 0], [2 ** 30, 0], [5, 2 ** 20]] as [number, number][]) {
    const b = varint(lo, hi);
    for (let cut = 0; cut < b.length; cut++) {
      const r = protobuf.Reader.create(b.subarray(0, cut));
      assert.throws(() => readUint64.call(r), (e: unknown) => e instanceof RangeError && /index out of range/.test(e.message), `cut at ${cut} of ${b.length}`);
    }
  }
  const frame: ITelemetryFrame = {
    hostId: 'hv-01',
    seq: 7,
    monoNs: 123_456_789_000,
    wallUnixNs: 1_763_900_000_000_000_000,
    counters: [{ id: 'intel-rapl:0', source: EnergySource.ENERGY_SOURCE_RAPL, value: 262_143_328_850, unit: EnergyUnit.ENERGY_UNIT_MICROJOULE, maxRange: 262_143_328_850 }],
  };
  const bytes = encodeFrame(frame);
  // the last field is wall_unix_ns or a counter's value: cutting one byte leaves a varint unfinished
  assert.throws(() => decodeFrame(bytes.subarray(0, bytes.length - 1), 'test'), (e: unknown) => isWattsplitError(e) && e.code === 'FRAME_DECODE_FAILED');
});

test('a whole frame decodes to the same message with either reader', () => {
  const frame: ITelemetryFrame = {
    hostId: 'hv-01',
    hardwareClass: 'xeon',
    seq: 2 ** 40 + 3,
    bootId: 'b',
    monoNs: 9_007_199_254_740_000,
    wallUnixNs: 1_763_900_000_123_456_789,
    counters: [{ id: 'intel-rapl:0', source: EnergySource.ENERGY_SOURCE_RAPL, value: 262_143_328_850, unit: EnergyUnit.ENERGY_UNIT_MICROJOULE, maxRange: 262_143_328_850 }],
    vms: [
      { uuid: 'u1', name: 'vm1', tenant: 't', vcpus: 4, memoryBytes: 8 * 2 ** 30, cpuTimeNs: 9_007_199_254_740_000, vcpuTimeNs: [1, 2 ** 33, 3, 0], blockReadBytes: 2 ** 45, netTxBytes: 12 },
      { uuid: 'u2', name: 'vm2', tenant: 't', vcpus: 1, memoryBytes: 0, cpuTimeNs: 0, vcpuTimeNs: [] },
    ],
  };
  const bytes = encodeFrame(frame);
  const before = withProtobufjsReaders(() => decodeFrame(bytes).toJSON());
  const after = decodeFrame(bytes);
  assert.deepEqual(after.toJSON(), before);
  assert.equal(after.seq, 2 ** 40 + 3);
  assert.deepEqual(after.vms[0]!.vcpuTimeNs, [1, 2 ** 33, 3, 0]);
});

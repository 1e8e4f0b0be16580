import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeBatch, encodeBatch, encodeFrame, type ITelemetryFrame } from '@wattsplit/wire';
import { encodeFrameBatchBytes } from './frame-batch-bytes.js';
import * as zlib from 'node:zlib';
import { crc32 } from './crc32.js';

function frame(seq: number, vms: number): ITelemetryFrame {
  return {
    hostId: 'hv-01', seq, bootId: 'b', monoNs: seq * 1e9, wallUnixNs: 1.7e18 + seq * 1e9, intervalMs: 1000,
    counters: [{ id: 'intel-rapl:0', source: 1, unit: 1, value: seq * 1000, maxRange: 262143328850 }],
    vms: Array.from({ length: vms }, (_, i) => ({ uuid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, name: `vm-${i}`, cpuTimeNs: seq * 1e9 + i, vcpuTimeNs: [1, 2, 3, 4] })),
  };
}

test('a FrameBatch assembled from encoded frames decodes to the same batch as protobufjs encodes, for every size of field', () => {
  // frames of 0 B to > 16 KiB (1-, 2- and 3-byte length varints), batch ids across varint widths, with and without token
  const frames = [frame(1, 0), frame(2, 1), frame(3, 40), frame(4, 400)];
  const encoded = frames.map((f) => encodeFrame(f));
  assert.ok(encoded.some((e) => e.length > 16384) && encoded.some((e) => e.length < 128));
  for (const batchId of [0, 1, 127, 128, 300, 2 ** 31, Number.MAX_SAFE_INTEGER]) {
    for (const token of ['', 'tök-1']) {
      const bytes = encodeFrameBatchBytes(batchId, encoded, token);
      const viaProtobufjs = encodeBatch({ batchId, frames, token });
      const [ours, theirs] = [decodeBatch(bytes), decodeBatch(viaProtobufjs)];
      const what = `batchId ${batchId}, token ${JSON.stringify(token)}`;
      assert.equal(Number(ours.batchId), batchId, what);
      assert.equal(ours.token, token, what);
      assert.deepEqual(ours.frames.map((f) => Buffer.from(encodeFrame(f))), encoded.map((e) => Buffer.from(e)), `${what}: every frame's bytes as they were`);
      assert.deepEqual(ours.frames.map((f) => Buffer.from(encodeFrame(f))), theirs.frames.map((f) => Buffer.from(encodeFrame(f))), what);
      // protobufjs also writes the defaults (batch_id 0, token ""): 2 bytes each
      assert.equal(bytes.length, viaProtobufjs.length - (batchId === 0 ? 2 : 0) - (token === '' ? 2 : 0), what);
    }
  }
  assert.equal(decodeBatch(encodeFrameBatchBytes(5, [])).frames.length, 0);
  assert.throws(() => encodeFrameBatchBytes(-1, []), /batchId=-1/);
});

test('crc32 equals zlib\'s, chained and on slices', () => {
  const buf = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 131) % 251));
  const zcrc = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926, 'the CRC-32 check value');
  assert.equal(crc32(Buffer.alloc(0)), 0);
  assert.equal(crc32(Buffer.from([0xff, 0xff, 0xff, 0xff])), 0xffffffff);
  assert.equal(crc32(buf, 16, 5000, crc32(buf, 8, 16)), crc32(buf, 8, 5000), 'chained = whole');
  // zlib.crc32's values, computed with it once (Node v20.20.2, 2026-12-06), so these run on every Node
  for (const [a, b, want] of [[0, 5000, 0x42aea678], [8, 16, 0x5c6d0bd6], [100, 4999, 0x2e2fba6f], [3, 3, 0]] as const) {
    assert.equal(crc32(buf, a, b), want, `[${a}, ${b}) as zlib.crc32 gave`);
  }
  assert.equal(crc32(buf, 100, 200, 0xdeadbeef), 0x491baf22, 'with a seed, as zlib.crc32 gave');
  // a spool record's check (frame-spool.ts): the header's bytes 8..16 (the time), then the payload, chained
  const header = Buffer.alloc(16);
  header.writeUInt32LE(1000, 0);
  header.writeDoubleLE(1765000000000, 8);
  const payload = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 37) % 256));
  assert.equal(crc32(payload, 0, payload.length, crc32(header, 8, 16)), 0x4909f4c8, 'header + payload chain, as zlib.crc32 gave');
  if (!zcrc) return; // Node < 20.15: no zlib.crc32 to compare with live; the values above stand in
  assert.equal(zcrc(payload, zcrc(header.subarray(8, 16))) >>> 0, 0x4909f4c8, 'the chain, live');
  for (const [a, b] of [[0, 5000], [8, 16], [100, 4999], [3, 3]] as const) assert.equal(crc32(buf, a, b), zcrc(buf.subarray(a, b)) >>> 0, `[${a}, ${b})`);
  assert.equal(crc32(buf, 100, 200, 0xdeadbeef), zcrc(buf.subarray(100, 200), 0xdeadbeef) >>> 0, 'with a seed');
});

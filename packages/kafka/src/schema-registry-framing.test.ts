import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeFrame, decodeFrame, WattsplitError, InProcessBus, memoryLogger } from '@wattsplit/wire';
import { encodeConfluentFrame, decodeConfluentFrame, ConfluentFramedBus } from './schema-registry-framing.js';

const frame = { hostId: 'hv-1', seq: 7, monoNs: 1_000, wallUnixNs: 1_700_000_000_000_000_000, intervalMs: 1000 };

test('a telemetry frame round-trips through the Confluent wire format, first message = one 0 byte', () => {
  const payload = encodeFrame(frame);
  const framed = encodeConfluentFrame({ schemaId: 42, messageIndexes: [0], payload });
  assert.deepEqual([...framed.subarray(0, 6)], [0, 0, 0, 0, 42, 0]);
  const back = decodeConfluentFrame(framed, 'wattsplit.telemetry.v1/0@5');
  assert.equal(back.schemaId, 42);
  assert.deepEqual(back.messageIndexes, [0]);
  assert.equal(decodeFrame(back.payload).hostId, 'hv-1');
});

test('nested message indexes are zig-zag varints after a count', () => {
  const payload = new Uint8Array([1, 2, 3]);
  const framed = encodeConfluentFrame({ schemaId: 0x01020304, messageIndexes: [1, 70], payload });
  // count 2 → 4, 1 → 2, 70 → 140 = 0x8c 0x01
  assert.deepEqual([...framed], [0, 1, 2, 3, 4, 4, 2, 0x8c, 0x01, 1, 2, 3]);
  assert.deepEqual(decodeConfluentFrame(framed), { schemaId: 0x01020304, messageIndexes: [1, 70], payload });
});

test('malformed frames fail with FRAME_DECODE_FAILED naming where and what', () => {
  const cases: [Uint8Array, RegExp][] = [
    [new Uint8Array([0, 0, 0]), /shorter than the 6-byte minimum/],
    [new Uint8Array([1, 0, 0, 0, 1, 0, 9]), /magic byte is 1, expected 0/],
    [new Uint8Array([0, 0x80, 0, 0, 1, 0]), /negative as an int32/],
    [new Uint8Array([0, 0, 0, 0, 1, 0x80]), /message index count runs past the end/],
    [new Uint8Array([0, 0, 0, 0, 1, 3, 2]), /message index count -2 is out of range/],
    [new Uint8Array([0, 0, 0, 0, 1, 4, 2]), /message index 1 runs past the end/],
    [new Uint8Array([0, 0, 0, 0, 1, 2, 1, 9]), /message index 0 is negative \(-1\)/],
  ];
  for (const [bytes, re] of cases) {
    assert.throws(() => decodeConfluentFrame(bytes, 'topic t/2@17'), (e: unknown) => e instanceof WattsplitError && e.code === 'FRAME_DECODE_FAILED' && re.test(e.message) && e.message.startsWith('topic t/2@17:'), re.source);
  }
});

test('bad schema ids and indexes are refused when encoding, naming the field', () => {
  assert.throws(() => encodeConfluentFrame({ schemaId: -1, messageIndexes: [0], payload: new Uint8Array() }), /schemaId=-1 must be an integer/);
  assert.throws(() => encodeConfluentFrame({ schemaId: 1, messageIndexes: [0, 1.5], payload: new Uint8Array() }), /messageIndexes\[1\]=1.5/);
});

test('ConfluentFramedBus frames on send and unframes on delivery', async () => {
  const inner = new InProcessBus({ partitions: 2 });
  const bus = new ConfluentFramedBus(inner, { schemaIds: { 'wattsplit.telemetry.v1': 7 } });
  const raw: Uint8Array[] = [];
  const got: string[] = [];
  await inner.subscribe({ topic: 'wattsplit.telemetry.v1', groupId: 'raw', handler: async (ms) => void raw.push(...ms.map((m) => m.value)) });
  await bus.subscribe({ topic: 'wattsplit.telemetry.v1', groupId: 'framed', handler: async (ms) => void got.push(...ms.map((m) => decodeFrame(m.value).hostId)) });
  assert.equal((await bus.producer().send('wattsplit.telemetry.v1', [{ key: 'hv-1', value: encodeFrame(frame) }])).kind, 'ok');
  assert.equal((await bus.producer().send('other.topic', [{ key: 'hv-1', value: new Uint8Array([9]) }])).kind, 'ok');
  await inner.idle();
  assert.deepEqual(got, ['hv-1']);
  assert.deepEqual([...raw[0]!.subarray(0, 6)], [0, 0, 0, 0, 7, 0], 'on the bus: magic 0, schema id 7, index [0]');
  await inner.close();
});

test('ConfluentFramedBus: an unframed value on a framed topic is not handed over; the handler call rejects naming topic/partition@offset', async () => {
  const log = memoryLogger();
  const inner = new InProcessBus({ partitions: 1, logger: log });
  const bus = new ConfluentFramedBus(inner, { schemaIds: { t: 7 } });
  const got: unknown[] = [];
  const sub = await bus.subscribe({ topic: 't', groupId: 'g', handler: async (ms) => void got.push(...ms) });
  await inner.producer().send('t', [{ key: 'hv-1', value: encodeFrame(frame) }]);
  const deadline = Date.now() + 5_000;
  while (!log.entries.some((e) => e.fields.code === 'FRAME_DECODE_FAILED') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  await sub.stop();
  await inner.close();
  assert.equal(got.length, 0);
  const e = log.entries.find((x) => x.fields.code === 'FRAME_DECODE_FAILED');
  assert.ok(e, 'the bus logged the decode failure');
  assert.match(e.msg, /t\/0@0: not a Confluent Schema Registry frame: magic byte is 10, expected 0/);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeFrame, decodeFrame, WattsplitError } from '@wattsplit/wire';
import { encodeConfluentFrame, decodeConfluentFrame } from './schema-registry-framing.js';

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

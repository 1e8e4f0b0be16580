import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeBatch, encodeFrame } from '@wattsplit/wire';
import { deserializeBatch, frameByteRanges } from './safe-ingest-service.js';
import { frame } from './test-helpers.js';

test('frameByteRanges finds every frame of an encoded batch, between other fields', () => {
  const frames = [frame('h', 1), frame('h', 2), frame('h', 3)];
  const buf = encodeBatch({ batchId: 300, token: 'tok', frames });
  const ranges = frameByteRanges(buf)!;
  assert.equal(ranges.length, 3);
  ranges.forEach(([a, b], i) => assert.deepEqual(Buffer.from(buf.subarray(a, b)), Buffer.from(encodeFrame(frames[i]!))));
  assert.deepEqual(frameByteRanges(new Uint8Array()), []);
  assert.equal(frameByteRanges(Uint8Array.from([0x12, 0x05, 0x01])), undefined, 'length past the end');
  assert.equal(frameByteRanges(Uint8Array.from([0x0b])), undefined, 'wire type 3 (groups) is not used by this contract');
});

test('deserializeBatch never throws: bad bytes become an undecodable item naming the size', () => {
  const bad = deserializeBatch(Buffer.from([0x12, 0x7f, 0x00]));
  assert.equal(bad.kind, 'undecodable');
  assert.ok(bad.kind === 'undecodable' && bad.error.code === 'FRAME_DECODE_FAILED' && /3 bytes/.test(bad.error.message));
  const good = deserializeBatch(Buffer.from(encodeBatch({ batchId: 1, frames: [frame('h', 1)] })));
  assert.ok(good.kind === 'batch' && good.frameBytes?.length === 1 && good.bytes > 0);
});

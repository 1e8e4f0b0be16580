import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Checkpoint } from '@wattsplit/store';
import type { BatchEntry } from './batch-entry.js';
import { PendingBatches } from './pending-batches.js';

const cp = (hostId: string, seq: number): Checkpoint => ({ hostId, seq, bootId: 'b', frame: new Uint8Array([seq]) });
const batch = (n: number) => Array.from({ length: n }, () => ({}) as BatchEntry);

test('pending batches: a partition keeps the batch it was given, verbatim, until it settles', () => {
  const p = new PendingBatches();
  assert.equal(p.pending(0), undefined);
  const b = batch(2);
  p.keep(0, b);
  assert.equal(p.pending(0), b, 'the same entries, not a copy: their write state travels with them');
  assert.equal(p.pending(1), undefined, 'per partition');
  const smaller = b.slice(0, 1);
  p.keep(0, smaller);
  assert.equal(p.pending(0), smaller, 'a later failure replaces the batch');
  p.settle(0);
  assert.equal(p.pending(0), undefined);
});

test('pending batches: one checkpoint candidate per host, the newest offered, until saved', () => {
  const p = new PendingBatches();
  assert.deepEqual(p.checkpoints(0), []);
  p.offerCheckpoint(0, cp('a', 1));
  p.offerCheckpoint(0, cp('b', 1));
  p.offerCheckpoint(0, cp('a', 2));
  p.offerCheckpoint(1, cp('c', 9));
  assert.deepEqual(p.checkpoints(0).map((c) => `${c.hostId}@${c.seq}`), ['a@2', 'b@1']);
  p.keep(0, batch(1));
  p.settle(0);
  assert.equal(p.checkpoints(0).length, 2, 'settling the batch leaves the candidates: they go only once saved');
  p.checkpointsSaved(0);
  assert.deepEqual(p.checkpoints(0), []);
  assert.deepEqual(p.checkpoints(1).map((c) => c.hostId), ['c'], 'per partition');
});

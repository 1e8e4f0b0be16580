import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IntervalWrite } from '@wattsplit/store';
import type { BusMessage, TelemetryFrame } from '@wattsplit/wire';
import { BatchEntry } from './batch-entry.js';

const entry = (hostId = 'h') => new BatchEntry({ interval: { hostId, seq: 1 } } as IntervalWrite, {} as TelemetryFrame, {} as BusMessage);

test('batch entry: a new entry is to be written, with nothing in doubt', () => {
  const e = entry('hv-a');
  assert.equal(e.hostId, 'hv-a');
  assert.equal(e.stored, false);
  assert.equal(e.needsLandedCheck, false);
  assert.equal(e.failedGroup, undefined);
});

test('batch entry: an attempted write is checked once before the next write', () => {
  const e = entry();
  e.markAttempted();
  assert.equal(e.needsLandedCheck, true);
  e.landedCheckDone();
  assert.equal(e.needsLandedCheck, false);
  assert.equal(e.stored, false, 'checked and not landed: written again');
});

test('batch entry: stored is final and clears what was in doubt', () => {
  const e = entry();
  const group = [e, entry('other')];
  e.joinFailedGroup(group);
  e.markAttempted();
  assert.equal(e.failedGroup, group);
  e.markStored();
  assert.equal(e.stored, true);
  assert.equal(e.needsLandedCheck, false);
  assert.equal(e.failedGroup, undefined);
  e.markAttempted();
  e.joinFailedGroup(group);
  assert.equal(e.needsLandedCheck, false, 'a stored entry is never in doubt again');
  assert.equal(e.failedGroup, undefined, 'nor written again with a group');
});

test('batch entry: leaving a failed group (refused for good) keeps what else is known', () => {
  const e = entry();
  e.joinFailedGroup([e]);
  e.markAttempted();
  e.leaveFailedGroup();
  assert.equal(e.failedGroup, undefined);
  assert.equal(e.needsLandedCheck, true);
});

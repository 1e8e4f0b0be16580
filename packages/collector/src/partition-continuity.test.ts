import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HostProgress } from './host-progress.js';
import { PartitionContinuity } from './partition-continuity.js';

test('a batch that starts past the last handled offset releases the hosts seen on that partition, once', () => {
  const c = new PartitionContinuity();
  assert.deepEqual(c.begin(0, '0'), []); // first batch: nothing to release
  c.saw(0, 'hv-a');
  c.saw(0, 'hv-b');
  c.saw(1, 'hv-c');
  c.handled(0, '4');
  c.handled(1, '9');
  assert.deepEqual(c.begin(0, '5'), []); // the continuation
  assert.deepEqual(c.begin(0, '12').sort(), ['hv-a', 'hv-b']); // offsets 5..11 were handled elsewhere
  assert.deepEqual(c.begin(0, '20'), []); // released once: the partition starts afresh
  assert.deepEqual(c.begin(1, '10'), []); // other partitions are not affected
  // offsets beyond 2^53 compare exactly
  c.saw(2, 'hv-d');
  c.handled(2, '9007199254740993');
  assert.deepEqual(c.begin(2, '9007199254740994'), []);
  assert.deepEqual(c.begin(2, '9007199254740995'), ['hv-d']);
});

test('a rewind to the committed offset (a restart, a rebalance giving the partition back) releases the hosts too', () => {
  const c = new PartitionContinuity();
  c.begin(0, '0');
  c.saw(0, 'hv-a');
  c.saw(0, 'hv-b');
  c.handled(0, '9');
  // committed at 4 (the collector commits less often than it stores): another member may have stored 5..9 and beyond
  assert.deepEqual(c.begin(0, '5').sort(), ['hv-a', 'hv-b']);
  c.saw(0, 'hv-a');
  c.handled(0, '7');
  assert.deepEqual(c.begin(0, '8'), []); // then it continues
});

test('a failed handler call (no handled()) is neither a gap nor a rewind', () => {
  const c = new PartitionContinuity();
  c.begin(0, '0');
  c.saw(0, 'hv-a');
  c.handled(0, '4');
  assert.deepEqual(c.begin(0, '5'), []);
  c.saw(0, 'hv-a'); // this call fails: handled() is not called, the messages come again from 5
  assert.deepEqual(c.begin(0, '5'), []);
});

test('a group join that assigns a partition with hosts makes it suspect until verified; a release clears it', () => {
  const c = new PartitionContinuity();
  c.assigned([0, 1]); // the first join: nothing kept, nothing to verify
  assert.deepEqual(c.toVerify(0), []);
  c.begin(0, '0');
  c.saw(0, 'hv-a');
  c.saw(0, 'hv-b');
  c.handled(0, '4');
  c.assigned([0]);
  assert.deepEqual(c.begin(0, '5'), []); // the offsets continue...
  assert.deepEqual(c.toVerify(0).sort(), ['hv-a', 'hv-b']); // ...but another member may have stored 5.. meanwhile
  assert.deepEqual(c.toVerify(0).sort(), ['hv-a', 'hv-b'], 'suspect until verified (a failed lookup is repeated)');
  c.verified(0);
  assert.deepEqual(c.toVerify(0), []);
  c.assigned([0]);
  assert.deepEqual(c.begin(0, '9').sort(), ['hv-a', 'hv-b']); // a gap releases the hosts...
  assert.deepEqual(c.toVerify(0), []); // ...and there is nothing left to verify
});

test('HostProgress.release: the host resumes from the store as on a first take-over', () => {
  const h = new HostProgress();
  h.commit('hv-a', { hostId: 'hv-a', seq: 7 });
  h.resumed('hv-a', { seq: 7, bootId: 'b' });
  h.markDirty('hv-a');
  assert.equal(h.needsResume('hv-a'), false);
  h.release('hv-a');
  assert.equal(h.needsResume('hv-a'), true);
  assert.equal(h.committed('hv-a'), undefined);
  assert.equal(h.storedFloor('hv-a'), undefined);
  assert.equal(h.takeDirty('hv-a'), false);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HostProgress } from './host-progress.js';

const frame = (seq: number, bootId = 'b1') => ({ hostId: 'h', seq, bootId });

test('host progress: a host needs its checkpoint looked up until it resumed or committed, and never again', () => {
  const p = new HostProgress();
  assert.equal(p.needsResume('h'), true);
  p.resumed('h', undefined);
  assert.equal(p.needsResume('h'), false);
  p.uncommit('h');
  assert.equal(p.needsResume('h'), false, 'forgetting the committed frame does not ask for a second lookup');
  const q = new HostProgress();
  q.commit('h', frame(1));
  assert.equal(q.needsResume('h'), false, 'a host that committed a frame has nothing to resume');
  assert.equal(q.needsResume('other'), true, 'per host');
});

test('host progress: the committed frame is the last one committed, until forgotten', () => {
  const p = new HostProgress();
  assert.equal(p.committed('h'), undefined);
  p.commit('h', frame(3));
  p.commit('h', frame(4));
  assert.equal(p.committed('h')?.seq, 4);
  p.uncommit('h');
  assert.equal(p.committed('h'), undefined);
});

test('host progress: the stored floor is set only when the host resumes, and once passed never comes back', () => {
  const p = new HostProgress();
  p.resumed('a', undefined);
  assert.equal(p.storedFloor('a'), undefined, 'nothing stored: no floor');
  p.resumed('h', { seq: 7, bootId: 'b1' });
  assert.deepEqual(p.storedFloor('h'), { seq: 7, bootId: 'b1' });
  p.commit('h', frame(8));
  assert.deepEqual(p.storedFloor('h'), { seq: 7, bootId: 'b1' }, 'committing does not move the floor');
  p.passedStoredFloor('h');
  assert.equal(p.storedFloor('h'), undefined);
  assert.equal(p.needsResume('h'), false, 'so no later lookup can set it again');
});

test('host progress: a dirty host is re-seeded once, and only that host', () => {
  const p = new HostProgress();
  assert.equal(p.takeDirty('h'), false);
  p.markDirty('h');
  p.markDirty('h');
  assert.equal(p.takeDirty('other'), false);
  assert.equal(p.takeDirty('h'), true);
  assert.equal(p.takeDirty('h'), false, 'taken once');
});

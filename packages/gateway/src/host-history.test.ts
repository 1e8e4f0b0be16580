import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HostHistory, ProducedSeqs, SeqWindow, countersWentBackwards, lastFrameOf } from './host-history.js';
import { frame } from './test-helpers.js';

test('HostHistory keeps at most maxHosts hosts, most recently used first', () => {
  const h = new HostHistory(2, 10);
  h.get('a').produced.add('b1', 1);
  h.get('b');
  h.get('a');
  h.get('c');
  assert.equal(h.size, 2);
  assert.ok(h.get('a').produced.has('b1', 1), 'a was used recently and kept');
});

test('countersWentBackwards ignores older seqs, other boots, errored counters and restarted VMs', () => {
  const prev = lastFrameOf(frame('h', 5));
  assert.deepEqual(countersWentBackwards(prev, frame('h', 4)), [], 'older seq: no comparison');
  assert.deepEqual(countersWentBackwards(prev, frame('h', 6, { bootId: 'boot-2', counters: [{ ...frame('h', 1).counters![1]!, value: 0 }] })), []);
  const errored = frame('h', 6, { counters: [{ ...frame('h', 1).counters![1]!, value: 0, error: 'EIO' }] });
  assert.deepEqual(countersWentBackwards(prev, errored), []);
  const restarted = frame('h', 6, { vms: [{ uuid: 'vm-a', cpuTimeNs: 5, startedMonoNs: 99 }] });
  assert.deepEqual(countersWentBackwards(prev, restarted), []);
  const back = frame('h', 6, { vms: [{ uuid: 'vm-a', cpuTimeNs: 5, startedMonoNs: 1 }] });
  assert.deepEqual(countersWentBackwards(prev, back), ['vm:vm-a:cpu_time_ns 2500000000->5']);
});

test('SeqWindow remembers produced seqs in (maxSeq - size, maxSeq], in any order, and forgets older ones', () => {
  const w = new SeqWindow(64);
  for (const q of [5, 3, 70, 69]) w.add(q);
  assert.deepEqual([3, 5, 6, 69, 70, 71].map((q) => w.has(q)), [false, false, false, true, true, false], '3 and 5 fell out of (6, 70]');
  w.add(200); // jumps more than the window: everything before is cleared
  assert.deepEqual([69, 70, 137, 200].map((q) => w.has(q)), [false, false, false, true]);
  w.add(150);
  assert.equal(w.has(150), true);
  w.add(100); // older than the window: not remembered
  assert.equal(w.has(100), false);
  // A seq that maps onto the same ring bit as a forgotten one is not mistaken for it.
  w.add(264);
  assert.deepEqual([200, 264].map((q) => w.has(q)), [false, true]);
});

test('ProducedSeqs keeps seqs per boot: a restarted seq under a new boot is not a duplicate', () => {
  const p = new ProducedSeqs(16);
  p.add('boot-1', 1);
  assert.equal(p.has('boot-1', 1), true);
  assert.equal(p.has('boot-2', 1), false);
  for (const b of ['boot-2', 'boot-3', 'boot-4', 'boot-5']) p.add(b, 1);
  assert.equal(p.has('boot-1', 1), false, 'only the 4 most recent boots are kept');
  assert.equal(p.has('boot-5', 1), true);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BoundedLru, HostHistory, countersWentBackwards, lastFrameOf } from './host-history.js';
import { frame } from './test-helpers.js';

test('BoundedLru forgets the least recently added beyond its capacity', () => {
  const l = new BoundedLru<number>(3);
  for (const k of [1, 2, 3, 1, 4]) l.add(k);
  assert.equal(l.size, 3);
  assert.deepEqual([1, 2, 3, 4].map((k) => l.has(k)), [true, false, true, true]);
});

test('HostHistory keeps at most maxHosts hosts, most recently used first', () => {
  const h = new HostHistory(2, 10);
  h.get('a').produced.add(1);
  h.get('b');
  h.get('a');
  h.get('c');
  assert.equal(h.size, 2);
  assert.ok(h.get('a').produced.has(1), 'a was used recently and kept');
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

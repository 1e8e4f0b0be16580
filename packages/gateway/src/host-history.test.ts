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

/** The Map-based comparison the gateway used before LastFrame held arrays: the oracle for the test below. */
function backwardsByMaps(prevFrame: ReturnType<typeof frame>, f: ReturnType<typeof frame>): string[] {
  const counters = new Map<string, { value: number; maxRange: number }>();
  for (const c of prevFrame.counters ?? []) if (c.id && !c.error) counters.set(c.id, { value: Number(c.value ?? 0), maxRange: Number(c.maxRange ?? 0) });
  const vmCpu = new Map<string, { cpuTimeNs: number; startedMonoNs: number }>();
  for (const vm of prevFrame.vms ?? []) if (vm.uuid) vmCpu.set(vm.uuid, { cpuTimeNs: Number(vm.cpuTimeNs ?? 0), startedMonoNs: Number(vm.startedMonoNs ?? 0) });
  if ((prevFrame.bootId ?? '') !== (f.bootId ?? '') || Number(f.seq ?? 0) <= Number(prevFrame.seq ?? 0)) return [];
  const out: string[] = [];
  for (const c of f.counters ?? []) {
    if (!c.id || c.error) continue;
    const p = counters.get(c.id);
    const cur = Number(c.value ?? 0);
    if (!p || cur >= p.value) continue;
    const range = Number(c.maxRange ?? 0) || p.maxRange;
    if (range > 0 && range - p.value + cur < range / 2) continue;
    out.push(`${c.id} ${p.value}->${cur}`);
  }
  for (const vm of f.vms ?? []) {
    if (!vm.uuid) continue;
    const p = vmCpu.get(vm.uuid);
    const cur = Number(vm.cpuTimeNs ?? 0);
    if (!p || p.startedMonoNs !== Number(vm.startedMonoNs ?? 0) || cur >= p.cpuTimeNs) continue;
    out.push(`vm:${vm.uuid}:cpu_time_ns ${p.cpuTimeNs}->${cur}`);
  }
  return out;
}

test('countersWentBackwards by position and by lookup gives what the per-frame maps gave: 2 000 random frame pairs (reordered, errored, added and dropped counters and VMs, wraps, restarts)', () => {
  let seed = 12345;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const pick = <T>(a: T[]): T => a[Math.floor(rnd() * a.length)]!;
  const shuffle = <T>(a: T[]): T[] => {
    const b = [...a];
    for (let i = b.length - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [b[i], b[j]] = [b[j]!, b[i]!];
    }
    return b;
  };
  const base = frame('h', 1);
  const counterIds = ['intel-rapl:0', 'intel-rapl:0:0', 'intel-rapl:0:2', 'intel-rapl:1', 'bmc', 'nvml:0'];
  const uuids = ['vm-a', 'vm-b', 'vm-c', 'vm-d', 'vm-e'];
  const make = (seq: number, ids: string[], vmIds: string[]): ReturnType<typeof frame> =>
    frame('h', seq, {
      bootId: rnd() < 0.03 ? 'boot-2' : 'boot-1',
      counters: ids.map((id) => ({ ...base.counters![0]!, id, value: Math.floor(rnd() * 1000), maxRange: pick([0, 0, 1000, 5000]), ...(rnd() < 0.1 ? { error: 'EIO' } : {}) })),
      vms: vmIds.map((uuid) => ({ ...base.vms![0]!, uuid, cpuTimeNs: Math.floor(rnd() * 1000), startedMonoNs: pick([1, 1, 1, 2]) })),
    });
  let reordered = 0;
  let flagged = 0;
  for (let n = 0; n < 2000; n++) {
    const ids = shuffle(counterIds).slice(0, 2 + Math.floor(rnd() * 5));
    const vmIds = shuffle(uuids).slice(0, Math.floor(rnd() * 6));
    const prevFrame = make(10, ids, vmIds);
    // the next frame: mostly the same order (an agent's), sometimes reordered, a counter or VM added or dropped
    const r = rnd();
    const nextIds = r < 0.6 ? ids : r < 0.8 ? shuffle(ids) : shuffle(counterIds).slice(0, 1 + Math.floor(rnd() * 6));
    const nextVms = r < 0.6 ? vmIds : r < 0.8 ? shuffle(vmIds) : shuffle(uuids).slice(0, Math.floor(rnd() * 6));
    if (r >= 0.6) reordered++;
    const next = make(pick([9, 10, 11, 11, 12]), nextIds, nextVms);
    const last = lastFrameOf(prevFrame);
    const got = countersWentBackwards(last, next);
    assert.deepEqual(got, backwardsByMaps(prevFrame, next), `pair ${n}`);
    // the same LastFrame compared again (its lookup map, if one was built, now cached) gives the same
    assert.deepEqual(countersWentBackwards(last, next), got, `pair ${n}, second comparison`);
    if (got.length) flagged++;
  }
  assert.ok(reordered > 500 && flagged > 500, `the pairs exercised both paths: ${reordered} reordered, ${flagged} with counters that went backwards`);
});

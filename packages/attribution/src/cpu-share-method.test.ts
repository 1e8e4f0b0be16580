import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWattsplitError } from '@wattsplit/wire';
import { CpuShareMethod } from './cpu-share-method.js';
import { checkConservation } from './conservation.js';
import { prng } from './test-fixtures.js';
import { REFERENCE_RESERVED_WEIGHTS, referenceReconcile, referenceStaticSplitWeights } from './test-references.js';
import type { AttributionContext, AttributionResult, AttributionShare, EntityKind, HostInterval, IdleSplitPolicy, SourceName, VmGpuInterval, VmInterval } from './types.js';

const close = (a: number, b: number, eps = 1e-9) => assert.ok(Math.abs(a - b) <= eps * Math.max(1, Math.abs(b)), `${a} ≉ ${b}`);

function vmi(uuid: string, cpuSeconds: number, over: Partial<VmInterval> = {}): VmInterval {
  return {
    uuid, name: `vm-${uuid}`, tenant: `t-${uuid}`, vcpus: 4, memoryBytes: 8 * 2 ** 30, cpuSeconds, vcpuSeconds: [],
    memoryUsedBytes: 0, blockReadBytes: 0, blockWriteBytes: 0, netRxBytes: 0, netTxBytes: 0, gpus: [], presence: 1, state: 'running', ...over,
  };
}

function interval(over: Partial<HostInterval> = {}): HostInterval {
  return {
    hostId: 'hv-01', hardwareClass: 'x', seq: 2, prevSeq: 1, t0UnixNs: 0, t1UnixNs: 1e9, durationS: 1,
    measured: { rapl: 200, gpu: 0, bmc_rest: 100 }, raplZones: {}, gpus: [],
    hostCpu: { busySeconds: 4, idleSeconds: 60, onlineCpus: 64, avgFreqMhz: 0 }, vms: [], anomalies: [], ...over,
  };
}

const ctx = (policy: IdleSplitPolicy = 'reserved', rapl = 100, gpu = 0, bmc = 50): AttributionContext => ({ policy, staticPower: { watts: { rapl, gpu, bmc_rest: bmc }, origin: 'configured' } });

const share = (r: AttributionResult, kind: string, uuid: string, source: string) =>
  r.shares.find((s) => s.kind === kind && s.vmUuid === uuid && s.source === source);

test('static by reserved capacity, dynamic by CPU seconds, CPU outside VMs to host_overhead', () => {
  const iv = interval({ vms: [vmi('a', 3, { vcpus: 8, memoryBytes: 16 * 2 ** 30 }), vmi('b', 0, { vcpus: 8, memoryBytes: 16 * 2 ** 30 })] });
  const r = new CpuShareMethod().attribute(iv, ctx());
  assert.equal(r.method, 'cpu_share');
  assert.deepEqual(checkConservation(r), []);
  // rapl: static 100 J → 50/50; dynamic 100 J over 4 CPU-s: a 3/4, overhead 1/4
  close(share(r, 'vm', 'a', 'rapl')!.staticJoules, 50);
  close(share(r, 'vm', 'a', 'rapl')!.dynamicJoules, 75);
  close(share(r, 'vm', 'b', 'rapl')!.staticJoules, 50);
  assert.equal(share(r, 'vm', 'b', 'rapl')!.dynamicJoules, 0);
  close(share(r, 'host_overhead', '', 'rapl')!.dynamicJoules, 25);
  close(share(r, 'vm', 'a', 'bmc_rest')!.dynamicJoules, 37.5);
});

test('equal and unallocated policies', () => {
  const iv = interval({ vms: [vmi('a', 2, { vcpus: 2 }), vmi('b', 2, { vcpus: 14, presence: 0.5 })] });
  const eq = new CpuShareMethod().attribute(iv, ctx('equal'));
  close(share(eq, 'vm', 'a', 'rapl')!.staticJoules, 100 * (2 / 3));
  close(share(eq, 'vm', 'b', 'rapl')!.staticJoules, 100 * (1 / 3));
  const un = new CpuShareMethod().attribute(iv, ctx('unallocated'));
  close(share(un, 'unallocated', '', 'rapl')!.staticJoules, 100);
  assert.equal(share(un, 'vm', 'a', 'rapl')!.staticJoules, 0);
  assert.deepEqual(checkConservation(eq), []);
  assert.deepEqual(checkConservation(un), []);
});

test('static power above the measurement is capped at the measurement', () => {
  const r = new CpuShareMethod().attribute(interval({ measured: { rapl: 30, gpu: 0, bmc_rest: 0 }, vms: [vmi('a', 1)] }), ctx('reserved', 100));
  close(share(r, 'vm', 'a', 'rapl')!.staticJoules, 30);
  assert.equal(share(r, 'vm', 'a', 'rapl')!.dynamicJoules, 0);
  assert.deepEqual(checkConservation(r), []);
});

test('no VMs: static is unallocated, dynamic is host overhead (or unallocated with no CPU time)', () => {
  const r = new CpuShareMethod().attribute(interval(), ctx());
  close(share(r, 'unallocated', '', 'rapl')!.staticJoules, 100);
  close(share(r, 'host_overhead', '', 'rapl')!.dynamicJoules, 100);
  const idle = new CpuShareMethod().attribute(interval({ hostCpu: { busySeconds: 0, idleSeconds: 64, onlineCpus: 64, avgFreqMhz: 0 } }), ctx());
  close(share(idle, 'unallocated', '', 'rapl')!.dynamicJoules + share(idle, 'unallocated', '', 'rapl')!.staticJoules, 200);
  assert.deepEqual(checkConservation(idle), []);
});

const gpuDev = (device: string, joules: number) => ({ device, joules, contexts: 1, meanPowerW: joules, gpuUtilPct: 50, memUtilPct: 10, smClockMhz: 1980 });
const vg = (device: string, over: Partial<VmGpuInterval> = {}): VmGpuInterval => ({ device, smUtilPct: 0, memUtilPct: 0, utilSamples: 6, usedMemoryBytes: 0, holdsContext: true, passthrough: false, ...over });

test('GPU: passthrough owner takes its whole GPU, time-sliced GPU splits by SM time, unused GPU is unallocated', () => {
  const iv = interval({
    measured: { rapl: 200, gpu: 1500, bmc_rest: 100 },
    gpus: [gpuDev('A', 700), gpuDev('B', 500), gpuDev('C', 300)],
    vms: [
      vmi('p', 1, { gpus: [vg('A', { passthrough: true, smUtilPct: 90 })] }),
      vmi('s1', 1, { gpus: [vg('B', { smUtilPct: 60 })] }),
      vmi('s2', 1, { gpus: [vg('B', { smUtilPct: 20 })] }),
      vmi('x', 1),
    ],
  });
  const r = new CpuShareMethod().attribute(iv, ctx('reserved', 100, 240));
  assert.deepEqual(checkConservation(r), []);
  const g = (u: string) => share(r, 'vm', u, 'gpu');
  close(g('p')!.staticJoules + g('p')!.dynamicJoules, 700);
  // B: static 80 J split 50/50 among holders (same reservation), dynamic 420 J split 60:20
  close(g('s1')!.staticJoules, 40);
  close(g('s1')!.dynamicJoules, 420 * 0.75);
  close(g('s2')!.dynamicJoules, 420 * 0.25);
  assert.equal(g('x'), undefined);
  close(share(r, 'unallocated', '', 'gpu')!.staticJoules + share(r, 'unallocated', '', 'gpu')!.dynamicJoules, 300);
});

test('GPU holders without utilisation split the context-raised power equally', () => {
  const iv = interval({ measured: { rapl: 0, gpu: 120, bmc_rest: 0 }, gpus: [gpuDev('B', 120)], vms: [vmi('s1', 0, { gpus: [vg('B')] }), vmi('s2', 0, { gpus: [vg('B')] })] });
  const r = new CpuShareMethod().attribute(iv, ctx('unallocated', 0, 73));
  close(share(r, 'vm', 's1', 'gpu')!.dynamicJoules, 23.5);
  close(share(r, 'unallocated', '', 'gpu')!.staticJoules, 73);
  assert.deepEqual(checkConservation(r), []);
});

test('property: conservation holds exactly on randomized intervals (seeded)', () => {
  const rnd = prng(42);
  const policies: IdleSplitPolicy[] = ['reserved', 'equal', 'unallocated'];
  const m = new CpuShareMethod();
  for (let k = 0; k < 500; k++) {
    const nv = Math.floor(rnd() * 8);
    const ng = Math.floor(rnd() * 3);
    const gpus = Array.from({ length: ng }, (_, i) => gpuDev(`g${i}`, rnd() < 0.1 ? 0 : rnd() * 700));
    const vms = Array.from({ length: nv }, (_, i) =>
      vmi(`v${i}`, rnd() < 0.2 ? 0 : rnd() * 8, {
        vcpus: 1 + Math.floor(rnd() * 16),
        memoryBytes: rnd() < 0.1 ? 0 : Math.floor(rnd() * 64) * 2 ** 30,
        presence: rnd() < 0.2 ? rnd() : 1,
        gpus: ng > 0 && rnd() < 0.4 ? [vg(`g${Math.floor(rnd() * ng)}`, { smUtilPct: rnd() < 0.3 ? 0 : rnd() * 100, passthrough: rnd() < 0.3, holdsContext: rnd() < 0.8 })] : [],
      }),
    );
    const measured = { rapl: rnd() < 0.1 ? 0 : rnd() * 1000 * (1 + rnd() * 10), gpu: gpus.reduce((s, g) => s + g.joules, 0) * (rnd() < 0.1 ? 1.1 : 1), bmc_rest: rnd() * 300 };
    const iv = interval({ durationS: 0.5 + rnd() * 10, measured, gpus, vms, hostCpu: { busySeconds: rnd() * 40, idleSeconds: 10, onlineCpus: 64, avgFreqMhz: 0 } });
    const r = m.attribute(iv, ctx(policies[k % 3], rnd() * 300, rnd() * 200, rnd() * 100));
    assert.deepEqual(checkConservation(r), [], `case ${k}`);
    for (const s of r.shares) assert.ok(s.dynamicJoules >= 0 && s.staticJoules >= 0);
  }
});

test('an interval with unusable sources bills nothing for them and says so in the note', () => {
  const r = new CpuShareMethod().attribute(interval({ measured: { rapl: 0, gpu: 0, bmc_rest: 0 }, unusableSources: ['bmc_rest', 'rapl'], vms: [vmi('a', 1)] }), ctx());
  assert.deepEqual(r.shares, []);
  assert.equal(r.note, 'not billed (counter reset or read error): bmc_rest, rapl');
  assert.deepEqual(checkConservation(r), []);
});

/**
 * The baseline as it was before issue 15 cut its allocations (caaca9a: shares looked up by source and VM uuid
 * in maps, `staticSplitWeights`' map, `reconcile`'s copies), on caaca9a's own `reconcile` and
 * `staticSplitWeights` (test-references.ts, frozen): the reference the shipped method must equal to the bit,
 * on sorted and unsorted uuids (an interval that repeats one is refused since).
 */
function referenceCpuShare(iv: HostInterval, c: AttributionContext): AttributionResult {
  const shares: AttributionShare[] = [];
  const slots = new Map<string, Map<string, AttributionShare>>();
  const add = (kind: EntityKind, vm: VmInterval | undefined, source: SourceName, dyn: number, sta: number): void => {
    if (!(dyn > 0) && !(sta > 0)) return;
    const slotKey = kind === 'vm' ? source : `${kind}|${source}`;
    let slot = slots.get(slotKey);
    if (!slot) slots.set(slotKey, (slot = new Map<string, AttributionShare>()));
    const uuid = vm?.uuid ?? '';
    let s = slot.get(uuid);
    if (!s) {
      s = { kind, vmUuid: uuid, vmName: vm?.name ?? '', tenant: vm?.tenant ?? '', source, dynamicJoules: 0, staticJoules: 0, lowJoules: 0, highJoules: 0 };
      slot.set(uuid, s);
      shares.push(s);
    }
    if (dyn > 0) s.dynamicJoules += dyn;
    if (sta > 0) s.staticJoules += sta;
  };
  const pos = (x: number | undefined): number => (x !== undefined && Number.isFinite(x) && x > 0 ? x : 0);
  const weights = c.reservedWeights ?? REFERENCE_RESERVED_WEIGHTS;
  const dur = Math.max(0, iv.durationS);
  const byUuid = new Map<string, VmInterval>();
  for (const v of iv.vms) byUuid.set(v.uuid, v);
  let vmCpu = 0;
  for (const v of iv.vms) vmCpu += pos(v.cpuSeconds);
  const overheadCpu = Math.max(0, pos(iv.hostCpu.busySeconds) - vmCpu);
  const totalCpu = vmCpu + overheadCpu;
  const hostStatic = referenceStaticSplitWeights(iv.vms, c.policy, weights);
  for (const source of ['rapl', 'bmc_rest'] as const) {
    const m = pos(iv.measured[source]);
    if (m === 0) continue;
    const sta = Math.min(m, pos(c.staticPower.watts[source]) * dur);
    const dyn = m - sta;
    if (hostStatic.size === 0) add('unallocated', undefined, source, 0, sta);
    else for (const [uuid, w] of hostStatic) add('vm', byUuid.get(uuid), source, 0, sta * w);
    if (totalCpu > 0) {
      for (const v of iv.vms) add('vm', v, source, (dyn * pos(v.cpuSeconds)) / totalCpu, 0);
      add('host_overhead', undefined, source, (dyn * overheadCpu) / totalCpu, 0);
    } else add('unallocated', undefined, source, dyn, 0);
  }
  const mGpu = pos(iv.measured.gpu);
  if (mGpu > 0) {
    const staticPerDevice = iv.gpus.length > 0 ? (pos(c.staticPower.watts.gpu) / iv.gpus.length) * dur : 0;
    let covered = 0;
    for (const g of iv.gpus) {
      const j = pos(g.joules);
      covered += j;
      const sta = Math.min(j, staticPerDevice);
      const dyn = j - sta;
      const attached: { vm: VmInterval; util: number; passthrough: boolean }[] = [];
      for (const v of iv.vms) {
        for (const x of v.gpus) {
          if (x.device !== g.device) continue;
          const presence = Number.isFinite(v.presence) ? Math.min(1, Math.max(0, v.presence)) : 0;
          if (x.passthrough || x.holdsContext || x.smUtilPct > 0) attached.push({ vm: v, util: pos(x.smUtilPct) * presence, passthrough: x.passthrough });
        }
      }
      if (attached.length === 0) {
        add('unallocated', undefined, 'gpu', dyn, sta);
        continue;
      }
      const w = referenceStaticSplitWeights(attached.map((a) => a.vm), c.policy, weights);
      if (w.size === 0) add('unallocated', undefined, 'gpu', 0, sta);
      else for (const [uuid, f] of w) add('vm', byUuid.get(uuid), 'gpu', 0, sta * f);
      const owners = attached.filter((a) => a.passthrough);
      const takers = owners.length > 0 ? owners : attached;
      let utilSum = 0;
      for (const a of takers) utilSum += a.util;
      for (const a of takers) add('vm', a.vm, 'gpu', utilSum > 0 ? (dyn * a.util) / utilSum : dyn / takers.length, 0);
    }
    if (mGpu > covered) add('unallocated', undefined, 'gpu', mGpu - covered, 0);
  }
  const reconciled = referenceReconcile(shares, iv.measured);
  for (const s of reconciled) s.lowJoules = s.highJoules = s.dynamicJoules + s.staticJoules;
  return {
    hostId: iv.hostId, seq: iv.seq, t0UnixNs: iv.t0UnixNs, t1UnixNs: iv.t1UnixNs, method: 'cpu_share', modelVersion: '1', hardwareClass: iv.hardwareClass,
    note: iv.unusableSources?.length ? `not billed (counter reset or read error): ${iv.unusableSources.join(', ')}` : '', shares: reconciled, measured: { ...iv.measured },
  };
}

test('the same joules, to the bit, as the map-keyed baseline before issue 15: sorted and unsorted uuids; a repeated uuid refused naming it (seeded)', () => {
  const rnd = prng(1515);
  const policies: IdleSplitPolicy[] = ['reserved', 'equal', 'unallocated'];
  const m = new CpuShareMethod();
  const kinds = { sorted: 0, unsorted: 0, repeated: 0 };
  for (let k = 0; k < 600; k++) {
    const nv = Math.floor(rnd() * 10);
    const ng = Math.floor(rnd() * 3);
    const gpus = Array.from({ length: ng }, (_, i) => gpuDev(`g${i}`, rnd() < 0.1 ? 0 : rnd() * 700));
    // a third of the cases in uuid order (as the aligner gives them), a third shuffled, a third with a uuid repeated
    const layout = k % 3;
    const names = Array.from({ length: nv }, (_, i) => `v${String(i).padStart(2, '0')}`);
    if (layout >= 1) names.sort(() => rnd() - 0.5);
    if (layout === 2 && nv >= 2) names[Math.floor(rnd() * nv)] = names[Math.floor(rnd() * nv)]!;
    const vms = names.map((uuid, i) =>
      vmi(uuid, rnd() < 0.2 ? 0 : rnd() * 8, {
        name: `vm-${uuid}-${i}`,
        vcpus: 1 + Math.floor(rnd() * 16),
        memoryBytes: rnd() < 0.1 ? 0 : Math.floor(rnd() * 64) * 2 ** 30,
        presence: rnd() < 0.2 ? rnd() : 1,
        gpus: ng > 0 && rnd() < 0.5 ? Array.from({ length: 1 + Math.floor(rnd() * 2) }, () => vg(`g${Math.floor(rnd() * ng)}`, { smUtilPct: rnd() < 0.3 ? 0 : rnd() * 100, passthrough: rnd() < 0.2, holdsContext: rnd() < 0.8 })) : [],
      }),
    );
    const uuids = vms.map((v) => v.uuid);
    const kind = new Set(uuids).size < uuids.length ? 'repeated' : uuids.every((u, i) => i === 0 || uuids[i - 1]! < u) ? 'sorted' : 'unsorted';
    kinds[kind]++;
    const measured = { rapl: rnd() < 0.1 ? 0 : rnd() * 1000 * (1 + rnd() * 10), gpu: gpus.reduce((s, g) => s + g.joules, 0) * (rnd() < 0.1 ? 1.1 : 1), bmc_rest: rnd() * 300 };
    const iv = interval({ durationS: 0.5 + rnd() * 10, measured, gpus, vms, hostCpu: { busySeconds: rnd() * 40, idleSeconds: 10, onlineCpus: 64, avgFreqMhz: 0 } });
    const c = ctx(policies[Math.floor(rnd() * 3)], rnd() * 300, rnd() * 200, rnd() * 100);
    if (kind === 'repeated') {
      // the baseline kept VMs of one uuid in one share; never met from the aligner (validateFrame refuses such frames)
      const at = uuids.findIndex((u, i) => uuids.indexOf(u) < i);
      assert.throws(() => m.attribute(iv, c), (e: unknown) => isWattsplitError(e) && e.code === 'FRAME_INVALID_FIELD' && e.message.includes(`vms[${at}].uuid "${uuids[at]!}" is repeated`), `case ${k}`);
    } else assert.deepEqual(m.attribute(iv, c), referenceCpuShare(iv, c), `case ${k}`);
  }
  // every layout was exercised
  for (const [kind, count] of Object.entries(kinds)) assert.ok(count > 50, `${kind}: ${count} cases`);
});

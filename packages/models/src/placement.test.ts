import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32, type HostInterval, type VmInterval } from '@wattsplit/attribution';
import { isWattsplitError } from '@wattsplit/wire';
import { checkModelJson, fitPlacement, inferPlacement, LoadFactorNormalEquations, packageZones, termLoads, trainAdditiveModel, type VmFeatures } from './index.js';

/** Per-core power rises with the load of the core's own package (as in the simulator). */
const g = (u: number): number => (1 - 0.12 * u * u) ** 2 * (1 + 0.8 * u);

interface TwoSocketOptions {
  seconds?: number;
  /** VM index → socket; default i % 2. */
  socketOf?: (vm: number, t: number) => number;
  /** VM index restarted (cpu counter back to 0, anomaly) at this second. */
  restart?: { vm: number; atS: number };
  psys?: boolean;
}

/** Two 16-core packages, 6 VMs; per-package RAPL counters; VM truth per second. */
function twoSocketHost(o: TwoSocketOptions = {}): { intervals: HostInterval[]; coreW: number[] } {
  const r = mulberry32(7);
  const coreW = [6, 2.5, 4, 6, 2.5, 4];
  const vcpus = [8, 4, 6, 8, 4, 6];
  const on = vcpus.map(() => r() < 0.5);
  const out: HostInterval[] = [];
  const socketOf = o.socketOf ?? ((i: number) => i % 2);
  for (let t = 0; t < (o.seconds ?? 600); t++) {
    const cpu = vcpus.map((v, i) => {
      if (r() < 0.03) on[i] = !on[i];
      return (on[i] ? 0.5 + 0.5 * r() : 0.05 * r()) * v;
    });
    const us = [0, 0];
    cpu.forEach((c, i) => (us[socketOf(i, t)]! += c));
    const pkg = [40, 40];
    for (let s = 0; s < 2; s++) us[s] = Math.min(1, (us[s]! + 0.5) / 16);
    cpu.forEach((c, i) => (pkg[socketOf(i, t)]! += g(us[socketOf(i, t)]!) * coreW[i]! * c));
    for (let s = 0; s < 2; s++) pkg[s]! += g(us[s]!) * 3 * 0.5;
    const vms: VmInterval[] = cpu.map((c, i) => ({
      uuid: `vm-${i}`, name: `vm-${i}`, tenant: `t${i}`, vcpus: vcpus[i]!, memoryBytes: 8 * 2 ** 30, cpuSeconds: c, vcpuSeconds: Array.from({ length: vcpus[i]! }, () => c / vcpus[i]!),
      memoryUsedBytes: 4 * 2 ** 30, blockReadBytes: 0, blockWriteBytes: 0, netRxBytes: 0, netTxBytes: 0, gpus: [], presence: 1, state: 'running',
    }));
    const raplZones: Record<string, number> = { 'intel-rapl:0': pkg[0]!, 'intel-rapl:1': pkg[1]!, 'intel-rapl:0:0': 0.7 * pkg[0]! };
    if (o.psys) raplZones['intel-rapl:2'] = pkg[0]! + pkg[1]! + 20;
    const busy = cpu.reduce((a, b) => a + b, 0) + 1;
    out.push({
      hostId: 'h2', hardwareClass: 'two-socket', seq: t + 1, prevSeq: t, t0UnixNs: t * 1e9, t1UnixNs: (t + 1) * 1e9, durationS: 1,
      measured: { rapl: pkg[0]! + pkg[1]!, gpu: 0, bmc_rest: 30 + 0.15 * (pkg[0]! + pkg[1]!) }, raplZones, gpus: [],
      hostCpu: { busySeconds: busy, idleSeconds: 32 - busy, onlineCpus: 32, avgFreqMhz: 2400 }, vms,
      anomalies: o.restart && o.restart.atS === t ? [{ code: 'COUNTER_WENT_BACKWARDS', message: 'restart', vmUuid: `vm-${o.restart.vm}` }] : [],
    });
  }
  return { intervals: out, coreW };
}

test('placement: each VM on the package whose counter its CPU time drives; psys and sub-zones are not packages', () => {
  const { intervals } = twoSocketHost({ psys: true });
  assert.deepEqual(packageZones(intervals), ['intel-rapl:0', 'intel-rapl:1']);
  const pl = inferPlacement(intervals);
  assert.ok(pl);
  assert.equal(pl.sockets, 2);
  for (let i = 0; i < 6; i++) {
    const w = pl.vm[`h2/vm-${i}`];
    assert.ok(w, `vm-${i} placed`);
    assert.ok(w[i % 2]! > 0.95, `vm-${i} on socket ${i % 2}: ${w.join(',')}`);
  }
});

test('placement: a VM that restarts on the other package gets its latest package, and the earlier one for training', () => {
  const { intervals } = twoSocketHost({ restart: { vm: 1, atS: 300 }, socketOf: (i, t) => (i === 1 && t >= 300 ? 0 : i % 2) });
  const pf = fitPlacement(intervals);
  assert.ok(pf.placement);
  assert.ok(pf.placement.vm['h2/vm-1']![0]! > 0.95, `latest: ${pf.placement.vm['h2/vm-1']!.join(',')}`);
  assert.ok(pf.earlier['h2/vm-1#0']![1]! > 0.95, `earlier: ${pf.earlier['h2/vm-1#0']!.join(',')}`);
  assert.equal(pf.keyOf(intervals[10]!, 'vm-1'), 'h2/vm-1#0');
  assert.equal(pf.keyOf(intervals[400]!, 'vm-1'), undefined);
  assert.equal(pf.keyOf(intervals[10]!, 'vm-0'), undefined);
});

test('placement: one package, no zones or too few intervals → none (host load is used)', () => {
  const { intervals } = twoSocketHost({ seconds: 40 });
  assert.equal(inferPlacement(intervals), undefined);
  const noZones = twoSocketHost().intervals.map((iv) => ({ ...iv, raplZones: {} }));
  assert.equal(inferPlacement(noZones), undefined);
});

test('termLoads: socket busy fraction from placement; unplaced terms get the mean; without placement the host load', () => {
  const f = (id: string, cpu: number): VmFeatures => ({ id, host: 'h', cores: 32, cpu, load: 0.3, shape: [], io: [] });
  const terms = [f('a', 8), f('b', 4), f('new', 2)];
  const base = { placement: { sockets: 2, vm: { 'h/a': [1, 0], 'h/b': [0, 1] } } } as unknown as Parameters<typeof termLoads>[0];
  const u = termLoads(base, terms);
  // socket 0: 8 + 1 (half of new) = 9 / 16; socket 1: 4 + 1 = 5 / 16
  assert.ok(Math.abs(u[0]! - 9 / 16) < 1e-12 && Math.abs(u[1]! - 5 / 16) < 1e-12 && Math.abs(u[2]! - 7 / 16) < 1e-12, u.join(','));
  assert.deepEqual(termLoads({ placement: undefined } as unknown as Parameters<typeof termLoads>[0], terms), [0.3, 0.3, 0.3]);
});

test('load factor fit recovers a known curve, its intercept and multipliers', () => {
  const r = mulberry32(3);
  const ne = new LoadFactorNormalEquations(3); // 0 intercept, 1..2 scaled
  const cols = Int32Array.from([1, 2]);
  for (let i = 0; i < 800; i++) {
    const a = 10 * r();
    const b = 10 * r();
    const u = r();
    const lf = 1 + 0.8 * u - 0.4 * u * u;
    const y = 50 + lf * (3 * a + 6 * b);
    ne.addRow({ m: 2, cols, v: [Float64Array.from([a, b]), Float64Array.from([a * u, b * u]), Float64Array.from([a * u * u, b * u * u])], ucols: [0], uvals: [1], target: y });
  }
  const best = ne.search({ ridge: [], ridgeTo: 1, free: [0] });
  assert.ok(best);
  assert.ok(Math.abs(best.b1 - 0.8) < 0.02 && Math.abs(best.b2 + 0.4) < 0.02, `${best.b1} ${best.b2}`);
  assert.ok(Math.abs(best.x[0]! - 50) < 0.5 && Math.abs(best.x[1]! - 3) < 0.05 && Math.abs(best.x[2]! - 6) < 0.05, Array.from(best.x).join(','));
});

test('trained on a two-package host: placement and per-VM W per core kept in the model; apply splits by each VM\'s own signature', async () => {
  const { intervals, coreW } = twoSocketHost({ seconds: 900 });
  const m = await trainAdditiveModel(intervals, { steps: 150, hardwareClass: 'two-socket' });
  assert.equal(m.placement?.sockets, 2);
  assert.deepEqual(m.ignoredShape, ['freq_ghz']);
  const own = m.sources.rapl.vmCoreW!;
  // W per core at load 0 ≈ the class's coreW (the curve is in the load factor)
  for (let i = 0; i < 6; i++) assert.ok(Math.abs(own[`vm-${i}`]! / coreW[i]! - 1) < 0.08, `vm-${i}: ${own[`vm-${i}`]} vs ${coreW[i]}`);
  assert.ok(Math.abs(m.sources.rapl.staticW - 80) < 4, `static ${m.sources.rapl.staticW}`);
  // round trip through JSON keeps it valid
  assert.deepEqual(checkModelJson(JSON.parse(JSON.stringify(m)), 'm.json').placement, m.placement);
});

test('model file: bad placement, ignoredShape or vmCoreW named in the error; older files (6 I/O weights) still load', async () => {
  const { intervals } = twoSocketHost({ seconds: 300 });
  const m = await trainAdditiveModel(intervals, { steps: 50 });
  const bad = (patch: (x: Record<string, unknown>) => void, field: string): void => {
    const x = JSON.parse(JSON.stringify(m)) as Record<string, unknown>;
    patch(x);
    assert.throws(() => checkModelJson(x, 'v3.json'), (e: unknown) => isWattsplitError(e) && e.message.includes('v3.json') && e.message.includes(field));
  };
  bad((x) => ((x.placement as { sockets: number }).sockets = 0), 'placement.sockets');
  bad((x) => ((x.placement as { vm: Record<string, unknown> }).vm['h2/vm-0'] = [1]), 'placement.vm["h2/vm-0"]');
  bad((x) => (x.ignoredShape = ['no_such_feature']), 'ignoredShape');
  bad((x) => (((x.sources as Record<string, Record<string, unknown>>).rapl!).vmCoreW = { 'vm-0': -1 }), 'sources.rapl.vmCoreW');
  const old = JSON.parse(JSON.stringify(m)) as Record<string, unknown>;
  for (const s of ['rapl', 'bmc_rest']) ((old.sources as Record<string, { io: number[] }>)[s]!).io.pop();
  assert.equal(checkModelJson(old, 'v1.json').sources.rapl.io.length, 6);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkConservation, mulberry32, type AttributionContext, type HostInterval, type VmInterval } from '@wattsplit/attribution';
import { AdditiveModelMethod } from './additive-model-method.js';
import { intervalFeatures, termPowers, type AdditiveModelJson } from './additive-model.js';
import { trainAdditiveModel } from './additive-trainer.js';
import { CPU_SIGNATURE_LEARNER } from './cpu-signature-filter.js';

/**
 * Hosts of one hardware class with their own idle power; VMs with their own W per busy core, which may change
 * at a given second (a phase). Truth per VM is the dynamic RAPL power each interval.
 */
interface FleetSpec {
  hosts: Record<string, number>; // host id → static W
  vms: number;
  seconds: number;
  seed: number;
  startS?: number;
  /** W per busy core of VM i at second t. */
  coreW?: (i: number, t: number) => number;
}

const BASE_W = [9, 3.2, 5, 4.5, 7, 2.5];

function fleet(spec: FleetSpec): { intervals: HostInterval[]; truth: Map<string, number> } {
  const intervals: HostInterval[] = [];
  const truth = new Map<string, number>();
  const hostIds = Object.keys(spec.hosts);
  hostIds.forEach((hostId, h) => {
    const r = mulberry32(spec.seed * 100 + h);
    const vms = Array.from({ length: spec.vms }, (_, i) => ({ uuid: `${hostId}-vm-${i}`, i, vcpus: 2 + 2 * (i % 4), on: r() < 0.6, level: r() }));
    const start = spec.startS ?? 0;
    for (let s = start; s < start + spec.seconds; s++) {
      let P = spec.hosts[hostId]!;
      const list: VmInterval[] = [];
      for (const v of vms) {
        if (r() < 0.02) v.on = !v.on;
        if (r() < 0.05) v.level = r();
        const util = v.on ? 0.15 + 0.85 * v.level : 0.02 * r();
        const cpu = util * v.vcpus;
        const w = spec.coreW ? spec.coreW(v.i, s) : BASE_W[v.i % BASE_W.length]!;
        P += cpu * w;
        truth.set(v.uuid, (truth.get(v.uuid) ?? 0) + cpu * w);
        list.push({
          uuid: v.uuid, name: v.uuid, tenant: `t-${v.uuid}`, vcpus: v.vcpus, memoryBytes: 8 * 2 ** 30, cpuSeconds: cpu, vcpuSeconds: Array.from({ length: v.vcpus }, () => util),
          memoryUsedBytes: 4 * 2 ** 30, blockReadBytes: 0, blockWriteBytes: 0, netRxBytes: 0, netTxBytes: 0, gpus: [], presence: 1, state: 'running',
        });
      }
      P += 0.5 * 3;
      const busy = list.reduce((a, v) => a + v.cpuSeconds, 0) + 0.5;
      intervals.push({
        hostId, hardwareClass: 'synth-class', seq: s + 1, prevSeq: s, t0UnixNs: s * 1e9, t1UnixNs: (s + 1) * 1e9, durationS: 1,
        measured: { rapl: P + 0.5 * (r() - 0.5), gpu: 0, bmc_rest: 0 }, raplZones: {}, gpus: [],
        hostCpu: { busySeconds: busy, idleSeconds: 64 - busy, onlineCpus: 64, avgFreqMhz: 2400 }, vms: list, anomalies: [],
      });
    }
  });
  return { intervals, truth };
}

const ctx: AttributionContext = { policy: 'reserved', staticPower: { watts: { rapl: 0, gpu: 0, bmc_rest: 0 }, origin: 'configured' } };

async function train(intervals: HostInterval[]): Promise<AdditiveModelJson> {
  return trainAdditiveModel(intervals, { hardwareClass: 'synth-class', steps: 150, seed: 3 });
}

/** Attributes then observes every interval (causal, as the collector does); dynamic RAPL joules per VM. */
function bill(method: AdditiveModelMethod, intervals: readonly HostInterval[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const iv of intervals) {
    const r = method.attribute(iv, ctx);
    assert.deepEqual(checkConservation(r), [], `conservation at ${iv.hostId} seq ${iv.seq}`);
    method.observe(iv);
    for (const s of r.shares) if (s.kind === 'vm' && s.source === 'rapl') out.set(s.vmUuid, (out.get(s.vmUuid) ?? 0) + s.dynamicJoules);
  }
  return out;
}

test('static power per host: the trainer keeps each trained host\'s own; a new host starts from the class and converges to its own', async () => {
  const { intervals } = fleet({ hosts: { a: 100, b: 120 }, vms: 6, seconds: 900, seed: 1 });
  const model = await train(intervals);
  const own = model.sources.rapl.hostStaticW ?? {};
  assert.ok(Math.abs(own.a! - 100) < 3 && Math.abs(own.b! - 120) < 3, `trained hosts' static power: ${JSON.stringify(own)}`);
  assert.ok(Math.abs(model.sources.rapl.staticW - 110) < 3, `class prior ${model.sources.rapl.staticW}`);
  // host c (idle 88 W) was never trained on: it starts at the class's ~110 W and learns its own from its intervals
  const c = fleet({ hosts: { c: 88 }, vms: 6, seconds: 1200, seed: 2 }).intervals;
  const method = new AdditiveModelMethod({ models: { get: () => model } });
  const before = method.filter!.staticPower('c', 'rapl', model).w;
  assert.ok(before - 88 > 15, `prior for an unseen host is the class's: ${before}`);
  bill(method, c.slice(0, 600));
  const after10 = method.filter!.staticPower('c', 'rapl', model);
  assert.ok(Math.abs(after10.w - 88) < 4, `after 10 minutes: ${after10.w.toFixed(1)} ± ${after10.sd.toFixed(1)} W (true 88)`);
  // trained hosts keep their own (no drift away from it)
  bill(method, fleet({ hosts: { a: 100 }, vms: 6, seconds: 300, seed: 3, startS: 2000 }).intervals);
  assert.ok(Math.abs(method.filter!.staticPower('a', 'rapl', model).w - 100) < 3);
});

test('a VM whose energy per CPU-second changes after training is tracked within minutes (the trained model alone is not)', async () => {
  const changeS = 2000;
  const coreW = (i: number, t: number): number => (i === 1 && t >= changeS ? 3 : 1) * BASE_W[i % BASE_W.length]!;
  const warm = fleet({ hosts: { a: 100, b: 110 }, vms: 6, seconds: 900, seed: 4, coreW }).intervals;
  const model = await train(warm);
  const online = new AdditiveModelMethod({ models: { get: () => model } });
  const offline = new AdditiveModelMethod({ models: { get: () => model }, online: false });
  const billed = fleet({ hosts: { a: 100 }, vms: 6, seconds: 1500, seed: 5, coreW, startS: changeS - 300 });
  const first = billed.intervals.slice(0, 300 + 300); // 5 min before the change, 5 min after
  bill(online, first);
  bill(offline, first);
  const m = online.filter!.multiplier('a', 'rapl', 'a-vm-1');
  assert.ok(m !== undefined && Math.abs(m - 3) < 0.6, `multiplier of the VM that tripled, 5 minutes after: ${m}`);
  // billed over the next 10 minutes
  const rest = billed.intervals.slice(600);
  const on = bill(online, rest);
  const off = bill(offline, rest);
  // truth over the same intervals (interval seq k covers second k − 1)
  const t = new Map<string, number>();
  for (const iv of rest) for (const v of iv.vms) t.set(v.uuid, (t.get(v.uuid) ?? 0) + v.cpuSeconds * coreW(Number(v.uuid.split('-')[2]), iv.seq - 1));
  const err = (m: Map<string, number>, id: string): number => (m.get(id) ?? 0) / t.get(id)! - 1;
  assert.ok(Math.abs(err(on, 'a-vm-1')) < 0.1, `online: ${(100 * err(on, 'a-vm-1')).toFixed(1)} %`);
  assert.ok(Math.abs(err(off, 'a-vm-1')) > 0.3, `offline (the trained model alone): ${(100 * err(off, 'a-vm-1')).toFixed(1)} %`);
});

test('a VM that ran is never billed zero dynamic energy, even where its trained coefficient is 0', async () => {
  const { intervals } = fleet({ hosts: { a: 100, b: 104 }, vms: 6, seconds: 600, seed: 6 });
  const model = await train(intervals);
  const broken: AdditiveModelJson = JSON.parse(JSON.stringify(model)) as AdditiveModelJson;
  broken.sources.rapl.vmCoreW!['a-vm-2'] = 0;
  const method = new AdditiveModelMethod({ models: { get: () => broken } });
  const later = fleet({ hosts: { a: 100 }, vms: 6, seconds: 600, seed: 7, startS: 1000 }).intervals;
  const billed = bill(method, later);
  const cpu = later.reduce((a, iv) => a + (iv.vms.find((v) => v.uuid === 'a-vm-2')?.cpuSeconds ?? 0), 0);
  assert.ok(cpu > 0);
  const typical = [...billed.values()].sort((x, y) => x - y)[Math.floor(billed.size / 2)]!;
  assert.ok((billed.get('a-vm-2') ?? 0) > 0.05 * typical, `VM with a zero coefficient billed ${billed.get('a-vm-2')} J (median VM ${typical} J)`);
  for (const iv of later) {
    const r = method.attribute(iv, ctx);
    for (const v of iv.vms) if (v.cpuSeconds > 0) assert.ok(r.shares.some((s) => s.vmUuid === v.uuid && s.source === 'rapl' && s.dynamicJoules > 0), `${v.uuid} at seq ${iv.seq}`);
  }
});

test('filter state: round-trips through JSON (same attribution after import), is refused when invalid, and a redelivered interval is not learned twice', async () => {
  const { intervals } = fleet({ hosts: { a: 100, b: 104 }, vms: 5, seconds: 600, seed: 8 });
  const model = await train(intervals);
  const a = new AdditiveModelMethod({ models: { get: () => model } });
  const later = fleet({ hosts: { a: 100 }, vms: 5, seconds: 300, seed: 9, startS: 1000 }).intervals;
  bill(a, later.slice(0, 200));
  const states = a.exportStates('a');
  const cpuState = states.find((s) => s.learner === CPU_SIGNATURE_LEARNER);
  assert.ok(cpuState, `states: ${states.map((s) => s.learner).join(', ')}`);
  assert.equal(cpuState.lastSeq, later[199]!.seq);
  const text = JSON.stringify(cpuState);
  // redelivery: the last interval again changes nothing
  a.observe(later[199]!);
  a.observe(later[150]!);
  assert.equal(JSON.stringify(a.exportStates('a').find((s) => s.learner === CPU_SIGNATURE_LEARNER)), text);
  // round trip
  const b = new AdditiveModelMethod({ models: { get: () => model } });
  b.importState('a', text);
  assert.equal(JSON.stringify(b.exportStates('a').find((s) => s.learner === CPU_SIGNATURE_LEARNER)), text);
  for (const iv of later.slice(200)) {
    assert.deepEqual(b.attribute(iv, ctx), a.attribute(iv, ctx));
    a.observe(iv);
    b.observe(iv);
  }
  // refused, naming the field; the state held before is kept
  const held = JSON.stringify(b.exportStates('a'));
  const parsed = JSON.parse(text) as { sources: { rapl: { cov: number[]; mean: number[]; ids: string[] } } };
  const bad: Array<[string, unknown]> = [
    ['cov', { ...parsed, sources: { rapl: { ...parsed.sources.rapl, cov: parsed.sources.rapl.cov.slice(1) } } }],
    ['mean', { ...parsed, sources: { rapl: { ...parsed.sources.rapl, mean: parsed.sources.rapl.mean.map((x, i) => (i === 0 ? 'x' : x)) } } }],
    ['ids', { ...parsed, sources: { rapl: { ...parsed.sources.rapl, ids: parsed.sources.rapl.ids.map(() => 'same') } } }],
    ['hostId', { ...parsed, hostId: 'other' }],
    ['sources.gpu', { ...parsed, sources: { ...parsed.sources, gpu: parsed.sources.rapl } }],
    ['learner', { ...parsed, learner: 'static_power' }],
  ];
  for (const [field, st] of bad) {
    assert.throws(() => b.importState('a', JSON.stringify(st)), (e: Error & { code?: string }) => e.code === 'LEARNER_STATE_INVALID' && e.message.includes(field), field);
  }
  assert.throws(() => b.importState('a', '{not json'), (e: Error & { code?: string }) => e.code === 'LEARNER_STATE_INVALID');
  assert.equal(JSON.stringify(b.exportStates('a')), held);
});

test('uncertainty: the 90 % interval of a VM\'s billed energy is wider where its signature is poorly determined', async () => {
  const { intervals } = fleet({ hosts: { a: 100, b: 104 }, vms: 6, seconds: 900, seed: 10 });
  const model = await train(intervals);
  const method = new AdditiveModelMethod({ models: { get: () => model } });
  // an unseen host: the class prior; after 15 minutes of its own data the intervals narrow
  const c = fleet({ hosts: { c: 95 }, vms: 6, seconds: 900, seed: 11 }).intervals;
  const width = (iv: HostInterval): number => {
    let w = 0;
    let e = 0;
    for (const s of method.attribute(iv, ctx).shares) {
      if (s.kind !== 'vm' || s.source !== 'rapl') continue;
      assert.ok(s.lowJoules <= s.dynamicJoules + s.staticJoules && s.dynamicJoules + s.staticJoules <= s.highJoules);
      w += s.highJoules - s.lowJoules;
      e += s.dynamicJoules + s.staticJoules;
    }
    return w / e;
  };
  const first = width(c[0]!);
  bill(method, c.slice(0, 899));
  const last = width(c[899]!);
  assert.ok(first > 0 && last < 0.7 * first, `relative width of the VMs' intervals: first ${first.toFixed(3)}, after 15 min ${last.toFixed(3)}`);
});

/** VM i's phase level at second t: one of three levels, redrawn every 120 s (no observable follows it). */
function phaseLevel(i: number, t: number): number {
  const r = mulberry32(1000 * i + Math.floor(t / 120));
  return [0.6, 1, 1.6][Math.floor(r() * 3)]!;
}

test('without perf counters, the observation noise comes from the host\'s own innovations: phases the training residual held are followed sooner', async () => {
  const coreW = (i: number, t: number): number => phaseLevel(i, t) * BASE_W[i % BASE_W.length]!;
  const warm = fleet({ hosts: { a: 100, b: 110 }, vms: 6, seconds: 1200, seed: 21, coreW }).intervals;
  const model = await train(warm);
  // the phases are noise to the trained model: its residual is many times the sensor's 0.15 W
  assert.ok(model.sources.rapl.residualRmsW > 3, `training residual ${model.sources.rapl.residualRmsW} W`);
  const billed = fleet({ hosts: { a: 100 }, vms: 6, seconds: 1800, seed: 22, coreW, startS: 5000 });
  const own = new AdditiveModelMethod({ models: { get: () => model } });
  const fixed = new AdditiveModelMethod({ models: { get: () => model }, online: { unobservedNoise: false } });
  // the first 10 minutes, then each VM's billed energy over the last 20 against the truth (interval seq k covers second k − 1)
  bill(own, billed.intervals.slice(0, 600));
  bill(fixed, billed.intervals.slice(0, 600));
  const tail = billed.intervals.slice(600);
  const a = bill(own, tail);
  const b = bill(fixed, tail);
  const truth = new Map<string, number>();
  for (const iv of tail) for (const v of iv.vms) truth.set(v.uuid, (truth.get(v.uuid) ?? 0) + v.cpuSeconds * coreW(Number(v.uuid.split('-')[2]), iv.seq - 1));
  const err = (m: Map<string, number>): number => [...truth].reduce((s, [id, t]) => s + Math.abs((m.get(id) ?? 0) - t), 0);
  assert.ok(err(a) < 0.8 * err(b), `Σ|error| of the VMs over the last 20 min: own noise ${err(a).toFixed(0)} J, the model's residual ${err(b).toFixed(0)} J`);
  // the state carries the noise estimate: a restart from it splits alike
  const again = new AdditiveModelMethod({ models: { get: () => model } });
  again.importState('a', JSON.stringify(own.exportStates('a').find((s) => s.learner === CPU_SIGNATURE_LEARNER)));
  const next = fleet({ hosts: { a: 100 }, vms: 6, seconds: 60, seed: 24, coreW, startS: 6800 }).intervals;
  for (const iv of next) {
    assert.deepEqual(again.attribute(iv, ctx), own.attribute(iv, ctx));
    again.observe(iv);
    own.observe(iv);
  }
});

test('with perf counters the observation noise and the trained VMs\' starting sd and prior stay the model\'s: the split is the same with the options on or off', async () => {
  const { intervals } = fleet({ hosts: { a: 100 }, vms: 5, seconds: 900, seed: 23 });
  const withPerf = intervals.map((iv) => ({ ...iv, vms: iv.vms.map((v) => ({ ...v, perf: { cycles: 2e9 * v.cpuSeconds, instructions: 3e9 * v.cpuSeconds, llcMisses: 1e6 * v.cpuSeconds, llcReferences: 1e7 * v.cpuSeconds } })) }));
  const model = await train(withPerf.slice(0, 500));
  const on = new AdditiveModelMethod({ models: { get: () => model } });
  const off = new AdditiveModelMethod({ models: { get: () => model }, online: { unobservedNoise: false, unobservedPrior: false, featurePrior: false } });
  for (const iv of withPerf.slice(500)) {
    assert.deepEqual(on.attribute(iv, ctx), off.attribute(iv, ctx));
    on.observe(iv);
    off.observe(iv);
  }
});

test('the innovations\' noise estimate: an older state without it imports as none seen, a malformed one is refused by name, and it never exceeds the model\'s', async () => {
  const coreW = (i: number, t: number): number => phaseLevel(i, t) * BASE_W[i % BASE_W.length]!;
  const warm = fleet({ hosts: { a: 100 }, vms: 5, seconds: 900, seed: 31, coreW }).intervals;
  const model = await train(warm);
  const later = fleet({ hosts: { a: 100 }, vms: 5, seconds: 400, seed: 32, coreW, startS: 3000 }).intervals;
  const m = new AdditiveModelMethod({ models: { get: () => model } });
  bill(m, later.slice(0, 300));
  const state = JSON.parse(JSON.stringify(m.exportStates('a').find((s) => s.learner === CPU_SIGNATURE_LEARNER))) as { sources: Record<string, { noise?: { e2: number; hph: number; seenS: number } }> };
  const noise = state.sources.rapl!.noise!;
  assert.ok(noise.seenS >= 299 && noise.e2 > 0, JSON.stringify(noise));
  // an older state: no `noise` — it imports and starts with none seen, as a fresh filter's statistics
  const old = structuredClone(state);
  for (const src of Object.values(old.sources)) delete src.noise;
  const fromOld = new AdditiveModelMethod({ models: { get: () => model } });
  fromOld.importState('a', JSON.stringify(old));
  const back = fromOld.exportStates('a').find((s) => s.learner === CPU_SIGNATURE_LEARNER) as unknown as typeof state;
  assert.deepEqual(back.sources.rapl!.noise, { e2: 0, hph: 0, seenS: 0 });
  // malformed: refused naming the field
  const bad = structuredClone(state);
  bad.sources.rapl!.noise = { e2: -1, hph: 0, seenS: 10 };
  assert.throws(() => fromOld.importState('a', JSON.stringify(bad)), (e: Error & { code?: string }) => e.code === 'LEARNER_STATE_INVALID' && e.message.includes('sources.rapl.noise.e2'));
  // the cap: where the sensor's own noise is larger than the model says, the estimate is the model's and the split is the same as with the option off
  const noisy = later.map((iv, k) => ({ ...iv, measured: { ...iv.measured, rapl: iv.measured.rapl + 400 * Math.sin(k * 2.1) } }));
  const on = new AdditiveModelMethod({ models: { get: () => model }, online: { unobservedPrior: false } });
  const off = new AdditiveModelMethod({ models: { get: () => model }, online: { unobservedNoise: false, unobservedPrior: false } });
  for (const iv of noisy) {
    assert.deepEqual(on.attribute(iv, ctx), off.attribute(iv, ctx));
    on.observe(iv);
    off.observe(iv);
  }
});

test('without perf counters a trained VM\'s multiplier starts as uncertain as an unseen VM\'s: a phase that differs from its training average is followed sooner', async () => {
  // training: each VM's phases (three levels, redrawn every 120 s; no observable follows them); billed: one level
  // held for the whole period, 2.2 × the base for VM 1, 0.5 × for VM 3, 1 × for the others
  const trained = fleet({ hosts: { a: 100, b: 110 }, vms: 6, seconds: 1200, seed: 41, coreW: (i, t) => phaseLevel(i, t) * BASE_W[i % BASE_W.length]! }).intervals;
  const model = await train(trained);
  const level = (i: number): number => (i % 6 === 1 ? 2.2 : i % 6 === 3 ? 0.5 : 1);
  const coreW = (i: number): number => level(i) * BASE_W[i % BASE_W.length]!;
  const billed = fleet({ hosts: { a: 100 }, vms: 6, seconds: 600, seed: 42, coreW, startS: 5000 }).intervals;
  const on = new AdditiveModelMethod({ models: { get: () => model } });
  const off = new AdditiveModelMethod({ models: { get: () => model }, online: { unobservedPrior: false } });
  // the first interval, before anything is learned: a wider 90 % interval for a trained VM
  const width = (m: AdditiveModelMethod): number => {
    const s = m.attribute(billed[0]!, ctx).shares.find((x) => x.kind === 'vm' && x.source === 'rapl' && x.vmUuid === 'a-vm-1')!;
    return s.highJoules - s.lowJoules;
  };
  assert.ok(width(on) > 1.3 * width(off), `first interval's 90 % width of a-vm-1: on ${width(on).toFixed(2)} J, off ${width(off).toFixed(2)} J`);
  const a = bill(on, billed);
  const b = bill(off, billed);
  const truth = new Map<string, number>();
  for (const iv of billed) for (const v of iv.vms) truth.set(v.uuid, (truth.get(v.uuid) ?? 0) + v.cpuSeconds * coreW(Number(v.uuid.split('-')[2])));
  const err = (m: Map<string, number>): number => [...truth].reduce((s, [id, t]) => s + Math.abs((m.get(id) ?? 0) - t), 0);
  // (measured when written: Σ 1754 against 1891 J; a-vm-1, 7.1 kJ, −816 against −912 J)
  assert.ok(err(a) < 0.95 * err(b), `Σ|error| of the VMs over the first 10 min: on ${err(a).toFixed(0)} J, off ${err(b).toFixed(0)} J`);
  const e1 = (m: Map<string, number>): number => Math.abs((m.get('a-vm-1') ?? 0) - truth.get('a-vm-1')!);
  assert.ok(e1(a) < e1(b), `a-vm-1 (2.2 × its training average): |error| on ${e1(a).toFixed(0)} J, off ${e1(b).toFixed(0)} J`);
  // its stationary sd (the process noise) is unchanged: the state's sd of a trained VM is still knownSd
  const st = on.exportStates('a').find((x) => x.learner === CPU_SIGNATURE_LEARNER) as unknown as { sources: { rapl: { ids: string[]; sd: number[] } } };
  assert.equal(st.sources.rapl.sd[st.sources.rapl.ids.indexOf('a-vm-1')], 0.35);
});

test('without perf counters a trained VM\'s prior moves towards the feature model\'s estimate by their inverse variances in logs: a signature its billed period does not bear out is followed from closer', async () => {
  const { intervals } = fleet({ hosts: { a: 100, b: 110 }, vms: 6, seconds: 1500, seed: 51 });
  const trained = await train(intervals.filter((iv) => iv.seq <= 900));
  // a-vm-1's trained signature 2.5 × what it draws (a training window whose average its billed period does not
  // bear out, as phases without perf make it); the feature model, fitted across VMs, knows nothing of that
  const own = trained.sources.rapl.vmCoreW!;
  const model: AdditiveModelJson = { ...trained, sources: { ...trained.sources, rapl: { ...trained.sources.rapl, vmCoreW: { ...own, 'a-vm-1': 2.5 * own['a-vm-1']! } } } };
  const billed = intervals.filter((iv) => iv.hostId === 'a' && iv.seq > 900);
  const on = new AdditiveModelMethod({ models: { get: () => model } });
  const off = new AdditiveModelMethod({ models: { get: () => model }, online: { featurePrior: false } });
  const tail = billed.slice(0, 600);
  const a = bill(on, tail);
  const b = bill(off, tail);
  // the mechanism: each trained VM's prior is (feature model's CPU part / its own)^w, w = 0.6² / (0.6² + 1.5²) (its
  // starting sd without perf, `featureSd`), taken where the filter took it up
  // (the second interval: the first follows no interval of the same VMs)
  const st = on.exportStates('a').find((x) => x.learner === CPU_SIGNATURE_LEARNER) as unknown as { sources: { rapl: { ids: string[]; prior: number[] } } };
  const { vmCoreW: _o, ...feature } = model.sources.rapl;
  const bare: AdditiveModelJson = { ...model, sources: { ...model.sources, rapl: feature } };
  const ts = intervalFeatures(tail[1]!);
  const ratio = termPowers(bare, 'rapl', ts).map((g, t) => g / termPowers(model, 'rapl', ts)[t]!);
  for (let t = 0; t < ts.length; t++) {
    const i = st.sources.rapl.ids.indexOf(ts[t]!.id);
    if (i < 0 || !(ts[t]!.cpu > 0)) continue;
    const expect = Math.min(4, Math.max(0.25, ratio[t]!)) ** (0.36 / (0.36 + 2.25));
    assert.ok(Math.abs(st.sources.rapl.prior[i]! / expect - 1) < 0.01, `${ts[t]!.id}: prior ${st.sources.rapl.prior[i]!.toFixed(3)} vs ratio^w ${expect.toFixed(3)}`);
  }
  const vm1 = st.sources.rapl.prior[st.sources.rapl.ids.indexOf('a-vm-1')]!;
  assert.ok(vm1 < 0.95, `a-vm-1's prior is pulled towards the feature model: ${vm1.toFixed(3)}`);
  // and the billed period: the over-stated VM is billed closer to its truth
  const truth = new Map<string, number>();
  for (const iv of tail) for (const v of iv.vms) truth.set(v.uuid, (truth.get(v.uuid) ?? 0) + v.cpuSeconds * BASE_W[Number(v.uuid.split('-')[2]) % BASE_W.length]!);
  const e1 = (m: Map<string, number>): number => Math.abs((m.get('a-vm-1') ?? 0) - truth.get('a-vm-1')!);
  assert.ok(e1(a) < 0.95 * e1(b), `a-vm-1 |error| over 10 min: on ${e1(a).toFixed(0)} J, off ${e1(b).toFixed(0)} J`);
  const err = (m: Map<string, number>): number => [...truth].reduce((s, [id, x]) => s + Math.abs((m.get(id) ?? 0) - x), 0);
  // (the weight is small, 0.14: the host's VMs together come out the same, 193 against 192 J when written)
  assert.ok(err(a) < 1.02 * err(b), `Σ|error|: on ${err(a).toFixed(0)} J, off ${err(b).toFixed(0)} J`);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWattsplitError } from '@wattsplit/wire';
import { StaticPowerLearner, fitIntercept, ridgeIntercept } from './static-power-learner.js';
import { prng } from './test-fixtures.js';
import type { HostInterval, StaticPowerEstimate, VmInterval } from './types.js';

let nextSeq = 0;
function iv(hostId: string, busyFrac: number, raplW: number, bmcW: number, gpu?: { util: number; w: number; contexts?: number }, vms: VmInterval[] = []): HostInterval {
  const seq = ++nextSeq;
  return {
    hostId, hardwareClass: 'x', seq, prevSeq: seq - 1, t0UnixNs: 0, t1UnixNs: 2e9, durationS: 2,
    measured: { rapl: raplW * 2, gpu: gpu ? gpu.w * 2 : 0, bmc_rest: bmcW * 2 }, raplZones: {},
    gpus: gpu ? [{ device: 'g', joules: gpu.w * 2, contexts: gpu.contexts ?? 1, meanPowerW: gpu.w, gpuUtilPct: gpu.util * 100, memUtilPct: 0, smClockMhz: 0 }] : [],
    hostCpu: { busySeconds: busyFrac * 128, idleSeconds: (1 - busyFrac) * 128, onlineCpus: 64, avgFreqMhz: 0 }, vms, anomalies: [],
  };
}

const vm = (uuid: string, cpuSeconds: number): VmInterval => ({
  uuid, name: uuid, tenant: 't', vcpus: 16, memoryBytes: 1, cpuSeconds, vcpuSeconds: [], memoryUsedBytes: 0,
  blockReadBytes: 0, blockWriteBytes: 0, netRxBytes: 0, netTxBytes: 0, gpus: [], presence: 1, state: 'running',
});

test('uses the configured fallback until enough intervals are seen', () => {
  const l = new StaticPowerLearner({ fallback: { rapl: 100, gpu: 70, bmc_rest: 60 }, minSamples: 20 });
  for (let i = 0; i < 10; i++) l.observe(iv('h', 0.1 + i / 20, 150, 80));
  assert.deepEqual(l.estimate('h'), { watts: { rapl: 100, gpu: 70, bmc_rest: 60 }, origin: 'configured' });
  assert.equal(l.estimate('never-seen').origin, 'configured');
});

test('learns static power under VMs of very different watts per core, with load-dependent scaling (within 5 %)', () => {
  const rnd = prng(3);
  const l = new StaticPowerLearner({ fallback: { rapl: 0, gpu: 0, bmc_rest: 0 }, minSamples: 30 });
  for (let i = 0; i < 600; i++) {
    const a = rnd() < 0.5 ? 14 * rnd() : 0.5; // AVX batch, 9 W/core, on/off
    const b = 2 + 4 * rnd(); // web, 2.5 W/core
    const ovh = 0.2 + 0.6 * rnd(); // hypervisor work is not a fixed function of VM CPU
    const u = (a + b + ovh) / 64;
    const g = 1 + 0.8 * u;
    const rapl = 120 + g * (9 * a + 2.5 * b + 3 * ovh) + (rnd() - 0.5) * 4;
    const ctx = rnd() < 0.2 ? 0 : 1;
    const gu = ctx ? rnd() : 0;
    const gpuW = 73 + ctx * 47 + 580 * gu + (rnd() - 0.5) * 2;
    const bmc = 60 + 0.08 * (rapl - 120 + gpuW - 73);
    l.observe(iv('h', u, rapl, bmc, { util: gu, w: gpuW, contexts: ctx }, [vm('a', a * 2), vm('b', b * 2)]));
  }
  const e = l.estimate('h');
  assert.ok(Math.abs(e.watts.rapl - 120) / 120 < 0.05, `rapl ${e.watts.rapl}`);
  assert.ok(Math.abs(e.watts.gpu - 73) / 73 < 0.05, `gpu ${e.watts.gpu}`);
  assert.ok(Math.abs(e.watts.bmc_rest - 60) / 60 < 0.05, `bmc ${e.watts.bmc_rest}`);
  assert.equal(e.origin, 'learned:rapl,gpu,bmc_rest');
});

test('GPU static needs context-free intervals; a host without GPUs learns 0; unusable sources are skipped', () => {
  // refreshEvery 1: the estimate after the 10th interval (the default computes it after the 1st, 11th, …)
  const l = new StaticPowerLearner({ fallback: { rapl: 1, gpu: 73, bmc_rest: 1 }, minSamples: 5, refreshEvery: 1 });
  for (let i = 0; i < 10; i++) l.observe({ ...iv('h', i / 10, 100 + i, 50, { util: 0.5, w: 300, contexts: 2 }), unusableSources: ['bmc_rest'] });
  const e = l.estimate('h');
  assert.equal(e.origin, 'learned:rapl;configured:gpu,bmc_rest');
  assert.equal(e.watts.gpu, 73);
  assert.equal(e.watts.bmc_rest, 1);
  assert.ok(Math.abs(e.watts.rapl - 100) < 1, `rapl ${e.watts.rapl}`);
  const cpuOnly = new StaticPowerLearner({ fallback: { rapl: 1, gpu: 73, bmc_rest: 1 }, minSamples: 5, refreshEvery: 1 });
  for (let i = 0; i < 10; i++) cpuOnly.observe(iv('c', i / 10, 100 + i, 50 + i / 10));
  assert.equal(cpuOnly.estimate('c').watts.gpu, 0);
  assert.equal(cpuOnly.estimate('c').origin, 'learned:rapl,gpu,bmc_rest');
});

test('ridge intercept: exact on a noiseless linear model, constant columns dropped', () => {
  const X = Array.from({ length: 50 }, (_, i) => [i % 7, (i * 3) % 11, 5]);
  const y = X.map(([a, b]) => 40 + 2 * a! + 0.5 * b!);
  assert.ok(Math.abs(ridgeIntercept(X, y, 0)! - 40) < 1e-6);
  assert.equal(ridgeIntercept([[1]], [1]), undefined);
});

test('the intercept never exceeds the low quantile of observed power and never goes negative', () => {
  assert.equal(fitIntercept([0.5, 0.5, 0.5, 0.5], [200, 210, 220, 230], 0), 200);
  const neg = fitIntercept([0.1, 0.5, 0.9], [10, 100, 190]);
  assert.equal(neg, 0);
  assert.equal(fitIntercept([1], [1]), undefined);
});

test('bad configuration is CONFIG_INVALID naming the field and value', () => {
  assert.throws(() => new StaticPowerLearner({ fallback: { rapl: -1, gpu: 0, bmc_rest: 0 } }), (e) => isWattsplitError(e, 'CONFIG_INVALID') && /fallback\.rapl=-1/.test(e.message));
  assert.throws(() => new StaticPowerLearner({ fallback: { rapl: 1, gpu: 0, bmc_rest: 0 }, window: 1 }), (e) => isWattsplitError(e, 'CONFIG_INVALID') && /window=1 must be an integer ≥ 3/.test(e.message));
  for (const bad of [0, 1.5, 901]) {
    assert.throws(() => new StaticPowerLearner({ fallback: { rapl: 1, gpu: 0, bmc_rest: 0 }, refreshEvery: bad }), (e) => isWattsplitError(e, 'CONFIG_INVALID') && new RegExp(`refreshEvery=${bad} must be an integer 1-900`).test(e.message));
  }
});

/** A learner that has seen two hosts with GPUs, VMs and varying load (enough to learn every source). */
function learnedTwoHosts(opts: { window?: number; refreshEvery?: number } = {}): { l: StaticPowerLearner; ivs: HostInterval[] } {
  const r = prng(11);
  const l = new StaticPowerLearner({ fallback: { rapl: 0, gpu: 0, bmc_rest: 0 }, minSamples: 30, ...opts });
  const ivs: HostInterval[] = [];
  for (let i = 0; i < 200; i++) {
    for (const h of ['h1', 'h2']) {
      const a = r();
      const b = r();
      const ctx = r() < 0.3 ? 0 : 2;
      ivs.push(iv(h, 0.1 + 0.4 * (a + b), 80 + 60 * a + 20 * b, 50 + 0.2 * (80 + 60 * a), { util: a, w: ctx ? 120 + 200 * a : 73, contexts: ctx }, [vm('a', a * 2), vm('b', b * 2)]));
    }
  }
  for (const x of ivs) l.observe(x);
  return { l, ivs };
}

/**
 * Estimates equal to rounding: the RAPL regression runs on running sums (rapl-gram.ts), which a restored
 * learner recomputes from the ring, so the last bits can differ from those of the learner that saved it.
 */
function assertSameEstimate(got: StaticPowerEstimate, want: StaticPowerEstimate): void {
  assert.equal(got.origin, want.origin);
  for (const s of ['rapl', 'gpu', 'bmc_rest'] as const) {
    assert.ok(Math.abs(got.watts[s] - want.watts[s]) <= 1e-9 * Math.max(1, Math.abs(want.watts[s])), `${s}: ${got.watts[s]} vs ${want.watts[s]}`);
  }
}

test('state: export → JSON → import into a fresh learner gives the same estimates (to rounding); learning then goes on identically', () => {
  const { l } = learnedTwoHosts({ window: 150 });
  const fresh = new StaticPowerLearner({ fallback: { rapl: 0, gpu: 0, bmc_rest: 0 }, minSamples: 30, window: 150 });
  assert.deepEqual(l.hosts(), ['h1', 'h2']);
  for (const h of l.hosts()) {
    const st = l.exportState(h)!;
    assert.equal(st.v, 1);
    assert.equal(st.learner, 'static_power');
    assert.equal(st.recs.length, 150);
    assert.deepStrictEqual(JSON.parse(JSON.stringify(st)), st); // plain JSON: nothing lost in text
    fresh.importState(h, JSON.stringify(st));
    assertSameEstimate(fresh.estimate(h), l.estimate(h));
    assert.equal(fresh.lastSeq(h), l.lastSeq(h));
  }
  assert.match(l.estimate('h1').origin, /^learned:rapl,gpu,bmc_rest$/);
  const more = learnedTwoHosts().ivs.map((x) => ({ ...x, seq: x.seq + 10_000 }));
  for (const x of more.slice(0, 50)) {
    l.observe(x);
    fresh.observe(x);
  }
  // the records and the refresh count equal exactly; the estimate to rounding (computed from recomputed sums)
  const { estimate: fe, ...fRest } = fresh.exportState('h1')!;
  const { estimate: le, ...lRest } = l.exportState('h1')!;
  assert.deepStrictEqual(fRest, lRest);
  assert.equal(fe!.since, le!.since);
  assertSameEstimate({ watts: fe!.watts, origin: fe!.origin }, { watts: le!.watts, origin: le!.origin });
  assertSameEstimate(fresh.estimate('h2'), l.estimate('h2'));
  // a learner configured with another window keeps the newest records and computes the estimate from them
  const small = new StaticPowerLearner({ fallback: { rapl: 0, gpu: 0, bmc_rest: 0 }, minSamples: 30, window: 40 });
  small.importState('h1', l.exportState('h1'));
  const ref = new StaticPowerLearner({ fallback: { rapl: 0, gpu: 0, bmc_rest: 0 }, minSamples: 30, window: 40, refreshEvery: 1 });
  const h1 = [...learnedTwoHosts().ivs, ...more.slice(0, 50)].filter((x) => x.hostId === 'h1');
  for (const x of h1.slice(-40)) ref.observe(x);
  assertSameEstimate(small.estimate('h1'), ref.estimate('h1'));
});

test('state: an interval observed again (redelivered, seq ≤ the host\'s last) changes nothing', () => {
  const { l, ivs } = learnedTwoHosts();
  const before = JSON.stringify(l.exportState('h1'));
  for (const x of ivs.slice(-10)) l.observe(x);
  l.observe(ivs[0]!);
  assert.equal(JSON.stringify(l.exportState('h1')), before);
  assert.equal(l.exportState('nowhere'), undefined);
});

test('state: a corrupted or foreign state is refused with LEARNER_STATE_INVALID naming the field; the host keeps its state', () => {
  const { l } = learnedTwoHosts({ window: 100 });
  const good = JSON.stringify(l.exportState('h1'));
  const before = JSON.stringify(l.exportState('h2'));
  const refuse = (state: unknown, re: RegExp): void => {
    assert.throws(() => l.importState('h2', state), (e: Error) => isWattsplitError(e, 'LEARNER_STATE_INVALID') && re.test(e.message), String(re));
    assert.equal(JSON.stringify(l.exportState('h2')), before);
  };
  const forH2 = good.replace('"hostId":"h1"', '"hostId":"h2"');
  refuse(good.slice(0, 100), /static_power state of host "h2": not valid JSON/);
  refuse(good, /field "hostId" must be "h2" \(the host it is imported for\), got "h1"/);
  refuse(forH2.replace('"v":1', '"v":0'), /field "v" must be 1/);
  refuse(forH2.replace('"learner":"static_power"', '"learner":"gpu_signature"'), /field "learner" must be "static_power", got "gpu_signature"/);
  refuse(forH2.replace(/"busyFrac":[^,]+/, '"busyFrac":"high"'), /field "recs\[0\]\.busyFrac" must be a finite number, got "high"/);
  refuse(forH2.replace(/"anyContext":(true|false)/, '"anyContext":1'), /field "recs\[0\]\.anyContext" must be true or false, got 1/);
  refuse(forH2.replace('"window":100', '"window":50'), /field "recs" must hold at most window=50 records \(has 100\)/);
  refuse(forH2.replace(/"next":\d+/, '"next":100'), /field "next" must be < window=100 for 100 records, got 100/);
  refuse(forH2.replace(/"cores":\[\["a",[^\]]+\]/, '"cores":[["a"]'), /field "recs\[0\]\.cores\[0\]" must have 2 elements \(has 1\)/);
  l.importState('h2', forH2);
  assertSameEstimate(l.estimate('h2'), l.estimate('h1'));
});

test('refresh cadence: the estimate is computed after the 1st and every refreshEvery-th interval, the same as computing after every one at those intervals', () => {
  const every = learnedTwoHosts({ refreshEvery: 1 });
  const r = prng(5);
  const a = new StaticPowerLearner({ fallback: { rapl: 0, gpu: 0, bmc_rest: 0 }, minSamples: 30, refreshEvery: 7 });
  const b = new StaticPowerLearner({ fallback: { rapl: 0, gpu: 0, bmc_rest: 0 }, minSamples: 30, refreshEvery: 1 });
  let last: StaticPowerEstimate | undefined;
  let changes = 0;
  for (let i = 0; i < 120; i++) {
    const x = r();
    const y = iv('h', 0.1 + 0.8 * x, 90 + 70 * x + 3 * r(), 55 + 10 * x, undefined, [vm('a', x * 2)]);
    a.observe(y);
    b.observe(y);
    const got = a.estimate('h');
    if (i % 7 === 0) assert.deepStrictEqual(got, b.estimate('h'), `refreshed after interval ${i + 1}`); // the same records, the same arithmetic
    else assert.deepStrictEqual(got, last, `kept after interval ${i + 1}`);
    if (last && JSON.stringify(got) !== JSON.stringify(last)) changes++;
    last = got;
  }
  assert.equal(a.estimate('h').origin, 'learned:rapl,gpu,bmc_rest');
  assert.ok(changes >= 5, `the estimate moved at refreshes (${changes})`);
  // estimate() hands out a copy
  const e = a.estimate('h');
  e.watts.rapl = -1;
  assert.notEqual(a.estimate('h').watts.rapl, -1);
  assert.equal(every.l.estimate('h1').origin, 'learned:rapl,gpu,bmc_rest');
});

test('refresh cadence survives a restart: export at any interval, import, replay the rest — every estimate equals the uninterrupted learner\'s', () => {
  const { ivs } = learnedTwoHosts();
  const h1 = ivs.filter((x) => x.hostId === 'h1');
  const opts = { fallback: { rapl: 0, gpu: 0, bmc_rest: 0 }, minSamples: 30, window: 60, refreshEvery: 10 };
  const whole = new StaticPowerLearner(opts);
  const want: StaticPowerEstimate[] = [];
  for (const x of h1) {
    whole.observe(x);
    want.push(whole.estimate('h1'));
  }
  for (const cut of [1, 37, 64, 95, 150]) {
    const before = new StaticPowerLearner(opts);
    for (const x of h1.slice(0, cut)) before.observe(x);
    const after = new StaticPowerLearner(opts);
    after.importState('h1', JSON.stringify(before.exportState('h1')));
    assertSameEstimate(after.estimate('h1'), want[cut - 1]!);
    for (let i = cut; i < h1.length; i++) {
      after.observe(h1[i]!);
      assertSameEstimate(after.estimate('h1'), want[i]!);
    }
  }
});

test('refresh cadence: a state saved without an estimate (before 2026-12-06) computes it at import; a bad estimate is refused', () => {
  const { l } = learnedTwoHosts({ window: 100 });
  const { estimate, ...old } = l.exportState('h1')!;
  assert.ok(estimate);
  const fresh = new StaticPowerLearner({ fallback: { rapl: 0, gpu: 0, bmc_rest: 0 }, minSamples: 30, window: 100 });
  fresh.importState('h1', old);
  const ref = new StaticPowerLearner({ fallback: { rapl: 0, gpu: 0, bmc_rest: 0 }, minSamples: 30, window: 100, refreshEvery: 1 });
  ref.importState('h1', old);
  assertSameEstimate(fresh.estimate('h1'), ref.estimate('h1'));
  assert.equal(fresh.exportState('h1')!.estimate!.since, 0);
  const good = JSON.stringify(l.exportState('h1'));
  for (const [bad, re] of [
    [good.replace(/"since":\d+/, '"since":-1'), /field "estimate\.since" must be ≥ 0, got -1/],
    [good.replace(/"estimate":\{"watts":\{"rapl":[^,]+/, '"estimate":{"watts":{"rapl":"x"'), /field "estimate\.watts\.rapl" must be a finite number, got "x"/],
    [good.replace(/"origin":"[^"]*"/, '"origin":3'), /field "estimate\.origin" must be a string, got 3/],
  ] as const) {
    assert.throws(() => fresh.importState('h1', bad), (e: Error) => isWattsplitError(e, 'LEARNER_STATE_INVALID') && re.test(e.message), String(re));
  }
});

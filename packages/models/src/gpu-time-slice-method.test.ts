import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkConservation, type AttributionContext, type GpuInterval, type HostInterval } from '@wattsplit/attribution';
import { GpuSignatureLearner, GpuTimeSliceMethod, alignedWindow, boundaryAlignedWindow, deviceBusyFraction, type GpuPendingWindow } from './index.js';
import { laggedSlicedIntervals, synthHost } from './test-hosts.js';

const ctx: AttributionContext = { policy: 'equal', staticPower: { watts: { rapl: 123, gpu: 150, bmc_rest: 42 }, origin: 'configured' } };

test('time-sliced GPU: each VM\'s dynamic GPU energy within 3 % of truth after warm-up (SM-time share is far off); passthrough goes whole to its VM', () => {
  const { intervals, truthGpu } = synthHost({ seed: 21, seconds: 1500, gpu: { dynW: [560, 300], idleW: 130, passthroughW: 400 } });
  const m = new GpuTimeSliceMethod({ minWindows: 100 });
  const got: Record<string, number> = {};
  const base: Record<string, number> = {};
  const truth: Record<string, number> = {};
  intervals.forEach((iv, i) => {
    // causal: each interval is split with what the learner saw before it, then observed
    const r = m.attribute(iv, ctx);
    m.observe(iv);
    assert.deepEqual(checkConservation(r), []);
    if (i < 100) {
      assert.match(r.note, /gpu 0000:17:00\.0: warming up/);
      return;
    }
    assert.equal(r.note, '');
    const a = iv.vms[0]!.gpus[0]!.smUtilPct;
    const b = iv.vms[1]!.gpus[0]!.smUtilPct;
    const dyn = iv.gpus[0]!.joules - (m.fitOf('h1', '0000:17:00.0')!.staticW * iv.durationS);
    for (const s of r.shares) if (s.source === 'gpu' && (s.vmUuid === 'vm-0' || s.vmUuid === 'vm-1')) got[s.vmUuid] = (got[s.vmUuid] ?? 0) + s.dynamicJoules;
    if (a + b > 0) {
      base['vm-0'] = (base['vm-0'] ?? 0) + (dyn * a) / (a + b);
      base['vm-1'] = (base['vm-1'] ?? 0) + (dyn * b) / (a + b);
    }
    // passthrough: the whole device to vm-2
    const vm2 = r.shares.filter((s) => s.source === 'gpu' && s.vmUuid === 'vm-2').reduce((x, s) => x + s.dynamicJoules + s.staticJoules, 0);
    assert.ok(Math.abs(vm2 - 400) < 1e-6, `vm-2 got ${vm2}`);
  });
  for (const k of ['vm-0', 'vm-1']) truth[k] = truthGpu[k]!;
  const fit = m.fitOf('h1', '0000:17:00.0')!;
  assert.ok(Math.abs(fit.staticW - 130) < 5, `static ${fit.staticW}`);
  assert.ok(Math.abs(fit.signatures['vm-0']! - 560 / 0.99) / (560 / 0.99) < 0.03, JSON.stringify(fit.signatures));
  assert.ok(Math.abs(fit.signatures['vm-1']! - 300 / 0.99) / (300 / 0.99) < 0.03, JSON.stringify(fit.signatures));
  const ratioGot = got['vm-0']! / (got['vm-0']! + got['vm-1']!);
  const ratioBase = base['vm-0']! / (base['vm-0']! + base['vm-1']!);
  const ratioTrue = truth['vm-0']! / (truth['vm-0']! + truth['vm-1']!);
  assert.ok(Math.abs(ratioGot / ratioTrue - 1) < 0.03, `model ${ratioGot} vs true ${ratioTrue}`);
  assert.ok(Math.abs(ratioBase / ratioTrue - 1) > 0.05, `baseline ${ratioBase} vs true ${ratioTrue}`);
});

test('a host without GPUs passes the base method through, named gpu_signature', () => {
  const { intervals } = synthHost({ seed: 1, seconds: 2 });
  const r = new GpuTimeSliceMethod().attribute(intervals[0]!, ctx);
  assert.equal(r.method, 'gpu_signature');
  assert.equal(r.modelVersion, 'cpu_share:1');
  assert.deepEqual(checkConservation(r), []);
});

test('the device\'s busy fraction: the mean of its utilisation samples when the interval has any, else the closing point read', () => {
  const g: GpuInterval = { device: 'd', joules: 1, contexts: 1, meanPowerW: 1, gpuUtilPct: 100, memUtilPct: 0, smClockMhz: 0 };
  assert.equal(deviceBusyFraction(g), 1);
  assert.equal(deviceBusyFraction({ ...g, gpuUtilMeanPct: 37.5, gpuUtilSamples: 6 }), 0.375);
  assert.equal(deviceBusyFraction({ ...g, gpuUtilMeanPct: 37.5, gpuUtilSamples: 0 }), 1, 'no samples: the point read');
  assert.equal(deviceBusyFraction({ ...g, gpuUtilMeanPct: Number.NaN, gpuUtilSamples: 3 }), 1);
  assert.equal(deviceBusyFraction({ ...g, gpuUtilPct: 140 }), 1);
  assert.equal(deviceBusyFraction({ ...g, gpuUtilMeanPct: -5, gpuUtilSamples: 2 }), 0);
});

/**
 * A time-sliced GPU whose two VMs are each busy a varying part of every 1 s interval: the energy is
 * 100 W static + 500 W × busy(a) + 250 W × busy(b). The closing utilisation read is one driver sample
 * (100 % or 0 % as the GPU happened to be busy at that instant); the interval's mean over its samples is the
 * busy fraction. Process samples split the busy time in proportion.
 */
function slicedIntervals(n: number, withMean: boolean): { ivs: HostInterval[]; truth: Array<{ a: number; b: number }> } {
  let x = 12345;
  const r = (): number => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648;
  const truth: Array<{ a: number; b: number }> = [];
  const ivs: HostInterval[] = [];
  for (let i = 0; i < n; i++) {
    const ba = 0.5 * r();
    const bb = 0.5 * r();
    const busy = ba + bb;
    truth.push({ a: 500 * ba, b: 250 * bb });
    const joules = 100 + 500 * ba + 250 * bb;
    const point = r() < busy ? 100 : 0;
    const vm = (uuid: string, b: number): HostInterval['vms'][number] => ({
      uuid, name: uuid, tenant: uuid, vcpus: 1, memoryBytes: 0, cpuSeconds: 0, vcpuSeconds: [0], memoryUsedBytes: 0, blockReadBytes: 0, blockWriteBytes: 0, netRxBytes: 0, netTxBytes: 0,
      gpus: [{ device: 'g', smUtilPct: 99, memUtilPct: 0, utilSamples: Math.max(1, Math.round((1000 * b) / busy)), usedMemoryBytes: 1e9, holdsContext: true, passthrough: false }],
      presence: 1, state: 'running',
    });
    ivs.push({
      hostId: 'h', hardwareClass: 'c', seq: i + 1, prevSeq: i, t0UnixNs: i * 1e9, t1UnixNs: (i + 1) * 1e9, durationS: 1,
      measured: { rapl: 0, gpu: joules, bmc_rest: 0 }, raplZones: {},
      gpus: [{ device: 'g', joules, contexts: 2, meanPowerW: joules, gpuUtilPct: point, ...(withMean ? { gpuUtilMeanPct: 100 * busy, gpuUtilSamples: 6 } : {}), memUtilPct: 0, smClockMhz: 1980 }],
      hostCpu: { busySeconds: 0, idleSeconds: 0, onlineCpus: 1, avgFreqMhz: 0 },
      vms: [vm('a', ba), vm('b', bb)],
      anomalies: [],
    });
  }
  return { ivs, truth };
}

test('GpuTimeSliceMethod uses the interval\'s mean device utilisation: signatures and bills within 2 %; from the closing point read alone they are far off', () => {
  const warm = 200;
  const run = (withMean: boolean): { sig: Record<string, number>; err: { a: number; b: number } } => {
    const { ivs, truth } = slicedIntervals(1200, withMean);
    const m = new GpuTimeSliceMethod({ minWindows: warm });
    const got = { a: 0, b: 0 };
    const want = { a: 0, b: 0 };
    ivs.forEach((iv, i) => {
      // causal: split with what was learned before, then observed
      const res = m.attribute(iv, ctx);
      m.observe(iv);
      assert.deepEqual(checkConservation(res), []);
      if (i < warm) return;
      want.a += truth[i]!.a;
      want.b += truth[i]!.b;
      for (const s of res.shares) if (s.source === 'gpu' && (s.vmUuid === 'a' || s.vmUuid === 'b')) got[s.vmUuid] += s.dynamicJoules;
    });
    return { sig: m.fitOf('h', 'g')!.signatures, err: { a: got.a / want.a - 1, b: got.b / want.b - 1 } };
  };
  const mean = run(true);
  const point = run(false);
  const show = JSON.stringify({ mean, point });
  assert.ok(Math.abs(mean.sig.a! / 500 - 1) < 0.02 && Math.abs(mean.sig.b! / 250 - 1) < 0.02, show);
  assert.ok(Math.abs(mean.err.a) < 0.02 && Math.abs(mean.err.b) < 0.02, show);
  assert.ok(Math.max(Math.abs(point.err.a), Math.abs(point.err.b)) > 5 * Math.max(Math.abs(mean.err.a), Math.abs(mean.err.b)), show);
});

test('GpuTimeSliceMethod learns the utilisation\'s lag behind the energy from the intervals (0, 0.15, 0.3 s) and aligns the learner\'s windows: the static power is closer to the truth aligned', () => {
  for (const lag of [0, 0.15, 0.3]) {
    const { ivs } = laggedSlicedIntervals(7, 900, lag);
    const est = new GpuTimeSliceMethod({ minWindows: 30 });
    const asRead = new GpuTimeSliceMethod({ minWindows: 30, utilLagS: 0 });
    for (const iv of ivs) {
      est.observe(iv);
      asRead.observe(iv);
    }
    const byInterval = new GpuTimeSliceMethod({ minWindows: 30, utilAlignment: 'interval' });
    for (const iv of ivs) byInterval.observe(iv);
    const got = est.utilLagOf('h', 'g')!;
    assert.ok(Math.abs(got - lag) <= 0.03, `lag ${lag}: estimated ${got}`); // measured 0.015, 0.155, 0.295
    const fe = est.fitOf('h', 'g')!;
    const fr = asRead.fitOf('h', 'g')!;
    const fi = byInterval.fitOf('h', 'g')!;
    const show = `lag ${lag}: static ${fe.staticW} aligned at the boundaries, ${fi.staticW} over the interval, ${fr.staticW} as read (truth 130)`;
    // measured 130.7 / 130.1 / 130.9 (lag 0), 134.6 / 139.0 / 158.1 (0.15), 141.1 / 144.6 / 176.1 (0.3): slots as
    // short as 0.3 s put a switch within a driver period and τ of many boundaries, where neither alignment is exact
    if (lag === 0) assert.ok(Math.abs(fe.staticW - 130) < 2, show);
    else {
      assert.ok(Math.abs(fe.staticW - 130) < 0.5 * Math.abs(fr.staticW - 130), show);
      assert.ok(Math.abs(fe.staticW - 130) < Math.abs(fi.staticW - 130), show);
    }
    // the learner is one interval behind: the last interval waits for the next one's utilisation
    assert.equal(fe.windows, ivs.length - 1);
  }
});

test('GpuTimeSliceMethod on a time-sliced GPU whose utilisation lags 0.2 s: causal bills of the busy VMs within 3 % aligned, over twice as far off as read; an interval before a gap is learned as reported', () => {
  const { ivs, truth } = laggedSlicedIntervals(11, 1500, 0.2);
  const head = laggedSlicedIntervals(11, 300, 0.2).truth;
  const run = (opts: { utilLagS?: number; utilAlignment?: 'boundary' | 'interval' }): Record<string, number> => {
    const m = new GpuTimeSliceMethod({ minWindows: 60, ...opts });
    const got: Record<string, number> = { a: 0, b: 0, c: 0 };
    ivs.forEach((iv, i) => {
      const res = m.attribute(iv, ctx);
      m.observe(iv);
      assert.deepEqual(checkConservation(res), []);
      if (i < 300) return;
      for (const s of res.shares) if (s.source === 'gpu' && s.vmUuid in got) got[s.vmUuid] = got[s.vmUuid]! + s.dynamicJoules;
    });
    // truth over the scored intervals: the whole run's minus the first 300 intervals'
    return Object.fromEntries(Object.keys(got).map((k) => [k, got[k]! / (truth[k]! - head[k]!) - 1]));
  };
  const aligned = run({});
  const byInterval = run({ utilAlignment: 'interval' });
  const asRead = run({ utilLagS: 0 });
  const show = JSON.stringify({ aligned, byInterval, asRead });
  // measured: aligned at the boundaries a −1.3 %, b −2.0 %, c −23 %; over the interval −1.5 %, −2.3 %, −36 %;
  // as read −6.9 %, −10.2 %, −88 %
  for (const k of ['a', 'b']) {
    assert.ok(Math.abs(aligned[k]!) < 0.03, show);
    assert.ok(Math.abs(asRead[k]!) > 2 * Math.abs(aligned[k]!), show);
  }
  // the light VM (8 % duty) stays under-billed (a switch within τ + 0.1 s of a boundary every few intervals;
  // see docs/accuracy-gpu.md), less so aligned at the boundaries than over the interval
  assert.ok(Math.abs(aligned.c!) < Math.abs(byInterval.c!), show);
  assert.ok(Math.abs(aligned.c!) < Math.abs(asRead.c!), show);
  // a gap: the interval before it is learned with its own utilisation, not the next one's
  const g = new GpuTimeSliceMethod({ minWindows: 1 });
  g.observe(ivs[0]!);
  g.observe(ivs[1]!);
  g.observe({ ...ivs[5]!, seq: 3, prevSeq: 2 });
  const st = g.exportState('h')!;
  assert.equal(st.devices[0]!.lag!.n, 1, 'one contiguous pair');
  assert.equal(st.devices[0]!.pending!.seq, 3);
  assert.equal(g.fitOf('h', 'g')!.windows, 2);
});

test('GpuTimeSliceMethod weighs a window by its sampling noise only where the split is a draw (no more process samples than driver periods)', () => {
  const { ivs } = laggedSlicedIntervals(5, 3, 0);
  const iv = ivs[1]!;
  const pendingSamples = (x: HostInterval): number | undefined => {
    const m = new GpuTimeSliceMethod();
    m.observe(x);
    return m.exportState('h')!.devices[0]!.pending!.samples;
  };
  const n = iv.vms.reduce((a, v) => a + (v.gpus[0]!.smUtilPct > 0 ? v.gpus[0]!.utilSamples : 0), 0);
  assert.ok(n > 0 && n <= 10);
  // time-slicing: each of the 10 driver periods names at most one process
  assert.equal(pendingSamples(iv), n);
  // every process sampled every period (MPS, the simulator): the split is measured, not drawn
  const every: HostInterval = { ...iv, vms: iv.vms.map((v) => ({ ...v, gpus: [{ ...v.gpus[0]!, smUtilPct: 40, utilSamples: 10 }] })) };
  assert.equal(pendingSamples(every), undefined);
  // no device samples to count periods by: the count is taken as draws
  const { gpuUtilMeanPct: _m, gpuUtilSamples: _n, ...g } = every.gpus[0]!;
  assert.equal(pendingSamples({ ...every, gpus: [g] }), 30);
});

test('boundary alignment: where every switch falls half-way through an interval, the busy time aligned with the closing reads is right — static power within 1 W, busy VMs\' bills within 1 % at a 0.15 s lag, the light VM within 5 %; the interval alignment is four times further off', () => {
  const { ivs, truth } = laggedSlicedIntervals(9, 1200, 0.15, { midSwitch: true });
  const head = laggedSlicedIntervals(9, 200, 0.15, { midSwitch: true }).truth;
  const run = (opts: { utilAlignment?: 'boundary' | 'interval' }): { staticW: number; sig: Record<string, number>; err: Record<string, number> } => {
    const m = new GpuTimeSliceMethod({ minWindows: 60, utilLagS: 0.15, ...opts });
    const got: Record<string, number> = { a: 0, b: 0, c: 0 };
    ivs.forEach((iv, i) => {
      const res = m.attribute(iv, ctx);
      m.observe(iv);
      if (i < 200) return;
      for (const s of res.shares) if (s.source === 'gpu' && s.vmUuid in got) got[s.vmUuid] = got[s.vmUuid]! + s.dynamicJoules;
    });
    const f = m.fitOf('h', 'g')!;
    return { staticW: f.staticW, sig: f.signatures, err: Object.fromEntries(Object.keys(got).map((k) => [k, got[k]! / (truth[k]! - head[k]!) - 1])) };
  };
  const b = run({});
  const i = run({ utilAlignment: 'interval' });
  const show = JSON.stringify({ boundary: b, interval: i });
  // measured: boundary static 130.7 W, bills a/b within 0.1 %, c −2.7 % (its signature 485 W, shrunk towards the
  // pooled one: it is busy 8 % of its slots); interval 138.8 W, a −1.2 %, b −2.0 %, c −24 %
  assert.ok(Math.abs(b.staticW - 130) < 1, show);
  for (const [k, w] of Object.entries({ a: 560, b: 380 })) assert.ok(Math.abs(b.sig[k]! / w - 1) < 0.02, show);
  for (const k of ['a', 'b']) assert.ok(Math.abs(b.err[k]!) < 0.01, show);
  assert.ok(Math.abs(b.err.c!) < 0.05, show);
  assert.ok(Math.abs(i.staticW - 130) > 4 * Math.abs(b.staticW - 130), show);
  assert.ok(Math.abs(i.err.c!) > 4 * Math.abs(b.err.c!), show);
});

test('boundary alignment: at a switch just after an interval\'s end the aligned busy time is at least 2.5× closer than the interval alignment (3.0× measured) and carries a variance of the size of its error; steady windows carry none', () => {
  // busy 100 % until t = 5 s, idle after; utilisation lags 0.15 s and is sampled every 0.1 s (ten per interval):
  // interval 4 = (4, 5] reports mean 100 %, closing read 100 %; interval 5 = (5, 6] reports mean 15 %, closing 0 %
  const win = (busy: number, point: number, prevPoint: number): GpuPendingWindow & { point: number; prevPoint: number } => ({
    seq: 1, t1UnixNs: 0, busy, point, prevPoint, utilSamples: 10, shares: { a: 1 },
    window: { durationS: 1, joules: 0, activity: { a: busy }, contexts: {}, samples: 5 },
  });
  const U = (w: { activity: Record<string, number> }): number => w.activity.a ?? 0;
  // steady: exact, no variance
  const steady = boundaryAlignedWindow(win(1, 1, 1), 1, 0.15);
  assert.equal(U(steady), 1);
  assert.equal(steady.busyVarS2, undefined);
  // a lag longer than the interval is capped at dt, as alignedWindow caps it: the estimate does not reach past the next interval
  // (60 % busy, then 20 %: U = 0.6 − 0.9·0.4 = 0.24 busy-seconds; uncapped, 0.6 − 1.4·0.4 = 0.04)
  const longLag = boundaryAlignedWindow(win(0.6, 0.6, 0.6), 0.2, 1.5);
  assert.deepStrictEqual(longLag, boundaryAlignedWindow(win(0.6, 0.6, 0.6), 0.2, 1));
  assert.ok(Math.abs(U(longLag) - 0.24) < 1e-12 && longLag.busyVarS2! > 0, JSON.stringify(longLag));
  for (const [w, next, truth] of [[win(1, 1, 1), 0.15, 1], [win(0.15, 0, 1), 0, 0]] as const) {
    const b = boundaryAlignedWindow(w, next, 0.15);
    const i = alignedWindow(w, next, 0.15);
    const show = JSON.stringify({ boundary: b, interval: i, truth });
    // measured: boundary 0.9575 and 0.0425 (error 0.0425 s), interval 0.8725 and 0.1275 (0.1275 s)
    assert.ok(Math.abs(U(b) - truth) < Math.abs(U(i) - truth) / 2.5, show);
    // the variance's standard deviation (0.035 s) is of the size of the error
    assert.ok(b.busyVarS2! > 0 && Math.sqrt(b.busyVarS2!) > 0.5 * Math.abs(U(b) - truth) && Math.sqrt(b.busyVarS2!) < 2 * Math.abs(U(b) - truth), show);
  }
});

test('GpuSignatureLearner: windows aligned at the boundaries on a lagged time-sliced GPU carry busyVarS2 where a switch is near a boundary, and weighing by it brings the static power and the light VM closer than the same windows without it', () => {
  // the windows the collector path learns (boundaryAlignedWindow on contiguous intervals, 0.15 s lag), built here
  // from the synthetic intervals as deviceObservation builds them: busy = the interval's mean, shares = SM × samples
  const { ivs } = laggedSlicedIntervals(5, 900, 0.15);
  const pending = ivs.map((iv): GpuPendingWindow & { point: number } => {
    const g = iv.gpus[0]!;
    const weight: Record<string, number> = {};
    let tot = 0;
    let samples = 0;
    for (const v of iv.vms) {
      const vg = v.gpus[0]!;
      if (vg.smUtilPct > 0) {
        weight[v.uuid] = vg.smUtilPct * vg.utilSamples;
        tot += weight[v.uuid]!;
        samples += vg.utilSamples;
      }
    }
    const busy = g.gpuUtilMeanPct! / 100;
    const shares = Object.fromEntries(Object.entries(weight).map(([k, x]) => [k, x / tot]));
    const activity = busy > 0 ? Object.fromEntries(Object.entries(shares).map(([k, f]) => [k, busy * iv.durationS * f])) : {};
    return { seq: iv.seq, t1UnixNs: iv.t1UnixNs, busy, point: g.gpuUtilPct / 100, utilSamples: g.gpuUtilSamples!, shares, window: { durationS: iv.durationS, joules: g.joules, activity, contexts: {}, ...(samples > 0 ? { samples } : {}) } };
  });
  const windows = pending.slice(1, -1).map((p, i) => boundaryAlignedWindow({ ...p, prevPoint: pending[i]!.point }, pending[i + 2]!.busy, 0.15));
  const uncertain = windows.filter((w) => (w.busyVarS2 ?? 0) > 0).length;
  assert.ok(uncertain > 0.5 * windows.length && uncertain < windows.length, `${uncertain} of ${windows.length} windows carry a busy-time variance`);
  const fit = (withVar: boolean): { staticW: number; a: number; b: number; c: number } => {
    const l = new GpuSignatureLearner();
    for (const w of windows) {
      const { busyVarS2: _v, ...plain } = w;
      l.observe(withVar ? w : plain);
    }
    const f = l.fit();
    return { staticW: f.staticW, a: f.signatures.a!, b: f.signatures.b!, c: f.signatures.c! };
  };
  const w = fit(true);
  const u = fit(false);
  const show = JSON.stringify({ weighted: w, without: u, truth: { staticW: 130, a: 560, b: 380, c: 520 } });
  // measured: static 135.1 vs 137.6 W; a −0.6 vs −1.0 %, b −0.9 vs −1.4 %, light c −23 vs −31 %
  assert.ok(Math.abs(w.staticW - 130) < 0.8 * Math.abs(u.staticW - 130), show);
  assert.ok(Math.abs(w.c / 520 - 1) < 0.85 * Math.abs(u.c / 520 - 1), show);
  for (const [k, truth] of [['a', 560], ['b', 380]] as const) assert.ok(Math.abs(w[k] / truth - 1) < 0.02, show);
});

test('GpuSignatureLearner.staticEstimate: idle windows determine the static power (small standard error); windows all equally busy do not', () => {
  const idle = new GpuSignatureLearner();
  for (let i = 0; i < 30; i++) idle.observe({ durationS: 1, joules: 130 + (i % 3) - 1, activity: {}, contexts: {} });
  for (let i = 0; i < 10; i++) idle.observe({ durationS: 1, joules: 130 + 550 * 0.99, activity: { a: 0.99 }, contexts: {} });
  const e = idle.staticEstimate()!;
  assert.ok(Math.abs(e.staticW - 130) < 1 && e.stdErrW < 0.5, JSON.stringify(e));
  const busy = new GpuSignatureLearner();
  for (let i = 0; i < 40; i++) busy.observe({ durationS: 1, joules: 130 + 550 * 0.99 + (i % 3) - 1, activity: { a: 0.99 }, contexts: {} });
  const b = busy.staticEstimate();
  assert.ok(b === undefined || b.stdErrW > 0.05 * b.staticW, JSON.stringify(b));
  assert.equal(new GpuSignatureLearner().staticEstimate(), undefined);
});

test('GpuTimeSliceMethod warming up: the static power is the learner\'s once determined (idle intervals), not the configured one; `warmupStatic: configured` keeps the configured one', () => {
  const { ivs } = laggedSlicedIntervals(4, 80, 0);
  // idle intervals first (nobody owns the GPU), then whatever comes
  const idle = ivs.map((iv) => ({ ...iv, measured: { ...iv.measured, gpu: 130 }, gpus: [{ ...iv.gpus[0]!, joules: 130, gpuUtilPct: 0, gpuUtilMeanPct: 0 }], vms: iv.vms.map((v) => ({ ...v, gpus: [{ ...v.gpus[0]!, smUtilPct: 0, utilSamples: 0 }] })) }));
  const seq = [...idle.slice(0, 20), ...ivs.slice(20)].map((iv, i) => ({ ...iv, seq: i + 1, prevSeq: i }));
  const zero: AttributionContext = { policy: 'equal', staticPower: { watts: { rapl: 0, gpu: 0, bmc_rest: 0 }, origin: 'configured' } };
  const dynamicOf = (m: GpuTimeSliceMethod, iv: HostInterval): { dyn: number; note: string } => {
    const r = m.attribute(iv, zero);
    return { dyn: r.shares.filter((s) => s.source === 'gpu').reduce((a, s) => a + s.dynamicJoules, 0), note: r.note };
  };
  const learned = new GpuTimeSliceMethod({ minWindows: 1000 });
  const configured = new GpuTimeSliceMethod({ minWindows: 1000, warmupStatic: 'configured' });
  for (const iv of seq.slice(0, 20)) {
    learned.observe(iv);
    configured.observe(iv);
  }
  const busy = seq.slice(20).find((iv) => iv.gpus[0]!.joules > 200)!;
  const l = dynamicOf(learned, busy);
  const c = dynamicOf(configured, busy);
  assert.match(l.note, /warming up \(20\/1000 intervals\), split by SM utilisation, learned static 130\.0 W/);
  assert.ok(Math.abs(l.dyn - (busy.gpus[0]!.joules - 130)) < 0.5, JSON.stringify(l));
  assert.match(c.note, /configured static/);
  assert.ok(Math.abs(c.dyn - busy.gpus[0]!.joules) < 1e-9, JSON.stringify(c));
});

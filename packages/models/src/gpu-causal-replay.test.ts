import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mulberry32 } from '@wattsplit/attribution';
import { parseNvmlTrace } from '@wattsplit/wire';
import { GpuSignatureLearner, GpuTimeSliceMethod, gpuCausalReplay, gpuReplay, gpuUtilLagReads, type GpuReplayResult } from './index.js';
import {
  dropReads,
  formatRawNvmlTrace,
  gpuTraceReference,
  nvmlTraceHostIntervals,
  parseRawNvmlTrace,
  renameTenants,
  replayDynamicOverMix,
  resampleMixSchedule,
  withoutPhases,
  type GpuReference,
  type RawNvmlTrace,
} from './scoring.js';

/**
 * A synthetic time-sliced GPU whose schedule changes every `segmentS` seconds: each 0.2 s NVML sample slot
 * (two 0.1 s reads) goes to one active tenant (round robin), which draws its own dynamic power in the slot;
 * gpu_util is 100 while anyone runs. Truth: each tenant's dynamic energy.
 */
function segmentedTrace(opts: { seed: number; dynW: Record<string, number>; idleW: number; seconds: number; segmentS: number }): { text: string; truth: Record<string, number> } {
  const r = mulberry32(opts.seed);
  const tenants = Object.keys(opts.dynW);
  const pids = Object.fromEntries(tenants.map((t, i) => [String(2000 + i), t]));
  const lines = [JSON.stringify({ header: true, gpu: 'Synthetic', driver: '0', tenants, pids, seed: opts.seed, schedule: [], sample_hz: 10 })];
  const truth: Record<string, number> = Object.fromEntries(tenants.map((t) => [t, 0]));
  const perSeg = Math.max(2, Math.round(opts.segmentS / 0.1));
  let e = 9_000_000;
  let on: string[] = [];
  let who: string | undefined;
  let rr = 0;
  for (let i = 0; i <= opts.seconds * 10; i++) {
    const t = 2_000_000 + i * 0.1;
    const proc: unknown[] = [];
    if (i > 0) {
      const dyn = who !== undefined ? opts.dynW[who]! * 0.1 : 0;
      if (who !== undefined) truth[who] = truth[who]! + dyn;
      e += Math.round((opts.idleW * 0.1 + dyn) * 1000);
      if (i % 2 === 0 && who !== undefined) proc.push({ pid: 2000 + tenants.indexOf(who), sm: 99, mem: 20, enc: 0, dec: 0, ts: Math.round((t - 0.01) * 1e6) });
    }
    lines.push(JSON.stringify({ t, phase: 'mix', active: [...on].sort(), energy_mj: e, power_mw: 0, gpu_util: who !== undefined ? 100 : 0, mem_util: 10, sm_clock_mhz: 1980, mem_clock_mhz: 2619, temp_c: 50, proc_util: proc, running: tenants.map((x) => ({ pid: 2000 + tenants.indexOf(x), used_mem: 1e9 })), work: {} }));
    if (i % perSeg === 0) on = tenants.filter(() => r() < 0.5);
    if (i % 2 === 0) who = on.length ? on[rr++ % on.length] : undefined;
  }
  return { text: lines.join('\n') + '\n', truth };
}

/**
 * A time-sliced GPU where each 0.1 s read's holder is drawn at random among the active tenants (so the NVML
 * samples, one per 0.2 s naming the holder of one read of the two, are a noisy split), and gpu_util reports the
 * busy state `utilLag` reads late (a fractional lag averages the two reads around it), as NVML's utilisation
 * over a past sample period does. Truth: each tenant's dynamic energy.
 */
function randomSlicedTrace(opts: { seed: number; dynW: Record<string, number>; idleW: number; seconds: number; segmentS: number; utilLag?: number }): { text: string; truth: Record<string, number> } {
  const r = mulberry32(opts.seed);
  const tenants = Object.keys(opts.dynW);
  const pids = Object.fromEntries(tenants.map((t, i) => [String(3000 + i), t]));
  const lines = [JSON.stringify({ header: true, gpu: 'Synthetic', driver: '0', tenants, pids, seed: opts.seed, schedule: [], sample_hz: 10 })];
  const truth: Record<string, number> = Object.fromEntries(tenants.map((t) => [t, 0]));
  const perSeg = Math.max(1, Math.round(opts.segmentS / 0.1));
  const n = opts.seconds * 10;
  const holder: Array<string | undefined> = [];
  let on: string[] = [];
  for (let i = 0; i <= n; i++) {
    if (i % perSeg === 0) on = tenants.filter(() => r() < 0.5);
    holder.push(on.length ? on[Math.floor(r() * on.length)] : undefined);
  }
  const lag = opts.utilLag ?? 0;
  const busyAt = (k: number): number => (k >= 0 && holder[k] !== undefined ? 100 : 0);
  let e = 5_000_000;
  for (let i = 0; i <= n; i++) {
    const t = 1_000_000 + i * 0.1;
    const proc: unknown[] = [];
    const who = i > 0 ? holder[i - 1] : undefined; // held the GPU over (i − 1, i]
    if (i > 0) {
      const dyn = who !== undefined ? opts.dynW[who]! * 0.1 : 0;
      if (who !== undefined) truth[who] = truth[who]! + dyn;
      e += Math.round((opts.idleW * 0.1 + dyn) * 1000);
      if (i % 2 === 0 && who !== undefined) proc.push({ pid: 3000 + tenants.indexOf(who), sm: 99, mem: 20, enc: 0, dec: 0, ts: Math.round((t - 0.01) * 1e6) });
    }
    const k = i - 1 - Math.floor(lag);
    const f = lag - Math.floor(lag);
    const util = i > 0 ? (1 - f) * busyAt(k) + f * busyAt(k - 1) : 0;
    lines.push(JSON.stringify({ t, phase: 'mix', active: [], energy_mj: e, power_mw: 0, gpu_util: Math.round(util), mem_util: 10, sm_clock_mhz: 1980, mem_clock_mhz: 2619, temp_c: 50, proc_util: proc, running: tenants.map((x) => ({ pid: 3000 + tenants.indexOf(x), used_mem: 1e9 })), work: {} }));
  }
  return { text: lines.join('\n') + '\n', truth };
}

test('gpu_util lag behind the energy counter: estimated from the reads (0, 1, 1.5 and 2 reads recovered); aligned, the static power is right, read as is it is not', () => {
  const dynW = { big: 560, mem: 390, small: 150 };
  const sum = (r: GpuReplayResult): number => Object.values(r.tenants).reduce((a, x) => a + x.dynamic_joules, 0);
  for (const utilLag of [0, 1, 1.5, 2]) {
    const { text, truth } = randomSlicedTrace({ seed: 9, dynW, idleW: 130, seconds: 300, segmentS: 2, utilLag });
    assert.equal(gpuUtilLagReads(parseNvmlTrace(text)), utilLag, `lag ${utilLag}`);
    // a fractional lag smears busy time over two reads in this synthetic trace: only its estimate is checked
    if (utilLag === 1.5) continue;
    // with the lag known, the fit is exact; estimated as the replay goes (the default), the first reads'
    // estimates wobble by a quarter read and leave about 2 W in the static power (no forgetting in a replay)
    const known = gpuCausalReplay(text, { utilLagReads: utilLag });
    assert.ok(Math.abs(known.model.static_w - 130) < 0.5, `lag ${utilLag}: static ${known.model.static_w} W with the lag known`);
    const aligned = gpuCausalReplay(text);
    assert.ok(Math.abs(aligned.model.static_w - 130) < 3, `lag ${utilLag}: static ${aligned.model.static_w} W aligned`);
    for (const t of Object.keys(dynW)) assert.ok(Math.abs(aligned.model.signatures_w[t]! / dynW[t as keyof typeof dynW] - 1) < 0.1, `lag ${utilLag}, ${t}: ${aligned.model.signatures_w[t]} W`);
    const tot = Object.values(truth).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum(known) / tot - 1) < 0.01, `lag ${utilLag}: dynamic ${sum(known)} vs ${tot} J with the lag known`);
    assert.ok(Math.abs(sum(aligned) / tot - 1) < 0.03, `lag ${utilLag}: dynamic ${sum(aligned)} vs ${tot} J aligned`);
    if (utilLag >= 1) {
      // read as is, busy time lands in the wrong reads: energy without activity goes into the static power
      const asRead = gpuCausalReplay(text, { utilLagReads: 0 });
      assert.ok(Math.abs(asRead.model.static_w - 130) > 3 * Math.abs(aligned.model.static_w - 130) + 1, `lag ${utilLag}: static ${asRead.model.static_w} W as read vs ${aligned.model.static_w} W aligned`);
    }
  }
  // a device that never reports utilisation has no lag to estimate
  const { text } = randomSlicedTrace({ seed: 9, dynW, idleW: 130, seconds: 60, segmentS: 2 });
  assert.equal(gpuUtilLagReads(parseNvmlTrace(text.replace(/"gpu_util": ?100/g, '"gpu_util": 0'))), 0);
});

test('causal replay with a lagged gpu_util: the lag is estimated from the reads before each one (truncating the trace changes no earlier interval)', () => {
  const { text } = randomSlicedTrace({ seed: 5, dynW: { a: 520, b: 260 }, idleW: 120, seconds: 240, segmentS: 3, utilLag: 1 });
  const lines = text.trim().split('\n');
  const full = gpuCausalReplay(text);
  const cut = gpuCausalReplay(lines.slice(0, 1 + 1200).join('\n'));
  assert.ok(cut.windows.length > 100);
  // the cut run's last intervals read gpu_util past their end, which the cut removed: compare all but those
  for (let i = 0; i < cut.windows.length - 3; i++) assert.deepStrictEqual(full.windows[i], cut.windows[i], `interval ${i}`);
});

test('sample weighting: windows whose split comes from few NVML samples weigh less, and the signatures come closer to the truth than without (five seeds)', () => {
  const dynW = { big: 560, mem: 390, small: 150 };
  let plainErr = 0;
  let weightedErr = 0;
  for (const seed of [1, 2, 3, 4, 5]) {
    const { text } = randomSlicedTrace({ seed, dynW, idleW: 130, seconds: 600, segmentS: 2 });
    const sigErr = (r: GpuReplayResult): number => Object.entries(dynW).reduce((a, [t, w]) => a + Math.abs(r.model.signatures_w[t]! / w - 1), 0);
    const plain = sigErr(gpuCausalReplay(text, { learner: { sampleWeighting: false } }));
    const weighted = sigErr(gpuCausalReplay(text));
    assert.ok(weighted < plain, `seed ${seed}: Σ|signature error| ${weighted.toFixed(3)} weighted vs ${plain.toFixed(3)} plain`);
    plainErr += plain;
    weightedErr += weighted;
  }
  assert.ok(weightedErr < 0.8 * plainErr, `Σ|signature error| ${weightedErr.toFixed(3)} weighted vs ${plainErr.toFixed(3)} plain`);
});

test('causal replay: each interval is split only with what came before it (truncating the trace changes no earlier interval)', () => {
  const { text } = segmentedTrace({ seed: 4, dynW: { a: 520, b: 260 }, idleW: 120, seconds: 240, segmentS: 3 });
  const full = gpuCausalReplay(text);
  const lines = text.trim().split('\n');
  const cut = gpuCausalReplay(lines.slice(0, 1 + 1200).join('\n')); // the first 120 s
  // every interval of the truncated run but its last (whose end the cut moved) is identical in the full run
  assert.ok(cut.windows.length > 100);
  for (let i = 0; i < cut.windows.length - 1; i++) assert.deepStrictEqual(full.windows[i], cut.windows[i], `interval ${i}`);
  // and the in-sample replay of the same 120 s differs (it used the whole 120 s to split every window)
  const inSample = gpuReplay(lines.slice(0, 1 + 1200).join('\n'), { maxWindowS: 1 });
  assert.notDeepStrictEqual(inSample.windows.slice(0, 50), cut.windows.slice(0, 50));
});

test('causal replay: segment lengths from 0.5 s to 20 s all give each tenant\'s dynamic energy within 3 % (no schedule constant in the method)', () => {
  const dynW = { big: 560, mem: 390, small: 150 };
  for (const segmentS of [0.5, 2, 5, 20]) {
    const { text, truth } = segmentedTrace({ seed: 11, dynW, idleW: 130, seconds: 600, segmentS });
    const r = gpuCausalReplay(text);
    for (const t of Object.keys(dynW)) {
      const err = r.tenants[t]!.dynamic_joules / truth[t]! - 1;
      assert.ok(Math.abs(err) < 0.03, `segment ${segmentS} s, ${t}: ${(100 * err).toFixed(2)} % (${r.tenants[t]!.dynamic_joules.toFixed(0)} vs ${truth[t]!.toFixed(0)} J)`);
    }
    // conservation: every interval sums exactly to its measurement
    for (const w of r.windows) {
      const parts = Object.values(w.tenants).reduce((a, x) => a + x.dynamic_joules + x.static_joules, 0) + w.unallocated_static_joules;
      assert.ok(Math.abs(parts - w.measured_joules) <= 1e-9 * Math.max(1, w.measured_joules));
    }
  }
});

test('a GPU that reports no utilisation (gpu_util always 0) is attributed from the process samples alone', () => {
  const dynW = { big: 560, small: 200 };
  const { text, truth } = segmentedTrace({ seed: 8, dynW, idleW: 110, seconds: 400, segmentS: 2 });
  const noUtil = text.replace(/"gpu_util":100/g, '"gpu_util":0');
  assert.notEqual(noUtil, text);
  const r = gpuCausalReplay(noUtil);
  for (const t of Object.keys(dynW)) {
    const err = r.tenants[t]!.dynamic_joules / truth[t]! - 1;
    // measured 5.9 % for the small tenant: sampled busy time alone, without the device's, is noisier
    assert.ok(Math.abs(err) < 0.08, `${t}: ${(100 * err).toFixed(2)} %`);
  }
  assert.ok(Math.abs(r.model.static_w - 110) < 5, String(r.model.static_w));
});

test('causal replay: a tenant that appears late is billed from its first interval and converges to its own signature', () => {
  const dynW = { a: 600, b: 300 };
  const { text } = segmentedTrace({ seed: 5, dynW, idleW: 100, seconds: 300, segmentS: 2 });
  // tenant c appears only in the last 100 s: renamed from b there
  const raw = parseRawNvmlTrace(text);
  const cAt = raw.reads.findIndex((x) => x.t >= 2_000_200);
  const late: RawNvmlTrace = { header: { ...raw.header, tenants: ['a', 'b', 'c'], pids: { ...(raw.header.pids as Record<string, string>), 2002: 'c' } }, reads: raw.reads.map((x, i) => (i < cAt ? x : { ...x, proc_util: x.proc_util.map((p) => (p.pid === 2001 ? { ...p, pid: 2002 } : p)) })) };
  const r = gpuCausalReplay(formatRawNvmlTrace(late));
  const first = r.windows.find((w) => (w.tenants.c?.dynamic_joules ?? 0) > 0);
  assert.ok(first, 'c is billed');
  assert.ok(r.model.signatures_w.c! > 0.9 * 300 && r.model.signatures_w.c! < 1.1 * 300 / 0.99 + 1, JSON.stringify(r.model.signatures_w));
});

test('learner: a tenant seen too little to tell is billed at the pooled signature (listed as fallback), then moves to its own', () => {
  const r = mulberry32(3);
  const sig: Record<string, number> = { a: 600, b: 400, c: 100 };
  const l = new GpuSignatureLearner();
  const window = (act: Record<string, number>): Parameters<GpuSignatureLearner['observe']>[0] => {
    let J = 120 + (r() - 0.5) * 40; // ±20 J of measurement and activity noise per window
    for (const [t, a] of Object.entries(act)) J += sig[t]! * a;
    return { durationS: 1, joules: J, activity: act, contexts: { a: 1, b: 1, c: 1 } };
  };
  for (let i = 0; i < 200; i++) l.observe(window([{ a: 1 }, { b: 1 }, { a: 0.5, b: 0.5 }, {}][i % 4]!));
  // c's first appearance: a sliver of activity, far less than the energy noise can resolve
  l.observe(window({ a: 0.99, c: 0.01 }));
  const first = l.fit();
  assert.ok(first.fallbackTenants.includes('c'), JSON.stringify(first));
  assert.ok(first.signatures.c! > 300 && first.signatures.c! < 700, `a new tenant starts near the pooled signature, not at 0: ${first.signatures.c}`);
  for (let i = 0; i < 200; i++) l.observe(window([{ c: 1 }, { a: 0.5, c: 0.5 }, { b: 0.5, c: 0.5 }, {}][i % 4]!));
  const later = l.fit();
  assert.ok(!later.fallbackTenants.includes('c'));
  assert.ok(Math.abs(later.signatures.c! - 100) < 10, JSON.stringify(later.signatures));
  assert.ok(Math.abs(later.staticW - 120) < 3, String(later.staticW));
});

const real = '/work/shared/data/gpu/h100-mix-dev.jsonl';
const skip = existsSync(real) ? false : `${real} not present`;

interface Err {
  tenant: string;
  share: number;
  model: number;
  base: number;
}

function errors(rep: GpuReplayResult, ref: GpuReference): Err[] {
  const A = replayDynamicOverMix(rep, ref);
  const tot = Object.values(ref.totals).reduce((a, b) => a + b, 0);
  return ref.tenants.map((k) => ({ tenant: k, share: ref.totals[k]! / tot, model: A[k]! / ref.totals[k]! - 1, base: ref.sampleShareBaseline[k]! / ref.totals[k]! - 1 }));
}

const show = (es: Err[]): string => es.map((e) => `${e.tenant} ${(100 * e.model).toFixed(1)} % (baseline ${(100 * e.base).toFixed(1)} %)`).join(', ');

// Thresholds: measured on this trace (docs/accuracy-gpu.md, 2026-12-05) plus a margin; the code is deterministic.
test('recorded H100 trace, causal replay (1 s intervals): every tenant ≥ 5 % of dynamic energy within 3 %, far better than NVML sample share', { skip }, () => {
  const text = readFileSync(real, 'utf8');
  const es = errors(gpuCausalReplay(text, { source: real }), gpuTraceReference(text));
  const big = es.filter((e) => e.share >= 0.05);
  assert.equal(big.length, 3);
  for (const e of big) assert.ok(Math.abs(e.model) <= 0.03, show(es)); // measured worst 2.5 %
  assert.ok(Math.max(...big.map((e) => Math.abs(e.model))) * 3 < Math.max(...big.map((e) => Math.abs(e.base))), show(es));
  // the light tenant (2.7 % of the energy, ~15 NVML samples while mixed with others): measured +3.8 % (−6.5 %
  // before gpu_util was aligned with the energy counter); docs/accuracy-gpu.md says why a single run of this
  // tenant is at the sampling-noise floor
  const light = es.reduce((a, b) => (b.share < a.share ? b : a));
  assert.ok(Math.abs(light.model) <= 0.05, show(es));
});

test('recorded H100 trace through the collector\'s method (GpuTimeSliceMethod on agent-like 1 s intervals, attribute then observe): with the mean device utilisation, tenants ≥ 5 % within 3.5 % and the light tenant within 6 %, also each kernel left out (4 %, 8 %); from the closing point read, tenants ≥ 5 % within 4.5 %', { skip }, () => {
  const text = readFileSync(real, 'utf8');
  const trace = parseNvmlTrace(text, real);
  const ref = gpuTraceReference(text);
  const collectorPath = (deviceUtilSamples: boolean, tr = trace, r = ref): ReturnType<typeof errors> => {
    const ivs = nvmlTraceHostIntervals(tr, 1, 'h100-trace', { deviceUtilSamples });
    assert.equal(ivs.every((iv) => (iv.gpus[0]!.gpuUtilSamples ?? 0) > 0), deviceUtilSamples);
    const m = new GpuTimeSliceMethod();
    const windows: GpuReplayResult['windows'] = [];
    for (const iv of ivs) {
      const r = m.attribute(iv, { policy: 'equal', staticPower: { watts: { rapl: 0, gpu: 0, bmc_rest: 0 }, origin: 'configured' } });
      m.observe(iv);
      const tenants: GpuReplayResult['windows'][number]['tenants'] = {};
      for (const x of r.shares) if (x.source === 'gpu' && x.kind === 'vm') tenants[x.vmUuid] = { dynamic_joules: x.dynamicJoules, static_joules: x.staticJoules };
      windows.push({ t0: iv.t0UnixNs / 1e9, t1: iv.t1UnixNs / 1e9, measured_joules: iv.measured.gpu, unallocated_static_joules: 0, tenants });
    }
    return errors({ windows } as GpuReplayResult, r);
  };
  const lightOf = (es: ReturnType<typeof errors>): ReturnType<typeof errors>[number] => es.reduce((a, b) => (b.share < a.share ? b : a));
  const mean = collectorPath(true);
  const point = collectorPath(false);
  // measured with the busy time aligned at the interval boundaries and the warm-up's static power learned (the
  // default since 2026-12-06): worst +2.7 % (axpy_hbm), light +3.4 %; with the interval alignment and the
  // configured warm-up static before them 4.2 % and −8.8 %
  for (const e of mean.filter((x) => x.share >= 0.05)) assert.ok(Math.abs(e.model) <= 0.035, show(mean));
  assert.ok(Math.abs(lightOf(mean).model) <= 0.06, show(mean));
  // each kernel left out (its solo calibration cut): measured worst +3.2 % (axpy_hbm), light +5.4 %; before
  // 5.7 % and +21.1 % (the warm-up billed the light tenant's first mix seconds the device's static power)
  const raw = parseRawNvmlTrace(text);
  const calibration = { idleWithContextsW: ref.idleWithContextsW, joulesPerWork: ref.joulesPerWork };
  for (const k of raw.header.tenants) {
    const tr = formatRawNvmlTrace(withoutPhases(raw, [`solo:${k}`]));
    const e = collectorPath(true, parseNvmlTrace(tr, k), gpuTraceReference(tr, { calibration })).find((x) => x.tenant === k)!;
    assert.ok(Math.abs(e.model) <= (e.share >= 0.05 ? 0.04 : 0.08), `${k} left out: ${show([e])}`);
  }
  for (const e of point.filter((x) => x.share >= 0.05)) assert.ok(Math.abs(e.model) <= 0.045, show(point)); // measured worst 2.9 %
});

test('recorded H100 trace, the agent\'s 1 s interval at each of its ten phases: with the mean device utilisation the collector path\'s median errors are small, the light tenant\'s far smaller than from the point read, and the learned static power no longer moves with the phase', { skip }, () => {
  const text = readFileSync(real, 'utf8');
  const trace = parseNvmlTrace(text, real);
  const ref = gpuTraceReference(text);
  const run = (samples: typeof trace.samples, deviceUtilSamples: boolean, opts: { utilLagS?: number; sampleWeighting?: boolean } = {}): { big: number; light: number; staticW: number } => {
    const ivs = nvmlTraceHostIntervals({ header: trace.header, samples }, 1, 'h100-trace', { deviceUtilSamples });
    const m = new GpuTimeSliceMethod(opts);
    const windows: GpuReplayResult['windows'] = [];
    for (const iv of ivs) {
      const r = m.attribute(iv, { policy: 'equal', staticPower: { watts: { rapl: 0, gpu: 0, bmc_rest: 0 }, origin: 'configured' } });
      m.observe(iv);
      const tenants: GpuReplayResult['windows'][number]['tenants'] = {};
      for (const x of r.shares) if (x.source === 'gpu' && x.kind === 'vm') tenants[x.vmUuid] = { dynamic_joules: x.dynamicJoules, static_joules: x.staticJoules };
      windows.push({ t0: iv.t0UnixNs / 1e9, t1: iv.t1UnixNs / 1e9, measured_joules: iv.measured.gpu, unallocated_static_joules: 0, tenants });
    }
    const es = errors({ windows } as GpuReplayResult, ref);
    const staticW = m.fitOf('h100-trace', ivs[0]!.gpus[0]!.device)!.staticW;
    return { big: Math.max(...es.filter((e) => e.share >= 0.05).map((e) => Math.abs(e.model))), light: Math.abs(es.reduce((a, b) => (b.share < a.share ? b : a)).model), staticW };
  };
  const median = (xs: number[]): number => {
    const v = [...xs].sort((a, b) => a - b);
    return (v[(v.length - 1) >> 1]! + v[v.length >> 1]!) / 2;
  };
  type Run = { big: number; light: number; staticW: number };
  const mean: Run[] = [];
  const point: Run[] = [];
  const asReported: Run[] = [];
  for (let j = 0; j < 10; j++) {
    mean.push(run(trace.samples.slice(j), true));
    point.push(run(trace.samples.slice(j), false));
    asReported.push(run(trace.samples.slice(j), true, { utilLagS: 0, sampleWeighting: false }));
  }
  const show = JSON.stringify({ mean, point, asReported });
  // measured (boundary alignment, learned warm-up static): big median 2.8 %, max 3.3 %; light median 4.7 %, max
  // 8.8 % (interval alignment and configured warm-up static: 3.7 %, 4.5 %; 6.7 %, 16.4 %)
  assert.ok(median(mean.map((x) => x.big)) <= 0.035, show);
  assert.ok(Math.max(...mean.map((x) => x.big)) <= 0.04, show);
  assert.ok(median(mean.map((x) => x.light)) <= 0.06, show);
  assert.ok(median(point.map((x) => x.big)) > median(mean.map((x) => x.big)), show); // point read: median 4.6 %, max 9.8 %
  assert.ok(median(point.map((x) => x.light)) > 2 * median(mean.map((x) => x.light)), show); // point read: median 18.3 %
  // the learned static power over the phases: 131.4–137.1 W aligned at the boundaries (129.9–132.3 W aligned
  // over the interval), 128.6–144.6 W as reported (the trace's idle phases: 133.4 W with contexts). The highest,
  // phase 2, is where every busy↔idle switch of the trace's 2 s grid falls just before an interval's end, the one
  // place where the closing read does not stand for the utilisation after the boundary
  const spread = (xs: Run[]): number => Math.max(...xs.map((x) => x.staticW)) - Math.min(...xs.map((x) => x.staticW));
  assert.ok(spread(mean) < 0.4 * spread(asReported), show);
  for (const x of mean) assert.ok(Math.abs(x.staticW - ref.idleWithContextsW) < 5, show);
});

test('recorded H100 trace, leave-one-kernel-out: with its solo calibration cut out, each kernel is learned from the mix alone, within 6 % and better than sample share', { skip }, () => {
  const text = readFileSync(real, 'utf8');
  const raw = parseRawNvmlTrace(text);
  const full = gpuTraceReference(text);
  const calibration = { idleWithContextsW: full.idleWithContextsW, joulesPerWork: full.joulesPerWork };
  for (const k of raw.header.tenants) {
    const tr = formatRawNvmlTrace(withoutPhases(raw, [`solo:${k}`]));
    assert.ok(!tr.split('\n').slice(1).some((l) => l.includes(`"phase": "solo:${k}"`) || l.includes(`"phase":"solo:${k}"`)));
    assert.ok(tr.length < text.length);
    const es = errors(gpuCausalReplay(tr), gpuTraceReference(tr, { calibration }));
    const e = es.find((x) => x.tenant === k)!;
    if (e.share >= 0.05) {
      assert.ok(Math.abs(e.model) <= 0.06, `${k} left out: ${show([e])}`); // measured worst 3.2 % (axpy_hbm)
      assert.ok(Math.abs(e.model) < Math.abs(e.base), `${k} left out: ${show([e])}`);
    } else {
      // the light tenant left out: measured +7.7 %, worse than its sample share (+5.4 %); it was +0.1 % before
      // gpu_util was aligned (docs/accuracy-gpu.md, "The light tenant")
      assert.ok(Math.abs(e.model) <= 0.1, `${k} left out: ${show([e])}`);
    }
  }
});

test('recorded H100 trace, re-cut schedules (0.5–20 s segments, shuffled), missed reads, renamed tenants: tenants ≥ 5 % stay close, the baseline does not', { skip }, () => {
  const raw = parseRawNvmlTrace(readFileSync(real, 'utf8'));
  const variants: Array<{ name: string; tr: RawNvmlTrace; limit: number }> = [
    { name: '0.5 s', tr: resampleMixSchedule(raw, { segmentS: 0.5, seed: 1 }), limit: 0.08 }, // measured 5.5 %
    { name: '1 s', tr: resampleMixSchedule(raw, { segmentS: 1, seed: 1 }), limit: 0.06 }, // 3.9 %
    { name: '5 s', tr: resampleMixSchedule(raw, { segmentS: 5, seed: 2 }), limit: 0.05 }, // 3.3 %
    { name: '20 s', tr: resampleMixSchedule(raw, { segmentS: 20, seed: 1 }), limit: 0.05 }, // 2.6 %
    { name: 'missed reads', tr: dropReads(raw, { readFraction: 0.2, sampleFraction: 0.1, seed: 3 }), limit: 0.05 }, // 2.6 %
  ];
  for (const v of variants) {
    const text = formatRawNvmlTrace(v.tr);
    const es = errors(gpuCausalReplay(text), gpuTraceReference(text)).filter((e) => e.share >= 0.05);
    const worst = Math.max(...es.map((e) => Math.abs(e.model)));
    assert.ok(worst <= v.limit, `${v.name}: ${show(es)}`);
    assert.ok(worst * 1.8 < Math.max(...es.map((e) => Math.abs(e.base))), `${v.name}: ${show(es)}`);
  }
  // names do not matter
  const a = gpuCausalReplay(formatRawNvmlTrace(raw));
  const b = gpuCausalReplay(formatRawNvmlTrace(renameTenants(raw, { mm_bf16_8k: 'w', axpy_hbm: 'x', light_infer: 'y', mm_fp32: 'z' })));
  assert.deepEqual(Object.values(b.tenants), Object.values(a.tenants));
});

test('trace edits keep every read\'s measured energy: a re-cut schedule has the same total energy and reference', { skip }, () => {
  const raw = parseRawNvmlTrace(readFileSync(real, 'utf8'));
  const energy = (tr: RawNvmlTrace): number => (tr.reads[tr.reads.length - 1]!.energy_mj - tr.reads[0]!.energy_mj) / 1000;
  for (const segmentS of [0.5, 20]) {
    const tr = resampleMixSchedule(raw, { segmentS, seed: 7 });
    assert.equal(tr.reads.length, raw.reads.length);
    assert.ok(Math.abs(energy(tr) - energy(raw)) < 1e-6);
    for (let i = 1; i < tr.reads.length; i++) assert.ok(tr.reads[i]!.t > tr.reads[i - 1]!.t && tr.reads[i]!.energy_mj >= tr.reads[i - 1]!.energy_mj);
    const a = gpuTraceReference(formatRawNvmlTrace(raw));
    const b = gpuTraceReference(formatRawNvmlTrace(tr));
    assert.deepEqual(b.joulesPerWork, a.joulesPerWork);
    const sum = (r: GpuReference): number => Object.values(r.totals).reduce((x, y) => x + y, 0);
    assert.ok(Math.abs(sum(b) / sum(a) - 1) < 0.01, `${sum(b)} vs ${sum(a)}`);
  }
});

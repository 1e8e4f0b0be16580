/**
 * Replays a recorded NVML trace (../shared/data/gpu/README.md format) through the GPU time-slicing
 * attribution. Windows of at most `maxWindowS` (≤ 2 s) cover the whole trace; each tenant's activity is the
 * device's busy time (gpu_util at every read) split by its processes' share of the NVML per-process
 * utilisation samples (pid → tenant through the header's process map, as an agent would). The time
 * constants are taken from the data: the sample period (median gap between process-sample timestamps) and
 * the lag of gpu_util behind the energy counter (`gpuUtilLagReads`).
 *
 * - `gpuCausalReplay` (the headline, out-of-sample by construction): the trace cut into the collector's
 *   intervals; each is split with what the online learner learned from the intervals before it, then
 *   observed — what the collector does live.
 * - `gpuReplay` (in-sample): one fit over every window of the trace splits every window.
 * Both split every window's measured energy exactly into per-tenant dynamic and static parts.
 *
 * Reads observable fields only (`parseNvmlTrace`), so stripping the ground truth changes nothing.
 */
import { parseNvmlTrace, WattsplitError, type NvmlTrace } from '@wattsplit/wire';
import { GpuSignatureLearner, splitGpuWindow, type GpuActivityWindow, type GpuSignatureLearnerOptions, type GpuStaticPolicy, type GpuWindowSplit } from './gpu-signature.js';

export interface GpuReplayTenant {
  dynamic_joules: number;
  static_joules: number;
}

export interface GpuReplayWindow {
  t0: number;
  t1: number;
  measured_joules: number;
  unallocated_static_joules: number;
  tenants: Record<string, GpuReplayTenant>;
}

export interface GpuReplayResult {
  tenants: Record<string, GpuReplayTenant>;
  windows: GpuReplayWindow[];
  measured_joules: number;
  unallocated_static_joules: number;
  static_policy: GpuStaticPolicy;
  model: {
    method: 'gpu_signature';
    static_w: number;
    per_context_w: number;
    signatures_w: Record<string, number>;
    fallback_tenants: string[];
    residual_rms_j: number;
  };
  /** What the replay repaired: energy counter resets, sample gaps longer than a window. */
  anomalies: string[];
}

export interface GpuReplayOptions {
  /** Longest window, seconds; (0, 2]. Default 2. */
  maxWindowS?: number;
  /** Static split policy. Default `equal` (among tenants holding a context). */
  policy?: GpuStaticPolicy;
  /** Device idle power with no contexts, W, left unallocated. Default 0 (all static to context holders). */
  noContextIdleW?: number;
  /** Names the trace in error messages. */
  source?: string;
  /** Lag of gpu_util behind the energy counter, reads; default estimated from the trace (`gpuUtilLagReads`). 0 = as read. */
  utilLagReads?: number;
  /** Options of the learner. */
  learner?: GpuSignatureLearnerOptions;
}

interface Seg {
  t0: number;
  t1: number;
  joules: number;
  /** Device busy time, s: the closing read's gpu_util × the segment's length. */
  busyS: number;
}

/**
 * How many reads the device's gpu_util lags behind its energy counter (fractional, in quarter reads). NVML:
 * utilisation is "percent of time over the past sample period during which one or more kernels was
 * executing", the period "between 1 second and 1/6 second depending on the product" (nvml.h,
 * nvmlDeviceGetUtilizationRates), so a read's gpu_util describes time partly before the energy delta that ends
 * at the same read. Estimated from the trace's own reads: the shift λ in [0, reads in 1 s] that maximises the
 * correlation between each segment's power (energy delta / dt) and gpu_util λ reads later (interpolated
 * between reads). 0 when the device never reports utilisation or the reads do not vary.
 */
export function gpuUtilLagReads(trace: NvmlTrace): number {
  const est = new GpuUtilLagEstimator(trace);
  for (let i = 1; i < trace.samples.length; i++) est.add(i);
  return est.lag();
}

interface LagSums {
  n: number;
  sx: number;
  sxx: number;
  sa: number;
  sb: number;
  saa: number;
  sbb: number;
  sab: number;
  sxa: number;
  sxb: number;
}

/**
 * The lag estimate of `gpuUtilLagReads` kept up to date read by read: `add(i)` takes read i in (in order), and
 * `lag()` is the estimate from reads 0..i only — what a live collector could know at read i.
 */
class GpuUtilLagEstimator {
  private readonly maxLag: number;
  /**
   * Per whole lag L: sums over the triples (x = power of segment j−1→j, a = gpu_util of read j+L, b = of read
   * j+L+1) with j+L+1 ≤ the last read added; a shift L + φ reads is (1−φ)·a + φ·b.
   */
  private readonly sums: LagSums[];
  private readonly P: number[] = [NaN];
  private anyUtil = false;

  constructor(private readonly trace: NvmlTrace) {
    const S = trace.samples;
    const gaps: number[] = [];
    for (let i = 1; i < S.length; i++) if (S[i]!.t > S[i - 1]!.t) gaps.push(S[i]!.t - S[i - 1]!.t);
    gaps.sort((a, b) => a - b);
    // NVML's utilisation period is at most 1 s: look no further than the reads in 1 s
    this.maxLag = gaps.length ? Math.min(20, Math.max(0, Math.round(1 / gaps[Math.floor(gaps.length / 2)]!))) : 0;
    this.sums = Array.from({ length: this.maxLag + 1 }, () => ({ n: 0, sx: 0, sxx: 0, sa: 0, sb: 0, saa: 0, sbb: 0, sab: 0, sxa: 0, sxb: 0 }));
  }

  add(i: number): void {
    const S = this.trace.samples;
    const dt = S[i]!.t - S[i - 1]!.t;
    const J = (S[i]!.energyMj - S[i - 1]!.energyMj) / 1000;
    this.P[i] = dt > 0 && J >= 0 ? J / dt : NaN;
    if (S[i]!.gpuUtil > 0) this.anyUtil = true;
    if (i < 2) return;
    const a = S[i - 1]!.gpuUtil;
    const b = S[i]!.gpuUtil;
    for (let L = 0; L <= this.maxLag; L++) {
      const x = this.P[i - 1 - L];
      if (x === undefined || !Number.isFinite(x)) continue;
      const s = this.sums[L]!;
      s.n++;
      s.sx += x;
      s.sxx += x * x;
      s.sa += a;
      s.sb += b;
      s.saa += a * a;
      s.sbb += b * b;
      s.sab += a * b;
      s.sxa += x * a;
      s.sxb += x * b;
    }
  }

  lag(): number {
    if (!this.anyUtil) return 0;
    let best = 0;
    let bestCorr = -Infinity;
    for (let q = 0; q <= 4 * this.maxLag; q++) {
      const L = Math.min(this.maxLag, Math.floor(q / 4));
      const f = q / 4 - L;
      const s = this.sums[L]!;
      if (!(s.n > 2)) continue;
      const sy = (1 - f) * s.sa + f * s.sb;
      const syy = (1 - f) ** 2 * s.saa + 2 * f * (1 - f) * s.sab + f * f * s.sbb;
      const sxy = (1 - f) * s.sxa + f * s.sxb;
      const vx = s.sxx - (s.sx * s.sx) / s.n;
      const vy = syy - (sy * sy) / s.n;
      if (!(vx > 0 && vy > 0)) continue;
      const c = (sxy - (s.sx * sy) / s.n) / Math.sqrt(vx * vy);
      if (c > bestCorr + 1e-12) {
        bestCorr = c;
        best = q / 4;
      }
    }
    return best;
  }
}

/**
 * Each read's gpu_util aligned with the energy delta that ends at it: gpu_util `lag` reads later, interpolated
 * between reads. With `'causal'`, read i uses the lag estimated from reads 0..i (what a live collector knows
 * then); with `'whole'`, the lag estimated from the whole trace; with a number, that lag.
 */
function alignGpuUtil(trace: NvmlTrace, utilLag: number | 'causal' | 'whole'): NvmlTrace['samples'] {
  const S = trace.samples;
  let lagAt: (i: number) => number;
  if (utilLag === 'causal') {
    const est = new GpuUtilLagEstimator(trace);
    const lags = S.map((_, i) => {
      if (i > 0) est.add(i);
      return est.lag();
    });
    lagAt = (i) => lags[i]!;
  } else {
    const L = utilLag === 'whole' ? gpuUtilLagReads(trace) : Math.max(0, utilLag);
    if (!(L > 0)) return S;
    lagAt = () => L;
  }
  const last = S.length - 1;
  return S.map((x, i) => {
    const L = lagAt(i);
    if (L === 0) return x;
    const k = Math.floor(L);
    const f = L - k;
    const a = S[Math.min(i + k, last)]!.gpuUtil;
    const b = S[Math.min(i + k + 1, last)]!.gpuUtil;
    return { ...x, gpuUtil: (1 - f) * a + f * b };
  });
}

/**
 * Builds ≤ maxWindowS windows from a parsed trace, with per-tenant activity, contexts and memory. Each read's
 * gpu_util is aligned with the energy delta ending at it (`utilLag`: `'whole'` — the default — estimates the
 * lag from the whole trace, `'causal'` from the reads up to each read, a number fixes it; 0 = as read).
 */
export function nvmlTraceWindows(trace: NvmlTrace, maxWindowS = 2, anomalies: string[] = [], utilLag: number | 'causal' | 'whole' = 'whole'): Array<GpuActivityWindow & { t0: number; t1: number }> {
  const S = alignGpuUtil(trace, utilLag);
  const tenantOf = (pid: number): string => trace.header.pids[pid] ?? `pid:${pid}`;
  // 1. segments between consecutive reads, energy from the counter (power × dt across a counter reset)
  const segs: Seg[] = [];
  for (let i = 1; i < S.length; i++) {
    const a = S[i - 1]!;
    const b = S[i]!;
    const dt = b.t - a.t;
    if (dt <= 0) continue;
    let J = (b.energyMj - a.energyMj) / 1000;
    if (J < 0) {
      J = (b.powerMw / 1000) * dt;
      anomalies.push(`energy counter went backwards at t=${b.t} (${a.energyMj} → ${b.energyMj} mJ): reset, used power × dt`);
    }
    const parts = Math.ceil(dt / maxWindowS - 1e-9);
    if (parts > 1) anomalies.push(`gap of ${dt.toFixed(3)} s between reads at t=${a.t}: split into ${parts} windows, energy prorated`);
    const busyS = (Math.max(0, Math.min(100, b.gpuUtil)) / 100) * (dt / parts);
    for (let k = 0; k < parts; k++) segs.push({ t0: a.t + (dt * k) / parts, t1: a.t + (dt * (k + 1)) / parts, joules: J / parts, busyS });
  }
  // 2. group segments greedily into windows no longer than maxWindowS
  const wins: Array<GpuActivityWindow & { t0: number; t1: number }> = [];
  const deviceBusy: number[] = [];
  for (const s of segs) {
    const cur = wins[wins.length - 1];
    if (cur && s.t1 - cur.t0 <= maxWindowS + 1e-9) {
      cur.t1 = s.t1;
      cur.durationS = cur.t1 - cur.t0;
      cur.joules += s.joules;
      deviceBusy[wins.length - 1] = deviceBusy[wins.length - 1]! + s.busyS;
    } else {
      wins.push({ t0: s.t0, t1: s.t1, durationS: s.t1 - s.t0, joules: s.joules, activity: {}, contexts: {}, usedMemory: {} });
      deviceBusy.push(s.busyS);
    }
  }
  if (wins.length === 0) return [];
  const find = (t: number): number => {
    let lo = 0;
    let hi = wins.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (wins[mid]!.t0 <= t) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  // 3. activity: each NVML process sample describes the slot since the previous sample on the device
  //    (nvmlDeviceGetProcessUtilization samples at a fixed driver period); its smUtil/100 × slot seconds
  //    is spread over the windows the slot overlaps, so activity is in busy-seconds and signatures in W.
  const uniq = new Map<string, { pid: number; tsS: number; sm: number }>();
  for (const s of S) for (const p of s.procUtil) uniq.set(`${p.pid}@${p.tsUs}`, { pid: p.pid, tsS: p.tsUs / 1e6, sm: Math.max(0, Math.min(100, p.sm)) });
  const ps = [...uniq.values()].sort((a, b) => a.tsS - b.tsS);
  const gaps: number[] = [];
  for (let i = 1; i < ps.length; i++) if (ps[i]!.tsS > ps[i - 1]!.tsS) gaps.push(ps[i]!.tsS - ps[i - 1]!.tsS);
  gaps.sort((a, b) => a - b);
  const period = gaps.length ? gaps[Math.floor(gaps.length / 2)]! : 1 / trace.header.sampleHz;
  let curTs = -Infinity;
  let prevTs = -Infinity;
  for (const p of ps) {
    if (p.tsS > curTs) {
      prevTs = curTs;
      curTs = p.tsS;
    }
    const t0 = Math.max(p.tsS - period, prevTs);
    const tenant = tenantOf(p.pid);
    const busy = p.sm / 100;
    for (let wi = find(t0); wi < wins.length; wi++) {
      const w = wins[wi]!;
      const a = wi === 0 ? Math.min(w.t0, t0) : w.t0;
      const b = wi === wins.length - 1 ? Math.max(w.t1, p.tsS) : w.t1;
      const ov = Math.min(b, p.tsS) - Math.max(a, t0);
      if (ov > 0 && busy > 0) w.activity[tenant] = (w.activity[tenant] ?? 0) + busy * ov;
      // the sample's weight in this window's split, for the learner's noise weighting
      if (ov > 0 && p.tsS > t0) w.samples = (w.samples ?? 0) + ov / (p.tsS - t0);
      if (b >= p.tsS) break;
    }
  }
  {
    // 4. the device's busy time (gpu_util, read at every sample, not drawn) split by the samples' shares; a
    //    window without samples takes the shares of the last window that had some, if that one ended within
    //    two sample periods
    let last: { shares: Record<string, number>; t1: number } | undefined;
    const reportsUtil = S.some((x) => x.gpuUtil > 0);
    wins.forEach((w, wi) => {
      let tot = 0;
      for (const a of Object.values(w.activity)) tot += a;
      let shares: Record<string, number> | undefined;
      if (tot > 0) {
        shares = Object.fromEntries(Object.entries(w.activity).map(([k, a]) => [k, a / tot]));
        last = { shares, t1: w.t1 };
      } else if (last && w.t0 - last.t1 <= 2 * period + 1e-9) {
        shares = last.shares;
      }
      const U = deviceBusy[wi]!;
      // a device that never reports utilisation (gpu_util always 0 while its processes report SM activity:
      // not supported) keeps the samples' own busy time
      if (!reportsUtil) return;
      w.activity = {};
      if (shares && U > 0) for (const [k, f] of Object.entries(shares)) w.activity[k] = U * f;
    });
  }
  const readsIn = new Array<number>(wins.length).fill(0);
  for (const s of S) {
    const k = find(s.t);
    readsIn[k] = (readsIn[k] ?? 0) + 1;
  }
  for (const s of S) {
    const wi = find(s.t);
    const w = wins[wi]!;
    const held = new Set<string>();
    for (const r of s.running) {
      const t = tenantOf(r.pid);
      if (held.has(t)) continue;
      held.add(t);
      w.contexts[t] = (w.contexts[t] ?? 0) + 1 / readsIn[wi]!;
      w.usedMemory![t] = Math.max(w.usedMemory![t] ?? 0, r.usedMem);
    }
  }
  return wins;
}

function checkOptions(opts: GpuReplayOptions, field = 'maxWindowS'): number {
  const maxWindowS = opts.maxWindowS ?? 2;
  if (!(maxWindowS > 0 && maxWindowS <= 2)) {
    throw new WattsplitError('CONFIG_INVALID', `gpu replay: ${field} must be in (0, 2] seconds, got ${String(maxWindowS)}`, { details: { field, value: maxWindowS } });
  }
  const idle = opts.noContextIdleW ?? 0;
  if (!(idle >= 0 && Number.isFinite(idle))) {
    throw new WattsplitError('CONFIG_INVALID', `gpu replay: noContextIdleW must be a finite number ≥ 0 W, got ${String(idle)}`, { details: { field: 'noContextIdleW', value: idle } });
  }
  return maxWindowS;
}

/** Runs the GPU attribution over a parsed trace. */
export function gpuReplayTrace(trace: NvmlTrace, opts: GpuReplayOptions = {}): GpuReplayResult {
  const maxWindowS = checkOptions(opts);
  const policy = opts.policy ?? 'equal';
  const anomalies: string[] = [];
  const wins = nvmlTraceWindows(trace, maxWindowS, anomalies, opts.utilLagReads ?? 'whole');
  // in-sample: the fit over every window of the trace splits every window
  const learner = new GpuSignatureLearner(opts.learner);
  for (const w of wins) learner.observe(w);
  const fit = learner.fit();
  return replayResult(trace, wins, policy, anomalies, learner, (w) => splitGpuWindow(w, fit, { policy, noContextIdleW: opts.noContextIdleW ?? 0 }));
}

/**
 * Splits each window in turn (`splitAt`, which may learn from the window after splitting it), sums the parts
 * per tenant and returns them with the learner's fit after the last window.
 */
function replayResult(trace: NvmlTrace, wins: ReadonlyArray<GpuActivityWindow & { t0: number; t1: number }>, policy: GpuStaticPolicy, anomalies: string[], learner: GpuSignatureLearner, splitAt: (w: GpuActivityWindow) => GpuWindowSplit): GpuReplayResult {
  const tenants: Record<string, GpuReplayTenant> = {};
  for (const t of trace.header.tenants) tenants[t] = { dynamic_joules: 0, static_joules: 0 };
  let measured = 0;
  let unallocated = 0;
  const windows: GpuReplayWindow[] = [];
  for (const w of wins) {
    const sp = splitAt(w);
    const wt: Record<string, GpuReplayTenant> = {};
    for (const t of new Set([...Object.keys(sp.dynamic), ...Object.keys(sp.static)])) {
      const part = { dynamic_joules: sp.dynamic[t] ?? 0, static_joules: sp.static[t] ?? 0 };
      wt[t] = part;
      const tot = (tenants[t] ??= { dynamic_joules: 0, static_joules: 0 });
      tot.dynamic_joules += part.dynamic_joules;
      tot.static_joules += part.static_joules;
    }
    measured += w.joules;
    unallocated += sp.unallocatedStatic;
    windows.push({ t0: w.t0, t1: w.t1, measured_joules: w.joules, unallocated_static_joules: sp.unallocatedStatic, tenants: wt });
  }
  const fit = learner.fit();
  return {
    tenants,
    windows,
    measured_joules: measured,
    unallocated_static_joules: unallocated,
    static_policy: policy,
    model: { method: 'gpu_signature', static_w: fit.staticW, per_context_w: fit.perContextW, signatures_w: fit.signatures, fallback_tenants: fit.fallbackTenants, residual_rms_j: fit.residualRmsJ },
    anomalies,
  };
}

export interface GpuCausalReplayOptions {
  /** Interval length, seconds, (0, 2]; the collector's interval. Default 1. */
  intervalS?: number;
  policy?: GpuStaticPolicy;
  noContextIdleW?: number;
  /** Options of the online learner (forgetting, shrinkage, sample weighting). */
  learner?: GpuSignatureLearnerOptions;
  /**
   * Lag of gpu_util behind the energy counter, reads. Default: estimated as the replay goes, each read aligned
   * with the lag estimated from the reads up to it (an interval closes once its last read's aligned gpu_util
   * is known: that many reads after its end). 0 = as read.
   */
  utilLagReads?: number;
  source?: string;
}

/**
 * Causal replay: the trace cut into intervals of `intervalS` as the collector sees them; each interval is
 * split with the learner's fit from the intervals before it only, then observed (what the collector does
 * live). The result's `model` is the fit after the last interval.
 */
export function gpuCausalReplayTrace(trace: NvmlTrace, opts: GpuCausalReplayOptions = {}): GpuReplayResult {
  const intervalS = checkOptions({ maxWindowS: opts.intervalS ?? 1, ...(opts.noContextIdleW !== undefined ? { noContextIdleW: opts.noContextIdleW } : {}) }, 'intervalS');
  const policy = opts.policy ?? 'equal';
  const anomalies: string[] = [];
  const wins = nvmlTraceWindows(trace, intervalS, anomalies, opts.utilLagReads ?? 'causal');
  const learner = new GpuSignatureLearner(opts.learner);
  return replayResult(trace, wins, policy, anomalies, learner, (w) => {
    const sp = splitGpuWindow(w, learner.fit(), { policy, noContextIdleW: opts.noContextIdleW ?? 0 });
    learner.observe(w);
    return sp;
  });
}

/** `gpuCausalReplayTrace` of a trace's text (observable fields only). */
export function gpuCausalReplay(traceText: string, opts: GpuCausalReplayOptions = {}): GpuReplayResult {
  return gpuCausalReplayTrace(parseNvmlTrace(traceText, opts.source ?? 'trace'), opts);
}

/**
 * `wattsplit gpu-replay <trace.jsonl> --json`: parses the trace text (observable fields only) and
 * attributes it. Throws WattsplitError TRACE_INVALID (naming file, line, field) on malformed input.
 */
export function gpuReplay(traceText: string, opts: GpuReplayOptions = {}): GpuReplayResult {
  checkOptions(opts);
  return gpuReplayTrace(parseNvmlTrace(traceText, opts.source ?? 'trace'), opts);
}

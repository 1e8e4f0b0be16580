/**
 * Replays a recorded NVML trace (../shared/data/gpu/README.md format) through the GPU time-slicing
 * attribution: windows of at most `maxWindowS` (≤ 2 s) cover the whole trace, each tenant's activity
 * comes from its processes' NVML utilisation samples (pid → tenant through the header's process map,
 * as an agent would), signatures are learned over the whole trace (GpuSignatureLearner), and every
 * window's measured energy is split exactly into per-tenant dynamic and static parts.
 *
 * Reads observable fields only (`parseNvmlTrace`), so stripping the ground truth changes nothing.
 */
import { parseNvmlTrace, WattsplitError, type NvmlTrace } from '@wattsplit/wire';
import { GpuSignatureLearner, splitGpuWindow, type GpuActivityWindow, type GpuStaticPolicy } from './gpu-signature.js';

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
  /** Windows shorter than this split their dynamic energy by the activity over this span centred on them. Default 2 s. */
  shareSpanS?: number;
  /** Names the trace in error messages. */
  source?: string;
}

interface Seg {
  t0: number;
  t1: number;
  joules: number;
}

/** Builds ≤ maxWindowS windows from a parsed trace, with per-tenant activity, contexts and memory. */
export function nvmlTraceWindows(trace: NvmlTrace, maxWindowS = 2, anomalies: string[] = []): Array<GpuActivityWindow & { t0: number; t1: number }> {
  const S = trace.samples;
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
    for (let k = 0; k < parts; k++) segs.push({ t0: a.t + (dt * k) / parts, t1: a.t + (dt * (k + 1)) / parts, joules: J / parts });
  }
  // 2. group segments greedily into windows no longer than maxWindowS
  const wins: Array<GpuActivityWindow & { t0: number; t1: number }> = [];
  for (const s of segs) {
    const cur = wins[wins.length - 1];
    if (cur && s.t1 - cur.t0 <= maxWindowS + 1e-9) {
      cur.t1 = s.t1;
      cur.durationS = cur.t1 - cur.t0;
      cur.joules += s.joules;
    } else {
      wins.push({ t0: s.t0, t1: s.t1, durationS: s.t1 - s.t0, joules: s.joules, activity: {}, contexts: {}, usedMemory: {} });
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
    if (busy <= 0) continue;
    for (let wi = find(t0); wi < wins.length; wi++) {
      const w = wins[wi]!;
      const a = wi === 0 ? Math.min(w.t0, t0) : w.t0;
      const b = wi === wins.length - 1 ? Math.max(w.t1, p.tsS) : w.t1;
      const ov = Math.min(b, p.tsS) - Math.max(a, t0);
      if (ov > 0) w.activity[tenant] = (w.activity[tenant] ?? 0) + busy * ov;
      if (b >= p.tsS) break;
    }
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

/**
 * Activity used to split window i: NVML samples are ~0.2 s apart, so a window shorter than `spanS` sees
 * only a few and its per-window split drifts towards the plain sample-share baseline. The split uses the
 * activity over a span of `spanS` centred on the window instead (the window itself when it is longer).
 */
function shareActivity(wins: Array<GpuActivityWindow & { t0: number; t1: number }>, i: number, spanS: number): Record<string, number> {
  const w = wins[i]!;
  if (w.durationS >= spanS - 1e-9) return w.activity;
  const mid = (w.t0 + w.t1) / 2;
  const a = mid - spanS / 2;
  const b = mid + spanS / 2;
  const out: Record<string, number> = {};
  let lo = i;
  while (lo > 0 && wins[lo - 1]!.t1 > a) lo--;
  for (let j = lo; j < wins.length && wins[j]!.t0 < b; j++) {
    const v = wins[j]!;
    const f = v.durationS > 0 ? Math.max(0, Math.min(v.t1, b) - Math.max(v.t0, a)) / v.durationS : 0;
    if (f <= 0) continue;
    for (const [k, x] of Object.entries(v.activity)) out[k] = (out[k] ?? 0) + f * x;
  }
  return out;
}

function checkOptions(opts: GpuReplayOptions): number {
  const maxWindowS = opts.maxWindowS ?? 2;
  if (!(maxWindowS > 0 && maxWindowS <= 2)) {
    throw new WattsplitError('CONFIG_INVALID', `gpu replay: maxWindowS must be in (0, 2] seconds, got ${String(maxWindowS)}`, { details: { field: 'maxWindowS', value: maxWindowS } });
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
  const wins = nvmlTraceWindows(trace, maxWindowS, anomalies);
  const learner = new GpuSignatureLearner();
  // Fit on blocks of at least shareSpanS: short windows hold too few NVML samples and bias the signatures
  // towards each other (noise in the regressors).
  const shareSpanS = opts.shareSpanS ?? 2;
  let acc: GpuActivityWindow | undefined;
  for (const w of wins) {
    acc ??= { durationS: 0, joules: 0, activity: {}, contexts: {} };
    for (const [k, v] of Object.entries(w.contexts)) acc.contexts[k] = ((acc.contexts[k] ?? 0) * acc.durationS + v * w.durationS) / (acc.durationS + w.durationS);
    acc.durationS += w.durationS;
    acc.joules += w.joules;
    for (const [k, v] of Object.entries(w.activity)) acc.activity[k] = (acc.activity[k] ?? 0) + v;
    if (acc.durationS >= shareSpanS - 0.2) {
      learner.observe(acc);
      acc = undefined;
    }
  }
  if (acc) learner.observe(acc);
  const fit = learner.fit();
  const tenants: Record<string, GpuReplayTenant> = {};
  for (const t of trace.header.tenants) tenants[t] = { dynamic_joules: 0, static_joules: 0 };
  let measured = 0;
  let unallocated = 0;
  const windows: GpuReplayWindow[] = wins.map((w, i) => {
    const sp = splitGpuWindow({ ...w, activity: shareActivity(wins, i, shareSpanS) }, fit, { policy, noContextIdleW: opts.noContextIdleW ?? 0 });
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
    return { t0: w.t0, t1: w.t1, measured_joules: w.joules, unallocated_static_joules: sp.unallocatedStatic, tenants: wt };
  });
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

/**
 * `wattsplit gpu-replay <trace.jsonl> --json`: parses the trace text (observable fields only) and
 * attributes it. Throws WattsplitError TRACE_INVALID (naming file, line, field) on malformed input.
 */
export function gpuReplay(traceText: string, opts: GpuReplayOptions = {}): GpuReplayResult {
  checkOptions(opts);
  return gpuReplayTrace(parseNvmlTrace(traceText, opts.source ?? 'trace'), opts);
}

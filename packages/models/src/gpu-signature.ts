/**
 * GPU time-slicing attribution: learn each tenant's active-power signature from NVML observables only.
 *
 * Model of one window on one GPU (all quantities observable):
 *
 *   E_window = P_static · dt (+ P_ctx · contexts · dt) + Σ_tenants s_tenant · a_tenant(window)
 *
 * where a_tenant is the tenant's activity in busy-seconds: the device's busy time in the window (NVML
 * gpu_util, read at every sample) split by the tenant's share of the NVML per-process utilisation samples
 * (nvmlDeviceGetProcessUtilization; under time-slicing each sample names the process that held the GPU,
 * weighted by its SM utilisation). s_tenant (W when it keeps the GPU busy) is its signature.
 *
 * Using the device's busy time (measured at every read, not drawn from samples) as the total activity keeps
 * lost or sparse samples from leaking energy into P_static; only the split between tenants is sampled.
 *
 * The fit, from accumulated normal equations (online, optional forgetting), in two steps:
 * 1. pooled: one signature for all tenants, E = P_static·dt (+ P_ctx·contexts·dt) + s_pool · Σ a.
 * 2. NNLS for P_static (free), P_ctx and every s_tenant, each s_tenant shrunk towards s_pool by a normal
 *    prior (spread `priorSpread` × s_pool, weighed against the fit's residual variance per window). A
 *    tenant the learner has not seen — a new kernel — is billed at s_pool and moves to its own signature as
 *    its activity explains the energy; nothing is carried over from any kernel seen before.
 * Windows are weighed by how well their activity split is measured (feasible generalised least squares):
 * where tenants share a window, their shares come from n process samples, so the window's modelled energy
 * carries a sampling variance U²·Var_f(s)/n (U the device's busy time, Var_f(s) the variance of the
 * tenants' signatures under the sampled shares, multinomial); the window's weight is 1/(1 + v/max(σ², v̄)),
 * σ² the fit's residual variance per window and v̄ the mean v of the windows seen (the residuals bound how
 * much sampling noise there can be: where they are smaller than the multinomial model says, e.g. a
 * round-robin scheduler, the weights flatten instead of dropping the mixed windows). A window with one
 * tenant, or tenants of equal signature, has no split noise (full weight unless its busy time is uncertain, next).
 * A window whose busy time U is itself
 * an estimate (`busyVarS2`: the collector's alignment across interval boundaries) adds (Σ f_k·s_k)²·Var(U) to v. Without this, a light tenant's signature — set by the few watts it adds
 * when alone — was pulled by the sampling noise of the mixed windows where it wins a slot now and then.
 * Nothing is fitted to a particular file: the same learner runs on any trace of the format, and on live
 * intervals through GpuTimeSliceMethod.
 *
 * A tenant holding a context raises idle power (H100: 73 W with no contexts, 120–135 W with four idle
 * contexts). When the number of contexts varies across the observed windows, a per-context term
 * P_ctx · contexts · dt is fitted too; static energy is then split by an explicit `GpuStaticPolicy`
 * and reported apart from dynamic energy.
 *
 * The learner's sums are its whole state: `exportState` gives them as plain JSON and `fromState` rebuilds a
 * learner whose fit is bit-identical (JSON numbers round-trip doubles exactly; column order is kept).
 */
import { LearnerStateReader } from '@wattsplit/attribution';
import { nnlsNormal } from './nnls.js';

/** One observation window of one GPU. */
export interface GpuActivityWindow {
  durationS: number;
  /** Measured energy of the device over the window (from the energy counter). */
  joules: number;
  /** Activity per tenant, busy-seconds: the device's busy time split by the tenant's share of the process-utilisation samples. */
  activity: Record<string, number>;
  /** Tenants holding a GPU context (running compute processes), each with the fraction (0, 1] of the window it held one. */
  contexts: Record<string, number>;
  /** Used GPU memory per context-holding tenant, bytes (for the by_memory static policy). */
  usedMemory?: Record<string, number>;
  /**
   * Number of NVML process-utilisation samples the activity split was drawn from (fractional where a sample's
   * slot straddles windows). When set, the learner weighs the window by how noisy that split is (`observe`).
   */
  samples?: number;
  /**
   * Variance of the window's total busy time, s², where it is an estimate (the collector's busy time aligned
   * with the energy counter across the interval's boundaries). The learner adds the energy variance it carries,
   * (Σ_k f_k·s_k)²·busyVarS2, to the window's sampling variance when weighing it (`observe`).
   */
  busyVarS2?: number;
}

export interface GpuSignatureFit {
  /** Device power with contexts alive and no work, W (the fitted intercept, per-context term excluded). */
  staticW: number;
  /** Extra idle power per context-holding process, W (0 when the context count never varied). */
  perContextW: number;
  /** Dynamic power of each tenant when it keeps the SMs fully busy, W (joules per busy-second). */
  signatures: Record<string, number>;
  /** Tenants billed at (or mostly at) the pooled signature: less activity than `minActivity`, or less weight than the prior. */
  fallbackTenants: string[];
  windows: number;
  /** Root mean square of the energy residual per window, J. */
  residualRmsJ: number;
}

/**
 * How a GPU's static energy is split: `equal` among context holders, `by_memory` by their used GPU
 * memory, or `unallocated`. Energy up to `noContextIdleW` (the device idle with no contexts, a platform
 * cost) is left unallocated whatever the policy when it is configured.
 */
export type GpuStaticPolicy = 'equal' | 'by_memory' | 'unallocated';

export interface GpuSignatureLearnerOptions {
  /** Forgetting half-life in windows (Infinity = remember everything, for replays). */
  halfLifeWindows?: number;
  /** A tenant with less accumulated activity (busy-seconds) is billed at the pooled signature. Default 0 (the prior's shrinkage decides). */
  minActivity?: number;
  /** Spread of the prior on a tenant's signature, as a fraction of the pooled signature. Default 0.5. */
  priorSpread?: number;
  /**
   * Weigh windows by the variance of their modelled energy (see the header): the sampling noise of their split
   * where they carry `samples`, and the variance of their busy time where they carry `busyVarS2`. false: every
   * window weighs 1. Default true.
   */
  sampleWeighting?: boolean;
}

/** Time-weighted number of contexts held over the window. */
export function contextCount(w: GpuActivityWindow): number {
  let n = 0;
  for (const f of Object.values(w.contexts)) n += Math.max(0, Math.min(1, f));
  return n;
}

const STATIC = '\u0000static';
const PER_CTX = '\u0000ctx';

/**
 * A GpuSignatureLearner's accumulated sums as plain JSON (no typed arrays). `tenants` are the fitted
 * columns after the static and per-context ones, in column order; `AtA` is (2 + tenants) × (2 + tenants).
 */
export interface GpuSignatureLearnerState {
  tenants: string[];
  AtA: number[][];
  Atb: number[];
  bb: number;
  /** Decayed activity per tenant, [tenant, busy-seconds] pairs. */
  activitySeen: Array<[string, number]>;
  /** [min, max] of the windows' context counts; null before the first window. */
  contextRange: [number, number] | null;
  windows: number;
  /**
   * [Σ v, count] of the variances v of the windows that carried a sample count or a busy-time variance
   * (`busyVarS2`; v = sampling variance + busy-time variance, the mean v̄ of the weighting), forgotten at the same
   * rate as the sums. Absent in states written before it was kept: read as [0, 0].
   */
  sampleVar?: [number, number];
}

/** Accumulates normal equations over windows and solves the NNLS fit on demand. */
export class GpuSignatureLearner {
  private readonly cols: string[] = [STATIC, PER_CTX];
  private readonly index = new Map<string, number>([[STATIC, 0], [PER_CTX, 1]]);
  private AtA: Float64Array[] = [new Float64Array(2), new Float64Array(2)];
  private Atb = new Float64Array(2);
  private bb = 0;
  private readonly activitySeen = new Map<string, number>();
  private ctxMin = Infinity;
  private ctxMax = -Infinity;
  private n = 0;
  private readonly decay: number;
  private readonly minActivity: number;
  private readonly priorSpread: number;
  private readonly sampleWeighting: boolean;
  private cached: GpuSignatureFit | undefined;
  /** The pooled signature behind `cached` (the prior of the fit), cached with it. */
  private cachedPooled = 0;
  /** Σ and count of the windows' variances v (sampling + busy time, weightOf); exported as `sampleVar`. */
  private sampleVarSum = 0;
  private sampleVarN = 0;

  constructor(opts: GpuSignatureLearnerOptions = {}) {
    const hl = opts.halfLifeWindows ?? Infinity;
    this.decay = Number.isFinite(hl) && hl > 0 ? Math.pow(0.5, 1 / hl) : 1;
    this.minActivity = opts.minActivity ?? 0;
    this.priorSpread = opts.priorSpread ?? 0.5;
    this.sampleWeighting = opts.sampleWeighting ?? true;
  }

  private col(name: string): number {
    let i = this.index.get(name);
    if (i !== undefined) return i;
    i = this.cols.length;
    this.cols.push(name);
    this.index.set(name, i);
    const n = this.cols.length;
    this.AtA = this.AtA.map((r) => {
      const g = new Float64Array(n);
      g.set(r);
      return g;
    });
    this.AtA.push(new Float64Array(n));
    const b = new Float64Array(n);
    b.set(this.Atb);
    this.Atb = b;
    return i;
  }

  /** Adds one window. Windows with non-finite or non-positive duration, or non-finite energy or activity, are ignored. */
  observe(w: GpuActivityWindow): void {
    if (!(w.durationS > 0 && Number.isFinite(w.durationS)) || !Number.isFinite(w.joules)) return;
    if (Object.values(w.activity).some((a) => !Number.isFinite(a))) return;
    const nctx = contextCount(w);
    if (!Number.isFinite(nctx)) return;
    const wt = this.weightOf(w);
    const entries: Array<[number, number]> = [[0, w.durationS], [1, w.durationS * nctx]];
    for (const [tenant, a] of Object.entries(w.activity)) {
      if (!(a > 0)) continue;
      entries.push([this.col(tenant), a]);
      this.activitySeen.set(tenant, (this.activitySeen.get(tenant) ?? 0) * this.decay + a);
    }
    const d = this.decay;
    if (d !== 1) {
      for (const row of this.AtA) for (let q = 0; q < row.length; q++) row[q] = row[q]! * d;
      for (let q = 0; q < this.Atb.length; q++) this.Atb[q] = this.Atb[q]! * d;
      this.bb *= d;
      this.sampleVarSum *= d;
      this.sampleVarN *= d;
    }
    for (const [p, vp] of entries) {
      this.Atb[p] = this.Atb[p]! + wt * vp * w.joules;
      const row = this.AtA[p]!;
      for (const [q, vq] of entries) row[q] = row[q]! + wt * vp * vq;
    }
    this.bb += wt * w.joules * w.joules;
    this.ctxMin = Math.min(this.ctxMin, nctx);
    this.ctxMax = Math.max(this.ctxMax, nctx);
    this.n++;
    this.cached = undefined;
  }

  /**
   * The window's weight in the fit: 1 / (1 + v / max(σ², v̄)), v the variance of its modelled energy: U²·Var_f(s)/n
   * from the shares of its n process samples (0 with one tenant) plus (Σ f_k·s_k)²·busyVarS2 where its busy time
   * is an estimate (see the header); σ² the current fit's residual variance per window, v̄ the mean v so far.
   * 1 when weighting is off, the window carries neither a sample count nor `busyVarS2`, its v is 0 (one tenant
   * and no busy-time variance), or the learner has no fit yet; a one-tenant window with `busyVarS2` weighs less.
   */
  private weightOf(w: GpuActivityWindow): number {
    const n = w.samples ?? 0;
    const bv = w.busyVarS2 ?? 0;
    if (!this.sampleWeighting || !(n > 0 || bv > 0)) return 1;
    const v = (n > 0 ? this.sampleVariance(w, n) : 0) + (bv > 0 ? this.busyVariance(w, bv) : 0);
    this.sampleVarSum += v;
    this.sampleVarN++;
    if (!(v > 0)) return 1;
    const f = this.fit();
    const scale = Math.max(f.residualRmsJ ** 2, this.sampleVarSum / this.sampleVarN);
    return scale > 0 ? 1 / (1 + v / scale) : 1;
  }

  /**
   * (Σ_k f_k·s_k)²·Var(U): the variance an uncertain busy time U adds to the window's modelled energy (f_k the
   * tenants' shares); the pooled signature where the window has no activity (its busy time estimated at 0).
   */
  private busyVariance(w: GpuActivityWindow, busyVar: number): number {
    if (this.n === 0) return 0;
    const pooled = this.pooledSignature();
    const act = Object.entries(w.activity).filter(([, a]) => a > 0);
    if (act.length === 0) return pooled * pooled * busyVar;
    const f = this.fit();
    let U = 0;
    for (const [, a] of act) U += a;
    let m1 = 0;
    for (const [k, a] of act) m1 += (a / U) * (f.signatures[k] ?? pooled);
    return m1 * m1 * busyVar;
  }

  /** U²·Var_f(s)/n of a window with n process samples: the variance its sampled split adds to its modelled energy. */
  private sampleVariance(w: GpuActivityWindow, n: number): number {
    const act = Object.entries(w.activity).filter(([, a]) => a > 0);
    if (act.length < 2 || this.n === 0) return 0;
    const f = this.fit();
    const pooled = this.pooledSignature();
    let U = 0;
    for (const [, a] of act) U += a;
    let m1 = 0;
    let m2 = 0;
    for (const [k, a] of act) {
      const s = f.signatures[k] ?? pooled;
      m1 += (a / U) * s;
      m2 += (a / U) * s * s;
    }
    return (U * U * Math.max(0, m2 - m1 * m1)) / Math.max(1, n);
  }

  /**
   * The pooled signature of the current fit (what a tenant not seen yet is billed at): the fit's prior, solved
   * with the fit and cached with it (the weighting asks for it once or twice per window, the fit once).
   */
  private pooledSignature(): number {
    if (this.cols.length <= 2 || this.n === 0) return 0;
    this.fit();
    return this.cachedPooled;
  }

  get windows(): number {
    return this.n;
  }

  /** The accumulated sums as plain JSON (arrays of numbers); `fromState` rebuilds an identical learner. */
  exportState(): GpuSignatureLearnerState {
    return {
      tenants: this.cols.slice(2),
      AtA: this.AtA.map((r) => Array.from(r)),
      Atb: Array.from(this.Atb),
      bb: this.bb,
      activitySeen: [...this.activitySeen],
      contextRange: this.n > 0 && Number.isFinite(this.ctxMin) ? [this.ctxMin, this.ctxMax] : null,
      windows: this.n,
      sampleVar: [this.sampleVarSum, this.sampleVarN],
    };
  }

  /**
   * A learner holding an exported state (options as the learner that exported it, for an identical fit).
   * Throws LEARNER_STATE_INVALID naming the field (`where` prefixes the message, e.g. the host and device).
   */
  static fromState(state: unknown, opts: GpuSignatureLearnerOptions = {}, where = 'gpu signature learner state'): GpuSignatureLearner {
    const r = new LearnerStateReader(where);
    const s = r.object(state, '(learner)');
    const tenants = r.array(s.tenants, 'tenants').map((t, i) => r.string(t, `tenants[${i}]`));
    const seen = new Set<string>();
    for (const [i, t] of tenants.entries()) {
      if (t === STATIC || t === PER_CTX || seen.has(t)) r.fail(`tenants[${i}]`, 'must be a tenant named once', t);
      seen.add(t);
    }
    const n = tenants.length + 2;
    const AtA = r.array(s.AtA, 'AtA', n).map((row, i) => Float64Array.from(r.numbers(row, `AtA[${i}]`, n)));
    const Atb = Float64Array.from(r.numbers(s.Atb, 'Atb', n));
    const bb = r.number(s.bb, 'bb', { min: 0 });
    const activitySeen = r.pairs(s.activitySeen, 'activitySeen');
    const windows = r.number(s.windows, 'windows', { integer: true, min: 0 });
    let range: [number, number] | undefined;
    if (s.contextRange !== null) {
      const c = r.numbers(s.contextRange, 'contextRange', 2);
      if (!(c[0]! <= c[1]!)) r.fail('contextRange', 'must be [min, max] with min ≤ max', c);
      range = [c[0]!, c[1]!];
    } else if (windows > 0) {
      r.fail('contextRange', `must be [min, max] when windows=${windows} > 0`, null);
    }
    let sampleVar: [number, number] = [0, 0];
    if (s.sampleVar !== undefined) {
      const v = r.numbers(s.sampleVar, 'sampleVar', 2);
      if (!(v[0]! >= 0 && v[1]! >= 0)) r.fail('sampleVar', 'must be [Σ v ≥ 0, count ≥ 0]', v);
      sampleVar = [v[0]!, v[1]!];
    }
    const l = new GpuSignatureLearner(opts);
    for (const t of tenants) l.col(t);
    [l.sampleVarSum, l.sampleVarN] = sampleVar;
    l.AtA = AtA;
    l.Atb = Atb;
    l.bb = bb;
    for (const [t, a] of activitySeen) l.activitySeen.set(t, a);
    if (range) [l.ctxMin, l.ctxMax] = range;
    l.n = windows;
    return l;
  }

  /** Residual sum of squares of x on the accumulated sums: bᵀb − 2xᵀAᵀb + xᵀAᵀAx. */
  private rss(x: Float64Array): number {
    const n = this.cols.length;
    let r2 = this.bb;
    for (let p = 0; p < n; p++) {
      if (x[p] === 0) continue;
      r2 -= 2 * x[p]! * this.Atb[p]!;
      for (let q = 0; q < n; q++) r2 += x[p]! * this.AtA[p]![q]! * x[q]!;
    }
    return Math.max(0, r2);
  }

  /**
   * The pooled fit: one signature for every tenant (E = P_static·dt (+ P_ctx·contexts·dt) + s·Σ busy), from
   * the same sums. It is the prior of each tenant's own signature.
   */
  private pooledFit(useCtx: boolean): Float64Array {
    const { M, v, base } = this.pooledNormal(useCtx);
    const n = this.cols.length;
    const m = base.length + 1;
    const z = nnlsNormal(M, v, [0]);
    const x = new Float64Array(n);
    base.forEach((p, k) => (x[p] = z[k]!));
    for (let p = 2; p < n; p++) x[p] = z[m - 1]!;
    return x;
  }

  /** The pooled fit's normal equations: columns static, (per-context,) Σ busy. */
  private pooledNormal(useCtx: boolean): { M: Float64Array[]; v: Float64Array; base: number[] } {
    const n = this.cols.length;
    const base = useCtx ? [0, 1] : [0];
    const m = base.length + 1;
    const M = Array.from({ length: m }, () => new Float64Array(m));
    const v = new Float64Array(m);
    const group = (k: number): number[] => (k < base.length ? [base[k]!] : [...Array(n - 2).keys()].map((i) => i + 2));
    for (let i = 0; i < m; i++) {
      for (const p of group(i)) {
        v[i] = v[i]! + this.Atb[p]!;
        for (let j = 0; j < m; j++) for (const q of group(j)) M[i]![j] = M[i]![j]! + this.AtA[p]![q]!;
      }
      M[i]![i] = M[i]![i]! * (1 + 1e-9) + 1e-12;
    }
    return { M, v, base };
  }

  /**
   * The fit's static power with its standard error σ·√[(AᵀA)⁻¹]₀₀ (σ² the fit's residual variance per window
   * over its degrees of freedom, AᵀA over the fitted columns). Idle windows alone determine it; windows that are
   * all equally busy do not (static and busy time are then collinear, and the standard error says so). Undefined
   * before the windows outnumber the fitted columns.
   */
  staticEstimate(): { staticW: number; perContextW: number; stdErrW: number } | undefined {
    const useCtx = this.ctxMax - this.ctxMin > 0.5;
    const idx = [...this.cols.keys()].filter((p) => p !== 1 || useCtx);
    if (!(this.n > idx.length)) return undefined;
    const f = this.fit();
    const x = new Float64Array(this.cols.length);
    x[0] = f.staticW;
    x[1] = useCtx ? f.perContextW : 0;
    for (let p = 2; p < this.cols.length; p++) x[p] = f.signatures[this.cols[p]!] ?? 0;
    const sigma2 = this.rss(x) / (this.n - idx.length);
    const M = idx.map((p) => Float64Array.from(idx, (q) => this.AtA[p]![q]!));
    M.forEach((r, k) => (r[k] = r[k]! * (1 + 1e-9) + 1e-12));
    const e0 = inverseColumn0(M);
    if (e0 === undefined || !(e0 >= 0)) return undefined;
    return { staticW: f.staticW, perContextW: f.perContextW, stdErrW: Math.sqrt(sigma2 * e0) };
  }

  /**
   * Solves the fit (cached until the next observe). Each tenant's signature is shrunk towards the pooled
   * signature (a normal prior with a spread of `priorSpread` × the pooled signature; the weight of the
   * prior is the fit's residual variance per window over the prior variance): a tenant seen little — new,
   * or light — starts at the pooled value and moves to its own as its activity explains the energy.
   */
  fit(): GpuSignatureFit {
    if (this.cached) return this.cached;
    const n = this.cols.length;
    // The per-context term is only identifiable when the context count varied.
    const useCtx = this.ctxMax - this.ctxMin > 0.5;
    const idx = [...Array(n).keys()].filter((p) => p !== 1 || useCtx);
    const pooled = this.n > 0 ? this.pooledFit(useCtx) : new Float64Array(n);
    const prior = n > 2 ? Math.max(0, pooled[2]!) : 0;
    const solve = (lambda: number): Float64Array => {
      const M = idx.map((p) => Float64Array.from(idx, (q) => this.AtA[p]![q]!));
      const v = Float64Array.from(idx, (p) => this.Atb[p]!);
      // A tiny ridge keeps never-separated columns solvable; it is relative to each column's own scale.
      idx.forEach((p, k) => {
        const ridge = p >= 2 ? lambda : 0;
        M[k]![k] = M[k]![k]! * (1 + 1e-9) + 1e-12 + ridge;
        v[k] = v[k]! + ridge * prior;
      });
      const z = this.n > 0 ? nnlsNormal(M, v, [0]) : new Float64Array(idx.length);
      const x = new Float64Array(n);
      idx.forEach((p, k) => (x[p] = z[k]!));
      return x;
    };
    // prior weight: residual variance per window / (spread · prior)²; the pooled residual first, then the
    // residual of the shrunk fit (the pooled one also holds the tenants' differences).
    const perWindow = (x: Float64Array): number => this.rss(x) / Math.max(1, this.n - idx.length);
    const spread2 = (this.priorSpread * prior) ** 2;
    const lambdaOf = (x: Float64Array): number => (spread2 > 0 ? perWindow(x) / spread2 : 0);
    let x = solve(lambdaOf(pooled));
    const lambda = lambdaOf(x);
    x = solve(lambda);
    const signatures: Record<string, number> = {};
    const fallbackTenants: string[] = [];
    for (let p = 2; p < n; p++) {
      const t = this.cols[p]!;
      const seen = this.activitySeen.get(t) ?? 0;
      if (seen < this.minActivity) {
        signatures[t] = prior;
        fallbackTenants.push(t);
      } else {
        signatures[t] = x[p]!;
        // the prior weighs more than the tenant's own activity: its signature is mostly the pooled one
        if (this.AtA[p]![p]! < lambda) fallbackTenants.push(t);
      }
    }
    const stat = Math.max(0, x[0]!);
    this.cached = { staticW: stat, perContextW: x[1]!, signatures, fallbackTenants, windows: this.n, residualRmsJ: Math.sqrt(this.rss(x) / Math.max(1, this.n)) };
    this.cachedPooled = prior;
    return this.cached;
  }
}

/** [M⁻¹]₀₀ of a small symmetric matrix by Gaussian elimination with partial pivoting; undefined when singular. */
function inverseColumn0(M: readonly Float64Array[]): number | undefined {
  const m = M.length;
  const A = M.map((r, i) => {
    const row = new Float64Array(m + 1);
    row.set(r);
    row[m] = i === 0 ? 1 : 0;
    return row;
  });
  for (let c = 0; c < m; c++) {
    let piv = c;
    for (let r = c + 1; r < m; r++) if (Math.abs(A[r]![c]!) > Math.abs(A[piv]![c]!)) piv = r;
    if (!(Math.abs(A[piv]![c]!) > 0)) return undefined;
    [A[c], A[piv]] = [A[piv]!, A[c]!];
    for (let r = 0; r < m; r++) {
      if (r === c) continue;
      const f = A[r]![c]! / A[c]![c]!;
      for (let k = c; k <= m; k++) A[r]![k] = A[r]![k]! - f * A[c]![k]!;
    }
  }
  const y0 = A[0]![m]! / A[0]![0]!;
  return Number.isFinite(y0) ? y0 : undefined;
}

export interface GpuWindowSplit {
  dynamic: Record<string, number>;
  static: Record<string, number>;
  /** Static energy nobody holds (no contexts, `unallocated` policy, or the no-context idle). */
  unallocatedStatic: number;
  /** Dynamic energy seen with no tenant activity (ramp-down tails, unsampled processes), split like static but kept in `dynamic`. */
  unexplainedDynamic: number;
}

export interface GpuSplitOptions {
  policy?: GpuStaticPolicy;
  /** Device idle power with no contexts, W; that part of static stays unallocated. 0 = all static goes to context holders. */
  noContextIdleW?: number;
}

/**
 * Splits one window's measured energy exactly: static = min(E, (P_static + P_ctx·contexts)·dt), split by
 * policy; dynamic = E − static, split by signature × activity. Σ dynamic + Σ static + unallocated = E.
 */
export function splitGpuWindow(w: GpuActivityWindow, fit: GpuSignatureFit, opts: GpuSplitOptions = {}): GpuWindowSplit {
  const policy = opts.policy ?? 'equal';
  const E = Math.max(0, w.joules);
  const staticJ = Math.min(E, Math.max(0, (fit.staticW + fit.perContextW * contextCount(w)) * w.durationS));
  const dyn = E - staticJ;
  const dynamic: Record<string, number> = {};
  const raw: Array<[string, number]> = [];
  let tot = 0;
  for (const [t, a] of Object.entries(w.activity)) {
    if (!(a > 0)) continue;
    const s = fit.signatures[t] ?? 0;
    const r = s * a;
    raw.push([t, r]);
    tot += r;
  }
  if (tot <= 0) {
    // No explained activity: fall back to plain activity shares, then to the static split.
    let at = 0;
    raw.length = 0;
    for (const [t, a] of Object.entries(w.activity)) if (a > 0) { raw.push([t, a]); at += a; }
    tot = at;
  }
  let unexplainedDynamic = 0;
  if (tot > 0) {
    for (const [t, r] of raw) dynamic[t] = (dynamic[t] ?? 0) + (dyn * r) / tot;
  } else {
    unexplainedDynamic = dyn;
  }
  const stat: Record<string, number> = {};
  let unallocatedStatic = 0;
  const splitStaticLike = (J: number, into: Record<string, number>): number => {
    if (J <= 0) return 0;
    const holders = Object.keys(w.contexts).filter((h) => (w.contexts[h] ?? 0) > 0);
    if (policy === 'unallocated' || holders.length === 0) return J;
    const held = holders.map((h) => Math.min(1, w.contexts[h]!));
    let weights: number[];
    switch (policy) {
      case 'equal':
        weights = held;
        break;
      case 'by_memory':
        weights = holders.map((h, i) => held[i]! * Math.max(0, w.usedMemory?.[h] ?? 0));
        if (!weights.some((x) => x > 0)) weights = held;
        break;
    }
    const ws = weights.reduce((a, b) => a + b, 0);
    holders.forEach((h, i) => (into[h] = (into[h] ?? 0) + (J * weights[i]!) / ws));
    return 0;
  };
  const base = Math.min(staticJ, Math.max(0, (opts.noContextIdleW ?? 0) * w.durationS));
  unallocatedStatic += base;
  unallocatedStatic += splitStaticLike(staticJ - base, stat);
  if (unexplainedDynamic > 0) {
    const left = splitStaticLike(unexplainedDynamic, dynamic);
    // nobody to give it to: keep it with the unallocated static so the window still sums exactly
    if (left > 0) unallocatedStatic += left;
  }
  return { dynamic, static: stat, unallocatedStatic, unexplainedDynamic };
}

/**
 * Learns each host's static (idle) power per source from its own intervals, so the idle split does not
 * depend on a hand-configured number. Over the last `window` usable intervals of a host:
 *
 * - rapl: ridge regression of RAPL power on each VM's CPU cores (cpuSeconds / duration, one column per
 *   VM seen often enough) and the hypervisor's cores (host busy − Σ VM); the intercept — power with every
 *   VM and the hypervisor at zero — is the static power. VMs differ several-fold in watts per core, which
 *   is why one column per VM beats regressing on host busy CPU alone. Falls back to the zero-load intercept
 *   of a quadratic fit on host busy fraction when the regression is degenerate.
 * - gpu: the median GPU power over intervals where no GPU of the host had a context (a held context
 *   raises idle power, so only context-free intervals show it). None seen → the configured value.
 * - bmc_rest: regression of bmc_rest power on RAPL power, GPU power and I/O bytes/s, evaluated at the
 *   static RAPL and GPU power and zero I/O (fans and PSU losses follow the other sources).
 *
 * Every learned value is bounded to [0, q-quantile of that source's observed power] (static power cannot
 * exceed the lowest powers actually seen). Until `minSamples` intervals are seen, or when a fit is
 * degenerate, the configured fallback is used; `origin` says which sources were learned.
 * Memory: `window` records per host, each with one number per VM, and the RAPL regression's running sums
 * (3 × VMs² numbers, rapl-gram.ts), which make an estimate cost O(VMs²) plus the solve, not O(window × VMs²).
 *
 * Refresh cadence: a host's estimate is computed when an interval is observed — the first one, then every
 * `refreshEvery`-th (default 10) — and `estimate` returns the last one computed. The RAPL regression's solve is
 * O(VMs³) (≈ 0.2 ms per host at 50 VMs), a quarter of the collector's main thread when it ran for every interval,
 * while its window (900 intervals) moves by 1 % in 10; `refreshEvery: 1` computes after every interval (the
 * behaviour before 2026-12-06). Because the estimate is computed in `observe`, what interval k is attributed
 * with depends only on the host's intervals before k, and a replay of stored intervals after a restart
 * (the collector's learner-state persistence) recomputes it at the same intervals.
 *
 * State per host (the records, the last observed seq and the last estimate with its age in intervals) is exported and imported as plain JSON
 * (`exportState` / `importState`, learner name `static_power`) so the collector can persist it and a
 * restart or a partition move loses nothing; an interval with seq ≤ the host's last observed seq is
 * ignored, so a redelivered interval is never learned twice. `estimate` reads the records only.
 */
import { WattsplitError } from '@wattsplit/wire';
import { SOURCES } from './conservation.js';
import { learnerStateEnvelope, openLearnerState, type LearnerStateReader } from './learner-state.js';
import { orderStatistic } from './order-statistic.js';
import { InterceptWork, RaplGram, REBUILD_EVERY } from './rapl-gram.js';
import type { HostInterval, HostStateLearner, LearnerHostState, SourceName, StaticPowerEstimate } from './types.js';

export const STATIC_POWER_LEARNER = 'static_power';

export interface StaticPowerLearnerOptions {
  /** Configured static watts per source, used until enough data is seen. */
  fallback: Record<SourceName, number>;
  /** Intervals kept per host. Default 900. */
  window?: number;
  /** Intervals needed before learning replaces the fallback. Default 60. */
  minSamples?: number;
  /** Upper bound quantile of observed power. Default 0.05. */
  quantile?: number;
  /**
   * A host's estimate is recomputed after every `refreshEvery`-th interval observed (and after its first);
   * in between `estimate` returns the last one. Default 10; 1 = after every interval.
   */
  refreshEvery?: number;
}

interface Rec {
  power: Record<SourceName, number>;
  usable: Record<SourceName, boolean>;
  cores: Map<string, number>;
  overheadCores: number;
  busyFrac: number;
  ioBs: number;
  anyContext: boolean;
  hasGpu: boolean;
}

/** Persisted form of one record (plain JSON; cores as [vm uuid, cores] pairs, order kept). */
export interface StaticPowerRecordJson {
  power: Record<SourceName, number>;
  usable: Record<SourceName, boolean>;
  cores: Array<[string, number]>;
  overheadCores: number;
  busyFrac: number;
  ioBs: number;
  anyContext: boolean;
  hasGpu: boolean;
}

/** `StaticPowerLearner.exportState` output: the host's ring of records as stored (slot order and next slot). */
export interface StaticPowerLearnerState extends LearnerHostState {
  learner: typeof STATIC_POWER_LEARNER;
  /** Ring capacity the records were kept with. */
  window: number;
  /** Slot the next record overwrites once the ring is full. */
  next: number;
  recs: StaticPowerRecordJson[];
  /**
   * The last estimate computed and the intervals observed since (absent in states saved before 2026-12-06:
   * the estimate is then computed at import).
   */
  estimate?: { watts: Record<SourceName, number>; origin: string; since: number };
}

/**
 * Ring of a host's last `cap` records and the running sums of its RAPL-usable ones (rapl-gram.ts).
 * Invariants: recs.length ≤ cap; next = recs.length until full, then the oldest slot; `gram` holds the sums
 * of exactly the records in `recs` with usable.rapl (rebuilt every REBUILD_EVERY pushes and on restore).
 */
class HostRecords {
  recs: Rec[] = [];
  next = 0;
  readonly gram = new RaplGram();
  private pushes = 0;
  /** The estimate computed last (`StaticPowerLearner.refresh`) and the records pushed since. */
  cached: StaticPowerEstimate | undefined;
  since = 0;
  constructor(readonly cap: number) {}
  push(r: Rec): void {
    if (this.recs.length < this.cap) this.recs.push(r);
    else {
      const out = this.recs[this.next]!;
      if (out.usable.rapl) this.gram.remove(out);
      this.recs[this.next] = r;
    }
    if (r.usable.rapl) this.gram.add(r);
    this.next = (this.next + 1) % this.cap;
    if (++this.pushes % REBUILD_EVERY === 0) this.resum();
  }
  /** Replaces the ring (a restored state) and recomputes the sums. */
  restore(recs: Rec[], next: number): void {
    this.recs = recs;
    this.next = next;
    this.resum();
  }
  private resum(): void {
    this.gram.rebuild(this.recs.filter((r) => r.usable.rapl));
  }
  /** Records oldest first. */
  chronological(): Rec[] {
    return this.recs.length < this.cap ? [...this.recs] : [...this.recs.slice(this.next), ...this.recs.slice(0, this.next)];
  }
}

export class StaticPowerLearner implements HostStateLearner {
  private readonly records = new Map<string, HostRecords>();
  /** Seq of the last interval observed per host (the redelivery guard; persisted with the records). */
  private readonly seqs = new Map<string, number>();
  private readonly fallback: Record<SourceName, number>;
  private readonly window: number;
  private readonly minSamples: number;
  private readonly q: number;
  private readonly refreshEvery: number;

  constructor(opts: StaticPowerLearnerOptions) {
    for (const s of SOURCES) {
      const w = opts.fallback[s];
      if (!(Number.isFinite(w) && w >= 0)) {
        throw new WattsplitError('CONFIG_INVALID', `static power fallback.${s}=${w} must be a finite number of watts ≥ 0`, { details: { field: `fallback.${s}`, value: w } });
      }
    }
    this.fallback = { ...opts.fallback };
    this.window = opts.window ?? 900;
    if (!(Number.isInteger(this.window) && this.window >= 3)) throw new WattsplitError('CONFIG_INVALID', `static power window=${this.window} must be an integer ≥ 3`, { details: { field: 'window', value: this.window } });
    this.minSamples = Math.max(3, Math.min(opts.minSamples ?? 60, this.window));
    this.q = opts.quantile ?? 0.05;
    this.refreshEvery = opts.refreshEvery ?? 10;
    if (!(Number.isInteger(this.refreshEvery) && this.refreshEvery >= 1 && this.refreshEvery <= this.window)) {
      throw new WattsplitError('CONFIG_INVALID', `static power refreshEvery=${this.refreshEvery} must be an integer 1-${this.window} (the window)`, { details: { field: 'refreshEvery', value: this.refreshEvery } });
    }
  }

  /** Adds one interval of a host; an interval with seq ≤ the host's last observed seq is ignored. */
  observe(iv: HostInterval): void {
    const last = this.seqs.get(iv.hostId);
    if (last !== undefined && iv.seq <= last) return;
    this.seqs.set(iv.hostId, iv.seq);
    const d = iv.durationS;
    if (!(d > 0)) return;
    let h = this.records.get(iv.hostId);
    if (!h) {
      h = new HostRecords(this.window);
      this.records.set(iv.hostId, h);
    }
    const unusable = new Set(iv.unusableSources ?? []);
    const cores = new Map<string, number>();
    let vmCpu = 0;
    let io = 0;
    for (const v of iv.vms) {
      const c = Math.max(0, v.cpuSeconds);
      vmCpu += c;
      cores.set(v.uuid, (cores.get(v.uuid) ?? 0) + c / d);
      io += v.blockReadBytes + v.blockWriteBytes + v.netRxBytes + v.netTxBytes;
    }
    const cpuTotal = iv.hostCpu.busySeconds + iv.hostCpu.idleSeconds;
    h.push({
      power: { rapl: iv.measured.rapl / d, gpu: iv.measured.gpu / d, bmc_rest: iv.measured.bmc_rest / d },
      usable: { rapl: !unusable.has('rapl'), gpu: !unusable.has('gpu') && iv.gpus.length > 0, bmc_rest: !unusable.has('bmc_rest') && iv.measured.bmc_rest > 0 },
      cores,
      overheadCores: Math.max(0, iv.hostCpu.busySeconds - vmCpu) / d,
      busyFrac: cpuTotal > 0 ? iv.hostCpu.busySeconds / cpuTotal : 0,
      ioBs: io / d,
      anyContext: iv.gpus.some((g) => g.contexts > 0),
      hasGpu: iv.gpus.length > 0,
    });
    if (h.cached === undefined || ++h.since >= this.refreshEvery) this.refresh(h);
  }

  /** Computes the host's estimate from its records now and restarts the count to the next refresh. */
  private refresh(h: HostRecords): void {
    h.cached = this.compute(h);
    h.since = 0;
  }

  lastSeq(hostId: string): number | undefined {
    return this.seqs.get(hostId);
  }

  hosts(): string[] {
    return [...this.seqs.keys()];
  }

  /** The host's state as plain JSON (undefined for a host never observed nor imported). */
  exportState(hostId: string): StaticPowerLearnerState | undefined {
    const lastSeq = this.seqs.get(hostId);
    if (lastSeq === undefined) return undefined;
    const h = this.records.get(hostId);
    const recs = (h?.recs ?? []).map((r): StaticPowerRecordJson => ({
      power: { ...r.power },
      usable: { ...r.usable },
      cores: [...r.cores],
      overheadCores: r.overheadCores,
      busyFrac: r.busyFrac,
      ioBs: r.ioBs,
      anyContext: r.anyContext,
      hasGpu: r.hasGpu,
    }));
    const c = h?.cached;
    return {
      ...learnerStateEnvelope(STATIC_POWER_LEARNER, hostId, lastSeq),
      learner: STATIC_POWER_LEARNER,
      window: h?.cap ?? this.window,
      next: h?.next ?? 0,
      recs,
      ...(c ? { estimate: { watts: { ...c.watts }, origin: c.origin, since: h.since } } : {}),
    };
  }

  /**
   * Replaces the host's state with an exported one (object or JSON text). Same `window` → the ring is
   * restored slot for slot (estimates equal to rounding: the regression's sums are recomputed from it); another window → the newest records are kept.
   * Throws LEARNER_STATE_INVALID naming the field; on a throw the host's state is unchanged.
   */
  importState(hostId: string, state: unknown): void {
    const { s, r, lastSeq } = openLearnerState(state, STATIC_POWER_LEARNER, hostId);
    const window = r.number(s.window, 'window', { integer: true, min: 1 });
    const recsIn = r.array(s.recs, 'recs');
    if (recsIn.length > window) r.fail('recs', `must hold at most window=${window} records (has ${recsIn.length})`, recsIn.length);
    const next = r.number(s.next, 'next', { integer: true, min: 0 });
    const expectNext = recsIn.length < window ? recsIn.length : undefined;
    if (expectNext !== undefined ? next !== expectNext % window : next >= window) r.fail('next', `must be ${expectNext !== undefined ? expectNext % window : `< window=${window}`} for ${recsIn.length} records`, next);
    const recs = recsIn.map((x, i) => readRec(r, x, `recs[${i}]`));
    let cached: { est: StaticPowerEstimate; since: number } | undefined;
    if (s.estimate !== undefined) {
      const e = r.object(s.estimate, 'estimate');
      const w = r.object(e.watts, 'estimate.watts');
      const watts = {} as Record<SourceName, number>;
      for (const src of SOURCES) watts[src] = r.number(w[src], `estimate.watts.${src}`, { min: 0 });
      cached = { est: { watts, origin: r.string(e.origin, 'estimate.origin') }, since: r.number(e.since, 'estimate.since', { integer: true, min: 0 }) };
    }
    const old = new HostRecords(window);
    old.restore(recs, next);
    let h = old;
    if (window !== this.window) {
      h = new HostRecords(this.window);
      const kept = old.chronological().slice(-this.window);
      h.restore(kept, kept.length % this.window);
    }
    // The saved estimate carries on (a replay of what was stored after it refreshes where an uninterrupted
    // learner would have); without one, or for another window, it is computed from the imported records now.
    if (cached && window === this.window && cached.since < this.refreshEvery) {
      h.cached = cached.est;
      h.since = cached.since;
    } else this.refresh(h);
    this.records.set(hostId, h);
    this.seqs.set(hostId, lastSeq);
  }

  /**
   * The host's estimate as last computed (after its first observed interval, then every `refreshEvery`-th;
   * the fallback for a host never seen). A copy: the caller may keep or change it.
   */
  estimate(hostId: string): StaticPowerEstimate {
    const h = this.records.get(hostId);
    if (!h) return this.compute(undefined);
    if (!h.cached) this.refresh(h);
    const c = h.cached!;
    return { watts: { ...c.watts }, origin: c.origin };
  }

  /** The estimate from a host's records as they are now (the fallback for none). */
  private compute(h: HostRecords | undefined): StaticPowerEstimate {
    const watts: Record<SourceName, number> = { ...this.fallback };
    const learned = new Set<SourceName>();
    if (h) {
      if (h.gram.n >= this.minSamples) {
        const w = this.raplStatic(h);
        if (w !== undefined) {
          watts.rapl = w;
          learned.add('rapl');
        }
      }
      // Per-record selections into scratch arrays (no array per estimate and source: an estimate runs every interval).
      const recs = h.recs;
      const ys = this.scratch(recs.length);
      let nGpu = 0;
      for (const r of recs) if (r.usable.gpu && !r.anyContext) ys[nGpu++] = r.power.gpu;
      if (nGpu >= Math.max(3, Math.floor(this.minSamples / 4))) {
        watts.gpu = quantile(ys.subarray(0, nGpu), 0.5, this.selectScratch(nGpu));
        learned.add('gpu');
      } else if (recs.length >= this.minSamples && recs.every((r) => !r.hasGpu)) {
        watts.gpu = 0;
        learned.add('gpu');
      }
      let nBmc = 0;
      for (const r of recs) if (r.usable.bmc_rest && r.usable.rapl && (r.usable.gpu || !r.hasGpu)) nBmc++;
      if (nBmc >= this.minSamples) {
        const w = this.bmcStatic(recs, nBmc, watts.rapl, watts.gpu);
        if (w !== undefined) {
          watts.bmc_rest = w;
          learned.add('bmc_rest');
        }
      }
    }
    const l = SOURCES.filter((s) => learned.has(s));
    const c = SOURCES.filter((s) => !learned.has(s));
    const origin = l.length === 0 ? 'configured' : c.length === 0 ? `learned:${l.join(',')}` : `learned:${l.join(',')};configured:${c.join(',')}`;
    return { watts, origin };
  }

  /**
   * RAPL static power: the intercept of the host's regression on per-VM and hypervisor cores (with load
   * scaling), from the running sums (rapl-gram.ts), bounded by the q-quantile of observed power; the
   * zero-load intercept of a fit on the busy fraction when the regression is degenerate.
   */
  private raplStatic(h: HostRecords): number | undefined {
    const y = this.scratch(h.recs.length);
    let n = 0;
    for (const r of h.recs) if (r.usable.rapl) y[n++] = r.power.rapl;
    const cap = quantile(y.subarray(0, n), this.q, this.selectScratch(n));
    // one column per VM present in at least 10 % of the records (others summed into one column); package
    // power per core rises with the host's load (turbo, uncore, voltage): each column also enters
    // multiplied by the busy fraction u, so P ≈ S + Σ_v c_v (b_v + b'_v u) extrapolates to 0 well
    const a = h.gram.intercept({ minShare: 0.1, work: this.interceptWork });
    if (a !== undefined && a > 0) return Math.min(a, cap);
    const recs = h.recs.filter((r) => r.usable.rapl);
    return fitIntercept(
      recs.map((r) => r.busyFrac),
      recs.map((r) => r.power.rapl),
      this.q,
    );
  }

  /** BMC-rest static power: regression on RAPL, GPU and I/O at static RAPL and GPU and no I/O (`n` records qualify). */
  private bmcStatic(recs: readonly Rec[], n: number, raplStatic: number, gpuStatic: number): number | undefined {
    const y = this.scratch(n).subarray(0, n); // the RAPL and GPU selections are done with it
    if (this.scratchX.length < 3 * n) this.scratchX = new Float64Array(3 * Math.max(n, this.window));
    const X = this.scratchX;
    let i = 0;
    for (const r of recs) {
      if (!(r.usable.bmc_rest && r.usable.rapl && (r.usable.gpu || !r.hasGpu))) continue;
      y[i] = r.power.bmc_rest;
      X[3 * i] = r.power.rapl - raplStatic;
      X[3 * i + 1] = r.power.gpu - gpuStatic;
      X[3 * i + 2] = r.ioBs / 1e8;
      i++;
    }
    const cap = quantile(y, this.q, this.selectScratch(n));
    const a = ridgeInterceptFlat(X, n, 3, y);
    if (a === undefined || !(a > 0)) return undefined;
    return Math.min(a, cap);
  }

  /** The regression's arrays, shared by every host's estimate (≈ 230 KB at 50 VMs, allocated once, not per estimate). */
  private readonly interceptWork = new InterceptWork();
  private scratchY = new Float64Array(0);
  /** bmcStatic's regressors (3 per record). */
  private scratchX = new Float64Array(0);
  private scratchQ = new Float64Array(0);
  /** A scratch array of at least n numbers (estimates run one at a time). */
  private scratch(n: number): Float64Array {
    if (this.scratchY.length < n) this.scratchY = new Float64Array(Math.max(n, this.window));
    return this.scratchY;
  }
  /** The quantiles' working copy (orderStatistic permutes it), apart from the scratch holding their values. */
  private selectScratch(n: number): Float64Array {
    if (this.scratchQ.length < n) this.scratchQ = new Float64Array(Math.max(n, this.window));
    return this.scratchQ;
  }
}

function readRec(r: LearnerStateReader, x: unknown, path: string): Rec {
  const o = r.object(x, path);
  const p = r.object(o.power, `${path}.power`);
  const u = r.object(o.usable, `${path}.usable`);
  const power = {} as Record<SourceName, number>;
  const usable = {} as Record<SourceName, boolean>;
  for (const src of SOURCES) {
    power[src] = r.number(p[src], `${path}.power.${src}`);
    usable[src] = r.boolean(u[src], `${path}.usable.${src}`);
  }
  return {
    power,
    usable,
    cores: new Map(r.pairs(o.cores, `${path}.cores`)),
    overheadCores: r.number(o.overheadCores, `${path}.overheadCores`),
    busyFrac: r.number(o.busyFrac, `${path}.busyFrac`),
    ioBs: r.number(o.ioBs, `${path}.ioBs`),
    anyContext: r.boolean(o.anyContext, `${path}.anyContext`),
    hasGpu: r.boolean(o.hasGpu, `${path}.hasGpu`),
  };
}

/**
 * Intercept of y ≈ a + Σ b_j x_j at x = 0, by ridge regression on standardised features (features with
 * no variance are dropped; λ shrinks ill-determined slopes towards 0, which keeps the intercept stable).
 */
export function ridgeIntercept(X: readonly (readonly number[])[], y: readonly number[], lambda = 1e-4): number | undefined {
  const n = y.length;
  if (n < 3 || X.length !== n) return undefined;
  const p = X[0]?.length ?? 0;
  const flat = new Float64Array(n * p);
  for (let i = 0; i < n; i++) for (let j = 0; j < p; j++) flat[i * p + j] = X[i]![j]!;
  return ridgeInterceptFlat(flat, n, p, y, lambda);
}

/** ridgeIntercept on a row-major n × p matrix (the same arithmetic, in the same order). */
export function ridgeInterceptFlat(X: Float64Array, n: number, p: number, y: ArrayLike<number>, lambda = 1e-4): number | undefined {
  if (n < 3 || y.length < n) return undefined;
  const mean = new Array<number>(p).fill(0);
  const sd = new Array<number>(p).fill(0);
  let ym = 0;
  for (let i = 0; i < n; i++) {
    ym += y[i]!;
    for (let j = 0; j < p; j++) mean[j]! += X[i * p + j]!;
  }
  ym /= n;
  for (let j = 0; j < p; j++) mean[j]! /= n;
  for (let i = 0; i < n; i++) for (let j = 0; j < p; j++) sd[j]! += (X[i * p + j]! - mean[j]!) ** 2;
  const keep: number[] = [];
  for (let j = 0; j < p; j++) {
    sd[j] = Math.sqrt(sd[j]! / n);
    if (sd[j]! > 1e-9) keep.push(j);
  }
  const k = keep.length;
  if (k === 0) return ym;
  const m: number[][] = Array.from({ length: k }, () => new Array<number>(k + 1).fill(0));
  const z = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < k; r++) z[r] = (X[i * p + keep[r]!]! - mean[keep[r]!]!) / sd[keep[r]!]!;
    const yc = y[i]! - ym;
    for (let r = 0; r < k; r++) {
      for (let c = 0; c < k; c++) m[r]![c]! += z[r]! * z[c]!;
      m[r]![k]! += z[r]! * yc;
    }
  }
  for (let r = 0; r < k; r++) m[r]![r]! += lambda * n;
  const b = solve(m);
  if (!b) return undefined;
  let a = ym;
  keep.forEach((j, r) => (a -= (b[r]! * mean[j]!) / sd[j]!));
  return Number.isFinite(a) ? a : undefined;
}

/** Intercept of a least-squares quadratic (or linear) fit, bounded to [0, q-quantile of y]; undefined when degenerate. */
export function fitIntercept(x: ArrayLike<number>, y: ArrayLike<number>, q = 0.05): number | undefined {
  const n = x.length;
  if (n < 3) return undefined;
  const cap = quantile(y, q);
  let xmin = Infinity;
  let xmax = -Infinity;
  for (let i = 0; i < n; i++) {
    xmin = Math.min(xmin, x[i]!);
    xmax = Math.max(xmax, x[i]!);
  }
  let a: number | undefined;
  if (xmax - xmin < 0.02) {
    a = cap; // no load variation: the low quantile is the best we know
  } else {
    const deg = xmax - xmin >= 0.1 && n >= 10 ? 2 : 1;
    const k = deg + 1;
    const m: number[][] = Array.from({ length: k }, () => new Array<number>(k + 1).fill(0));
    for (let i = 0; i < n; i++) {
      const xi = x[i]!;
      const pw = [1, xi, xi * xi];
      for (let r = 0; r < k; r++) {
        for (let c = 0; c < k; c++) m[r]![c]! += pw[r]! * pw[c]!;
        m[r]![k]! += pw[r]! * y[i]!;
      }
    }
    a = solve(m)?.[0];
  }
  if (a === undefined || !Number.isFinite(a)) return undefined;
  return Math.min(Math.max(0, a), cap);
}

/** The value at ⌊q·(n−1)⌋ of xs sorted as a Float64Array sorts (0 for none), by selection, not a sort (order-statistic.ts). */
function quantile(xs: ArrayLike<number>, q: number, scratch?: Float64Array): number {
  const n = xs.length;
  if (n === 0) return 0;
  return orderStatistic(xs, Math.min(n - 1, Math.max(0, Math.floor(q * (n - 1)))), scratch);
}

/** Gaussian elimination with partial pivoting on an augmented k×(k+1) matrix. */
function solve(m: number[][]): number[] | undefined {
  const k = m.length;
  for (let col = 0; col < k; col++) {
    let piv = col;
    for (let r = col + 1; r < k; r++) if (Math.abs(m[r]![col]!) > Math.abs(m[piv]![col]!)) piv = r;
    if (Math.abs(m[piv]![col]!) < 1e-12) return undefined;
    [m[col], m[piv]] = [m[piv]!, m[col]!];
    for (let r = 0; r < k; r++) {
      if (r === col) continue;
      const f = m[r]![col]! / m[col]![col]!;
      for (let c = col; c <= k; c++) m[r]![c]! -= f * m[col]![c]!;
    }
  }
  return m.map((row, i) => row[k]! / row[i]!);
}

/**
 * Online per-host tracking of the CPU-side signatures (RAPL and the wall-side rest): a Kalman filter per host
 * and source over the measured host power of every interval, on top of the trained class model.
 *
 *   P_s(interval) = S_s  +  Σ_terms m_t · cpu_t  +  Σ_k c_k · io_k                      (W)
 *
 * - S_s: the host's own static power (identical servers differ by ±10 %): prior the model's static power of the
 *   host (`staticPowerW`: its own where it was trained on, sd `trainedStaticSd` × that + 1 W; else the class's,
 *   sd `staticSd` × that + 2 W), random walk over a day (`staticTauS`) so slow drift is followed.
 * - m_t: a multiplier per term (VM, or the hypervisor) on the model's CPU part of its power cpu_t (W per busy
 *   core from the model × busy cores × the load factor of its socket); prior 1 with sd `knownSd` for a VM the
 *   model was trained on and `unseenSd` for one it was not (there cpu_t is the feature model's estimate, or
 *   the class's typical W per core): shrinkage towards the class. Where no VM of the interval it is taken up in
 *   carries perf counters (`unobservedPrior`), a trained VM's multiplier starts with the unseen VM's variance
 *   (its coefficient is an average over its training phases, which nothing observable follows); its stationary sd
 *   stays `knownSd`, and its prior mean moves from 1 towards the class's feature model for its features by their
 *   inverse variances in logs (`featurePrior`, `featureSd`). Ornstein–Uhlenbeck: the mean is pulled back
 *   to the prior with time constant `pullS` while the variance grows back to the prior's, so a VM whose
 *   energy per CPU-second changes (phases) is followed within minutes, and one that stops running drifts back
 *   to the class.
 * - c_k: one weight per I/O feature of the source (MB/s, GB/s of memory traffic from LLC misses when perf is
 *   exposed, GPU W on the wall side), shared by the host's VMs; prior the model's weight.
 * Floors: cpu_t is at least `floor` × the class's typical W per core × busy cores, and m_t ≥ `floor`, so a VM
 * that ran is never billed zero dynamic energy.
 *
 * Causal: `split` only reads the state (an interval is attributed with what was learned before it);
 * `observe` runs the filter's time and measurement updates, on clean intervals only (the trainer's rule: no
 * anomaly, no VM coming or going nor the interval after, no held frame, no live migration out), with
 * innovations beyond 4 sd down-weighted (Huber). Observation noise: (`noiseScale` × the model's
 * training residual)² + 1 W², except in an interval where no VM carries perf counters (`unobservedNoise`): once
 * a quarter of `noiseWindowS` of the host's innovations is seen, their mean square over `noiseWindowS` less the
 * part the state's uncertainty predicts (hᵀPh), at most the model's value and at least 1 W² — without perf the
 * training residual is mostly per-VM phases no observable followed, which the multipliers track. The posterior covariance gives every share's standard deviation (delta method on
 * E_v = S·dt·static share + (M − S·dt)·w_v / Σ w, w_t = m_t·cpu_t·standAlone_t + Σ_k c_k·io_t,k). Option
 * `ioAtOwnRate` (off by default) bills the I/O parts Σ_k c_k·io_t,k at their own power and scales only the
 * CPU parts to the rest.
 *
 * State per host: per source the state ids, means, priors, covariance, time of the last update and the
 * innovations' running statistics (`noise`), plus the model version it is relative to (a new version resets the
 * multipliers and I/O weights, keeps the static power and the innovations' statistics) and the seq of the last observed interval (an interval with seq ≤ it is ignored: a redelivered
 * interval is never learned twice). Exported and imported as plain JSON, learner name `cpu_signature`.
 * Memory: (terms + I/O + 1)² numbers per host and source; a VM not seen for `forgetAfterS` is dropped.
 */
import { learnerStateEnvelope, openLearnerState, type HostInterval, type LearnerHostState, type LearnerStateReader } from '@wattsplit/attribution';
import { WattsplitError } from '@wattsplit/wire';
import { IO_FEATURES, loadFactor, MODEL_SOURCES, ownLoads, SHAPE_FEATURES, SOURCE_IO, staticPowerW, termLoads, termPowers, type AdditiveModelJson, type ModelSource, type VmFeatures } from './additive-model.js';

export const CPU_SIGNATURE_LEARNER = 'cpu_signature';

export interface CpuSignatureFilterOptions {
  /** Time constant of the pull of a multiplier back to its prior, s. Default 1800. */
  pullS?: number;
  /** Prior sd of the multiplier of a VM the model was trained on. Default 0.35. */
  knownSd?: number;
  /** Prior sd of the multiplier of a VM the model has not seen. Default 0.6. */
  unseenSd?: number;
  /** Prior sd of the static power of a host the model was not trained on, as a fraction of the prior (plus 2 W). Default 0.1. */
  staticSd?: number;
  /** The same for a host the model was trained on (its own static power is the prior). Default 0.02. */
  trainedStaticSd?: number;
  /** Time constant of the static power's random walk, s. Default 86400. */
  staticTauS?: number;
  /** Floor of multipliers and of W per core relative to the class. Default 0.25. */
  floor?: number;
  /** Observation noise in units of the model's training residual. Default 1.5. */
  noiseScale?: number;
  /** A term not seen for this long is forgotten, s. Default 3600. */
  forgetAfterS?: number;
  /**
   * Where no VM of an interval carries perf counters, estimate the observation noise from the host's own
   * innovations (their mean square less the part the state's uncertainty predicts, over `noiseWindowS`) instead of
   * the model's training residual, which then is mostly per-VM signatures that drifted (phases no observable
   * followed) rather than noise. Bounded by the residual's value. Default true.
   */
  unobservedNoise?: boolean;
  /** Averaging time of those innovations, s; used once a quarter of it is seen. Default 600. */
  noiseWindowS?: number;
  /**
   * Where no VM of an interval carries perf counters, the multiplier of a VM the model was trained on starts as
   * uncertain as one it was not (variance `unseenSd`², instead of `knownSd`²) when the filter first takes it up
   * (a new host, a new VM, a new model version); its stationary sd, and so its process noise, stays `knownSd`.
   * Without IPC or memory traffic to follow, the trained coefficient is the VM's average over its training
   * window's phases, and how its current energy per CPU-second differs from that average is known no better than
   * for an unseen VM. Default true.
   */
  unobservedPrior?: boolean;
  /**
   * Where no VM of an interval carries perf counters, the prior a trained VM's multiplier starts from and is
   * pulled back to is the inverse-variance combination, in logs, of its own trained signature (1, with the sd it
   * starts with: `unseenSd` under `unobservedPrior`) and of the class's feature model for its current features
   * (the ratio of the feature model's CPU part to its own, bounded to [1/4, 4], sd `featureSd`). The feature model
   * is the prior of an unseen VM, in the same unit (W per busy core at load 0 × the load factor: trainer
   * `featureLoadFactor`); without perf the trained coefficient is an average over its training phases, and the
   * class's estimate says something of where it stands now. With perf, nothing changes. Default true.
   */
  featurePrior?: boolean;
  /**
   * Sd of the feature model's estimate in that combination (log scale). Default 1.5: with `unseenSd` 0.6 the
   * feature model's weight is 0.14 (development fleets, docs/accuracy-method.md "fifth pass": at 0.6, weight 0.5,
   * the small web VMs of the phases + memory-bound fleet were pulled past their truth).
   */
  featureSd?: number;
  /**
   * Bill each term's I/O part (memory traffic, disk, network: the filter's weights × its features) at that
   * power and scale only the CPU parts (at their stand-alone rates) to the rest of the measured dynamic energy.
   * Default false: every part is scaled alike. Measured on development fleets and not made the default
   * (docs/accuracy-method.md, "I/O parts at their own rate"): better on turbo / SMT / memory-bound fleets,
   * worse for database tenants where per-VM phases move memory traffic with CPU power.
   */
  ioAtOwnRate?: boolean;
}

const STATIC_ID = '__static__';
/** Index of `perf_present` in the shape features. */
const PERF_PRESENT = SHAPE_FEATURES.indexOf('perf_present');
/** Innovations beyond this many standard deviations are down-weighted to it. */
const GATE_SD = 4;
const IO_PREFIX = 'io:';
/** I/O sd floors per unit (W per MB/s, per GiB, per GPU W, per GB/s). */
const IO_SD_FLOOR: Readonly<Record<(typeof IO_FEATURES)[number], number>> = { block_read_mbs: 0.005, block_write_mbs: 0.005, net_rx_mbs: 0.005, net_tx_mbs: 0.005, mem_used_gib: 0.02, gpu_w: 0.005, dram_gbs: 0.2 };
/** Prior sd of an I/O weight relative to the trained one (tight: GPU power or memory traffic that barely moves is collinear with the static power). */
const IO_SD_REL = 0.2;

/** One interval's terms of one source, decomposed for the filter. */
export interface SourceTerms {
  /** Term ids (VM uuids, then the hypervisor). */
  ids: string[];
  /** CPU part of each term at multiplier 1, W (floored for terms with CPU time). */
  cpu: Float64Array;
  /** I/O features the source uses (indices into IO_FEATURES) and each term's values: io[j][t]. */
  ioK: number[];
  io: Float64Array[];
  /** The model's weight of each of those features. */
  ioW: number[];
  /** Whether the model was trained on the term (its prior is tighter). */
  known: boolean[];
  /**
   * Billing rate of each term relative to its rate at the shared operating point: max(1, lf(own load) /
   * lf(shared load)) with the model's RAPL load factor lf. Where a VM draws more per core alone than next to
   * its neighbours (turbo bins by active cores, SMT siblings, contention: lf falls with load), it is billed
   * by its stand-alone rate; where per-core power rises with load, by the shared one. Used for the split
   * only (the measurement update fits the shared operating point).
   */
  standAlone: Float64Array;
  /** The model's static power of the host, W, and whether it is the host's own (trained on it). */
  staticW: number;
  trainedHost: boolean;
  residualRmsW: number;
  /** Whether any term of the interval carries perf counters (the model's IPC and memory-traffic terms can follow it). */
  perfSeen: boolean;
}

const typicalCache = new WeakMap<AdditiveModelJson, number | undefined>();

/** The class's typical RAPL W per busy core (median of the trained terms' own), undefined for older models. */
function typicalCoreW(model: AdditiveModelJson): number | undefined {
  if (typicalCache.has(model)) return typicalCache.get(model);
  const xs = Object.values(model.sources.rapl.vmCoreW ?? {})
    .filter((x) => x > 0)
    .sort((a, b) => a - b);
  const t = xs.length ? xs[Math.floor((xs.length - 1) / 2)] : undefined;
  typicalCache.set(model, t);
  return t;
}

const featureOnlyCache = new WeakMap<AdditiveModelJson, AdditiveModelJson>();

/** The model without the trained terms' own signatures: every term's RAPL CPU part from the feature model (as an unseen VM's). */
function featureOnly(model: AdditiveModelJson): AdditiveModelJson {
  let m = featureOnlyCache.get(model);
  if (!m) {
    const { vmCoreW: _own, ...rapl } = model.sources.rapl;
    m = { ...model, sources: { ...model.sources, rapl } };
    featureOnlyCache.set(model, m);
  }
  return m;
}

/** Splits every term's model power into its CPU part (floored) and its I/O features. */
export function decomposeTerms(model: AdditiveModelJson, source: ModelSource, terms: readonly VmFeatures[], hostId: string, floor = 0.25): SourceTerms {
  const w = model.sources[source];
  const g = termPowers(model, source, terms);
  const ioK: number[] = [];
  IO_FEATURES.forEach((name, k) => {
    if ((SOURCE_IO[source] as readonly string[]).includes(name) && name !== 'mem_used_gib') ioK.push(k);
  });
  const T = terms.length;
  const cpu = new Float64Array(T);
  const io = ioK.map(() => new Float64Array(T));
  const ownW = model.sources.rapl.vmCoreW;
  let typ = typicalCoreW(model);
  if (typ === undefined) {
    // older models: the interval's median W per core
    const r = termPowers(model, 'rapl', terms)
      .map((x, t) => (terms[t]!.cpu > 0 ? x / terms[t]!.cpu : NaN))
      .filter((x) => x > 0)
      .sort((a, b) => a - b);
    typ = r[Math.floor((r.length - 1) / 2)] ?? 0;
  }
  const typSource = source === 'rapl' ? typ : w.fromRapl ? typ * w.cpuScaleW : 0;
  terms.forEach((f, t) => {
    let ioPart = 0;
    for (let k = 0; k < f.io.length; k++) ioPart += (f.io[k] ?? 0) * (w.io[k] ?? 0);
    let c = Math.max(0, g[t]! - ioPart);
    if (f.cpu > 0) c = Math.max(c, floor * typSource * f.cpu);
    cpu[t] = c;
    ioK.forEach((k, j) => (io[j]![t] = Math.max(0, f.io[k] ?? 0)));
  });
  const standAlone = new Float64Array(T).fill(1);
  const lf = model.sources.rapl.load;
  if (lf[0] !== 0 || lf[1] !== 0) {
    const shared = termLoads(model, terms);
    const own = ownLoads(model, terms);
    for (let t = 0; t < T; t++) standAlone[t] = Math.max(1, loadFactor(lf, own[t]!) / loadFactor(lf, shared[t]!));
  }
  return {
    ids: terms.map((f) => f.id),
    cpu,
    standAlone,
    ioK,
    io,
    ioW: ioK.map((k) => Math.max(0, w.io[k] ?? 0)),
    known: terms.map((f) => ownW?.[f.id] !== undefined || w.vm[f.id] !== undefined),
    staticW: staticPowerW(model, source, hostId),
    trainedHost: w.hostStaticW?.[hostId] !== undefined,
    residualRmsW: w.residualRmsW,
    perfSeen: terms.some((f) => f.shape[PERF_PRESENT]! > 0),
  };
}

/**
 * A Kalman filter over named states, each an Ornstein–Uhlenbeck process around its prior. Invariants: every
 * array has `ids.length` entries, `P` is ids.length² (row-major, symmetric), `index` maps each id to its slot.
 */
class SignatureState {
  ids: string[] = [];
  mean: number[] = [];
  prior: number[] = [];
  /** Stationary (prior) sd. */
  sd: number[] = [];
  /** Time the state was last seen in an interval, s (unix). */
  seen: number[] = [];
  P = new Float64Array(0);
  index = new Map<string, number>();
  /** Unix s of the last time update. */
  t = 0;
  /** Running means of the squared innovation and of its part predicted by the state (hᵀPh), W², and the seconds they cover. */
  e2 = 0;
  hph = 0;
  seenS = 0;

  get n(): number {
    return this.ids.length;
  }

  /** Adds a state with its prior mean, stationary sd (the OU process's) and starting sd (default: the stationary one). */
  add(id: string, prior: number, sd: number, t: number, sd0 = sd): number {
    const n = this.n;
    const P = new Float64Array((n + 1) * (n + 1));
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) P[i * (n + 1) + j] = this.P[i * n + j]!;
    P[n * (n + 1) + n] = sd0 * sd0;
    this.P = P;
    this.ids.push(id);
    this.mean.push(prior);
    this.prior.push(prior);
    this.sd.push(sd);
    this.seen.push(t);
    this.index.set(id, n);
    return n;
  }

  /** Keeps the slots for which `keep` holds. */
  compact(keep: (i: number) => boolean): void {
    const slots = this.ids.map((_, i) => i).filter(keep);
    if (slots.length === this.n) return;
    const n = this.n;
    const m = slots.length;
    const P = new Float64Array(m * m);
    slots.forEach((a, i) => slots.forEach((b, j) => (P[i * m + j] = this.P[a * n + b]!)));
    this.P = P;
    this.ids = slots.map((i) => this.ids[i]!);
    this.mean = slots.map((i) => this.mean[i]!);
    this.prior = slots.map((i) => this.prior[i]!);
    this.sd = slots.map((i) => this.sd[i]!);
    this.seen = slots.map((i) => this.seen[i]!);
    this.index = new Map(this.ids.map((id, i) => [id, i]));
  }

  /** OU time update over dt seconds with per-slot time constants. */
  predict(dt: number, tau: (i: number) => number): void {
    if (!(dt > 0)) return;
    const n = this.n;
    const rho = this.ids.map((_, i) => Math.exp(-dt / tau(i)));
    for (let i = 0; i < n; i++) {
      this.mean[i] = this.prior[i]! + rho[i]! * (this.mean[i]! - this.prior[i]!);
      // upper triangle, mirrored: P stays exactly symmetric (its export keeps one triangle)
      for (let j = i; j < n; j++) this.P[i * n + j] = this.P[j * n + i] = this.P[i * n + j]! * (rho[i]! * rho[j]!);
      this.P[i * n + i] = this.P[i * n + i]! + this.sd[i]! ** 2 * (1 - rho[i]! ** 2);
    }
  }

  /**
   * Measurement update for y = hᵀx + noise (variance r); h sparse as (slot, value) pairs. An innovation beyond
   * `gate` standard deviations is down-weighted to that size (Huber): one interval whose energy and CPU time
   * cover different spans cannot move the state far.
   */
  update(slots: readonly number[], h: readonly number[], y: number, r: number, gate: number): { e2: number; hph: number } | undefined {
    const n = this.n;
    const Ph = new Float64Array(n);
    let pred = 0;
    slots.forEach((a, q) => {
      pred += h[q]! * this.mean[a]!;
      for (let i = 0; i < n; i++) Ph[i] = Ph[i]! + this.P[i * n + a]! * h[q]!;
    });
    let s = r;
    slots.forEach((a, q) => (s += h[q]! * Ph[a]!));
    if (!(s > 0) || !Number.isFinite(s)) return undefined;
    const e = y - pred;
    const out = { e2: Math.min(e * e, gate * gate * s), hph: s - r };
    if (e * e > gate * gate * s) s = (e * e) / (gate * gate);
    for (let i = 0; i < n; i++) {
      this.mean[i] = this.mean[i]! + (Ph[i]! * e) / s;
      for (let j = i; j < n; j++) this.P[i * n + j] = this.P[j * n + i] = this.P[i * n + j]! - (Ph[i]! * Ph[j]!) / s;
      if (this.P[i * n + i]! < 1e-12) this.P[i * n + i] = 1e-12;
    }
    return out;
  }
}

/**
 * One host's filters. Invariants: `lastSeq` is the seq of the last interval observed; `prevVms` / `prevPartial`
 * describe that interval (an interval after a partial one, or after a change of the VM set, carries CPU time
 * deferred over a cgroup gap and is not learned from); `nominalS` is the running typical interval length.
 */
class HostSignatures {
  lastSeq: number | undefined;
  prevVms: string[] = [];
  prevPartial = false;
  nominalS = 0;
  /** `${hardwareClass}@v${version}` the multipliers are relative to. */
  modelKey = '';
  readonly sources = new Map<ModelSource, SignatureState>();
}

/** Persisted form of one source's filter. */
export interface SignatureStateJson {
  t: number;
  ids: string[];
  mean: number[];
  prior: number[];
  sd: number[];
  seen: number[];
  /** Upper triangle of the covariance, row by row. */
  cov: number[];
  /** The innovations' running mean square, its part predicted by the state, and the seconds seen (absent in older states: none seen). */
  noise?: { e2: number; hph: number; seenS: number };
}

/** `CpuSignatureFilter.exportState` output. */
export interface CpuSignatureState extends LearnerHostState {
  learner: typeof CPU_SIGNATURE_LEARNER;
  modelKey: string;
  /** The last observed interval's VMs (sorted) and whether one was partial; the typical interval length, s. */
  prevVms: string[];
  prevPartial: boolean;
  nominalS: number;
  sources: Partial<Record<ModelSource, SignatureStateJson>>;
}

/** One source's split of one interval: joules per term and the uncertainty of each term's total. */
export interface SignatureSplit {
  /** Static joules (≤ measured). */
  staticJ: number;
  /** Dynamic joules per term (Σ = measured − static, when any term has power). */
  dynamicJ: Float64Array;
  /** Sd of each term's total (its static share by `staticFrac` + its dynamic), J. */
  sdJ: Float64Array;
  /** Whether any term of the interval carries perf counters. */
  perfSeen: boolean;
}

export function modelKey(model: AdditiveModelJson): string {
  return `${model.hardwareClass}@v${model.version}`;
}

export class CpuSignatureFilter {
  private readonly hosts = new Map<string, HostSignatures>();
  /** Per host, the decomposition of the interval `split` last saw (`observe` of the same interval reuses it). */
  private readonly memo = new Map<string, { seq: number; model: AdditiveModelJson; bySource: Map<ModelSource, SourceTerms> }>();
  private readonly o: Required<Omit<CpuSignatureFilterOptions, 'ioAtOwnRate' | 'unobservedNoise' | 'unobservedPrior' | 'featurePrior'>>;
  private readonly ioAtOwnRate: boolean;
  private readonly unobservedNoise: boolean;
  private readonly unobservedPrior: boolean;
  private readonly featurePrior: boolean;
  /** Per decomposition, each term's feature-model CPU part / its own (computed when a prior needs it). */
  private readonly featureRatios = new WeakMap<SourceTerms, Float64Array>();

  constructor(opts: CpuSignatureFilterOptions = {}) {
    const { ioAtOwnRate, unobservedNoise, unobservedPrior, featurePrior, ...numeric } = opts;
    this.ioAtOwnRate = ioAtOwnRate ?? false;
    this.unobservedNoise = unobservedNoise ?? true;
    this.unobservedPrior = unobservedPrior ?? true;
    this.featurePrior = featurePrior ?? true;
    this.o = { pullS: 1800, knownSd: 0.35, unseenSd: 0.6, staticSd: 0.1, trainedStaticSd: 0.02, staticTauS: 86400, floor: 0.25, noiseScale: 1.5, forgetAfterS: 3600, noiseWindowS: 600, featureSd: 1.5, ...numeric };
    for (const [k, v] of Object.entries(this.o)) if (!(Number.isFinite(v) && v > 0)) throw new WattsplitError('CONFIG_INVALID', `cpu signature filter option ${k}=${v} must be a finite number > 0`, { details: { field: k, value: v } });
  }

  private decompose(iv: HostInterval, model: AdditiveModelJson, source: ModelSource, terms: readonly VmFeatures[]): SourceTerms {
    let m = this.memo.get(iv.hostId);
    if (!m || m.seq !== iv.seq || m.model !== model) {
      m = { seq: iv.seq, model, bySource: new Map() };
      this.memo.set(iv.hostId, m);
    }
    let d = m.bySource.get(source);
    if (!d) {
      d = decomposeTerms(model, source, terms, iv.hostId, this.o.floor);
      m.bySource.set(source, d);
    }
    return d;
  }

  private tau(st: SignatureState): (i: number) => number {
    return (i) => (st.ids[i] === STATIC_ID || st.ids[i]!.startsWith(IO_PREFIX) ? this.o.staticTauS : this.o.pullS);
  }

  private staticPriorSd(w: number, trained: boolean): number {
    return (trained ? this.o.trainedStaticSd : this.o.staticSd) * w + (trained ? 1 : 2);
  }

  /**
   * Prior mean and sd of a state id (static, I/O weight, term multiplier); `feature` gives the decomposition's
   * feature-model ratios (`featurePrior`).
   */
  private priorOf(st: SourceTerms, id: string, t: number, feature: () => Float64Array): { prior: number; sd: number } {
    if (id === STATIC_ID) return { prior: st.staticW, sd: this.staticPriorSd(st.staticW, st.trainedHost) };
    if (id.startsWith(IO_PREFIX)) {
      const j = st.ioK.indexOf(IO_FEATURES.indexOf(id.slice(IO_PREFIX.length) as (typeof IO_FEATURES)[number]));
      const w = st.ioW[j] ?? 0;
      return { prior: w, sd: Math.max(IO_SD_REL * w, IO_SD_FLOOR[id.slice(IO_PREFIX.length) as (typeof IO_FEATURES)[number]] ?? 0.05) };
    }
    if (!st.known[t]) return { prior: 1, sd: this.o.unseenSd };
    if (!this.featurePrior || st.perfSeen) return { prior: 1, sd: this.o.knownSd };
    const ratio = feature()[t]!;
    if (!(ratio > 0)) return { prior: 1, sd: this.o.knownSd };
    // inverse-variance combination in logs of the own signature (log 1 = 0, its starting variance) and the feature model's
    const own = this.startSd(st, id, t, this.o.knownSd) ** 2;
    const cls = this.o.featureSd ** 2;
    return { prior: Math.exp((own / (own + cls)) * Math.log(Math.min(4, Math.max(0.25, ratio)))), sd: this.o.knownSd };
  }

  /** Each term's CPU part under the class's feature model (its own signature left out) / its CPU part in `d`. */
  private featureRatio(d: SourceTerms, model: AdditiveModelJson, source: ModelSource, terms: readonly VmFeatures[]): Float64Array {
    let r = this.featureRatios.get(d);
    if (!r) {
      const f = decomposeTerms(featureOnly(model), source, terms, '', this.o.floor);
      r = d.cpu.map((c, t) => (c > 0 && d.known[t] ? f.cpu[t]! / c : 1));
      this.featureRatios.set(d, r);
    }
    return r;
  }

  /**
   * Starting sd of a state: its prior sd, except a trained VM's multiplier first seen in an interval where no VM
   * carries perf counters (`unobservedPrior`), which starts as uncertain as an unseen VM's (`unseenSd`).
   */
  private startSd(st: SourceTerms, id: string, t: number, sd: number): number {
    return this.unobservedPrior && !st.perfSeen && t >= 0 && id !== STATIC_ID && !id.startsWith(IO_PREFIX) ? Math.max(sd, this.o.unseenSd) : sd;
  }

  /** Learns one interval (after it was attributed). Intervals with seq ≤ the host's last observed are ignored. */
  observe(iv: HostInterval, model: AdditiveModelJson | undefined, terms: readonly VmFeatures[]): void {
    let h = this.hosts.get(iv.hostId);
    if (h?.lastSeq !== undefined && iv.seq <= h.lastSeq) return;
    if (!h) {
      h = new HostSignatures();
      this.hosts.set(iv.hostId, h);
    }
    h.lastSeq = iv.seq;
    const vmIds = iv.vms.map((v) => v.uuid).sort();
    const partial = iv.vms.some((v) => !(v.presence >= 0.999) || v.state === 'gone' || v.state === 'migrating_in');
    const afterPartial = h.prevPartial || h.prevVms.length !== vmIds.length || vmIds.some((id, i) => id !== h.prevVms[i]);
    h.prevVms = vmIds;
    h.prevPartial = partial;
    const long = h.nominalS > 0 && iv.durationS > 1.5 * h.nominalS;
    if (iv.durationS > 0) h.nominalS = h.nominalS > 0 ? 0.98 * h.nominalS + 0.02 * Math.min(iv.durationS, 1.5 * h.nominalS) : iv.durationS;
    // learn from clean intervals only (the trainer's rule, training-selection.ts): no anomaly, no VM coming or
    // going, not after one, no held frame, no live migration out
    if (!model || !(iv.durationS > 0) || iv.anomalies.length > 0 || partial || afterPartial || long || iv.vms.some((v) => v.state === 'migrating_out')) return;
    const key = modelKey(model);
    if (h.modelKey !== key) {
      // multipliers and I/O weights are relative to the model: a new version starts them at its priors
      for (const st of h.sources.values()) st.compact((i) => st.ids[i] === STATIC_ID);
      h.modelKey = key;
    }
    const tS = iv.t1UnixNs / 1e9;
    const unusable = new Set(iv.unusableSources ?? []);
    for (const source of MODEL_SOURCES) {
      const M = iv.measured[source];
      if (unusable.has(source) || !(M > 0)) continue;
      const d = this.decompose(iv, model, source, terms);
      let st = h.sources.get(source);
      if (!st) {
        st = new SignatureState();
        st.t = tS;
        h.sources.set(source, st);
      }
      st.predict(tS - st.t, this.tau(st));
      st.t = Math.max(st.t, tS);
      const slots: number[] = [];
      const hv: number[] = [];
      const slot = (id: string, t: number): number => {
        let i = st.index.get(id);
        if (i === undefined) {
          const p = this.priorOf(d, id, t, () => this.featureRatio(d, model, source, terms));
          i = st.add(id, p.prior, p.sd, tS, this.startSd(d, id, t, p.sd));
        }
        st.seen[i] = tS;
        return i;
      };
      slots.push(slot(STATIC_ID, -1));
      hv.push(1);
      d.ioK.forEach((k, j) => {
        let x = 0;
        for (const v of d.io[j]!) x += v;
        if (x > 0) {
          slots.push(slot(`${IO_PREFIX}${IO_FEATURES[k]}`, -1));
          hv.push(x);
        }
      });
      d.ids.forEach((id, t) => {
        const x = d.cpu[t]!;
        if (x > 0) {
          slots.push(slot(id, t));
          hv.push(x);
        }
      });
      const rModel = (this.o.noiseScale * d.residualRmsW) ** 2 + 1;
      const own = this.unobservedNoise && !d.perfSeen && st.seenS >= this.o.noiseWindowS / 4;
      const r = own ? Math.min(rModel, Math.max(1, st.e2 - st.hph)) : rModel;
      const inn = st.update(slots, hv, M / iv.durationS, r, GATE_SD);
      if (inn) {
        const w = Math.min(1, Math.max(iv.durationS / this.o.noiseWindowS, iv.durationS / (iv.durationS + st.seenS)));
        st.e2 += w * (inn.e2 - st.e2);
        st.hph += w * (inn.hph - st.hph);
        st.seenS += iv.durationS;
      }
      // the floors: static and I/O weights ≥ 0, multipliers ≥ floor
      for (let i = 0; i < st.n; i++) {
        const id = st.ids[i]!;
        st.mean[i] = Math.max(id === STATIC_ID || id.startsWith(IO_PREFIX) ? 0 : this.o.floor, st.mean[i]!);
      }
      const forget = tS - this.o.forgetAfterS;
      st.compact((i) => st.ids[i] === STATIC_ID || st.seen[i]! >= forget);
    }
  }

  /** The host's current static power of a source (W) and its sd; the model's prior for a host not seen. */
  staticPower(hostId: string, source: ModelSource, model: AdditiveModelJson): { w: number; sd: number } {
    const st = this.hosts.get(hostId)?.sources.get(source);
    const i = st?.index.get(STATIC_ID);
    if (st && i !== undefined) return { w: st.mean[i]!, sd: Math.sqrt(st.P[i * st.n + i]!) };
    const w = staticPowerW(model, source, hostId);
    return { w, sd: this.staticPriorSd(w, model.sources[source].hostStaticW?.[hostId] !== undefined) };
  }

  /** A term's current multiplier (1 = the model), undefined when the filter holds none. */
  multiplier(hostId: string, source: ModelSource, termId: string): number | undefined {
    const h = this.hosts.get(hostId);
    const st = h?.sources.get(source);
    const i = st?.index.get(termId);
    return st && i !== undefined ? st.mean[i] : undefined;
  }

  /**
   * Splits measured joules M of one source over dt seconds (read-only). `staticFrac[t]`: the term's share
   * of the static energy under the idle policy (0 for the hypervisor); `staticOverride` replaces the
   * learned static power (W) when given.
   */
  split(iv: HostInterval, model: AdditiveModelJson, source: ModelSource, terms: readonly VmFeatures[], staticFrac: Float64Array, staticOverride?: number): SignatureSplit {
    const dt = Math.max(0, iv.durationS);
    const M = Math.max(0, iv.measured[source]);
    const d = this.decompose(iv, model, source, terms);
    const h = this.hosts.get(iv.hostId);
    const st = h?.sources.get(source);
    const sameModel = h?.modelKey === modelKey(model);
    // local parameter vector: [static, io..., terms...] with the state's slots (or -1: prior, uncorrelated)
    const K = d.ioK.length;
    const T = terms.length;
    const L = 1 + K + T;
    const mean = new Float64Array(L);
    const slotOf = new Int32Array(L).fill(-1);
    const priorVar = new Float64Array(L);
    const ids = [STATIC_ID, ...d.ioK.map((k) => `${IO_PREFIX}${IO_FEATURES[k]}`), ...d.ids];
    ids.forEach((id, a) => {
      const t = a - 1 - K;
      const i = st && (a === 0 || sameModel) ? st.index.get(id) : undefined;
      if (st && i !== undefined) {
        slotOf[a] = i;
        mean[a] = st.mean[i]!;
      } else {
        const p = this.priorOf(d, id, t, () => this.featureRatio(d, model, source, terms));
        mean[a] = p.prior;
        priorVar[a] = this.startSd(d, id, t, p.sd) ** 2;
      }
    });
    if (staticOverride !== undefined) {
      mean[0] = staticOverride;
      slotOf[0] = -1;
      priorVar[0] = 0;
    }
    const cov = (a: number, b: number): number => {
      const i = slotOf[a]!;
      const j = slotOf[b]!;
      if (i >= 0 && j >= 0) return st!.P[i * st!.n + j]!;
      return a === b ? priorVar[a]! : 0;
    };
    const S = Math.min(M, Math.max(0, mean[0]!) * dt);
    const D = M - S;
    // each term's weight w_t (CPU part at its billing, stand-alone, rate + I/O part), and its I/O part alone, W
    const w = new Float64Array(T);
    const io = new Float64Array(T);
    let W = 0;
    let I = 0;
    for (let t = 0; t < T; t++) {
      let x = Math.max(this.o.floor, mean[1 + K + t]!) * d.cpu[t]! * d.standAlone[t]!;
      let y = 0;
      for (let j = 0; j < K; j++) {
        const z = Math.max(0, mean[1 + j]!) * d.io[j]![t]!;
        x += z;
        y += z;
      }
      w[t] = x;
      W += x;
      io[t] = y;
      I += y;
    }
    const dynamicJ = new Float64Array(T);
    const sdJ = new Float64Array(T);
    if (!(W > 0)) return { staticJ: S, dynamicJ, sdJ, perfSeen: d.perfSeen };
    // Proportional (default): E_t = D·w_t/W, every part scaled by D/W. I/O at its own rate (`ioAtOwnRate`):
    // E_t = io_t·dt + R·c_t/C with c_t = w_t − io_t, C = W − I, R = D − I·dt. The stand-alone rates of the CPU
    // parts sum to more than the package draws where per-core power falls with load; scaled down with them, the
    // I/O parts (DRAM power, linear in memory traffic: each VM's own) were taken from the VMs whose power is mostly
    // I/O. Where the I/O parts alone exceed D, or no term has a CPU part, the proportional split is used.
    const C = W - I;
    const R = D - I * dt;
    const own = this.ioAtOwnRate && C > 0 && R > 0;
    const DW = own ? R / C : D / W;
    for (let t = 0; t < T; t++) dynamicJ[t] = own ? io[t]! * dt + (R * (w[t]! - io[t]!)) / C : (D * w[t]!) / W;
    // delta method: ∇E_t = f_t·u + k·a_t + dt·staticFrac_t·e_static (f_t the term's share of the scaled part, u
    // the gradient of the scale's numerator spread by it, a_t the term's own entries, ∂w_t: cpu_t·standAlone_t for
    // its multiplier, its I/O features for theirs; proportional: k = D/W; own rate: k = 1, its multiplier's entry
    // at R/C·cpu_t·standAlone_t and its I/O features at dt). Checked by finite differences (filter-io-own-rate.test.ts).
    const u = new Float64Array(L);
    u[0] = -dt;
    for (let j = 0; j < K; j++) {
      let IO = 0;
      for (let t = 0; t < T; t++) IO += d.io[j]![t]!;
      u[1 + j] = own ? -IO * dt : (-D * IO) / W;
    }
    for (let t = 0; t < T; t++) u[1 + K + t] = own ? -DW * d.cpu[t]! * d.standAlone[t]! : (-D * d.cpu[t]! * d.standAlone[t]!) / W;
    const Cu = new Float64Array(L);
    const n = st?.n ?? 0;
    const P = st?.P;
    for (let a = 0; a < L; a++) {
      const ua = u[a]!;
      if (ua === 0) continue;
      const ia = slotOf[a]!;
      if (ia < 0 || !P) {
        Cu[a] = Cu[a]! + priorVar[a]! * ua;
        continue;
      }
      for (let b = 0; b < L; b++) {
        const ib = slotOf[b]!;
        if (ib >= 0) Cu[b] = Cu[b]! + P[ib * n + ia]! * ua;
      }
    }
    let uCu = 0;
    for (let a = 0; a < L; a++) uCu += u[a]! * Cu[a]!;
    const k = own ? 1 : DW;
    const aIdx: number[] = [];
    const aVal: number[] = [];
    for (let t = 0; t < T; t++) {
      const f = own ? (w[t]! - io[t]!) / C : w[t]! / W;
      aIdx.length = 0;
      aVal.length = 0;
      if (d.cpu[t]! > 0) {
        aIdx.push(1 + K + t);
        aVal.push(own ? DW * d.cpu[t]! * d.standAlone[t]! : d.cpu[t]! * d.standAlone[t]!);
      }
      for (let j = 0; j < K; j++) {
        if (d.io[j]![t]! > 0) {
          aIdx.push(1 + j);
          aVal.push(own ? dt * d.io[j]![t]! : d.io[j]![t]!);
        }
      }
      let aCu = 0;
      let aCa = 0;
      let aC0 = 0;
      aIdx.forEach((a, p) => {
        aCu += aVal[p]! * Cu[a]!;
        aC0 += aVal[p]! * cov(a, 0);
        aIdx.forEach((b, q) => (aCa += aVal[p]! * aVal[q]! * cov(a, b)));
      });
      const s = dt * (staticFrac[t] ?? 0);
      const v = f * f * uCu + 2 * f * k * aCu + k * k * aCa + 2 * s * (f * Cu[0]! + k * aC0) + s * s * cov(0, 0);
      sdJ[t] = Math.sqrt(Math.max(0, v));
    }
    return { staticJ: S, dynamicJ, sdJ, perfSeen: d.perfSeen };
  }

  lastSeq(hostId: string): number | undefined {
    return this.hosts.get(hostId)?.lastSeq;
  }

  hostIds(): string[] {
    return [...this.hosts.keys()];
  }

  exportState(hostId: string): CpuSignatureState | undefined {
    const h = this.hosts.get(hostId);
    if (h?.lastSeq === undefined) return undefined;
    const sources: Partial<Record<ModelSource, SignatureStateJson>> = {};
    for (const [s, st] of h.sources) {
      const cov: number[] = [];
      for (let i = 0; i < st.n; i++) for (let j = i; j < st.n; j++) cov.push(st.P[i * st.n + j]!);
      sources[s] = { t: st.t, ids: [...st.ids], mean: [...st.mean], prior: [...st.prior], sd: [...st.sd], seen: [...st.seen], cov, noise: { e2: st.e2, hph: st.hph, seenS: st.seenS } };
    }
    return { ...learnerStateEnvelope(CPU_SIGNATURE_LEARNER, hostId, h.lastSeq), learner: CPU_SIGNATURE_LEARNER, modelKey: h.modelKey, prevVms: [...h.prevVms], prevPartial: h.prevPartial, nominalS: h.nominalS, sources };
  }

  /** Replaces the host's state with an exported one; throws LEARNER_STATE_INVALID naming the field (state unchanged). */
  importState(hostId: string, state: unknown): void {
    const { s, r, lastSeq } = openLearnerState(state, CPU_SIGNATURE_LEARNER, hostId);
    const h = new HostSignatures();
    h.lastSeq = lastSeq;
    h.modelKey = r.string(s.modelKey, 'modelKey');
    h.prevVms = r.array(s.prevVms, 'prevVms').map((x, i) => r.string(x, `prevVms[${i}]`));
    h.prevPartial = r.boolean(s.prevPartial, 'prevPartial');
    h.nominalS = r.number(s.nominalS, 'nominalS', { min: 0 });
    const srcs = r.object(s.sources, 'sources');
    for (const [name, v] of Object.entries(srcs)) {
      if (!(MODEL_SOURCES as readonly string[]).includes(name)) r.fail(`sources.${name}`, `is not a source (${MODEL_SOURCES.join(', ')})`, name);
      h.sources.set(name as ModelSource, readSignatureState(r, v, `sources.${name}`));
    }
    this.hosts.set(hostId, h);
  }
}

function readSignatureState(r: LearnerStateReader, v: unknown, path: string): SignatureState {
  const o = r.object(v, path);
  const ids = r.array(o.ids, `${path}.ids`).map((x, i) => r.string(x, `${path}.ids[${i}]`));
  const n = ids.length;
  if (new Set(ids).size !== n) r.fail(`${path}.ids`, 'must not repeat an id', ids);
  if (!ids.includes(STATIC_ID)) r.fail(`${path}.ids`, `must hold ${JSON.stringify(STATIC_ID)}`, ids);
  const st = new SignatureState();
  st.t = r.number(o.t, `${path}.t`);
  st.ids = ids;
  st.mean = r.numbers(o.mean, `${path}.mean`, n);
  st.prior = r.numbers(o.prior, `${path}.prior`, n);
  st.sd = r.numbers(o.sd, `${path}.sd`, n);
  st.sd.forEach((x, i) => {
    if (!(x > 0)) r.fail(`${path}.sd[${i}]`, 'must be > 0', x);
  });
  st.seen = r.numbers(o.seen, `${path}.seen`, n);
  const cov = r.numbers(o.cov, `${path}.cov`, (n * (n + 1)) / 2);
  st.P = new Float64Array(n * n);
  let k = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      st.P[i * n + j] = st.P[j * n + i] = cov[k]!;
      k++;
    }
    if (!(st.P[i * n + i]! > 0)) r.fail(`${path}.cov`, `variance of ${JSON.stringify(ids[i])} must be > 0`, st.P[i * n + i]);
  }
  st.index = new Map(ids.map((id, i) => [id, i]));
  if (o.noise !== undefined) {
    const z = r.object(o.noise, `${path}.noise`);
    st.e2 = r.number(z.e2, `${path}.noise.e2`, { min: 0 });
    st.hph = r.number(z.hph, `${path}.noise.hph`, { min: 0 });
    st.seenS = r.number(z.seenS, `${path}.noise.seenS`, { min: 0 });
  }
  return st;
}

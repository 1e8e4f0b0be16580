/**
 * Trains the additive host model (additive-model.ts) of one hardware class from host totals alone (no per-VM
 * ground truth): P_s = static_s + Σ_terms g_s(term) per source s, fitted to each interval's measured power.
 *
 * 1. Feature model (TensorFlow.js, RAPL only): an MLP from a term's normalised shape features to its W per
 *    busy core, non-negative I/O weights and the static power, by Adam on minibatches of intervals packed into
 *    padded [N, V] tensors (V = most terms in one interval; empty slots have no CPU). No VM identity here.
 * 2. Closed form, on the plain-JS apply path (termPowers), from the feature model's term powers:
 *    - each VM's socket from the per-package RAPL counters (placement.ts) and, from the same counters, the
 *      shape of the RAPL load factor (`packageLoadFactor`);
 *    - RAPL: per-VM multipliers, static power, I/O weights and the load factor by ridge NNLS (`refitPerVm`),
 *      stored as each VM's own W per core (`vmCoreW`); the per-VM IPC gain (`fitIpcGain`), and with it the
 *      package load factor once more (kept where the totals fit better); then the feature model once more with
 *      the final load factor inside its fit (`featureLoadFactor`: its W per busy core at load 0, for the priors of
 *      unseen VMs and the online filter's class estimate); then each host's static power re-estimated from its own
 *      lowest-load intervals (`anchorStaticToLowLoad`, static-anchor.ts);
 *    - wall-side rest (bmc_rest): one shared multiple of each term's RAPL power, then per-VM log-multipliers
 *      pulled towards it (`bmcPerVm`).
 * Training residuals and mean power per source are measured on the apply path, as the model will be used.
 */
import type { HostInterval } from '@wattsplit/attribution';
import { silentLogger, WattsplitError, type Logger } from '@wattsplit/wire';
import { IO_FEATURES, intervalFeatures, loadFactor, MODEL_SOURCES, OVERHEAD_ID, SHAPE_FEATURES, socketLoads, SOURCE_IO, staticPowerW, termLoads, termPowers, type AdditiveModelJson, type ModelSource, type SourceWeights, type VmFeatures } from './additive-model.js';
import { LoadFactorNormalEquations, type LoadFactorOptions } from './load-factor-fit.js';
import { fitPlacement, packageZones } from './placement.js';
import { anchorStaticToLowLoad, type StaticAnchorOptions } from './static-anchor.js';
import { isUsableForTraining, selectTrainingIntervals } from './training-selection.js';
import { initTf, tf } from './tf-backend.js';
import { mulberry32 } from '@wattsplit/attribution';

export interface AdditiveTrainOptions {
  hardwareClass?: string;
  version?: number;
  /** Hidden units of the shape MLP. Default 12. */
  hidden?: number;
  /** Optimiser steps per source. Default 600. */
  steps?: number;
  batchSize?: number;
  learningRate?: number;
  /** Ridge weight pulling per-VM multipliers to the feature model, relative to the VM's own data. Default 0.005. */
  vmRegularisation?: number;
  /** Use at most this many intervals (evenly sampled). Default 20000. */
  maxIntervals?: number;
  /**
   * Static power per source, W, when it is known (measured idle at commissioning, vendor data): fixed in the
   * fit instead of learned as the intercept, which removes the intercept/slope trade-off of an extrapolated fit.
   */
  fixedStaticW?: Partial<Record<ModelSource, number>>;
  /**
   * Infer each VM's CPU package from the per-package RAPL counters and scale its RAPL term with the load of
   * its own package (placement.ts). Default true; hosts with one package use the host load either way.
   */
  socketPlacement?: boolean;
  /**
   * Fit the RAPL load factor to the package counters one by one (one curve, an idle power per package) rather
   * than to the host total. Default true; needs a placement.
   */
  packageLoadFactor?: boolean;
  /**
   * Once the per-VM signatures and the load factor are fitted, refit the RAPL feature model (tfjs) with the load
   * factor inside it (each term's output × lf(its package's load)), so that its W per busy core is at load 0, the
   * unit of the signatures and of the apply path, which multiplies every term by lf: the prior of a VM the model
   * has not seen, and the online filter's class estimate for a trained one (cpu-signature-filter.ts
   * `featurePrior`). Fitted to host totals without it, it is at the load the VMs ran at. The signatures' own
   * shrinkage target stays the first fit. Default true; needs the package load factor.
   */
  featureLoadFactor?: boolean;
  /**
   * Re-estimate each host's RAPL static power from its own lowest-load intervals (static-anchor.ts), combined
   * with the fit's intercept by inverse variance. Default on; `false` keeps the fit's intercept. Not used with
   * `fixedStaticW.rapl`.
   */
  staticAnchor?: StaticAnchorOptions | false;
  /**
   * Prior sd of each VM's RAPL multiplier around the feature model (1): the ridge weight is at least the first
   * fit's residual variance / sd² (a second, shrunk fit). Default 0.35; 0 or Infinity: the first fit alone.
   */
  vmPriorSd?: number;
  /** Per-VM multipliers on the wall-side rest too (DRAM on hosts without DRAM zones, NICs, disks). Default true. */
  bmcPerVm?: boolean;
  /** Prior standard deviation of the per-VM wall-side multipliers around the shared one (1). Default 0.5. */
  bmcPriorSd?: number;
  /** Shape features the MLP leaves out (additive-model.ts `ignoredShape`). Default ['freq_ghz']. */
  ignoreShape?: string[];
  /** Learn the class's IPC gain on trained VMs' energy per CPU-second (`fitIpcGain`). Default true; a number fixes it. */
  ipcGain?: boolean | number;
  /**
   * Fit the RAPL weight of memory traffic (`dram_gbs`) to the hosts' DRAM zones instead of the host total, where
   * they are exposed (`dramWeightFromZones`). Default true.
   */
  dramFromZones?: boolean;
  /**
   * Refit the package load factor's shape once the IPC gain is known (its CPU parts then follow each VM's IPC).
   * Default true; only where the load factor comes from the package counters and a gain was kept.
   */
  ipcLoadFactor?: boolean;
  /** Learn per-VM coefficients (VM identity). Default true. */
  perVm?: boolean;
  /** How the load factor's (β₁, β₂) box is searched (load-factor-fit.ts `search`). Default 'coarse-to-fine'; 'grid' is the reference. */
  loadFactorSearch?: 'coarse-to-fine' | 'grid';
  /**
   * Fit only intervals free of measurement artefacts (training-selection.ts: VMs vanishing or coming back,
   * held frames, anomalies). Default true; with fewer than 30 such intervals every usable one is fitted.
   */
  cleanOnly?: boolean;
  seed?: number;
  logger?: Logger;
  now?: () => Date;
  /**
   * Called between the fit's stages and every 50 optimiser steps, on the training's thread; it may block (the
   * collector's training worker waits there while ingest is behind: collector training-gate.ts).
   */
  yieldPoint?: (stage: string) => void;
}

interface Packed {
  n: number;
  V: number;
  /** Shape features per term (SHAPE_FEATURES.length). */
  F: number;
  /** I/O features per term (IO_FEATURES.length). */
  K: number;
  shape: Float32Array; // [n, V, F] normalised
  cpu: Float32Array; // [n, V]
  io: Float32Array; // [n, V, K]
  y: Record<ModelSource, Float32Array>; // [n] W
}

function quantile(xs: Float32Array, q: number): number {
  const s = Float32Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.max(0, Math.floor(q * (s.length - 1))))] ?? 0;
}

const prng = mulberry32;

/**
 * Trains one model per call over intervals of one hardware class. Throws MODEL_TRAINING_FAILED with a
 * reason when there is too little usable data.
 */
export async function trainAdditiveModel(intervals: readonly HostInterval[], opts: AdditiveTrainOptions = {}): Promise<AdditiveModelJson> {
  const logger = opts.logger ?? silentLogger;
  const t0 = performance.now();
  let usable = intervals.filter(isUsableForTraining);
  const allUsable = usable;
  if (usable.length < 30) {
    throw new WattsplitError('MODEL_TRAINING_FAILED', `additive model: need at least 30 usable intervals to train, got ${usable.length} of ${intervals.length}`, { details: { usable: usable.length, total: intervals.length } });
  }
  if (opts.cleanOnly ?? true) {
    const sel = selectTrainingIntervals(usable);
    if (sel.intervals.length >= 30) usable = sel.intervals;
    logger.debug({ hardwareClass: opts.hardwareClass, kept: sel.intervals.length, excluded: sel.excluded, fallback: sel.intervals.length < 30 }, 'additive model: training intervals selected');
  }
  const maxN = opts.maxIntervals ?? 20000;
  const step = Math.max(1, usable.length / maxN);
  const sample: HostInterval[] = [];
  for (let x = 0; Math.floor(x) < usable.length && sample.length < maxN; x += step) sample.push(usable[Math.floor(x)]!);
  const backend = await initTf(logger);
  opts.yieldPoint?.('features');

  // ---- features, normalisation, vm table
  const terms = sample.map((iv) => intervalFeatures(iv));
  const F = SHAPE_FEATURES.length;
  const ignoredShape = (opts.ignoreShape ?? ['freq_ghz']).filter((x) => (SHAPE_FEATURES as readonly string[]).includes(x));
  const off = ignoredShape.map((x) => (SHAPE_FEATURES as readonly string[]).indexOf(x));
  for (const ts of terms) for (const f of ts) for (const i of off) f.shape[i] = 0;
  const K = IO_FEATURES.length;
  const mean = new Array<number>(F).fill(0);
  const sq = new Array<number>(F).fill(0);
  let cnt = 0;
  const vmIds = new Set<string>();
  const perVm = opts.perVm ?? true;
  for (const ts of terms) {
    for (const f of ts) {
      if (!(f.cpu > 0)) continue;
      cnt++;
      for (let i = 0; i < F; i++) {
        mean[i] = mean[i]! + f.shape[i]!;
        sq[i] = sq[i]! + f.shape[i]! ** 2;
      }
      if (perVm) vmIds.add(f.id);
    }
  }
  const std = mean.map((m, i) => {
    const mu = cnt > 0 ? m / cnt : 0;
    const v = cnt > 0 ? sq[i]! / cnt - mu * mu : 0;
    return v > 1e-12 ? Math.sqrt(v) : 1;
  });
  for (let i = 0; i < F; i++) mean[i] = cnt > 0 ? mean[i]! / cnt : 0;
  const V = Math.max(1, ...terms.map((t) => t.length));
  const n = sample.length;
  const p: Packed = { n, V, F, K, shape: new Float32Array(n * V * F), cpu: new Float32Array(n * V), io: new Float32Array(n * V * K), y: { rapl: new Float32Array(n), bmc_rest: new Float32Array(n) } };
  terms.forEach((ts, r) => {
    ts.forEach((f, v) => {
      const o = r * V + v;
      p.cpu[o] = f.cpu;
      for (let i = 0; i < F; i++) p.shape[o * F + i] = (f.shape[i]! - mean[i]!) / std[i]!;
      for (let k = 0; k < K; k++) p.io[o * K + k] = f.io[k]!;
    });
    for (const s of MODEL_SOURCES) p.y[s][r] = Math.max(0, sample[r]!.measured[s]) / sample[r]!.durationS;
  });

  const sources = {} as Record<ModelSource, SourceWeights>;
  // 1. the feature model g(f) by gradient descent (tfjs); 2. per-VM multipliers by ridge NNLS (below)
  opts.yieldPoint?.('feature-model');
  sources.rapl = await trainFeatureModel(p, 'rapl', opts);
  // bmc_rest (fans, PSU losses, disks, NICs): a shared multiple of each term's RAPL power plus I/O, fitted below
  sources.bmc_rest = { ...sources.rapl, fromRapl: true, cpuScaleW: 0.1, io: IO_FEATURES.map(() => 0), vm: {}, load: [0, 0], staticW: quantile(p.y.bmc_rest, 0.02) };
  const model: AdditiveModelJson = {
    kind: 'wattsplit.additive_model',
    formatVersion: 1,
    hardwareClass: opts.hardwareClass ?? sample[0]!.hardwareClass,
    version: opts.version ?? 1,
    trainedAt: (opts.now ?? (() => new Date()))().toISOString(),
    trainIntervals: n,
    trainSeconds: 0,
    norm: { mean, std },
    sources,
    backend,
    ...(ignoredShape.length ? { ignoredShape } : {}),
  };
  // every known term's own W per core under the feature model (its mean over training): the starting point of
  // its signature, so per-interval wobble of the MLP does not leak into the fit
  if (perVm) model.sources.rapl.vmCoreW = meanCoreW(model, terms);
  // which socket each VM runs on (per-package RAPL counters), for the socket-load factor of the RAPL terms
  const fitSet = new Set(usable);
  const pf = (opts.socketPlacement ?? true) ? fitPlacement(allUsable, (iv) => fitSet.has(iv)) : undefined;
  const placement = pf?.placement;
  if (pf && placement) {
    // training intervals from before a VM moved (restart, return) use that epoch's placement
    model.placement = { sockets: placement.sockets, vm: { ...placement.vm, ...pf.earlier } };
    sample.forEach((iv, r) => {
      for (const f of terms[r]!) {
        const k = pf.keyOf(iv, f.id);
        if (k) f.placeKey = k;
      }
    });
  }
  opts.yieldPoint?.('placement');
  // the load factor's shape from the package counters (shared curve, idle per package), where they exist
  const search = opts.loadFactorSearch ?? 'coarse-to-fine';
  // every load-factor system of this training: one fallback warning per label, and the fallbacks counted
  const lf: LoadFactorShared = { search, logger, warned: new Set<string>(), fallbacks: { count: 0 } };
  const zoneLoad = placement && (opts.packageLoadFactor ?? true) ? packageLoadFactor(model, terms, sample, lf) : undefined;
  const vmRidge = opts.vmRegularisation ?? 0.005;
  // the DRAM weight from the DRAM zones where the host exposes them (memory traffic from LLC misses drives DRAM
  // power linearly): fitted on the host total it is collinear with memory-bound VMs' CPU time and took their
  // package power (development fleet 101: 2.7 W per GB/s against a true 0.9; database VMs' own W per core 0.4–1.5
  // against 5), so the split's stand-alone rate, which scales the CPU part, missed them
  const dramW = (opts.dramFromZones ?? true) ? dramWeightFromZones(sample, terms) : undefined;
  let rapl = { source: 'rapl', terms, measuredW: p.y.rapl, vmRidge, perVm, lf, fixedStaticW: opts.fixedStaticW?.rapl, fixedLoad: zoneLoad, ...(dramW !== undefined ? { fixedIo: { [DRAM_K]: dramW } } : {}) } as const;
  const coreW0 = model.sources.rapl.vmCoreW ? { ...model.sources.rapl.vmCoreW } : undefined;
  // shrinkage towards the feature model that grows with how badly the host totals fit (phases, hidden memory
  // traffic): a prior of ±`vmPriorSd` on each VM's multiplier (λ = σ² / sd², as on the wall side), so a small VM
  // whose share the totals cannot pin down stays near the class instead of landing on 0 or 5 × its class
  const vmSd = opts.vmPriorSd ?? 0.35;
  const raplFit = (): number => {
    if (coreW0) model.sources.rapl.vmCoreW = { ...coreW0 };
    const mse = refitPerVm(model, rapl);
    if (!(perVm && coreW0 && vmSd > 0 && Number.isFinite(vmSd))) return mse;
    opts.yieldPoint?.('per-vm-shrunk');
    model.sources.rapl.vmCoreW = { ...coreW0 };
    return refitPerVm(model, { ...rapl, ridgeFloor: mse / vmSd ** 2 });
  };
  const raplMse = raplFit();
  if (perVm && coreW0 && opts.ipcGain !== false) fitIpcGain(model, sample, terms, p.y.rapl, raplMse, raplFit, logger, typeof opts.ipcGain === 'number' ? opts.ipcGain : undefined);
  // with an IPC gain the package counters' CPU parts follow each VM's IPC too: the shared load factor, fitted
  // before the gain was known, can bend to the phases' power swings, and the host intercepts take the
  // difference (development fleet 107, SMT + phases: 1 + 0.29u − 0.39u² where the truth falls, −0.375u; host
  // static +8 to +13 W; docs/accuracy-method.md); refit its shape with the gain and keep it where the host totals
  // fit better (the IPC gain's own rule)
  if (zoneLoad && model.sources.rapl.ipcGain !== undefined && opts.ipcLoadFactor !== false) {
    const refitted = packageLoadFactor(model, terms, sample, lf);
    if (refitted && (refitted[0] !== zoneLoad[0] || refitted[1] !== zoneLoad[1])) {
      const before = rapl;
      const mse0 = residualMse(model, sample, terms, p.y.rapl);
      rapl = { ...rapl, fixedLoad: refitted };
      raplFit();
      // both sides measured the same way: the apply path's residual (raplFit returns the solver's, which differs)
      const mse1 = residualMse(model, sample, terms, p.y.rapl);
      logger.debug({ hardwareClass: model.hardwareClass, before: zoneLoad, after: refitted, mseBefore: mse0, mseAfter: mse1 }, 'additive model: package load factor refitted with the IPC gain');
      if (!(Number.isFinite(mse1) && (!Number.isFinite(mse0) || mse1 < mse0))) {
        rapl = before;
        raplFit();
      }
    }
  }
  if (zoneLoad && (opts.featureLoadFactor ?? true)) {
    // the feature model again, each term's output × the final load factor at its package's load inside the fit,
    // so its W per busy core is at load 0 (the apply path multiplies it by the load factor, for an unseen VM too);
    // the priors' model only: the per-VM signatures above were shrunk towards the first fit (made at load 0 too,
    // their intercepts moved by up to −19 W on development fleet 106 without perf); its MLP replaces the first
    // one's, nothing else
    const lfTerm = new Float32Array(n * V).fill(1);
    const fl = model.sources.rapl.load;
    terms.forEach((ts, r) => termLoads(model, ts).forEach((u, v) => (lfTerm[r * V + v] = loadFactor(fl, u))));
    opts.yieldPoint?.('feature-model');
    const f = await trainFeatureModel(p, 'rapl', opts, lfTerm);
    Object.assign(model.sources.rapl, { W1: f.W1, b1: f.b1, W2: f.W2, b2: f.b2, cpuScaleW: f.cpuScaleW });
  }
  opts.yieldPoint?.('static-anchor');
  if (opts.fixedStaticW?.rapl === undefined && opts.staticAnchor !== false) {
    const anchored = anchorStaticToLowLoad(model, 'rapl', sample.map((iv, r) => ({ hostId: iv.hostId, terms: terms[r]!, powerW: p.y.rapl[r]! })), opts.staticAnchor || {});
    logger.debug({ hardwareClass: model.hardwareClass, hosts: anchored }, 'additive model: host static power anchored to low-load intervals');
  }
  // wall-side rest: first one shared multiple of the RAPL power (fans and PSU losses follow the heat), then
  // per-VM multipliers pulled towards it (DRAM on hosts without DRAM zones, wall-side effects of I/O); the
  // pull is stronger than on RAPL because the wall reading is coarser (BMC power in whole watts on some hosts):
  // it grows with the shared fit's residual variance σ², as a prior of ±`bmcPriorSd` on each multiplier
  // (λ = σ² / sd²), so small VMs on a noisy wall reading stay shared
  const bmc = { source: 'bmc_rest', terms, measuredW: p.y.bmc_rest, lf, fixedStaticW: opts.fixedStaticW?.bmc_rest } as const;
  const shared = refitPerVm(model, { ...bmc, vmRidge: 0, perVm: false });
  opts.yieldPoint?.('bmc-per-vm');
  if (opts.bmcPerVm ?? true) refitPerVm(model, { ...bmc, vmRidge, perVm: true, ridgeFloor: shared / (opts.bmcPriorSd ?? 0.5) ** 2 });
  opts.yieldPoint?.('residuals');
  // training residuals on the plain-JS apply path (what will be used)
  for (const s of MODEL_SOURCES) {
    const { mse, meanW } = residuals(model, s, sample, terms, p.y[s]);
    model.sources[s].residualRmsW = Math.sqrt(mse);
    model.sources[s].meanPowerW = meanW;
  }
  if (placement) model.placement = placement;
  model.trainSeconds = (performance.now() - t0) / 1000;
  logger.info({ hardwareClass: model.hardwareClass, intervals: n, vms: vmIds.size, seconds: model.trainSeconds, backend, raplRmsW: model.sources.rapl.residualRmsW, bmcRmsW: model.sources.bmc_rest.residualRmsW, denseFallbacks: lf.fallbacks.count }, 'additive model trained');
  return model;
}

/**
 * The class's IPC gain (additive-model.ts `ipcGain`): each VM's CPU-weighted mean IPC over training is its
 * reference; the gain is the least-squares slope of the fit's residual on Σ_VMs cpuPart · (ipc / ref − 1)
 * (orthogonal to each VM's own W per core by construction, since the ratio averages to 1 over the VM's CPU
 * time), clamped to [0, 3]. The RAPL fit is then redone with it and kept only if its residual is lower;
 * otherwise the model has no gain. A VM's energy per CPU-second that moves with what it executes (phases)
 * is thereby followed interval by interval where perf is exposed.
 */
function fitIpcGain(model: AdditiveModelJson, sample: readonly HostInterval[], terms: readonly VmFeatures[][], y: Float32Array, mse0: number, refit: () => number, logger: Logger, fixed?: number): void {
  const w = model.sources.rapl;
  const ipcK = SHAPE_FEATURES.indexOf('ipc');
  const num = new Map<string, number>();
  const den = new Map<string, number>();
  for (const ts of terms) {
    for (const f of ts) {
      const ipc = f.shape[ipcK] ?? 0;
      if (!(f.cpu > 0) || !(ipc > 0) || w.vmCoreW?.[f.id] === undefined) continue;
      num.set(f.id, (num.get(f.id) ?? 0) + f.cpu * ipc);
      den.set(f.id, (den.get(f.id) ?? 0) + f.cpu);
    }
  }
  const ref: Record<string, number> = {};
  for (const [id, d] of den) if (d > 0) ref[id] = num.get(id)! / d;
  const ids = Object.keys(ref);
  if (ids.length === 0) return;
  const col = new Map(ids.map((id, i) => [id, i]));
  const V = ids.length;
  // normal equations of the residual on each VM's column x_v = cpuPart_v · (ipc / ref − 1) (gain 1, others 0)
  const A = new Float64Array(V * V);
  const b = new Float64Array(V);
  let sxy = 0;
  let sxx = 0;
  w.vmIpcRef = ref;
  const xs: number[] = [];
  const cs: number[] = [];
  sample.forEach((iv, r) => {
    w.ipcGain = 0;
    const g0 = termPowers(model, 'rapl', terms[r]!);
    w.ipcGain = 1;
    const g1 = termPowers(model, 'rapl', terms[r]!);
    let pred = staticPowerW(model, 'rapl', iv.hostId);
    xs.length = 0;
    cs.length = 0;
    let x = 0;
    g0.forEach((g, t) => {
      pred += g;
      const c = col.get(terms[r]![t]!.id);
      const d = g1[t]! - g;
      if (c === undefined || d === 0) return;
      xs.push(d);
      cs.push(c);
      x += d;
    });
    const res = y[r]! - pred;
    sxy += x * res;
    sxx += x * x;
    cs.forEach((a, p) => {
      b[a] = b[a]! + xs[p]! * res;
      cs.forEach((c, q) => (A[a * V + c] = A[a * V + c]! + xs[p]! * xs[q]!));
    });
  });
  const classGain = fixed ?? (sxx > 0 ? Math.min(IPC_GAIN_MAX, Math.max(0, sxy / sxx)) : 0);
  const drop = (): void => {
    delete w.ipcGain;
    delete w.vmIpcRef;
    delete w.vmIpcGain;
  };
  // each VM's own gain, pulled to the class's by a prior of ±IPC_GAIN_SD (ridge λ = residual variance / sd²):
  // a VM whose IPC moves without its power (a batch job's I/O phase) keeps its power, one whose power follows
  // its IPC (phases) follows it; Gauss–Seidel on the small SPD system
  const lambda = mse0 / IPC_GAIN_SD ** 2;
  const g = new Float64Array(V).fill(classGain);
  if (fixed === undefined) {
    for (let sweep = 0; sweep < 100; sweep++) {
      let moved = 0;
      for (let a = 0; a < V; a++) {
        const diag = A[a * V + a]! + lambda;
        if (!(diag > 0)) continue;
        let rhs = b[a]! + lambda * classGain;
        for (let c = 0; c < V; c++) if (c !== a) rhs -= A[a * V + c]! * g[c]!;
        const next = Math.min(IPC_GAIN_MAX, Math.max(0, rhs / diag));
        moved = Math.max(moved, Math.abs(next - g[a]!));
        g[a] = next;
      }
      if (moved < 1e-6) break;
    }
  }
  if (!(classGain >= 0.05) && !g.some((x) => x >= 0.05)) return drop();
  w.ipcGain = classGain;
  if (fixed === undefined) w.vmIpcGain = Object.fromEntries(ids.map((id, i) => [id, g[i]!]));
  const mse = refit();
  logger.debug({ hardwareClass: model.hardwareClass, classGain, mseBefore: mse0, mseAfter: mse }, 'additive model: IPC gain');
  if (mse < mse0 || fixed !== undefined) return;
  drop();
  refit();
}

/**
 * Mean squared residual (W²) of one source's host totals under the model as it stands, on the apply path
 * (static power + termPowers), and the mean measured power; 0 and 0 for no intervals.
 */
function residuals(model: AdditiveModelJson, s: ModelSource, sample: readonly HostInterval[], terms: readonly VmFeatures[][], y: Float32Array): { mse: number; meanW: number } {
  let se = 0;
  let sum = 0;
  sample.forEach((iv, r) => {
    let pred = staticPowerW(model, s, iv.hostId);
    for (const g of termPowers(model, s, terms[r]!)) pred += g;
    se += (pred - y[r]!) ** 2;
    sum += y[r]!;
  });
  return sample.length > 0 ? { mse: se / sample.length, meanW: sum / sample.length } : { mse: 0, meanW: 0 };
}

/** Mean squared residual of the RAPL host totals under the model as it stands, W². */
function residualMse(model: AdditiveModelJson, sample: readonly HostInterval[], terms: readonly VmFeatures[][], y: Float32Array): number {
  return residuals(model, 'rapl', sample, terms, y).mse;
}

/** Mean W per busy core of every term under the feature model (MLP, no multiplier, no load factor). */
function meanCoreW(model: AdditiveModelJson, terms: readonly VmFeatures[][]): Record<string, number> {
  const { vmCoreW: _own, ...w } = model.sources.rapl;
  const bare: AdditiveModelJson = { ...model, sources: { ...model.sources, rapl: { ...w, vm: {}, load: [0, 0], io: w.io.map(() => 0) } } };
  const num = new Map<string, number>();
  const den = new Map<string, number>();
  for (const ts of terms) {
    const g = termPowers(bare, 'rapl', ts);
    ts.forEach((f, t) => {
      if (!(f.cpu > 0)) return;
      num.set(f.id, (num.get(f.id) ?? 0) + g[t]!);
      den.set(f.id, (den.get(f.id) ?? 0) + f.cpu);
    });
  }
  const out: Record<string, number> = {};
  for (const [id, d] of den) out[id] = d > 0 ? (num.get(id) ?? 0) / d : 0;
  return out;
}

/** The RAPL CPU part of every term: the feature model with each VM's own multiplier (`vmCoreW`, kept), no per-VM `vm` terms, no load factor, no I/O. */
function raplCpuParts(model: AdditiveModelJson, terms: readonly VmFeatures[][]): number[][] {
  const w = model.sources.rapl;
  const bare: AdditiveModelJson = { ...model, sources: { ...model.sources, rapl: { ...w, vm: {}, load: [0, 0], io: w.io.map(() => 0) } } };
  return terms.map((ts) => termPowers(bare, 'rapl', ts));
}

/**
 * The RAPL load factor (β₁, β₂) from the per-package counters: for every package s of every host,
 *   P_package,s = idle_s + (1 + β₁·u_s + β₂·u_s²) · Σ_terms w_t,s · c_t · cpuTerm_t
 * with one curve for the hardware class, an idle power per package, a free multiplier per term (VM, or the
 * hypervisor) and w_t,s the term's placement (even for the hypervisor and unplaced VMs). The packages of a host
 * run at different loads at the same time, which pins the curve down where the host total leaves a valley
 * along which the intercept and the curvature trade off. Undefined when no host has package counters for all
 * its sockets.
 */
function packageLoadFactor(model: AdditiveModelJson, terms: readonly VmFeatures[][], sample: readonly HostInterval[], lf: LoadFactorShared): [number, number] | undefined {
  const pl = model.placement;
  if (!pl) return undefined;
  const S = pl.sockets;
  const byHost = new Map<string, HostInterval[]>();
  for (const iv of sample) {
    let l = byHost.get(iv.hostId);
    if (!l) byHost.set(iv.hostId, (l = []));
    l.push(iv);
  }
  const zones = new Map<string, string[]>();
  const icol = new Map<string, number>();
  for (const [h, l] of byHost) {
    const z = packageZones(l);
    if (z.length !== S) continue;
    zones.set(h, z);
    for (let s = 0; s < S; s++) icol.set(`${h}#${s}`, icol.size);
  }
  if (zones.size === 0) return undefined;
  const nI = icol.size;
  const ids = new Map<string, number>();
  for (const ts of terms) for (const f of ts) if (f.cpu > 0 && !ids.has(f.id)) ids.set(f.id, nI + ids.size);
  const N = nI + ids.size;
  const parts = raplCpuParts(model, terms);
  const ne = new LoadFactorNormalEquations(N, { ...lf, label: `${model.hardwareClass} package load factor` });
  const cols = new Int32Array(N);
  const vals = [new Float64Array(N), new Float64Array(N), new Float64Array(N)];
  sample.forEach((iv, r) => {
    const z = zones.get(iv.hostId);
    const ts = terms[r]!;
    const sl = z ? socketLoads(model, ts) : undefined;
    if (!z || !sl || !(iv.durationS > 0)) return;
    for (let s = 0; s < S; s++) {
      const target = (iv.raplZones[z[s]!] ?? NaN) / iv.durationS;
      if (!Number.isFinite(target)) continue;
      const u = sl.us[s]!;
      let m = 0;
      ts.forEach((f, t) => {
        const v = parts[r]![t]!;
        const ws = sl.ws[t];
        const wt = ws ? (ws[s] ?? 0) : 1 / S;
        if (!(v > 0) || !(wt > 0)) return;
        cols[m] = ids.get(f.id)!;
        vals[0]![m] = v * wt;
        vals[1]![m] = v * wt * u;
        vals[2]![m] = v * wt * u * u;
        m++;
      });
      ne.addRow({ m, cols, v: vals, ucols: [icol.get(`${iv.hostId}#${s}`)!], uvals: [1], target });
    }
  });
  if (ne.rows < 60) return undefined;
  const best = ne.search({ ridge: [], ridgeTo: 1, free: Array.from({ length: nI }, (_, i) => i) });
  return best ? [best.b1, best.b2] : undefined;
}

/** What the load-factor systems of one training share (LoadFactorOptions): the search, where a dense fallback is reported (once per label), and the fallbacks' count. */
type LoadFactorShared = Required<Pick<LoadFactorOptions, 'search' | 'logger' | 'warned' | 'fallbacks'>>;

interface PerVmRefit {
  source: ModelSource;
  /** The training intervals' terms, as in the feature model. */
  terms: readonly VmFeatures[][];
  /** Measured power of `source` per training interval, W. */
  measuredW: Float32Array;
  /** Ridge weight pulling each multiplier to 1, relative to the VM's own Σ cpuTerm². */
  vmRidge: number;
  /** One multiplier per VM; otherwise one shared multiplier for every term. */
  perVm: boolean;
  /** Static power, W, fixed instead of fitted. */
  fixedStaticW?: number | undefined;
  /** Load factor (β₁, β₂) fixed instead of searched. */
  fixedLoad?: readonly [number, number] | undefined;
  /** Floor on every multiplier's ridge weight, absolute (in the units of AᵀA). Default 0. */
  ridgeFloor?: number;
  /** The load-factor solver's settings shared by the training's systems (search, fallback reporting). */
  lf: LoadFactorShared;
  /** I/O weights fixed instead of fitted (index into IO_FEATURES → W per unit): subtracted from the target. */
  fixedIo?: Readonly<Record<number, number>>;
}

const DRAM_K = IO_FEATURES.indexOf('dram_gbs');
/** Bounds and prior sd (around the class's) of a VM's IPC gain. */
const IPC_GAIN_MAX = 4;
const IPC_GAIN_SD = 1;
const TOP_ZONE = /^[^:]+:\d+$/;
const SUB_ZONE = /^[^:]+:\d+:\d+$/;

/**
 * W per GB/s of memory traffic (LLC misses × 64 B, `dram_gbs`) from the hosts' DRAM zones: per host,
 *   Σ DRAM zones (W) = idle_h + w · Σ_terms dram_gbs + v · hypervisor cores
 * by least squares with an intercept per host. DRAM zones are the sub-zones a host's measured RAPL total
 * counts (the agent bills packages plus DRAM; core and uncore sub-zones are inside the package and not billed):
 * a host qualifies when its top-level zones plus its sub-zones sum to the measured RAPL energy (median
 * within 1 %). Undefined when no host qualifies, the traffic barely moves, or the fit explains less than half
 * of the zones' variance (no DRAM-like zone).
 */
function dramWeightFromZones(sample: readonly HostInterval[], terms: readonly VmFeatures[][]): number | undefined {
  const byHost = new Map<string, number[]>();
  sample.forEach((_iv, r) => {
    const h = sample[r]!.hostId;
    let l = byHost.get(h);
    if (!l) byHost.set(h, (l = []));
    l.push(r);
  });
  // pooled regression on per-host centred values: y = w·x + v·z
  let sxx = 0;
  let sxz = 0;
  let szz = 0;
  let sxy = 0;
  let szy = 0;
  let syy = 0;
  let rows = 0;
  for (const rs of byHost.values()) {
    const ys: number[] = [];
    const xs: number[] = [];
    const zs: number[] = [];
    const rel: number[] = [];
    for (const r of rs) {
      const iv = sample[r]!;
      if (!(iv.durationS > 0) || !(iv.measured.rapl > 0)) continue;
      let top = 0;
      let sub = 0;
      let subs = 0;
      for (const [id, j] of Object.entries(iv.raplZones)) {
        if (!Number.isFinite(j)) continue;
        if (TOP_ZONE.test(id)) top += j;
        else if (SUB_ZONE.test(id)) {
          sub += j;
          subs++;
        }
      }
      if (subs === 0) continue;
      rel.push(Math.abs(top + sub - iv.measured.rapl) / iv.measured.rapl);
      let x = 0;
      let z = 0;
      for (const f of terms[r]!) {
        x += Math.max(0, f.io[DRAM_K] ?? 0);
        if (f.id === OVERHEAD_ID) z += Math.max(0, f.cpu);
      }
      ys.push(sub / iv.durationS);
      xs.push(x);
      zs.push(z);
    }
    rel.sort((a, b) => a - b);
    if (ys.length < 30 || !((rel[Math.floor(rel.length / 2)] ?? 1) < 0.01)) continue;
    const m = (a: number[]): number => a.reduce((s, v) => s + v, 0) / a.length;
    const my = m(ys);
    const mx = m(xs);
    const mz = m(zs);
    for (let i = 0; i < ys.length; i++) {
      const y = ys[i]! - my;
      const x = xs[i]! - mx;
      const z = zs[i]! - mz;
      sxx += x * x;
      sxz += x * z;
      szz += z * z;
      sxy += x * y;
      szy += z * y;
      syy += y * y;
      rows++;
    }
  }
  if (rows < 60 || !(sxx > 1e-9) || !(syy > 0)) return undefined;
  const det = sxx * szz - sxz * sxz;
  let w: number;
  let v = 0;
  if (szz > 1e-9 && det > 1e-12 * sxx * szz) {
    w = (sxy * szz - szy * sxz) / det;
    v = (szy * sxx - sxy * sxz) / det;
  } else w = sxy / sxx;
  if (!(w > 0)) return undefined;
  const explained = w * sxy + v * szy;
  return explained >= 0.5 * syy ? w : undefined;
}

/**
 * Multipliers c_v ≥ 0 on each term's CPU part, with the static power, the I/O weights and the load factor
 * re-estimated, by NNLS on
 *   P_measured − static = Σ_v c_v · cpuTerm_v(feature model) · (1 + β₁·u_v + β₂·u_v²) + Σ_k io_k · ioSum_k
 * and a ridge pulling every c_v towards 1 (the feature model) with a weight of `vmRidge` × the term's own
 * Σ cpuTerm²: a VM seen little stays on the feature model (cold start), a VM seen a lot gets its own
 * signature. u_v is the load of the term's socket (termLoads: the model's placement) or of the host.
 * Written into model.sources[source]: as each VM's own W per core where the source has `vmCoreW` (RAPL), as
 * log-multipliers (`vm`) otherwise, or, with one shared multiplier, folded into `cpuScaleW`.
 * Returns the mean squared residual of the chosen fit, W².
 */
function refitPerVm(model: AdditiveModelJson, o: PerVmRefit): number {
  const { source: s, terms, measuredW: y, vmRidge: reg, perVm, fixedStaticW: fixedStatic, fixedLoad, ridgeFloor: ridgeAbs = 0, fixedIo = {}, lf } = o;
  const w = model.sources[s];
  const ids = new Map<string, number>();
  for (const ts of terms) for (const f of ts) if (f.cpu > 0 && !ids.has(f.id)) ids.set(f.id, perVm ? ids.size + 1 : 1);
  const n = perVm ? ids.size + 1 : 2;
  // the CPU part of each term without multipliers or load factor: its power less its I/O part (summed as
  // termPowers sums it, so the difference is the one a second termPowers call with cpuScaleW 0 gave)
  w.vm = {};
  w.load = [0, 0];
  // the load each term's CPU part scales with: its socket's (RAPL, with a placement) or the host's
  const { placement: _placement, ...unplaced } = model;
  const loadModel: AdditiveModelJson = w.fromRapl ? unplaced : model;
  const rows = terms.map((ts) => {
    const full = termPowers(model, s, ts);
    const ioF = new Float64Array(IO_FEATURES.length);
    for (const t of ts) for (let k = 0; k < ioF.length; k++) ioF[k] = ioF[k]! + (t.io[k] ?? 0);
    const cpu = ts.map((f, i) => {
      let io = 0;
      for (let k = 0; k < f.io.length; k++) io += (f.io[k] ?? 0) * (w.io[k] ?? 0);
      const g = full[i]!;
      return Number.isFinite(g) ? g - io : NaN;
    });
    return { cpu, ioF, loads: termLoads(loadModel, ts) };
  });
  // Unscaled columns after the VM columns: the I/O features summed over terms (shared, non-negative weights).
  // Column layout: 0 = intercept, 1..n−1 = VM multipliers (scaled by the load factor), n..N−1 = I/O weights.
  // A load-independent linear fit of a host whose per-core power rises with load lowers the intercept and
  // inflates every VM's coefficient by about the same watts per core, which over-bills small VMs most.
  const K = IO_FEATURES.length;
  // one intercept per host (identical servers differ in idle power by ±10 %): host 0's is column 0, the others
  // follow the I/O columns; every row has exactly one intercept column, so nothing is collinear
  const hostIdx = new Map<string, number>();
  for (const ts of terms) {
    const h = ts[0]?.host ?? '';
    if (!hostIdx.has(h)) hostIdx.set(h, hostIdx.size);
  }
  const hostRows = new Float64Array(hostIdx.size);
  const hostCol = (h: number): number => (h === 0 ? 0 : n + K + h - 1);
  const N = n + K + Math.max(0, hostIdx.size - 1);
  const MEM_K = IO_FEATURES.indexOf('mem_used_gib');
  const allowed = IO_FEATURES.map((name, k) => (SOURCE_IO[s] as readonly string[]).includes(name) && fixedIo[k] === undefined);
  const ne = new LoadFactorNormalEquations(N, { ...lf, label: `${model.hardwareClass} ${s}` });
  const cols = new Int32Array(n);
  const vals = [new Float64Array(n), new Float64Array(n), new Float64Array(n)];
  const slot = new Int32Array(n).fill(-1);
  const ucols: number[] = [];
  const uvals: number[] = [];
  rows.forEach((row, r) => {
    let m = 0;
    terms[r]!.forEach((t, i) => {
      const v = row.cpu[i]!;
      if (!(v > 0)) return;
      const k = ids.get(t.id)!;
      if (slot[k]! < 0) {
        slot[k] = m;
        cols[m] = k;
        vals[0]![m] = vals[1]![m] = vals[2]![m] = 0;
        m++;
      }
      const u = row.loads[i]!;
      const j = slot[k]!;
      vals[0]![j] = vals[0]![j]! + v;
      vals[1]![j] = vals[1]![j]! + v * u;
      vals[2]![j] = vals[2]![j]! + v * u * u;
    });
    ucols.length = 0;
    uvals.length = 0;
    if (fixedStatic === undefined) {
      const h = hostIdx.get(terms[r]![0]?.host ?? '') ?? 0;
      hostRows[h] = hostRows[h]! + 1;
      ucols.push(hostCol(h));
      uvals.push(1);
    }
    for (let k = 0; k < K; k++) {
      // memory held barely moves: as a column it would compete with the static power, so it stays out
      if (k !== MEM_K && allowed[k] && row.ioF[k]! !== 0) {
        ucols.push(n + k);
        uvals.push(row.ioF[k]!);
      }
    }
    let fixedIoW = 0;
    for (const [k, wk] of Object.entries(fixedIo)) fixedIoW += wk * (row.ioF[Number(k)] ?? 0);
    ne.addRow({ m, cols, v: vals, ucols, uvals, target: y[r]! - (fixedStatic ?? 0) - fixedIoW });
    for (let p = 0; p < m; p++) slot[cols[p]!] = -1;
  });
  const best = ne.search(
    {
      ridge: Array.from({ length: N }, (_, p) => (p >= 1 && p < n ? reg : 0)),
      ridgeTo: 1,
      free: [0, ...Array.from({ length: Math.max(0, hostIdx.size - 1) }, (_, h) => n + K + h)],
      ridgeFloor: Array.from({ length: N }, (_, p) => (p >= 1 && p < n ? ridgeAbs : 0)),
    },
    fixedLoad,
  );
  const c: Float64Array = best?.x ?? new Float64Array(n).fill(1);
  // the class's static power: the hosts' own, weighted by their intervals (the prior of a host not trained on)
  let stat = fixedStatic ?? w.staticW;
  delete w.hostStaticW;
  if (fixedStatic === undefined && best) {
    const own: Record<string, number> = {};
    let sum = 0;
    let rowsAll = 0;
    for (const [h, i] of hostIdx) {
      own[h] = Math.max(0, best.x[hostCol(i)]!);
      sum += own[h] * hostRows[i]!;
      rowsAll += hostRows[i]!;
    }
    stat = rowsAll > 0 ? sum / rowsAll : Math.max(0, best.x[0]!);
    w.hostStaticW = own;
  }
  if (best) w.io = Array.from({ length: K }, (_, k) => fixedIo[k] ?? Math.max(0, best.x[n + k]!));
  const load: [number, number] = [best?.b1 ?? 0, best?.b2 ?? 0];
  w.staticW = stat;
  w.load = load;
  w.vm = {};
  if (perVm && w.vmCoreW) {
    const own: Record<string, number> = {};
    for (const [id, i] of ids) own[id] = Math.max(0, c[i]!) * (w.vmCoreW[id] ?? 0);
    w.vmCoreW = own;
  } else if (perVm) for (const [id, i] of ids) w.vm[id] = Math.log(Math.max(c[i]!, 1e-6));
  else {
    // one shared multiplier: fold it into every term through the unknown-VM default
    const k = Math.max(c[1] ?? 1, 1e-6);
    w.cpuScaleW *= k;
  }
  return best ? best.sse / Math.max(1, y.length) : 0;
}

async function ioWeights(ioRaw: tf.Variable, mask: tf.Tensor1D, scale: number): Promise<number[]> {
  const t = tf.tidy(() => tf.mul(tf.softplus(ioRaw), mask));
  const out = Array.from(await t.data()).map((x) => x * scale);
  t.dispose();
  return out;
}

/**
 * The shared feature model of source `s` (no VM identity): W1, b1, W2, b2 of the shape MLP (W per busy core,
 * in units of `cpuScaleW`), the I/O weights and the static power, by Adam on minibatches of `p`.
 */
async function trainFeatureModel(p: Packed, s: ModelSource, opts: AdditiveTrainOptions, lfTerm?: Float32Array): Promise<SourceWeights> {
  const { F, K } = p;
  const H = opts.hidden ?? 12;
  const steps = opts.steps ?? 600;
  const B = Math.min(opts.batchSize ?? 256, p.n);
  const rnd = prng(opts.seed ?? 1);
  const y = p.y[s];
  const yMean = y.reduce((a, b) => a + b, 0) / p.n;
  const scale = Math.max(1, yMean);
  const fixed = opts.fixedStaticW?.[s];
  const p0 = fixed ?? quantile(y, 0.02);
  let cpuMean = 0;
  for (let r = 0; r < p.n; r++) for (let v = 0; v < p.V; v++) cpuMean += p.cpu[r * p.V + v]!;
  cpuMean /= p.n;
  const perCore = Math.max(0.1, (yMean - p0) / Math.max(cpuMean, 1e-6));
  const inv = (x: number): number => Math.log(Math.expm1(Math.max(x, 1e-6)));

  const all = tf.tidy(() => ({
    shape: tf.tensor3d(p.shape, [p.n, p.V, F]),
    cpu: tf.tensor2d(lfTerm ? p.cpu.map((c, i) => c * lfTerm[i]!) : p.cpu, [p.n, p.V]),
    io: tf.tensor3d(p.io, [p.n, p.V, K]),
    y: tf.tensor1d(y.map((x) => x / scale)),
  }));
  const init = (shape: number[], sd: number): tf.Variable => tf.variable(tf.tensor(Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (rnd() * 2 - 1) * sd), shape));
  const W1 = init([F, H], 0.3);
  const b1 = tf.variable(tf.zeros([H]));
  const W2 = init([H], 0.1);
  const b2 = tf.variable(tf.scalar(inv(perCore / scale)));
  const ioRaw = tf.variable(tf.fill([K], inv(0.01 / scale)));
  const ioMask = tf.tensor1d(IO_FEATURES.map((name) => ((SOURCE_IO[s] as readonly string[]).includes(name) ? 1 : 0)));
  const p0Raw = tf.variable(tf.scalar(p0 / scale));
  const vars = [W1, b1, W2, b2, ioRaw, ...(fixed === undefined ? [p0Raw] : [])];
  const optimizer = tf.train.adam(opts.learningRate ?? 0.02);

  const forward = (shape: tf.Tensor3D, cpu: tf.Tensor2D, io: tf.Tensor3D): tf.Tensor1D => {
    const [n, V] = cpu.shape;
    const h = tf.tanh(tf.add(tf.matMul(tf.reshape(shape, [n * V, F]), W1), b1));
    const a = tf.softplus(tf.add(tf.matMul(h, tf.reshape(W2, [H, 1])), b2));
    const cpuTerm = tf.mul(tf.reshape(a, [n * V]), tf.reshape(cpu, [n * V]));
    const ioTerm = tf.sum(tf.mul(tf.reshape(io, [n * V, K]), tf.mul(tf.softplus(ioRaw), ioMask)), 1);
    return tf.add<tf.Tensor1D>(tf.sum(tf.reshape(tf.add(cpuTerm, ioTerm), [n, V]), 1), p0Raw);
  };

  const idx = new Int32Array(B);
  for (let it = 0; it < steps; it++) {
    for (let b = 0; b < B; b++) idx[b] = Math.floor(rnd() * p.n);
    const bi = tf.tensor1d(idx, 'int32');
    const batch = tf.tidy(() => ({ shape: tf.gather(all.shape, bi), cpu: tf.gather(all.cpu, bi), io: tf.gather(all.io, bi), y: tf.gather(all.y, bi) }));
    optimizer.minimize(() => tf.mean<tf.Scalar>(tf.square(tf.sub(forward(batch.shape, batch.cpu, batch.io), batch.y))), false, vars);
    for (const t of [bi, batch.shape, batch.cpu, batch.io, batch.y]) t.dispose();
    if (it % 50 === 0) opts.yieldPoint?.('feature-model');
    if (it % 50 === 0) await tf.nextFrame?.();
  }
  const W1a = (await W1.array()) as number[][];
  const out: SourceWeights = {
    staticW: Math.max(0, ((await p0Raw.data())[0] ?? 0) * scale),
    W1: W1a,
    b1: Array.from(await b1.data()),
    W2: Array.from(await W2.data()),
    b2: (await b2.data())[0] ?? 0,
    cpuScaleW: scale,
    load: [0, 0],
    io: await ioWeights(ioRaw, ioMask, scale),
    vm: {},
    residualRmsW: 0,
    meanPowerW: yMean,
  };
  for (const t of [W1, b1, W2, b2, ioRaw, ioMask, p0Raw, all.shape, all.cpu, all.io, all.y]) t.dispose();
  optimizer.dispose();
  return out;
}

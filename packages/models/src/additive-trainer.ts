/**
 * Trains the additive host model (additive-model.ts) with TensorFlow.js by fitting Σ g_s(vm) + static_s
 * to each interval's measured energy per source: no per-VM ground truth. Intervals are packed into padded
 * [N, V] tensors (V = most terms in one interval) with a mask; a custom loop runs Adam on minibatches.
 */
import type { HostInterval } from '@wattsplit/attribution';
import { silentLogger, WattsplitError, type Logger } from '@wattsplit/wire';
import { IO_FEATURES, intervalFeatures, MODEL_SOURCES, SHAPE_FEATURES, SOURCE_IO, termLoads, termPowers, type AdditiveModelJson, type ModelSource, type SourceWeights, type VmFeatures } from './additive-model.js';
import { nnlsNormal } from './nnls.js';
import { inferPlacement } from './placement.js';
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
  /** Per-VM multipliers on the wall-side rest too (DRAM on hosts without DRAM zones, NICs, disks). Default true. */
  bmcPerVm?: boolean;
  /** Shape features the MLP leaves out (additive-model.ts `ignoredShape`). Default ['freq_ghz']. */
  ignoreShape?: string[];
  /** Learn per-VM coefficients (VM identity). Default true. */
  perVm?: boolean;
  /**
   * Fit only intervals free of measurement artefacts (training-selection.ts: VMs vanishing or coming back,
   * held frames, anomalies). Default true; with fewer than 30 such intervals every usable one is fitted.
   */
  cleanOnly?: boolean;
  seed?: number;
  logger?: Logger;
  now?: () => Date;
}

interface Packed {
  n: number;
  V: number;
  shape: Float32Array; // [n, V, F] normalised
  cpu: Float32Array; // [n, V]
  io: Float32Array; // [n, V, K]
  ids: Int32Array; // [n, V] index into vm table (0 = none)
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
  const vmIds = new Map<string, number>();
  const perVm = opts.perVm ?? true;
  for (const ts of terms) {
    for (const f of ts) {
      if (!(f.cpu > 0)) continue;
      cnt++;
      for (let i = 0; i < F; i++) {
        mean[i] = mean[i]! + f.shape[i]!;
        sq[i] = sq[i]! + f.shape[i]! ** 2;
      }
      if (perVm && !vmIds.has(f.id)) vmIds.set(f.id, vmIds.size + 1);
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
  const p: Packed = { n, V, shape: new Float32Array(n * V * F), cpu: new Float32Array(n * V), io: new Float32Array(n * V * K), ids: new Int32Array(n * V), y: { rapl: new Float32Array(n), bmc_rest: new Float32Array(n) } };
  terms.forEach((ts, r) => {
    ts.forEach((f, v) => {
      const o = r * V + v;
      p.cpu[o] = f.cpu;
      for (let i = 0; i < F; i++) p.shape[o * F + i] = (f.shape[i]! - mean[i]!) / std[i]!;
      for (let k = 0; k < K; k++) p.io[o * K + k] = f.io[k]!;
      p.ids[o] = vmIds.get(f.id) ?? 0;
    });
    for (const s of MODEL_SOURCES) p.y[s][r] = Math.max(0, sample[r]!.measured[s]) / sample[r]!.durationS;
  });

  const sources = {} as Record<ModelSource, SourceWeights>;
  // 1. the feature model g(f) by gradient descent (tfjs); 2. per-VM multipliers by ridge NNLS (below)
  sources.rapl = await trainSource(p, 'rapl', F, K, new Map(), opts);
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
  // which socket each VM runs on (per-package RAPL counters), for the socket-load factor of the RAPL terms
  const fitSet = new Set(usable);
  const placement = (opts.socketPlacement ?? true) ? inferPlacement(allUsable, (iv) => fitSet.has(iv)) : undefined;
  if (placement) model.placement = placement;
  refitPerVm(model, 'rapl', terms, p.y.rapl, opts.vmRegularisation ?? 0.005, perVm, opts.fixedStaticW?.rapl);
  refitPerVm(model, 'bmc_rest', terms, p.y.bmc_rest, opts.vmRegularisation ?? 0.005, opts.bmcPerVm ?? true, opts.fixedStaticW?.bmc_rest);
  // training residuals on the plain-JS apply path (what will be used)
  for (const s of MODEL_SOURCES) {
    let se = 0;
    let sum = 0;
    sample.forEach((_iv, r) => {
      let pred = model.sources[s].staticW;
      for (const g of termPowers(model, s, terms[r]!)) pred += g;
      se += (pred - p.y[s][r]!) ** 2;
      sum += p.y[s][r]!;
    });
    model.sources[s].residualRmsW = Math.sqrt(se / n);
    model.sources[s].meanPowerW = sum / n;
  }
  model.trainSeconds = (performance.now() - t0) / 1000;
  logger.info({ hardwareClass: model.hardwareClass, intervals: n, vms: vmIds.size, seconds: model.trainSeconds, backend, raplRmsW: model.sources.rapl.residualRmsW, bmcRmsW: model.sources.bmc_rest.residualRmsW }, 'additive model trained');
  return model;
}

/**
 * Per-VM multipliers c_v ≥ 0 on each term's CPU part, with the static power re-estimated, by NNLS on
 *   P_measured − Σ io terms = static + Σ_v c_v · cpuTerm_v(feature model) · (1 + β₁·u_v + β₂·u_v²)
 * and a ridge pulling every c_v towards 1 (the feature model) with a weight of `reg` × the term's own
 * Σ cpuTerm²: a VM seen little stays on the feature model (cold start), a VM seen a lot gets its own
 * signature. u_v is the load of the term's socket (termLoads: the model's placement) or of the host.
 * Stored as log-multipliers (model.sources[s].vm).
 */
function refitPerVm(model: AdditiveModelJson, s: ModelSource, terms: VmFeatures[][], y: Float32Array, reg: number, perVm: boolean, fixedStatic: number | undefined): void {
  const w = model.sources[s];
  const ids = new Map<string, number>();
  for (const ts of terms) for (const f of ts) if (f.cpu > 0 && !ids.has(f.id)) ids.set(f.id, perVm ? ids.size + 1 : 1);
  const n = perVm ? ids.size + 1 : 2;
  // the CPU part of each term without multipliers or load factor, and the io part
  w.vm = {};
  w.load = [0, 0];
  const ioOnly: SourceWeights = { ...w, cpuScaleW: 0 };
  const mIo: AdditiveModelJson = { ...model, sources: { ...model.sources, [s]: ioOnly } };
  // the load each term's CPU part scales with: its socket's (RAPL, with a placement) or the host's
  const { placement: _placement, ...unplaced } = model;
  const loadModel: AdditiveModelJson = w.fromRapl ? unplaced : model;
  const rows = terms.map((ts) => {
    const full = termPowers(model, s, ts);
    const io = termPowers(mIo, s, ts);
    const ioF = new Float64Array(IO_FEATURES.length);
    for (const t of ts) for (let k = 0; k < ioF.length; k++) ioF[k] = ioF[k]! + (t.io[k] ?? 0);
    return { cpu: ts.map((_, i) => full[i]! - io[i]!), ioF, loads: termLoads(loadModel, ts) };
  });
  // Unscaled columns after the VM columns: the I/O features summed over terms (shared, non-negative weights).
  const K = IO_FEATURES.length;
  const N = n + K;
  const MEM_K = IO_FEATURES.indexOf('mem_used_gib');
  const allowed = IO_FEATURES.map((name) => (SOURCE_IO[s] as readonly string[]).includes(name));
  // For a given load factor (β₁, β₂) the multipliers and static power are a ridge NNLS; the βs are chosen by
  // residual over a coarse then a fine grid. A load-independent linear fit of a host whose per-core power
  // rises with load lowers the intercept and inflates every VM's coefficient by about the same watts per
  // core, which over-bills small VMs most; fitting the load factor removes that.
  // Column layout: 0 = intercept, 1..n−1 = VM multipliers, n..N−1 = I/O weights. Per row, the VM columns are
  // V₀ + β₁V₁ + β₂V₂ with V_k[v] = Σ_{terms of v} cpuTerm·u^k, so the normal equations are polynomials in β,
  // accumulated once: VV = Σ_ij βᵢβⱼ S_ij (S_ij = Σ Vᵢ Vⱼᵀ, β₀ = 1), UV = Σ_i βᵢ C_i (U = unscaled columns:
  // intercept and I/O), UU = D, Aᵀb = Σ_i βᵢ Bᵢ on VM columns.
  const S = Array.from({ length: 9 }, () => Array.from({ length: n }, () => new Float64Array(n))); // S[3i+j]
  const C = [0, 1, 2].map(() => Array.from({ length: N }, () => new Float64Array(n)));
  const D = Array.from({ length: N }, () => new Float64Array(N));
  const Bv = [new Float64Array(n), new Float64Array(n), new Float64Array(n)];
  const Bu = new Float64Array(N);
  let bb = 0;
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
    const target = y[r]! - (fixedStatic ?? 0);
    bb += target * target;
    ucols.length = 0;
    uvals.length = 0;
    if (fixedStatic === undefined) {
      ucols.push(0);
      uvals.push(1);
    }
    for (let k = 0; k < K; k++) {
      // memory held barely moves: as a column it would compete with the static power, so it stays out
      if (k !== MEM_K && allowed[k] && row.ioF[k]! !== 0) {
        ucols.push(n + k);
        uvals.push(row.ioF[k]!);
      }
    }
    for (let p = 0; p < m; p++) {
      const cp = cols[p]!;
      for (let i = 0; i < 3; i++) {
        const vi = vals[i]![p]!;
        Bv[i]![cp] = Bv[i]![cp]! + vi * target;
        for (let j = 0; j < 3; j++) {
          const rowIJ = S[3 * i + j]![cp]!;
          const vj = vals[j]!;
          for (let q = 0; q < m; q++) rowIJ[cols[q]!] = rowIJ[cols[q]!]! + vi * vj[q]!;
        }
        for (let a = 0; a < ucols.length; a++) C[i]![ucols[a]!]![cp] = C[i]![ucols[a]!]![cp]! + uvals[a]! * vi;
      }
    }
    for (let j = 0; j < ucols.length; j++) {
      Bu[ucols[j]!] = Bu[ucols[j]!]! + uvals[j]! * target;
      for (let l = 0; l < ucols.length; l++) D[ucols[j]!]![ucols[l]!] = D[ucols[j]!]![ucols[l]!]! + uvals[j]! * uvals[l]!;
    }
    for (let p = 0; p < m; p++) slot[cols[p]!] = -1;
  });
  const ucolsAll = [0, ...Array.from({ length: K }, (_, k) => n + k)];
  const solve = (b1: number, b2: number): { x: Float64Array; sse: number } | undefined => {
    const beta = [1, b1, b2];
    const AtA = Array.from({ length: N }, () => new Float64Array(N));
    const Atb = new Float64Array(N);
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) {
        const f = beta[i]! * beta[j]!;
        if (f === 0) continue;
        const Sij = S[3 * i + j]!;
        for (let p = 1; p < n; p++) {
          const out = AtA[p]!;
          const src = Sij[p]!;
          for (let q = 1; q < n; q++) out[q] = out[q]! + f * src[q]!;
        }
      }
      for (let p = 1; p < n; p++) Atb[p] = Atb[p]! + beta[i]! * Bv[i]![p]!;
    }
    for (const a of ucolsAll) {
      Atb[a] = Bu[a]!;
      for (const b of ucolsAll) AtA[a]![b] = D[a]![b]!;
      for (let p = 1; p < n; p++) {
        const x = C[0]![a]![p]! + b1 * C[1]![a]![p]! + b2 * C[2]![a]![p]!;
        AtA[a]![p] = x;
        AtA[p]![a] = x;
      }
    }
    if (fixedStatic !== undefined) AtA[0]![0] = 1;
    // unseen I/O features: keep their columns solvable
    for (let k = 0; k < K; k++) if (AtA[n + k]![n + k]! === 0) AtA[n + k]![n + k] = 1;
    // residual of the data (before the ridge): bᵀb − 2xᵀAᵀb + xᵀAᵀAx
    const A0 = AtA.map((r) => Float64Array.from(r));
    const b0 = Float64Array.from(Atb);
    for (let i = 1; i < n; i++) {
      const lam = reg * AtA[i]![i]! + 1e-9;
      AtA[i]![i] = AtA[i]![i]! + lam;
      Atb[i] = Atb[i]! + lam;
    }
    const x = nnlsNormal(AtA, Atb, [0]);
    if (!x.every((v) => Number.isFinite(v))) return undefined;
    let sse = bb;
    for (let p = 0; p < N; p++) {
      sse -= 2 * x[p]! * b0[p]!;
      for (let q = 0; q < N; q++) sse += x[p]! * A0[p]![q]! * x[q]!;
    }
    return { x, sse };
  };
  // the load factor must stay positive on [0, 1]
  const admissible = (b1: number, b2: number): boolean => [0, 0.25, 0.5, 0.75, 1].every((u) => 1 + b1 * u + b2 * u * u > 0.1);
  let best: { b1: number; b2: number; x: Float64Array; sse: number } | undefined;
  const tryBeta = (b1: number, b2: number): void => {
    if (!admissible(b1, b2)) return;
    const r = solve(b1, b2);
    if (r && (!best || r.sse < best.sse)) best = { b1, b2, ...r };
  };
  for (let i = -2; i <= 8; i++) for (let j = -6; j <= 4; j++) tryBeta(i / 5, j / 5);
  for (const d of [0.1, 0.05, 0.025]) {
    const c = best;
    if (!c) break;
    for (let i = -1; i <= 1; i++) for (let j = -1; j <= 1; j++) if (i !== 0 || j !== 0) tryBeta(c.b1 + i * d, c.b2 + j * d);
  }
  const c: Float64Array = best?.x ?? new Float64Array(n).fill(1);
  const stat = fixedStatic ?? (best ? Math.max(0, best.x[0]!) : w.staticW);
  if (best) w.io = Array.from({ length: K }, (_, k) => Math.max(0, best!.x[n + k]!));
  const load: [number, number] = [best?.b1 ?? 0, best?.b2 ?? 0];
  w.staticW = stat;
  w.load = load;
  w.vm = {};
  if (perVm) for (const [id, i] of ids) w.vm[id] = Math.log(Math.max(c[i]!, 1e-6));
  else {
    // one shared multiplier: fold it into every term through the unknown-VM default
    const k = Math.max(c[1] ?? 1, 1e-6);
    w.cpuScaleW *= k;
  }
}

async function ioWeights(ioRaw: tf.Variable, mask: tf.Tensor1D, scale: number): Promise<number[]> {
  const t = tf.tidy(() => tf.mul(tf.softplus(ioRaw), mask));
  const out = Array.from(await t.data()).map((x) => x * scale);
  t.dispose();
  return out;
}

async function trainSource(p: Packed, s: ModelSource, F: number, K: number, vmIds: Map<string, number>, opts: AdditiveTrainOptions): Promise<SourceWeights> {
  const H = opts.hidden ?? 12;
  const steps = opts.steps ?? 600;
  const B = Math.min(opts.batchSize ?? 256, p.n);
  const lam = opts.vmRegularisation ?? 0.02;
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
  const nIds = Math.max(2, vmIds.size + 1); // oneHot needs depth ≥ 2

  const all = tf.tidy(() => ({
    shape: tf.tensor3d(p.shape, [p.n, p.V, F]),
    cpu: tf.tensor2d(p.cpu, [p.n, p.V]),
    io: tf.tensor3d(p.io, [p.n, p.V, K]),
    ids: tf.tensor2d(p.ids, [p.n, p.V], 'int32'),
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
  const emb = tf.variable(tf.zeros([nIds]));
  const known = tf.tensor1d(Array.from({ length: nIds }, (_, i) => (i === 0 ? 0 : 1)));
  const vars = [W1, b1, W2, b2, ioRaw, ...(fixed === undefined ? [p0Raw] : []), ...(vmIds.size > 0 ? [emb] : [])];
  const optimizer = tf.train.adam(opts.learningRate ?? 0.02);

  const forward = (shape: tf.Tensor3D, cpu: tf.Tensor2D, io: tf.Tensor3D, ids: tf.Tensor2D): tf.Tensor1D => {
    const [n, V] = cpu.shape;
    const h = tf.tanh(tf.add(tf.matMul(tf.reshape(shape, [n * V, F]), W1), b1));
    const a = tf.softplus(tf.add(tf.matMul(h, tf.reshape(W2, [H, 1])), b2));
    // one-hot × embedding instead of gather: gather's gradient (UnsortedSegmentSum) has no wasm kernel
    const oh = tf.oneHot(tf.reshape(ids, [n * V]), nIds);
    const m = tf.exp(tf.reshape(tf.matMul(oh, tf.reshape(tf.mul(emb, known), [nIds, 1])), [n * V]));
    const cpuTerm = tf.mul(tf.mul(tf.reshape(a, [n * V]), m), tf.reshape(cpu, [n * V]));
    const ioTerm = tf.sum(tf.mul(tf.reshape(io, [n * V, K]), tf.mul(tf.softplus(ioRaw), ioMask)), 1);
    return tf.add<tf.Tensor1D>(tf.sum(tf.reshape(tf.add(cpuTerm, ioTerm), [n, V]), 1), p0Raw);
  };

  const idx = new Int32Array(B);
  for (let it = 0; it < steps; it++) {
    for (let b = 0; b < B; b++) idx[b] = Math.floor(rnd() * p.n);
    const bi = tf.tensor1d(idx, 'int32');
    const batch = tf.tidy(() => ({ shape: tf.gather(all.shape, bi), cpu: tf.gather(all.cpu, bi), io: tf.gather(all.io, bi), ids: tf.gather(all.ids, bi), y: tf.gather(all.y, bi) }));
    optimizer.minimize(() => {
      const pred = forward(batch.shape, batch.cpu, batch.io, batch.ids);
      const err = tf.mean(tf.square(tf.sub(pred, batch.y)));
      return tf.add<tf.Scalar>(err, tf.mul(lam * 1e-3, tf.sum(tf.square(emb))));
    }, false, vars);
    for (const t of [bi, batch.shape, batch.cpu, batch.io, batch.ids, batch.y]) t.dispose();
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
  const e = await emb.data();
  for (const [id, i] of vmIds) if (e[i] !== 0) out.vm[id] = e[i]!;
  for (const t of [W1, b1, W2, b2, ioRaw, ioMask, p0Raw, emb, known, all.shape, all.cpu, all.io, all.ids, all.y]) t.dispose();
  optimizer.dispose();
  return out;
}

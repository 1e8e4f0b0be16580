/**
 * Additive host power model, per source s ∈ {rapl, bmc_rest}:
 *
 *   P_s(host) = static_s + Σ_vms g_s(vm) + g_s(host overhead)
 *   g_s(vm)   = cpu_vm · a_s(f_vm) · exp(e_s,vm)  +  Σ_k softplus(β_s,k) · io_vm,k
 *
 * cpu_vm is the VM's CPU seconds per second (cores); a_s(f) = softplus(MLP(f)) ≥ 0 is watts per busy
 * core as a function of what the agent sees about the VM (per-vCPU utilisation and spread, IPC and LLC
 * misses per kilo-instruction when perf is exposed, memory in use, host CPU frequency, GPU activity);
 * io terms are block/net byte rates and memory held, with non-negative weights. e_s,vm is a per-VM
 * coefficient (a learned embedding of the VM's identity, L2-regularised towards 0 so the feature model
 * handles cold start): VMs are long-lived and switch on and off independently, which makes their own
 * signature identifiable from host totals. CPU time outside VMs (the hypervisor) is one more term with
 * its own coefficient. Everything is fitted with tfjs to the measured host energy per interval: no per-VM
 * ground truth is needed.
 *
 * Training runs on tfjs (wasm backend); applying the model is plain arithmetic on the exported weights
 * (well under a millisecond per host interval), and the weights persist as JSON.
 */
import type { HostInterval, SourceName, VmInterval } from '@wattsplit/attribution';
import { WattsplitError } from '@wattsplit/wire';

export const MODEL_SOURCES = ['rapl', 'bmc_rest'] as const;
export type ModelSource = (typeof MODEL_SOURCES)[number];

/** Shape features (normalised, into the MLP). */
export const SHAPE_FEATURES = ['util_per_vcpu', 'vcpu_spread', 'ipc', 'llc_mpki', 'perf_present', 'mem_used_frac', 'freq_ghz', 'gpu_util'] as const;
/** Additive I/O terms (raw units, non-negative weights): MB/s and GiB. */
export const IO_FEATURES = ['block_read_mbs', 'block_write_mbs', 'net_rx_mbs', 'net_tx_mbs', 'mem_used_gib', 'gpu_w', 'dram_gbs'] as const;
/**
 * The I/O terms each source may use. RAPL (packages + DRAM) sees I/O only through CPU time (emulator threads,
 * the hypervisor) and DRAM traffic: its one additive term is memory traffic from LLC misses (perf), not
 * scaled by package load. Block and network bytes power disks and NICs (wall side), and GPU power drives
 * fans and PSU losses (wall side). Models from before `dram_gbs` have 6 weights (the last one is then 0).
 */
export const SOURCE_IO: Readonly<Record<ModelSource, readonly (typeof IO_FEATURES)[number][]>> = Object.freeze({
  rapl: ['dram_gbs'],
  bmc_rest: ['block_read_mbs', 'block_write_mbs', 'net_rx_mbs', 'net_tx_mbs', 'mem_used_gib', 'gpu_w', 'dram_gbs'],
});

export const OVERHEAD_ID = '__host_overhead__';

export interface VmFeatures {
  id: string;
  /** Host the interval is from (placement on sockets is per host). */
  host: string;
  /** Online CPUs of the host. */
  cores: number;
  /** Placement key when not `${host}/${id}` (training: a VM's epoch before it moved). */
  placeKey?: string;
  cpu: number;
  /** Host CPU busy fraction (0..1): per-core power changes with package load (frequency, voltage, uncore). */
  load: number;
  shape: number[];
  io: number[];
}

export interface SourceWeights {
  /** Static power, W. */
  staticW: number;
  W1: number[][]; // [F][H]
  b1: number[]; // [H]
  W2: number[]; // [H]
  b2: number;
  /** W per busy core per unit of softplus output (training scale). */
  cpuScaleW: number;
  /** bmc_rest only: the CPU part of each term is cpuScaleW × its RAPL term power (fans and PSU losses follow the heat) instead of an MLP. */
  fromRapl?: boolean;
  /** Host load factor on every CPU term: 1 + load[0]·u + load[1]·u² (u = host busy fraction), floored at 0.1. */
  load: [number, number];
  /** softplus already applied: W per unit of each IO feature. */
  io: number[];
  /** Per-VM log-multipliers on the CPU term (VM uuid → e). */
  vm: Record<string, number>;
  /**
   * W per busy core (at load 0) of every term the model was trained on (VM uuid, or the hypervisor): its own
   * signature, learned from host totals. The MLP then only serves terms the model has not seen (cold start).
   * Absent (older models): MLP × exp(vm) for every term.
   */
  vmCoreW?: Record<string, number>;
  /**
   * How a trained VM's energy per CPU-second follows its IPC (per-VM phases: the same VM doing other work): its
   * CPU part is multiplied by 1 + ipcGain · (ipc / vmIpcRef − 1), clamped to [0.25, 4], with vmIpcRef the VM's
   * CPU-weighted mean IPC over training and ipcGain one number per class fitted to the host totals. Only where
   * perf is exposed; absent or 0 (older models, hosts without perf, a class where IPC does not move power): 1.
   */
  ipcGain?: number;
  vmIpcRef?: Record<string, number>;
  /** Each trained VM's own IPC gain (shrunk towards `ipcGain`); absent: `ipcGain` for every VM. */
  vmIpcGain?: Record<string, number>;
  /**
   * Static power of each host the model was trained on, W (identical servers differ): the starting point of
   * that host's own static power; `staticW` (their mean) is the prior of a host the model has not seen.
   * Absent (older models): `staticW` for every host.
   */
  hostStaticW?: Record<string, number>;
  /** Training residual RMS of host power, W. */
  residualRmsW: number;
  /** Mean measured power over training, W (for relative error reports). */
  meanPowerW: number;
}

/** The persisted model (JSON). */
export interface AdditiveModelJson {
  kind: 'wattsplit.additive_model';
  formatVersion: 1;
  hardwareClass: string;
  version: number;
  trainedAt: string;
  trainIntervals: number;
  trainSeconds: number;
  norm: { mean: number[]; std: number[] };
  sources: Record<ModelSource, SourceWeights>;
  backend: string;
  /**
   * Where each VM's vCPUs run, inferred from the per-package RAPL counters (placement.ts). With it, the RAPL
   * load factor of a term uses the load of the VM's own socket(s) instead of the host's average.
   */
  placement?: Placement;
  /**
   * Shape features the MLP does not see (fed as 0). Models since the socket-load factor leave `freq_ghz` out:
   * the host's average frequency falls with the load of both packages alike, so as a per-VM input it gave
   * every term the host's load effect and left the per-socket load factor nothing to fit. Absent: all used.
   */
  ignoredShape?: string[];
}

/** Socket placement of VMs: `${hostId}/${vmUuid}` → fraction of its CPU time on each package (Σ = 1). */
export interface Placement {
  sockets: number;
  vm: Record<string, number[]>;
}

function rate(x: number, dt: number): number {
  return dt > 0 && Number.isFinite(x) && x > 0 ? x / dt : 0;
}

/** What the model sees of one VM in one interval (raw shape features, before normalisation). */
export function vmFeatures(vm: VmInterval, iv: HostInterval): VmFeatures {
  const dt = iv.durationS;
  const presence = Number.isFinite(vm.presence) ? Math.min(1, Math.max(0, vm.presence)) : 0;
  const span = dt * Math.max(presence, 1e-6);
  const cpu = rate(vm.cpuSeconds, dt);
  const vc = vm.vcpuSeconds.map((s) => rate(s, span));
  const vcpus = Math.max(1, vm.vcpus, vc.length);
  let mean = 0;
  for (const x of vc) mean += x;
  mean = vc.length ? mean / vc.length : 0;
  let v = 0;
  for (const x of vc) v += (x - mean) ** 2;
  const spread = vc.length && mean > 1e-9 ? Math.sqrt(v / vc.length) / mean : 0;
  const p = vm.perf;
  const ipc = p && p.cycles > 0 ? p.instructions / p.cycles : 0;
  const mpki = p && p.instructions > 0 ? (1000 * p.llcMisses) / p.instructions : 0;
  let gpu = 0;
  for (const g of vm.gpus) gpu += Math.max(0, g.smUtilPct) / 100;
  const shape = [rate(vm.cpuSeconds, span) / vcpus, spread, ipc, Math.min(mpki, 100), p ? 1 : 0, vm.memoryBytes > 0 ? vm.memoryUsedBytes / vm.memoryBytes : 0, (iv.hostCpu.avgFreqMhz || 0) / 1000, gpu];
  const MB = 1e6;
  const io = [rate(vm.blockReadBytes, dt) / MB, rate(vm.blockWriteBytes, dt) / MB, rate(vm.netRxBytes, dt) / MB, rate(vm.netTxBytes, dt) / MB, (Math.max(0, vm.memoryUsedBytes) / 2 ** 30) * presence, vmGpuWatts(vm, iv), p ? (rate(p.llcMisses, dt) * 64) / 1e9 : 0];
  return { id: vm.uuid, host: iv.hostId, cores: iv.hostCpu.onlineCpus, cpu, load: hostLoad(iv), shape, io };
}

/**
 * The VM's GPU power, W, from observables: a passed-through device's whole measured power; a shared
 * device's power by the VM's share of SM utilisation (equal among context holders when idle). Drives
 * the fans and PSU losses that land in bmc_rest.
 */
export function vmGpuWatts(vm: VmInterval, iv: HostInterval): number {
  if (!(iv.durationS > 0) || vm.gpus.length === 0) return 0;
  let w = 0;
  for (const g of vm.gpus) {
    const dev = iv.gpus.find((d) => d.device === g.device);
    if (!dev || !(dev.joules > 0)) continue;
    const P = dev.joules / iv.durationS;
    if (g.passthrough) {
      w += P;
      continue;
    }
    let tot = 0;
    let holders = 0;
    for (const o of iv.vms) {
      for (const og of o.gpus) {
        if (og.device !== g.device) continue;
        tot += Math.max(0, og.smUtilPct);
        if (og.holdsContext) holders++;
      }
    }
    w += tot > 0 ? (P * Math.max(0, g.smUtilPct)) / tot : holders > 0 && g.holdsContext ? P / holders : 0;
  }
  return w;
}

/** Host CPU busy fraction over the interval. */
export function hostLoad(iv: HostInterval): number {
  const tot = iv.hostCpu.busySeconds + iv.hostCpu.idleSeconds;
  return tot > 0 ? Math.min(1, Math.max(0, iv.hostCpu.busySeconds / tot)) : 0;
}

/** CPU time outside VMs (hypervisor, host services): one more additive term. */
export function overheadFeatures(iv: HostInterval): VmFeatures {
  let vmCpu = 0;
  for (const v of iv.vms) vmCpu += Math.max(0, v.cpuSeconds);
  const cpu = rate(Math.max(0, iv.hostCpu.busySeconds - vmCpu), iv.durationS);
  return { id: OVERHEAD_ID, host: iv.hostId, cores: iv.hostCpu.onlineCpus, cpu, load: hostLoad(iv), shape: [0, 0, 0, 0, 0, 0, (iv.hostCpu.avgFreqMhz || 0) / 1000, 0], io: IO_FEATURES.map(() => 0) };
}

/** All additive terms of an interval: its VMs, then the host overhead. */
export function intervalFeatures(iv: HostInterval): VmFeatures[] {
  return [...iv.vms.map((v) => vmFeatures(v, iv)), overheadFeatures(iv)];
}

/**
 * Busy fraction of every package (0..1) from every term's CPU time and the model's placement (terms without
 * one, such as the hypervisor, are spread evenly), and each term's placement weights. Undefined without a
 * placement for these terms (single socket, or none inferred).
 */
export function socketLoads(model: AdditiveModelJson, terms: readonly VmFeatures[]): { us: Float64Array; ws: (number[] | undefined)[] } | undefined {
  const pl = model.placement;
  const cores = terms[0]?.cores ?? 0;
  if (!pl || pl.sockets < 2 || !(cores > 0)) return undefined;
  const S = pl.sockets;
  const ws = terms.map((f) => pl.vm[f.placeKey ?? `${f.host}/${f.id}`]);
  if (ws.every((w) => w === undefined)) return undefined;
  const us = new Float64Array(S);
  terms.forEach((f, t) => {
    const w = ws[t];
    const c = Math.max(0, f.cpu);
    for (let s = 0; s < S; s++) us[s] = us[s]! + c * (w ? (w[s] ?? 0) : 1 / S);
  });
  const perSocket = cores / S;
  for (let s = 0; s < S; s++) us[s] = Math.min(1, us[s]! / perSocket);
  return { us, ws };
}

/**
 * Per-term load (0..1) for the RAPL load factor: the busy fraction of the socket(s) the term runs on, from
 * every term's CPU time and the model's placement; terms without a placement (the hypervisor, VMs the model
 * has not seen) are spread evenly. Without a placement (single socket, or none inferred): the host's load.
 */
export function termLoads(model: AdditiveModelJson, terms: readonly VmFeatures[]): number[] {
  const sl = socketLoads(model, terms);
  if (!sl) return terms.map((f) => f.load);
  const { us, ws } = sl;
  const S = us.length;
  let mean = 0;
  for (let s = 0; s < S; s++) mean += us[s]! / S;
  return terms.map((_f, t) => {
    const w = ws[t];
    if (!w) return mean;
    let u = 0;
    for (let s = 0; s < S; s++) u += (w[s] ?? 0) * us[s]!;
    return u;
  });
}

/**
 * Each term's own load (0..1): the busy fraction its CPU time alone would give the socket(s) it runs on (the
 * model's placement; spread evenly without one), i.e. its load with no neighbours.
 */
export function ownLoads(model: AdditiveModelJson, terms: readonly VmFeatures[]): number[] {
  const pl = model.placement;
  return terms.map((f) => {
    const cores = f.cores;
    if (!(cores > 0) || !(f.cpu > 0)) return 0;
    const w = pl && pl.sockets >= 2 ? pl.vm[f.placeKey ?? `${f.host}/${f.id}`] : undefined;
    if (!w || !pl) return Math.min(1, f.cpu / cores);
    let sq = 0;
    for (const x of w) sq += x * x;
    return Math.min(1, (f.cpu * sq) / (cores / pl.sockets));
  });
}

/** The load factor of a source at load u: 1 + β₁·u + β₂·u², floored at 0.1. */
export function loadFactor(load: readonly [number, number], u: number): number {
  return Math.max(0.1, 1 + load[0] * u + load[1] * u * u);
}

const NO_INDICES: readonly number[] = Object.freeze([]);
const ignoredCache = new WeakMap<AdditiveModelJson, readonly number[]>();

/** Indices (into SHAPE_FEATURES) of the model's ignored shape features. */
export function ignoredIndices(model: AdditiveModelJson): readonly number[] {
  if (!model.ignoredShape?.length) return NO_INDICES;
  let r = ignoredCache.get(model);
  if (!r) {
    r = model.ignoredShape.map((n) => (SHAPE_FEATURES as readonly string[]).indexOf(n)).filter((i) => i >= 0);
    ignoredCache.set(model, r);
  }
  return r;
}

function softplus(x: number): number {
  return x > 30 ? x : Math.log1p(Math.exp(x));
}

/**
 * g_s for each term, W (plain JS on the exported weights: the apply path). `scratch` avoids allocation.
 * Terms with no CPU and no I/O get 0.
 */
export function termPowers(model: AdditiveModelJson, source: ModelSource, terms: readonly VmFeatures[]): number[] {
  const w = model.sources[source];
  if (w.fromRapl && source !== 'rapl') {
    // wall-side rest (fans, PSU losses): proportional to each term's own RAPL power, plus its I/O
    const r = termPowers(model, 'rapl', terms);
    return terms.map((f, t) => {
      let g = 0;
      if (f.cpu > 0) {
        const lf = Math.max(0.1, 1 + w.load[0] * f.load + w.load[1] * f.load * f.load);
        g = w.cpuScaleW * r[t]! * Math.exp(w.vm[f.id] ?? 0) * lf;
      }
      for (let k = 0; k < f.io.length; k++) g += (f.io[k] ?? 0) * (w.io[k] ?? 0);
      return g;
    });
  }
  const { mean, std } = model.norm;
  const H = w.b1.length;
  const F = mean.length;
  const out = new Array<number>(terms.length);
  const xn = new Float64Array(F);
  const loads = termLoads(model, terms);
  const off = ignoredIndices(model);
  for (let t = 0; t < terms.length; t++) {
    const f = terms[t]!;
    let g = 0;
    const own = w.vmCoreW?.[f.id];
    if (f.cpu > 0 && own !== undefined) {
      const u = loads[t]!;
      g = f.cpu * own * Math.max(0.1, 1 + w.load[0] * u + w.load[1] * u * u) * ipcFactor(w, f);
    } else if (f.cpu > 0) {
      for (let i = 0; i < F; i++) xn[i] = ((f.shape[i] ?? 0) - mean[i]!) / std[i]!;
      for (const i of off) xn[i] = 0;
      let z = w.b2;
      for (let h = 0; h < H; h++) {
        let a = w.b1[h]!;
        for (let i = 0; i < F; i++) a += xn[i]! * w.W1[i]![h]!;
        z += Math.tanh(a) * w.W2[h]!;
      }
      const u = loads[t]!;
      const lf = Math.max(0.1, 1 + w.load[0] * u + w.load[1] * u * u);
      g = w.cpuScaleW * f.cpu * softplus(z) * Math.exp(w.vm[f.id] ?? 0) * lf;
    }
    for (let k = 0; k < f.io.length; k++) g += (f.io[k] ?? 0) * (w.io[k] ?? 0);
    out[t] = g;
  }
  return out;
}

const IPC_INDEX = SHAPE_FEATURES.indexOf('ipc');

/** A trained term's IPC factor (SourceWeights.ipcGain): 1 without a gain, a reference or a perf reading. */
export function ipcFactor(w: Pick<SourceWeights, 'ipcGain' | 'vmIpcRef' | 'vmIpcGain'>, f: VmFeatures): number {
  const gain = w.vmIpcGain?.[f.id] ?? w.ipcGain ?? 0;
  const ref = w.vmIpcRef?.[f.id];
  const ipc = f.shape[IPC_INDEX] ?? 0;
  if (gain === 0 || ref === undefined || !(ref > 0) || !(ipc > 0)) return 1;
  return Math.min(4, Math.max(0.25, 1 + gain * (ipc / ref - 1)));
}

/** The model's static power of a source on a host, W: the host's own where it was trained on, else the class's. */
export function staticPowerW(model: AdditiveModelJson, source: ModelSource, hostId: string): number {
  const w = model.sources[source];
  return w.hostStaticW?.[hostId] ?? w.staticW;
}

/** Predicted host power of a source for an interval, W. */
export function predictPowerW(model: AdditiveModelJson, source: ModelSource, iv: HostInterval): number {
  let p = staticPowerW(model, source, iv.hostId);
  for (const g of termPowers(model, source, intervalFeatures(iv))) p += g;
  return p;
}

/** Validates a parsed model file; names the file and field on failure. */
export function checkModelJson(x: unknown, file: string): AdditiveModelJson {
  const bad = (field: string, value: unknown): never => {
    throw new WattsplitError('MODEL_NOT_TRAINED', `${file}: model field "${field}" is invalid (${JSON.stringify(value)?.slice(0, 60) ?? 'undefined'})`, { details: { file, field } });
  };
  if (typeof x !== 'object' || x === null) return bad('(root)', x);
  const m = x as Partial<AdditiveModelJson>;
  if (m.kind !== 'wattsplit.additive_model') bad('kind', m.kind);
  if (m.formatVersion !== 1) bad('formatVersion', m.formatVersion);
  if (typeof m.hardwareClass !== 'string') bad('hardwareClass', m.hardwareClass);
  if (!Number.isInteger(m.version)) bad('version', m.version);
  if (!m.norm || !Array.isArray(m.norm.mean) || m.norm.mean.length !== SHAPE_FEATURES.length || !Array.isArray(m.norm.std)) bad('norm', m.norm);
  if (m.ignoredShape !== undefined && !(Array.isArray(m.ignoredShape) && m.ignoredShape.every((x) => (SHAPE_FEATURES as readonly string[]).includes(x)))) bad('ignoredShape', m.ignoredShape);
  if (m.placement !== undefined) {
    const pl = m.placement as Partial<Placement>;
    if (!Number.isInteger(pl.sockets) || (pl.sockets ?? 0) < 1) bad('placement.sockets', pl.sockets);
    if (typeof pl.vm !== 'object' || pl.vm === null) return bad('placement.vm', pl.vm);
    for (const [k, w] of Object.entries(pl.vm)) if (!Array.isArray(w) || w.length !== pl.sockets || !w.every((x) => Number.isFinite(x) && x >= 0)) bad(`placement.vm["${k}"]`, w);
  }
  for (const s of MODEL_SOURCES) {
    const w = m.sources?.[s];
    if (!w) return bad(`sources.${s}`, w);
    if (!Number.isFinite(w.staticW)) bad(`sources.${s}.staticW`, w.staticW);
    if (!Array.isArray(w.W1) || w.W1.length !== SHAPE_FEATURES.length) bad(`sources.${s}.W1`, '[...]');
    if (!Array.isArray(w.io) || (w.io.length !== IO_FEATURES.length && w.io.length !== IO_FEATURES.length - 1)) bad(`sources.${s}.io`, w.io);
    if (!Array.isArray(w.load) || w.load.length !== 2) bad(`sources.${s}.load`, w.load);
    if (w.hostStaticW !== undefined && (typeof w.hostStaticW !== 'object' || w.hostStaticW === null || !Object.values(w.hostStaticW).every((x) => Number.isFinite(x) && x >= 0))) bad(`sources.${s}.hostStaticW`, w.hostStaticW);
    if (w.ipcGain !== undefined && !(Number.isFinite(w.ipcGain) && w.ipcGain >= 0)) bad(`sources.${s}.ipcGain`, w.ipcGain);
    if (w.vmIpcGain !== undefined && (typeof w.vmIpcGain !== 'object' || w.vmIpcGain === null || !Object.values(w.vmIpcGain).every((x) => Number.isFinite(x) && x >= 0))) bad(`sources.${s}.vmIpcGain`, w.vmIpcGain);
    if (w.vmIpcRef !== undefined && (typeof w.vmIpcRef !== 'object' || w.vmIpcRef === null || !Object.values(w.vmIpcRef).every((x) => Number.isFinite(x) && x > 0))) bad(`sources.${s}.vmIpcRef`, w.vmIpcRef);
    if (w.vmCoreW !== undefined && (typeof w.vmCoreW !== 'object' || w.vmCoreW === null || !Object.values(w.vmCoreW).every((x) => Number.isFinite(x) && x >= 0))) bad(`sources.${s}.vmCoreW`, w.vmCoreW);
  }
  return m as AdditiveModelJson;
}

/** The source names the model covers (the GPU is attributed by the signature learner). */
export function isModelSource(s: SourceName): s is ModelSource {
  return s === 'rapl' || s === 'bmc_rest';
}

/**
 * GPU attribution of live host intervals by learned per-VM signatures (the same model as gpuReplay):
 * per device, E = P_static·dt (+ P_ctx·contexts·dt) + Σ_vm s_vm · busy_vm, busy_vm = the device's busy
 * time split by the VM's share of the NVML process samples (`deviceObservation`). Passthrough devices go wholly to their VM. Time-sliced devices are split by the device's
 * current fit and reconciled so the parts sum exactly to the measurement. Until a device has been observed
 * `minWindows` intervals the split uses SM-utilisation shares, and the static power is the learner's once its
 * standard error is within 5 % of it (idle intervals determine it within seconds), the configured one before;
 * the result's note says which. Non-GPU sources come from the `base` method (CPU share by default).
 *
 * Learning is apart from attributing: `attribute`/`attributeGpu` only read the fits (the result depends
 * on the interval, the context and the learned state only); `observe(iv)` feeds the interval's windows to
 * the device learners (online, forgetting half-life). The collector calls `observe` after the interval is
 * stored, so every interval is attributed with what came before it (causal). Two things the learner gets
 * that the split does not need (the split of a window depends only on its tenants' shares and the fit):
 * - the device's busy time aligned with the energy counter: the utilisation the agent reports for an
 *   interval lags its energy by τ (`GpuIntervalLagEstimator`, estimated from the device's own intervals), so
 *   an interval's window is learned when the next contiguous interval arrives, its busy time shifted by τ at
 *   each boundary with the utilisation read closing the interval there (`boundaryAlignedWindow`: m_i·dt +
 *   min(τ, P)·(p_i − p_{i−1}) + max(0, τ − P)·(m_{i+1} − m_i)), with the variance that estimate carries where a
 *   switch is near a boundary; intervals with the point read only, or without their own or the previous closing
 *   read (a frame without the device's sample: `gpuUtilMissing`), are aligned over the interval ((1 − τ/dt)·m_i +
 *   τ/dt·m_{i+1}, `alignedWindow`). The learner is therefore one
 *   interval behind what was observed; an interval followed by a gap (or a restart's seq jump) is learned as
 *   reported.
 * - the number of process samples its split was drawn from (Σ of the VMs' `utilSamples`), so that the learner
 *   weighs windows by the sampling noise of their split (`GpuSignatureLearner`, feasible GLS) — only where the
 *   split is a draw: not when the VMs' samples outnumber the device's utilisation samples (every process sampled
 *   every period, e.g. MPS or the simulator).
 * State is per host: the host's device learners, lag estimators and pending windows, and the seq of the last
 * interval observed; an interval with seq ≤ that is not observed again (a redelivered interval is never
 * learned twice). `exportState(host)` / `importState(host, state)` move it to and from storage as plain JSON
 * (learner name `gpu_signature`); states written before the lag and pending fields existed import with a fresh
 * estimator and nothing pending, and a pending window written before the closing reads were kept is learned with
 * the interval alignment, as is the window after it (no closing read to carry).
 */
import {
  CpuShareMethod,
  learnerStateEnvelope,
  openLearnerState,
  reconcile,
  type AttributionContext,
  type AttributionMethod,
  type AttributionResult,
  type AttributionShare,
  type GpuInterval,
  type HostInterval,
  type HostStateLearner,
  type IdleSplitPolicy,
  type LearnerStateReader,
  type LearnerHostState,
  type VmGpuInterval,
  type VmInterval,
} from '@wattsplit/attribution';
import { GpuIntervalLagEstimator, type GpuIntervalLagState } from './gpu-interval-lag.js';
import { GpuSignatureLearner, splitGpuWindow, type GpuActivityWindow, type GpuSignatureFit, type GpuSignatureLearnerState, type GpuStaticPolicy } from './gpu-signature.js';

export const GPU_SIGNATURE_METHOD = 'gpu_signature';

export interface GpuTimeSliceMethodOptions {
  /** Method for the rapl and bmc_rest sources (and the GPU shares it is replacing). Default CpuShareMethod. */
  base?: AttributionMethod;
  /** Online learner forgetting half-life, intervals. Default 3600. */
  halfLifeWindows?: number;
  /** Intervals a device needs before its learned fit is used. Default 60. */
  minWindows?: number;
  /** Device idle power with no contexts, W, left unallocated (platform cost). Default 0. */
  noContextIdleW?: number;
  /**
   * Lag of the reported utilisation behind the energy counter, seconds, for the learner's windows. Default:
   * estimated per device from its intervals (`GpuIntervalLagEstimator`). 0 = learn the utilisation as reported.
   */
  utilLagS?: number;
  /**
   * Weigh the learner's windows by the variance of their modelled energy (`GpuSignatureLearnerOptions.sampleWeighting`):
   * the sampling noise of their split and, with the boundary alignment, the variance of their aligned busy time
   * (`busyVarS2`). Default true.
   */
  sampleWeighting?: boolean;
  /**
   * How the reported busy time is aligned with the energy counter where the agent sends the device's mean
   * utilisation: `boundary` (default) shifts it by τ at the interval's two boundaries using the utilisation read
   * closing each interval, `interval` assumes the busy time uniform within each interval ((1 − τ/dt)·m_i + τ/dt·m_{i+1},
   * the previous method). Intervals with the point read only are aligned the `interval` way either way.
   */
  utilAlignment?: 'boundary' | 'interval';
  /**
   * Static power while a device warms up: `learned` (default) takes the learner's pooled static power once its
   * standard error is within 5 % of it, the configured one before; `configured` always the configured one.
   */
  warmupStatic?: 'learned' | 'configured';
}

function gpuPolicy(p: IdleSplitPolicy): GpuStaticPolicy {
  switch (p) {
    case 'reserved':
      return 'by_memory';
    case 'equal':
      return 'equal';
    case 'unallocated':
      return 'unallocated';
  }
}

/** An observed interval's window of one device, waiting for the next interval's utilisation to be aligned and learned. */
export interface GpuPendingWindow {
  seq: number;
  t1UnixNs: number;
  /** The device's reported busy fraction over the interval, 0..1 (`deviceBusyFraction`). */
  busy: number;
  /** The window as reported (activity = busy × dt split by `shares`, or the VMs' own SM time without utilisation). */
  window: GpuActivityWindow;
  /** Each active VM's share of the process samples (Σ = 1); empty when no VM had samples. */
  shares: Record<string, number>;
  /**
   * The utilisation read closing the interval (`gpuUtilPct`), 0..1; undefined where there was no read (the frame
   * had no device sample: `gpuUtilMissing`) or the window comes from a state written before it was kept.
   */
  point?: number;
  /** The device's utilisation samples behind `busy` (`gpuUtilSamples`); 0 when the busy fraction is the point read. */
  utilSamples: number;
  /** The closing read of the previous interval when it was contiguous with this one and had one, 0..1. */
  prevPoint?: number;
}

/** One persisted device: its learner's sums, its lag estimator's sums and the window pending alignment. */
export interface GpuTimeSliceDeviceState {
  device: string;
  state: GpuSignatureLearnerState;
  lag?: GpuIntervalLagState;
  pending?: {
    seq: number; t1UnixNs: number; busy: number; durationS: number; joules: number; samples?: number; activity: Array<[string, number]>; contexts: Array<[string, number]>; usedMemory: Array<[string, number]>; shares: Array<[string, number]>;
    /**
     * Absent in states written before the boundary alignment: `point` and `prevPoint` read as none (undefined,
     * so the window and the next one are learned with the interval alignment), `utilSamples` as 0. `point` is
     * also absent where the interval had no closing read.
     */
    point?: number; utilSamples?: number; prevPoint?: number;
  };
}

/** `GpuTimeSliceMethod.exportState` output: one host's device learners and last observed seq. */
export interface GpuTimeSliceHostState extends LearnerHostState {
  learner: typeof GPU_SIGNATURE_METHOD;
  /** Per time-sliced device (PCI bus id), in the order first seen. */
  devices: GpuTimeSliceDeviceState[];
  /** The base method's state for the host, when it learns too. */
  base?: LearnerHostState;
}

/**
 * One time-sliced device's learning. Invariant: `learner` holds the windows of every observed interval of the
 * device before `pending`, and `pending` is the last observed interval (undefined before the first); `lag` holds
 * one pair per contiguous pair of intervals whose first one the learner holds.
 */
class DeviceLearning {
  pending: GpuPendingWindow | undefined;
  constructor(
    readonly learner: GpuSignatureLearner,
    readonly lag: GpuIntervalLagEstimator = new GpuIntervalLagEstimator(),
  ) {}

  /** Intervals observed: those learned and the pending one. */
  get observed(): number {
    return this.learner.windows + (this.pending ? 1 : 0);
  }
}

/** One host's learners. Invariant: `lastSeq` is the seq of the last interval observed (learned or pending). */
class HostGpuLearners {
  lastSeq: number | undefined;
  readonly devices = new Map<string, DeviceLearning>();
}

type Attached = Array<{ v: VmInterval; vg: VmGpuInterval }>;

function attachedTo(iv: HostInterval, device: string): Attached {
  return iv.vms.flatMap((v) => v.gpus.filter((vg) => vg.device === device).map((vg) => ({ v, vg })));
}

/**
 * The device's busy fraction over the interval, 0..1: the mean of the driver's utilisation samples over the
 * interval (`gpuUtilMeanPct`, nvmlDeviceGetSamples) when the agent reported any — the same busy time the
 * offline replay integrates from every read — else the single utilisation read closing the interval.
 */
export function deviceBusyFraction(g: GpuInterval): number {
  const mean = g.gpuUtilSamples !== undefined && g.gpuUtilSamples > 0 && g.gpuUtilMeanPct !== undefined && Number.isFinite(g.gpuUtilMeanPct) ? g.gpuUtilMeanPct : undefined;
  const pct = mean ?? (Number.isFinite(g.gpuUtilPct) ? g.gpuUtilPct : 0);
  return Math.max(0, Math.min(100, pct)) / 100;
}

/**
 * The learner's window of one time-sliced device over the interval, as reported. Activity in busy-seconds per VM: the
 * device's busy time (`deviceBusyFraction` × dt) split by each VM's share of the process-utilisation samples (mean SM
 * utilisation × number of samples × presence). Under time-slicing each NVML sample names the process that
 * held the GPU, so the sample count is the VM's time share; where every process is sampled every read (the
 * simulator) the count is the same for all and the split is by SM utilisation. A device that reports no
 * utilisation falls back to each VM's own SM utilisation × dt. `samples`: the active VMs' process samples.
 */
function deviceObservation(iv: HostInterval, g: GpuInterval, attached: Attached): GpuPendingWindow {
  const dt = Math.max(0, iv.durationS);
  const w: GpuActivityWindow = { durationS: dt, joules: Math.max(0, g.joules), activity: {}, contexts: {}, usedMemory: {} };
  const weight = new Map<string, number>();
  const own = new Map<string, number>();
  let samples = 0;
  for (const { v, vg } of attached) {
    const presence = Number.isFinite(v.presence) ? Math.min(1, Math.max(0, v.presence)) : 0;
    const sm = Number.isFinite(vg.smUtilPct) ? Math.max(0, Math.min(100, vg.smUtilPct)) / 100 : 0;
    const counted = Number.isFinite(vg.utilSamples) && vg.utilSamples > 0;
    const n = counted ? vg.utilSamples : 1;
    if (sm * presence > 0) {
      weight.set(v.uuid, (weight.get(v.uuid) ?? 0) + sm * n * presence);
      own.set(v.uuid, (own.get(v.uuid) ?? 0) + sm * dt * presence);
      if (counted) samples += vg.utilSamples * presence;
    }
    if (vg.holdsContext) w.contexts[v.uuid] = Math.max(w.contexts[v.uuid] ?? 0, presence);
    w.usedMemory![v.uuid] = Math.max(w.usedMemory![v.uuid] ?? 0, vg.usedMemoryBytes);
  }
  const busy = deviceBusyFraction(g);
  // no closing read where the frame had no device sample (the 0 there is a default, not a utilisation)
  const point = g.gpuUtilMissing || !Number.isFinite(g.gpuUtilPct) ? undefined : Math.max(0, Math.min(100, g.gpuUtilPct)) / 100;
  const utilSamples = g.gpuUtilSamples !== undefined && g.gpuUtilSamples > 0 && g.gpuUtilMeanPct !== undefined && Number.isFinite(g.gpuUtilMeanPct) ? g.gpuUtilSamples : 0;
  let tot = 0;
  for (const x of weight.values()) tot += x;
  const shares: Record<string, number> = {};
  if (tot > 0) for (const [k, x] of weight) shares[k] = x / tot;
  const U = busy * dt;
  if (U > 0 && tot > 0) for (const [k, f] of Object.entries(shares)) w.activity[k] = U * f;
  else for (const [k, x] of own) w.activity[k] = x;
  // The split is a draw only under time-slicing, where each process sample names the one process that held the
  // GPU: then the VMs' samples are at most about one per driver sample period (the device's utilisation samples).
  // Where more processes were sampled than there were periods (every process sampled every period: MPS, the
  // simulator), the split is measured, not drawn, and carries no sampling noise to weigh by.
  const periods = Number.isFinite(g.gpuUtilSamples) && (g.gpuUtilSamples ?? 0) > 0 ? g.gpuUtilSamples! : undefined;
  if (samples > 0 && !(periods !== undefined && samples > periods)) w.samples = samples;
  return { seq: iv.seq, t1UnixNs: iv.t1UnixNs, busy, window: w, shares, ...(point !== undefined ? { point } : {}), utilSamples };
}

/**
 * The pending window with its busy time aligned with its energy: (1 − f)·m_i + f·m_next, f = τ/dt capped at 1,
 * split by the same shares. Left as reported when it has no shares (the VMs' own SM time) or the aligned busy
 * time is 0.
 */
export function alignedWindow(p: GpuPendingWindow, nextBusy: number, lagS: number): GpuActivityWindow {
  const dt = p.window.durationS;
  if (!(lagS > 0) || !(dt > 0) || Object.keys(p.shares).length === 0) return p.window;
  const f = Math.min(1, lagS / dt);
  const U = ((1 - f) * p.busy + f * nextBusy) * dt;
  if (!(U > 0)) return p.window;
  const activity: Record<string, number> = {};
  for (const [k, s] of Object.entries(p.shares)) activity[k] = U * s;
  return { ...p.window, activity };
}

/**
 * The pending window's busy time aligned with its energy at its two boundaries. The mean m_i of the utilisation
 * samples over (t0, t1] describes (t0 − τ, t1 − τ], so the busy time over (t0, t1] is m_i·dt less what the samples
 * report over (t0, t0 + τ] plus what they report over (t1, t1 + τ]. The read closing an interval (`gpuUtilPct`) is
 * the utilisation over the driver's last sample period P before it (nvml.h: "over the past sample period"), and the
 * load switches at moments unrelated to the interval's boundaries, so the utilisation just after a boundary is most
 * likely the one just before it: for the first min(τ, P) after each boundary the closing read there stands in (p_i
 * at t1, p_{i−1} at t0), beyond it the interval's mean (m_{i+1}, m_i), which is all that is known of it:
 *
 *   U_i = m_i·dt + min(τ, P)·(p_i − p_{i−1}) + max(0, τ − P)·(m_{i+1} − m_i),   P = dt / (utilisation samples)
 *
 * This is exact when τ ≤ P and no switch falls within P + τ of either boundary (with τ > P the part of τ beyond P
 * is taken from the intervals' means, exact only where the utilisation is constant there); `interval` alignment
 * ((1 − τ/dt)·m_i + τ/dt·m_{i+1}) only where the utilisation is constant over both intervals. What is left is carried to the
 * learner as a variance: where a switch is near a boundary the utilisation after it lies between the closing read
 * and the next interval's mean (p_i vs m_{i+1} at t1, p_{i−1} vs m_i at t0); with the switch uniform over the span
 * that could show it, Var(U_i) ≈ τ²·[(p_i − m_{i+1})² + (p_{i−1} − m_i)²]·(P + τ)/(3·(P + dt)). Needs the mean
 * (`utilSamples` > 0), the interval's own closing read and the previous contiguous interval's. τ is capped at dt
 * (as in `alignedWindow`): the estimate does not reach beyond the next interval.
 */
export function boundaryAlignedWindow(p: GpuPendingWindow & { point: number; prevPoint: number }, nextBusy: number, lagS: number): GpuActivityWindow {
  const dt = p.window.durationS;
  if (!(lagS > 0) || !(dt > 0) || Object.keys(p.shares).length === 0) return p.window;
  const tau = Math.min(lagS, dt);
  const period = dt / Math.max(1, p.utilSamples);
  const near = Math.min(tau, period);
  const far = tau - near;
  // U may be 0: the energy of an interval whose reported busy time all belongs to the one before it is idle energy
  const U = Math.max(0, Math.min(dt, p.busy * dt + near * (p.point - p.prevPoint) + far * (nextBusy - p.busy)));
  const activity: Record<string, number> = {};
  if (U > 0) for (const [k, s] of Object.entries(p.shares)) activity[k] = U * s;
  const busyVarS2 = tau * tau * ((p.point - nextBusy) ** 2 + (p.prevPoint - p.busy) ** 2) * ((period + tau) / (3 * (period + dt)));
  return { ...p.window, activity, ...(busyVarS2 > 0 ? { busyVarS2 } : {}) };
}

/** A static power counts as learned while warming up when its standard error is within this fraction of it. */
const WARMUP_STATIC_REL_SE = 0.05;

/** Intervals closer than this (ns) count as contiguous (the agent's next interval starts at the read that closed the last). */
const CONTIGUOUS_NS = 1e6;

export class GpuTimeSliceMethod implements AttributionMethod, HostStateLearner {
  readonly name = GPU_SIGNATURE_METHOD;
  private readonly base: AttributionMethod;
  private readonly learners = new Map<string, HostGpuLearners>();
  private readonly halfLife: number;
  private readonly minWindows: number;
  private readonly noContextIdleW: number;
  private readonly utilLagS: number | undefined;
  private readonly sampleWeighting: boolean;
  private readonly utilAlignment: 'boundary' | 'interval';
  private readonly warmupStatic: 'learned' | 'configured';

  constructor(opts: GpuTimeSliceMethodOptions = {}) {
    this.base = opts.base ?? new CpuShareMethod();
    this.halfLife = opts.halfLifeWindows ?? 3600;
    this.minWindows = opts.minWindows ?? 60;
    this.noContextIdleW = opts.noContextIdleW ?? 0;
    this.utilLagS = opts.utilLagS;
    this.sampleWeighting = opts.sampleWeighting ?? true;
    this.utilAlignment = opts.utilAlignment ?? 'boundary';
    this.warmupStatic = opts.warmupStatic ?? 'learned';
  }

  private learnerOptions(): { halfLifeWindows: number; sampleWeighting: boolean } {
    return { halfLifeWindows: this.halfLife, sampleWeighting: this.sampleWeighting };
  }

  /** Current fit of one device (for reports), undefined when never observed. */
  fitOf(hostId: string, device: string): GpuSignatureFit | undefined {
    return this.learners.get(hostId)?.devices.get(device)?.learner.fit();
  }

  /** The device's utilisation lag the learner aligns with, seconds (the configured one, or the estimate so far); undefined when never observed. */
  utilLagOf(hostId: string, device: string): number | undefined {
    const d = this.learners.get(hostId)?.devices.get(device);
    if (!d) return undefined;
    return this.utilLagS ?? d.lag.lagS();
  }

  /**
   * Feeds the interval's time-sliced GPU windows to the host's device learners (and the interval to the
   * base method, when it learns). No-op for an interval with seq ≤ the host's last observed seq.
   */
  observe(iv: HostInterval): void {
    this.base.observe?.(iv);
    let h = this.learners.get(iv.hostId);
    if (h?.lastSeq !== undefined && iv.seq <= h.lastSeq) return;
    if (!h) {
      h = new HostGpuLearners();
      this.learners.set(iv.hostId, h);
    }
    h.lastSeq = iv.seq;
    for (const g of iv.gpus) {
      const attached = attachedTo(iv, g.device);
      if (attached.some((a) => a.vg.passthrough)) continue;
      let d = h.devices.get(g.device);
      if (!d) {
        d = new DeviceLearning(new GpuSignatureLearner(this.learnerOptions()));
        h.devices.set(g.device, d);
      }
      const obs = deviceObservation(iv, g, attached);
      const p = d.pending;
      if (p) {
        // the pending window's busy time is aligned with its energy now that the next interval's is known
        const contiguous = Math.abs(iv.t0UnixNs - p.t1UnixNs) <= CONTIGUOUS_NS;
        if (!contiguous) {
          d.learner.observe(p.window);
        } else {
          const dt = p.window.durationS;
          if (dt > 0) d.lag.add(p.window.joules / dt, p.busy, obs.busy, dt);
          const lagS = this.utilLagS ?? d.lag.lagS();
          const { point, prevPoint } = p;
          const boundary = this.utilAlignment === 'boundary' && p.utilSamples > 0 && point !== undefined && prevPoint !== undefined;
          d.learner.observe(boundary ? boundaryAlignedWindow({ ...p, point, prevPoint }, obs.busy, lagS) : alignedWindow(p, obs.busy, lagS));
          // only a real closing read is carried: none (a missing read, an old state's window) leaves the next window interval-aligned
          if (point !== undefined) obs.prevPoint = point;
        }
      }
      d.pending = obs;
    }
  }

  lastSeq(hostId: string): number | undefined {
    return this.learners.get(hostId)?.lastSeq;
  }

  hosts(): string[] {
    return [...this.learners.keys()].filter((h) => this.learners.get(h)!.lastSeq !== undefined);
  }

  /** The host's learned state as plain JSON; undefined when the host has nothing learned (no time-sliced GPU seen, base stateless). */
  exportState(hostId: string): GpuTimeSliceHostState | undefined {
    const h = this.learners.get(hostId);
    const base = this.base.exportState?.(hostId);
    const devices = [...(h?.devices ?? [])].map(([device, d]) => exportDevice(device, d));
    const lastSeq = h?.lastSeq ?? base?.lastSeq;
    if (lastSeq === undefined || (devices.length === 0 && !base)) return undefined;
    return { ...learnerStateEnvelope(GPU_SIGNATURE_METHOD, hostId, lastSeq), learner: GPU_SIGNATURE_METHOD, devices, ...(base ? { base } : {}) };
  }

  /**
   * Replaces the host's learners with an exported state (object or JSON text); fits and attribution
   * results are then bit-identical to the exporter's. Throws LEARNER_STATE_INVALID naming the field; on a
   * throw nothing is changed.
   */
  importState(hostId: string, state: unknown): void {
    const { s, r, lastSeq } = openLearnerState(state, GPU_SIGNATURE_METHOD, hostId);
    const h = new HostGpuLearners();
    h.lastSeq = lastSeq;
    r.array(s.devices, 'devices').forEach((entry, i) => {
      const o = r.object(entry, `devices[${i}]`);
      const device = r.string(o.device, `devices[${i}].device`);
      if (h.devices.has(device)) r.fail(`devices[${i}].device`, 'must name each device once', device);
      const where = `${GPU_SIGNATURE_METHOD} state of host ${JSON.stringify(hostId)}, devices[${i}] (${device}).state`;
      const learner = GpuSignatureLearner.fromState(o.state, this.learnerOptions(), where);
      const lag = o.lag === undefined ? new GpuIntervalLagEstimator() : GpuIntervalLagEstimator.fromState(o.lag, r, `devices[${i}].lag`);
      const dev = new DeviceLearning(learner, lag);
      if (o.pending !== undefined) dev.pending = readPending(r, o.pending, `devices[${i}].pending`);
      h.devices.set(device, dev);
    });
    if (s.base !== undefined) {
      const importBase = this.base.importState?.bind(this.base);
      if (importBase) importBase(hostId, s.base);
      else r.fail('base', `is state for a base method, but ${this.base.name} keeps none`, s.base);
    }
    this.learners.set(hostId, h);
  }

  attribute(iv: HostInterval, ctx: AttributionContext): AttributionResult {
    const base = this.base.attribute(iv, ctx);
    if (iv.gpus.length === 0) return { ...base, method: this.name, modelVersion: `${base.method}:${base.modelVersion}` };
    const { shares: gpuShares, notes } = this.attributeGpu(iv, ctx);
    const shares = reconcile([...base.shares.filter((s) => s.source !== 'gpu'), ...gpuShares], iv.measured);
    const note = [base.note, ...notes].filter((x) => x !== '').join('; ');
    return { ...base, method: this.name, modelVersion: `${base.method}:${base.modelVersion}+gpu:${this.halfLife}`, note, shares };
  }

  /** GPU shares only (used by other methods that handle the CPU side themselves). Not reconciled. Reads the fits only. */
  attributeGpu(iv: HostInterval, ctx: AttributionContext): { shares: AttributionShare[]; notes: string[] } {
    const shares = new Map<string, AttributionShare>();
    const notes: string[] = [];
    const byUuid = new Map(iv.vms.map((v) => [v.uuid, v]));
    const add = (vm: VmInterval | undefined, dyn: number, sta: number, halfWidth: number): void => {
      const key = vm?.uuid ?? '';
      let s = shares.get(key);
      if (!s) {
        s = { kind: vm ? 'vm' : 'unallocated', vmUuid: vm?.uuid ?? '', vmName: vm?.name ?? '', tenant: vm?.tenant ?? '', source: 'gpu', dynamicJoules: 0, staticJoules: 0, lowJoules: 0, highJoules: 0 };
        shares.set(key, s);
      }
      s.dynamicJoules += dyn;
      s.staticJoules += sta;
      const tot = s.dynamicJoules + s.staticJoules;
      s.lowJoules = Math.max(0, s.lowJoules + dyn + sta - halfWidth);
      s.highJoules = Math.max(tot, s.highJoules + dyn + sta + halfWidth);
    };
    const dt = Math.max(0, iv.durationS);
    const configuredStatic = iv.gpus.length > 0 ? Math.max(0, ctx.staticPower.watts.gpu) / iv.gpus.length : 0;
    const host = this.learners.get(iv.hostId);
    let covered = 0;
    for (const g of iv.gpus) {
      const J = Math.max(0, g.joules);
      covered += J;
      const attached = attachedTo(iv, g.device);
      const owner = attached.find((a) => a.vg.passthrough);
      const dev = host?.devices.get(g.device);
      const learner = dev?.learner;
      if (owner) {
        const sta = Math.min(J, (learner?.fit().staticW ?? configuredStatic) * dt);
        add(owner.v, J - sta, sta, 0);
        continue;
      }
      const w = deviceObservation(iv, g, attached).window;
      const seen = dev?.observed ?? 0;
      let fit: GpuSignatureFit;
      if (learner && seen >= this.minWindows) {
        fit = learner.fit();
      } else {
        // warming up: SM-utilisation shares; the learner's static power once it is determined, else the configured one
        const signatures: Record<string, number> = {};
        for (const k of Object.keys(w.activity)) signatures[k] = 1;
        const est = this.warmupStatic === 'learned' ? learner?.staticEstimate() : undefined;
        const learned = est !== undefined && est.staticW > 0 && est.stdErrW <= WARMUP_STATIC_REL_SE * est.staticW;
        fit = { staticW: learned ? est.staticW : configuredStatic, perContextW: learned ? est.perContextW : 0, signatures, fallbackTenants: [], windows: seen, residualRmsJ: 0 };
        notes.push(`gpu ${g.device}: warming up (${seen}/${this.minWindows} intervals), split by SM utilisation, ${learned ? `learned static ${est.staticW.toFixed(1)} W` : 'configured static'}`);
      }
      const sp = splitGpuWindow(w, fit, { policy: gpuPolicy(ctx.policy), noContextIdleW: this.noContextIdleW });
      let dynTot = 0;
      for (const x of Object.values(sp.dynamic)) dynTot += x;
      for (const uuid of new Set([...Object.keys(sp.dynamic), ...Object.keys(sp.static)])) {
        const d = sp.dynamic[uuid] ?? 0;
        // uncertainty: the fit's residual per window, shared in proportion to the VM's dynamic part
        const hw = dynTot > 0 ? (fit.residualRmsJ * d) / dynTot : 0;
        add(byUuid.get(uuid), d, sp.static[uuid] ?? 0, hw);
      }
      if (sp.unallocatedStatic > 0) add(undefined, 0, sp.unallocatedStatic, 0);
    }
    const rest = Math.max(0, iv.measured.gpu - covered);
    if (rest > 0) add(undefined, rest, 0, 0);
    return { shares: [...shares.values()], notes };
  }
}

function exportDevice(device: string, d: DeviceLearning): GpuTimeSliceDeviceState {
  const out: GpuTimeSliceDeviceState = { device, state: d.learner.exportState(), lag: d.lag.exportState() };
  const p = d.pending;
  if (p) {
    const w = p.window;
    out.pending = {
      seq: p.seq, t1UnixNs: p.t1UnixNs, busy: p.busy, durationS: w.durationS, joules: w.joules,
      ...(w.samples !== undefined ? { samples: w.samples } : {}),
      activity: Object.entries(w.activity), contexts: Object.entries(w.contexts), usedMemory: Object.entries(w.usedMemory ?? {}), shares: Object.entries(p.shares),
      ...(p.point !== undefined ? { point: p.point } : {}), utilSamples: p.utilSamples, ...(p.prevPoint !== undefined ? { prevPoint: p.prevPoint } : {}),
    };
  }
  return out;
}

function readPending(r: LearnerStateReader, v: unknown, path: string): GpuPendingWindow {
  const o = r.object(v, path);
  const rec = (k: string): Record<string, number> => Object.fromEntries(r.pairs(o[k], `${path}.${k}`));
  const window: GpuActivityWindow = {
    durationS: r.number(o.durationS, `${path}.durationS`, { min: 0 }),
    joules: r.number(o.joules, `${path}.joules`, { min: 0 }),
    activity: rec('activity'),
    contexts: rec('contexts'),
    usedMemory: rec('usedMemory'),
  };
  if (o.samples !== undefined) window.samples = r.number(o.samples, `${path}.samples`, { min: 0 });
  const fraction = (k: string): number => {
    const x = r.number(o[k], `${path}.${k}`, { min: 0 });
    if (x > 1) r.fail(`${path}.${k}`, 'must be a fraction in [0, 1]', x);
    return x;
  };
  const busy = fraction('busy');
  const utilSamples = o.utilSamples === undefined ? 0 : r.number(o.utilSamples, `${path}.utilSamples`, { min: 0 });
  const out: GpuPendingWindow = { seq: r.number(o.seq, `${path}.seq`, { integer: true }), t1UnixNs: r.number(o.t1UnixNs, `${path}.t1UnixNs`), busy, window, shares: rec('shares'), utilSamples };
  // absent (an old state, or no closing read): left undefined, never filled in with the interval's mean
  if (o.point !== undefined) out.point = fraction('point');
  if (o.prevPoint !== undefined) out.prevPoint = fraction('prevPoint');
  return out;
}

/**
 * Frames → host intervals. Keeps the previous accepted frame of every host and turns each new frame of
 * that host into the deltas between the two (joules per source, CPU seconds per VM, bytes, perf events).
 *
 * What it handles, and how:
 * - duplicate seq → rejected FRAME_DUPLICATE_SEQ; older seq → rejected FRAME_OUT_OF_ORDER (state kept);
 * - seq gap → the interval spans the gap (counters are cumulative, nothing is lost), anomaly FRAME_SEQ_GAP;
 * - boot_id change where one side is an id the agent made up (`agent-…`: it could not read the kernel's)
 *   and the monotonic clock continued in step with the wall clock → the agent restarted on the same host
 *   boot: the interval across the restart is billed, anomaly AGENT_RESTARTED;
 * - a new boot_id sending within max(3 s, 3 intervals) of the host's last frame (by wall clock), when it
 *   is not such a restart → rejected FRAME_HOST_CONFLICT (two agents claim the host), state kept: the
 *   established agent's frames go on being billed;
 * - boot_id change otherwise (a new kernel boot id: host reboot) → counters restarted: no interval for that pair, start afresh,
 *   anomaly COUNTER_RESET; a new boot_id with a seq at or below the host's last one → rejected
 *   FRAME_SEQ_REUSED (seqs are unique per host across boots; billed history is never rewritten);
 * - wall clock going backwards, or its delta disagreeing with the monotonic delta → FRAME_CLOCK_SKEW;
 *   durations always come from the monotonic clock;
 * - RAPL wrap at max_range → handled;
 * - a billed counter that failed to read, is missing, reset or jumped implausibly in a frame → the frame is
 *   HELD: no interval is emitted and the previous good frame stays the reference, so the next good frame's
 *   interval spans both (energy counters are cumulative: nothing is lost, and the VM activity spans the
 *   same time), anomaly SENSOR_READ_FAILED / COUNTER_IMPLAUSIBLE_DELTA / ...; a counter that restarted or
 *   jumped and counts on plausibly from its new value (checked against the held frame) is accepted at the
 *   next frame, and after `maxHeldFrames` bad frames in a row (a sensor that stays broken) the frame is
 *   accepted anyway: that source unusable for the interval (measured 0, listed in `unusableSources`), the
 *   other sources billed, and the host never stalls; a value above the counter's max_range is such a bad
 *   counter, not a bad frame;
 * - VM appears → included with presence < 1 and only the counters it has on both ends (none: zero deltas);
 * - VM vanishes → included once with state 'gone' (presence 0.5: it left at an unknown time in the
 *   interval), its last sample kept so that, should it come back (a cgroup briefly absent), the next
 *   delta spans the gap; anomaly VM_VANISHED;
 * - VM cpu counter going backwards (VM restarted) → its delta is the new value, anomaly COUNTER_WENT_BACKWARDS;
 * - VM block counters read less often than every frame (VmSample.slow_read_mono_ns set: the agent reads
 *   memory and blkio every few rounds and repeats the last values in between) → a delta of them covers
 *   [previous slow read, this one], not the interval: the interval gets the mean byte rate of the newest
 *   such window that ended at or before its end × its duration (0 until the VM's first window). Over a
 *   billing period the bytes match the counters to within one window; memory_used_bytes is a level, taken
 *   as read. Per-vCPU counters read that way (vcpu_read_mono_ns set) likewise: each vCPU's seconds at its
 *   newest window's rate.
 * Memory is bounded: per host, one frame, one I/O rate per VM of that frame, and at most
 * `maxVanishedPerHost` vanished VM samples.
 */
import {
  EnergySource,
  VmState,
  WattsplitError,
  joulesPerUnit,
  validateFrame,
  type IEnergyCounter,
  type ITelemetryFrame,
  type IVmSample,
} from '@wattsplit/wire';
import { counterDelta, isUsableDelta } from './counter-delta.js';
import type { Anomaly, GpuInterval, HostInterval, SourceName, VmGpuInterval, VmInterval } from './types.js';

export interface IntervalAlignerOptions {
  /** Highest plausible mean power of ONE counter, watts, by source. Defaults: rapl 1500, gpu 1500, bmc 20000. */
  maxWatts?: Partial<Record<'rapl' | 'gpu' | 'bmc', number>>;
  /** Wall vs monotonic delta disagreement tolerated before FRAME_CLOCK_SKEW: abs seconds + fraction. Default 2 s + 25 %. */
  clockSkewToleranceS?: number;
  clockSkewToleranceFraction?: number;
  /** Vanished VMs' last samples are kept this long (monotonic seconds) in case they come back. Default 900. */
  vanishedTtlS?: number;
  /** At most this many vanished VM samples per host. Default 256. */
  maxVanishedPerHost?: number;
  /** Consecutive frames with an unusable billed counter that are held (spanned) before one is accepted with the source unusable. Default 10. */
  maxHeldFrames?: number;
}

export interface AlignResult {
  interval?: HostInterval;
  anomalies: Anomaly[];
  rejected?: WattsplitError;
}

interface VanishedVm {
  sample: IVmSample;
  monoNs: number;
}

/** Bytes per second of a VM's block counters, and CPU seconds per second of its vCPUs, over their newest read windows. */
interface IoRate {
  read: number;
  write: number;
  vcpu?: number[];
}

interface HostState {
  frame: ITelemetryFrame;
  bootId: string;
  vanished: Map<string, VanishedVm>;
  /** The I/O rate of each VM of `frame` whose block counters are read every few rounds (slow_read_mono_ns). */
  ioRates: Map<string, IoRate>;
  /** Highest seq seen (accepted or held), for duplicate detection. */
  lastSeq: number;
  /** Frames held in a row since `frame`. */
  held: number;
  /** The last of them. */
  heldFrame?: ITelemetryFrame | undefined;
  /** Wall time of the newest frame of the host's boot (accepted or held). */
  lastWallNs: number;
}

/**
 * Two frames of one host come from the same kernel boot when CLOCK_MONOTONIC moved forward by what the
 * wall clock moved, within the skew tolerance: a reboot restarts the monotonic clock near 0.
 */
function sameKernelEpoch(prev: ITelemetryFrame, cur: ITelemetryFrame, tolAbsS: number, tolFrac: number): boolean {
  const mono = n(cur.monoNs) - n(prev.monoNs);
  const wall = n(cur.wallUnixNs) - n(prev.wallUnixNs);
  if (mono <= 0 || wall <= 0) return false;
  return Math.abs(wall - mono) / 1e9 <= tolAbsS + tolFrac * (mono / 1e9);
}

const n = (x: number | null | undefined): number => x ?? 0;

export class IntervalAligner {
  private readonly hosts = new Map<string, HostState>();
  private readonly maxW: Record<'rapl' | 'gpu' | 'bmc', number>;
  private readonly skewAbsS: number;
  private readonly skewFrac: number;
  private readonly vanishedTtlNs: number;
  private readonly maxVanished: number;
  private readonly maxHeld: number;
  /** Whether a counter of the VM being aligned went backwards (vmDelta sets it; vmInterval resets it per VM). */
  private vmCounterRestarted = false;

  constructor(opts: IntervalAlignerOptions = {}) {
    this.maxW = { rapl: 1500, gpu: 1500, bmc: 20000, ...opts.maxWatts };
    this.skewAbsS = opts.clockSkewToleranceS ?? 2;
    this.skewFrac = opts.clockSkewToleranceFraction ?? 0.25;
    this.vanishedTtlNs = (opts.vanishedTtlS ?? 900) * 1e9;
    this.maxVanished = opts.maxVanishedPerHost ?? 256;
    this.maxHeld = opts.maxHeldFrames ?? 10;
  }

  /** Hosts with state. */
  get hostCount(): number {
    return this.hosts.size;
  }

  /** Seq of the frame the host's next interval will start from (held frames never become it), if any. */
  referenceSeq(hostId: string): number | undefined {
    const st = this.hosts.get(hostId);
    return st ? n(st.frame.seq) : undefined;
  }

  /** Drops a host's state (decommissioned host); its next frame starts afresh. */
  forget(hostId: string): void {
    this.hosts.delete(hostId);
  }

  push(frame: ITelemetryFrame): AlignResult {
    const problems = validateFrame(frame);
    if (problems.length > 0) {
      const first = problems[0]!;
      return { anomalies: [], rejected: problems.length === 1 ? first : new WattsplitError(first.code, problems.map((p) => p.message).join('; '), { details: first.details }) };
    }
    const hostId = frame.hostId!;
    const seq = n(frame.seq);
    const bootId = frame.bootId ?? '';
    const st = this.hosts.get(hostId);
    if (!st) {
      this.hosts.set(hostId, { frame, bootId, vanished: new Map(), ioRates: new Map(), lastSeq: seq, held: 0, lastWallNs: n(frame.wallUnixNs) });
      return { anomalies: [] };
    }
    const prevSeq = n(st.frame.seq);
    let restartAnomaly: Anomaly | undefined;
    if (bootId !== st.bootId) {
      if (seq <= st.lastSeq) {
        // Seqs are unique per host across boots (the agent continues its sequence, or starts a new
        // installation's at the wall clock in ms): a new boot that reuses one would take the key of an
        // interval already billed.
        return {
          anomalies: [],
          rejected: new WattsplitError('FRAME_SEQ_REUSED', `host ${hostId}: boot ${JSON.stringify(bootId)} sent seq ${seq}, at or below seq ${st.lastSeq} of boot ${JSON.stringify(st.bootId)}; billed history is never rewritten`, {
            details: { host: hostId, seq, lastSeq: st.lastSeq, bootId, previousBootId: st.bootId },
          }),
        };
      }
      // A kernel boot id that changed is a reboot. Only an id the agent made up (`agent-…`, new on every
      // agent start) leaves the question open: the monotonic clock answers it.
      const madeUp = bootId.startsWith('agent-') || st.bootId.startsWith('agent-');
      const restart = madeUp && sameKernelEpoch(st.frame, frame, this.skewAbsS, this.skewFrac);
      // A reboot leaves a gap in the frames; a second agent claiming the host sends while the first still
      // does. Its frames are refused (state kept) until the host's boot has been silent for the window.
      const gapS = (n(frame.wallUnixNs) - st.lastWallNs) / 1e9;
      const windowS = Math.max(3, (3 * n(frame.intervalMs || 1000)) / 1000);
      if (!restart && gapS < windowS) {
        return {
          anomalies: [],
          rejected: new WattsplitError('FRAME_HOST_CONFLICT', `host ${hostId}: boot ${JSON.stringify(bootId)} sent seq ${seq} ${gapS.toFixed(1)} s after boot ${JSON.stringify(st.bootId)}'s last frame (a reboot leaves at least ${windowS} s): two agents claim this host; the first one's frames are billed`, {
            details: { host: hostId, seq, bootId, previousBootId: st.bootId, gapS },
          }),
        };
      }
      if (!restart) {
        this.hosts.set(hostId, { frame, bootId, vanished: new Map(), ioRates: new Map(), lastSeq: seq, held: 0, lastWallNs: n(frame.wallUnixNs) });
        return {
          anomalies: [{ code: 'COUNTER_RESET', message: `host ${hostId}: boot_id changed ${JSON.stringify(st.bootId)} → ${JSON.stringify(bootId)} at seq ${seq} and the monotonic clock restarted (host reboot); counters restarted, no interval for seq ${prevSeq}→${seq}` }],
        };
      }
      // Same kernel boot (the monotonic clock kept counting in step with the wall clock): an agent that
      // restarted with a new boot id. The kernel's counters kept counting too, so the interval across the
      // restart is billed like any other; a counter that did restart (one the agent integrates itself) is
      // caught per counter below.
      restartAnomaly = { code: 'AGENT_RESTARTED', message: `host ${hostId}: boot_id changed ${JSON.stringify(st.bootId)} → ${JSON.stringify(bootId)} at seq ${seq} on the same host boot (monotonic clock continuous); the interval ${prevSeq}→${seq} spans the agent restart` };
      st.bootId = bootId;
      st.held = 0;
    }
    if (seq === prevSeq || seq === st.lastSeq) {
      return { anomalies: [], rejected: new WattsplitError('FRAME_DUPLICATE_SEQ', `host ${hostId}: seq ${seq} already accepted`, { details: { host: hostId, seq } }) };
    }
    if (seq < st.lastSeq) {
      return {
        anomalies: [],
        rejected: new WattsplitError('FRAME_OUT_OF_ORDER', `host ${hostId}: seq ${seq} is older than the last seen seq ${st.lastSeq}`, { details: { host: hostId, seq, lastSeq: st.lastSeq } }),
      };
    }
    const prev = st.frame;
    const monoDeltaNs = n(frame.monoNs) - n(prev.monoNs);
    if (monoDeltaNs <= 0) {
      return {
        anomalies: [],
        rejected: new WattsplitError('FRAME_CLOCK_SKEW', `host ${hostId}: seq ${seq} mono_ns=${n(frame.monoNs)} is not after seq ${prevSeq} mono_ns=${n(prev.monoNs)} with the same boot_id`, {
          details: { host: hostId, seq, field: 'mono_ns', value: n(frame.monoNs) },
        }),
      };
    }
    st.lastSeq = seq;
    st.lastWallNs = Math.max(st.lastWallNs, n(frame.wallUnixNs));
    const bad = this.unusableCounter(prev, frame, monoDeltaNs / 1e9);
    // Hold a frame with a bad billed counter, so that a one-off bad read is spanned by the next good
    // frame's interval (nothing lost). But a counter that restarted or jumped and then counts on from its
    // new value (it is plausible against the last HELD frame) will never be plausible against the old
    // reference again: accept at once, that counter's source unusable for this one interval, instead of
    // holding every source of the host for maxHeld more frames.
    const rebased = bad !== undefined && st.heldFrame !== undefined && this.unusableCounter(st.heldFrame, frame, (n(frame.monoNs) - n(st.heldFrame.monoNs)) / 1e9, bad.id) === undefined;
    if (bad !== undefined && st.held < this.maxHeld && !rebased) {
      st.held++;
      st.heldFrame = frame;
      const anomalies: Anomaly[] = [{ code: bad.code, counterId: bad.id, message: `host ${hostId} seq ${seq}: counter ${bad.id}: ${bad.why}; frame held, the next good frame's interval spans it (nothing lost)` }];
      if (restartAnomaly) anomalies.unshift(restartAnomaly);
      return { anomalies };
    }
    const interval = this.align(hostId, st, prev, frame, monoDeltaNs);
    if (restartAnomaly) interval.anomalies.unshift(restartAnomaly);
    st.frame = frame;
    st.held = 0;
    st.heldFrame = undefined;
    return { interval, anomalies: interval.anomalies };
  }

  /** The first billed counter of `cur` whose delta from `prev` cannot be billed, if any. */
  private unusableCounter(prev: ITelemetryFrame, cur: ITelemetryFrame, durationS: number, onlyId?: string): { id: string; code: string; why: string } | undefined {
    const prevCounters = new Map<string, IEnergyCounter>();
    for (const c of prev.counters ?? []) prevCounters.set(c.id ?? '', c);
    const billedSource = (c: IEnergyCounter): 'rapl' | 'gpu' | 'bmc' | undefined => {
      const src = c.source ?? 0;
      if (src === EnergySource.ENERGY_SOURCE_RAPL) return isRaplSummed(c) ? 'rapl' : undefined;
      if (src === EnergySource.ENERGY_SOURCE_GPU) return 'gpu';
      if (src === EnergySource.ENERGY_SOURCE_BMC) return 'bmc';
      return undefined;
    };
    const seen = new Set<string>();
    for (const c of cur.counters ?? []) {
      const id = c.id ?? '';
      seen.add(id);
      if (onlyId !== undefined && id !== onlyId) continue;
      const source = billedSource(c);
      if (source === undefined) continue;
      if (c.error) return { id, code: 'SENSOR_READ_FAILED', why: `read failed (${c.error})` };
      if (c.maxRange && n(c.value) > n(c.maxRange)) return { id, code: 'COUNTER_IMPLAUSIBLE_DELTA', why: `value ${n(c.value)} exceeds its max_range ${n(c.maxRange)}` };
      const p = prevCounters.get(id);
      if (!p || p.error || (p.unit ?? 0) !== (c.unit ?? 0)) continue; // handled by align(): nothing to span from
      const readDur = c.readMonoNs && p.readMonoNs && c.readMonoNs > p.readMonoNs ? (c.readMonoNs - p.readMonoNs) / 1e9 : durationS;
      const d = counterDelta(n(p.value), n(c.value), n(c.maxRange), { durationS: readDur, joulesPerUnit: joulesPerUnit(c.unit), maxWatts: this.maxW[source] });
      if (!isUsableDelta(d)) return { id, code: d.kind === 'reset' ? 'COUNTER_RESET' : 'COUNTER_IMPLAUSIBLE_DELTA', why: d.reason };
    }
    for (const [id, p] of prevCounters) {
      if (onlyId !== undefined && id !== onlyId) continue;
      if (!seen.has(id) && billedSource(p) !== undefined && !p.error) return { id, code: 'SENSOR_UNAVAILABLE', why: 'missing from this frame' };
    }
    return undefined;
  }

  private align(hostId: string, st: HostState, prev: ITelemetryFrame, cur: ITelemetryFrame, monoDeltaNs: number): HostInterval {
    const anomalies: Anomaly[] = [];
    const seq = n(cur.seq);
    const prevSeq = n(prev.seq);
    const durationS = monoDeltaNs / 1e9;
    // Frames this aligner held (unusable counter) are not missing: their anomaly was reported when held.
    const missing = seq - prevSeq - 1 - st.held;
    if (missing > 0) {
      anomalies.push({ code: 'FRAME_SEQ_GAP', message: `host ${hostId}: ${missing} frame(s) missing between seq ${prevSeq} and ${seq}; the interval spans the gap (${durationS.toFixed(3)} s)` });
    }
    const wallDeltaNs = n(cur.wallUnixNs) - n(prev.wallUnixNs);
    let t0UnixNs = n(prev.wallUnixNs);
    const t1UnixNs = n(cur.wallUnixNs);
    const skewS = Math.abs(wallDeltaNs - monoDeltaNs) / 1e9;
    if (wallDeltaNs <= 0 || skewS > this.skewAbsS + this.skewFrac * durationS) {
      anomalies.push({
        code: 'FRAME_CLOCK_SKEW',
        message: `host ${hostId} seq ${prevSeq}→${seq}: wall clock moved ${(wallDeltaNs / 1e9).toFixed(3)} s while the monotonic clock moved ${durationS.toFixed(3)} s; using the monotonic duration`,
      });
      t0UnixNs = t1UnixNs - monoDeltaNs;
    }

    // ---- energy counters
    const prevCounters = new Map<string, IEnergyCounter>();
    for (const c of prev.counters ?? []) prevCounters.set(c.id ?? '', c);
    const unusable = new Set<SourceName>();
    let rapl = 0;
    let gpu = 0;
    let bmc = 0;
    let haveBmc = false;
    const raplZones: Record<string, number> = {};
    const gpus: GpuInterval[] = [];
    const deviceSamples = new Map<string, NonNullable<ITelemetryFrame['gpus']>[number]>();
    for (const g of cur.gpus ?? []) deviceSamples.set(g.device ?? '', g);
    const seen = new Set<string>();
    for (const c of cur.counters ?? []) {
      const id = c.id ?? '';
      seen.add(id);
      const src = c.source ?? EnergySource.ENERGY_SOURCE_UNSPECIFIED;
      const source: SourceName | 'bmc' | undefined =
        src === EnergySource.ENERGY_SOURCE_RAPL ? 'rapl' : src === EnergySource.ENERGY_SOURCE_GPU ? 'gpu' : src === EnergySource.ENERGY_SOURCE_BMC ? 'bmc' : undefined;
      if (source === undefined) continue;
      const billed = source === 'rapl' ? isRaplSummed(c) : true;
      const markUnusable = (code: string, why: string): void => {
        if (!billed) return;
        anomalies.push({ code, message: `host ${hostId} seq ${prevSeq}→${seq}: counter ${id}: ${why}; ${source} energy of this interval is not billed`, counterId: id });
        unusable.add(source === 'bmc' ? 'bmc_rest' : source);
      };
      const p = prevCounters.get(id);
      if (c.error) {
        markUnusable('SENSOR_READ_FAILED', `read failed (${c.error})`);
        continue;
      }
      if (c.maxRange && n(c.value) > n(c.maxRange)) {
        markUnusable('COUNTER_IMPLAUSIBLE_DELTA', `value ${n(c.value)} exceeds its max_range ${n(c.maxRange)}`);
        continue;
      }
      if (!p) {
        markUnusable('SENSOR_UNAVAILABLE', 'not present in the previous frame');
        continue;
      }
      if (p.error) {
        markUnusable('SENSOR_READ_FAILED', `read failed in the previous frame (${p.error})`);
        continue;
      }
      if ((p.unit ?? 0) !== (c.unit ?? 0)) {
        markUnusable('COUNTER_RESET', `unit changed ${n(p.unit)} → ${n(c.unit)}`);
        continue;
      }
      const jpu = joulesPerUnit(c.unit);
      const readDur = c.readMonoNs && p.readMonoNs && c.readMonoNs > p.readMonoNs ? (c.readMonoNs - p.readMonoNs) / 1e9 : durationS;
      const d = counterDelta(n(p.value), n(c.value), n(c.maxRange), { durationS: readDur, joulesPerUnit: jpu, maxWatts: this.maxW[source] });
      if (!isUsableDelta(d)) {
        markUnusable(d.kind === 'reset' ? 'COUNTER_RESET' : 'COUNTER_IMPLAUSIBLE_DELTA', d.reason);
        continue;
      }
      const j = d.delta * jpu;
      if (source === 'rapl') {
        raplZones[id] = j;
        if (billed) rapl += j;
      } else if (source === 'gpu') {
        gpu += j;
        const device = c.device || id;
        const ds = deviceSamples.get(device);
        // the mean over the driver's utilisation samples, when the agent read them (0 samples = not reported)
        const utilSamples = n(ds?.gpuUtilSamples);
        gpus.push({
          device,
          joules: j,
          contexts: n(ds?.contexts),
          meanPowerW: j / durationS,
          gpuUtilPct: n(ds?.gpuUtilPct),
          // no device sample: the 0 above is not a read (a consumer must not take it as the closing utilisation)
          ...(ds ? {} : { gpuUtilMissing: true as const }),
          ...(utilSamples > 0 ? { gpuUtilMeanPct: n(ds?.gpuUtilMeanPct), gpuUtilSamples: utilSamples } : {}),
          memUtilPct: n(ds?.memUtilPct),
          smClockMhz: n(ds?.smClockMhz),
        });
      } else {
        bmc += j;
        haveBmc = true;
      }
    }
    for (const [id, p] of prevCounters) {
      if (seen.has(id)) continue;
      const src = p.source ?? 0;
      const source: SourceName | undefined =
        src === EnergySource.ENERGY_SOURCE_RAPL ? (isRaplSummed(p) ? 'rapl' : undefined) : src === EnergySource.ENERGY_SOURCE_GPU ? 'gpu' : src === EnergySource.ENERGY_SOURCE_BMC ? 'bmc_rest' : undefined;
      if (source === undefined) continue;
      anomalies.push({ code: 'SENSOR_UNAVAILABLE', message: `host ${hostId} seq ${prevSeq}→${seq}: counter ${id} missing from the closing frame; ${source} energy of this interval is not billed`, counterId: id });
      unusable.add(source);
    }
    if (unusable.has('rapl') || unusable.has('gpu')) unusable.add('bmc_rest');
    let bmcRest = 0;
    if (haveBmc && !unusable.has('bmc_rest')) {
      bmcRest = bmc - rapl - gpu;
      if (bmcRest < 0) {
        anomalies.push({ code: 'COUNTER_IMPLAUSIBLE_DELTA', message: `host ${hostId} seq ${prevSeq}→${seq}: BMC wall energy ${bmc.toFixed(1)} J < RAPL ${rapl.toFixed(1)} J + GPU ${gpu.toFixed(1)} J; bmc_rest set to 0`, counterId: 'bmc' });
        bmcRest = 0;
      }
    }
    const measured: Record<SourceName, number> = {
      rapl: unusable.has('rapl') ? 0 : rapl,
      gpu: unusable.has('gpu') ? 0 : gpu,
      bmc_rest: unusable.has('bmc_rest') ? 0 : bmcRest,
    };

    // ---- host CPU
    const hc = cur.hostCpu ?? {};
    const hp = prev.hostCpu ?? {};
    let busy = n(hc.busyNs) - n(hp.busyNs);
    let idle = n(hc.idleNs) - n(hp.idleNs);
    if (busy < 0 || idle < 0) {
      anomalies.push({ code: 'COUNTER_WENT_BACKWARDS', message: `host ${hostId} seq ${prevSeq}→${seq}: /proc/stat busy or idle time went backwards; host CPU of this interval taken as 0` });
      busy = 0;
      idle = 0;
    }
    const hostCpu = { busySeconds: busy / 1e9, idleSeconds: idle / 1e9, onlineCpus: n(hc.onlineCpus), avgFreqMhz: n(hc.avgFreqMhz) };

    // ---- VMs
    // A host's VMs mostly come in the same order frame after frame: the previous sample of cur.vms[i] is
    // looked for at prev.vms[i] first, and in a map by uuid only when it is not there (built on the first
    // such miss). uuids are unique in a frame (validateFrame), so both find the same sample.
    const prevList = prev.vms ?? [];
    let prevByUuid: Map<string, IVmSample> | undefined;
    const prevOf = (i: number, uuid: string): IVmSample | undefined => {
      const at = prevList[i];
      if (at !== undefined && (at.uuid ?? '') === uuid) return at;
      if (!prevByUuid) {
        prevByUuid = new Map<string, IVmSample>();
        for (const x of prevList) prevByUuid.set(x.uuid ?? '', x);
      }
      return prevByUuid.get(uuid);
    };
    /** VMs of `cur` whose previous sample is in `prev` (not a vanished one): all of prev's when it equals prevList.length. */
    let matchedPrev = 0;
    const vms: VmInterval[] = [];
    const curMono = n(cur.monoNs);
    const prevMono = n(prev.monoNs);
    const ioRates = new Map<string, IoRate>();
    const curList = cur.vms ?? [];
    for (let i = 0; i < curList.length; i++) {
      const v = curList[i]!;
      const uuid = v.uuid ?? '';
      let p = prevOf(i, uuid);
      if (p) matchedPrev++;
      let presence = 1;
      let spanned = false;
      if (!p) {
        const back = st.vanished.get(uuid);
        if (back) {
          p = back.sample;
          spanned = true;
          st.vanished.delete(uuid);
        } else {
          const started = n(v.startedMonoNs);
          presence = started > prevMono && started <= curMono ? (curMono - started) / monoDeltaNs : 0.5;
        }
      }
      const state = vmState(v.state);
      if (state === 'gone') presence = Math.min(presence, 0.5);
      const vi = this.vmInterval(hostId, seq, v, p, presence, state, anomalies, spanned);
      if (n(v.slowReadMonoNs) > 0) this.spreadSlowIo(vi, v, p, st.ioRates.get(uuid), ioRates, durationS);
      if (n(v.vcpuReadMonoNs) > 0) this.spreadSlowVcpus(vi, v, p, st.ioRates.get(uuid), ioRates, durationS);
      vms.push(vi);
    }
    st.ioRates = ioRates;
    // prev's VMs that cur no longer reports (none when every one of them was matched above)
    const curUuids = matchedPrev === prevList.length ? undefined : new Set(curList.map((v) => v.uuid ?? ''));
    for (const p of curUuids ? prevList : []) {
      const uuid = p.uuid ?? '';
      if (curUuids!.has(uuid)) continue;
      if (vmState(p.state) === 'gone') continue; // already reported gone by the agent
      anomalies.push({ code: 'VM_VANISHED', message: `host ${hostId} seq ${prevSeq}→${seq}: VM ${p.name ?? ''} (${uuid}) is no longer reported; attributed as 'gone' for this interval`, vmUuid: uuid });
      vms.push(this.vmInterval(hostId, seq, p, p, 0.5, 'gone', anomalies, false));
      st.vanished.set(uuid, { sample: p, monoNs: prevMono });
    }
    // bound the vanished set
    for (const [uuid, g] of st.vanished) {
      if (curMono - g.monoNs > this.vanishedTtlNs) st.vanished.delete(uuid);
    }
    while (st.vanished.size > this.maxVanished) {
      const oldest = st.vanished.keys().next().value;
      if (oldest === undefined) break;
      st.vanished.delete(oldest);
    }

    // VMs in uuid order, as the store returns them: an interval read back (training, a learner catching
    // up after a restart) is then the same interval, term for term, as the live one.
    vms.sort((a, b) => (a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0));
    const interval: HostInterval = {
      hostId,
      hardwareClass: cur.hardwareClass ?? '',
      seq,
      prevSeq,
      t0UnixNs,
      t1UnixNs,
      durationS,
      measured,
      raplZones,
      gpus,
      hostCpu,
      vms,
      anomalies,
    };
    if (unusable.size > 0) interval.unusableSources = [...unusable].sort();
    return interval;
  }

  /**
   * The block bytes of an interval whose VM's counters come from slow reads (slow_read_mono_ns): the counters'
   * delta since the previous slow read, as a rate over that read window when this frame brought a new read,
   * or the VM's last rate when it repeats the previous one; × the interval's duration.
   */
  private spreadSlowIo(vi: VmInterval, v: IVmSample, p: IVmSample | undefined, last: IoRate | undefined, out: Map<string, IoRate>, durationS: number): void {
    const at = n(v.slowReadMonoNs);
    // where the previous values were read: its own slow read, else with its other counters
    const prevAt = p ? n(p.slowReadMonoNs) || n(p.readMonoNs) : 0;
    let rate = last;
    if (p && prevAt > 0 && at > prevAt) {
      const windowS = (at - prevAt) / 1e9;
      rate = { read: vi.blockReadBytes / windowS, write: vi.blockWriteBytes / windowS };
    }
    if (rate) {
      // out's entries are this interval's own objects (never `last`): set in place, no copy per VM
      const o = out.get(vi.uuid);
      if (o) {
        o.read = rate.read;
        o.write = rate.write;
      } else out.set(vi.uuid, { read: rate.read, write: rate.write });
    }
    vi.blockReadBytes = rate ? rate.read * durationS : 0;
    vi.blockWriteBytes = rate ? rate.write * durationS : 0;
  }

  /** spreadSlowIo for the per-vCPU seconds of a VM whose vCPU counters are read every few rounds (vcpu_read_mono_ns). */
  private spreadSlowVcpus(vi: VmInterval, v: IVmSample, p: IVmSample | undefined, last: IoRate | undefined, out: Map<string, IoRate>, durationS: number): void {
    const at = n(v.vcpuReadMonoNs);
    const prevAt = p ? n(p.vcpuReadMonoNs) || n(p.readMonoNs) : 0;
    const secs = vi.vcpuSeconds;
    let rate = last?.vcpu;
    if (p && prevAt > 0 && at > prevAt) {
      const windowS = (at - prevAt) / 1e9;
      // a new array: the rate is kept for the next intervals (out → the host's ioRates), which read it only
      const r = new Array<number>(secs.length);
      for (let k = 0; k < secs.length; k++) r[k] = secs[k]! / windowS;
      rate = r;
    }
    if (rate) {
      const o = out.get(vi.uuid);
      if (o) o.vcpu = rate;
      else out.set(vi.uuid, { read: 0, write: 0, vcpu: rate });
    }
    // in place: vcpuSeconds is this VmInterval's own array (vmInterval made it), read above for the rate
    for (let k = 0; k < secs.length; k++) secs[k] = (rate?.[k] ?? 0) * durationS;
  }

  /**
   * Delta of a cumulative VM counter (0 without a previous sample); a counter that went backwards restarted,
   * so its delta is the new value, and `vmCounterRestarted` is set for the VM being aligned (reset before each
   * VM: a field rather than a closure per VM, issue 15).
   */
  private vmDelta(hasPrev: boolean, a: number | null | undefined, b: number | null | undefined): number {
    if (!hasPrev) return 0;
    const d = n(b) - n(a);
    if (d >= 0) return d;
    this.vmCounterRestarted = true;
    return n(b);
  }

  private vmInterval(hostId: string, seq: number, v: IVmSample, p: IVmSample | undefined, presence: number, state: VmInterval['state'], anomalies: Anomaly[], spanned: boolean): VmInterval {
    const uuid = v.uuid ?? '';
    const name = v.name ?? '';
    const has = p !== undefined;
    this.vmCounterRestarted = false;
    const cpuNs = this.vmDelta(has, p?.cpuTimeNs, v.cpuTimeNs);
    if (p && n(v.cpuTimeNs) < n(p.cpuTimeNs)) {
      anomalies.push({
        code: 'COUNTER_WENT_BACKWARDS',
        message: `host ${hostId} seq ${seq}: VM ${name} (${uuid}) cpu_time_ns went ${n(p.cpuTimeNs)} → ${n(v.cpuTimeNs)} (VM restarted); its delta is the new value`,
        vmUuid: uuid,
      });
    }
    // sized once (an array grown by push from empty takes room for 17)
    const cv = v.vcpuTimeNs ?? NO_COUNTERS;
    const pv = p?.vcpuTimeNs ?? NO_COUNTERS;
    const vcpuSeconds = new Array<number>(cv.length);
    for (let i = 0; i < cv.length; i++) {
      const b = cv[i];
      const a = pv[i];
      vcpuSeconds[i] = p && a !== undefined ? this.vmDelta(has, a, b) / 1e9 : 0;
    }
    const perfCur = v.perf;
    const perfPrev = p?.perf;
    let perf: VmInterval['perf'];
    if (perfCur?.supported && perfPrev?.supported) {
      perf = {
        cycles: this.vmDelta(has, perfPrev.cycles, perfCur.cycles),
        instructions: this.vmDelta(has, perfPrev.instructions, perfCur.instructions),
        llcMisses: this.vmDelta(has, perfPrev.llcMisses, perfCur.llcMisses),
        llcReferences: this.vmDelta(has, perfPrev.llcReferences, perfCur.llcReferences),
      };
    }
    const gpus: VmGpuInterval[] = v.gpus?.length
      ? v.gpus.map((g) => ({
          device: g.device ?? '',
          smUtilPct: n(g.smUtilPct),
          memUtilPct: n(g.memUtilPct),
          utilSamples: n(g.utilSamples),
          usedMemoryBytes: n(g.usedMemoryBytes),
          holdsContext: g.holdsContext ?? false,
          passthrough: g.passthrough ?? false,
        }))
      : [];
    const out: VmInterval = {
      uuid,
      name,
      tenant: v.tenant ?? '',
      vcpus: n(v.vcpus),
      memoryBytes: n(v.memoryBytes),
      cpuSeconds: cpuNs / 1e9,
      vcpuSeconds,
      memoryUsedBytes: n(v.memoryUsedBytes),
      blockReadBytes: this.vmDelta(has, p?.blockReadBytes, v.blockReadBytes),
      blockWriteBytes: this.vmDelta(has, p?.blockWriteBytes, v.blockWriteBytes),
      netRxBytes: this.vmDelta(has, p?.netRxBytes, v.netRxBytes),
      netTxBytes: this.vmDelta(has, p?.netTxBytes, v.netTxBytes),
      gpus,
      presence,
      state,
    };
    if (perf) out.perf = perf;
    if (this.vmCounterRestarted && n(v.cpuTimeNs) >= n(p?.cpuTimeNs)) {
      anomalies.push({ code: 'COUNTER_WENT_BACKWARDS', message: `host ${hostId} seq ${seq}: VM ${name} (${uuid}) an I/O or perf counter went backwards; its delta is the new value`, vmUuid: uuid });
    }
    if (spanned) {
      anomalies.push({ code: 'VM_VANISHED', message: `host ${hostId} seq ${seq}: VM ${name} (${uuid}) is back; its deltas span the frames it was missing from`, vmUuid: uuid });
    }
    return out;
  }
}

const NO_COUNTERS: readonly number[] = Object.freeze([]);

/** RAPL host total = Σ package zones + Σ dram zones; core/uncore are inside a package, psys overlaps both. */
function isRaplSummed(c: IEnergyCounter): boolean {
  const d = c.domain ?? '';
  return d === 'package' || d === 'dram';
}

function vmState(s: VmState | null | undefined): VmInterval['state'] {
  switch (s) {
    case VmState.VM_STATE_PAUSED:
      return 'paused';
    case VmState.VM_STATE_SHUTOFF:
      return 'shutoff';
    case VmState.VM_STATE_MIGRATING_OUT:
      return 'migrating_out';
    case VmState.VM_STATE_MIGRATING_IN:
      return 'migrating_in';
    case VmState.VM_STATE_GONE:
      return 'gone';
    case VmState.VM_STATE_RUNNING:
    case VmState.VM_STATE_UNSPECIFIED:
    case null:
    case undefined:
      return 'running';
  }
}

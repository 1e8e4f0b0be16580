/**
 * The central contract between alignment (frames → host intervals), attribution methods, models and the
 * collector. A HostInterval is everything known about one host between two consecutive accepted frames,
 * already turned into deltas (joules, seconds, bytes) with wraparound and resets handled.
 */

/** Energy sources an interval can carry. "bmc_rest" = wall energy not covered by RAPL and GPU counters. */
export type SourceName = 'rapl' | 'gpu' | 'bmc_rest';

export interface GpuInterval {
  device: string;              // PCI bus id
  joules: number;              // measured energy of this GPU over the interval
  contexts: number;            // processes holding a context at the end of the interval
  meanPowerW: number;
  /** The device's utilisation read at the end of the interval (nvmlDeviceGetUtilizationRates, a point read). */
  gpuUtilPct: number;
  /**
   * True when the closing frame carried no device sample for this GPU's energy counter: `gpuUtilPct` (and
   * `contexts`, `memUtilPct`, `smClockMhz`) are then 0 by default, not reads. Absent when they were read.
   */
  gpuUtilMissing?: true;
  /**
   * The device's mean utilisation over the interval (the driver's utilisation samples since the previous
   * frame, nvmlDeviceGetSamples) and how many samples backed it; absent when the agent did not report them.
   */
  gpuUtilMeanPct?: number;
  gpuUtilSamples?: number;
  memUtilPct: number;
  smClockMhz: number;
}

export interface VmGpuInterval {
  device: string;
  smUtilPct: number;           // mean over the interval
  memUtilPct: number;
  utilSamples: number;
  usedMemoryBytes: number;
  holdsContext: boolean;
  passthrough: boolean;
}

export interface VmInterval {
  uuid: string;
  name: string;
  tenant: string;
  vcpus: number;
  memoryBytes: number;
  /** CPU seconds used over the interval (whole qemu cgroup). */
  cpuSeconds: number;
  vcpuSeconds: number[];
  memoryUsedBytes: number;
  blockReadBytes: number;
  blockWriteBytes: number;
  netRxBytes: number;
  netTxBytes: number;
  /** Perf deltas; undefined where the PMU is not exposed. */
  perf?: { cycles: number; instructions: number; llcMisses: number; llcReferences: number };
  gpus: VmGpuInterval[];
  /** Fraction of the interval the VM existed (1 normally; < 1 when it appeared or vanished mid-interval). */
  presence: number;
  state: 'running' | 'paused' | 'shutoff' | 'migrating_out' | 'migrating_in' | 'gone';
}

export interface Anomaly {
  code: string;                // an ErrorCode from @wattsplit/wire
  message: string;
  counterId?: string;
  vmUuid?: string;
}

export interface HostInterval {
  hostId: string;
  hardwareClass: string;
  seq: number;                 // seq of the frame closing the interval
  prevSeq: number;
  t0UnixNs: number;
  t1UnixNs: number;
  durationS: number;           // from monotonic timestamps
  /** Measured energy by source, joules (rapl: sum of top-level packages + DRAM zones not inside a package). */
  measured: Record<SourceName, number>;
  /** Joules per RAPL counter id (packages, DRAM, and the core/uncore/psys zones not summed into `measured.rapl`), for reports. */
  raplZones: Record<string, number>;
  gpus: GpuInterval[];
  hostCpu: { busySeconds: number; idleSeconds: number; onlineCpus: number; avgFreqMhz: number };
  /** Each VM once (uuids distinct; the aligner gives them in uuid order): cpu_share throws FRAME_INVALID_FIELD on a repeated uuid. */
  vms: VmInterval[];
  /** What the aligner repaired or could not use (counter reset, wrap, vanished VM...). */
  anomalies: Anomaly[];
  /**
   * Sources whose energy could not be measured over this interval (counter reset, implausible delta, read
   * error on either end). Their `measured` value is 0 and nothing is billed for them. Absent = all usable.
   */
  unusableSources?: SourceName[];
}

/** How idle/static power is split. */
export type IdleSplitPolicy = 'reserved' | 'equal' | 'unallocated';

export type EntityKind = 'vm' | 'host_overhead' | 'unallocated';

/** One share of one source's measured energy in one host interval. */
export interface AttributionShare {
  kind: EntityKind;
  vmUuid: string;
  vmName: string;
  tenant: string;
  source: SourceName;
  dynamicJoules: number;
  staticJoules: number;
  /** Uncertainty interval on dynamic + static, joules. */
  lowJoules: number;
  highJoules: number;
}

export interface AttributionResult {
  hostId: string;
  seq: number;
  t0UnixNs: number;
  t1UnixNs: number;
  method: string;
  modelVersion: string;
  hardwareClass: string;
  /** Set when the method fell back to another (e.g. "cold start: cpu_share"). */
  note: string;
  shares: AttributionShare[];
  measured: Record<SourceName, number>;
}

/** Static (idle) power of a host, per source, watts: what the host draws with no VM activity. */
export interface StaticPowerEstimate {
  watts: Record<SourceName, number>;
  /** Where the estimate came from: "configured", "learned:<version>", "min-observed". */
  origin: string;
}

/** Weights of the 'reserved' idle split policy (normalised; default 0.5 / 0.5). */
export interface ReservedWeights {
  vcpu: number;
  memory: number;
}

export interface AttributionContext {
  policy: IdleSplitPolicy;
  staticPower: StaticPowerEstimate;
  /** Only used by the 'reserved' policy; default { vcpu: 0.5, memory: 0.5 }. */
  reservedWeights?: ReservedWeights;
}

/**
 * An attribution method splits every source's measured energy of one interval into shares. Contract:
 * for every source, Σ(dynamic + static) over shares == measured[source] (to 1e-9 relative), every share
 * is ≥ 0, and the result names the method and model version.
 */
export interface AttributionMethod {
  readonly name: string;
  /** Pure: the result depends only on the interval, the context and the method's learned state. */
  attribute(interval: HostInterval, ctx: AttributionContext): AttributionResult;
  /**
   * Methods that learn online: feeds one interval to their learners. The collector calls it on every
   * method after the interval is stored (so the interval itself is attributed with what came before).
   * Idempotent per host: an interval with seq ≤ the host's last observed seq changes nothing.
   */
  observe?(interval: HostInterval): void;
  /** Methods that learn online: their learned state for one host (plain JSON), undefined when they hold none. */
  exportState?(hostId: string): LearnerHostState | undefined;
  /** Methods with several learners: every learner's state for one host (persisted one row each); replaces `exportState` where present. */
  exportStates?(hostId: string): LearnerHostState[];
  /** Restores `exportState`'s (or one of `exportStates`') output (object or JSON text) for one host, replacing what it held; throws LEARNER_STATE_INVALID. */
  importState?(hostId: string, state: unknown): void;
}

/**
 * One learner's persisted state for one host (a `learner_state` row: learner, key = hostId, lastSeq, JSON).
 * Plain JSON (numbers, strings, arrays, objects; no typed arrays, no non-finite numbers), versioned.
 * `lastSeq` is the seq of the last interval observed for the host: observing an interval with
 * seq ≤ lastSeq is a no-op, so a redelivered interval is never learned twice.
 */
export interface LearnerHostState {
  v: 1;
  /** Which learner wrote it (e.g. 'gpu_signature', 'static_power'); import refuses another learner's state. */
  learner: string;
  hostId: string;
  lastSeq: number;
}

/** A learner that keeps per-host state the collector persists and restores (key = host id). */
export interface HostStateLearner {
  observe(interval: HostInterval): void;
  /** Seq of the last interval observed for the host, undefined when none. */
  lastSeq(hostId: string): number | undefined;
  /** Hosts with state (for a save of everything). */
  hosts(): string[];
  exportState(hostId: string): LearnerHostState | undefined;
  importState(hostId: string, state: unknown): void;
}

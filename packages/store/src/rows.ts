/**
 * Encoding of the attribution types into table rows (objects, column name → value). Pure: no I/O.
 * (Reading them back is history-read.ts.)
 * Every number is checked finite before it leaves (JSON would turn NaN into null and the insert would
 * fail far from the cause); the error names the field and the value.
 */
import type { Anomaly, AttributionResult, AttributionShare, HostInterval, VmInterval } from '@wattsplit/attribution';
import { WattsplitError } from '@wattsplit/wire';
import { slot, type RowProjection } from './row-binary.js';
import type { RawFrameCounters } from './store.js';

type Row = Record<string, unknown>;

function isLongLike(x: unknown): x is { toNumber(): number } {
  return x !== null && typeof x === 'object' && typeof (x as { toNumber?: unknown }).toNumber === 'function';
}

/**
 * A finite number. 64-bit protobuf fields can arrive as Long objects (defaults of unset uint64 fields in the
 * generated code) or bigint: those are converted; anything that is not a finite number is refused.
 */
function num(v: number, field: string): number {
  const x: unknown = v;
  const n = typeof x === 'number' ? x : typeof x === 'bigint' ? Number(x) : isLongLike(x) ? x.toNumber() : Number.NaN;
  if (!Number.isFinite(n)) {
    const shown = typeof x === 'number' || typeof x === 'boolean' || x === undefined ? String(x) : typeof x === 'string' || typeof x === 'object' ? JSON.stringify(x) : typeof x;
    throw new WattsplitError('STORE_INVALID_INPUT', `${field}=${shown} is not a finite number`, { details: { field, value: shown } });
  }
  return n;
}
/** Unsigned integer columns: negative or fractional values are rounded / clamped at 0 after the finite check. */
const uint = (v: number, field: string) => Math.max(0, Math.round(num(v, field)));
const nsInt = (v: number, field: string) => Math.round(num(v, field));

export function hostRow(i: HostInterval, raw: RawFrameCounters | undefined): Row {
  const at = `interval host=${i.hostId} seq=${i.seq}`;
  return {
    host: i.hostId,
    hardware_class: i.hardwareClass,
    boot_id: raw?.bootId ?? '',
    seq: uint(i.seq, `${at}: seq`),
    prev_seq: uint(i.prevSeq, `${at}: prevSeq`),
    t0_ns: nsInt(i.t0UnixNs, `${at}: t0UnixNs`),
    t1_ns: nsInt(i.t1UnixNs, `${at}: t1UnixNs`),
    duration_s: num(i.durationS, `${at}: durationS`),
    rapl_j: num(i.measured.rapl, `${at}: measured.rapl`),
    gpu_j: num(i.measured.gpu, `${at}: measured.gpu`),
    bmc_rest_j: num(i.measured.bmc_rest, `${at}: measured.bmc_rest`),
    rapl_zone_ids: Object.keys(i.raplZones),
    rapl_zone_j: Object.entries(i.raplZones).map(([k, v]) => num(v, `${at}: raplZones.${k}`)),
    gpu_devices: i.gpus.map((g) => g.device),
    gpu_j_by_device: i.gpus.map((g, k) => num(g.joules, `${at}: gpus[${k}].joules`)),
    gpu_contexts: i.gpus.map((g, k) => uint(g.contexts, `${at}: gpus[${k}].contexts`)),
    gpu_mean_power_w: i.gpus.map((g, k) => num(g.meanPowerW, `${at}: gpus[${k}].meanPowerW`)),
    gpu_util_pct: i.gpus.map((g, k) => num(g.gpuUtilPct, `${at}: gpus[${k}].gpuUtilPct`)),
    gpu_util_mean_pct: i.gpus.map((g, k) => (g.gpuUtilSamples ? num(g.gpuUtilMeanPct ?? 0, `${at}: gpus[${k}].gpuUtilMeanPct`) : 0)),
    gpu_util_mean_samples: i.gpus.map((g, k) => (g.gpuUtilSamples ? uint(g.gpuUtilSamples, `${at}: gpus[${k}].gpuUtilSamples`) : 0)),
    gpu_mem_util_pct: i.gpus.map((g, k) => num(g.memUtilPct, `${at}: gpus[${k}].memUtilPct`)),
    gpu_sm_clock_mhz: i.gpus.map((g, k) => num(g.smClockMhz, `${at}: gpus[${k}].smClockMhz`)),
    cpu_busy_s: num(i.hostCpu.busySeconds, `${at}: hostCpu.busySeconds`),
    cpu_idle_s: num(i.hostCpu.idleSeconds, `${at}: hostCpu.idleSeconds`),
    online_cpus: uint(i.hostCpu.onlineCpus, `${at}: hostCpu.onlineCpus`),
    avg_freq_mhz: num(i.hostCpu.avgFreqMhz, `${at}: hostCpu.avgFreqMhz`),
    counter_ids: raw?.counters.map((c) => c.id) ?? [],
    counter_sources: raw?.counters.map((c) => c.source) ?? [],
    counter_units: raw?.counters.map((c) => c.unit) ?? [],
    counter_values: raw?.counters.map((c, k) => uint(c.value, `${at}: counters[${k}].value`)) ?? [],
    anomaly_count: i.anomalies.length,
    unusable_sources: i.unusableSources ?? [],
  };
}

export function anomalyRows(hostId: string, seq: number, t1UnixNs: number, anomalies: readonly Anomaly[]): Row[] {
  return anomalies.map((a) => ({
    host: hostId,
    seq,
    t1_ns: nsInt(t1UnixNs, `anomaly host=${hostId} seq=${seq}: t1UnixNs`),
    code: a.code,
    counter_id: a.counterId ?? '',
    vm_uuid: a.vmUuid ?? '',
    message: a.message,
  }));
}

// Hot paths: 50+ VM rows and 100+ attribution rows per host interval. Plain finite numbers go straight
// into the row; anything else (NaN, a Long, a string) sends that VM or share through the checked path,
// which converts what it can and names the field it cannot. One row layout per table either way.
const fin = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
const nat = (x: number) => (x > 0 ? Math.round(x) : 0);

/** The GPU columns of a VM without GPUs (most VMs): shared empty arrays, not seven new ones per row. */
const NO_GPUS: readonly never[] = Object.freeze([]);

function vmRow(i: HostInterval, v: VmInterval, t0: number, t1: number): Row {
  const p = v.perf;
  const g = v.gpus;
  const none = g.length === 0;
  return {
    host: i.hostId,
    hardware_class: i.hardwareClass,
    seq: i.seq,
    t0_ns: t0,
    t1_ns: t1,
    vm_uuid: v.uuid,
    vm_name: v.name,
    tenant: v.tenant,
    state: v.state,
    presence: v.presence,
    vcpus: nat(v.vcpus),
    memory_bytes: nat(v.memoryBytes),
    cpu_s: v.cpuSeconds,
    vcpu_s: v.vcpuSeconds,
    memory_used_bytes: nat(v.memoryUsedBytes),
    block_read_bytes: nat(v.blockReadBytes),
    block_write_bytes: nat(v.blockWriteBytes),
    net_rx_bytes: nat(v.netRxBytes),
    net_tx_bytes: nat(v.netTxBytes),
    perf_supported: p ? 1 : 0,
    cycles: p ? nat(p.cycles) : 0,
    instructions: p ? nat(p.instructions) : 0,
    llc_misses: p ? nat(p.llcMisses) : 0,
    llc_references: p ? nat(p.llcReferences) : 0,
    gpu_devices: none ? NO_GPUS : g.map((x) => x.device),
    gpu_sm_util_pct: none ? NO_GPUS : g.map((x) => x.smUtilPct),
    gpu_mem_util_pct: none ? NO_GPUS : g.map((x) => x.memUtilPct),
    gpu_util_samples: none ? NO_GPUS : g.map((x) => nat(x.utilSamples)),
    gpu_used_memory_bytes: none ? NO_GPUS : g.map((x) => nat(x.usedMemoryBytes)),
    gpu_holds_context: none ? NO_GPUS : g.map((x) => (x.holdsContext ? 1 : 0)),
    gpu_passthrough: none ? NO_GPUS : g.map((x) => (x.passthrough ? 1 : 0)),
  };
}

function vmIsPlain(v: VmInterval): boolean {
  const p = v.perf;
  return (
    fin(v.presence) && fin(v.vcpus) && fin(v.memoryBytes) && fin(v.cpuSeconds) && fin(v.memoryUsedBytes) && fin(v.blockReadBytes) && fin(v.blockWriteBytes) && fin(v.netRxBytes) && fin(v.netTxBytes) &&
    v.vcpuSeconds.every(fin) &&
    (!p || (fin(p.cycles) && fin(p.instructions) && fin(p.llcMisses) && fin(p.llcReferences))) &&
    v.gpus.every((g) => fin(g.smUtilPct) && fin(g.memUtilPct) && fin(g.utilSamples) && fin(g.usedMemoryBytes))
  );
}

/** The VM's numbers converted (Long, bigint) and checked finite, a failure naming the field (the slow path). */
function checkedVm(v: VmInterval, at: string): VmInterval {
  const out: VmInterval = {
    ...v,
    presence: num(v.presence, `${at}: presence`),
    vcpus: num(v.vcpus, `${at}: vcpus`),
    memoryBytes: num(v.memoryBytes, `${at}: memoryBytes`),
    cpuSeconds: num(v.cpuSeconds, `${at}: cpuSeconds`),
    vcpuSeconds: v.vcpuSeconds.map((x, j) => num(x, `${at}: vcpuSeconds[${j}]`)),
    memoryUsedBytes: num(v.memoryUsedBytes, `${at}: memoryUsedBytes`),
    blockReadBytes: num(v.blockReadBytes, `${at}: blockReadBytes`),
    blockWriteBytes: num(v.blockWriteBytes, `${at}: blockWriteBytes`),
    netRxBytes: num(v.netRxBytes, `${at}: netRxBytes`),
    netTxBytes: num(v.netTxBytes, `${at}: netTxBytes`),
    gpus: v.gpus.map((g, j) => ({
      ...g,
      smUtilPct: num(g.smUtilPct, `${at}: gpus[${j}].smUtilPct`),
      memUtilPct: num(g.memUtilPct, `${at}: gpus[${j}].memUtilPct`),
      utilSamples: num(g.utilSamples, `${at}: gpus[${j}].utilSamples`),
      usedMemoryBytes: num(g.usedMemoryBytes, `${at}: gpus[${j}].usedMemoryBytes`),
    })),
  };
  if (v.perf) {
    out.perf = {
      cycles: num(v.perf.cycles, `${at}: perf.cycles`),
      instructions: num(v.perf.instructions, `${at}: perf.instructions`),
      llcMisses: num(v.perf.llcMisses, `${at}: perf.llcMisses`),
      llcReferences: num(v.perf.llcReferences, `${at}: perf.llcReferences`),
    };
  }
  return out;
}

/** The row of a host interval's k-th VM (the checked path when a value must be converted or refused). */
function vmRowOf(i: HostInterval, v: VmInterval, k: number): Row {
  if (fin(i.t0UnixNs) && fin(i.t1UnixNs) && vmIsPlain(v)) return vmRow(i, v, Math.round(i.t0UnixNs), Math.round(i.t1UnixNs));
  const at = `interval host=${i.hostId} seq=${i.seq} vms[${k}] uuid=${v.uuid}`;
  return vmRow(i, checkedVm(v, at), nsInt(i.t0UnixNs, `${at}: t0UnixNs`), nsInt(i.t1UnixNs, `${at}: t1UnixNs`));
}

export function vmRows(i: HostInterval): Row[] {
  return i.vms.map((v, k) => vmRowOf(i, v, k));
}

/** One VM of a host interval, as VM_ROW_PROJECTION reads it. */
export interface VmItem {
  i: HostInterval;
  v: VmInterval;
  k: number;
}

/** The VM items of some intervals, in vmRows order. */
export function vmItems(intervals: readonly HostInterval[]): VmItem[] {
  const out: VmItem[] = [];
  for (const i of intervals) for (let k = 0; k < i.vms.length; k++) out.push({ i, v: i.vms[k]!, k });
  return out;
}

/** vm_samples rows straight from the intervals (row-binary.ts RowProjection): the same values as vmRows. */
export const VM_ROW_PROJECTION: RowProjection<VmItem> = {
  columns: [
    'host', 'hardware_class', 'seq', 't0_ns', 't1_ns', 'vm_uuid', 'vm_name', 'tenant', 'state', 'presence', 'vcpus', 'memory_bytes', 'cpu_s', 'vcpu_s',
    'memory_used_bytes', 'block_read_bytes', 'block_write_bytes', 'net_rx_bytes', 'net_tx_bytes', 'perf_supported', 'cycles', 'instructions', 'llc_misses',
    'llc_references', 'gpu_devices', 'gpu_sm_util_pct', 'gpu_mem_util_pct', 'gpu_util_samples', 'gpu_used_memory_bytes', 'gpu_holds_context', 'gpu_passthrough',
  ],
  plain: ({ i, v }) => fin(i.t0UnixNs) && fin(i.t1UnixNs) && vmIsPlain(v),
  put({ i, v }, w, p) {
    const f = v.perf;
    const g = v.gpus;
    const none = g.length === 0;
    return (
      p[0]!(w, i.hostId) &&
      p[1]!(w, i.hardwareClass) &&
      p[2]!(w, i.seq) &&
      p[3]!(w, slot(Math.round(i.t0UnixNs))) &&
      p[4]!(w, slot(Math.round(i.t1UnixNs))) &&
      p[5]!(w, v.uuid) &&
      p[6]!(w, v.name) &&
      p[7]!(w, v.tenant) &&
      p[8]!(w, v.state) &&
      p[9]!(w, slot(v.presence)) &&
      p[10]!(w, slot(nat(v.vcpus))) &&
      p[11]!(w, slot(nat(v.memoryBytes))) &&
      p[12]!(w, slot(v.cpuSeconds)) &&
      p[13]!(w, v.vcpuSeconds) &&
      p[14]!(w, slot(nat(v.memoryUsedBytes))) &&
      p[15]!(w, slot(nat(v.blockReadBytes))) &&
      p[16]!(w, slot(nat(v.blockWriteBytes))) &&
      p[17]!(w, slot(nat(v.netRxBytes))) &&
      p[18]!(w, slot(nat(v.netTxBytes))) &&
      p[19]!(w, f ? 1 : 0) &&
      p[20]!(w, slot(f ? nat(f.cycles) : 0)) &&
      p[21]!(w, slot(f ? nat(f.instructions) : 0)) &&
      p[22]!(w, slot(f ? nat(f.llcMisses) : 0)) &&
      p[23]!(w, slot(f ? nat(f.llcReferences) : 0)) &&
      p[24]!(w, none ? NO_GPUS : g.map((x) => x.device)) &&
      p[25]!(w, none ? NO_GPUS : g.map((x) => x.smUtilPct)) &&
      p[26]!(w, none ? NO_GPUS : g.map((x) => x.memUtilPct)) &&
      p[27]!(w, none ? NO_GPUS : g.map((x) => nat(x.utilSamples))) &&
      p[28]!(w, none ? NO_GPUS : g.map((x) => nat(x.usedMemoryBytes))) &&
      p[29]!(w, none ? NO_GPUS : g.map((x) => (x.holdsContext ? 1 : 0))) &&
      p[30]!(w, none ? NO_GPUS : g.map((x) => (x.passthrough ? 1 : 0)))
    );
  },
  row: ({ i, v, k }) => vmRowOf(i, v, k),
};

function attributionRow(r: AttributionResult, s: AttributionShare, measured: number, t0: number, t1: number): Row {
  return {
    host: r.hostId,
    seq: r.seq,
    t0_ns: t0,
    t1_ns: t1,
    kind: s.kind,
    vm_uuid: s.vmUuid,
    vm_name: s.vmName,
    tenant: s.tenant,
    source: s.source,
    dynamic_j: s.dynamicJoules,
    static_j: s.staticJoules,
    low_j: s.lowJoules,
    high_j: s.highJoules,
    measured_j: measured,
    method: r.method,
    model_version: r.modelVersion,
    hardware_class: r.hardwareClass,
    note: r.note,
  };
}

/** The row of a result's k-th share (the checked path when a value must be converted or refused). */
function attributionRowOf(r: AttributionResult, s: AttributionShare, k: number): Row {
  const m = r.measured[s.source];
  if (fin(r.t0UnixNs) && fin(r.t1UnixNs) && fin(m) && fin(s.dynamicJoules) && fin(s.staticJoules) && fin(s.lowJoules) && fin(s.highJoules)) {
    return attributionRow(r, s, m, Math.round(r.t0UnixNs), Math.round(r.t1UnixNs));
  }
  const at = `attribution host=${r.hostId} seq=${r.seq} method=${r.method} shares[${k}] (${s.kind} ${s.vmUuid} ${s.source})`;
  const checked: AttributionShare = {
    ...s,
    dynamicJoules: num(s.dynamicJoules, `${at}: dynamicJoules`),
    staticJoules: num(s.staticJoules, `${at}: staticJoules`),
    lowJoules: num(s.lowJoules, `${at}: lowJoules`),
    highJoules: num(s.highJoules, `${at}: highJoules`),
  };
  return attributionRow(r, checked, num(m, `${at}: measured.${s.source}`), nsInt(r.t0UnixNs, `${at}: t0UnixNs`), nsInt(r.t1UnixNs, `${at}: t1UnixNs`));
}

export function attributionRows(r: AttributionResult): Row[] {
  return r.shares.map((s, k) => attributionRowOf(r, s, k));
}

/** One share of an attribution result, as ATTRIBUTION_ROW_PROJECTION reads it. */
export interface ShareItem {
  r: AttributionResult;
  s: AttributionShare;
  k: number;
}

/** The share items of some results, in attributionRows order. */
export function shareItems(results: readonly AttributionResult[]): ShareItem[] {
  const out: ShareItem[] = [];
  for (const r of results) for (let k = 0; k < r.shares.length; k++) out.push({ r, s: r.shares[k]!, k });
  return out;
}

/** attributions rows straight from the results (row-binary.ts RowProjection): the same values as attributionRows. */
export const ATTRIBUTION_ROW_PROJECTION: RowProjection<ShareItem> = {
  columns: ['host', 'seq', 't0_ns', 't1_ns', 'kind', 'vm_uuid', 'vm_name', 'tenant', 'source', 'dynamic_j', 'static_j', 'low_j', 'high_j', 'measured_j', 'method', 'model_version', 'hardware_class', 'note'],
  plain: ({ r, s }) => fin(r.t0UnixNs) && fin(r.t1UnixNs) && fin(r.measured[s.source]) && fin(s.dynamicJoules) && fin(s.staticJoules) && fin(s.lowJoules) && fin(s.highJoules),
  put({ r, s }, w, p) {
    return (
      p[0]!(w, r.hostId) &&
      p[1]!(w, r.seq) &&
      p[2]!(w, slot(Math.round(r.t0UnixNs))) &&
      p[3]!(w, slot(Math.round(r.t1UnixNs))) &&
      p[4]!(w, s.kind) &&
      p[5]!(w, s.vmUuid) &&
      p[6]!(w, s.vmName) &&
      p[7]!(w, s.tenant) &&
      p[8]!(w, s.source) &&
      p[9]!(w, slot(s.dynamicJoules)) &&
      p[10]!(w, slot(s.staticJoules)) &&
      p[11]!(w, slot(s.lowJoules)) &&
      p[12]!(w, slot(s.highJoules)) &&
      p[13]!(w, slot(r.measured[s.source])) &&
      p[14]!(w, r.method) &&
      p[15]!(w, r.modelVersion) &&
      p[16]!(w, r.hardwareClass) &&
      p[17]!(w, r.note)
    );
  },
  row: ({ r, s, k }) => attributionRowOf(r, s, k),
};

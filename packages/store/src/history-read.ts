/**
 * Reading stored host intervals back (the training set of the models, a learner's catch-up), over any
 * transport that answers queries with bytes: the store's own, or a worker thread's read connection
 * (read-transport.ts), which is how the collector's training reads a class's history off its event loop.
 *
 * The answer is RowBinary, decoded column by column (row-binary-reader.ts): a sampled host-day of a
 * 50-VM host is ~870 000 VM rows, which as JSONEachRow took longer to parse than to query. Every column
 * is CAST to the type the decoder reads, so the bytes mean what the decoder expects on every engine
 * (chDB and ClickHouse 18.16 alike; 18.16 has no RowBinaryWithNamesAndTypes).
 *
 * Steps: count the complete intervals that match (attributions are inserted last, so an interval with
 * attribution rows has its host and VM rows too); when more than `limit` match, keep every k-th by a
 * hash of host+seq, in SQL; read those host rows; then their VM rows, by primary-key ranges
 * (host, seq from..to) of at most CHUNK intervals per query, so no single answer grows with the window,
 * deduplicated here instead of with FINAL; then their anomalies.
 */
import type { Anomaly, HostInterval, SourceName, VmInterval } from '@wattsplit/attribution';
import { WattsplitError } from '@wattsplit/wire';
import { decodeRowBinary, forEachRowBinary } from './row-binary-reader.js';
import type { HistoryQuery } from './store.js';
import { int, str, type ClickHouseTransport } from './transport.js';

/** What a history read needs of a transport. */
export type HistoryTransport = Pick<ClickHouseTransport, 'query' | 'queryBytes'>;

/** Intervals per VM-row query (50 VMs each: ~40 MB of RowBinary). */
const CHUNK = 4000;

type Col = readonly [name: string, type: string];

const HOST_COLUMNS = [
  ['host', 'String'],
  ['hardware_class', 'String'],
  ['seq', 'UInt64'],
  ['prev_seq', 'UInt64'],
  ['t0_ns', 'Int64'],
  ['t1_ns', 'Int64'],
  ['duration_s', 'Float64'],
  ['rapl_j', 'Float64'],
  ['gpu_j', 'Float64'],
  ['bmc_rest_j', 'Float64'],
  ['rapl_zone_ids', 'Array(String)'],
  ['rapl_zone_j', 'Array(Float64)'],
  ['gpu_devices', 'Array(String)'],
  ['gpu_j_by_device', 'Array(Float64)'],
  ['gpu_contexts', 'Array(UInt32)'],
  ['gpu_mean_power_w', 'Array(Float64)'],
  ['gpu_util_pct', 'Array(Float64)'],
  ['gpu_util_mean_pct', 'Array(Float64)'],
  ['gpu_util_mean_samples', 'Array(UInt32)'],
  ['gpu_mem_util_pct', 'Array(Float64)'],
  ['gpu_sm_clock_mhz', 'Array(Float64)'],
  ['cpu_busy_s', 'Float64'],
  ['cpu_idle_s', 'Float64'],
  ['online_cpus', 'UInt32'],
  ['avg_freq_mhz', 'Float64'],
  ['unusable_sources', 'Array(String)'],
] as const satisfies readonly Col[];

const VM_LABELS = [
  ['vm_name', 'String'],
  ['tenant', 'String'],
] as const satisfies readonly Col[];

const VM_COLUMNS = [
  ['host', 'String'],
  ['seq', 'UInt64'],
  ['vm_uuid', 'String'],
  ['state', 'String'],
  ['presence', 'Float64'],
  ['vcpus', 'UInt32'],
  ['memory_bytes', 'UInt64'],
  ['cpu_s', 'Float64'],
  ['vcpu_s', 'Array(Float64)'],
  ['memory_used_bytes', 'UInt64'],
  ['block_read_bytes', 'UInt64'],
  ['block_write_bytes', 'UInt64'],
  ['net_rx_bytes', 'UInt64'],
  ['net_tx_bytes', 'UInt64'],
  ['perf_supported', 'UInt8'],
  ['cycles', 'UInt64'],
  ['instructions', 'UInt64'],
  ['llc_misses', 'UInt64'],
  ['llc_references', 'UInt64'],
  ['gpu_devices', 'Array(String)'],
  ['gpu_sm_util_pct', 'Array(Float64)'],
  ['gpu_mem_util_pct', 'Array(Float64)'],
  ['gpu_util_samples', 'Array(UInt32)'],
  ['gpu_used_memory_bytes', 'Array(UInt64)'],
  ['gpu_holds_context', 'Array(UInt8)'],
  ['gpu_passthrough', 'Array(UInt8)'],
] as const satisfies readonly Col[];

const ANOMALY_COLUMNS = [
  ['host', 'String'],
  ['seq', 'UInt64'],
  ['code', 'String'],
  ['counter_id', 'String'],
  ['vm_uuid', 'String'],
  ['message', 'String'],
] as const satisfies readonly Col[];

const select = (cols: readonly Col[]) => cols.map(([n, t]) => `CAST(${n} AS ${t}) AS ${n}`).join(', ');
const types = (cols: readonly Col[]) => cols.map(([, t]) => t);

const VM_STATES: readonly VmInterval['state'][] = ['running', 'paused', 'shutoff', 'migrating_out', 'migrating_in', 'gone'];

const sql = (cols: readonly Col[], from: string, rest: string) => `SELECT ${select(cols)} FROM ${from} ${rest}`;

/** A RowBinary SELECT decoded into rows. */
async function rowsOf(t: HistoryTransport, cols: readonly Col[], from: string, rest: string): Promise<unknown[][]> {
  return decodeRowBinary(await t.queryBytes(sql(cols, from, rest), 'RowBinary'), types(cols));
}

/** Host intervals as they were written (deduplicated), oldest first; see HistoryQuery and the file comment. */
export async function readHistoryFrom(t: HistoryTransport, q: HistoryQuery): Promise<HostInterval[]> {
  const limit = q.limit ?? 100_000;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > 1_000_000) {
    throw new WattsplitError('STORE_INVALID_INPUT', `readHistory limit=${String(limit)} must be an integer in 1..1000000`, { details: { field: 'limit', value: limit } });
  }
  const since = q.sinceUnixNs ?? q.fromUnixNs;
  if (since === undefined) throw new WattsplitError('STORE_INVALID_INPUT', 'readHistory needs sinceUnixNs (or fromUnixNs)', { details: { field: 'sinceUnixNs' } });
  const until = q.untilUnixNs ?? q.toUnixNs;
  const where = [`t1_ns >= ${int(since, 'readHistory sinceUnixNs')}`];
  if (until !== undefined) where.push(`t1_ns < ${int(until, 'readHistory untilUnixNs')}`);
  if (q.hostId !== undefined) where.push(`host = ${str(q.hostId)}`);
  if (q.afterSeq !== undefined) where.push(`seq > ${int(q.afterSeq, 'readHistory afterSeq')}`);
  const hostWhere = [...where];
  if (q.hardwareClass !== undefined) hostWhere.push(`hardware_class = ${str(q.hardwareClass)}`);
  // Only intervals whose write is complete: attributions are inserted last (writeIntervals), so an
  // interval whose host row is in but whose VM rows may still be on their way is not read half-written.
  hostWhere.push(`(host, seq) IN (SELECT host, seq FROM attributions WHERE ${where.join(' AND ')})`);
  const count = Number((await t.query(`SELECT count() FROM host_samples FINAL WHERE ${hostWhere.join(' AND ')}`, 'TSV')).trim() || 0);
  if (!(count > 0)) return [];
  // More than asked for: keep every k-th interval by hash, spread over the whole range.
  const every = Math.ceil(count / limit);
  const sampled = every > 1 && !q.newest ? [`cityHash64(host, seq) % ${every} = 0`] : [];
  hostWhere.push(...sampled);
  const hostRows =
    q.newest && count > limit
      ? (await rowsOf(t, HOST_COLUMNS, 'host_samples FINAL', `WHERE ${hostWhere.join(' AND ')} ORDER BY t1_ns DESC, host DESC, seq DESC LIMIT ${limit}`)).reverse()
      : await rowsOf(t, HOST_COLUMNS, 'host_samples FINAL', `WHERE ${hostWhere.join(' AND ')} ORDER BY t1_ns, host, seq LIMIT ${limit}`);
  if (hostRows.length === 0) return [];

  const intervals = hostRows.map(intervalOf);
  const byKey = new Map<string, HostInterval>();
  for (const iv of intervals) byKey.set(`${iv.hostId}\0${iv.seq}`, iv);

  const vmCols: readonly Col[] = q.omitVmLabels ? VM_COLUMNS : [...VM_COLUMNS, ...VM_LABELS];
  const V = positions(vmCols) as VmPositions;
  const perQuery = q.chunkIntervals !== undefined && Number.isSafeInteger(q.chunkIntervals) && q.chunkIntervals >= 1 ? q.chunkIntervals : CHUNK;
  const chunks = seqRanges(intervals, perQuery).map((c) => c.map((r) => `(host = ${str(r.host)} AND seq >= ${int(r.from, 'seq')} AND seq <= ${int(r.to, 'seq')})`));
  for (const ranges of chunks) {
    // Without FINAL (on 18.16 it made these reads 2-3 times slower): the rows come sorted by the table's
    // key, so the copies of a row not merged yet are adjacent, and all but the first are skipped (a
    // replayed interval is written with the same values).
    const bytes = await t.queryBytes(sql(vmCols, 'vm_samples', `WHERE (${ranges.join(' OR ')})${sampled.map((s) => ` AND ${s}`).join('')} ORDER BY host, seq, vm_uuid`), 'RowBinary');
    // Rows come by host and seq: look the interval up once per run of its VMs.
    let last: HostInterval | undefined;
    let lastUuid = '';
    forEachRowBinary(bytes, types(vmCols), (r) => {
      const host = r[V.host] as string;
      const seq = r[V.seq] as number;
      const uuid = r[V.vm_uuid] as string;
      if (!last || last.seq !== seq || last.hostId !== host) {
        last = byKey.get(`${host}\0${seq}`);
        lastUuid = '';
        if (!last || last.seq !== seq || last.hostId !== host) return;
      } else if (uuid === lastUuid) {
        return; // a copy of the row before
      }
      lastUuid = uuid;
      last.vms.push(vmOf(r, V));
    });
  }

  const hostList = [...new Set(intervals.map((i) => i.hostId))].map(str).join(', ');
  const anomalies = await rowsOf(t, ANOMALY_COLUMNS, 'anomalies FINAL', `WHERE ${[...where, `host IN (${hostList})`, ...sampled].join(' AND ')} ORDER BY host, seq, code, counter_id, vm_uuid`);
  const A = positions(ANOMALY_COLUMNS);
  for (const r of anomalies) {
    const iv = byKey.get(`${r[A.host] as string}\0${r[A.seq] as number}`);
    if (!iv) continue;
    const a: Anomaly = { code: r[A.code] as string, message: r[A.message] as string };
    if (r[A.counter_id]) a.counterId = r[A.counter_id] as string;
    if (r[A.vm_uuid]) a.vmUuid = r[A.vm_uuid] as string;
    iv.anomalies.push(a);
  }
  return intervals;
}

/** A primary-key range of one host's intervals: seq in [from, to]. */
export interface SeqRange {
  host: string;
  from: number;
  to: number;
}

/**
 * The VM-row queries of a read: per host, its intervals' seqs in order, cut into runs; each query takes
 * runs (of one or more hosts) covering at most `perQuery` of the intervals. Every interval is in exactly
 * one range, and no two ranges overlap.
 */
export function seqRanges(intervals: readonly { hostId: string; seq: number }[], perQuery: number): SeqRange[][] {
  const seqsByHost = new Map<string, number[]>();
  for (const iv of intervals) {
    let l = seqsByHost.get(iv.hostId);
    if (!l) seqsByHost.set(iv.hostId, (l = []));
    l.push(iv.seq);
  }
  const out: SeqRange[][] = [];
  let chunk: SeqRange[] = [];
  let inChunk = 0;
  for (const [host, seqs] of seqsByHost) {
    seqs.sort((a, b) => a - b);
    for (let i = 0; i < seqs.length; ) {
      const take = Math.min(seqs.length - i, perQuery - inChunk);
      chunk.push({ host, from: seqs[i]!, to: seqs[i + take - 1]! });
      i += take;
      inChunk += take;
      if (inChunk >= perQuery) {
        out.push(chunk);
        chunk = [];
        inChunk = 0;
      }
    }
  }
  if (chunk.length > 0) out.push(chunk);
  return out;
}

/** Column positions by name, for reading decoded rows by name. */
function positions<C extends readonly Col[]>(cols: C): Record<C[number][0], number> {
  return Object.fromEntries(cols.map(([n], i) => [n, i])) as Record<C[number][0], number>;
}

const H = positions(HOST_COLUMNS);

/** A host row as an interval with no VMs or anomalies yet. */
function intervalOf(r: unknown[]): HostInterval {
  const num = (c: keyof typeof H) => r[H[c]] as number;
  const nums = (c: keyof typeof H) => r[H[c]] as number[];
  const zoneIds = r[H.rapl_zone_ids] as string[];
  const zoneJ = nums('rapl_zone_j');
  const unusable = r[H.unusable_sources] as string[];
  return {
    hostId: r[H.host] as string,
    hardwareClass: r[H.hardware_class] as string,
    seq: num('seq'),
    prevSeq: num('prev_seq'),
    t0UnixNs: num('t0_ns'),
    t1UnixNs: num('t1_ns'),
    durationS: num('duration_s'),
    measured: { rapl: num('rapl_j'), gpu: num('gpu_j'), bmc_rest: num('bmc_rest_j') },
    raplZones: Object.fromEntries(zoneIds.map((id, k) => [id, zoneJ[k] ?? 0])),
    gpus: (r[H.gpu_devices] as string[]).map((device, k) => {
      // rows written before 0007 have empty arrays here: no samples, the point read is used
      const utilSamples = nums('gpu_util_mean_samples')[k] ?? 0;
      return {
        device,
        joules: nums('gpu_j_by_device')[k] ?? 0,
        contexts: nums('gpu_contexts')[k] ?? 0,
        meanPowerW: nums('gpu_mean_power_w')[k] ?? 0,
        gpuUtilPct: nums('gpu_util_pct')[k] ?? 0,
        ...(utilSamples > 0 ? { gpuUtilMeanPct: nums('gpu_util_mean_pct')[k] ?? 0, gpuUtilSamples: utilSamples } : {}),
        memUtilPct: nums('gpu_mem_util_pct')[k] ?? 0,
        smClockMhz: nums('gpu_sm_clock_mhz')[k] ?? 0,
      };
    }),
    hostCpu: { busySeconds: num('cpu_busy_s'), idleSeconds: num('cpu_idle_s'), onlineCpus: num('online_cpus'), avgFreqMhz: num('avg_freq_mhz') },
    vms: [],
    anomalies: [],
    ...(unusable.length > 0 ? { unusableSources: unusable as SourceName[] } : {}),
  };
}

type VmColumn = (typeof VM_COLUMNS)[number][0] | (typeof VM_LABELS)[number][0];
type VmPositions = Record<(typeof VM_COLUMNS)[number][0], number> & Partial<Record<(typeof VM_LABELS)[number][0], number>>;

/** A VM row as a VmInterval (name and tenant '' when the query left them out). */
function vmOf(r: readonly unknown[], V: VmPositions): VmInterval {
  const num = (c: Exclude<VmColumn, 'vm_name' | 'tenant'>) => r[V[c]] as number;
  const nums = (c: Exclude<VmColumn, 'vm_name' | 'tenant'>) => r[V[c]] as number[];
  const state = r[V.state] as VmInterval['state'];
  const vm: VmInterval = {
    uuid: r[V.vm_uuid] as string,
    name: V.vm_name === undefined ? '' : (r[V.vm_name] as string),
    tenant: V.tenant === undefined ? '' : (r[V.tenant] as string),
    vcpus: num('vcpus'),
    memoryBytes: num('memory_bytes'),
    cpuSeconds: num('cpu_s'),
    vcpuSeconds: nums('vcpu_s'),
    memoryUsedBytes: num('memory_used_bytes'),
    blockReadBytes: num('block_read_bytes'),
    blockWriteBytes: num('block_write_bytes'),
    netRxBytes: num('net_rx_bytes'),
    netTxBytes: num('net_tx_bytes'),
    gpus: (r[V.gpu_devices] as string[]).map((device, j) => ({
      device,
      smUtilPct: nums('gpu_sm_util_pct')[j] ?? 0,
      memUtilPct: nums('gpu_mem_util_pct')[j] ?? 0,
      utilSamples: nums('gpu_util_samples')[j] ?? 0,
      usedMemoryBytes: nums('gpu_used_memory_bytes')[j] ?? 0,
      holdsContext: nums('gpu_holds_context')[j] === 1,
      passthrough: nums('gpu_passthrough')[j] === 1,
    })),
    presence: num('presence'),
    state: VM_STATES.includes(state) ? state : 'running',
  };
  if (num('perf_supported') === 1) {
    vm.perf = { cycles: num('cycles'), instructions: num('instructions'), llcMisses: num('llc_misses'), llcReferences: num('llc_references') };
  }
  return vm;
}

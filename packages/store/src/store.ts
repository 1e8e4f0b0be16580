/**
 * The Store contract: what the collector writes per host interval, and the small read API billing,
 * the REST API and model training use. Two backends share every SQL statement: embedded chDB
 * (`ChdbStore`) and a ClickHouse server over HTTP (`ClickHouseServerStore`).
 *
 * Writes return a TransportResult (a server that is down is `retryable`, never a throw); reads throw a
 * WattsplitError (`STORE_QUERY_FAILED` with ClickHouse's message, or `STORE_UNAVAILABLE`, retriable).
 */
import type { Anomaly, AttributionResult, HostInterval } from '@wattsplit/attribution';
import type { TransportResult } from '@wattsplit/wire';
import type { ReadGrant } from './read-transport.js';

/** Output formats `query()` accepts (ClickHouse format names, identical on chDB and the server). */
export const QUERY_FORMATS = ['JSONEachRow', 'JSONCompactEachRow', 'JSON', 'CSV', 'CSVWithNames', 'TSV', 'TabSeparated', 'TSVWithNames', 'TabSeparatedWithNames', 'Pretty', 'PrettyCompact', 'PrettySpace', 'Markdown', 'Vertical'] as const;
export type QueryFormat = (typeof QUERY_FORMATS)[number];

export interface QueryResult {
  format: QueryFormat;
  /** The engine's output, verbatim. */
  text: string;
  /** Parsed rows for JSONEachRow (64-bit integers arrive as strings); [] for other formats. */
  rows: Record<string, unknown>[];
}

/** Raw counters of the frame that closed the interval (kept for audits; optional). */
export interface RawFrameCounters {
  bootId: string;
  counters: readonly { id: string; source: string; unit: string; value: number }[];
}

/** One host interval and every method's attribution of it: written as one idempotent batch. */
export interface IntervalWrite {
  interval: HostInterval;
  results: readonly AttributionResult[];
  raw?: RawFrameCounters;
}

/**
 * Which past intervals to read. Time bounds are on the interval end (t1): [since|from, until|to).
 * `fromUnixNs`/`toUnixNs` are accepted as aliases so the store is a models `HistoryProvider` as is.
 */
/** The last frame a collector committed for a host (see docs/collector.md, restarts). */
export interface Checkpoint {
  hostId: string;
  seq: number;
  bootId: string;
  /** The encoded wattsplit.telemetry.v1.TelemetryFrame. */
  frame: Uint8Array;
}

/** What a collector resumes a host from (Store.resumeState). */
export interface HostResumeState {
  checkpoint?: Checkpoint;
  /** The highest seq stored for the host (any boot) and its boot id. */
  floor?: { seq: number; bootId: string };
}

export interface HistoryQuery {
  hostId?: string;
  hardwareClass?: string;
  sinceUnixNs?: number;
  fromUnixNs?: number;
  /** Exclusive upper bound on t1; default: no bound. */
  untilUnixNs?: number;
  toUnixNs?: number;
  /**
   * At most this many host intervals (default 100000, max 1000000). When more match, an even,
   * deterministic sample over the whole range is returned (by hash of host+seq), oldest first.
   */
  limit?: number;
  /** Only intervals with seq above this (with `hostId`: what a learner has not seen yet). */
  afterSeq?: number;
  /** When more than `limit` match, the newest `limit` (by t1), oldest first, instead of a sample. */
  newest?: boolean;
  /**
   * Leave each VM's name and tenant out of the read ('' in the result): the model trainer and the drift
   * check do not use them, and they are a fifth of a VM row's bytes.
   */
  omitVmLabels?: boolean;
  /** Intervals per VM-row query (default 4000): smaller answers, more queries (the training worker yields to ingest between them). */
  chunkIntervals?: number;
}

export interface EnergyRangeQuery {
  fromUnixNs: number;
  toUnixNs: number;
  /** Attribution method; default "cpu_share". */
  method?: string;
}

/** One row of a VM's energy, per hour and source (joules). */
export interface VmEnergyRow {
  hour: string;
  vmUuid: string;
  vmName: string;
  tenant: string;
  source: string;
  method: string;
  dynamicJoules: number;
  staticJoules: number;
  lowJoules: number;
  highJoules: number;
}

/** One line of a tenant's bill: energy per VM and source over the period (joules). */
export interface BillLine {
  vmUuid: string;
  vmName: string;
  source: string;
  dynamicJoules: number;
  staticJoules: number;
  lowJoules: number;
  highJoules: number;
}

/** Per-tenant totals (joules) over a period; kind separates VMs from host overhead and unallocated idle. */
export interface TenantTotal {
  tenant: string;
  kind: string;
  dynamicJoules: number;
  staticJoules: number;
}

/** What `energyRollup` can group by (columns of the hourly rollup `vm_energy_hourly`). */
export const ENERGY_DIMENSIONS = ['hour', 'method', 'tenant', 'host', 'kind', 'source', 'vm_uuid'] as const;
export type EnergyDimension = (typeof ENERGY_DIMENSIONS)[number];

/**
 * Energy over whole hours in [hour(from), to), summed by the dimensions in `by`; the filters keep rows
 * whose column is one of the values given (absent: every value). The source of bills, carbon and the
 * fairness report: the hourly rollup, or attributions FINAL where the engine cannot deduplicate inserts
 * (`billingSource`), so the sums equal the stored attributions.
 */
export interface EnergyRollupQuery {
  fromUnixNs: number;
  toUnixNs: number;
  by: readonly EnergyDimension[];
  methods?: readonly string[];
  tenants?: readonly string[];
  hosts?: readonly string[];
  kinds?: readonly string[];
  vmUuids?: readonly string[];
}

/** One row of `energyRollup`: the grouped dimensions (hour as `YYYY-MM-DD HH:00:00` UTC) and joules. */
export interface EnergyRollupRow {
  hour?: string;
  method?: string;
  tenant?: string;
  host?: string;
  kind?: string;
  source?: string;
  vmUuid?: string;
  /** With vm_uuid: the VM's name (any of its names in the group). */
  vmName?: string;
  dynamicJoules: number;
  staticJoules: number;
  lowJoules: number;
  highJoules: number;
}

export interface StoredInterval {
  seq: number;
  /** Boot id of the stored host row ('' when only attribution rows exist). */
  bootId: string;
  attributed: boolean;
}

/** A host's seqs afterSeq < seq ≤ toSeq (Store.storedIntervalRanges). */
export interface StoredRange {
  hostId: string;
  afterSeq: number;
  toSeq: number;
}

export interface Store {
  readonly backend: 'chdb' | 'clickhouse-server';
  /** Connects and applies pending migrations. Throws CONFIG_INVALID / STORE_UNAVAILABLE / STORE_QUERY_FAILED. */
  init(): Promise<void>;
  /** Host row, VM rows, anomalies, then attribution rows, each insert deduplicated by host+seq. */
  writeInterval(write: IntervalWrite): Promise<TransportResult>;
  /**
   * Several intervals in one insert per table (4 inserts for the whole batch). Idempotent when retried
   * with the same batch (same host+seq set): retry a failed batch verbatim, do not re-cut it.
   */
  writeIntervals(writes: readonly IntervalWrite[]): Promise<TransportResult>;
  /** Saves the newest committed frame per host (idempotent; an older checkpoint never replaces a newer one). */
  saveCheckpoints(checkpoints: readonly Checkpoint[]): Promise<TransportResult>;
  /** The newest checkpoint of a host, or undefined. Throws like query(). */
  loadCheckpoint(hostId: string): Promise<Checkpoint | undefined>;
  /** The highest seq stored for a host (any boot) and its boot id, or undefined. Throws like query(). */
  highestStoredSeq(hostId: string): Promise<{ seq: number; bootId: string } | undefined>;
  /**
   * loadCheckpoint and highestStoredSeq of many hosts in two queries (a collector taking over partitions
   * resumes every host of a batch at once, instead of two round trips per host). Every host asked for has an
   * entry; a field is absent where the single-host call would give undefined. Throws like query().
   */
  resumeState(hostIds: readonly string[]): Promise<Map<string, HostResumeState>>;
  /**
   * Which of these seqs of a host are stored: the boot id of the host row and whether its attribution
   * rows exist (one insert block per interval: all or none of them). Throws like query(). Used before a
   * write that may repeat one that landed (a retry after an unanswered write, a replay after a restart),
   * so no attribution row is inserted twice and the rollups fed from them stay exact on every server.
   */
  storedIntervals(hostId: string, seqs: readonly number[]): Promise<StoredInterval[]>;
  /**
   * storedIntervals for seq ranges of many hosts at once: per host, every stored interval with afterSeq < seq
   * ≤ toSeq (a host without any has an empty list). One query per table for up to 500 hosts: a collector
   * resuming hosts whose frames since its last commit are redelivered (the stored ones are checked before
   * any write) asks once per batch instead of once per frame. Throws like query().
   */
  storedIntervalRanges(ranges: readonly StoredRange[]): Promise<Map<string, StoredInterval[]>>;
  writeAnomalies(hostId: string, seq: number, t1UnixNs: number, anomalies: readonly Anomaly[]): Promise<TransportResult>;
  query(sql: string, format?: QueryFormat): Promise<QueryResult>;
  /** Inserts rows (column name → value) into a table of the schema (models, leases, learner state). Never throws. */
  insertRows(table: string, rows: readonly Record<string, unknown>[]): Promise<TransportResult>;
  /** Host intervals as they were written (deduplicated), oldest first: the training set of the models. */
  readHistory(q: HistoryQuery): Promise<HostInterval[]>;
  /**
   * A read connection to this store for another thread (read-transport.ts): post `handle` to a worker
   * with `transfer`, open it there with openReadTransport and read with readHistoryFrom. Absent on
   * stores that cannot be read from another thread (test wrappers); callers then read here.
   */
  shareReads?(): Promise<ReadGrant>;
  vmEnergy(vmUuid: string, q: EnergyRangeQuery): Promise<VmEnergyRow[]>;
  tenantBill(tenant: string, q: EnergyRangeQuery): Promise<BillLine[]>;
  tenantTotals(q: EnergyRangeQuery): Promise<TenantTotal[]>;
  /** Hourly energy grouped and filtered (see EnergyRollupQuery). Throws like query(); a bad dimension is STORE_INVALID_INPUT. */
  energyRollup(q: EnergyRollupQuery): Promise<EnergyRollupRow[]>;
  close(): Promise<void>;
}

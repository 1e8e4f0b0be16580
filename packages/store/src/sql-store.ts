/**
 * The Store over any ClickHouseTransport: the same SQL for chDB and the server. Writes are idempotent
 * per host interval (see docs/store.md): every insert of one interval carries an
 * insert_deduplication_token derived from host+seq, and the raw tables are ReplacingMergeTree keyed by
 * host+seq(+vm/source/method), so a replayed frame neither adds raw rows (after merge / with FINAL) nor
 * feeds the rollups twice.
 */
import { createHash } from 'node:crypto';
import type { Anomaly, HostInterval } from '@wattsplit/attribution';
import { OK, RepeatGate, WattsplitError, backoffMs, failed, markReported, normaliseError, retryable, silentLogger, type Logger, type TransportResult } from '@wattsplit/wire';
import type { ClusterSchema } from './cluster-schema.js';
import { DEFAULT_RETENTION, DEFAULT_SQL_DIR, migrate, type Retention } from './migrations.js';
import { readHistoryFrom } from './history-read.js';
import type { ReadGrant } from './read-transport.js';
import type { RowProjection } from './row-binary.js';
import { ATTRIBUTION_ROW_PROJECTION, VM_ROW_PROJECTION, anomalyRows, hostRow, type ShareItem, type VmItem } from './rows.js';
import { ENERGY_DIMENSIONS, QUERY_FORMATS, type BillLine, type EnergyRollupQuery, type EnergyRollupRow, type Checkpoint, type EnergyRangeQuery, type HistoryQuery, type HostResumeState, type IntervalWrite, type QueryFormat, type QueryResult, type Store, type StoredInterval, type StoredRange, type TenantTotal, type VmEnergyRow } from './store.js';
import { capabilitiesOf, int, str, type Capabilities, type ClickHouseTransport, type PreparedRows, type Settings } from './transport.js';

export interface SqlStoreOptions {
  logger?: Logger;
  retention?: Partial<Retention>;
  /**
   * Where billing reads come from: 'rollups' (hourly MV tables; exact when inserts are deduplicated,
   * ClickHouse 22.2+ and chDB), 'final' (attributions FINAL, exact everywhere, slower), 'auto' (default:
   * rollups when the engine deduplicates inserts, else final).
   */
  billingSource?: 'auto' | 'rollups' | 'final';
  /** Directory of NNNN_name.sql migrations (default: the package's sql/). */
  sqlDir?: string;
  /** Migrate ON CLUSTER: replicated local tables + Distributed tables (cluster-schema.ts). Server only. */
  clusterSchema?: ClusterSchema;
}

type Row = Record<string, unknown>;
/** A table's rows ready to send: encoded by the transport, or as row objects. */
type Encoded = { prepared: PreparedRows } | { rows: Row[] };

function parseJsonEachRow(text: string): Row[] {
  const out: Row[] = [];
  for (const line of text.split('\n')) if (line.trim()) out.push(JSON.parse(line) as Row);
  return out;
}

/** Hosts per IN list of resumeState's queries. */
const RESUME_CHUNK = 500;
const num = (v: unknown) => (typeof v === 'number' ? v : Number(v));
const text = (v: unknown) => (typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean' ? String(v) : v == null ? '' : JSON.stringify(v));

export class SqlStore implements Store {
  readonly backend: 'chdb' | 'clickhouse-server';
  protected readonly log: Logger;
  private readonly retention: Retention;
  private caps: Capabilities | undefined;
  private attempts = 0;
  /**
   * A server that is down fails every write, retried by the bus every few seconds per partition (an audit counted
   * 49 warnings in a 40 s ClickHouse outage from the store, the pipeline and the bus together): one warning per
   * error code per 30 s here, the rest at debug (counted in the next one's `repeated`).
   */
  private readonly retryLog = new RepeatGate(30_000);

  constructor(
    protected readonly t: ClickHouseTransport,
    private readonly opts: SqlStoreOptions = {},
  ) {
    this.backend = t.backend;
    this.log = (opts.logger ?? silentLogger).child({ component: 'store', backend: t.backend });
    this.retention = { ...DEFAULT_RETENTION, ...opts.retention };
  }

  /** Engine version and the features the schema could use; set after init(). */
  get capabilities(): Capabilities | undefined {
    return this.caps;
  }

  /** Where billing reads come from after init(). */
  get billingSource(): 'rollups' | 'final' {
    const want = this.opts.billingSource ?? 'auto';
    if (want !== 'auto') return want;
    return this.caps && this.caps.dedupToken && this.caps.nonReplicatedDedup ? 'rollups' : 'final';
  }

  protected async connect(): Promise<void> {
    // transports that need a connection step override this
  }

  /**
   * Connects, reads the engine's version and applies the migrations; once it has succeeded, a later call does
   * nothing (the CLI opens the store before the collector's module asks for it again: one "store ready" line).
   */
  async init(): Promise<void> {
    if (this.caps) return;
    await this.connect();
    const v = (await this.t.query('SELECT version() AS v', 'JSONEachRow')).trim();
    const version = text((JSON.parse(v) as Row).v);
    this.caps = capabilitiesOf(version);
    const applied = await migrate(this.t, this.caps, this.retention, this.log, { sqlDir: this.opts.sqlDir ?? DEFAULT_SQL_DIR, ...(this.opts.clusterSchema ? { cluster: this.opts.clusterSchema } : {}) });
    this.log.info({ version, applied, billingSource: this.billingSource }, `store ready (${this.backend} ${version})`);
  }

  /**
   * insert_deduplication_token of one table's insert for a batch of intervals: a hash of the sorted
   * host:seq keys (plus the methods for attributions). A batch retried verbatim carries the same token, so
   * ClickHouse drops it, and drops the materialized views' inserts with it.
   */
  private token(keys: readonly string[], table: string): Settings | undefined {
    if (!this.caps?.dedupToken) return undefined;
    const digest = createHash('sha256').update([...keys].sort().join('\n')).digest('hex').slice(0, 32);
    return { insert_deduplication_token: `wattsplit:${table}:${digest}` };
  }

  private toResult(e: unknown, what: string): TransportResult {
    const err = normaliseError(e, 'STORE_UNAVAILABLE', true);
    if (err.retriable) {
      const afterMs = backoffMs(this.attempts++, 200, 10_000);
      this.retryLog.write(this.log, 'warn', err.code, { code: err.code, retryInMs: afterMs }, `${what}: ${err.message}`);
      return retryable(markReported(err), afterMs);
    }
    this.log.error({ code: err.code, ...err.details }, `${what}: ${err.message}`);
    return failed(err);
  }

  writeInterval(w: IntervalWrite): Promise<TransportResult> {
    return this.writeIntervals([w]);
  }

  async writeIntervals(writes: readonly IntervalWrite[]): Promise<TransportResult> {
    if (writes.length === 0) return OK;
    const first = writes[0]!.interval;
    const what = writes.length === 1 ? `write interval host=${first.hostId} seq=${first.seq}` : `write ${writes.length} intervals (first host=${first.hostId} seq=${first.seq})`;
    const hosts: Row[] = [];
    const vmIts: VmItem[] = [];
    const anomalies: Row[] = [];
    const shareIts: ShareItem[] = [];
    const keys: string[] = [];
    const attrKeys: string[] = [];
    let vms: Encoded;
    let attributions: Encoded;
    try {
      const seen = new Set<string>();
      for (const w of writes) {
        const i = w.interval;
        const key = `${i.hostId}:${i.seq}`;
        if (seen.has(key)) throw new WattsplitError('STORE_INVALID_INPUT', `${what}: interval host=${i.hostId} seq=${i.seq} appears twice in the batch`, { details: { host: i.hostId, seq: i.seq } });
        seen.add(key);
        for (const [k, r] of w.results.entries()) {
          if (r.hostId !== i.hostId || r.seq !== i.seq) {
            throw new WattsplitError('STORE_INVALID_INPUT', `interval host=${i.hostId} seq=${i.seq}: results[${k}] (method ${r.method}) is for host=${r.hostId} seq=${r.seq}`, { details: { field: `results[${k}]`, hostId: r.hostId, seq: r.seq } });
          }
        }
        hosts.push(hostRow(i, w.raw));
        for (let k = 0; k < i.vms.length; k++) vmIts.push({ i, v: i.vms[k]!, k });
        anomalies.push(...anomalyRows(i.hostId, i.seq, i.t1UnixNs, i.anomalies));
        for (const r of w.results) for (let k = 0; k < r.shares.length; k++) shareIts.push({ r, s: r.shares[k]!, k });
        keys.push(key);
        attrKeys.push(`${key}:${[...new Set(w.results.map((r) => r.method))].sort().join(',')}`);
      }
      // Every row is encoded (and every bad value refused, naming it) before anything is sent.
      vms = await this.encode('vm_samples', vmIts, VM_ROW_PROJECTION);
      attributions = await this.encode('attributions', shareIts, ATTRIBUTION_ROW_PROJECTION);
    } catch (e) {
      return this.toResult(normaliseError(e, 'STORE_INVALID_INPUT'), what);
    }
    try {
      // The raw tables side by side (a server runs them on its own threads), attributions last: when they
      // are in, everything of the batch is. A retry repeats all four with the same tokens.
      const raw = await Promise.allSettled([
        this.t.insert('host_samples', hosts, this.token(keys, 'host_samples')),
        this.send('vm_samples', vms, this.token(keys, 'vm_samples')),
        this.t.insert('anomalies', anomalies, this.token(keys, 'anomalies')),
      ]);
      for (const r of raw) if (r.status === 'rejected') throw r.reason;
      await this.send('attributions', attributions, this.token(attrKeys, 'attributions'));
    } catch (e) {
      return this.toResult(e, what);
    }
    this.attempts = 0;
    return OK;
  }

  /**
   * A hot table's rows: encoded by the transport straight from the items where it can (RowBinary, no row
   * object per item: prepareRows), else the rows themselves. Throws STORE_INVALID_INPUT naming a bad field.
   */
  private async encode<T>(table: string, items: readonly T[], p: RowProjection<T>): Promise<Encoded> {
    if (items.length === 0) return { rows: [] };
    const prepared = this.t.prepareRows && this.t.insertPrepared ? await this.t.prepareRows(table, items, p) : undefined;
    return prepared ? { prepared } : { rows: items.map((x) => p.row(x)) };
  }

  private send(table: string, e: Encoded, settings: Settings | undefined): Promise<void> {
    if ('prepared' in e) return this.t.insertPrepared!(e.prepared, settings);
    return this.t.insert(table, e.rows, settings);
  }

  async saveCheckpoints(checkpoints: readonly Checkpoint[]): Promise<TransportResult> {
    if (checkpoints.length === 0) return OK;
    let rows: Row[];
    try {
      rows = checkpoints.map((c, k) => ({
        host: c.hostId,
        seq: int(c.seq, `checkpoints[${k}].seq`),
        boot_id: c.bootId,
        frame_b64: Buffer.from(c.frame).toString('base64'),
      }));
    } catch (e) {
      return this.toResult(e, 'save checkpoints');
    }
    try {
      await this.t.insert('collector_checkpoints', rows, this.token(checkpoints.map((c) => `${c.hostId}:${c.seq}`), 'collector_checkpoints'));
    } catch (e) {
      return this.toResult(e, 'save checkpoints');
    }
    return OK;
  }

  async loadCheckpoint(hostId: string): Promise<Checkpoint | undefined> {
    const r = (await this.rows(`SELECT host, seq, boot_id, frame_b64 FROM collector_checkpoints FINAL WHERE host = ${str(hostId)} ORDER BY seq DESC LIMIT 1`))[0];
    if (!r) return undefined;
    return { hostId: text(r.host), seq: num(r.seq), bootId: text(r.boot_id), frame: new Uint8Array(Buffer.from(text(r.frame_b64), 'base64')) };
  }

  async highestStoredSeq(hostId: string): Promise<{ seq: number; bootId: string } | undefined> {
    const r = (await this.rows(`SELECT count() AS n, max(seq) AS top, argMax(boot_id, seq) AS top_boot FROM host_samples WHERE host = ${str(hostId)}`))[0];
    if (!r || num(r.n) === 0) return undefined;
    return { seq: num(r.top), bootId: text(r.top_boot) };
  }

  async resumeState(hostIds: readonly string[]): Promise<Map<string, HostResumeState>> {
    const out = new Map<string, HostResumeState>();
    const hosts = [...new Set(hostIds)];
    for (const h of hosts) out.set(h, {});
    // IN lists of at most RESUME_CHUNK hosts (a query stays far below max_query_size's 256 KiB)
    for (let i = 0; i < hosts.length; i += RESUME_CHUNK) {
      const list = hosts.slice(i, i + RESUME_CHUNK).map(str).join(', ');
      // FINAL: ReplacingMergeTree(seq) keeps one row per host; the newest seq is taken here too, as loadCheckpoint does
      for (const r of await this.rows(`SELECT host, seq, boot_id, frame_b64 FROM collector_checkpoints FINAL WHERE host IN (${list})`)) {
        const e = out.get(text(r.host));
        if (!e || (e.checkpoint && e.checkpoint.seq >= num(r.seq))) continue;
        e.checkpoint = { hostId: text(r.host), seq: num(r.seq), bootId: text(r.boot_id), frame: new Uint8Array(Buffer.from(text(r.frame_b64), 'base64')) };
      }
      for (const r of await this.rows(`SELECT host, count() AS n, max(seq) AS top, argMax(boot_id, seq) AS top_boot FROM host_samples WHERE host IN (${list}) GROUP BY host`)) {
        const e = out.get(text(r.host));
        if (e && num(r.n) > 0) e.floor = { seq: num(r.top), bootId: text(r.top_boot) };
      }
    }
    return out;
  }

  async storedIntervals(hostId: string, seqs: readonly number[]): Promise<StoredInterval[]> {
    if (seqs.length === 0) return [];
    const list = seqs.map((q) => int(q, `storedIntervals ${hostId} seq`)).join(', ');
    const where = `host = ${str(hostId)} AND seq IN (${list})`;
    const hosts = await this.rows(`SELECT seq, any(boot_id) AS boot FROM host_samples WHERE ${where} GROUP BY seq`);
    const attributed = new Set((await this.rows(`SELECT DISTINCT seq FROM attributions WHERE ${where}`)).map((r) => num(r.seq)));
    const out = new Map<number, StoredInterval>();
    for (const r of hosts) out.set(num(r.seq), { seq: num(r.seq), bootId: text(r.boot), attributed: attributed.has(num(r.seq)) });
    for (const q of attributed) if (!out.has(q)) out.set(q, { seq: q, bootId: '', attributed: true });
    return [...out.values()].sort((a, b) => a.seq - b.seq);
  }

  async storedIntervalRanges(ranges: readonly StoredRange[]): Promise<Map<string, StoredInterval[]>> {
    const out = new Map<string, StoredInterval[]>();
    for (const r of ranges) out.set(r.hostId, []);
    for (let i = 0; i < ranges.length; i += RESUME_CHUNK) {
      const chunk = ranges.slice(i, i + RESUME_CHUNK);
      const where = chunk.map((r, k) => `(host = ${str(r.hostId)} AND seq > ${int(r.afterSeq, `storedIntervalRanges[${i + k}].afterSeq`)} AND seq <= ${int(r.toSeq, `storedIntervalRanges[${i + k}].toSeq`)})`).join(' OR ');
      const byKey = new Map<string, StoredInterval>();
      for (const r of await this.rows(`SELECT host, seq, any(boot_id) AS boot FROM host_samples WHERE ${where} GROUP BY host, seq`)) {
        byKey.set(`${text(r.host)}\0${num(r.seq)}`, { seq: num(r.seq), bootId: text(r.boot), attributed: false });
      }
      for (const r of await this.rows(`SELECT host, seq FROM attributions WHERE ${where} GROUP BY host, seq`)) {
        const k = `${text(r.host)}\0${num(r.seq)}`;
        const e = byKey.get(k);
        if (e) e.attributed = true;
        else byKey.set(k, { seq: num(r.seq), bootId: '', attributed: true });
      }
      for (const [k, v] of byKey) out.get(k.slice(0, k.indexOf('\0')))?.push(v);
    }
    for (const l of out.values()) l.sort((a, b) => a.seq - b.seq);
    return out;
  }

  async writeAnomalies(hostId: string, seq: number, t1UnixNs: number, anomalies: readonly Anomaly[]): Promise<TransportResult> {
    const what = `write anomalies host=${hostId} seq=${seq}`;
    let rows: Row[];
    try {
      rows = anomalyRows(hostId, seq, t1UnixNs, anomalies);
    } catch (e) {
      return this.toResult(e, what);
    }
    try {
      await this.t.insert('anomalies', rows, this.token([`${hostId}:${seq}:${anomalies.map((a) => `${a.code}/${a.counterId ?? ''}/${a.vmUuid ?? ''}`).join(',')}`], 'anomalies-extra'));
    } catch (e) {
      return this.toResult(e, what);
    }
    return OK;
  }

  async insertRows(table: string, rows: readonly Record<string, unknown>[]): Promise<TransportResult> {
    if (rows.length === 0) return OK;
    if (!/^[a-z_][a-z0-9_]*$/.test(table)) return failed(new WattsplitError('STORE_INVALID_INPUT', `insert: table=${JSON.stringify(table)} is not a table name`, { details: { field: 'table', value: table } }));
    try {
      await this.t.insert(table, rows);
    } catch (e) {
      return this.toResult(e, `insert into ${table}`);
    }
    return OK;
  }

  async query(sql: string, format: QueryFormat = 'JSONEachRow'): Promise<QueryResult> {
    if (!(QUERY_FORMATS as readonly string[]).includes(format)) {
      throw new WattsplitError('STORE_INVALID_INPUT', `query format=${JSON.stringify(format)} is not one of ${QUERY_FORMATS.join(', ')}`, { details: { field: 'format', value: format } });
    }
    const body = sql.trim().replace(/;\s*$/, '');
    const out = await this.t.query(body, format);
    return { format, text: out, rows: format === 'JSONEachRow' ? parseJsonEachRow(out) : [] };
  }

  private async rows(sql: string): Promise<Row[]> {
    return (await this.query(sql, 'JSONEachRow')).rows;
  }

  readHistory(q: HistoryQuery): Promise<HostInterval[]> {
    return readHistoryFrom(this.t, q);
  }

  async shareReads(): Promise<ReadGrant> {
    if (!this.t.shareReads) throw new WattsplitError('CONFIG_INVALID', `the ${this.backend} transport cannot be read from another thread`, { details: { backend: this.backend } });
    await this.connect();
    return this.t.shareReads();
  }

  private range(q: EnergyRangeQuery, what: string): { from: string; to: string; method: string } {
    if (q.toUnixNs <= q.fromUnixNs) {
      throw new WattsplitError('STORE_INVALID_INPUT', `${what}: to=${q.toUnixNs} must be after from=${q.fromUnixNs}`, { details: { field: 'to', value: q.toUnixNs } });
    }
    return {
      from: `toStartOfHour(toDateTime(${int(Math.floor(q.fromUnixNs / 1e9), `${what} from`)}, 'UTC'))`,
      to: `toDateTime(${int(Math.ceil(q.toUnixNs / 1e9), `${what} to`)}, 'UTC')`,
      method: str(q.method ?? 'cpu_share'),
    };
  }

  /** Rows of one VM's energy per hour and source. Ranges cover every hour starting in [hour(from), to). */
  async vmEnergy(vmUuid: string, q: EnergyRangeQuery): Promise<VmEnergyRow[]> {
    const r = this.range(q, `vmEnergy ${vmUuid}`);
    const src =
      this.billingSource === 'rollups'
        ? `SELECT hour, vm_uuid, vm_name, tenant, source, method, dynamic_j, static_j, low_j, high_j FROM vm_energy_hourly WHERE vm_uuid = ${str(vmUuid)} AND method = ${r.method}`
        : `SELECT toStartOfHour(ts) AS hour, vm_uuid, vm_name, tenant, source, method, dynamic_j, static_j, low_j, high_j FROM attributions FINAL WHERE kind = 'vm' AND vm_uuid = ${str(vmUuid)} AND method = ${r.method}`;
    const rows = await this.rows(
      `SELECT toString(hour) AS hour_start, vm_uuid, any(vm_name) AS vm_name, any(tenant) AS tenant, source, method, sum(dynamic_j) AS dynamic_j, sum(static_j) AS static_j, sum(low_j) AS low_j, sum(high_j) AS high_j
       FROM (${src}) WHERE hour >= ${r.from} AND hour < ${r.to} GROUP BY hour, vm_uuid, source, method ORDER BY hour_start, source`,
    );
    return rows.map((x) => ({
      hour: text(x.hour_start),
      vmUuid: text(x.vm_uuid),
      vmName: text(x.vm_name),
      tenant: text(x.tenant),
      source: text(x.source),
      method: text(x.method),
      dynamicJoules: num(x.dynamic_j),
      staticJoules: num(x.static_j),
      lowJoules: num(x.low_j),
      highJoules: num(x.high_j),
    }));
  }

  /** A tenant's energy per VM and source over whole hours in [hour(from), to). */
  async tenantBill(tenant: string, q: EnergyRangeQuery): Promise<BillLine[]> {
    const r = this.range(q, `tenantBill ${tenant}`);
    const src =
      this.billingSource === 'rollups'
        ? `SELECT hour, vm_uuid, vm_name, source, dynamic_j, static_j, low_j, high_j FROM vm_energy_hourly WHERE tenant = ${str(tenant)} AND method = ${r.method} AND kind = 'vm'`
        : `SELECT toStartOfHour(ts) AS hour, vm_uuid, vm_name, source, dynamic_j, static_j, low_j, high_j FROM attributions FINAL WHERE tenant = ${str(tenant)} AND method = ${r.method} AND kind = 'vm'`;
    const rows = await this.rows(
      `SELECT vm_uuid, any(vm_name) AS vm_name, source, sum(dynamic_j) AS dynamic_j, sum(static_j) AS static_j, sum(low_j) AS low_j, sum(high_j) AS high_j
       FROM (${src}) WHERE hour >= ${r.from} AND hour < ${r.to} GROUP BY vm_uuid, source ORDER BY vm_uuid, source`,
    );
    return rows.map((x) => ({
      vmUuid: text(x.vm_uuid),
      vmName: text(x.vm_name),
      source: text(x.source),
      dynamicJoules: num(x.dynamic_j),
      staticJoules: num(x.static_j),
      lowJoules: num(x.low_j),
      highJoules: num(x.high_j),
    }));
  }

  /** Energy per tenant and entity kind over whole hours in [hour(from), to). */
  async tenantTotals(q: EnergyRangeQuery): Promise<TenantTotal[]> {
    const r = this.range(q, 'tenantTotals');
    const src =
      this.billingSource === 'rollups'
        ? `SELECT hour, tenant, kind, dynamic_j, static_j FROM tenant_energy_hourly WHERE method = ${r.method}`
        : `SELECT toStartOfHour(ts) AS hour, tenant, kind, dynamic_j, static_j FROM attributions FINAL WHERE method = ${r.method}`;
    const rows = await this.rows(
      `SELECT tenant, kind, sum(dynamic_j) AS dynamic_j, sum(static_j) AS static_j FROM (${src}) WHERE hour >= ${r.from} AND hour < ${r.to} GROUP BY tenant, kind ORDER BY tenant, kind`,
    );
    return rows.map((x) => ({ tenant: text(x.tenant), kind: text(x.kind), dynamicJoules: num(x.dynamic_j), staticJoules: num(x.static_j) }));
  }

  /** Hourly energy by the asked dimensions over whole hours in [hour(from), to) (see EnergyRollupQuery). */
  async energyRollup(q: EnergyRollupQuery): Promise<EnergyRollupRow[]> {
    const r = this.range(q, 'energyRollup');
    for (const d of q.by) {
      if (!(ENERGY_DIMENSIONS as readonly string[]).includes(d)) {
        throw new WattsplitError('STORE_INVALID_INPUT', `energyRollup by=${JSON.stringify(d)} is not one of ${ENERGY_DIMENSIONS.join(', ')}`, { details: { field: 'by', value: d } });
      }
    }
    const where = [`hour >= ${r.from}`, `hour < ${r.to}`];
    const filter = (column: string, values: readonly string[] | undefined) => {
      if (values !== undefined) where.push(values.length === 0 ? '0' : `${column} IN (${values.map(str).join(', ')})`);
    };
    filter('method', q.methods);
    filter('tenant', q.tenants);
    filter('host', q.hosts);
    filter('kind', q.kinds);
    filter('vm_uuid', q.vmUuids);
    const columns = 'vm_uuid, vm_name, tenant, host, kind, source, method, dynamic_j, static_j, low_j, high_j';
    const src =
      this.billingSource === 'rollups'
        ? `SELECT hour, ${columns} FROM vm_energy_hourly`
        : `SELECT toStartOfHour(ts) AS hour, ${columns} FROM attributions FINAL`;
    const by = [...new Set(q.by)];
    const keys = by.map((d) => (d === 'hour' ? 'toString(hour) AS hour_start' : d));
    const extra = by.includes('vm_uuid') ? ', any(vm_name) AS vm_name' : '';
    const group = by.length ? ` GROUP BY ${by.map((d) => (d === 'hour' ? 'hour_start' : d)).join(', ')} ORDER BY ${by.map((d) => (d === 'hour' ? 'hour_start' : d)).join(', ')}` : '';
    const rows = await this.rows(
      `SELECT ${[...keys, 'sum(dynamic_j) AS dyn', 'sum(static_j) AS sta', 'sum(low_j) AS lo', 'sum(high_j) AS hi'].join(', ')}${extra} FROM (${src}) WHERE ${where.join(' AND ')}${group}`,
    );
    return rows.map((x) => {
      const o: EnergyRollupRow = { dynamicJoules: num(x.dyn), staticJoules: num(x.sta), lowJoules: num(x.lo), highJoules: num(x.hi) };
      if (by.includes('hour')) o.hour = text(x.hour_start);
      if (by.includes('method')) o.method = text(x.method);
      if (by.includes('tenant')) o.tenant = text(x.tenant);
      if (by.includes('host')) o.host = text(x.host);
      if (by.includes('kind')) o.kind = text(x.kind);
      if (by.includes('source')) o.source = text(x.source);
      if (by.includes('vm_uuid')) {
        o.vmUuid = text(x.vm_uuid);
        o.vmName = text(x.vm_name);
      }
      return o;
    });
  }

  async close(): Promise<void> {
    await this.t.close();
  }
}

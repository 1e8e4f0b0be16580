/**
 * ClickHouse server transport over HTTP (@clickhouse/client). Statements are sent as text with values
 * inlined as escaped literals (no server-side {param:Type} binding, which 18.x lacks), so the same SQL
 * runs on chDB, modern servers and old ones. Network failures and overload are `STORE_UNAVAILABLE`
 * (retriable); anything ClickHouse rejects as a statement is `STORE_QUERY_FAILED`.
 */
import { createClient, ClickHouseError, type ClickHouseClient } from '@clickhouse/client';
import { Readable } from 'node:stream';
import { WattsplitError, silentLogger, type Logger } from '@wattsplit/wire';
import type { ReadGrant } from './read-transport.js';
import { RowBinaryCodecCache, type RowBinaryCodec, type RowProjection } from './row-binary.js';
import { str, type ClickHouseTransport, type PreparedRows, type Settings } from './transport.js';

export interface ClickHouseServerOptions {
  /** http://host:8123 */
  url: string;
  database: string;
  username?: string;
  password?: string;
  requestTimeoutMs?: number;
  /** Where the client's own diagnostics go (it would use console otherwise). */
  logger?: Logger;
  /**
   * Insert format: 'RowBinary' (default; about twice as fast for the server to parse, a third of the
   * bytes) or 'JSONEachRow'. Tables with a column type the RowBinary encoder does not cover are sent as
   * JSONEachRow either way.
   */
  insertFormat?: 'RowBinary' | 'JSONEachRow';
  /** Settings sent with every query and insert (a cluster's CLUSTER_SETTINGS). */
  settings?: Settings;
}

// Server-side conditions that pass: overload, timeouts, network, read-only replica, too many parts.
const TRANSIENT_CODES = new Set(['159', '164', '202', '203', '209', '210', '241', '242', '252', '285', '319', '425', '999']);

export function classifyServerError(e: unknown, what: string): WattsplitError {
  if (e instanceof WattsplitError) return e;
  if (e instanceof ClickHouseError) {
    const transient = TRANSIENT_CODES.has(e.code);
    return new WattsplitError(transient ? 'STORE_UNAVAILABLE' : 'STORE_QUERY_FAILED', e.message, {
      cause: e,
      retriable: transient,
      details: { clickhouseCode: Number(e.code), clickhouseType: e.type, sql: what },
    });
  }
  const err = e instanceof Error ? e : new Error(String(e));
  // Servers before ~19.x answer "Code: 62, e.displayText() = DB::Exception: ...", which the client does not parse.
  const old = /^Code: (\d+), e\.displayText\(\) = (?:DB::Exception: )?([\s\S]*?)(?:, e\.what\(\) = .*)?$/.exec(err.message.trim());
  if (old) {
    const transient = TRANSIENT_CODES.has(old[1]!);
    return new WattsplitError(transient ? 'STORE_UNAVAILABLE' : 'STORE_QUERY_FAILED', `Code: ${old[1]}. ${old[2]!.trim()}`, {
      cause: err,
      retriable: transient,
      details: { clickhouseCode: Number(old[1]), sql: what },
    });
  }
  const errno = (err as NodeJS.ErrnoException).code;
  return new WattsplitError('STORE_UNAVAILABLE', `ClickHouse server unreachable: ${err.message}`, {
    cause: err,
    retriable: true,
    details: { sql: what, ...(errno ? { errno } : {}) },
  });
}

const short = (sql: string) => (sql.length > 200 ? sql.slice(0, 200) + '…' : sql);

interface HttpPreparedRows extends PreparedRows {
  columns: readonly string[];
  body: Buffer;
}

export class HttpTransport implements ClickHouseTransport {
  readonly backend = 'clickhouse-server' as const;
  private readonly client: ClickHouseClient;
  private readonly log: Logger;
  /** RowBinary codecs per table and column list, from system.columns at a table's first insert. */
  private readonly codecs = new RowBinaryCodecCache(
    (table) => this.columnTypes(table),
    (table) => this.log.info({ table }, `${table}: a column type RowBinary does not cover here; inserting JSONEachRow`),
  );

  constructor(private readonly opts: ClickHouseServerOptions) {
    if (!/^https?:\/\/[^/]+/.test(opts.url)) {
      throw new WattsplitError('CONFIG_INVALID', `ClickHouse url=${JSON.stringify(opts.url)} must be http(s)://host:port`, { details: { field: 'url', value: opts.url } });
    }
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(opts.database)) {
      throw new WattsplitError('CONFIG_INVALID', `ClickHouse database=${JSON.stringify(opts.database)} must be an identifier [A-Za-z_][A-Za-z0-9_]*`, { details: { field: 'database', value: opts.database } });
    }
    this.client = this.makeClient(opts.database);
    this.log = (opts.logger ?? silentLogger).child({ component: 'clickhouse-http' });
  }

  private makeClient(database: string | undefined): ClickHouseClient {
    const log = (this.opts.logger ?? silentLogger).child({ component: 'clickhouse-client' });
    class ClientLog {
      trace(): void {}
      debug(p: { message: string; module: string }): void {
        log.debug({ module: p.module }, p.message);
      }
      info(p: { message: string; module: string }): void {
        log.info({ module: p.module }, p.message);
      }
      warn(p: { message: string; module: string; err?: Error }): void {
        log.warn({ module: p.module, err: p.err?.message }, p.message);
      }
      // Errors reach the caller as WattsplitError; the client's own report is only a debug line.
      error(p: { message: string; module: string; err: Error }): void {
        log.debug({ module: p.module, err: p.err.message }, p.message);
      }
    }
    return createClient({
      log: { LoggerClass: ClientLog },
      url: this.opts.url,
      ...(database === undefined ? {} : { database }),
      ...(this.opts.username === undefined ? {} : { username: this.opts.username }),
      ...(this.opts.password === undefined ? {} : { password: this.opts.password }),
      request_timeout: this.opts.requestTimeoutMs ?? 30_000,
      ...(this.opts.settings ? { clickhouse_settings: this.opts.settings } : {}),
    });
  }

  /** CREATE DATABASE IF NOT EXISTS, through a connection that does not name the database yet. */
  async ensureDatabase(): Promise<void> {
    const boot = this.makeClient(undefined);
    const sql = `CREATE DATABASE IF NOT EXISTS ${this.opts.database}`;
    try {
      await boot.command({ query: sql });
    } catch (e) {
      throw classifyServerError(e, sql);
    } finally {
      await boot.close();
    }
  }

  async command(sql: string, settings?: Settings): Promise<void> {
    if (/^\s*(ALTER|CREATE|DROP|RENAME|TRUNCATE)\b/i.test(sql)) this.forgetSchema();
    try {
      await this.client.command({ query: sql, ...(settings ? { clickhouse_settings: settings } : {}) });
    } catch (e) {
      throw classifyServerError(e, short(sql));
    }
  }

  async query(sql: string, format: string): Promise<string> {
    return (await this.queryBytes(sql, format)).toString('utf8');
  }

  async queryBytes(sql: string, format: string): Promise<Buffer> {
    try {
      const r = await this.client.exec({ query: `${sql}\nFORMAT ${format}` });
      const chunks: Buffer[] = [];
      for await (const c of r.stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as string));
      return Buffer.concat(chunks);
    } catch (e) {
      throw classifyServerError(e, short(sql));
    }
  }

  /** A read connection for another thread: the connection options (it opens an HTTP client of its own). */
  shareReads(): Promise<ReadGrant> {
    const { logger: _logger, ...server } = this.opts;
    return Promise.resolve({ handle: { backend: 'clickhouse-server', server }, transfer: [] });
  }

  async insert(table: string, rows: readonly Record<string, unknown>[], settings?: Settings): Promise<void> {
    if (rows.length === 0) return;
    const codec = (this.opts.insertFormat ?? 'RowBinary') === 'RowBinary' ? await this.codecFor(table, Object.keys(rows[0]!)) : undefined;
    if (!codec) {
      try {
        await this.client.insert({ table, values: rows, format: 'JSONEachRow', ...(settings ? { clickhouse_settings: settings } : {}) });
      } catch (e) {
        throw classifyServerError(e, `INSERT INTO ${table}`);
      }
      return;
    }
    const body = codec.encode(rows); // throws STORE_INVALID_INPUT naming the row, column and value
    const prepared: HttpPreparedRows = { table, rows: rows.length, columns: codec.columns, body };
    await this.insertPrepared(prepared, settings);
  }

  async prepareRows<T>(table: string, items: readonly T[], p: RowProjection<T>): Promise<PreparedRows | undefined> {
    if ((this.opts.insertFormat ?? 'RowBinary') !== 'RowBinary') return undefined;
    const codec = await this.codecFor(table, [...p.columns]);
    if (!codec) return undefined;
    const prepared: HttpPreparedRows = { table, rows: items.length, columns: codec.columns, body: codec.encodeProjected(items, p) };
    return prepared;
  }

  async insertPrepared(prepared: PreparedRows, settings?: Settings): Promise<void> {
    const { table, columns, body } = prepared as HttpPreparedRows;
    if (prepared.rows === 0) return;
    const query = `INSERT INTO ${table} (${columns.map((c) => `\`${c}\``).join(', ')}) FORMAT RowBinary`;
    try {
      const r = await this.client.exec({ query, values: Readable.from([body]), ...(settings ? { clickhouse_settings: settings } : {}) });
      r.stream.resume();
      await new Promise<void>((resolve, reject) => {
        r.stream.once('end', resolve);
        r.stream.once('error', reject);
      });
    } catch (e) {
      throw classifyServerError(e, `INSERT INTO ${table} FORMAT RowBinary`);
    }
  }

  /** The RowBinary codec for these columns of `table`, or undefined (send JSONEachRow). */
  private async codecFor(table: string, columns: string[]): Promise<RowBinaryCodec | undefined> {
    return (await this.codecs.get(table, columns))?.codec;
  }

  private async columnTypes(table: string): Promise<Map<string, string>> {
    const text = await this.query(`SELECT name, type FROM system.columns WHERE database = ${str(this.opts.database)} AND table = ${str(table)}`, 'JSONEachRow');
    const m = new Map<string, string>();
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      const r = JSON.parse(line) as { name: string; type: string };
      m.set(r.name, r.type);
    }
    if (m.size === 0) throw new WattsplitError('STORE_QUERY_FAILED', `table ${this.opts.database}.${table} has no columns (does it exist?)`, { details: { table } });
    return m;
  }

  /** Forget cached column types (after DDL that changes a table). */
  forgetSchema(): void {
    this.codecs.clear();
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

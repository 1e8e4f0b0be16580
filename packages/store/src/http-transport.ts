/**
 * ClickHouse server transport over HTTP (@clickhouse/client). Statements are sent as text with values
 * inlined as escaped literals (no server-side {param:Type} binding, which 18.x lacks), so the same SQL
 * runs on chDB, modern servers and old ones. Network failures and overload are `STORE_UNAVAILABLE`
 * (retriable); anything ClickHouse rejects as a statement is `STORE_QUERY_FAILED`.
 */
import { createClient, ClickHouseError, type ClickHouseClient } from '@clickhouse/client';
import { WattsplitError, silentLogger, type Logger } from '@wattsplit/wire';
import type { ClickHouseTransport, Settings } from './transport.js';

export interface ClickHouseServerOptions {
  /** http://host:8123 */
  url: string;
  database: string;
  username?: string;
  password?: string;
  requestTimeoutMs?: number;
  /** Where the client's own diagnostics go (it would use console otherwise). */
  logger?: Logger;
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

export class HttpTransport implements ClickHouseTransport {
  readonly backend = 'clickhouse-server' as const;
  private readonly client: ClickHouseClient;

  constructor(private readonly opts: ClickHouseServerOptions) {
    if (!/^https?:\/\/[^/]+/.test(opts.url)) {
      throw new WattsplitError('CONFIG_INVALID', `ClickHouse url=${JSON.stringify(opts.url)} must be http(s)://host:port`, { details: { field: 'url', value: opts.url } });
    }
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(opts.database)) {
      throw new WattsplitError('CONFIG_INVALID', `ClickHouse database=${JSON.stringify(opts.database)} must be an identifier [A-Za-z_][A-Za-z0-9_]*`, { details: { field: 'database', value: opts.database } });
    }
    this.client = this.makeClient(opts.database);
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
    try {
      await this.client.command({ query: sql, ...(settings ? { clickhouse_settings: settings } : {}) });
    } catch (e) {
      throw classifyServerError(e, short(sql));
    }
  }

  async query(sql: string, format: string): Promise<string> {
    try {
      const r = await this.client.exec({ query: `${sql}\nFORMAT ${format}` });
      const chunks: Buffer[] = [];
      for await (const c of r.stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as string));
      return Buffer.concat(chunks).toString('utf8');
    } catch (e) {
      throw classifyServerError(e, short(sql));
    }
  }

  async insert(table: string, rows: readonly Record<string, unknown>[], settings?: Settings): Promise<void> {
    if (rows.length === 0) return;
    try {
      await this.client.insert({ table, values: rows, format: 'JSONEachRow', ...(settings ? { clickhouse_settings: settings } : {}) });
    } catch (e) {
      throw classifyServerError(e, `INSERT INTO ${table}`);
    }
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

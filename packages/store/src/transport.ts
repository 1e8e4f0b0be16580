import { WattsplitError } from '@wattsplit/wire';
import type { ReadGrant } from './read-transport.js';
import type { RowProjection } from './row-binary.js';

/**
 * The one I/O seam of the store: run a statement, run a query for text or bytes, insert rows.
 * Implementations: the chDB worker (embedded) and @clickhouse/client over HTTP (server). They throw
 * WattsplitError: STORE_QUERY_FAILED (not retriable: the statement is wrong) or STORE_UNAVAILABLE
 * (retriable: the engine or server is not reachable right now).
 */
export type Settings = Record<string, string | number>;

/** One table's rows encoded by `prepareRows`, ready for `insertPrepared` (opaque to the caller). */
export interface PreparedRows {
  readonly table: string;
  readonly rows: number;
}

export interface ClickHouseTransport {
  readonly backend: 'chdb' | 'clickhouse-server';
  /** DDL or any statement whose output is not needed. */
  command(sql: string, settings?: Settings): Promise<void>;
  /** A SELECT; `format` is appended as the FORMAT clause by the transport. */
  query(sql: string, format: string): Promise<string>;
  /**
   * A SELECT whose answer is binary (RowBinary): the bytes as the engine wrote them. A bulk read
   * (history-read.ts) decodes these instead of parsing text.
   */
  queryBytes(sql: string, format: string): Promise<Uint8Array>;
  /** A read connection for another thread (read-transport.ts), where the transport can give one. */
  shareReads?(): Promise<ReadGrant>;
  /** INSERT INTO `table` FORMAT JSONEachRow with these rows. */
  insert(table: string, rows: readonly Record<string, unknown>[], settings?: Settings): Promise<void>;
  /**
   * The items' rows as `p` projects them, encoded for an insert into `table` without a row object per
   * item (row-binary.ts); undefined when this transport does not insert that table as RowBinary (then
   * `insert` the items' `p.row`). Throws STORE_INVALID_INPUT naming the field, before anything is sent.
   */
  prepareRows?<T>(table: string, items: readonly T[], p: RowProjection<T>): Promise<PreparedRows | undefined>;
  /** Sends rows from prepareRows. */
  insertPrepared?(rows: PreparedRows, settings?: Settings): Promise<void>;
  close(): Promise<void>;
}

/** What a ClickHouse version supports among the features the schema uses. */
export interface Capabilities {
  version: string;
  codecs: boolean;               // CODEC(...) column clauses, 19.1+
  ttl: boolean;                  // table TTL, 19.6+
  lowCardinality: boolean;       // LowCardinality(String) without an experimental flag, 19.1+
  nonReplicatedDedup: boolean;   // non_replicated_deduplication_window, 20.10+ (verified on 22.x)
  dedupToken: boolean;           // insert_deduplication_token, 22.2+
}

export function capabilitiesOf(version: string): Capabilities {
  const m = /^(\d+)\.(\d+)/.exec(version.trim().replace(/^"|"$/g, ''));
  const major = m ? Number(m[1]) : 0;
  const minor = m ? Number(m[2]) : 0;
  const atLeast = (a: number, b: number) => major > a || (major === a && minor >= b);
  return {
    version,
    codecs: atLeast(19, 1),
    ttl: atLeast(19, 6),
    lowCardinality: atLeast(19, 1),
    nonReplicatedDedup: atLeast(20, 10),
    dedupToken: atLeast(22, 2),
  };
}

/** A ClickHouse string literal. */
export function str(s: string): string {
  return "'" + s.replace(/\\/g, '\\\\').replace(/'/g, "\\'") + "'";
}

/** An Int64 literal from a JS number (ns timestamps exceed 2^53: round, no exponent). */
export function int(n: number, field: string): string {
  if (!Number.isFinite(n)) throw new WattsplitError('STORE_INVALID_INPUT', `${field}=${String(n)} is not a finite number`, { details: { field, value: String(n) } });
  return BigInt(Math.round(n)).toString();
}

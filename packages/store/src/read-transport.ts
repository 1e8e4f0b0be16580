/**
 * Reads from another thread. A store hands out a ReadGrant (`Store.shareReads`): a handle that can be
 * posted to a worker thread (structured clone, with `transfer` as the transfer list), which opens its
 * own read connection from it with `openReadTransport`. The collector's training worker reads a class's
 * history that way, so the read and its decoding never run on the collector's event loop.
 * - chDB: a MessagePort to the store's chDB worker, answered by its reader Session (chdb-worker.ts;
 *   a Session may not live in another thread).
 * - ClickHouse server: the connection options; the worker opens an HTTP client of its own.
 */
import type { MessagePort, TransferListItem } from 'node:worker_threads';
import { WattsplitError, silentLogger, type Logger } from '@wattsplit/wire';
import type { ChdbReadRequest, ChdbResponse } from './chdb-worker.js';
import { HttpTransport, type ClickHouseServerOptions } from './http-transport.js';
import type { ClickHouseTransport } from './transport.js';

/** What a worker thread needs to read: query for text or bytes, then close. */
export type ReadTransport = Pick<ClickHouseTransport, 'backend' | 'query' | 'queryBytes' | 'close'>;

export type ReadHandle =
  | { backend: 'chdb'; port: MessagePort }
  | { backend: 'clickhouse-server'; server: Omit<ClickHouseServerOptions, 'logger'> };

export interface ReadGrant {
  handle: ReadHandle;
  /** Post `handle` with these in the transfer list (the chDB port moves to the reading thread). */
  transfer: TransferListItem[];
}

/** Opens a read connection from a handle received from another thread. */
export function openReadTransport(h: ReadHandle, logger: Logger = silentLogger): ReadTransport {
  return h.backend === 'chdb' ? new PortReadTransport(h.port) : new HttpTransport({ ...h.server, logger });
}

/** Reads through a port to the chDB worker's reader Session. */
class PortReadTransport implements ReadTransport {
  readonly backend = 'chdb' as const;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: string | Uint8Array) => void; reject: (e: WattsplitError) => void; what: string }>();
  private closed = false;

  constructor(private readonly port: MessagePort) {
    port.on('message', (m: ChdbResponse) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve('bytes' in m ? m.bytes : m.text);
      else if (m.closed) p.reject(new WattsplitError('STORE_UNAVAILABLE', `${p.what}: ${m.message}`, { retriable: true }));
      else p.reject(new WattsplitError('STORE_QUERY_FAILED', m.message, { details: { clickhouseCode: m.clickhouseCode, sql: p.what } }));
    });
    port.on('close', () => this.failAll('the chDB store was closed'));
  }

  private failAll(why: string): void {
    this.closed = true;
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(new WattsplitError('STORE_UNAVAILABLE', `${p.what}: ${why}`, { retriable: true }));
    }
  }

  private send(sql: string, format: string, bytes: boolean): Promise<string | Uint8Array> {
    if (this.closed) return Promise.reject(new WattsplitError('STORE_UNAVAILABLE', 'chDB read connection is closed', { retriable: true }));
    const id = this.nextId++;
    const what = sql.length > 200 ? sql.slice(0, 200) + '…' : sql;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, what });
      this.port.postMessage({ id, sql, format, ...(bytes ? { bytes } : {}) } satisfies ChdbReadRequest);
    });
  }

  async query(sql: string, format: string): Promise<string> {
    const r = await this.send(sql, format, false);
    return typeof r === 'string' ? r : Buffer.from(r).toString('utf8');
  }

  async queryBytes(sql: string, format: string): Promise<Uint8Array> {
    const r = await this.send(sql, format, true);
    return typeof r === 'string' ? Buffer.from(r, 'utf8') : r;
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.port.close();
      this.failAll('chDB read connection closed');
    }
    return Promise.resolve();
  }
}

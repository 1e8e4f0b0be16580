/**
 * Reads from another thread. A store hands out a ReadGrant (`Store.shareReads`): a handle that can be
 * posted to a worker thread (structured clone, with `transfer` as the transfer list), which opens its
 * own read connection from it with `openReadTransport`. The collector's training worker reads a class's
 * history that way, so the read and its decoding never run on the collector's event loop.
 * - chDB: a MessagePort to the store's chDB worker, answered by its reader Session (chdb-worker.ts;
 *   a Session may not live in another thread).
 * - ClickHouse server: the connection options; the worker opens an HTTP client of its own.
 *
 * `background: true` (what training asks for) makes the connection's reads yield to everything else the
 * engine runs (the collector's writes): one query thread each (`max_threads = 1`), and on chDB, whose
 * query threads are this process's threads, `os_thread_priority = 19` (the engine renices each thread
 * while it works for the query and sets it back to 0 after) where this process may set a thread's nice
 * value back down (CAP_SYS_NICE): without it the engine's pooled threads would stay at 19 after a read
 * and slow the writes that reuse them, so it is left out. ClickHouse 18.16 has no os_thread_priority;
 * a server's threads are the server's to schedule.
 */
import { readFileSync } from 'node:fs';
import type { MessagePort, TransferListItem } from 'node:worker_threads';
import { WattsplitError, silentLogger, type Logger } from '@wattsplit/wire';
import type { ChdbReadRequest, ChdbResponse } from './chdb-worker.js';
import { HttpTransport, type ClickHouseServerOptions } from './http-transport.js';
import { settingsClause } from './chdb-transport.js';
import type { ClickHouseTransport, Settings } from './transport.js';

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

export interface ReadTransportOptions {
  logger?: Logger;
  /** Reads yield to the engine's other work (see the header): for training. */
  background?: boolean;
}

/** Opens a read connection from a handle received from another thread. */
export function openReadTransport(h: ReadHandle, opts: ReadTransportOptions = {}): ReadTransport {
  const settings = opts.background ? backgroundReadSettings(h.backend) : {};
  if (h.backend === 'chdb') return new PortReadTransport(h.port, settingsClause(settings));
  return new HttpTransport({ ...h.server, ...(opts.background ? { settings: { ...h.server.settings, ...settings } } : {}), logger: opts.logger ?? silentLogger });
}

/** The settings of a background read on `backend` (see the header). */
export function backgroundReadSettings(backend: ReadHandle['backend'], canRenice: () => boolean = hasCapSysNice): Settings {
  return backend === 'chdb' && canRenice() ? { max_threads: 1, os_thread_priority: 19 } : { max_threads: 1 };
}

/** CAP_SYS_NICE (bit 23) in this process's effective capabilities (/proc/self/status CapEff); false where unknown. */
export function hasCapSysNice(status: () => string = () => readFileSync('/proc/self/status', 'utf8')): boolean {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status());
    return m ? (BigInt(`0x${m[1]}`) & (1n << 23n)) !== 0n : false;
  } catch {
    return false;
  }
}

/** Reads through a port to the chDB worker's reader Session. */
class PortReadTransport implements ReadTransport {
  readonly backend = 'chdb' as const;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: string | Uint8Array) => void; reject: (e: WattsplitError) => void; what: string }>();
  private closed = false;

  /** `settings`: a SETTINGS clause appended to every query ('' for none). */
  constructor(
    private readonly port: MessagePort,
    private readonly settings = '',
  ) {
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
      this.port.postMessage({ id, sql: `${sql}${this.settings}`, format, ...(bytes ? { bytes } : {}) } satisfies ChdbReadRequest);
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

/**
 * chDB (embedded ClickHouse) transport: a worker thread owns the Sessions (see chdb-worker.ts); this
 * side queues requests by id. Statements, text queries and inserts run one at a time in the worker, in
 * submission order; binary reads (queryBytes) run beside them on the worker's reader Session.
 */
import { MessageChannel, Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { WattsplitError, silentLogger, type Logger } from '@wattsplit/wire';
import type { ChdbRequest, ChdbResponse } from './chdb-worker.js';
import { chdbDirHolder, describeHolder } from './chdb-dir-lock.js';
import type { ReadGrant } from './read-transport.js';
import type { ClickHouseTransport, Settings } from './transport.js';
import { str } from './transport.js';

interface Pending {
  resolve: (answer: string | Uint8Array) => void;
  reject: (e: WattsplitError) => void;
  what: string;
}

export function settingsClause(settings: Settings | undefined): string {
  const entries = Object.entries(settings ?? {});
  if (entries.length === 0) return '';
  return ' SETTINGS ' + entries.map(([k, v]) => {
    if (!/^[a-z_][a-z0-9_]*$/.test(k)) throw new WattsplitError('STORE_INVALID_INPUT', `setting name ${JSON.stringify(k)} is not a ClickHouse setting name`, { details: { setting: k } });
    return `${k} = ${typeof v === 'number' ? String(v) : str(v)}`;
  }).join(', ');
}

export class ChdbTransport implements ClickHouseTransport {
  readonly backend = 'chdb' as const;
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private ready: Promise<void> | undefined;
  private exited = false;

  constructor(
    readonly dataDir: string,
    private readonly log: Logger = silentLogger,
  ) {}

  /**
   * Starts the worker and opens the Session; throws STORE_UNAVAILABLE when the engine cannot open the
   * directory, naming the process that holds it when another one does (chDB allows one process per
   * directory). A failed open ends the worker: nothing is left running to keep the process alive.
   */
  open(): Promise<void> {
    if (this.ready) return this.ready;
    const dir = resolve(this.dataDir);
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      return Promise.reject(new WattsplitError('CONFIG_INVALID', `chDB dataDir ${dir}: ${(e as Error).message}`, { cause: e, details: { dataDir: dir } }));
    }
    const held = this.heldError(dir);
    if (held) return Promise.reject(held);
    // Load the native addon in this thread too, without opening anything: otherwise the worker's exit
    // unloads libchdb and its static destructors crash the process (SIGSEGV, chdb 3.4 / libchdb 26.7).
    createRequire(import.meta.url)('chdb');
    const w = new Worker(new URL('./chdb-worker.js', import.meta.url), { workerData: { dataDir: dir } });
    this.worker = w;
    const opened = new Promise<void>((res, rej) => {
      this.pending.set(0, {
        resolve: () => res(),
        reject: (e) => rej(this.heldError(dir) ?? new WattsplitError('STORE_UNAVAILABLE', `chDB could not open ${dir}: ${e.message}`, { cause: e, details: { dataDir: dir } })),
        what: 'open',
      });
    });
    this.ready = opened.catch(async (e: unknown) => {
      await this.endWorker(w);
      throw e;
    });
    w.on('message', (m: ChdbResponse) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve('bytes' in m ? m.bytes : m.text);
      else if (m.closed) p.reject(new WattsplitError('STORE_UNAVAILABLE', `${p.what}: ${m.message}`, { retriable: true }));
      else p.reject(new WattsplitError('STORE_QUERY_FAILED', m.message, { details: { clickhouseCode: m.clickhouseCode, sql: p.what } }));
    });
    w.on('error', (e) => {
      this.log.error({ err: e.message }, 'chDB worker failed');
      this.failAll(`chDB worker failed: ${e.message}`);
    });
    w.on('exit', (code) => {
      this.exited = true;
      this.failAll(`chDB worker exited (code ${code})`);
    });
    return this.ready;
  }

  /** STORE_UNAVAILABLE naming the holder when another process has `dir` open, else undefined. */
  private heldError(dir: string): WattsplitError | undefined {
    const h = chdbDirHolder(dir);
    if (!h) return undefined;
    return new WattsplitError('STORE_UNAVAILABLE', `chDB data directory ${dir} is in use by ${describeHolder(h)}; the embedded store can be open in one process at a time: stop that process, or ask it instead`, {
      retriable: true,
      details: { dataDir: dir, holderPid: h.pid },
    });
  }

  /** Asks the worker to end (it has no Session to close after a failed open) and waits for its exit. */
  private async endWorker(w: Worker): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((r) => w.once('exit', () => r()));
    w.postMessage({ id: this.nextId++, close: true } satisfies ChdbRequest);
    await exited;
  }

  private failAll(why: string): void {
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(new WattsplitError('STORE_UNAVAILABLE', `${p.what}: ${why}`, { retriable: true }));
    }
  }

  private async send(req: Omit<ChdbRequest, 'id'> & { sql: string }): Promise<string | Uint8Array> {
    await this.open();
    const w = this.worker;
    if (!w || this.exited) throw new WattsplitError('STORE_UNAVAILABLE', 'chDB store is closed', { retriable: true });
    const id = this.nextId++;
    const what = req.sql.length > 200 ? req.sql.slice(0, 200) + '…' : req.sql;
    return new Promise<string | Uint8Array>((resolvePromise, reject) => {
      this.pending.set(id, { resolve: resolvePromise, reject, what });
      w.postMessage({ id, ...req } satisfies ChdbRequest);
    });
  }

  private async call(sql: string, format: string, rows?: unknown[][]): Promise<string> {
    const r = await this.send(rows ? { sql, format, rows } : { sql, format });
    return typeof r === 'string' ? r : Buffer.from(r).toString('utf8');
  }

  async queryBytes(sql: string, format: string): Promise<Uint8Array> {
    const r = await this.send({ sql, format, bytes: true });
    return typeof r === 'string' ? Buffer.from(r, 'utf8') : r;
  }

  /**
   * A read connection for another thread: a MessagePort to the worker's reader Session (see
   * chdb-worker.ts), to be transferred to that thread and opened there with openReadTransport.
   */
  async shareReads(): Promise<ReadGrant> {
    await this.open();
    const w = this.worker;
    if (!w || this.exited) throw new WattsplitError('STORE_UNAVAILABLE', 'chDB store is closed', { retriable: true });
    const { port1, port2 } = new MessageChannel();
    w.postMessage({ id: this.nextId++, attach: port2 } satisfies ChdbRequest, [port2]);
    return { handle: { backend: 'chdb', port: port1 }, transfer: [port1] };
  }

  async command(sql: string, settings?: Settings): Promise<void> {
    const s = settingsClause(settings);
    await this.call(s ? `${sql}${s}` : sql, 'CSV');
  }

  query(sql: string, format: string): Promise<string> {
    return this.call(sql, format);
  }

  async insert(table: string, rows: readonly Record<string, unknown>[], settings?: Settings): Promise<void> {
    if (rows.length === 0) return;
    // Positional rows with an explicit column list (about half the bytes of JSONEachRow); the worker
    // serialises them, off the collector's event loop.
    const cols = Object.keys(rows[0]!);
    const positional = rows.map((r) => cols.map((c) => r[c]));
    await this.call(`INSERT INTO ${table} (${cols.map((c) => `\`${c}\``).join(', ')})${settingsClause(settings)} FORMAT JSONCompactEachRow`, 'CSV', positional);
  }

  async close(): Promise<void> {
    const w = this.worker;
    if (!w || this.exited) return;
    try {
      await this.ready;
    } catch {
      return; // the open failed and that already ended the worker
    }
    if (this.exited) return;
    const exited = new Promise<void>((r) => w.once('exit', () => r()));
    const id = this.nextId++;
    // Closing the Session before the thread ends matters: terminating a worker that holds one crashes the process.
    const closed = new Promise<void>((res, rej) => this.pending.set(id, { resolve: () => res(), reject: rej, what: 'close' }));
    w.postMessage({ id, close: true } satisfies ChdbRequest);
    await closed.catch(() => undefined);
    await exited;
  }
}

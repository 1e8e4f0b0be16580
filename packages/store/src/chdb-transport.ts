/**
 * chDB (embedded ClickHouse) transport: a worker thread owns the Sessions (see chdb-worker.ts); this
 * side queues requests by id. Statements, text queries and inserts run one at a time in the worker, in
 * submission order; binary reads (queryBytes) run beside them on the worker's reader Session. Inserts are
 * encoded here as RowBinary and handed over as a transferred buffer (see insert()).
 */
import { MessageChannel, Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { WattsplitError, silentLogger, type Logger } from '@wattsplit/wire';
import type { ChdbRequest, ChdbResponse } from './chdb-worker.js';
import { chdbDirHolder, describeHolder } from './chdb-dir-lock.js';
import type { ReadGrant } from './read-transport.js';
import { RowBinaryCodecCache, type RowBinaryCodec, type RowProjection } from './row-binary.js';
import type { ClickHouseTransport, PreparedRows, Settings } from './transport.js';
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

/**
 * Settings the embedded backend adds to every insert; the server path sends none of them (Debian's 18.16
 * knows neither these names nor the work they turn off), so the SQL and the stored rows stay the same.
 * - `optimize_on_insert = 0`: the engine no longer runs a ReplacingMergeTree/SummingMergeTree merge over
 *   each inserted block before writing its part (the collector's blocks have no two rows with one key: a
 *   batch holds a host interval once, and the rollup views group by the whole sorting key). That pass was
 *   ≈ 2 µs of engine CPU per VM-sample (system.events MergeTreeDataWriterMergingBlocksMicroseconds, issue 15
 *   ninth pass). Rows with one key inserted together stay apart until a background merge, as on the server:
 *   reads that must be exact use FINAL or sum() … GROUP BY either way.
 */
export const EMBEDDED_INSERT_SETTINGS: Readonly<Settings> = { optimize_on_insert: 0 };

/** The insert's own settings (the dedup token) after the embedded ones; its own win on a clash. */
const insertSettings = (settings: Settings | undefined): Settings => ({ ...EMBEDDED_INSERT_SETTINGS, ...settings });

interface ChdbPreparedRows extends PreparedRows {
  columns: readonly string[];
  /** The file() structure of the columns. */
  structure: string;
  body: Buffer;
}

export class ChdbTransport implements ClickHouseTransport {
  readonly backend = 'chdb' as const;
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private ready: Promise<void> | undefined;
  private exited = false;
  /** RowBinary codecs per table and column list, from system.columns at a table's first insert. */
  private readonly codecs = new RowBinaryCodecCache(
    (table) => this.columnTypes(table),
    (table) => this.log.info({ table }, `${table}: a column type RowBinary does not cover here; inserting JSONCompactEachRow`),
  );

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

  private async send(req: Omit<ChdbRequest, 'id'> & { sql: string }, transfer?: ArrayBuffer[]): Promise<string | Uint8Array> {
    await this.open();
    const w = this.worker;
    if (!w || this.exited) throw new WattsplitError('STORE_UNAVAILABLE', 'chDB store is closed', { retriable: true });
    const id = this.nextId++;
    const what = req.sql.length > 200 ? req.sql.slice(0, 200) + '…' : req.sql;
    return new Promise<string | Uint8Array>((resolvePromise, reject) => {
      this.pending.set(id, { resolve: resolvePromise, reject, what });
      w.postMessage({ id, ...req } satisfies ChdbRequest, transfer ?? []);
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
    // A statement may change a table (migrations): column types are read again at the next insert.
    this.codecs.clear();
    const s = settingsClause(settings);
    await this.call(s ? `${sql}${s}` : sql, 'CSV');
  }

  query(sql: string, format: string): Promise<string> {
    return this.call(sql, format);
  }

  /**
   * Inserts as RowBinary when every column's type is covered (row-binary.ts; the store's tables are): the
   * rows are encoded here into one buffer, which is handed to the worker without a copy (transferred),
   * and the engine reads it with the file() table function (chDB's query() takes text, and text formats
   * cost the worker a JSON string per row plus the engine's parse: they were most of an insert).
   * Otherwise positional rows with an explicit column list (JSONCompactEachRow), serialised in the worker.
   * Either way the insert carries EMBEDDED_INSERT_SETTINGS besides its own settings.
   */
  async insert(table: string, rows: readonly Record<string, unknown>[], settings?: Settings): Promise<void> {
    if (rows.length === 0) return;
    const cols = Object.keys(rows[0]!);
    const colList = `(${cols.map((c) => `\`${c}\``).join(', ')})`;
    const binary = await this.codecFor(table, cols);
    if (binary) {
      const body = binary.codec.encode(rows); // throws STORE_INVALID_INPUT naming the row, column and value
      const prepared: ChdbPreparedRows = { table, rows: rows.length, columns: cols, structure: binary.structure, body };
      await this.insertPrepared(prepared, settings);
      return;
    }
    // Positional rows with an explicit column list (about half the bytes of JSONEachRow); the worker
    // serialises them, off the collector's event loop.
    const positional = rows.map((r) => cols.map((c) => r[c]));
    await this.call(`INSERT INTO ${table} ${colList}${settingsClause(insertSettings(settings))} FORMAT JSONCompactEachRow`, 'CSV', positional);
  }

  async prepareRows<T>(table: string, items: readonly T[], p: RowProjection<T>): Promise<PreparedRows | undefined> {
    const binary = await this.codecFor(table, [...p.columns]);
    if (!binary) return undefined;
    const prepared: ChdbPreparedRows = { table, rows: items.length, columns: p.columns, structure: binary.structure, body: binary.codec.encodeProjected(items, p) };
    return prepared;
  }

  async insertPrepared(prepared: PreparedRows, settings?: Settings): Promise<void> {
    const { table, columns, structure, body } = prepared as ChdbPreparedRows;
    if (prepared.rows === 0) return;
    // The writer's buffer is its own (never pooled: ≥ 64 KiB); a view into a shared one is copied first.
    const own = body.byteOffset === 0 && body.buffer.byteLength >= 4096 ? body : Buffer.from(body);
    const head = `INSERT INTO ${table} (${columns.map((c) => `\`${c}\``).join(', ')})${settingsClause(insertSettings(settings))}`;
    await this.send({ sql: head, rowBinary: { bytes: new Uint8Array(own.buffer, 0, own.byteLength), structure } }, [own.buffer as ArrayBuffer]);
  }

  /** The RowBinary codec for these columns of `table` and the file() structure, or undefined (insert as JSON). */
  private async codecFor(table: string, columns: string[]): Promise<{ codec: RowBinaryCodec; structure: string } | undefined> {
    const c = await this.codecs.get(table, columns);
    return c && { codec: c.codec, structure: columns.map((col) => `\`${col}\` ${c.types.get(col)!}`).join(', ') };
  }

  private async columnTypes(table: string): Promise<Map<string, string>> {
    const text = await this.call(`SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = ${str(table)}`, 'JSONEachRow');
    const m = new Map<string, string>();
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      const r = JSON.parse(line) as { name: string; type: string };
      m.set(r.name, r.type);
    }
    return m;
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

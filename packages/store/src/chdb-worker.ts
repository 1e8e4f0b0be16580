/**
 * Worker thread that owns the chDB Sessions of the process. chDB's synchronous calls block their thread
 * for the whole query, so they run here and the collector's event loop stays free.
 *
 * Two connections to the one data directory (chDB binds one directory per process, and allows several
 * connections to it, which run in parallel):
 * - the writer Session: statements, text queries and inserts, synchronously, one at a time in
 *   submission order (what the collector's writes rely on);
 * - the reader Session, opened at the first bulk read: binary answers (RowBinary) through its async
 *   query, which runs on a libuv thread, so a long read (a training's history) neither waits for nor
 *   holds up the writes. Its bytes are handed over as a transferred ArrayBuffer, not copied.
 * Other threads (the collector's training worker) can be given a MessagePort of their own to the reader
 * (`attach`): their reads then never pass through the collector's main thread.
 * Every Session stays in this thread: a second worker thread with a Session of its own crashed the
 * process when that thread ended (chdb 3.4 / libchdb 26.7: the next query on the first Session hung or
 * segfaulted), so other threads read through a port to this one instead.
 *
 * Protocol (structured clone), on the parent port: in {id, sql, format} | {id, sql, rowBinary} |
 * {id, sql, rows} | {id, sql, format, bytes: true} | {id, attach: MessagePort} | {id, close: true}; out
 * {id, ok, text|bytes} or {id, ok: false, message}. On an attached port: {id, sql, format, bytes?} in,
 * the same answers out.
 * With `rowBinary` (the store's inserts), `sql` is `INSERT INTO t (cols) [SETTINGS …]` and the bytes (a
 * transferred buffer, not copied) are RowBinary rows of those columns: the worker writes them to its insert
 * file and runs `… SELECT * FROM file(<that file>, 'RowBinary', <structure>)`; chDB's query() takes text
 * only, and a text format cost the worker a JSON string per row and the engine a JSON parse. The file is
 * written and read within one synchronous statement on this thread, so one file serves every insert.
 * With `rows` (a table whose column types RowBinary does not cover), `sql` is an INSERT header ending in
 * FORMAT JSONCompactEachRow and the worker serialises the rows (positional arrays) itself.
 * The engine binds one data directory per process: only one of these workers may be open at a time.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { Session } from 'chdb';

export interface ChdbRequest {
  id: number;
  sql?: string;
  format?: string;
  /** Rows of an INSERT, each a positional array in the column order of `sql`. */
  rows?: unknown[][];
  /**
   * Rows of an INSERT as RowBinary (`sql` is `INSERT INTO t (cols) [SETTINGS …]`, `structure` the file()
   * structure of those columns): written to the worker's insert file, read by the engine with file().
   */
  rowBinary?: { bytes: Uint8Array; structure: string };
  /** Answer with the engine's bytes (binary formats), read on the reader Session. */
  bytes?: boolean;
  /** A port on which another thread sends reads (ChdbReadRequest) to the reader Session. */
  attach?: MessagePort;
  close?: boolean;
}

/** A read sent on an attached port. */
export interface ChdbReadRequest {
  id: number;
  sql: string;
  format: string;
  bytes?: boolean;
}

export type ChdbResponse =
  | { id: number; ok: true; text: string }
  | { id: number; ok: true; bytes: Uint8Array }
  | { id: number; ok: false; message: string; clickhouseCode: number | undefined; closed?: boolean };

const port = parentPort;
if (!port) throw new Error('chdb-worker must run as a worker thread');
const { dataDir } = workerData as { dataDir: string };

let session: Session | undefined;
let reader: Session | undefined;
let closing = false;
const inFlight = new Set<Promise<unknown>>();
const attached = new Set<MessagePort>();

try {
  session = new Session(dataDir);
  port.postMessage({ id: 0, ok: true, text: 'ready' } satisfies ChdbResponse);
} catch (e) {
  port.postMessage({ id: 0, ok: false, message: (e as Error).message, clickhouseCode: undefined } satisfies ChdbResponse);
}

/** The file RowBinary inserts go through (one at a time: the writer Session runs one statement at a time). */
let insertDir: string | undefined;
function insertFile(bytes: Uint8Array): string {
  insertDir ??= mkdtempSync(join(tmpdir(), 'wattsplit-chdb-insert-'));
  const path = join(insertDir, 'rows.bin');
  writeFileSync(path, bytes);
  return path;
}
const lit = (s: string) => "'" + s.replace(/\\/g, '\\\\').replace(/'/g, "\\'") + "'";

function failure(id: number, e: unknown): ChdbResponse {
  const err = e as Error & { clickhouseCode?: number };
  const code = err.clickhouseCode ?? Number(/Code: (\d+)\./.exec(err.message)?.[1] ?? NaN);
  return { id, ok: false, message: err.message.replace(/^Query failed: /, ''), clickhouseCode: Number.isNaN(code) ? undefined : code };
}

const closedAnswer = (id: number): ChdbResponse => ({ id, ok: false, message: 'chDB session is closed', clickhouseCode: undefined, closed: true });

/** Posts an answer, transferring the bytes' buffer when it can be (else they are copied). */
function answer(to: MessagePort, r: ChdbResponse): void {
  if (r.ok && 'bytes' in r) {
    const b = r.bytes;
    if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength) {
      try {
        to.postMessage(r, [b.buffer as ArrayBuffer]);
        return;
      } catch {
        // not transferable (external memory): copied below
      }
    }
    const copy = new Uint8Array(b);
    to.postMessage({ id: r.id, ok: true, bytes: copy } satisfies ChdbResponse, [copy.buffer]);
    return;
  }
  to.postMessage(r);
}

/** A read on the reader Session (async: a libuv thread runs it while this thread goes on). */
function read(to: MessagePort, m: ChdbReadRequest): void {
  if (closing || !session) {
    to.postMessage(closedAnswer(m.id));
    return;
  }
  let p: Promise<void>;
  try {
    reader ??= new Session(dataDir);
    p = reader.queryAsync(m.sql, { format: m.format }).then(
      (r) => answer(to, m.bytes ? { id: m.id, ok: true, bytes: r.bytes() } : { id: m.id, ok: true, text: r.text() }),
      (e: unknown) => to.postMessage(failure(m.id, e)),
    );
  } catch (e) {
    to.postMessage(failure(m.id, e));
    return;
  }
  inFlight.add(p);
  void p.finally(() => inFlight.delete(p));
}

async function close(id: number): Promise<void> {
  closing = true;
  for (const a of attached) a.close();
  attached.clear();
  // A Session closed under a running async query defers its teardown; wait for the reads first.
  await Promise.allSettled([...inFlight]);
  reader?.close();
  reader = undefined;
  session?.close();
  session = undefined;
  if (insertDir) rmSync(insertDir, { recursive: true, force: true });
  port!.postMessage({ id, ok: true, text: 'closed' } satisfies ChdbResponse);
  port!.close();
}

port.on('message', (m: ChdbRequest) => {
  if (m.close) {
    void close(m.id);
    return;
  }
  if (m.attach) {
    const p = m.attach;
    if (closing || !session) {
      p.close();
      return;
    }
    attached.add(p);
    p.on('message', (r: ChdbReadRequest) => read(p, r));
    p.on('close', () => attached.delete(p));
    return;
  }
  if (closing || !session) {
    port.postMessage(closedAnswer(m.id));
    return;
  }
  if (m.bytes) {
    read(port, { id: m.id, sql: m.sql ?? '', format: m.format ?? 'RowBinary', bytes: true });
    return;
  }
  try {
    const sql = m.rowBinary
      ? `${m.sql ?? ''} SELECT * FROM file(${lit(insertFile(m.rowBinary.bytes))}, 'RowBinary', ${lit(m.rowBinary.structure)})`
      : m.rows
        ? `${m.sql ?? ''}\n${m.rows.map((r) => JSON.stringify(r)).join('\n')}\n`
        : (m.sql ?? '');
    const text = session.query(sql, m.format ?? 'CSV');
    port.postMessage({ id: m.id, ok: true, text } satisfies ChdbResponse);
  } catch (e) {
    port.postMessage(failure(m.id, e));
  }
});

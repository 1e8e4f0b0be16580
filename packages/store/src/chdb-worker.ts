/**
 * Worker thread that owns the one chDB Session of the process. chDB calls are synchronous and block
 * their thread for the whole query, so they run here and the collector's event loop stays free.
 * Protocol (structured clone): in {id, sql, format} | {id, sql, rows} | {id, close: true}; out {id, ok, text|error}.
 * With `rows`, `sql` is an INSERT header ending in FORMAT JSONCompactEachRow and the worker serialises the
 * rows (positional arrays) itself: that string building is the costliest part of an insert and would
 * otherwise run, with its garbage, on the collector's event loop.
 * The engine binds one data directory per process: only one of these workers may be open at a time.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Session } from 'chdb';

export interface ChdbRequest {
  id: number;
  sql?: string;
  format?: string;
  /** Rows of an INSERT, each a positional array in the column order of `sql`. */
  rows?: unknown[][];
  close?: boolean;
}

export type ChdbResponse =
  | { id: number; ok: true; text: string }
  | { id: number; ok: false; message: string; clickhouseCode: number | undefined; closed?: boolean };

const port = parentPort;
if (!port) throw new Error('chdb-worker must run as a worker thread');
const { dataDir } = workerData as { dataDir: string };

let session: Session | undefined;
try {
  session = new Session(dataDir);
  port.postMessage({ id: 0, ok: true, text: 'ready' } satisfies ChdbResponse);
} catch (e) {
  port.postMessage({ id: 0, ok: false, message: (e as Error).message, clickhouseCode: undefined } satisfies ChdbResponse);
}

port.on('message', (m: ChdbRequest) => {
  if (m.close) {
    session?.close();
    session = undefined;
    port.postMessage({ id: m.id, ok: true, text: 'closed' } satisfies ChdbResponse);
    port.close();
    return;
  }
  if (!session) {
    port.postMessage({ id: m.id, ok: false, message: 'chDB session is closed', clickhouseCode: undefined, closed: true } satisfies ChdbResponse);
    return;
  }
  try {
    const sql = m.rows ? `${m.sql ?? ''}\n${m.rows.map((r) => JSON.stringify(r)).join('\n')}\n` : (m.sql ?? '');
    const text = session.query(sql, m.format ?? 'CSV');
    port.postMessage({ id: m.id, ok: true, text } satisfies ChdbResponse);
  } catch (e) {
    const err = e as Error & { clickhouseCode?: number };
    const code = err.clickhouseCode ?? Number(/Code: (\d+)\./.exec(err.message)?.[1] ?? NaN);
    port.postMessage({ id: m.id, ok: false, message: err.message.replace(/^Query failed: /, ''), clickhouseCode: Number.isNaN(code) ? undefined : code } satisfies ChdbResponse);
  }
});

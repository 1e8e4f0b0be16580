// The server backend without a server: what happens when ClickHouse is down or misconfigured. Tests against a
// real server (Debian's 18.16 and newer) are the fleet-mode integration tests (*.int.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { WattsplitError, memoryLogger, wasReported } from '@wattsplit/wire';
import { ClickHouseServerStore } from './clickhouse-server-store.js';
import { sampleInterval, sampleResult } from './test-fixtures.js';

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test('a server that is down: init rejects STORE_UNAVAILABLE (retriable), writes are retryable, not thrown', async () => {
  const url = `http://127.0.0.1:${await closedPort()}`;
  const log = memoryLogger();
  const store = new ClickHouseServerStore({ url, database: 'wattsplit_test', requestTimeoutMs: 2000, logger: log });
  await assert.rejects(store.init(), (e: unknown) => e instanceof WattsplitError && e.code === 'STORE_UNAVAILABLE' && e.retriable && /unreachable/.test(e.message));
  const i = sampleInterval('host-a', 1, 1.7e18);
  const r = await store.writeInterval({ interval: i, results: [sampleResult(i)] });
  assert.equal(r.kind, 'retryable');
  assert.ok(r.kind === 'retryable' && r.afterMs > 0 && r.error.code === 'STORE_UNAVAILABLE');
  // the store says which write failed, once, and marks the error logged: the collector and the bus log it at debug
  const warns = log.entries.filter((e) => e.level === 'warn' && /^write interval host=host-a seq=1: .*unreachable/.test(e.msg));
  assert.equal(warns.length, 1, JSON.stringify(log.entries));
  assert.ok(r.kind === 'retryable' && wasReported(r.error));
  await assert.rejects(store.query('SELECT 1'), (e: unknown) => e instanceof WattsplitError && e.code === 'STORE_UNAVAILABLE');
  await store.close();
});

test('bad server config names the field and value', () => {
  assert.throws(() => new ClickHouseServerStore({ url: 'localhost:8123', database: 'x' }), /url="localhost:8123" must be http\(s\):\/\/host:port/);
  assert.throws(() => new ClickHouseServerStore({ url: 'http://127.0.0.1:8123', database: 'bad-name' }), /database="bad-name" must be an identifier/);
});

test('errors: 18.x "Code: N, e.displayText()" and modern ClickHouse errors keep the server message; network errors are retriable', async () => {
  const { classifyServerError } = await import('./http-transport.js');
  const old = classifyServerError(new Error('Code: 62, e.displayText() = DB::Exception: Syntax error: failed at position 1: SELEC 1, e.what() = DB::Exception'), 'SELEC 1');
  assert.equal(old.code, 'STORE_QUERY_FAILED');
  assert.equal(old.retriable, false);
  assert.equal(old.message, 'Code: 62. Syntax error: failed at position 1: SELEC 1');
  const busy = classifyServerError(new Error('Code: 202, e.displayText() = DB::Exception: Too many simultaneous queries, e.what() = DB::Exception'), 'q');
  assert.equal(busy.code, 'STORE_UNAVAILABLE');
  assert.equal(busy.retriable, true);
  const net = classifyServerError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }), 'q');
  assert.deepEqual([net.code, net.retriable, net.details.errno], ['STORE_UNAVAILABLE', true, 'ECONNREFUSED']);
});

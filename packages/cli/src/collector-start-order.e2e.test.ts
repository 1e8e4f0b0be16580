// The shipped `wattsplit collector` (and `serve`) started before its store or its bus (a supervisor, compose file or cluster that
// starts everything at once): it stays up and retries each, with a warning per attempt, and consumes once both
// answer; a signal while it waits stops it cleanly. Before 2026-12-07 it exited (store) or printed the error and
// hung (bus, with the embedded store). The store part needs a ClickHouse server (WATTSPLIT_TEST_CLICKHOUSE_URL,
// reached through a TCP proxy this test opens late) and Kafka (WATTSPLIT_TEST_KAFKA), both set by scripts/test.mjs.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const main = join(dirname(fileURLToPath(import.meta.url)), 'main.js');
const brokers = process.env.WATTSPLIT_TEST_KAFKA;
const clickhouse = process.env.WATTSPLIT_TEST_CLICKHOUSE_URL;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

interface Collector {
  child: ChildProcess;
  log: () => string;
  exited: Promise<number | null>;
}

function startCollector(t: TestContext, args: string[], env: Record<string, string> = {}, command: 'collector' | 'serve' = 'collector'): Collector {
  let out = '';
  const child = spawn(process.execPath, [main, command, '--log-level', 'info', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return { child, log: () => out, exited };
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms: number, c?: Collector): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (c && c.child.exitCode !== null) assert.fail(`the collector exited (${c.child.exitCode}) while waiting for ${what}:\n${c.log().slice(-1500)}`);
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}:\n${c?.log().slice(-1500) ?? ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const lines = (c: Collector, re: RegExp) => c.log().split('\n').filter((l) => re.test(l)).map((l) => JSON.parse(l) as Record<string, unknown>);

async function health(port: number): Promise<Record<string, unknown> | undefined> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2000) });
    return r.ok ? ((await r.json()) as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** A TCP proxy on `port` to `target` (opened when called: until then the port refuses connections). */
async function proxy(t: TestContext, port: number, target: URL): Promise<Server> {
  const sockets = new Set<Socket>();
  const s = createServer((a) => {
    const b = connect(Number(target.port), target.hostname);
    for (const x of [a, b]) {
      sockets.add(x);
      x.on('error', () => undefined);
      x.on('close', () => sockets.delete(x));
    }
    a.pipe(b).pipe(a);
  });
  await new Promise<void>((r) => s.listen(port, '127.0.0.1', r));
  t.after(() => {
    for (const x of sockets) x.destroy();
    s.close();
  });
  return s;
}

test('wattsplit collector started before its ClickHouse server waits for it, then consumes', { skip: !clickhouse || !brokers ? 'needs WATTSPLIT_TEST_CLICKHOUSE_URL and WATTSPLIT_TEST_KAFKA (run through scripts/test.mjs)' : false, timeout: 120_000 }, async (t) => {
  const chPort = await freePort();
  const httpPort = await freePort();
  const db = `start_order_${randomUUID().slice(0, 8)}`;
  const c = startCollector(t, ['--url', `http://127.0.0.1:${chPort}`, '--database', db, '--http-port', String(httpPort), '--group', `start-order-${randomUUID()}`, '--no-train'], { WATTSPLIT_KAFKA_BROKERS: brokers! });
  await until('two warnings that the store cannot be opened', () => lines(c, /cannot open the store/).length >= 2, 20_000, c);
  const w = lines(c, /cannot open the store/);
  assert.deepEqual(w.map((l) => l.attempts), [1, 2]);
  assert.equal(w[0]!.level, 40);
  assert.equal(w[0]!.code, 'STORE_UNAVAILABLE');
  assert.match(String(w[0]!.msg), new RegExp(`ClickHouse server unreachable: connect ECONNREFUSED 127\\.0\\.0\\.1:${chPort}\\); retrying in \\d+\\.\\d s\\. Nothing is served or consumed until it answers`));
  assert.equal(await health(httpPort), undefined, 'no HTTP API before the store answers');

  await proxy(t, chPort, new URL(clickhouse!)); // the server "comes up"
  await until('the store to answer', () => lines(c, /store answered at attempt \d+/).length === 1, 40_000, c);
  await until('/healthz consuming', async () => (await health(httpPort))?.consuming === true, 40_000, c);
  assert.ok(!/"level":50/.test(c.log().split('\n').filter((l) => !/"kafkajs"/.test(l)).join('\n')), 'no error line of its own');

  c.child.kill('SIGTERM');
  assert.equal(await c.exited, 0, c.log().slice(-1500));
});

test('wattsplit collector stops cleanly on SIGTERM while it waits for its store', { skip: !brokers ? 'needs WATTSPLIT_TEST_KAFKA (run through scripts/test.mjs)' : false, timeout: 60_000 }, async (t) => {
  const c = startCollector(t, ['--url', `http://127.0.0.1:${await freePort()}`, '--http-port', String(await freePort()), '--no-train'], { WATTSPLIT_KAFKA_BROKERS: brokers! });
  await until('a warning that the store cannot be opened', () => lines(c, /cannot open the store/).length >= 1, 20_000, c);
  const t0 = Date.now();
  c.child.kill('SIGTERM');
  assert.equal(await c.exited, 0, c.log().slice(-1500));
  assert.ok(Date.now() - t0 < 10_000, `stopped ${Date.now() - t0} ms after SIGTERM`);
  assert.equal(lines(c, /stopped \(SIGTERM\) before the store answered/).length, 1);
});

test('wattsplit collector with the embedded store, started while Kafka is down: stays up, says so, stops on SIGTERM', { timeout: 90_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-start-order-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const httpPort = await freePort();
  const c = startCollector(t, ['--data-dir', dir, '--http-port', String(httpPort), '--no-train'], { WATTSPLIT_KAFKA_BROKERS: `127.0.0.1:${await freePort()}` });
  await until('/healthz', async () => (await health(httpPort)) !== undefined, 60_000, c);
  assert.equal((await health(httpPort))!.consuming, false);
  await until('a warning that it cannot consume and retries', () => lines(c, /cannot consume wattsplit\.telemetry\.v1 .*retrying in/).length >= 1, 60_000, c);
  c.child.kill('SIGTERM');
  const t0 = Date.now();
  assert.equal(await c.exited, 0, c.log().slice(-1500));
  assert.ok(Date.now() - t0 < 20_000, `stopped ${Date.now() - t0} ms after SIGTERM`);
  // the stop is said, and so is its end (an audit found the processes stopped without a word)
  assert.equal(lines(c, /collector stopping: the batches in hand are stored and committed/).length, 1, c.log().slice(-1500));
  assert.equal(lines(c, /collector stopped/).length, 1);
});

test('wattsplit serve started before its ClickHouse server waits for it, then serves', { skip: !clickhouse ? 'needs WATTSPLIT_TEST_CLICKHOUSE_URL (run through scripts/test.mjs)' : false, timeout: 90_000 }, async (t) => {
  const chPort = await freePort();
  const httpPort = await freePort();
  const c = startCollector(t, ['--url', `http://127.0.0.1:${chPort}`, '--database', `start_order_serve_${randomUUID().slice(0, 8)}`, '--port', String(httpPort)], {}, 'serve');
  await until('a warning that the store cannot be opened', () => lines(c, /cannot open the store/).length >= 1, 20_000, c);
  await proxy(t, chPort, new URL(clickhouse!));
  await until('/healthz in serve mode', async () => (await health(httpPort))?.mode === 'serve', 40_000, c);
  c.child.kill('SIGTERM');
  assert.equal(await c.exited, 0, c.log().slice(-1500));
});

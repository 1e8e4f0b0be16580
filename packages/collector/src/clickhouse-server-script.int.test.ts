// scripts/clickhouse-server.sh keeps a server's data across stop + start (only `destroy`/`reset` delete
// it): a table and its rows written before a stop are there after the next start. Runs its own instance
// in a temporary cache directory, never the shared test server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = process.env.WATTSPLIT_REPO_ROOT ?? join(dirname(fileURLToPath(import.meta.url)), '../../..');
const script = join(root, 'scripts/clickhouse-server.sh');
const hasServer =
  !!process.env.CLICKHOUSE_BIN || existsSync('/usr/sbin/clickhouse-server') || ['clickhouse-server', 'clickhouse'].some((b) => spawnSync('sh', ['-c', `command -v ${b}`], { stdio: 'ignore' }).status === 0);

test('clickhouse-server.sh: stop + start keeps the data; destroy deletes it', { skip: hasServer ? false : 'no clickhouse-server binary (scripts/provision.sh)', timeout: 150_000 }, async (t) => {
  const cache = mkdtempSync(join(tmpdir(), 'wattsplit-ch-script-'));
  const env = { ...process.env, WATTSPLIT_CLICKHOUSE_CACHE: cache };
  const sh = (...args: string[]) => {
    const r = spawnSync('bash', [script, ...args], { encoding: 'utf8', env, timeout: 60_000 });
    assert.equal(r.status, 0, `clickhouse-server.sh ${args.join(' ')}: ${r.stderr}`);
    return { url: r.stdout.trim().split('\n').pop() ?? '', stderr: r.stderr };
  };
  t.after(() => {
    spawnSync('bash', [script, 'destroy', 'persist'], { env, stdio: 'ignore', timeout: 60_000 });
    rmSync(cache, { recursive: true, force: true });
  });
  // A fresh connection per statement (no keep-alive socket may outlive the server it was opened to).
  const sql = (url: string, q: string) =>
    new Promise<string>((res, rej) => {
      const req = request(url, { method: 'POST', agent: false }, (r) => {
        let text = '';
        r.setEncoding('utf8');
        r.on('data', (d: string) => (text += d));
        r.on('end', () => (r.statusCode === 200 ? res(text.trim()) : rej(new Error(`${q}: ${r.statusCode} ${text}`))));
      });
      req.on('error', rej);
      req.end(q);
    });

  const first = sh('start', 'persist').url;
  assert.match(first, /^http:\/\/127\.0\.0\.1:\d+$/);
  await sql(first, 'CREATE DATABASE IF NOT EXISTS keep');
  await sql(first, 'CREATE TABLE keep.t (x UInt32) ENGINE = MergeTree ORDER BY x');
  await sql(first, 'INSERT INTO keep.t VALUES (1), (2), (3)');

  const stopped = sh('stop', 'persist');
  assert.match(stopped.stderr, /data kept/);
  assert.ok(existsSync(join(cache, 'persist/data')), 'the data directory survives stop');

  const second = sh('start', 'persist').url;
  assert.equal(second, first, 'the ports are reused while free');
  assert.equal(await sql(second, 'SELECT sum(x) FROM keep.t'), '6');

  sh('destroy', 'persist');
  assert.ok(!existsSync(join(cache, 'persist')), 'destroy deletes the data');
});

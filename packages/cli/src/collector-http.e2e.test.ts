// The shipped `wattsplit collector` process (real flags, real pino logger) and its HTTP side: the bind
// defaults to 127.0.0.1, an open API on a network address is refused before anything connects, bearer
// tokens with scopes guard bills and /metrics, bad query strings are 400s, and HTTPS negotiates only
// TLS 1.2+ ECDHE AEAD suites. The running-collector part needs Kafka (WATTSPLIT_TEST_KAFKA, set by
// scripts/test.mjs); it uses its own consumer group and a temporary chDB data directory.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect as netConnect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';

const main = join(dirname(fileURLToPath(import.meta.url)), 'main.js');
const brokers = process.env.WATTSPLIT_TEST_KAFKA;
const hasOpenssl = spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0;
const ADMIN = `adm-${randomUUID()}`;
const ACME = `acme-${randomUUID()}`;
const SCRAPE = `prom-${randomUUID()}`;

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-collector-http-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function refused(args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [main, 'collector', ...args], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, WATTSPLIT_KAFKA_BROKERS: '127.0.0.1:1' } });
  return { status: r.status, stderr: r.stderr };
}

test('an open API on a network address, and a bad tokens file, are one CONFIG_INVALID line and exit 2', (t) => {
  const dir = tempDir(t);
  const r = refused(['--http-host', '0.0.0.0', '--data-dir', dir]);
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /^wattsplit: CONFIG_INVALID: --http-host=0\.0\.0\.0 is reachable from the network and no --api-tokens-file is given \(pass --allow-unauthenticated/);

  writeFileSync(join(dir, 'tokens'), `root ${ADMIN}\n`);
  const b = refused(['--api-tokens-file', join(dir, 'tokens'), '--data-dir', dir]);
  assert.equal(b.status, 2, b.stderr);
  assert.equal(b.stderr.trim().split('\n').length, 1, b.stderr);
  assert.match(b.stderr, /^wattsplit: CONFIG_INVALID: .*tokens token ".*tokens:1": scope "root" must be admin, metrics or tenant:<name>/);
  assert.ok(!b.stderr.includes(ADMIN), 'the token is not echoed');

  const c = refused(['--tls-cert', join(dir, 'nope.pem'), '--data-dir', dir]);
  assert.equal(c.status, 2, c.stderr);
  assert.match(c.stderr, /^wattsplit: CONFIG_INVALID: --tls-cert and --tls-key go together/);
});

interface Reply {
  status: number;
  body: string;
}

test('wattsplit collector: loopback by default, tokens and scopes, 400s for bad queries, modern TLS only', { skip: !brokers ? 'Kafka unavailable: WATTSPLIT_TEST_KAFKA is not set (run through scripts/test.mjs)' : !hasOpenssl ? 'openssl not found' : false, timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const gen = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { encoding: 'utf8' });
  assert.equal(gen.status, 0, gen.stderr);
  const certPem = (await import('node:fs')).readFileSync(cert, 'utf8');
  writeFileSync(join(dir, 'tokens'), `admin ${ADMIN} ops\ntenant:acme ${ACME} acme-billing\nmetrics ${SCRAPE} prometheus\n`);

  const child = spawn(
    process.execPath,
    [main, 'collector', '--brokers', brokers!, '--data-dir', join(dir, 'data'), '--group', `http-e2e-${randomUUID()}`,
      '--http-port', '0', '--api-tokens-file', join(dir, 'tokens'), '--tls-cert', cert, '--tls-key', key, '--log-level', 'info'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  t.after(async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  });
  const url = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`collector did not start in 90 s:\n${stderr}`)), 90_000);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      stderr += d;
      for (const line of stderr.split('\n')) {
        const rec = /^\{/.test(line) ? (JSON.parse(line) as { msg?: string; url?: string }) : undefined;
        if (rec?.msg === 'collector running' && rec.url) {
          clearTimeout(timer);
          res(rec.url);
        }
      }
    });
    void exited.then((code) => rej(new Error(`collector exited ${code}:\n${stderr}`)));
  });

  // Bound to loopback only, over HTTPS.
  const u = new URL(url);
  assert.equal(u.protocol, 'https:');
  assert.equal(u.hostname, '127.0.0.1');
  const other = Object.values(networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal);
  if (other) {
    const err = await new Promise<string>((res) => {
      const s = netConnect({ host: other.address, port: Number(u.port) }, () => {
        s.destroy();
        res('connected');
      });
      s.on('error', (e: NodeJS.ErrnoException) => res(e.code ?? e.message));
    });
    assert.equal(err, 'ECONNREFUSED', `${other.address}:${u.port} must not answer`);
  }

  const get = (path: string, token?: string) =>
    new Promise<Reply>((res, rej) => {
      const req = request(`${url}${path}`, { ca: certPem, headers: token ? { authorization: `Bearer ${token}` } : {} }, (r) => {
        let body = '';
        r.setEncoding('utf8');
        r.on('data', (d: string) => (body += d));
        r.on('end', () => res({ status: r.statusCode ?? 0, body }));
      });
      req.on('error', rej);
      req.end();
    });

  assert.equal((await get('/healthz')).status, 200);
  assert.equal((await get('/metrics')).status, 401);
  assert.equal((await get('/metrics', `${ADMIN}0`)).status, 401);
  assert.equal((await get('/metrics', ADMIN)).status, 200);
  assert.equal((await get('/metrics', SCRAPE)).status, 200);
  assert.equal((await get('/metrics', ACME)).status, 403);
  assert.equal((await get('/api/v1/tenants/acme/bill', ACME)).status, 200);
  assert.equal((await get('/api/v1/tenants/globex/bill', ACME)).status, 403);
  assert.equal((await get('/api/v1/tenants/globex/bill', ADMIN)).status, 200);
  assert.equal((await get('/api/v1/tenants/acme/bill', SCRAPE)).status, 403);
  const dup = await get('/api/v1/tenants/acme/bill?from=1&from=2', ACME);
  assert.equal(dup.status, 400);
  assert.match(dup.body, /"parameter":"from"/);
  const method = await get('/api/v1/tenants/acme/bill?method=nope', ADMIN);
  assert.equal(method.status, 400);
  assert.match(method.body, /"knownMethods":\["cpu_share"/);

  // TLS: 1.2 only with ECDHE + AEAD; no static-RSA key exchange, no CBC, nothing below 1.2.
  const handshake = (opts: { ciphers?: string; minVersion?: 'TLSv1' | 'TLSv1.2' | 'TLSv1.3'; maxVersion?: 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3' }) =>
    new Promise<string>((res) => {
      const s = tlsConnect({ host: '127.0.0.1', port: Number(u.port), ca: certPem, servername: '', ...opts }, () => {
        const got = `${s.getProtocol() ?? '?'} ${s.getCipher().name}`;
        s.destroy();
        res(got);
      });
      s.on('error', () => res('refused'));
    });
  assert.match(await handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' }), /^TLSv1\.2 ECDHE-RSA-AES128-GCM-SHA256$/);
  assert.match(await handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-CHACHA20-POLY1305' }), /^TLSv1\.2 ECDHE-RSA-CHACHA20-POLY1305$/);
  assert.match(await handshake({ minVersion: 'TLSv1.3' }), /^TLSv1\.3 TLS_/);
  for (const weak of ['AES128-GCM-SHA256', 'AES256-SHA256', 'ECDHE-RSA-AES128-SHA256', 'ECDHE-RSA-AES256-SHA', 'DHE-RSA-AES128-GCM-SHA256']) {
    assert.equal(await handshake({ maxVersion: 'TLSv1.2', ciphers: `${weak}:@SECLEVEL=0` }), 'refused', weak);
  }
  assert.equal(await handshake({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' }), 'refused', 'TLS 1.1');

  // The shipped logger said where it listens and how it authenticates.
  assert.match(stderr, /"msg":"HTTP API on https:\/\/127\.0\.0\.1:\d+, authentication: bearer tokens \(3\)"/);
  assert.ok(!stderr.includes(ADMIN) && !stderr.includes(ACME), 'no token in the log');
  // The store logs through the same logger (a write it refuses is in the collector's log, not dropped).
  assert.match(stderr, /"component":"store".*"msg":"store ready \(chdb/);
  child.kill('SIGTERM');
  assert.equal(await exited, 0, stderr);
});

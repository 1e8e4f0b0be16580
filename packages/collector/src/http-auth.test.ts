// Bearer-token access to the REST API, dashboard and /metrics (api-auth.ts, api-guard.ts) over a real
// HTTP listener: who may read what, tenant isolation, the tokens file, and the refusal to serve an
// open API on a network address.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InProcessBus, TOPICS, WattsplitError, memoryLogger } from '@wattsplit/wire';
import { ChdbStore } from '@wattsplit/store';
import { ApiTokens, isLoopbackHost, presentedToken } from './api-auth.js';
import { validateCollectorConfig } from './config.js';
import { startEmbeddedCollector, type EmbeddedCollector } from './embedded.js';
import { HOST_A, HOST_B, WALL0_NS, encoded } from './test-frames.js';

const dir = mkdtempSync(join(tmpdir(), 'wattsplit-http-auth-'));
const log = memoryLogger();
const bus = new InProcessBus({ partitions: 2 });
const ADMIN = 'adm-0123456789abcdef0123456789abcdef';
const ACME = 'acme-0123456789abcdef0123456789abcdef';
const GLOBEX = 'globex-0123456789abcdef0123456789abcde';
const SCRAPE = 'prom-0123456789abcdef0123456789abcdef';
const FROM = Math.floor(WALL0_NS / 1e9) - 7200;
const TO = Math.floor(WALL0_NS / 1e9) + 7200;
const RANGE = `from=${FROM}&to=${TO}`;
let c: EmbeddedCollector;
let base: string;

const get = (path: string, token?: string) => fetch(`${base}${path}`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });

before(async () => {
  const file = join(dir, 'tokens');
  writeFileSync(
    file,
    [
      '# scope        token                                  name',
      `admin           ${ADMIN}   ops`,
      `tenant:acme     ${ACME}    acme-billing`,
      `tenant:globex   sha256:${(await import('node:crypto')).createHash('sha256').update(GLOBEX).digest('hex')}  globex-billing`,
      `metrics         ${SCRAPE}  prometheus # the scrape job`,
      '',
    ].join('\n'),
  );
  c = await startEmbeddedCollector({ dataDir: join(dir, 'db'), bus, logger: log, http: { port: 0, tokens: ApiTokens.load(file) } });
  assert.ok(c.url);
  base = c.url;
  const p = bus.producer();
  for (let seq = 1; seq <= 3; seq++) await p.send(TOPICS.telemetry, [encoded(HOST_A, seq), encoded(HOST_B, seq)]);
  await bus.idle();
});

after(async () => {
  await c.close();
  await bus.close();
  rmSync(dir, { recursive: true, force: true });
});

test('/healthz is open; everything else needs a known token (401 with WWW-Authenticate)', async () => {
  assert.equal((await get('/healthz')).status, 200);
  for (const path of ['/metrics', `/api/v1/tenants/acme/bill?${RANGE}`, `/api/v1/vms/a-db/energy?${RANGE}`, `/?${RANGE}`]) {
    for (const token of [undefined, 'not-a-token-0123456789abcdef', ADMIN.slice(0, -1), `${ADMIN}x`]) {
      const r = await get(path, token);
      assert.equal(r.status, 401, `${path} with ${token ?? 'no token'}`);
      assert.match(r.headers.get('www-authenticate') ?? '', /Bearer realm="wattsplit"/);
      assert.equal(((await r.json()) as { code: string }).code, 'UNAUTHENTICATED');
    }
  }
  // The dashboard also offers Basic, so a browser can log in with the token as password.
  assert.match((await get('/')).headers.get('www-authenticate') ?? '', /Basic realm="wattsplit"/);
  const basic = await fetch(`${base}/?${RANGE}`, { headers: { authorization: `Basic ${Buffer.from(`acme:${ACME}`).toString('base64')}` } });
  assert.equal(basic.status, 200);
  // The refusal is logged without the token.
  assert.ok(log.entries.some((e) => /refused GET \/metrics: no token/.test(e.msg)));
  assert.ok(!JSON.stringify(log.entries).includes(ADMIN));
});

test('admin reads every tenant, the full dashboard and /metrics', async () => {
  for (const t of ['acme', 'globex']) assert.equal((await get(`/api/v1/tenants/${t}/bill?${RANGE}`, ADMIN)).status, 200, t);
  const html = await (await get(`/?${RANGE}`, ADMIN)).text();
  for (const t of ['acme', 'globex', '[host_overhead]']) assert.ok(html.includes(`<td>${t}</td>`), t);
  const m = await get('/metrics', ADMIN);
  assert.equal(m.status, 200);
  assert.match(await m.text(), /tenant="globex"/);
});

test('a tenant token reads its own bill and VMs only; other tenants are 403 and never in the answer', async () => {
  const own = await get(`/api/v1/tenants/acme/bill?${RANGE}`, ACME);
  assert.equal(own.status, 200);
  const bill = (await own.json()) as { tenant: string; totalJoules: number; lines: { vmUuid: string }[] };
  assert.equal(bill.tenant, 'acme');
  assert.ok(bill.totalJoules > 0);
  assert.deepEqual([...new Set(bill.lines.map((l) => l.vmUuid))].sort(), ['a-web', 'b-batch']);

  for (const other of ['globex', 'nobody', 'ACME', 'acme%20']) {
    const r = await get(`/api/v1/tenants/${other}/bill?${RANGE}`, ACME);
    assert.equal(r.status, 403, other);
    const body = (await r.json()) as { code: string; message: string };
    assert.equal(body.code, 'FORBIDDEN');
    assert.match(body.message, /not readable with scope tenant:acme/);
  }
  // a-db is globex's VM: 403 for acme, 200 for globex (whose token the file holds as a sha256 digest).
  assert.equal((await get(`/api/v1/vms/a-db/energy?${RANGE}`, ACME)).status, 403);
  const g = await get(`/api/v1/vms/a-db/energy?${RANGE}`, GLOBEX);
  assert.equal(g.status, 200);
  assert.ok(((await g.json()) as { totalJoules: number }).totalJoules > 0);
  const web = (await (await get(`/api/v1/vms/a-web/energy?${RANGE}`, ACME)).json()) as { hours: { tenant: string }[] };
  assert.ok(web.hours.length > 0 && web.hours.every((h) => h.tenant === 'acme'));

  // The dashboard shows the tenant's own row, no other tenant and no fleet-wide rows.
  const html = await (await get(`/?${RANGE}`, ACME)).text();
  assert.ok(html.includes('<td>acme</td>'));
  for (const hidden of ['globex', 'host_overhead', 'unallocated', '/metrics']) assert.ok(!html.includes(hidden), hidden);

  // Per-tenant series are bill data: /metrics is not for tenant tokens.
  const m = await get('/metrics', ACME);
  assert.equal(m.status, 403);
  assert.match(((await m.json()) as { message: string }).message, /GET \/metrics needs scope admin or metrics; this token has scope tenant:acme/);
});

test('bad parameters are still 400s for a tenant token; another tenant is 403 before any query', async () => {
  assert.equal((await get(`/api/v1/tenants/acme/bill?from=1&from=2`, ACME)).status, 400);
  assert.equal((await get(`/api/v1/tenants/acme/bill?method=nope`, ACME)).status, 400);
  assert.equal((await get(`/api/v1/tenants/globex/bill?method=nope`, ACME)).status, 403);
});

test('a metrics token reads /metrics and nothing else', async () => {
  assert.equal((await get('/metrics', SCRAPE)).status, 200);
  for (const path of [`/api/v1/tenants/acme/bill?${RANGE}`, `/api/v1/vms/a-web/energy?${RANGE}`, `/?${RANGE}`]) assert.equal((await get(path, SCRAPE)).status, 403, path);
});

test('tokens file: both formats, and errors that name the file, line and problem but never the token', () => {
  const json = ApiTokens.parse(JSON.stringify({ tokens: [{ name: 'ops', scope: 'admin', token: ADMIN }, { scope: 'tenant:acme', token: ACME }] }), 't.json');
  assert.equal(json.size, 2);
  assert.deepEqual(json.authenticate(ACME)?.scope, { kind: 'tenant', tenant: 'acme' });
  assert.equal(json.authenticate(ADMIN)?.name, 'ops');
  assert.equal(json.authenticate(GLOBEX), undefined);
  const bad = (text: string, re: RegExp) =>
    assert.throws(() => ApiTokens.parse(text, 'tok'), (e: unknown) => e instanceof WattsplitError && e.code === 'CONFIG_INVALID' && re.test(e.message) && !e.message.includes(ADMIN));
  bad(`root ${ADMIN}`, /scope "root" must be admin, metrics or tenant:<name>/);
  bad(`tenant: ${ADMIN}`, /scope "tenant:" must be/);
  bad('admin short', /has 5 characters, at least 24/);
  bad(`admin ${ADMIN}\ntenant:acme ${ADMIN}`, /are the same token/);
  bad(`admin ${ADMIN} name extra`, /tok:1: expected "SCOPE TOKEN \[NAME\]"/);
  bad('# nothing\n', /no tokens/);
  bad('{"tokens": [{"scope": "admin"}]}', /tokens\[0\] needs string fields/);
  bad('{"tokens": ', /not valid JSON/);
  assert.throws(() => ApiTokens.load(join(dir, 'missing')), /api tokens file .*missing: ENOENT/);
  assert.equal(presentedToken(`Bearer ${ADMIN}`), ADMIN);
  assert.equal(presentedToken(`Basic ${Buffer.from(`x:${ADMIN}`).toString('base64')}`), ADMIN);
  assert.equal(presentedToken('Token abc'), undefined);
});

test('an open API on a network address is refused unless allowed explicitly; loopback stays open', () => {
  const store = new ChdbStore({ dataDir: join(dir, 'never-opened') });
  const cfg = (http: Parameters<typeof validateCollectorConfig>[0]['http']) => ({ bus, store, ...(http ? { http } : {}) });
  for (const host of ['0.0.0.0', '::', '10.1.2.3', 'collector.example']) {
    assert.throws(
      () => validateCollectorConfig(cfg({ port: 0, host })),
      (e: unknown) => e instanceof WattsplitError && e.code === 'CONFIG_INVALID' && e.message.includes(`http.host=${JSON.stringify(host)} is reachable from the network and no API tokens are set`),
      host,
    );
    validateCollectorConfig(cfg({ port: 0, host, allowUnauthenticated: true }));
    validateCollectorConfig(cfg({ port: 0, host, tokens: new ApiTokens([{ scope: 'admin', token: ADMIN }]) }));
  }
  for (const host of ['127.0.0.1', '127.0.0.2', '::1', '[::1]', 'localhost', undefined]) validateCollectorConfig(cfg(host === undefined ? { port: 0 } : { port: 0, host }));
  assert.ok(isLoopbackHost('::ffff:127.0.0.1'));
  assert.ok(!isLoopbackHost('::ffff:10.0.0.1'));
});

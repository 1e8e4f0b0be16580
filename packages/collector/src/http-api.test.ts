// The REST API, /metrics and the dashboard over a real HTTP listener (127.0.0.1, port chosen by the OS).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InProcessBus, TOPICS, memoryLogger } from '@wattsplit/wire';
import { startEmbeddedCollector, type EmbeddedCollector } from './embedded.js';
import { HOST_A, HOST_B, WALL0_NS, encoded } from './test-frames.js';

const dir = mkdtempSync(join(tmpdir(), 'wattsplit-http-'));
const log = memoryLogger();
const bus = new InProcessBus({ partitions: 2 });
let c: EmbeddedCollector;
let base: string;
const FROM = Math.floor(WALL0_NS / 1e9) - 7200;
const TO = Math.floor(WALL0_NS / 1e9) + 7200;

before(async () => {
  c = await startEmbeddedCollector({ dataDir: join(dir, 'db'), bus, logger: log, http: { port: 0 } });
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

test('GET /healthz', async () => {
  const r = await fetch(`${base}/healthz`);
  assert.equal(r.status, 200);
  const body = (await r.json()) as Record<string, unknown>;
  assert.equal(body.status, 'ok');
  assert.equal(body.store, 'chdb');
  assert.equal(body.intervalsStored, 4);
  assert.deepEqual(body.storeWrites, { ok: true });
});

test('GET /metrics is Prometheus text with the energy counters', async () => {
  const r = await fetch(`${base}/metrics`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') ?? '', /^text\/plain;.*version=0\.0\.4/);
  const text = await r.text();
  assert.match(text, /^wattsplit_vm_energy_joules_total\{host="hv-b",vm="b-batch",vm_name="[^"]*",tenant="acme",source="rapl",part="dynamic",method="cpu_share"\} [\d.]+$/m);
  assert.match(text, /^wattsplit_collector_frames_total\{result="accepted"\} 6$/m);
  // known label values start at 0; process defaults and the build info follow the collector's families
  assert.match(text, /^wattsplit_collector_frames_total\{result="poison"\} 0$/m);
  assert.match(text, /^wattsplit_collector_dead_letters_total 0$/m);
  assert.match(text, /^wattsplit_collector_conservation_failures_total\{method="cpu_share"\} 0$/m);
  assert.match(text, /^process_resident_memory_bytes \d+$/m);
  assert.match(text, /^nodejs_eventloop_lag_seconds [\d.e-]+$/m);
  assert.match(text, /^wattsplit_build_info\{version="[^"]+",commit="[^"]+",role="collector"\} 1$/m);
});

test('GET /api/v1/tenants/:tenant/bill sums the tenant\'s VMs and matches the raw attributions', async () => {
  const r = await fetch(`${base}/api/v1/tenants/acme/bill?from=${FROM}&to=${TO}`);
  assert.equal(r.status, 200);
  const bill = (await r.json()) as { totalJoules: number; lines: { vmUuid: string }[]; method: string };
  assert.equal(bill.method, 'cpu_share');
  assert.deepEqual([...new Set(bill.lines.map((l) => l.vmUuid))], ['a-web', 'b-batch']);
  const raw = (await c.store.query(`SELECT sum(dynamic_j + static_j) AS j FROM attributions FINAL WHERE tenant = 'acme' AND kind = 'vm' AND method = 'cpu_share'`)).rows[0]!;
  assert.ok(Math.abs(bill.totalJoules - Number(raw.j)) < 1e-6, `${bill.totalJoules} vs ${String(raw.j)}`);
});

test('GET /api/v1/carbon without grid intensity says which commands take --intensity (the collector computes none)', async () => {
  const r = await fetch(`${base}/api/v1/carbon?from=${FROM}&to=${TO}`);
  assert.equal(r.status, 200);
  const body = (await r.json()) as { configured: boolean; message: string; tenants: unknown[] };
  assert.equal(body.configured, false);
  assert.deepEqual(body.tenants, []);
  assert.equal(body.message, 'no grid intensity configured (`wattsplit serve` / `wattsplit demo --serve` take --intensity FILE --regions FILE; `wattsplit collector` does not compute carbon)');
  assert.doesNotMatch(body.message, /start with/);
});

test('GET /api/v1/vms/:uuid/energy gives hourly rows; ISO times work', async () => {
  const from = new Date(FROM * 1000).toISOString();
  const r = await fetch(`${base}/api/v1/vms/a-db/energy?from=${encodeURIComponent(from)}&to=${TO}`);
  assert.equal(r.status, 200);
  const body = (await r.json()) as { hours: { source: string; tenant: string }[]; totalJoules: number };
  // The GPU shows no activity and no contexts: its energy is unallocated, not billed to the VM.
  assert.deepEqual(body.hours.map((h) => h.source).sort(), ['bmc_rest', 'rapl']);
  assert.equal(body.hours[0]!.tenant, 'globex');
  assert.ok(body.totalJoules > 0);
});

test('bad query parameters are a 400 naming the parameter and value', async () => {
  const r = await fetch(`${base}/api/v1/tenants/acme/bill?from=yesterday`);
  assert.equal(r.status, 400);
  const body = (await r.json()) as { code: string; message: string };
  assert.equal(body.code, 'STORE_INVALID_INPUT');
  assert.match(body.message, /query parameter from="yesterday" is not a time/);
  const r2 = await fetch(`${base}/api/v1/vms/x/energy?from=${TO}&to=${FROM}`);
  assert.equal(r2.status, 400);
  const r3 = await fetch(`${base}/api/v1/tenants/acme/bill?method=${encodeURIComponent("x' OR 1")}`);
  assert.equal(r3.status, 400);
  assert.match(((await r3.json()) as { message: string }).message, /method="x' OR 1" must match/);
});

test('GET / is a self-contained HTML dashboard with a row and an SVG bar per tenant', async () => {
  const r = await fetch(`${base}/?from=${FROM}&to=${TO}`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') ?? '', /^text\/html/);
  const html = await r.text();
  for (const t of ['acme', 'globex', '[host_overhead]']) assert.ok(html.includes(`<td>${t}</td>`), t);
  assert.ok((html.match(/<svg /g) ?? []).length >= 3);
  assert.doesNotMatch(html, /<script|<link|src=|https?:\/\//);
});

test('a repeated, unknown or array-valued query parameter is a 400 naming it and its values', async () => {
  const r = await fetch(`${base}/api/v1/tenants/acme/bill?from=1&from=2`);
  assert.equal(r.status, 400);
  const body = (await r.json()) as { code: string; message: string; parameter: string; value: unknown };
  assert.equal(body.code, 'STORE_INVALID_INPUT');
  assert.equal(body.parameter, 'from');
  assert.deepEqual(body.value, ['1', '2']);
  assert.match(body.message, /query parameter from=\["1","2"\] is given 2 times/);
  for (const path of [`/api/v1/vms/a-db/energy?to=${TO}&to=${TO}`, `/?method=cpu_share&method=cpu_share`]) {
    const rr = await fetch(`${base}${path}`);
    assert.equal(rr.status, 400, path);
    assert.match(((await rr.json()) as { message: string }).message, /is given 2 times/, path);
  }
  const typo = await fetch(`${base}/api/v1/tenants/acme/bill?form=${FROM}`);
  assert.equal(typo.status, 400);
  const tb = (await typo.json()) as { parameter: string; message: string };
  assert.equal(tb.parameter, 'form');
  assert.match(tb.message, /form="\d+" is not a parameter of this endpoint \(it takes from, to, method\)/);
});

test('an unknown method is a 400 listing the known methods, not a zero bill', async () => {
  const r = await fetch(`${base}/api/v1/tenants/acme/bill?from=${FROM}&to=${TO}&method=additive_modle`);
  assert.equal(r.status, 400);
  const body = (await r.json()) as { parameter: string; value: string; message: string; knownMethods: string[] };
  assert.equal(body.parameter, 'method');
  assert.equal(body.value, 'additive_modle');
  assert.deepEqual(body.knownMethods, ['cpu_share']);
  assert.match(body.message, /method="additive_modle" is not a method this collector runs; known methods: cpu_share/);
  for (const path of [`/api/v1/vms/a-db/energy?method=nope`, `/?method=nope`]) assert.equal((await fetch(`${base}${path}`)).status, 400, path);
  // The default and the explicit known method still answer.
  assert.equal((await fetch(`${base}/api/v1/tenants/acme/bill?method=cpu_share`)).status, 200);
});

test('impossible dates and times outside a ClickHouse DateTime are 400s naming the parameter', async () => {
  for (const [q, param] of [
    ['from=2026-02-30', 'from'],
    ['to=2026-13-01', 'to'],
    ['from=March%207', 'from'],
    ['to=99999999999999999999999', 'to'],
    ['from=-5', 'from'],
    ['from=2026-11-23T25:00:00Z', 'from'],
  ] as const) {
    const r = await fetch(`${base}/api/v1/tenants/acme/bill?${q}`);
    assert.equal(r.status, 400, q);
    const body = (await r.json()) as { parameter: string; message: string };
    assert.equal(body.parameter, param, q);
    assert.match(body.message, new RegExp(`query parameter ${param}=`), q);
  }
});

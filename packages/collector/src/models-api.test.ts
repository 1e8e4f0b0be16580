// GET /api/models and /api/models/:class over a real HTTP listener: an embedded collector that trains
// (TrainingService.runOnce, the scheduler's own pass) reports the version in force, the activation
// history and the share of recent additive_model records that were cold starts; fleet metadata needs
// scope admin or metrics, never a tenant's token.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InProcessBus, TOPICS, memoryLogger } from '@wattsplit/wire';
import { ApiTokens } from './api-auth.js';
import { startEmbeddedCollector, type EmbeddedCollector } from './embedded.js';
import type { ModelStatus } from './api-controllers.js';
import type { ModelDetail } from './model-report.js';
import { HOST_A, HOST_B, WALL0_NS, encoded } from './test-frames.js';

const dir = mkdtempSync(join(tmpdir(), 'wattsplit-models-api-'));
const bus = new InProcessBus({ partitions: 2 });
const ADMIN = 'adm-0123456789abcdef0123456789abcdef';
const ACME = 'acme-0123456789abcdef0123456789abcdef';
const SCRAPE = 'prom-0123456789abcdef0123456789abcdef';
const CLASS = 'xeon-test+h100x1';
const COLD = 60; // frames per host before the model exists
const WARM = 20; // frames per host after it applies
const RANGE = `from=${Math.floor(WALL0_NS / 1e9) - 3600}&to=${Math.floor(WALL0_NS / 1e9) + 3600}`;
let c: EmbeddedCollector;
let base: string;

const get = (path: string, token?: string) => fetch(`${base}${path}`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });

async function send(from: number, to: number): Promise<void> {
  const p = bus.producer();
  for (let seq = from; seq <= to; seq++) await p.send(TOPICS.telemetry, [encoded(HOST_A, seq), encoded(HOST_B, seq)]);
  await bus.idle();
}

before(async () => {
  const tokens = new ApiTokens([
    { scope: 'admin', token: ADMIN, name: 'ops' },
    { scope: 'tenant:acme', token: ACME, name: 'acme' },
    { scope: 'metrics', token: SCRAPE, name: 'prometheus' },
  ]);
  c = await startEmbeddedCollector({
    dataDir: join(dir, 'db'),
    bus,
    logger: memoryLogger(),
    http: { port: 0, tokens },
    models: { training: { checkIntervalS: 86_400, minIntervals: 30, leaseSettleMs: 0, inWorker: false } },
  });
  assert.ok(c.url && c.training);
  base = c.url;
  await send(1, COLD);
});

after(async () => {
  await c.close();
  await bus.close();
  rmSync(dir, { recursive: true, force: true });
});

test('before any model: the class is a cold start and every additive_model record so far used the fallback', async () => {
  const r = await get('/api/models', ADMIN);
  assert.equal(r.status, 200);
  const body = (await r.json()) as { models: ModelStatus[]; cold_start_records_total: number; intervals_total: number };
  assert.equal(body.models.length, 1);
  const m = body.models[0]!;
  assert.equal(m.hardware_class, CLASS);
  assert.equal(m.status, 'cold_start');
  assert.equal(m.version, null);
  assert.equal(m.stored_intervals, 2 * (COLD - 1));
  assert.equal(m.cold_start.records, 2 * (COLD - 1));
  assert.equal(m.cold_start_share, 1);
  assert.equal(body.cold_start_records_total, 2 * (COLD - 1));
  assert.equal(body.intervals_total, 2 * (COLD - 1));
  assert.equal((await get(`/api/models/${CLASS}`, ADMIN)).status, 404, 'no version to show yet');
});

test('after the training pass: v1 in force, its metadata and history; the cold-start share falls as the model applies', async () => {
  const effectiveFromNs = WALL0_NS + (COLD + 1) * 1e9; // from the first interval after the cold ones
  const outcomes = await c.training!.runOnce({ effectiveFromNs });
  assert.deepEqual(outcomes.map((o) => [o.hardwareClass, o.reason, o.version?.version]), [[CLASS, 'first', 1]]);
  await send(COLD + 1, COLD + WARM);

  for (const token of [ADMIN, SCRAPE]) {
    const r = await get('/api/models', token);
    assert.equal(r.status, 200);
    const m = ((await r.json()) as { models: ModelStatus[] }).models[0]!;
    assert.equal(m.status, 'in_force');
    assert.equal(m.version, 1);
    assert.equal(m.action, 'train');
    assert.equal(m.reason, 'first');
    assert.equal(m.trained_by, c.training!.lifecycle.holder);
    assert.equal(m.intervals, 2 * (COLD - 1));
    assert.ok(m.residual_rms_w && Number.isFinite(m.residual_rms_w.rapl));
    assert.ok(m.age_s !== null && m.age_s >= 0 && m.age_s < 600);
    assert.equal(m.effective_from, new Date(effectiveFromNs / 1e6).toISOString());
    // 2×(COLD−1) fallback records, then 2×WARM with the model.
    assert.equal(m.cold_start.records, 2 * (COLD - 1) + 2 * WARM);
    assert.equal(m.cold_start.fallback_records, 2 * (COLD - 1));
    assert.equal(m.cold_start_share, (COLD - 1) / (COLD - 1 + WARM));
  }

  const d = (await (await get(`/api/models/${CLASS}`, SCRAPE)).json()) as ModelDetail & { drift_ratio: number | null };
  assert.equal(d.in_force_version, 1);
  assert.equal(d.version.version, 1);
  assert.equal(d.version.in_force, true);
  assert.deepEqual(d.activations.map((a) => [a.action, a.version, a.activated_by]), [['train', 1, c.training!.lifecycle.holder]]);
  assert.deepEqual(Object.keys(d.artefact.sources).sort(), ['bmc_rest', 'rapl']);
  assert.ok(d.artefact.vms_known >= 3, `VMs known: ${d.artefact.vms_known}`);
  assert.equal((await get(`/api/models/${CLASS}?version=1`, ADMIN)).status, 200);

  const html = await (await get(`/?${RANGE}`, ADMIN)).text();
  assert.match(html, /<h2>Models/);
  assert.ok(html.includes(`<td>${CLASS}</td><td>v1</td>`), 'the dashboard lists the model');
});

test('unknown class or version: 404 naming it and what exists; bad parameters: 400', async () => {
  const r = await get('/api/models/no-such-class', ADMIN);
  assert.equal(r.status, 404);
  assert.match(((await r.json()) as { message: string }).message, new RegExp(`"no-such-class".*${CLASS.replace('+', '\\+')}`));
  const v = await get(`/api/models/${CLASS}?version=7`, ADMIN);
  assert.equal(v.status, 404);
  assert.match(((await v.json()) as { message: string }).message, /v7 does not exist; versions: 1/);
  assert.equal((await get(`/api/models/${CLASS}?version=x`, ADMIN)).status, 400);
  assert.equal((await get(`/api/models?class=${CLASS}`, ADMIN)).status, 400);
});

test('models are fleet metadata: a tenant token gets 403, no token 401; the dashboard shows a tenant no models', async () => {
  for (const path of ['/api/models', `/api/models/${CLASS}`]) {
    assert.equal((await get(path, ACME)).status, 403, path);
    assert.equal((await get(path)).status, 401, path);
  }
  const r = await get(`/?${RANGE}`, ACME);
  assert.equal(r.status, 200);
  const html = await r.text();
  assert.doesNotMatch(html, /Models/);
});

// Boots the Nest application context (compiled ESM, real constructor injection) with an InProcessBus and a
// ChdbStore in a temp dir, publishes frames of two hosts plus a poison message, and checks the store.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InProcessBus, TOPICS, AttributionBatch, memoryLogger, type BusMessage } from '@wattsplit/wire';
import type { AttributionMethod, AttributionResult, HostInterval } from '@wattsplit/attribution';
import { TelemetryPipeline } from './telemetry-pipeline.js';
import { CollectorMetrics } from './collector-metrics.js';
import { STORE } from './tokens.js';
import { DLQ_HEADERS } from './telemetry-pipeline.js';
import { startEmbeddedCollector, type EmbeddedCollector } from './embedded.js';
import { HOST_A, HOST_B, encoded } from './test-frames.js';

/** A learned-model stand-in that breaks conservation on hv-b: the pipeline must fall back for it. */
class SkewedMethod implements AttributionMethod {
  readonly name = 'skewed_model';
  attribute(iv: HostInterval): AttributionResult {
    const shares = iv.vms.flatMap((v) => (['rapl', 'gpu', 'bmc_rest'] as const).map((source) => ({ kind: 'vm' as const, vmUuid: v.uuid, vmName: v.name, tenant: v.tenant, source, dynamicJoules: iv.measured[source] / iv.vms.length, staticJoules: 0, lowJoules: 0, highJoules: 0 })));
    if (iv.hostId === 'hv-b') for (const s of shares) s.dynamicJoules *= 2;
    return { hostId: iv.hostId, seq: iv.seq, t0UnixNs: iv.t0UnixNs, t1UnixNs: iv.t1UnixNs, method: this.name, modelVersion: 'test-1', hardwareClass: iv.hardwareClass, note: '', shares, measured: { ...iv.measured } };
  }
}

const dir = mkdtempSync(join(tmpdir(), 'wattsplit-collector-'));
const log = memoryLogger();
const bus = new InProcessBus({ partitions: 2, logger: log });
let c: EmbeddedCollector;
const dlq: BusMessage[] = [];
const published: BusMessage[] = [];

before(async () => {
  c = await startEmbeddedCollector({ dataDir: join(dir, 'db'), bus, logger: log, methods: [new SkewedMethod()], policy: 'reserved', staticPower: { fallbackWatts: { rapl: 50, gpu: 30, bmc_rest: 100 }, learn: false } });
  await bus.subscribe({ topic: TOPICS.deadLetter, groupId: 'test-dlq', handler: async (ms) => void dlq.push(...ms) });
  await bus.subscribe({ topic: TOPICS.attribution, groupId: 'test-attr', handler: async (ms) => void published.push(...ms) });
  const p = bus.producer();
  const msgs = [];
  for (let seq = 1; seq <= 4; seq++) msgs.push(encoded(HOST_A, seq), encoded(HOST_B, seq));
  msgs.splice(3, 0, { key: 'hv-a', value: new Uint8Array([0xff, 0xff, 0xff, 0x01, 0x02]) });
  assert.equal((await p.send(TOPICS.telemetry, msgs)).kind, 'ok');
  await bus.idle();
});

after(async () => {
  if (process.env.DEBUG_LOG) (await import('node:fs')).writeFileSync(process.env.DEBUG_LOG, log.entries.map((e) => JSON.stringify(e)).join('\n'));
  await c.close();
  await bus.close();
  rmSync(dir, { recursive: true, force: true });
});

test('Nest DI wires the pipeline by constructor injection in the compiled ESM output', () => {
  const pipeline = c.app.get(TelemetryPipeline);
  assert.ok(pipeline instanceof TelemetryPipeline);
  assert.equal(pipeline, c.pipeline);
  // CollectorMetrics is injected by its class (emitDecoratorMetadata), the store by token.
  assert.equal(pipeline.metrics, c.app.get(CollectorMetrics));
  assert.equal(c.app.get(STORE), c.store);
  assert.deepEqual(pipeline.methods.map((m) => m.name), ['cpu_share', 'skewed_model']);
});

test('every interval of both hosts is in the store, for every method, conserving the measured energy', async () => {
  const rows = (await c.store.query(`SELECT host, method, count(DISTINCT seq) AS intervals FROM attributions FINAL GROUP BY host, method ORDER BY host, method`)).rows;
  assert.deepEqual(rows.map((r) => [r.host, r.method, Number(r.intervals)]), [
    ['hv-a', 'cpu_share', 3],
    ['hv-a', 'skewed_model', 3],
    ['hv-b', 'cpu_share', 3],
    ['hv-b', 'skewed_model', 3],
  ]);
  const cons = (await c.store.query(`SELECT host, seq, method, source, sum(dynamic_j + static_j) AS parts, any(measured_j) AS measured FROM attributions FINAL GROUP BY host, seq, method, source`)).rows;
  assert.equal(cons.length, 12 * 3);
  for (const r of cons) assert.ok(Math.abs(Number(r.parts) - Number(r.measured)) <= 1e-9 * Math.max(1, Number(r.measured)), JSON.stringify(r));
  // hv-a: package 300 W (dram inside the package) over 1 s intervals; bmc_rest = 600 − 300 − 70.
  const a = (await c.store.query(`SELECT rapl_j, gpu_j, bmc_rest_j FROM host_samples FINAL WHERE host = 'hv-a' AND seq = 2`)).rows[0]!;
  assert.ok(Math.abs(Number(a.rapl_j) + Number(a.gpu_j) + Number(a.bmc_rest_j) - 600) < 1e-6, JSON.stringify(a));
  const vms = (await c.store.query(`SELECT count() AS n FROM vm_samples FINAL`)).rows[0]!;
  assert.equal(Number(vms.n), 3 * 2 + 3 * 1);
});

test('cpu_share splits dynamic energy by CPU time: globex (3 cores) gets 3× acme\'s web VM on hv-a', async () => {
  const r = (await c.store.query(`SELECT vm_uuid, sum(dynamic_j) AS d FROM attributions FINAL WHERE host = 'hv-a' AND method = 'cpu_share' AND source = 'rapl' AND kind = 'vm' GROUP BY vm_uuid ORDER BY vm_uuid`)).rows;
  assert.equal(r.length, 2);
  const db = Number(r[0]!.d);
  const web = Number(r[1]!.d);
  assert.ok(Math.abs(db / web - 3) < 1e-9, `a-db ${db} vs a-web ${web}`);
});

test('a method breaking conservation is logged and that interval carries cpu_share under its name with a note', async () => {
  const notes = (await c.store.query(`SELECT host, model_version, any(note) AS note FROM attributions FINAL WHERE method = 'skewed_model' GROUP BY host, model_version ORDER BY host`)).rows;
  assert.deepEqual(notes.map((n) => [n.host, n.model_version]), [['hv-a', 'test-1'], ['hv-b', 'fallback:cpu_share/1']]);
  assert.match(String(notes[1]!.note), /skewed_model failed \(broke conservation: .*\); fell back to cpu_share/);
  // The fallback rows are the cpu_share split itself.
  const same = (await c.store.query(`SELECT method, count() AS n, sum(dynamic_j) AS d, sum(static_j) AS s FROM attributions FINAL WHERE host = 'hv-b' GROUP BY method ORDER BY method`)).rows;
  assert.equal(same.length, 2);
  assert.equal(same[0]!.n, same[1]!.n);
  assert.ok(Math.abs(Number(same[0]!.d) - Number(same[1]!.d)) < 1e-6 && Math.abs(Number(same[0]!.s) - Number(same[1]!.s)) < 1e-6, JSON.stringify(same));
  assert.ok(log.entries.some((e) => e.level === 'warn' && /method skewed_model failed, using cpu_share/.test(e.msg)));
  assert.equal(c.pipeline.metrics.value('wattsplit_collector_method_fallbacks_total', { method: 'skewed_model' }), 3);
});

test('the poison message went to the dead-letter topic with the error, and the partition kept flowing', () => {
  assert.equal(dlq.length, 1);
  const m = dlq[0]!;
  assert.equal(m.key, 'hv-a');
  assert.deepEqual([...m.value], [0xff, 0xff, 0xff, 0x01, 0x02]);
  assert.equal(m.headers[DLQ_HEADERS.code], 'FRAME_DECODE_FAILED');
  assert.match(m.headers[DLQ_HEADERS.message]!, /wattsplit\.telemetry\.v1\/\d@\d+: not a wattsplit\.telemetry\.v1\.TelemetryFrame/);
  assert.match(m.headers[DLQ_HEADERS.origin]!, /^wattsplit\.telemetry\.v1\/\d@\d+$/);
  const warn = log.entries.find((e) => /poison message/.test(e.msg));
  assert.ok(warn, 'poison message logged');
  assert.equal(warn.fields.topic, TOPICS.telemetry);
  assert.equal(typeof warn.fields.partition, 'number');
  assert.equal(typeof warn.fields.offset, 'string');
  assert.equal(c.pipeline.stats.intervalsStored, 6);
});

test('AttributionBatch protobufs are published per host interval, keyed by host', () => {
  assert.equal(published.length, 6);
  const b = AttributionBatch.decode(published.find((m) => m.key === 'hv-b')!.value);
  assert.equal(b.hostId, 'hv-b');
  const methods = new Set(b.records.map((r) => r.method));
  assert.deepEqual([...methods].sort(), ['cpu_share', 'skewed_model']);
  const rapl = b.records.filter((r) => r.method === 'cpu_share' && r.source === 'rapl').reduce((a, r) => a + (r.dynamicJoules ?? 0) + (r.staticJoules ?? 0), 0);
  assert.ok(Math.abs(rapl - b.measuredJoules.rapl!) < 1e-9);
});

test('metrics text carries the energy counters, frame/interval/anomaly counters and lag', () => {
  const text = c.pipeline.metrics.render();
  assert.match(text, /# TYPE wattsplit_vm_energy_joules_total counter/);
  assert.match(text, /wattsplit_vm_energy_joules_total\{host="hv-a",vm="a-db",vm_name="vm-a-db",tenant="globex",source="rapl",part="dynamic",method="cpu_share"\} \d/);
  assert.match(text, /wattsplit_vm_energy_joules_total\{[^}]*part="static"[^}]*\} \d/);
  assert.match(text, /wattsplit_collector_frames_total\{result="accepted"\} 8/);
  assert.match(text, /wattsplit_collector_frames_total\{result="poison"\} 1/);
  assert.match(text, /wattsplit_collector_intervals_total\{method="cpu_share"\} 6/);
  assert.match(text, /wattsplit_collector_dead_letters_total 1/);
  assert.match(text, /wattsplit_collector_lag_seconds \d/);
  assert.match(text, /wattsplit_collector_bus_lag_messages 0/);
  // Group writes: each interval stored went through one, and no write is empty.
  const writes = c.pipeline.metrics.total('wattsplit_collector_store_writes_total');
  assert.ok(writes >= 1 && writes <= 6, `store writes ${writes}`);
  assert.equal(c.pipeline.metrics.total('wattsplit_collector_store_write_intervals_total'), 6);
  assert.equal(writes, c.pipeline.writer.stats.writes);
  // The counters agree with the store.
  const vmJ = c.pipeline.metrics.total('wattsplit_vm_energy_joules_total');
  assert.ok(vmJ > 0);
});

test('the same frames published again (an agent replaying its spool) change nothing', async () => {
  const before = (await c.store.query(`SELECT sum(dynamic_j + static_j) AS j, count() AS n FROM attributions`)).rows[0]!;
  const p = bus.producer();
  await p.send(TOPICS.telemetry, [encoded(HOST_A, 2), encoded(HOST_A, 3), encoded(HOST_B, 4)]);
  await bus.idle();
  const afterRows = (await c.store.query(`SELECT sum(dynamic_j + static_j) AS j, count() AS n FROM attributions`)).rows[0]!;
  assert.deepEqual(afterRows, before);
  assert.equal(c.pipeline.stats.framesReplayed, 3);
});

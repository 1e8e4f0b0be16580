// The store goes down mid-stream: the bus redelivers, the pipeline re-aligns, nothing is lost and nothing is
// counted twice, including an interval whose write landed but whose acknowledgement did not.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InProcessBus, TOPICS, partitionForKey, WattsplitError, markReported, memoryLogger, retryable, type Logger, type TransportResult } from '@wattsplit/wire';
import { ChdbStore, type IntervalWrite, type Store } from '@wattsplit/store';
import { DelegatingStore } from './test-stores.js';
import { createCollectorApp } from './collector-module.js';
import { HOST_A, HOST_B, encoded, type HostSpec } from './test-frames.js';

/** A real store behind a switch: each write call takes the next step of `plan` (then 'ok'): fail before
 *  reaching the store, or write and then report a failure (the acknowledgement is lost). */
class OutageStore extends DelegatingStore {
  calls = 0;
  failures = 0;
  /** performance.now() at each write call. */
  readonly starts: number[] = [];
  constructor(
    inner: Store,
    readonly plan: ('before' | 'after' | 'slow' | 'ok')[],
    /** Set: the double logs each failure and marks it logged, as SqlStore does (the store's own line). */
    readonly reportsTo?: Logger,
  ) {
    super(inner);
  }
  override async writeIntervals(ws: readonly IntervalWrite[]): Promise<TransportResult> {
    const n = ++this.calls;
    this.starts.push(performance.now());
    const step = this.plan.shift() ?? 'ok';
    const down = () => {
      const err = new WattsplitError('STORE_UNAVAILABLE', `injected outage on write #${n}`, { retriable: true });
      if (!this.reportsTo) return retryable(err, 10);
      this.reportsTo.warn({ code: err.code }, `write ${ws.length} intervals: ${err.message}`);
      return retryable(markReported(err), 10);
    };
    if (step === 'before') {
      this.failures++;
      return down();
    }
    if (step === 'slow') await new Promise((r) => setTimeout(r, 300));
    const r = await this.inner.writeIntervals(ws);
    if (step === 'after') {
      this.failures++;
      return down();
    }
    return r;
  }
}

/** A collector over the in-process bus and a real chDB store behind an OutageStore following `plan`. */
async function collectorWithOutages(t: TestContext, partitions: number, plan: OutageStore['plan'], storeWrites?: { minIntervalMs?: number }, storeReports = false) {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-outage-'));
  const log = memoryLogger();
  const bus = new InProcessBus({ partitions, logger: log });
  const chdb = new ChdbStore({ dataDir: join(dir, 'db'), logger: log });
  const store = new OutageStore(chdb, plan, storeReports ? log : undefined);
  const app = await createCollectorApp({ bus, store, logger: log, staticPower: { learn: false, fallbackWatts: { rapl: 20 } }, ...(storeWrites ? { storeWrites } : {}) });
  t.after(async () => {
    await app.close();
    await chdb.close();
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { log, bus, chdb, store, app };
}

test('store outages (before and after the write) → redelivery → every interval stored exactly once', async (t) => {
  const { log, bus, chdb, store, app } = await collectorWithOutages(t, 2, ['before', 'after', 'before']);

  const p = bus.producer();
  // Phase 1: a backlog (one batch per partition).
  const backlog = [];
  for (let seq = 1; seq <= 4; seq++) backlog.push(encoded(HOST_A, seq), encoded(HOST_B, seq));
  assert.equal((await p.send(TOPICS.telemetry, backlog)).kind, 'ok');
  await bus.idle();
  assert.equal(store.failures, 3);
  // Phase 2: frame by frame, the write of seq 5 lands but its acknowledgement is lost, seq 6 fails outright.
  store.plan.push('after');
  assert.equal((await p.send(TOPICS.telemetry, [encoded(HOST_A, 5), encoded(HOST_B, 5)])).kind, 'ok');
  await bus.idle();
  store.plan.push('before');
  assert.equal((await p.send(TOPICS.telemetry, [encoded(HOST_A, 6), encoded(HOST_B, 6)])).kind, 'ok');
  await bus.idle();

  assert.equal(store.failures, 5);
  assert.equal(app.pipeline.stats.storeFailures, 5);
  assert.ok(log.entries.some((e) => /intervals not stored, batch will be redelivered/.test(e.msg)));
  // No FINAL: not even a duplicate row waiting for a merge.
  const rows = (await chdb.query(`SELECT host, seq, count() AS n FROM host_samples GROUP BY host, seq ORDER BY host, seq`)).rows;
  assert.deepEqual(rows.map((r) => `${String(r.host)}/${String(r.seq)}x${String(r.n)}`), ['hv-a/2x1', 'hv-a/3x1', 'hv-a/4x1', 'hv-a/5x1', 'hv-a/6x1', 'hv-b/2x1', 'hv-b/3x1', 'hv-b/4x1', 'hv-b/5x1', 'hv-b/6x1']);
  const perSeq = (await chdb.query(`SELECT host, seq, count() AS n, sum(dynamic_j + static_j) AS j FROM attributions GROUP BY host, seq ORDER BY host, seq`)).rows;
  assert.equal(perSeq.length, 10);
  // Energy per host: 5 one-second intervals at the wall power (rapl + gpu + bmc_rest = BMC).
  const byHost = (await chdb.query(`SELECT host, sum(dynamic_j + static_j) AS j FROM attributions GROUP BY host ORDER BY host`)).rows;
  assert.ok(Math.abs(Number(byHost[0]!.j) - 5 * HOST_A.bmcW) < 1e-6, JSON.stringify(byHost));
  assert.ok(Math.abs(Number(byHost[1]!.j) - 5 * HOST_B.bmcW) < 1e-6, JSON.stringify(byHost));
  // The billing rollups agree with the raw rows.
  const roll = (await chdb.query(`SELECT sum(dynamic_j + static_j) AS j FROM tenant_energy_hourly`)).rows[0]!;
  assert.ok(Math.abs(Number(roll.j) - 5 * (HOST_A.bmcW + HOST_B.bmcW)) < 1e-6, JSON.stringify(roll));
  // Metrics count each interval once, failed attempts not included.
  assert.equal(app.pipeline.metrics.value('wattsplit_collector_intervals_total', { method: 'cpu_share' }), 10);
  const attributedJ = app.pipeline.metrics.total('wattsplit_vm_energy_joules_total') + app.pipeline.metrics.total('wattsplit_host_share_energy_joules_total');
  assert.ok(Math.abs(attributedJ - 5 * (HOST_A.bmcW + HOST_B.bmcW)) < 1e-6);
});

test('a longer outage: one warning of each kind while every redelivery fails, then one line when writes succeed again', async (t) => {
  const { log, bus, chdb, store, app } = await collectorWithOutages(t, 1, ['before', 'before', 'before', 'before', 'before', 'before']);
  const p = bus.producer();
  const frames = [];
  for (let seq = 1; seq <= 3; seq++) frames.push(encoded(HOST_A, seq));
  assert.equal((await p.send(TOPICS.telemetry, frames)).kind, 'ok');
  // what /healthz says meanwhile (HealthController: status "degraded" while storeWrites.ok is false)
  const seen: ReturnType<typeof app.pipeline.storeWriteState>[] = [];
  const poll = setInterval(() => seen.push(app.pipeline.storeWriteState()), 20);
  await bus.idle();
  clearInterval(poll);
  assert.equal(store.failures, 6);
  const down = seen.filter((x) => !x.ok);
  assert.ok(down.length > 0, 'polled during the outage');
  assert.ok(down.every((x) => (x.failedWrites ?? 0) >= 1 && /STORE_UNAVAILABLE: injected outage on write #\d/.test(x.lastError ?? '')), JSON.stringify(down.slice(0, 3)));
  assert.deepEqual(app.pipeline.storeWriteState(), { ok: true });
  const warns = (re: RegExp) => log.entries.filter((e) => e.level === 'warn' && re.test(e.msg));
  const held = (re: RegExp) => log.entries.filter((e) => e.level === 'debug' && re.test(e.msg) && e.fields.heldBack === true);
  // the pipeline's line: the first failure at warn, the five redeliveries that failed again at debug; the bus's
  // line at debug every time (the pipeline logged the failure: markReported)
  assert.equal(warns(/intervals not stored, batch will be redelivered/).length, 1);
  assert.equal(held(/intervals not stored, batch will be redelivered/).length, 5);
  assert.equal(warns(/bus handler failed, will redeliver/).length, 0);
  assert.equal(log.entries.filter((e) => e.level === 'debug' && /bus handler failed, will redeliver/.test(e.msg)).length, 6);
  const back = log.entries.filter((e) => e.level === 'info' && /^store writes succeed again after \d+ s \(6 failed writes before/.test(e.msg));
  assert.equal(back.length, 1, JSON.stringify(log.entries.filter((e) => e.level !== 'debug').map((e) => e.msg)));
  assert.equal(back[0]!.fields.failedWrites, 6);
  // and nothing lost on the way
  const rows = (await chdb.query(`SELECT count() AS n FROM host_samples`)).rows;
  assert.equal(Number(rows[0]!.n), 2);
  assert.equal(app.pipeline.stats.storeFailures, 6);
});

test('a store that logs its own failure (as SqlStore does): the outage is one warning in all, the collector and bus lines at debug', async (t) => {
  const { log, bus, chdb, store, app } = await collectorWithOutages(t, 1, ['before', 'before', 'before'], undefined, true);
  const frames = [];
  for (let seq = 1; seq <= 3; seq++) frames.push(encoded(HOST_A, seq));
  assert.equal((await bus.producer().send(TOPICS.telemetry, frames)).kind, 'ok');
  await bus.idle();
  assert.equal(store.failures, 3);
  const during = log.entries.filter((e) => (e.level === 'warn' || e.level === 'error') && /injected outage/.test(e.msg));
  assert.deepEqual(during.map((e) => e.msg), ['write 2 intervals: injected outage on write #1', 'write 2 intervals: injected outage on write #2', 'write 2 intervals: injected outage on write #3']);
  const pipelineLines = log.entries.filter((e) => /intervals not stored, batch will be redelivered/.test(e.msg));
  assert.ok(pipelineLines.length === 3 && pipelineLines.every((e) => e.level === 'debug' && e.fields.reportedBelow === true), JSON.stringify(pipelineLines));
  const busLines = log.entries.filter((e) => /bus handler failed, will redeliver/.test(e.msg));
  assert.ok(busLines.length === 3 && busLines.every((e) => e.level === 'debug'), JSON.stringify(busLines));
  assert.equal(log.entries.filter((e) => e.level === 'info' && /^store writes succeed again after/.test(e.msg)).length, 1);
  assert.equal(Number((await chdb.query(`SELECT count() AS n FROM host_samples`)).rows[0]!.n), 2);
  assert.equal(app.pipeline.stats.storeFailures, 3);
});

test('partitions share a store write (group commit); when its acknowledgement is lost the group is retried verbatim: nothing counted twice', async (t) => {
  // Write 1 is slow, so the other two partitions' batches queue and go into write 2, which lands but reports a failure.
  const { log, bus, chdb, store, app } = await collectorWithOutages(t, 3, ['slow', 'after']);
  // One host per partition.
  const hosts: HostSpec[] = [];
  for (let i = 0; hosts.length < 3 && i < 1000; i++) {
    const id = `hv-g${i}`;
    if (!hosts.some((h) => partitionForKey(h.hostId, 3) === partitionForKey(id, 3))) hosts.push({ ...HOST_A, hostId: id, vms: { [`${id}-web`]: ['acme', 1], [`${id}-db`]: ['globex', 3] } });
  }
  assert.equal(hosts.length, 3);
  const p = bus.producer();
  const frames = [];
  for (let seq = 1; seq <= 4; seq++) for (const h of hosts) frames.push(encoded(h, seq));
  assert.equal((await p.send(TOPICS.telemetry, frames)).kind, 'ok');
  await bus.idle();

  const s = app.pipeline.writer.stats;
  assert.ok(s.callers > s.writes, `some write carried several partitions' batches: ${JSON.stringify(s)}`);
  assert.equal(store.failures, 1);
  assert.ok(log.entries.some((e) => /intervals not stored, batch will be redelivered/.test(e.msg)));
  // No FINAL: the retried group was dropped by its deduplication token, not merged away later.
  const rows = (await chdb.query(`SELECT host, count() AS n, uniqExact(seq) AS u FROM host_samples GROUP BY host ORDER BY host`)).rows;
  assert.deepEqual(rows.map((r) => [r.host, Number(r.n), Number(r.u)]), hosts.map((h) => [h.hostId, 3, 3]).sort());
  const roll = (await chdb.query(`SELECT sum(dynamic_j + static_j) AS j FROM tenant_energy_hourly`)).rows[0]!;
  assert.ok(Math.abs(Number(roll.j) - 3 * 3 * HOST_A.bmcW) < 1e-6, JSON.stringify(roll));
  const attributed = (await chdb.query(`SELECT sum(dynamic_j + static_j) AS j FROM attributions`)).rows[0]!;
  assert.ok(Math.abs(Number(attributed.j) - 3 * 3 * HOST_A.bmcW) < 1e-6, JSON.stringify(attributed));
  assert.equal(app.pipeline.metrics.value('wattsplit_collector_intervals_total', { method: 'cpu_share' }), 9);
});

test('spaced store writes (storeWrites.minIntervalMs): frames arriving in between share a write; a lost acknowledgement still counts nothing twice', async (t) => {
  const { log, bus, chdb, store, app } = await collectorWithOutages(t, 3, ['ok', 'after'], { minIntervalMs: 150 });
  const hosts: HostSpec[] = [];
  for (let i = 0; hosts.length < 3 && i < 1000; i++) {
    const id = `hv-s${i}`;
    if (!hosts.some((h) => partitionForKey(h.hostId, 3) === partitionForKey(id, 3))) hosts.push({ ...HOST_A, hostId: id, vms: { [`${id}-web`]: ['acme', 1], [`${id}-db`]: ['globex', 3] } });
  }
  const p = bus.producer();
  // Six rounds of one frame per host, 30 ms apart: the handlers run far more often than writes may start.
  for (let seq = 1; seq <= 6; seq++) {
    assert.equal((await p.send(TOPICS.telemetry, hosts.map((h) => encoded(h, seq)))).kind, 'ok');
    await new Promise((r) => setTimeout(r, 30));
  }
  await bus.idle();
  const s = app.pipeline.writer.stats;
  assert.ok(s.callers > s.writes, `writes were shared: ${JSON.stringify(s)}`);
  // Group writes start at least 150 ms apart, so no more of them fit in the time the writes took. (The
  // redelivered partitions first ask the store which intervals of the unanswered write landed: all of
  // them here, so nothing is written again, on servers with and without deduplication tokens.)
  const span = store.starts.at(-1)! - store.starts[0]!;
  assert.ok(s.writes <= Math.floor(span / 150) + 1, `${s.writes} group writes in ${span.toFixed(0)} ms`);
  assert.ok(log.entries.some((e) => /intervals of an unanswered write had landed: not written again/.test(e.msg)), 'the lost acknowledgement was noticed and checked');
  assert.equal(store.failures, 1);
  const rows = (await chdb.query(`SELECT host, count() AS n, uniqExact(seq) AS u FROM host_samples GROUP BY host ORDER BY host`)).rows;
  assert.deepEqual(rows.map((r) => [r.host, Number(r.n), Number(r.u)]), hosts.map((h) => [h.hostId, 5, 5]).sort());
  const attributed = (await chdb.query(`SELECT sum(dynamic_j + static_j) AS j FROM attributions`)).rows[0]!;
  assert.ok(Math.abs(Number(attributed.j) - 3 * 5 * HOST_A.bmcW) < 1e-6, JSON.stringify(attributed));
  assert.equal(app.pipeline.metrics.value('wattsplit_collector_intervals_total', { method: 'cpu_share' }), 15);
});

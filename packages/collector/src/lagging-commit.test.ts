// A collector on a bus that redelivers (Kafka; here an in-process bus that claims it, shared by two collector
// instances as Kafka would be by two processes) saves restart checkpoints and commits offsets at most every
// checkpoints.everyMs, not with every stored batch. After a restart the frames since the last commit come again:
// the stored ones are recognised (by the checkpoint saved at a graceful stop, or by the store when the stop saved
// nothing), nothing is written twice, and the interval after them is attributed from them: every joule once.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InProcessBus, TOPICS, WattsplitError, failed, memoryLogger, type Logger } from '@wattsplit/wire';
import { ChdbStore, type Checkpoint, type StoredRange } from '@wattsplit/store';
import { createCollectorApp } from './collector-module.js';
import { DEFAULT_CHECKPOINT_EVERY_MS } from './config.js';
import { DelegatingStore } from './test-stores.js';
import { HOST_A, HOST_B, encoded } from './test-frames.js';

class CountingStore extends DelegatingStore {
  checkpointSaves = 0;
  checkpointsSaved = 0;
  storedChecks = 0;
  refuseCheckpoints = false;
  override saveCheckpoints(c: readonly Checkpoint[]) {
    if (this.refuseCheckpoints) return Promise.resolve(failed(new WattsplitError('STORE_UNAVAILABLE', 'test: the process died before this save', { retriable: true })));
    this.checkpointSaves++;
    this.checkpointsSaved += c.length;
    return super.saveCheckpoints(c);
  }
  override storedIntervals(h: string, seqs: readonly number[]) {
    this.storedChecks++;
    return super.storedIntervals(h, seqs);
  }
  rangeChecks = 0;
  override storedIntervalRanges(r: readonly StoredRange[]) {
    this.rangeChecks++;
    return super.storedIntervalRanges(r);
  }
}

/** A data directory and an in-process bus for one test, removed and closed after it. */
function setup(t: TestContext, busOpts: { partitions: number; redelivers?: boolean }): { dir: string; log: ReturnType<typeof memoryLogger>; bus: InProcessBus } {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-lag-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const log = memoryLogger();
  const bus = new InProcessBus({ ...busOpts, logger: log });
  t.after(() => bus.close());
  return { dir, log, bus };
}

async function collector(bus: InProcessBus, dir: string, log: Logger, everyMs: number | undefined) {
  const chdb = new ChdbStore({ dataDir: join(dir, 'db'), logger: log });
  const store = new CountingStore(chdb);
  const app = await createCollectorApp({ bus, store, logger: log, ...(everyMs === undefined ? {} : { checkpoints: { everyMs } }) });
  return {
    store,
    pipeline: app.pipeline,
    send: async (seqs: readonly number[]) => {
      assert.equal((await bus.producer().send(TOPICS.telemetry, seqs.flatMap((s) => [encoded(HOST_A, s), encoded(HOST_B, s)]))).kind, 'ok');
      await bus.idle();
    },
    close: async () => {
      await app.close();
      await chdb.close();
    },
  };
}

/** Per host: the stored seqs, and the joules of cpu_share in the hourly rollup (fed by every inserted row: an interval written twice counts twice there). */
async function stored(dir: string, log: Logger): Promise<{ seqs: Record<string, number[]>; joules: Record<string, number> }> {
  const chdb = new ChdbStore({ dataDir: join(dir, 'db'), logger: log });
  try {
    await chdb.init();
    const seqs: Record<string, number[]> = {};
    for (const r of (await chdb.query(`SELECT host, seq FROM host_samples FINAL ORDER BY host, seq`)).rows) (seqs[String(r.host)] ??= []).push(Number(r.seq));
    const joules: Record<string, number> = {};
    for (const r of (await chdb.query(`SELECT host, sum(dynamic_j + static_j) AS j FROM vm_energy_hourly WHERE method = 'cpu_share' GROUP BY host`)).rows) joules[String(r.host)] = Number(r.j);
    return { seqs, joules };
  } finally {
    await chdb.close();
  }
}

/** Every interval of a host is 1 s of its BMC power, split whole over the sources (RAPL, GPU, the wall-side rest). */
function assertEachOnce(s: { joules: Record<string, number> }, intervals: number): void {
  for (const h of [HOST_A, HOST_B]) {
    const j = s.joules[h.hostId] ?? 0;
    assert.ok(Math.abs(j - intervals * h.bmcW) < 1e-6, `${h.hostId}: ${j} J stored, ${intervals} intervals × ${h.bmcW} W = ${intervals * h.bmcW} J measured`);
  }
}

test('checkpoints every everyMs on a redelivering bus: saved once per period, offsets committed with them, a graceful stop saves the rest', async (t) => {
  const { dir, log, bus } = setup(t, { partitions: 1, redelivers: true });

  const c1 = await collector(bus, dir, log, 60_000);
  assert.equal(c1.pipeline.checkpointEveryMs, 60_000);
  await c1.send([1, 2, 3]);
  await c1.send([4, 5]);
  await c1.send([6]);
  assert.equal(c1.store.checkpointSaves, 1, 'only the first batch saved checkpoints (the next are within the minute)');
  assert.ok(bus.lag(TOPICS.telemetry, 'wattsplit-collector') > 0, 'the batches after it are handled, not committed');
  await c1.close();
  assert.equal(c1.store.checkpointSaves, 2, 'the stop saved the hosts\u2019 last frames');
  assert.ok(log.entries.some((e) => e.msg === "saved 2 hosts' checkpoints at stop"));

  const c2 = await collector(bus, dir, log, 60_000);
  await c2.send([7, 8]);
  assert.equal(c2.store.storedChecks, 0, 'the redelivered frames are replays of the checkpoints: no store check');
  assert.ok(c2.pipeline.stats.framesReplayed >= 6, `replays skipped: ${c2.pipeline.stats.framesReplayed}`);
  await c2.close();

  const s = await stored(dir, log);
  assert.deepEqual(s.seqs, { 'hv-a': [2, 3, 4, 5, 6, 7, 8], 'hv-b': [2, 3, 4, 5, 6, 7, 8] });
  assertEachOnce(s, 7);
});

test('a crash between two checkpoint saves: the frames since the last commit come again, the stored ones are checked and skipped, nothing lost or doubled', async (t) => {
  const { dir, log, bus } = setup(t, { partitions: 2, redelivers: true });

  const c1 = await collector(bus, dir, log, undefined);
  assert.equal(c1.pipeline.checkpointEveryMs, DEFAULT_CHECKPOINT_EVERY_MS, 'the default on a bus that redelivers');
  await c1.send([1, 2]);
  await c1.send([3, 4, 5]);
  const savedBefore = c1.store.checkpointSaves;
  c1.store.refuseCheckpoints = true; // the process dies: nothing more is saved, the offsets stay where they were
  await c1.close();
  assert.ok(log.entries.some((e) => /could not save checkpoints at stop/.test(e.msg)));
  assert.ok(savedBefore >= 1);

  const c2 = await collector(bus, dir, log, undefined);
  await c2.send([6]);
  assert.ok(c2.store.rangeChecks >= 1 && c2.store.rangeChecks <= 2, `the redelivered stored frames are checked against the store, one lookup per partition's batch (${c2.store.rangeChecks})`);
  assert.equal(c2.store.storedChecks, 0, 'not one query per frame');
  await c2.close();

  const s = await stored(dir, log);
  assert.deepEqual(s.seqs, { 'hv-a': [2, 3, 4, 5, 6], 'hv-b': [2, 3, 4, 5, 6] });
  assertEachOnce(s, 5);
});

test('a partition that goes quiet: its checkpoints are saved and its offsets committed everyMs after its last batch', async (t) => {
  const { dir, log, bus } = setup(t, { partitions: 1, redelivers: true });
  const c = await collector(bus, dir, log, 400);
  try {
    await c.send([1, 2]);
    await c.send([3]);
    assert.equal(c.store.checkpointSaves, 1);
    assert.ok(bus.lag(TOPICS.telemetry, 'wattsplit-collector') > 0, 'the second batch is handled, not committed');
    await new Promise((r) => setTimeout(r, 900));
    assert.equal(c.store.checkpointSaves, 2, 'the idle partition saved its checkpoints');
    assert.equal(bus.lag(TOPICS.telemetry, 'wattsplit-collector'), 0, 'and committed what it handled');
    await c.send([4]);
  } finally {
    await c.close();
  }
  // a stop after that saved the rest; a new collector resumes from it: every interval once
  const s = await stored(dir, log);
  assert.deepEqual(s.seqs, { 'hv-a': [2, 3, 4], 'hv-b': [2, 3, 4] });
  assertEachOnce(s, 3);
});

test('checkpoints.everyMs on a bus that does not redeliver is ignored (saved with every batch), with a warning', async (t) => {
  const { dir, log, bus } = setup(t, { partitions: 1 });
  const c = await collector(bus, dir, log, 5_000);
  try {
    assert.equal(c.pipeline.checkpointEveryMs, 0);
    assert.ok(log.entries.some((e) => e.level === 'warn' && /checkpoints\.everyMs=5000 ignored/.test(e.msg)));
    await c.send([1, 2]);
    await c.send([3]);
    assert.equal(c.store.checkpointSaves, 2, 'one save per stored batch');
    assert.equal(bus.lag(TOPICS.telemetry, 'wattsplit-collector'), 0, 'every batch committed');
  } finally {
    await c.close();
  }
});


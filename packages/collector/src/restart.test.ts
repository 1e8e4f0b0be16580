// A collector restart: the new instance seeds each host's aligner from the stored checkpoint, so the
// interval spanning the restart is attributed; a checkpoint older than the stored intervals, with the frames
// between them not redelivered, is not used as the start of an interval (it would count stored energy again).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InProcessBus, TOPICS, WattsplitError, memoryLogger, partitionForKey, type Logger } from '@wattsplit/wire';
import { ChdbStore, type HistoryQuery, type QueryFormat, type Store } from '@wattsplit/store';
import { startEmbeddedCollector } from './embedded.js';
import { createCollectorApp } from './collector-module.js';
import { DelegatingStore } from './test-stores.js';
import { HOST_A, encoded, type HostSpec } from './test-frames.js';

async function run(dataDir: string, log: Logger, seqs: number[], before?: (c: Awaited<ReturnType<typeof startEmbeddedCollector>>) => Promise<void>): Promise<number[]> {
  const bus = new InProcessBus({ partitions: 2 });
  const c = await startEmbeddedCollector({ dataDir, bus, logger: log });
  try {
    if (before) await before(c);
    await bus.producer().send(TOPICS.telemetry, seqs.map((s) => encoded(HOST_A, s)));
    await bus.idle();
    return (await c.store.query(`SELECT seq FROM host_samples FINAL WHERE host = 'hv-a' ORDER BY seq`)).rows.map((r) => Number(r.seq));
  } finally {
    await c.close();
    await bus.close();
  }
}

test('restart: resume from the checkpoint; a stale checkpoint is refused rather than double counting', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-restart-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const db = join(dir, 'db');
  const log = memoryLogger();

  assert.deepEqual(await run(db, log, [1, 2, 3]), [2, 3]);
  // A new collector (new bus: delivery resumes after the committed offsets): 3→4 is not lost.
  assert.deepEqual(await run(db, log, [4, 5]), [2, 3, 4, 5]);
  assert.ok(log.entries.some((e) => e.msg === 'resumed hv-a from its checkpoint at seq 3'));

  // A checkpoint behind the stored intervals (a crash between the two writes) must not be used.
  const seqs = await run(db, log, [6, 7], async (c) => {
    await c.store.query('TRUNCATE TABLE collector_checkpoints', 'CSV');
    assert.equal((await c.store.saveCheckpoints([{ hostId: 'hv-a', seq: 2, bootId: 'boot-1', frame: encoded(HOST_A, 2).value }])).kind, 'ok');
  });
  assert.deepEqual(seqs, [2, 3, 4, 5, 7]);
  assert.ok(log.entries.some((e) => /checkpoint of hv-a is older than its stored intervals/.test(e.msg)));
  // Energy: 5 one-second intervals, each counted once.
  const again = await run(db, log, [], async (c) => {
    const j = (await c.store.query(`SELECT sum(dynamic_j + static_j) AS j FROM attributions WHERE host = 'hv-a'`)).rows[0]!;
    assert.ok(Math.abs(Number(j.j) - 5 * HOST_A.bmcW) < 1e-6, String(j.j));
  });
  assert.equal(again.length, 5);
});

/** Counts the lookups a resume makes: the single-host ones, the batched one, the learner-state SELECTs and the replays' reads. */
class CountingStore extends DelegatingStore {
  readonly calls = { loadCheckpoint: 0, highestStoredSeq: 0, resumeState: 0, learnerStateSelects: 0, historyReads: 0 };
  override loadCheckpoint(h: string) {
    this.calls.loadCheckpoint++;
    return super.loadCheckpoint(h);
  }
  override highestStoredSeq(h: string) {
    this.calls.highestStoredSeq++;
    return super.highestStoredSeq(h);
  }
  override resumeState(hs: readonly string[]) {
    this.calls.resumeState++;
    return super.resumeState(hs);
  }
  override query(sql: string, f?: QueryFormat) {
    if (/^\s*SELECT[\s\S]*\bFROM learner_state\b/i.test(sql)) this.calls.learnerStateSelects++;
    return super.query(sql, f);
  }
  override readHistory(q: HistoryQuery) {
    this.calls.historyReads++;
    return super.readHistory(q);
  }
}

/**
 * One collector on the data directory `dir`/db with the store `wrap` makes of it, handed seq `seqs` of every host
 * on a new in-process bus of `partitions`; returns that store once everything sent was handled and the app closed.
 */
async function collectorRun<S extends Store>(dir: string, log: Logger, partitions: number, hosts: readonly HostSpec[], seqs: readonly number[], wrap: (chdb: ChdbStore) => S): Promise<S> {
  const bus = new InProcessBus({ partitions, logger: log });
  const chdb = new ChdbStore({ dataDir: join(dir, 'db'), logger: log });
  const store = wrap(chdb);
  const app = await createCollectorApp({ bus, store, logger: log });
  try {
    assert.equal((await bus.producer().send(TOPICS.telemetry, seqs.flatMap((s) => hosts.map((h) => encoded(h, s))))).kind, 'ok');
    await bus.idle();
  } finally {
    await app.close();
    await chdb.close();
    await bus.close();
  }
  return store;
}

test('restart with many hosts: one batched lookup resumes them all (checkpoints, stored floors, learner states), none is lost', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-restart-many-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const hosts = Array.from({ length: 6 }, (_, i) => ({ ...HOST_A, hostId: `hv-m${i}` }));
  const log = memoryLogger();
  // three partitions: their handlers interleave, each with its hosts' lookup in flight
  const runOnce = (seqs: number[]) => collectorRun(dir, log, 3, hosts, seqs, (chdb) => new CountingStore(chdb));
  const partitionsUsed = new Set(hosts.map((h) => partitionForKey(h.hostId, 3))).size;
  assert.ok(partitionsUsed >= 2, 'the hosts spread over partitions');
  const first = await runOnce([1, 2, 3]);
  assert.equal(first.calls.resumeState, partitionsUsed, 'a fresh collector looks each partition\'s first batch of hosts up together too');
  assert.equal(first.calls.loadCheckpoint + first.calls.highestStoredSeq, 0);
  assert.equal(first.calls.historyReads, 0, 'nothing stored yet: no replay query');
  const second = await runOnce([4, 5]);
  // per partition one batch of frames from hosts this collector has not seen: one lookup for all of them, none per host
  assert.deepEqual(second.calls, { loadCheckpoint: 0, highestStoredSeq: 0, resumeState: partitionsUsed, learnerStateSelects: partitionsUsed, historyReads: 0 });
  for (const h of hosts) assert.ok(log.entries.some((e) => e.msg === `resumed ${h.hostId} from its checkpoint at seq 3`), h.hostId);
  // no saved learner state (a collector killed before its first save): every host's stored intervals are
  // replayed, one read each, while the partitions' batches interleave; still no single-host lookup
  const wipe = new ChdbStore({ dataDir: join(dir, 'db'), logger: log });
  await wipe.query('TRUNCATE TABLE learner_state', 'CSV');
  await wipe.close();
  const third = await runOnce([6, 7]);
  assert.deepEqual(third.calls, { loadCheckpoint: 0, highestStoredSeq: 0, resumeState: partitionsUsed, learnerStateSelects: partitionsUsed, historyReads: hosts.length });
  for (const h of hosts) assert.ok(log.entries.some((e) => e.msg === `learners of ${h.hostId} caught up on 4 stored intervals after their saved state`), h.hostId);
  const chdb = new ChdbStore({ dataDir: join(dir, 'db'), logger: log });
  try {
    const rows = (await chdb.query(`SELECT host, groupArray(seq) AS seqs FROM (SELECT host, seq FROM host_samples FINAL WHERE host LIKE 'hv-m%' ORDER BY host, seq) GROUP BY host ORDER BY host`)).rows;
    assert.deepEqual(rows.map((r) => [r.host, (r.seqs as unknown[]).map(Number)]), hosts.map((h) => [h.hostId, [2, 3, 4, 5, 6, 7]]), 'the intervals spanning the restarts attributed for every host');
    const restored = log.entries.filter((e) => /^restored pipeline\//.test(e.msg)).length;
    assert.ok(restored >= hosts.length, `the static power learner's state restored for every host (${restored} restores logged)`);
  } finally {
    await chdb.close();
  }
});

/** A real store whose first `failures` resumeState calls throw, as a query to a server that is down does. */
class ResumeOutageStore extends CountingStore {
  constructor(
    inner: Store,
    private failures: number,
  ) {
    super(inner);
  }
  override resumeState(hs: readonly string[]) {
    if (this.failures > 0) {
      this.failures--;
      this.calls.resumeState++;
      return Promise.reject(new WattsplitError('STORE_UNAVAILABLE', 'injected: store down while resuming hosts', { retriable: true }));
    }
    return super.resumeState(hs);
  }
}

test('restart with the store down while the hosts are looked up: the batch is redelivered, resumed then, nothing lost or counted twice', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-restart-down-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const hosts = Array.from({ length: 4 }, (_, i) => ({ ...HOST_A, hostId: `hv-d${i}` }));
  const log = memoryLogger();
  const runOnce = (seqs: number[], failures: number) => collectorRun(dir, log, 1, hosts, seqs, (chdb) => new ResumeOutageStore(chdb, failures));
  await runOnce([1, 2, 3], 0);
  const second = await runOnce([4, 5], 2);
  assert.equal(second.calls.resumeState, 3, 'two failed lookups, then the one that answered');
  assert.equal(second.calls.loadCheckpoint + second.calls.highestStoredSeq, 0, 'no host looked up alone');
  assert.ok(log.entries.some((e) => e.level === 'warn' && /bus handler failed, will redeliver: injected: store down while resuming hosts/.test(e.msg)), 'the failure is logged where it happened');
  for (const h of hosts) assert.ok(log.entries.some((e) => e.msg === `resumed ${h.hostId} from its checkpoint at seq 3`), h.hostId);
  const chdb = new ChdbStore({ dataDir: join(dir, 'db'), logger: log });
  try {
    const rows = (await chdb.query(`SELECT host, count() AS n, groupUniqArray(seq) AS seqs, sum(dynamic_j + static_j) AS j FROM attributions FINAL WHERE host LIKE 'hv-d%' AND method = 'cpu_share' AND source = 'bmc_rest' GROUP BY host ORDER BY host`)).rows;
    assert.equal(rows.length, hosts.length);
    for (const r of rows) {
      assert.deepEqual((r.seqs as unknown[]).map(Number).sort((a, b) => a - b), [2, 3, 4, 5], String(r.host));
      // each 1 s interval once: the wall-side rest over 4 s
      assert.ok(Math.abs(Number(r.j) - 4 * (HOST_A.bmcW - HOST_A.raplW - HOST_A.dramW - HOST_A.gpuW)) < 1e-6, `${String(r.host)}: ${String(r.j)} J`);
    }
  } finally {
    await chdb.close();
  }
});

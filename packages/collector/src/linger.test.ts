// storeWrites.linger: with spaced store writes, a partition's handler returns shortly before the next write
// may start, so frames that arrive while it waits go into that write instead of the one after it.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InProcessBus, TOPICS, memoryLogger, type TransportResult } from '@wattsplit/wire';
import { ChdbStore, type IntervalWrite } from '@wattsplit/store';
import { DelegatingStore } from './test-stores.js';
import { createCollectorApp } from './collector-module.js';
import { HOST_A, encoded } from './test-frames.js';

/** Records the seqs of each interval write (one entry per group write). */
class RecordingStore extends DelegatingStore {
  readonly writes: { at: number; seqs: number[] }[] = [];
  override writeIntervals(ws: readonly IntervalWrite[]): Promise<TransportResult> {
    this.writes.push({ at: performance.now(), seqs: ws.map((w) => w.interval.seq) });
    return this.inner.writeIntervals(ws);
  }
  /** Index of the write that stored seq. */
  writeOf(seq: number): number {
    return this.writes.findIndex((w) => w.seqs.includes(seq));
  }
}

async function collector(t: TestContext, storeWrites: { minIntervalMs: number; linger?: boolean }) {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-linger-'));
  const log = memoryLogger();
  const bus = new InProcessBus({ partitions: 1, logger: log });
  const chdb = new ChdbStore({ dataDir: join(dir, 'db'), logger: log });
  const store = new RecordingStore(chdb);
  const app = await createCollectorApp({ bus, store, logger: log, staticPower: { learn: false, fallbackWatts: { rapl: 20 } }, storeWrites });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await app.close();
  };
  t.after(async () => {
    await close();
    await chdb.close();
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { bus, store, app, close };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * seq 1-2 (the first write, at once), then seq 3 and seq 4 while the partition waits for the second write
 * (spaced 800 ms from the first): 150 and 300 ms after the first write.
 */
async function scenario(t: TestContext, linger: boolean) {
  const c = await collector(t, { minIntervalMs: 800, linger });
  const p = c.bus.producer();
  assert.equal((await p.send(TOPICS.telemetry, [encoded(HOST_A, 1), encoded(HOST_A, 2)])).kind, 'ok');
  while (c.store.writeOf(2) < 0) await sleep(5);
  const first = c.store.writes[c.store.writeOf(2)]!.at;
  await sleep(Math.max(0, first + 150 - performance.now()));
  assert.equal((await p.send(TOPICS.telemetry, [encoded(HOST_A, 3)])).kind, 'ok');
  await sleep(Math.max(0, first + 300 - performance.now()));
  assert.equal((await p.send(TOPICS.telemetry, [encoded(HOST_A, 4)])).kind, 'ok');
  await c.bus.idle();
  return c;
}

test('linger: frames arriving while a partition waits for the next spaced write go into that write', async (t) => {
  const c = await scenario(t, true);
  const w2 = c.store.writeOf(2);
  const w3 = c.store.writeOf(3);
  assert.ok(w2 >= 0 && w3 > w2, `seq 3 stored after seq 2: writes ${JSON.stringify(c.store.writes.map((w) => w.seqs))}`);
  assert.equal(c.store.writeOf(4), w3, `seq 4 in the same write as seq 3: ${JSON.stringify(c.store.writes.map((w) => w.seqs))}`);
  // that write is the next one after the first, and spaced from it
  assert.equal(w3, w2 + 1);
  assert.ok(c.store.writes[w3]!.at - c.store.writes[w2]!.at >= 795);
  assert.ok(c.app.pipeline.metrics.value('wattsplit_collector_linger_seconds_total', {}) > 0.3, 'the handler held its next batch back');
  const rows = (await c.store.query('SELECT seq FROM host_samples ORDER BY seq')).rows ?? [];
  assert.deepEqual(rows.map((r) => Number(r.seq)), [2, 3, 4]);
});

test('linger off: a frame arriving while the partition waits for the spaced write waits for the write after it', async (t) => {
  const c = await scenario(t, false);
  const w3 = c.store.writeOf(3);
  const w4 = c.store.writeOf(4);
  assert.ok(w3 > c.store.writeOf(2), JSON.stringify(c.store.writes.map((w) => w.seqs)));
  assert.equal(w4, w3 + 1, `seq 4 one write later than seq 3: ${JSON.stringify(c.store.writes.map((w) => w.seqs))}`);
  assert.equal(c.app.pipeline.metrics.value('wattsplit_collector_linger_seconds_total', {}), 0);
});

test('linger: closing the collector ends a hold at once', async (t) => {
  const c = await collector(t, { minIntervalMs: 20_000 });
  const p = c.bus.producer();
  assert.equal((await p.send(TOPICS.telemetry, [encoded(HOST_A, 1), encoded(HOST_A, 2)])).kind, 'ok');
  // the handler is held once its batch is stored and published (about 20 s, the spacing)
  const deadline = performance.now() + 10_000;
  while (c.app.pipeline.metrics.value('wattsplit_collector_linger_seconds_total', {}) === 0 && performance.now() < deadline) await sleep(5);
  assert.ok(c.app.pipeline.metrics.value('wattsplit_collector_linger_seconds_total', {}) > 10, 'held for most of the spacing');
  const t0 = performance.now();
  await c.close();
  const took = performance.now() - t0;
  assert.ok(took < 8_000, `close took ${took.toFixed(0)} ms while a handler was held for ~20 s`);
  assert.equal(c.store.writeOf(2), 0);
});

// Failures other than a store outage: the attribution publish fails (the batch is retried verbatim, the
// store write deduplicated), and the store refuses one interval for good (it is dead-lettered, the rest kept).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InProcessBus, TOPICS, WattsplitError, failed, memoryLogger, retryable, type Bus, type BusMessage, type BusProducer, type SubscribeOptions, type TransportResult } from '@wattsplit/wire';
import { ChdbStore, type IntervalWrite, type Store } from '@wattsplit/store';
import { DelegatingStore } from './test-stores.js';
import { createCollectorApp } from './collector-module.js';
import { DLQ_HEADERS } from './telemetry-pipeline.js';
import { HOST_A, HOST_B, encoded } from './test-frames.js';

/**
 * The in-process bus, whose producer fails the next `failAttribution` sends to the attribution topic, and
 * whose lag() answers asynchronously, as the Kafka buses' (they ask the broker).
 */
class FlakyPublishBus implements Bus {
  failAttribution = 0;
  constructor(readonly inner: InProcessBus) {}
  subscribe(o: SubscribeOptions) { return this.inner.subscribe(o); }
  async lag(topic: string, groupId: string): Promise<number> {
    await new Promise((r) => setTimeout(r, 5));
    return this.inner.lag(topic, groupId);
  }
  producer(): BusProducer {
    const p = this.inner.producer();
    return {
      send: async (topic, messages): Promise<TransportResult> => {
        if (topic === TOPICS.attribution && this.failAttribution > 0) {
          this.failAttribution--;
          return retryable(new WattsplitError('TRANSPORT_UNAVAILABLE', 'injected: attribution topic unavailable', { retriable: true }), 10);
        }
        return p.send(topic, messages);
      },
      close: () => p.close(),
    };
  }
  close() { return this.inner.close(); }
}

/** A real store that refuses (failed, not retryable) any batch holding host `badHost` seq `badSeq`. */
class PickyStore extends DelegatingStore {
  constructor(inner: Store, private readonly badHost: string, private readonly badSeq: number) {
    super(inner);
  }
  override async writeIntervals(ws: readonly IntervalWrite[]): Promise<TransportResult> {
    if (ws.some((w) => w.interval.hostId === this.badHost && w.interval.seq === this.badSeq)) {
      return failed(new WattsplitError('STORE_INVALID_INPUT', `injected: interval host=${this.badHost} seq=${this.badSeq} refused`));
    }
    return this.inner.writeIntervals(ws);
  }
}

test('a failed attribution publish, then a refused interval: no loss, no double count, the bad one dead-lettered', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-failures-'));
  const log = memoryLogger();
  const inner = new InProcessBus({ partitions: 2 });
  const bus = new FlakyPublishBus(inner);
  const chdb = new ChdbStore({ dataDir: join(dir, 'db'), logger: log });
  const app = await createCollectorApp({ bus, store: new PickyStore(chdb, 'hv-b', 5), logger: log });
  t.after(async () => {
    await app.close();
    await chdb.close();
    await inner.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const published: BusMessage[] = [];
  const dlq: BusMessage[] = [];
  await inner.subscribe({ topic: TOPICS.attribution, groupId: 't-attr', handler: async (ms) => void published.push(...ms) });
  await inner.subscribe({ topic: TOPICS.deadLetter, groupId: 't-dlq', handler: async (ms) => void dlq.push(...ms) });

  const p = inner.producer();
  bus.failAttribution = 2;
  const backlog = [];
  for (let seq = 1; seq <= 6; seq++) backlog.push(encoded(HOST_A, seq), encoded(HOST_B, seq));
  assert.equal((await p.send(TOPICS.telemetry, backlog)).kind, 'ok');
  await inner.idle();

  assert.equal(bus.failAttribution, 0);
  assert.ok(log.entries.some((e) => /attributions not published, batch will be redelivered/.test(e.msg)));
  // hv-a: 5 intervals; hv-b: 4 (seq 5 refused), each written once: no duplicate rows even without FINAL.
  const rows = (await chdb.query(`SELECT host, groupArray(seq) AS seqs, count() AS n, uniqExact(seq) AS u FROM (SELECT host, seq FROM host_samples ORDER BY host, seq) GROUP BY host ORDER BY host`)).rows;
  assert.deepEqual(rows.map((r) => [r.host, r.seqs]), [['hv-a', [2, 3, 4, 5, 6]], ['hv-b', [2, 3, 4, 6]]]);
  const roll = (await chdb.query(`SELECT sum(dynamic_j + static_j) AS j FROM tenant_energy_hourly`)).rows[0]!;
  assert.ok(Math.abs(Number(roll.j) - (5 * HOST_A.bmcW + 4 * HOST_B.bmcW)) < 1e-6, JSON.stringify(roll));
  // Each stored interval published exactly once.
  assert.equal(published.length, 9);
  assert.equal(new Set(published.map((m) => `${m.key}/${m.headers['x-wattsplit-seq']}`)).size, 9);
  // The refused interval's frame is in the dead-letter topic with the store's reason.
  assert.equal(dlq.length, 1);
  assert.equal(dlq[0]!.key, 'hv-b');
  assert.equal(dlq[0]!.headers[DLQ_HEADERS.code], 'STORE_INVALID_INPUT');
  assert.match(dlq[0]!.headers[DLQ_HEADERS.message]!, /host=hv-b seq=5 refused/);
  // /metrics with a bus whose lag() is asynchronous: a scrape never waits for it (nor breaks on it);
  // the answer shows in the next scrape.
  assert.doesNotMatch(app.pipeline.metrics.render(), /wattsplit_collector_bus_lag_messages \d/);
  await new Promise((r) => setTimeout(r, 50));
  assert.match(app.pipeline.metrics.render(), /wattsplit_collector_bus_lag_messages 0\n/);
});

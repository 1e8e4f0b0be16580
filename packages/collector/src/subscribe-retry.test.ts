// A collector whose bus cannot be reached when it starts (Kafka down, or not up yet) stays up and keeps trying
// to subscribe, with a warning each time; once the bus answers it consumes what waited. A refusal for good at
// the first attempt fails the start with its reason, and stopping while it retries ends the retries. (The
// shipped process with a real broker stopped and started: scripts/faults.mjs, collector_starts_while_kafka_down.)
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InProcessBus, TOPICS, WattsplitError, memoryLogger, type Bus, type BusProducer, type BusSubscription, type SubscribeOptions } from '@wattsplit/wire';
import { startEmbeddedCollector } from './embedded.js';
import { HOST_A, encoded } from './test-frames.js';

const dir = mkdtempSync(join(tmpdir(), 'wattsplit-subscribe-retry-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** An in-process bus whose telemetry subscriptions fail with `errors` first (one per attempt). */
class UnreachableAtFirst implements Bus {
  readonly inner = new InProcessBus({ partitions: 2 });
  attempts = 0;
  constructor(private readonly errors: WattsplitError[]) {}
  producer(): BusProducer {
    return this.inner.producer();
  }
  hasReaders(topic: string): boolean {
    return this.inner.hasReaders(topic);
  }
  subscribe(opts: SubscribeOptions): Promise<BusSubscription> {
    if (opts.topic !== TOPICS.telemetry) return this.inner.subscribe(opts);
    const e = this.errors[this.attempts++];
    return e ? Promise.reject(e) : this.inner.subscribe(opts);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

const down = (): WattsplitError => new WattsplitError('TRANSPORT_UNAVAILABLE', 'subscribe wattsplit.telemetry.v1 as wattsplit-collector: Connection error: connect ECONNREFUSED 127.0.0.1:9092', { retriable: true });
const opts = (name: string, bus: Bus, log = memoryLogger()) => ({ dataDir: join(dir, name), bus, logger: log, policy: 'reserved' as const, staticPower: { fallbackWatts: { rapl: 50, gpu: 30, bmc_rest: 100 }, learn: false } });

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('a collector started while the bus is unreachable stays up, retries, and consumes once the bus answers', async () => {
  const log = memoryLogger();
  const bus = new UnreachableAtFirst([down(), down()]);
  const c = await startEmbeddedCollector(opts('retry', bus, log));
  try {
    assert.equal(c.pipeline.consuming, false, 'started, not consuming yet');
    // frames sent meanwhile wait on the bus
    assert.equal((await bus.producer().send(TOPICS.telemetry, [1, 2, 3].map((s) => encoded(HOST_A, s)))).kind, 'ok');
    await until('the third attempt to subscribe', () => c.pipeline.consuming);
    assert.equal(bus.attempts, 3);
    const warnings = log.entries.filter((e) => e.level === 'warn' && /cannot consume wattsplit\.telemetry\.v1/.test(e.msg));
    assert.equal(warnings.length, 2, 'one warning per failed attempt');
    assert.deepEqual(warnings.map((w) => w.fields.attempts), [1, 2]);
    assert.match(warnings[0]!.msg, /ECONNREFUSED 127\.0\.0\.1:9092\); retrying in \d+\.\d s\. The collector stays up/);
    assert.equal(warnings[0]!.fields.code, 'TRANSPORT_UNAVAILABLE');
    assert.ok(log.entries.some((e) => e.level === 'info' && e.msg === 'collector consuming telemetry (subscribed at attempt 3)'));
    await bus.inner.idle();
    const n = Number((await c.store.query(`SELECT count(DISTINCT seq) AS n FROM attributions FINAL WHERE host = 'hv-a'`)).rows[0]!.n);
    assert.equal(n, 2, 'the frames that waited were consumed: seq 1 seeds, intervals 2 and 3 stored');
  } finally {
    await c.close();
    await bus.close();
  }
});

test('a bus that refuses the subscription for good fails the start with its reason', async () => {
  const refused = new WattsplitError('TRANSPORT_REJECTED', 'subscribe wattsplit.telemetry.v1 as wattsplit-collector: SASL authentication failed', { retriable: false });
  const bus = new UnreachableAtFirst([refused]);
  await assert.rejects(startEmbeddedCollector(opts('refused', bus)), (e: unknown) => e instanceof WattsplitError && e.code === 'TRANSPORT_REJECTED' && /SASL authentication failed/.test(e.message));
  assert.equal(bus.attempts, 1, 'not retried');
  // the store it opened was closed: another collector can open the same data directory
  const again = await startEmbeddedCollector(opts('refused', new UnreachableAtFirst([])));
  assert.equal(again.pipeline.consuming, true);
  await again.close();
  await bus.close();
});

test('stopping a collector while it retries ends the retries', async () => {
  const bus = new UnreachableAtFirst(Array.from({ length: 50 }, down));
  const c = await startEmbeddedCollector(opts('stop', bus));
  assert.equal(c.pipeline.consuming, false);
  await c.close();
  const attempts = bus.attempts;
  await new Promise((r) => setTimeout(r, 2500)); // longer than the first two back-offs
  assert.equal(bus.attempts, attempts, 'no attempt after close');
  assert.equal(c.pipeline.consuming, false);
  await bus.close();
});

// The embedded collector publishes attribution batches only while a consumer group in the process reads the
// attribution topic (Bus.hasReaders on the in-process bus): without one nothing is encoded or retained, the
// intervals are stored all the same, and the switch is logged; once a group subscribes the next batches
// reach it. A bus without hasReaders (Kafka) is always published to (pipeline-failures.test.ts wraps one).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InProcessBus, TOPICS, AttributionBatch, memoryLogger, type BusMessage } from '@wattsplit/wire';
import { startEmbeddedCollector } from './embedded.js';
import { HOST_A, encoded } from './test-frames.js';

const dir = mkdtempSync(join(tmpdir(), 'wattsplit-attr-readers-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('attribution batches are published only while a consumer group reads the in-process topic', async () => {
  const log = memoryLogger();
  const bus = new InProcessBus({ partitions: 2, logger: log });
  const c = await startEmbeddedCollector({ dataDir: join(dir, 'db'), bus, logger: log, policy: 'reserved', staticPower: { fallbackWatts: { rapl: 50, gpu: 30, bmc_rest: 100 }, learn: false } });
  try {
    const p = bus.producer();
    const stored = async (): Promise<number> => Number((await c.store.query(`SELECT count(DISTINCT seq) AS n FROM attributions FINAL WHERE host = 'hv-a'`)).rows[0]!.n);
    // no reader: seq 1 seeds the aligner, seq 2-4 are three intervals, stored and not published
    assert.equal(bus.hasReaders(TOPICS.attribution), false);
    assert.equal((await p.send(TOPICS.telemetry, [1, 2, 3, 4].map((s) => encoded(HOST_A, s)))).kind, 'ok');
    await bus.idle();
    assert.equal(await stored(), 3);
    assert.equal(bus.lag(TOPICS.attribution, 'nobody'), 0, 'nothing was sent to the attribution topic');
    const off = log.entries.filter((e) => e.fields.topic === TOPICS.attribution && e.fields.publishing === false);
    assert.equal(off.length, 1, 'the switch off is logged once');
    assert.equal(off[0]!.level, 'info');

    // a reader subscribes: the next intervals are published to it (and only those: the earlier ones were never sent)
    const got: BusMessage[] = [];
    const sub = await bus.subscribe({ topic: TOPICS.attribution, groupId: 'reader', fromBeginning: true, handler: async (ms) => void got.push(...ms) });
    assert.equal(bus.hasReaders(TOPICS.attribution), true);
    assert.equal((await p.send(TOPICS.telemetry, [5, 6].map((s) => encoded(HOST_A, s)))).kind, 'ok');
    await bus.idle();
    assert.equal(await stored(), 5);
    const seqs = got.map((m) => Number(AttributionBatch.decode(m.value).seq)).sort((a, b) => a - b);
    assert.deepEqual(seqs, [5, 6]);
    for (const m of got) {
      const b = AttributionBatch.decode(m.value);
      assert.equal(b.hostId, 'hv-a');
      assert.ok(b.records.length > 0);
    }
    assert.equal(log.entries.filter((e) => e.fields.topic === TOPICS.attribution && e.fields.publishing === true).length, 1, 'the switch back on is logged once');
    await sub.stop();
  } finally {
    await c.close();
    await bus.close();
  }
});

// A store write refused for good is counted (wattsplit_collector_store_failures_total{kind="failed"})
// and must also be logged, saying how many intervals of which hosts were refused, the store's reason, and
// what happens to them (written one by one; those refused again go to the dead-letter topic). Here each
// interval alone is accepted, so no dead-letter line stands in for the missing one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InProcessBus, TOPICS, WattsplitError, failed, memoryLogger, type TransportResult } from '@wattsplit/wire';
import { ChdbStore, type IntervalWrite } from '@wattsplit/store';
import { DelegatingStore } from './test-stores.js';
import { createCollectorApp } from './collector-module.js';
import { HOST_A, HOST_B, encoded } from './test-frames.js';

/** Refuses, for good, any write of more than one interval (as a server refuses an oversized insert). */
class SingleRowStore extends DelegatingStore {
  override async writeIntervals(ws: readonly IntervalWrite[]): Promise<TransportResult> {
    if (ws.length > 1) return failed(new WattsplitError('STORE_QUERY_FAILED', `injected: insert of ${ws.length} intervals too large`));
    return this.inner.writeIntervals(ws);
  }
}

test('a store write refused for good is logged with what was refused and where it went', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-refusal-log-'));
  const log = memoryLogger();
  const bus = new InProcessBus({ partitions: 1 });
  const chdb = new ChdbStore({ dataDir: join(dir, 'db') });
  const app = await createCollectorApp({ bus, store: new SingleRowStore(chdb), logger: log });
  t.after(async () => {
    await app.close();
    await chdb.close();
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const frames = [];
  for (let seq = 1; seq <= 3; seq++) frames.push(encoded(HOST_A, seq), encoded(HOST_B, seq));
  assert.equal((await bus.producer().send(TOPICS.telemetry, frames)).kind, 'ok');
  await bus.idle();

  assert.ok(app.pipeline.metrics.value('wattsplit_collector_store_failures_total', { kind: 'failed' }) >= 1);
  assert.equal(app.pipeline.stats.intervalsStored, 4, 'each interval alone was stored');
  const line = log.entries.find((e) => (e.level === 'error' || e.level === 'warn') && e.fields.code === 'STORE_QUERY_FAILED');
  assert.ok(line, `no log line for the refused write; log: ${JSON.stringify(log.entries.map((e) => e.msg))}`);
  assert.equal(typeof line.fields.intervals, 'number');
  assert.match(line.msg, /injected: insert of \d+ intervals too large/);
  assert.match(line.msg, /dead-letter|wattsplit\.telemetry\.v1\.dlq/);
});

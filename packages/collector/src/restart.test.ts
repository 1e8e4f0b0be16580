// A collector restart: the new instance seeds each host's aligner from the stored checkpoint, so the
// interval spanning the restart is attributed; a checkpoint older than the stored intervals, with the frames
// between them not redelivered, is not used as the start of an interval (it would count stored energy again).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InProcessBus, TOPICS, memoryLogger, type Logger } from '@wattsplit/wire';
import { startEmbeddedCollector } from './embedded.js';
import { HOST_A, encoded } from './test-frames.js';

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

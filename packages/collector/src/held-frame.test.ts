// A frame whose RAPL read failed is held by the aligner: the next good frame's interval spans it, so
// the stored energy over the run is exactly what the counters measured, and the held frame never
// becomes the checkpoint a restarted collector would resume from.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InProcessBus, TOPICS, encodeFrame, silentLogger } from '@wattsplit/wire';
import { startEmbeddedCollector } from './embedded.js';
import { HOST_A, frameAt } from './test-frames.js';

test('a failed sensor read loses no energy: stored joules equal the counters end to end', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-held-'));
  const bus = new InProcessBus({ partitions: 1 });
  const c = await startEmbeddedCollector({ dataDir: join(dir, 'db'), bus, logger: silentLogger });
  t.after(async () => {
    await c.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const frames = [1, 2, 3, 4, 5].map((seq) => frameAt(HOST_A, seq));
  frames[2]!.counters![0]!.error = 'EIO'; // seq 3: the package counter could not be read
  const r = await bus.producer().send(TOPICS.telemetry, frames.map((f) => ({ key: f.hostId!, value: encodeFrame(f) })));
  assert.equal(r.kind, 'ok');
  await bus.idle();

  const q = async (sql: string) => (await c.store.query(sql, 'JSONEachRow')).rows[0]!;
  const host = await q(`SELECT count() AS n, sum(rapl_j) AS rapl, sum(duration_s) AS s FROM host_samples FINAL WHERE host = 'hv-a'`);
  assert.equal(Number(host.n), 3, 'intervals 1→2, 2→4 (spanning the held seq 3), 4→5');
  assert.ok(Math.abs(Number(host.rapl) - 4 * (HOST_A.raplW + HOST_A.dramW)) < 1e-6, `RAPL over 4 s: ${String(host.rapl)}`);
  assert.ok(Math.abs(Number(host.s) - 4) < 1e-9);
  const attributed = await q(`SELECT sum(dynamic_j + static_j) AS j FROM attributions FINAL WHERE host = 'hv-a' AND source = 'rapl' AND method = 'cpu_share'`);
  assert.ok(Math.abs(Number(attributed.j) - 4 * (HOST_A.raplW + HOST_A.dramW)) < 1e-6);
  const anomaly = await q(`SELECT count() AS n FROM anomalies FINAL WHERE host = 'hv-a' AND code = 'SENSOR_READ_FAILED' AND seq = 3`);
  assert.equal(Number(anomaly.n), 1, 'the failed read is recorded where it happened');
  const cp = await c.store.loadCheckpoint('hv-a');
  assert.equal(cp?.seq, 5);
});

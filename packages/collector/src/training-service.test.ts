// TrainingService's scheduled check: a failure is a warning, but a check that the collector's own shutdown
// ends (lifecycle.stop terminates its worker, which rejects with "training worker exited (1) without a
// result") is logged at debug, so an operator stopping a collector sees no spurious failure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Store } from '@wattsplit/store';
import { WattsplitError, memoryLogger } from '@wattsplit/wire';
import { CollectorMetrics } from './collector-metrics.js';
import type { CollectorConfig } from './config.js';
import type { ModelCatalog } from './model-catalog.js';
import { TrainingService } from './training-service.js';

const catalog = { refresh: () => Promise.resolve(false), entries: () => [], get: () => undefined } as unknown as ModelCatalog;

function service(): { svc: TrainingService; log: ReturnType<typeof memoryLogger>; release: (e: Error) => void; started: Promise<void> } {
  const log = memoryLogger();
  const svc = new TrainingService({} as Store, { models: { training: { checkIntervalS: 3600 } } } as unknown as CollectorConfig, catalog, new CollectorMetrics(), log);
  let release!: (e: Error) => void;
  let began!: () => void;
  const started = new Promise<void>((r) => (began = r));
  // The class's decision runs "in a worker" that only ends when released (as lifecycle.stop would end it).
  svc.lifecycle.classes = () => Promise.resolve(['hc-a']);
  svc.lifecycle.decide = () =>
    new Promise((_, reject) => {
      release = reject;
      began();
    });
  return { svc, log, release: (e) => release(e), started };
}

const scheduled = (s: TrainingService): Promise<void> => (s as unknown as { scheduled(): Promise<void> }).scheduled();
const workerExit = (): Error => new WattsplitError('MODEL_TRAINING_FAILED', 'training worker exited (1) without a result');

test('a scheduled check that fails while the collector runs is logged at warn with the cause', async () => {
  const { svc, log, release, started } = service();
  const check = scheduled(svc);
  await started;
  release(workerExit());
  await check;
  const warns = log.entries.filter((e) => e.level === 'warn');
  assert.equal(warns.length, 1);
  assert.match(warns[0]!.msg, /scheduled training check failed: training worker exited \(1\) without a result/);
  await svc.onApplicationShutdown();
});

test('a scheduled check ended by the shutdown is not reported as a failure (debug, not warn)', async () => {
  const { svc, log, release, started } = service();
  const check = scheduled(svc);
  await started;
  const stop = svc.onApplicationShutdown();
  release(workerExit());
  await Promise.all([check, stop]);
  assert.deepEqual(
    log.entries.filter((e) => e.level === 'warn' || e.level === 'error').map((e) => e.msg),
    [],
  );
  const dbg = log.entries.filter((e) => e.level === 'debug' && /ended by the shutdown/.test(e.msg));
  assert.equal(dbg.length, 1);
  assert.match(dbg[0]!.msg, /without a result/);
});

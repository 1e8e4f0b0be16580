import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpuShareMethod, type HostInterval } from '@wattsplit/attribution';
import { ChdbStore } from '@wattsplit/store';
import { WattsplitError, silentLogger } from '@wattsplit/wire';
import { ModelLifecycle } from './model-lifecycle.js';

const dir = mkdtempSync(join(tmpdir(), 'wattsplit-lifecycle-'));
const store = new ChdbStore({ dataDir: join(dir, 'db'), logger: silentLogger });
after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

test('stop() ends a training running in its worker: train() rejects MODEL_TRAINING_FAILED at once and the lease is free', async () => {
  await store.init();
  const seconds = 600;
  const start = (Math.floor(Date.now() / 1000) - seconds) * 1e9;
  const intervals: HostInterval[] = Array.from({ length: seconds }, (_, k) => {
    const cpuS = Array.from({ length: 6 }, (_, v) => ((k * (v + 3)) % 7) / 7 + 0.05 * v);
    const busy = cpuS.reduce((a, b) => a + b, 0);
    return {
      hostId: 'host-stop', hardwareClass: 'synth-stop', seq: k + 1, prevSeq: k, t0UnixNs: start + k * 1e9, t1UnixNs: start + (k + 1) * 1e9, durationS: 1,
      measured: { rapl: 100 + 20 * busy, gpu: 0, bmc_rest: 30 + busy }, raplZones: { 'intel-rapl:0': 100 + 20 * busy }, gpus: [],
      hostCpu: { busySeconds: busy + 0.1, idleSeconds: 8 - busy, onlineCpus: 8, avgFreqMhz: 2400 },
      vms: cpuS.map((c, v) => ({
        uuid: `vm-${v}`, name: `vm-${v}`, tenant: 't', vcpus: 1, memoryBytes: 2 ** 30, cpuSeconds: c, vcpuSeconds: [c], memoryUsedBytes: 2 ** 29,
        blockReadBytes: 0, blockWriteBytes: 0, netRxBytes: 0, netTxBytes: 0, gpus: [], presence: 1, state: 'running' as const,
      })),
      anomalies: [],
    };
  });
  const cpu = new CpuShareMethod();
  const ctx = { policy: 'reserved' as const, staticPower: { watts: { rapl: 100, gpu: 0, bmc_rest: 30 }, origin: 'configured' as const } };
  assert.equal((await store.writeIntervals(intervals.map((interval) => ({ interval, results: [cpu.attribute(interval, ctx)] })))).kind, 'ok');
  const lc = new ModelLifecycle({ store, holder: 'test-stop', logger: silentLogger, training: { leaseSettleMs: 0, lookbackS: seconds + 60 } });
  const training = lc.train('synth-stop', { reason: 'manual' });
  // Once the lease is taken the job is on its way to (or in) the worker: stop it there.
  for (let i = 0; i < 200 && !(await lc.models.leaseHolder('train:synth-stop')); i++) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 200));
  const t0 = performance.now();
  await lc.stop();
  await assert.rejects(training, (e: unknown) => e instanceof WattsplitError && e.code === 'MODEL_TRAINING_FAILED');
  assert.ok(performance.now() - t0 < 5000, `stopped after ${Math.round(performance.now() - t0)} ms`);
  assert.equal(await lc.models.holdsLease('train:synth-stop', 'test-stop'), false, 'the lease was released');
  assert.deepEqual(await lc.models.versions('synth-stop'), []);
  // A stopped lifecycle starts no new job.
  await assert.rejects(lc.train('synth-stop', { reason: 'manual' }), /training stopped/);
});

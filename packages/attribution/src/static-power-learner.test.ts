import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWattsplitError } from '@wattsplit/wire';
import { StaticPowerLearner, fitIntercept, ridgeIntercept } from './static-power-learner.js';
import { prng } from './test-fixtures.js';
import type { HostInterval, VmInterval } from './types.js';

function iv(hostId: string, busyFrac: number, raplW: number, bmcW: number, gpu?: { util: number; w: number; contexts?: number }, vms: VmInterval[] = []): HostInterval {
  return {
    hostId, hardwareClass: 'x', seq: 1, prevSeq: 0, t0UnixNs: 0, t1UnixNs: 2e9, durationS: 2,
    measured: { rapl: raplW * 2, gpu: gpu ? gpu.w * 2 : 0, bmc_rest: bmcW * 2 }, raplZones: {},
    gpus: gpu ? [{ device: 'g', joules: gpu.w * 2, contexts: gpu.contexts ?? 1, meanPowerW: gpu.w, gpuUtilPct: gpu.util * 100, memUtilPct: 0, smClockMhz: 0 }] : [],
    hostCpu: { busySeconds: busyFrac * 128, idleSeconds: (1 - busyFrac) * 128, onlineCpus: 64, avgFreqMhz: 0 }, vms, anomalies: [],
  };
}

const vm = (uuid: string, cpuSeconds: number): VmInterval => ({
  uuid, name: uuid, tenant: 't', vcpus: 16, memoryBytes: 1, cpuSeconds, vcpuSeconds: [], memoryUsedBytes: 0,
  blockReadBytes: 0, blockWriteBytes: 0, netRxBytes: 0, netTxBytes: 0, gpus: [], presence: 1, state: 'running',
});

test('uses the configured fallback until enough intervals are seen', () => {
  const l = new StaticPowerLearner({ fallback: { rapl: 100, gpu: 70, bmc_rest: 60 }, minSamples: 20 });
  for (let i = 0; i < 10; i++) l.observe(iv('h', 0.1 + i / 20, 150, 80));
  assert.deepEqual(l.estimate('h'), { watts: { rapl: 100, gpu: 70, bmc_rest: 60 }, origin: 'configured' });
  assert.equal(l.estimate('never-seen').origin, 'configured');
});

test('learns static power under VMs of very different watts per core, with load-dependent scaling (within 5 %)', () => {
  const rnd = prng(3);
  const l = new StaticPowerLearner({ fallback: { rapl: 0, gpu: 0, bmc_rest: 0 }, minSamples: 30 });
  for (let i = 0; i < 600; i++) {
    const a = rnd() < 0.5 ? 14 * rnd() : 0.5; // AVX batch, 9 W/core, on/off
    const b = 2 + 4 * rnd(); // web, 2.5 W/core
    const ovh = 0.2 + 0.6 * rnd(); // hypervisor work is not a fixed function of VM CPU
    const u = (a + b + ovh) / 64;
    const g = 1 + 0.8 * u;
    const rapl = 120 + g * (9 * a + 2.5 * b + 3 * ovh) + (rnd() - 0.5) * 4;
    const ctx = rnd() < 0.2 ? 0 : 1;
    const gu = ctx ? rnd() : 0;
    const gpuW = 73 + ctx * 47 + 580 * gu + (rnd() - 0.5) * 2;
    const bmc = 60 + 0.08 * (rapl - 120 + gpuW - 73);
    l.observe(iv('h', u, rapl, bmc, { util: gu, w: gpuW, contexts: ctx }, [vm('a', a * 2), vm('b', b * 2)]));
  }
  const e = l.estimate('h');
  assert.ok(Math.abs(e.watts.rapl - 120) / 120 < 0.05, `rapl ${e.watts.rapl}`);
  assert.ok(Math.abs(e.watts.gpu - 73) / 73 < 0.05, `gpu ${e.watts.gpu}`);
  assert.ok(Math.abs(e.watts.bmc_rest - 60) / 60 < 0.05, `bmc ${e.watts.bmc_rest}`);
  assert.equal(e.origin, 'learned:rapl,gpu,bmc_rest');
});

test('GPU static needs context-free intervals; a host without GPUs learns 0; unusable sources are skipped', () => {
  const l = new StaticPowerLearner({ fallback: { rapl: 1, gpu: 73, bmc_rest: 1 }, minSamples: 5 });
  for (let i = 0; i < 10; i++) l.observe({ ...iv('h', i / 10, 100 + i, 50, { util: 0.5, w: 300, contexts: 2 }), unusableSources: ['bmc_rest'] });
  const e = l.estimate('h');
  assert.equal(e.origin, 'learned:rapl;configured:gpu,bmc_rest');
  assert.equal(e.watts.gpu, 73);
  assert.equal(e.watts.bmc_rest, 1);
  assert.ok(Math.abs(e.watts.rapl - 100) < 1, `rapl ${e.watts.rapl}`);
  const cpuOnly = new StaticPowerLearner({ fallback: { rapl: 1, gpu: 73, bmc_rest: 1 }, minSamples: 5 });
  for (let i = 0; i < 10; i++) cpuOnly.observe(iv('c', i / 10, 100 + i, 50 + i / 10));
  assert.equal(cpuOnly.estimate('c').watts.gpu, 0);
  assert.equal(cpuOnly.estimate('c').origin, 'learned:rapl,gpu,bmc_rest');
});

test('ridge intercept: exact on a noiseless linear model, constant columns dropped', () => {
  const X = Array.from({ length: 50 }, (_, i) => [i % 7, (i * 3) % 11, 5]);
  const y = X.map(([a, b]) => 40 + 2 * a! + 0.5 * b!);
  assert.ok(Math.abs(ridgeIntercept(X, y, 0)! - 40) < 1e-6);
  assert.equal(ridgeIntercept([[1]], [1]), undefined);
});

test('the intercept never exceeds the low quantile of observed power and never goes negative', () => {
  assert.equal(fitIntercept([0.5, 0.5, 0.5, 0.5], [200, 210, 220, 230], 0), 200);
  const neg = fitIntercept([0.1, 0.5, 0.9], [10, 100, 190]);
  assert.equal(neg, 0);
  assert.equal(fitIntercept([1], [1]), undefined);
});

test('bad configuration is CONFIG_INVALID naming the field and value', () => {
  assert.throws(() => new StaticPowerLearner({ fallback: { rapl: -1, gpu: 0, bmc_rest: 0 } }), (e) => isWattsplitError(e, 'CONFIG_INVALID') && /fallback\.rapl=-1/.test(e.message));
  assert.throws(() => new StaticPowerLearner({ fallback: { rapl: 1, gpu: 0, bmc_rest: 0 }, window: 1 }), (e) => isWattsplitError(e, 'CONFIG_INVALID') && /window=1 must be an integer ≥ 3/.test(e.message));
});

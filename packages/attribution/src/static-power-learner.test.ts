import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWattsplitError } from '@wattsplit/wire';
import { StaticPowerLearner, fitIntercept } from './static-power-learner.js';
import { prng } from './test-fixtures.js';
import type { HostInterval } from './types.js';

function iv(hostId: string, busyFrac: number, raplW: number, bmcW: number, gpu?: { util: number; w: number }): HostInterval {
  return {
    hostId, hardwareClass: 'x', seq: 1, prevSeq: 0, t0UnixNs: 0, t1UnixNs: 2e9, durationS: 2,
    measured: { rapl: raplW * 2, gpu: gpu ? gpu.w * 2 : 0, bmc_rest: bmcW * 2 }, raplZones: {},
    gpus: gpu ? [{ device: 'g', joules: gpu.w * 2, contexts: 1, meanPowerW: gpu.w, gpuUtilPct: gpu.util * 100, memUtilPct: 0, smClockMhz: 0 }] : [],
    hostCpu: { busySeconds: busyFrac * 128, idleSeconds: (1 - busyFrac) * 128, onlineCpus: 64, avgFreqMhz: 0 }, vms: [], anomalies: [],
  };
}

test('uses the configured fallback until enough intervals are seen', () => {
  const l = new StaticPowerLearner({ fallback: { rapl: 100, gpu: 70, bmc_rest: 60 }, minSamples: 20 });
  for (let i = 0; i < 10; i++) l.observe(iv('h', 0.1 + i / 20, 150, 80));
  assert.deepEqual(l.estimate('h'), { watts: { rapl: 100, gpu: 70, bmc_rest: 60 }, origin: 'configured' });
  assert.equal(l.estimate('never-seen').origin, 'configured');
});

test('learns the zero-load intercept of a superlinear power curve (within 5 %)', () => {
  const rnd = prng(3);
  const l = new StaticPowerLearner({ fallback: { rapl: 0, gpu: 0, bmc_rest: 0 }, minSamples: 30 });
  for (let i = 0; i < 400; i++) {
    const u = 0.05 + 0.8 * rnd();
    const gu = rnd();
    l.observe(iv('h', u, 120 + 250 * u + 150 * u * u + (rnd() - 0.5) * 10, 55 + 40 * u, { util: gu, w: 73 + 600 * gu ** 1.2 }));
  }
  const e = l.estimate('h');
  assert.ok(Math.abs(e.watts.rapl - 120) / 120 < 0.05, `rapl ${e.watts.rapl}`);
  assert.ok(Math.abs(e.watts.bmc_rest - 55) / 55 < 0.05, `bmc ${e.watts.bmc_rest}`);
  assert.ok(Math.abs(e.watts.gpu - 73) / 73 < 0.15, `gpu ${e.watts.gpu}`);
  assert.equal(e.origin, 'learned:rapl,gpu,bmc_rest');
});

test('a host without GPUs keeps the GPU fallback; skipped unusable sources', () => {
  const l = new StaticPowerLearner({ fallback: { rapl: 1, gpu: 0, bmc_rest: 1 }, minSamples: 5 });
  for (let i = 0; i < 10; i++) l.observe({ ...iv('h', i / 10, 100 + i, 50), unusableSources: ['bmc_rest'] });
  const e = l.estimate('h');
  assert.equal(e.origin, 'learned:rapl;configured:gpu,bmc_rest');
  assert.equal(e.watts.bmc_rest, 1);
  assert.ok(Math.abs(e.watts.rapl - 100) < 1);
});

test('the intercept never exceeds the low quantile of observed power and never goes negative', () => {
  assert.equal(fitIntercept([0.5, 0.5, 0.5, 0.5], [200, 210, 220, 230], 0), 200);
  const neg = fitIntercept([0.1, 0.5, 0.9], [10, 100, 190]);
  assert.equal(neg, 0);
  assert.equal(fitIntercept([1], [1]), undefined);
});

test('bad configuration is CONFIG_INVALID naming the field and value', () => {
  assert.throws(() => new StaticPowerLearner({ fallback: { rapl: -1, gpu: 0, bmc_rest: 0 } }), (e) => isWattsplitError(e, 'CONFIG_INVALID') && /fallback\.rapl=-1/.test(e.message));
  assert.throws(() => new StaticPowerLearner({ fallback: { rapl: 1, gpu: 0, bmc_rest: 0 }, window: 1 }), (e) => isWattsplitError(e, 'CONFIG_INVALID') && /window=1/.test(e.message));
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HostInterval } from '@wattsplit/attribution';
import { anchorStaticToLowLoad, intervalFeatures, staticPowerW, trainAdditiveModel } from './index.js';
import { prng, synthHost, TEST_CLASSES } from './test-hosts.js';

const fast = { steps: 300, maxIntervals: 1500 };
const STATIC_W = 120;

/**
 * A synthetic host whose dynamic power is concave in load (per-core power falls as more cores are busy, as with
 * turbo bins or SMT siblings): P = static + D · (1.25 − 0.5 · D / Dmax). Its true static power is STATIC_W.
 */
function concaveHost(seed: number): HostInterval[] {
  const { intervals } = synthHost({ seed, seconds: 1500, staticW: STATIC_W });
  const dyn = intervals.map((iv) => iv.measured.rapl / iv.durationS - STATIC_W);
  const dMax = Math.max(...dyn);
  return intervals.map((iv, i) => {
    const d = Math.max(0, dyn[i]!);
    return { ...iv, measured: { ...iv.measured, rapl: (STATIC_W + d * (1.25 - (0.5 * d) / dMax)) * iv.durationS } };
  });
}

test('static anchor: on a host whose per-core power falls with load, the low-load estimate is closer to the true idle than the fit intercept', async () => {
  const ivs = concaveHost(3);
  const plain = await trainAdditiveModel(ivs, { ...fast, staticAnchor: false });
  const anchored = await trainAdditiveModel(ivs, fast);
  const errPlain = staticPowerW(plain, 'rapl', 'h1') - STATIC_W;
  const errAnchored = staticPowerW(anchored, 'rapl', 'h1') - STATIC_W;
  // the extrapolated intercept is too high (the bias the anchor exists for), the anchored one less so
  assert.ok(errPlain > 3, `fit intercept error ${errPlain.toFixed(2)} W`);
  assert.ok(Math.abs(errAnchored) < Math.abs(errPlain) - 1, `anchored ${errAnchored.toFixed(2)} W vs fit ${errPlain.toFixed(2)} W`);
  // the class's static power (prior of hosts not trained on) follows the host's
  assert.ok(Math.abs(anchored.sources.rapl.staticW - staticPowerW(anchored, 'rapl', 'h1')) < 1e-9);
});

test('static anchor: on a host that fits the model\'s law it stays at the truth; the result reports local and fit estimates; bounded by the lowest power', async () => {
  const { intervals } = synthHost({ seed: 4, seconds: 1500, staticW: STATIC_W });
  const m = await trainAdditiveModel(intervals, { ...fast, staticAnchor: false });
  const before = staticPowerW(m, 'rapl', 'h1');
  const rows = intervals.map((iv) => ({ hostId: iv.hostId, terms: intervalFeatures(iv), powerW: iv.measured.rapl / iv.durationS }));
  const res = anchorStaticToLowLoad(m, 'rapl', rows);
  assert.equal(res.length, 1);
  const r = res[0]!;
  assert.equal(r.hostId, 'h1');
  assert.equal(r.fitW, before);
  assert.ok(r.localW !== undefined && r.localSdW !== undefined && r.localSdW > 0);
  assert.ok(r.intervals >= 300, `low-load intervals ${r.intervals}`);
  assert.ok(Math.abs(r.staticW - STATIC_W) < 3, `anchored ${r.staticW.toFixed(2)} W, true ${STATIC_W}`);
  assert.equal(staticPowerW(m, 'rapl', 'h1'), r.staticW);
  // an intercept above every measured power is pulled down to the lowest one
  m.sources.rapl.hostStaticW = { h1: 1e6 };
  const low = Math.min(...rows.map((x) => x.powerW));
  const [r2] = anchorStaticToLowLoad(m, 'rapl', rows, { structuralSdW: 1e-6 });
  assert.equal(r2!.staticW, low);
  // too few intervals: the fit's value stays
  m.sources.rapl.hostStaticW = { h1: 111 };
  const [r3] = anchorStaticToLowLoad(m, 'rapl', rows.slice(0, 40));
  assert.equal(r3!.localW, undefined);
  assert.equal(staticPowerW(m, 'rapl', 'h1'), 111);
});

test('per-VM shrinkage: where the host totals fit badly, VM signatures stay nearer their class than the unshrunk fit leaves them, and none is zero', async () => {
  // a short history with power the model cannot explain (±100 W, as unmodelled phases or memory traffic leave it)
  const { intervals } = synthHost({ seed: 6, seconds: 300, staticW: STATIC_W });
  const rnd = prng(99);
  const noisy = intervals.map((iv) => ({ ...iv, measured: { ...iv.measured, rapl: iv.measured.rapl + 200 * (rnd() - 0.5) * iv.durationS } }));
  const truthW = new Map(intervals[0]!.vms.map((v, i) => [v.uuid, TEST_CLASSES[(Object.keys(TEST_CLASSES) as (keyof typeof TEST_CLASSES)[])[i % 4]!].coreW]));
  const err = (m: Awaited<ReturnType<typeof trainAdditiveModel>>): { mean: number; min: number } => {
    let s = 0;
    let min = Infinity;
    for (const [id, w] of truthW) {
      const got = m.sources.rapl.vmCoreW?.[id] ?? NaN;
      s += Math.abs(Math.log(got / w));
      min = Math.min(min, got);
    }
    return { mean: s / truthW.size, min };
  };
  const plain = err(await trainAdditiveModel(noisy, { ...fast, vmPriorSd: 0 }));
  const shrunk = err(await trainAdditiveModel(noisy, fast));
  // measured: mean |log(W per core / true)| 0.53 unshrunk, 0.11 shrunk; the worst VM at 0.16 × its truth unshrunk
  assert.ok(shrunk.mean < 0.6 * plain.mean, `mean |log error| shrunk ${shrunk.mean.toFixed(3)} vs plain ${plain.mean.toFixed(3)}`);
  assert.ok(shrunk.min > 0.5 * Math.min(...truthW.values()), `a VM's W per core is ${shrunk.min}`);
});

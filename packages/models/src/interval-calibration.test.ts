import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AttributionContext, AttributionShare } from '@wattsplit/attribution';
import { WattsplitError } from '@wattsplit/wire';
import { AdditiveModelMethod, ONLINE_SD_SCALE } from './additive-model-method.js';
import { trainAdditiveModel } from './additive-trainer.js';
import { synthHost } from './test-hosts.js';

const ctx: AttributionContext = { policy: 'reserved', staticPower: { watts: { rapl: 0, gpu: 0, bmc_rest: 0 }, origin: 'configured' } };
const key = (s: AttributionShare): string => `${s.kind}|${s.vmUuid}|${s.source}`;

/**
 * The calibrated method and one with the filter's sd as it is, fed the same intervals (attribute, then observe):
 * per share of the billed part, the calibrated and the uncalibrated half-width above the billed energy.
 */
async function bands(perf: boolean): Promise<{ pairs: [number, number][]; sameSplit: boolean; tenants: Map<string, [number, number]> }> {
  const { intervals } = synthHost({ seed: 21, vms: 8, seconds: 900, perf });
  const model = await trainAdditiveModel(intervals.slice(0, 600), { hardwareClass: 'synth', steps: 150, seed: 3 });
  const calibrated = new AdditiveModelMethod({ models: { get: () => model } });
  const raw = new AdditiveModelMethod({ models: { get: () => model }, sdScale: { withPerf: 1, withoutPerf: 1 } });
  for (const iv of intervals.slice(0, 600)) {
    calibrated.observe(iv);
    raw.observe(iv);
  }
  const pairs: [number, number][] = [];
  const tenants = new Map<string, [number, number]>();
  let sameSplit = true;
  for (const iv of intervals.slice(600)) {
    const a = calibrated.attribute(iv, ctx);
    const b = raw.attribute(iv, ctx);
    const byKey = new Map(b.shares.map((s) => [key(s), s]));
    for (const s of a.shares) {
      const t = byKey.get(key(s));
      assert.ok(t, `share ${key(s)} in both`);
      if (s.dynamicJoules !== t.dynamicJoules || s.staticJoules !== t.staticJoules) sameSplit = false;
      const billed = s.dynamicJoules + s.staticJoules;
      if (s.kind !== 'vm' || !(t.highJoules - billed > 1e-9)) continue;
      pairs.push([s.highJoules - billed, t.highJoules - billed]);
      // a tenant's interval over the period: its rows' half-widths summed, as the rollups sum them
      const x = tenants.get(s.tenant) ?? [0, 0];
      tenants.set(s.tenant, [x[0] + s.highJoules - billed, x[1] + t.highJoules - billed]);
    }
    calibrated.observe(iv);
    raw.observe(iv);
  }
  return { pairs, sameSplit, tenants };
}

test('interval calibration: with perf counters every row\'s half-width is the filter\'s × ONLINE_SD_SCALE.withPerf, the split unchanged, and a tenant\'s summed interval scales with it', async () => {
  const { pairs, sameSplit, tenants } = await bands(true);
  assert.ok(sameSplit, 'the calibration changes no joule of the split');
  assert.ok(pairs.length > 1000, `rows with a band: ${pairs.length}`);
  assert.ok(ONLINE_SD_SCALE.withPerf < 1, 'with perf the stored band is narrower than the filter\'s sd');
  for (const [c, r] of pairs) assert.ok(Math.abs(c - ONLINE_SD_SCALE.withPerf * r) <= 1e-9 * r + 1e-12, `half-width ${c} vs ${ONLINE_SD_SCALE.withPerf} × ${r}`);
  assert.equal(tenants.size, 4);
  for (const [t, [c, r]] of tenants) assert.ok(Math.abs(c / r - ONLINE_SD_SCALE.withPerf) < 1e-9, `tenant ${t}: ${c} / ${r}`);
});

test('interval calibration: where no VM carries perf counters the rows take ONLINE_SD_SCALE.withoutPerf', async () => {
  const { pairs, sameSplit } = await bands(false);
  assert.ok(sameSplit);
  assert.ok(pairs.length > 1000);
  for (const [c, r] of pairs) assert.ok(Math.abs(c - ONLINE_SD_SCALE.withoutPerf * r) <= 1e-9 * r + 1e-12, `half-width ${c} vs ${ONLINE_SD_SCALE.withoutPerf} × ${r}`);
});

test('interval calibration: a scale that is not a positive number is refused, naming the field', () => {
  for (const bad of [{ withPerf: 0, withoutPerf: 1 }, { withPerf: 0.5, withoutPerf: Number.NaN }, { withPerf: -1, withoutPerf: 1 }]) {
    assert.throws(
      () => new AdditiveModelMethod({ models: { get: () => undefined }, sdScale: bad }),
      (e: unknown) => e instanceof WattsplitError && e.code === 'CONFIG_INVALID' && /sdScale\.with(out)?Perf/.test(e.message),
    );
  }
});

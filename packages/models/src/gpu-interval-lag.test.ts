import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LearnerStateReader } from '@wattsplit/attribution';
import { isWattsplitError } from '@wattsplit/wire';
import { GpuIntervalLagEstimator } from './index.js';

/**
 * A busy/idle square wave on a 1 ms grid (runs of 0.2–3 s), power 100 W + 500 W × busy; 1 s intervals whose
 * reported busy fraction covers (t0 − lag, t1 − lag].
 */
function feed(lagS: number, seed: number, n = 600): GpuIntervalLagEstimator {
  let x = seed;
  const r = (): number => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648;
  const busy: number[] = [];
  while (busy.length < (n + 3) * 1000) {
    const len = Math.round((0.2 + 2.8 * r()) * 1000);
    const b = r() < 0.5 ? 1 : 0;
    for (let k = 0; k < len; k++) busy.push(b);
  }
  const lag = Math.round(lagS * 1000);
  const mean = (a: number, b: number): number => {
    let s = 0;
    for (let k = a; k < b; k++) s += busy[k]!;
    return s / (b - a);
  };
  const e = new GpuIntervalLagEstimator();
  for (let i = 1; i < n; i++) {
    const t0 = i * 1000;
    e.add(100 + 500 * mean(t0, t0 + 1000), mean(t0 - lag, t0 + 1000 - lag), mean(t0 + 1000 - lag, t0 + 2000 - lag), 1);
  }
  return e;
}

test('GpuIntervalLagEstimator recovers the lag of the reported busy fraction behind the energy (0 … 0.5 s) on 1 s intervals', () => {
  for (const lag of [0, 0.1, 0.25, 0.5]) {
    for (const seed of [1, 2]) {
      const got = feed(lag, seed).lagS();
      assert.ok(Math.abs(got - lag) <= 0.02, `lag ${lag}, seed ${seed}: ${got}`);
    }
  }
});

test('GpuIntervalLagEstimator: 0 until the intervals vary; state round-trips through JSON; a bad field is refused naming it', () => {
  const flat = new GpuIntervalLagEstimator();
  for (let i = 0; i < 50; i++) flat.add(300, 0.5, 0.5, 1);
  assert.equal(flat.lagS(), 0);
  assert.equal(new GpuIntervalLagEstimator().lagS(), 0);
  const e = feed(0.25, 3, 200);
  const st = JSON.parse(JSON.stringify(e.exportState())) as unknown;
  const b = GpuIntervalLagEstimator.fromState(st, new LearnerStateReader('test'), 'lag');
  assert.equal(b.lagS(), e.lagS());
  assert.deepStrictEqual(b.exportState(), e.exportState());
  assert.throws(
    () => GpuIntervalLagEstimator.fromState({ ...(st as object), n: 1.5 }, new LearnerStateReader('test'), 'devices[0].lag'),
    (err: Error) => isWattsplitError(err, 'LEARNER_STATE_INVALID') && /field "devices\[0\]\.lag\.n" must be an integer/.test(err.message),
  );
});

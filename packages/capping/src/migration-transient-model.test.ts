import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWattsplitError } from '@wattsplit/wire';
import { DEFAULT_MIGRATION_TRANSIENT, MigrationTransientModel } from './index.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const TEN_GBE = 1.25e9; // bytes/s

test('pre-copy rounds: durations of 4–14 GiB VMs on 10 GbE fall in the measured 8–20 s range', () => {
  const m = new MigrationTransientModel();
  const d = [4, 8, 12, 14].map((g) => m.estimate({ memoryBytes: g * GiB, dirtyRateBps: 64 * MiB }, TEN_GBE));
  for (const e of d) {
    assert.ok(e.durationS >= 8 && e.durationS <= 20, `duration ${e.durationS}`);
    assert.ok(e.converged);
    assert.equal(e.sourceExtraW, 12);
    assert.equal(e.destinationExtraW, 12);
  }
  assert.ok(d[0]!.durationS < d[3]!.durationS, 'bigger VMs take longer');
});

test('the rounds follow the geometric model: 8 GiB, 64 MiB/s dirty, 1e9 B/s usable', () => {
  const m = new MigrationTransientModel();
  const e = m.estimate({ memoryBytes: 8 * GiB, dirtyRateBps: 64 * MiB }, TEN_GBE);
  const b = TEN_GBE * 0.8;
  const t0 = (8 * GiB) / b; // 8.590 s
  const v1 = 64 * MiB * t0; // dirtied during round 0
  const t1 = v1 / b; // 0.576 s > 0.3 s: another round
  const v2 = 64 * MiB * t1; // 38.7 MB: 0.0387 s ≤ 0.3 s → stop-and-copy
  assert.equal(e.rounds, 2);
  assert.ok(Math.abs(e.downtimeS - v2 / b) < 1e-9);
  assert.ok(Math.abs(e.durationS - (2 + t0 + t1 + v2 / b)) < 1e-9);
  assert.ok(Math.abs(e.transferredBytes - (8 * GiB + v1 + v2)) < 1);
  assert.ok(Math.abs(e.overheadJoules - 24 * e.durationS) < 1e-9);
});

test('a small VM still takes minDurationS; maxDurationS clamps when set', () => {
  assert.equal(new MigrationTransientModel().estimate({ memoryBytes: 512 * MiB }, TEN_GBE).durationS, 8);
  const clamped = new MigrationTransientModel({ maxDurationS: 20 }).estimate({ memoryBytes: 64 * GiB }, TEN_GBE);
  assert.equal(clamped.durationS, 20);
  assert.ok(new MigrationTransientModel().estimate({ memoryBytes: 64 * GiB }, TEN_GBE).durationS > 60);
});

test('a dirty rate at or above the usable link rate does not converge', () => {
  const m = new MigrationTransientModel({ maxRounds: 10 });
  const e = m.estimate({ memoryBytes: 4 * GiB, dirtyRateBps: 1.2e9 }, TEN_GBE);
  assert.equal(e.converged, false);
  assert.equal(e.rounds, 10);
  assert.ok(e.downtimeS > 0.3);
});

test('bad parameters and inputs name the field and the value', () => {
  assert.throws(() => new MigrationTransientModel({ linkEfficiency: 1.5 }), (e) => isWattsplitError(e, 'CONFIG_INVALID') && e.message === 'MigrationTransientModel: linkEfficiency=1.5 must be in (0, 1]');
  assert.throws(() => new MigrationTransientModel({ sourceExtraW: -1 }), /sourceExtraW=-1 must be a finite number ≥ 0/);
  assert.throws(() => new MigrationTransientModel({ minDurationS: 30, maxDurationS: 20 }), /maxDurationS=20 must be ≥ minDurationS \(30\)/);
  const m = new MigrationTransientModel();
  assert.throws(() => m.estimate({ memoryBytes: GiB }, 0), /linkBps=0 must be a positive number of bytes\/s/);
  assert.throws(() => m.estimate({ memoryBytes: -5 }, TEN_GBE), /memoryBytes=-5/);
  assert.throws(() => m.estimate({ memoryBytes: GiB, dirtyRateBps: Number.NaN }, TEN_GBE), /dirtyRateBps=null/);
  assert.equal(DEFAULT_MIGRATION_TRANSIENT.sourceExtraW, 12);
});

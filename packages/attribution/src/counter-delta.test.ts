import { test } from 'node:test';
import assert from 'node:assert/strict';
import { counterDelta, isUsableDelta } from './counter-delta.js';

const RANGE = 262_143_328_850;

test('a forward delta is the difference', () => {
  assert.deepEqual(counterDelta(1_000, 301_000_000, RANGE), { kind: 'ok', delta: 300_999_000 });
});

test('a RAPL wrap at max_energy_range_uj gives (max − prev) + cur', () => {
  const d = counterDelta(RANGE - 100_000_000, 200_000_000, RANGE, { durationS: 1, joulesPerUnit: 1e-6, maxWatts: 1500 });
  assert.deepEqual(d, { kind: 'wrapped', delta: 300_000_000 });
  assert.ok(isUsableDelta(d));
});

test('without a power bound, a wrap is plausible only within half the range', () => {
  assert.equal(counterDelta(RANGE - 10, 10, RANGE).kind, 'wrapped');
  assert.equal(counterDelta(RANGE * 0.3, RANGE * 0.2, RANGE).kind, 'reset');
});

test('a value far below prev with an implausible wrap is a reset, not a huge delta', () => {
  const d = counterDelta(150_000_000_000, 5_000_000, RANGE, { durationS: 1, joulesPerUnit: 1e-6, maxWatts: 1500 });
  assert.equal(d.kind, 'reset');
  assert.ok(!isUsableDelta(d));
  if (d.kind === 'reset') assert.match(d.reason, /150000000000 to 5000000.*W > max 1500 W/);
});

test('a 64-bit counter (NVML, max_range 0) going backwards is a reset (driver reload)', () => {
  const d = counterDelta(9_000_000, 1_000, 0, { durationS: 1, joulesPerUnit: 1e-3, maxWatts: 1500 });
  assert.equal(d.kind, 'reset');
  if (d.kind === 'reset') assert.match(d.reason, /never wraps/);
});

test('a forward delta implying more than max watts is implausible and names the power', () => {
  const d = counterDelta(0, 5_000_000_000, RANGE, { durationS: 1, joulesPerUnit: 1e-6, maxWatts: 1500 });
  assert.equal(d.kind, 'implausible');
  if (d.kind === 'implausible') assert.match(d.reason, /implies 5000 W > max 1500 W/);
});

test('non-finite or negative values are a reset naming the values', () => {
  const d = counterDelta(Number.NaN, 5, RANGE);
  assert.equal(d.kind, 'reset');
  if (d.kind === 'reset') assert.match(d.reason, /prev=NaN, cur=5/);
  assert.equal(counterDelta(-1, 5, RANGE).kind, 'reset');
});

test('a prev value above the range cannot wrap', () => {
  const d = counterDelta(RANGE + 5, 3, RANGE);
  assert.equal(d.kind, 'reset');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { orderStatistic, selectInPlace } from './order-statistic.js';
import { mulberry32 } from './prng.js';

const sorted = (xs: ArrayLike<number>, i: number): number => Float64Array.from(xs).sort()[i]!;

test('order statistic: the value Float64Array sort puts at i, to the bit (duplicates, ±0, NaN, infinities, sorted and reversed input)', () => {
  const rnd = mulberry32(41);
  const pools: Array<() => number> = [
    () => rnd() * 200 - 50, // distinct
    () => Math.floor(rnd() * 5) - 2, // few distinct values, many ties, +0 among them
    () => [0, -0, 1, -1, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY][Math.floor(rnd() * 7)]!,
    () => (rnd() < 0.5 ? -0 : 0),
    () => 100 + rnd() * 1e-9, // near-equal powers
  ];
  let checked = 0;
  for (const pool of pools) {
    for (const n of [1, 2, 3, 4, 5, 7, 16, 61, 200, 900, 1000]) {
      const xs = Array.from({ length: n }, pool);
      const inputs = [xs, [...xs].sort((a, b) => a - b), [...xs].sort((a, b) => b - a)];
      for (const input of inputs) {
        const scratch = new Float64Array(n + 3);
        for (const i of new Set([0, 1, Math.floor(0.05 * (n - 1)), Math.floor(0.5 * (n - 1)), n - 2, n - 1].filter((x) => x >= 0 && x < n))) {
          const want = sorted(input, i);
          assert.ok(Object.is(orderStatistic(input, i), want), `n=${n} i=${i}: ${orderStatistic(input, i)} vs ${want}`);
          assert.ok(Object.is(orderStatistic(Float64Array.from(input), i, scratch), want), `n=${n} i=${i}, scratch`);
          checked++;
        }
      }
    }
  }
  assert.ok(checked > 700, `${checked} cases`);
  // the input is not changed; out of range gives NaN
  const xs = [3, 1, 2];
  assert.equal(orderStatistic(xs, 1), 2);
  assert.deepEqual(xs, [3, 1, 2]);
  assert.ok(Number.isNaN(orderStatistic(xs, 3)) && Number.isNaN(orderStatistic([], 0)) && Number.isNaN(orderStatistic(xs, -1)));
});

test('order statistic: the partition given up after a few rounds (the bound on any input) sorts the range left and gives the same value', () => {
  const rnd = mulberry32(43);
  for (const n of [5, 64, 901]) {
    const xs = Float64Array.from({ length: n }, () => Math.floor(rnd() * 50));
    for (const i of [0, Math.floor(0.05 * (n - 1)), Math.floor(n / 2), n - 1]) {
      const want = Float64Array.from(xs).sort()[i]!;
      for (const maxRounds of [0, 1, 2, 3, 64]) assert.equal(selectInPlace(Float64Array.from(xs), n, i, maxRounds), want, `n=${n} i=${i} maxRounds=${maxRounds}`);
    }
  }
  // organ-pipe and sawtooth inputs with long runs of equal values
  for (const n of [2000, 4097]) {
    const organ = Array.from({ length: n }, (_, k) => (k < n / 2 ? k : n - k));
    const saw = Array.from({ length: n }, (_, k) => k % 17);
    for (const xs of [organ, saw]) {
      for (const i of [0, Math.floor(0.05 * (n - 1)), Math.floor(n / 2), n - 1]) assert.ok(Object.is(orderStatistic(xs, i), Float64Array.from(xs).sort()[i]), `n=${n} i=${i}`);
    }
  }
});

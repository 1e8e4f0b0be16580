/**
 * The i-th smallest of some numbers, as `Float64Array.from(xs).sort()[i]` gives it, without sorting:
 * the static-power learner bounds each estimate by a low quantile of the window's powers (900 values,
 * two or three times per host interval), where a sort was most of the quantile's cost.
 *
 * Same value to the bit, in the typed-array sort's order (ECMA-262 TypedArray SortCompare: ascending,
 * −0 before +0, NaN after every number): NaNs are set aside first, the rest partitioned with `<` (Hoare,
 * median-of-three pivots; after 64 rounds the range left is sorted instead, so the cost stays bounded on
 * any input), and a zero result gets the sign the sorted order has at i (the −0s come before the +0s).
 */
export function orderStatistic(xs: ArrayLike<number>, i: number, scratch?: Float64Array): number {
  const n = xs.length;
  if (!(Number.isInteger(i) && i >= 0 && i < n)) return Number.NaN;
  const a = scratch && scratch.length >= n ? scratch : new Float64Array(n);
  let m = 0;
  for (let x = 0; x < n; x++) {
    const v = xs[x]!;
    if (v === v) a[m++] = v; // NaN sorts last: only the numbers are partitioned
  }
  if (i >= m) return Number.NaN;
  const v = selectInPlace(a, m, i);
  if (v !== 0) return v;
  // ±0 compare equal in the partition: the sorted order has the −0s first
  let below = 0;
  for (let x = 0; x < m; x++) {
    const y = a[x]!;
    if (y < 0 || (y === 0 && Object.is(y, -0))) below++;
  }
  return i < below ? -0 : 0;
}

/**
 * The i-th smallest of a[0 … m) (NaN-free; ±0 equal, either may come back), permuting a. After `maxRounds`
 * partitions the range still holding i is sorted instead (tests pass a small bound to run that path).
 */
export function selectInPlace(a: Float64Array, m: number, i: number, maxRounds = 64): number {
  let lo = 0;
  let hi = m - 1;
  for (let round = 0; hi > lo; round++) {
    if (round === maxRounds) {
      a.subarray(lo, hi + 1).sort();
      return a[i]!;
    }
    const mid = (lo + hi) >>> 1;
    const x = a[lo]!;
    const y = a[mid]!;
    const z = a[hi]!;
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    let l = lo;
    let r = hi;
    while (l <= r) {
      while (a[l]! < pivot) l++;
      while (a[r]! > pivot) r--;
      if (l <= r) {
        const t = a[l]!;
        a[l] = a[r]!;
        a[r] = t;
        l++;
        r--;
      }
    }
    // a[lo … r] ≤ pivot ≤ a[l … hi], and r < l; between them, values equal to the pivot
    if (i <= r) hi = r;
    else if (i >= l) lo = l;
    else return a[i]!;
  }
  return a[i]!;
}

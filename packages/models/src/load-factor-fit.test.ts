import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32 } from '@wattsplit/attribution';
import { LoadFactorNormalEquations, type LoadFactorRow } from './load-factor-fit.js';

test('the normal equations accumulated by halves (upper triangles, the transposes added when read) equal AᵀA and Aᵀb summed row by row, at every (β₁, β₂)', () => {
  const rnd = mulberry32(7);
  const n = 9;
  const rows: LoadFactorRow[] = [];
  for (let r = 0; r < 200; r++) {
    const m = 1 + Math.floor(rnd() * 6);
    // columns drawn with repeats (a VM's two terms in one row) and some zero values (a term with no CPU)
    const cols = Int32Array.from({ length: m }, () => Math.floor(rnd() * 6));
    const v = [0, 1, 2].map(() => Float64Array.from({ length: m }, () => (rnd() < 0.15 ? 0 : rnd() * 10)));
    const ucols = rnd() < 0.5 ? [6, 7 + Math.floor(rnd() * 2)] : [6];
    rows.push({ m, cols, v, ucols, uvals: ucols.map(() => rnd() * 3), target: 50 + rnd() * 100 });
  }
  const ne = new LoadFactorNormalEquations(n);
  for (const r of rows.slice(0, 100)) ne.addRow(r);
  ne.system(0.3, -0.2); // a read between rows changes nothing stored
  for (const r of rows.slice(100)) ne.addRow(r);
  assert.equal(ne.rows, 200);
  for (const [b1, b2] of [[0, 0], [0.4, -0.3], [-1.2, 1.2], [1.6, 0.05]] as const) {
    const AtA = Array.from({ length: n }, () => new Float64Array(n));
    const Atb = new Float64Array(n);
    for (const r of rows) {
      const a = new Float64Array(n);
      for (let p = 0; p < r.m; p++) a[r.cols[p]!] = a[r.cols[p]!]! + r.v[0]![p]! + b1 * r.v[1]![p]! + b2 * r.v[2]![p]!;
      r.ucols.forEach((c, k) => (a[c] = a[c]! + r.uvals[k]!));
      for (let p = 0; p < n; p++) {
        Atb[p] = Atb[p]! + a[p]! * r.target;
        for (let q = 0; q < n; q++) AtA[p]![q] = AtA[p]![q]! + a[p]! * a[q]!;
      }
    }
    const got = ne.system(b1, b2);
    for (let p = 0; p < n; p++) {
      assert.ok(Math.abs(got.Atb[p]! - Atb[p]!) <= 1e-9 * Math.max(1, Math.abs(Atb[p]!)), `Atb[${p}] at (${b1}, ${b2}): ${got.Atb[p]} vs ${Atb[p]}`);
      for (let q = 0; q < n; q++) {
        assert.ok(Math.abs(got.AtA[p]![q]! - AtA[p]![q]!) <= 1e-9 * Math.max(1, Math.abs(AtA[p]![q]!)), `AtA[${p}][${q}] at (${b1}, ${b2}): ${got.AtA[p]![q]} vs ${AtA[p]![q]}`);
      }
    }
  }
});

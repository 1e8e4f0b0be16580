import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32 } from '@wattsplit/attribution';
import { allPassive, borderedNnls, type BorderedBlock, type BorderedSystem } from './bordered-nnls.js';
import { nnlsNormal } from './nnls.js';

/**
 * A random block-arrowhead problem from rows: each row has some columns of one block and some border columns
 * (so M = AᵀA is positive semi-definite with the block structure), plus a small ridge on every column so the
 * optimum is unique; targets drawn so that a good share of the bounds bind.
 */
function randomSystem(seed: number): { sys: BorderedSystem; dense: { M: Float64Array[]; g: Float64Array; free: number[] } } {
  const rnd = mulberry32(seed);
  const K = 1 + Math.floor(rnd() * 6);
  const sizes = Array.from({ length: K }, () => 1 + Math.floor(rnd() * 7));
  const b = Math.floor(rnd() * 4);
  const N = sizes.reduce((a, s) => a + s, 0) + b;
  const offs: number[] = [];
  let o = 0;
  for (const s of sizes) {
    offs.push(o);
    o += s;
  }
  const M = Array.from({ length: N }, () => new Float64Array(N));
  const g = new Float64Array(N);
  const truth = Array.from({ length: N }, () => (rnd() < 0.4 ? -rnd() : rnd() * 3));
  for (let k = 0; k < K; k++) {
    for (let r = 0; r < 3 * sizes[k]! + 4; r++) {
      const a = new Float64Array(N);
      for (let i = 0; i < sizes[k]!; i++) if (rnd() < 0.7) a[offs[k]! + i] = rnd() * 5;
      for (let l = 0; l < b; l++) if (rnd() < 0.8) a[N - b + l] = rnd() * 2;
      let t = 0;
      for (let p = 0; p < N; p++) t += a[p]! * truth[p]!;
      t += rnd() - 0.5;
      for (let p = 0; p < N; p++) {
        if (a[p] === 0) continue;
        g[p] = g[p]! + a[p]! * t;
        for (let q = 0; q < N; q++) M[p]![q] = M[p]![q]! + a[p]! * a[q]!;
      }
    }
  }
  for (let p = 0; p < N; p++) M[p]![p] = M[p]![p]! + 0.01 + (M[p]![p] === 0 ? 1 : 0);
  const free = Array.from({ length: N }, (_, p) => p).filter(() => rnd() < 0.2);
  const isFree = new Set(free);
  const blocks: BorderedBlock[] = sizes.map((s, k) => {
    const Mk = new Float64Array(s * s);
    const E = new Float64Array(s * b);
    for (let i = 0; i < s; i++) {
      for (let j = 0; j < s; j++) Mk[i * s + j] = M[offs[k]! + i]![offs[k]! + j]!;
      for (let l = 0; l < b; l++) E[i * b + l] = M[offs[k]! + i]![N - b + l]!;
    }
    return { n: s, M: Mk, E, g: Float64Array.from({ length: s }, (_, i) => g[offs[k]! + i]!), free: Uint8Array.from({ length: s }, (_, i) => (isFree.has(offs[k]! + i) ? 1 : 0)) };
  });
  const D = new Float64Array(b * b);
  for (let l = 0; l < b; l++) for (let l2 = 0; l2 < b; l2++) D[l * b + l2] = M[N - b + l]![N - b + l2]!;
  const sys: BorderedSystem = { blocks, b, D, h: Float64Array.from({ length: b }, (_, l) => g[N - b + l]!), freeB: Uint8Array.from({ length: b }, (_, l) => (isFree.has(N - b + l) ? 1 : 0)) };
  return { sys, dense: { M, g, free } };
}

function flat(x: Float64Array[], y: Float64Array): number[] {
  return [...x.flatMap((xk) => Array.from(xk)), ...Array.from(y)];
}

test('bordered NNLS: the same optimum as dense Lawson–Hanson on 200 random block-arrowhead problems (free and bounded variables, binding bounds), cold and warm started', () => {
  let bound = 0;
  let total = 0;
  for (let seed = 1; seed <= 200; seed++) {
    const { sys, dense } = randomSystem(seed);
    const ref = nnlsNormal(dense.M, dense.g, dense.free);
    const scale = Math.max(1, ...Array.from(ref, Math.abs));
    const cold = borderedNnls(sys);
    assert.ok(cold.converged, `seed ${seed}: did not converge`);
    const got = flat(cold.x, cold.y);
    assert.equal(got.length, ref.length);
    got.forEach((v, p) => assert.ok(Math.abs(v - ref[p]!) <= 1e-8 * scale, `seed ${seed}, column ${p}: ${v} vs ${ref[p]}`));
    // KKT: bounded variables ≥ 0; gradient (Mz − g) 0 where off the bound, ≥ 0 at it
    const isFree = new Set(dense.free);
    got.forEach((v, p) => {
      let w = -dense.g[p]!;
      for (let q = 0; q < got.length; q++) w += dense.M[p]![q]! * got[q]!;
      const tol = 1e-7 * (1 + Math.abs(dense.g[p]!));
      if (isFree.has(p) || v > 0) assert.ok(Math.abs(w) <= tol * scale, `seed ${seed}, column ${p}: gradient ${w} off the bound`);
      else {
        assert.equal(v, 0);
        assert.ok(w >= -tol, `seed ${seed}, column ${p}: gradient ${w} at the bound`);
        bound++;
      }
      total++;
    });
    // warm: from another problem's passive sets of the same shape (all bound), the same answer
    const warm = allPassive(sys);
    for (const pk of warm.blocks) pk.fill(0);
    warm.border.fill(0);
    const w = borderedNnls(sys, warm);
    assert.ok(w.converged);
    flat(w.x, w.y).forEach((v, p) => assert.ok(Math.abs(v - ref[p]!) <= 1e-8 * scale, `seed ${seed} warm, column ${p}: ${v} vs ${ref[p]}`));
  }
  // the problems exercise the bounds: a fair share of the variables end at 0
  assert.ok(bound > 0.1 * total && bound < 0.9 * total, `${bound} of ${total} at the bound`);
});

test('bordered NNLS without a border is independent per block, and a block of 0 columns or a border only is fine', () => {
  const one = (g: number[], M: number[]): BorderedBlock => ({ n: g.length, M: Float64Array.from(M), E: new Float64Array(0), g: Float64Array.from(g), free: new Uint8Array(g.length) });
  const sol = borderedNnls({ blocks: [one([2, -1], [2, 0, 0, 1]), one([], []), one([3], [1])], b: 0, D: new Float64Array(0), h: new Float64Array(0), freeB: new Uint8Array(0) });
  assert.ok(sol.converged);
  const near = (got: number[], want: number[]): void => assert.ok(got.length === want.length && got.every((v, i) => Math.abs(v - want[i]!) < 1e-12), `${got.join(',')} vs ${want.join(',')}`);
  near(Array.from(sol.x[0]!), [1, 0]);
  near(Array.from(sol.x[1]!), []);
  near(Array.from(sol.x[2]!), [3]);
  const border = borderedNnls({ blocks: [], b: 2, D: Float64Array.from([4, 0, 0, 1]), h: Float64Array.from([-8, 2]), freeB: Uint8Array.from([1, 0]) });
  assert.ok(border.converged);
  near(Array.from(border.y), [-2, 2]);
});

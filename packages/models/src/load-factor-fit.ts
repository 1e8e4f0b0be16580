/**
 * Least squares with a load factor: rows  b ≈ Σ_p x_p · (v0_p + β₁·v1_p + β₂·v2_p) + Σ_a x_a · w_a,
 * where the scaled columns p are CPU terms (v_k = Σ cpuTerm · u^k over the terms of that column, u the load
 * of each term's socket or host) and the unscaled columns a are intercepts and I/O terms. For fixed (β₁, β₂)
 * it is an NNLS; the normal equations are polynomials in β and are accumulated once over all rows:
 *   AᵀA = Σ_ij βᵢβⱼ S_ij + Σ_i βᵢ (C_i + C_iᵀ) + D,   Aᵀb = Σ_i βᵢ B_i + B_u     (β₀ = 1)
 * so a grid over β costs one small solve per point, not a pass over the data.
 * The S_ij are the blocks of Σ w wᵀ over rows, w = [v0 | v1 | v2]: symmetric, so a row adds only the upper
 * triangle of its outer product (half the multiply-adds of the whole; addRow is most of a fit's time), kept in
 * six blocks U_ij (i ≤ j), and `system` adds each block and its transpose (S = U + Uᵀ): 6 n×n blocks, not 9.
 */
import { nnlsNormal } from './nnls.js';

export interface LoadFactorSolution {
  b1: number;
  b2: number;
  x: Float64Array;
  /** Residual sum of squares of the data (without the ridge). */
  sse: number;
}

/**
 * One row: `m` scaled entries (columns `cols[0..m)`, values `v[k][0..m)` for k = 0, 1, 2) and unscaled
 * entries (`ucols`, `uvals`); `target` is b.
 */
export interface LoadFactorRow {
  m: number;
  cols: Int32Array;
  v: readonly Float64Array[];
  ucols: readonly number[];
  uvals: readonly number[];
  target: number;
}

/** The NNLS solved at each (β₁, β₂). */
export interface RidgedNnls {
  /**
   * Per column, a ridge pulling it towards `ridgeTo` with a weight of `ridge[p]` × its own AᵀA diagonal (missing
   * or 0: none).
   */
  ridge: readonly number[];
  ridgeTo: number;
  /** Columns without the non-negativity constraint. */
  free: readonly number[];
  /** Per column, a floor on the ridge weight, absolute (in the units of AᵀA). Default none. */
  ridgeFloor?: readonly number[];
}

/**
 * The box of load factors searched. Per-core power may fall with load as steeply as it rises (turbo bins by
 * active cores, SMT siblings, neighbours' contention): β₁ down to −1.2 with a convex β₂ up to 1.2.
 */
const B1_MIN = -1.2;
const B2_MAX = 1.2;

export class LoadFactorNormalEquations {
  readonly n: number;
  /** Upper triangle of Σ w wᵀ by blocks [3i+j], i ≤ j (diagonal entries of a row at half weight): S = U + Uᵀ. */
  private readonly U: Float64Array[][];
  private readonly C: Float64Array[][]; // [i][a][p]
  private readonly D: Float64Array[];
  private readonly B: Float64Array[];
  private readonly Bu: Float64Array;
  private bb = 0;
  rows = 0;

  constructor(n: number) {
    this.n = n;
    const sq = (): Float64Array[] => Array.from({ length: n }, () => new Float64Array(n));
    this.U = Array.from({ length: 9 }, (_, k) => (k % 3 >= Math.floor(k / 3) ? sq() : []));
    this.C = [sq(), sq(), sq()];
    this.D = sq();
    this.B = [new Float64Array(n), new Float64Array(n), new Float64Array(n)];
    this.Bu = new Float64Array(n);
  }

  /**
   * Adds one row (LoadFactorRow). With w = [v0 | v1 | v2] (entry k = (i, p)), it adds w_k·w_l for every l ≥ k
   * (w_k²/2 for l = k) to U_ij[cols[p]][cols[q]]: each unordered pair once; `system` adds the transposes.
   */
  addRow(row: LoadFactorRow): void {
    const { m, cols, v, ucols, uvals, target } = row;
    this.bb += target * target;
    this.rows++;
    for (let i = 0; i < 3; i++) {
      const vi = v[i]!;
      for (let p = 0; p < m; p++) {
        const x = vi[p]!;
        if (x === 0) continue;
        const cp = cols[p]!;
        this.B[i]![cp] = this.B[i]![cp]! + x * target;
        const same = this.U[4 * i]![cp]!;
        same[cp] = same[cp]! + 0.5 * x * x;
        for (let q = p + 1; q < m; q++) same[cols[q]!] = same[cols[q]!]! + x * vi[q]!;
        for (let j = i + 1; j < 3; j++) {
          const out = this.U[3 * i + j]![cp]!;
          const vj = v[j]!;
          for (let q = 0; q < m; q++) out[cols[q]!] = out[cols[q]!]! + x * vj[q]!;
        }
        for (let a = 0; a < ucols.length; a++) this.C[i]![ucols[a]!]![cp] = this.C[i]![ucols[a]!]![cp]! + uvals[a]! * x;
      }
    }
    for (let a = 0; a < ucols.length; a++) {
      this.Bu[ucols[a]!] = this.Bu[ucols[a]!]! + uvals[a]! * target;
      const row = this.D[ucols[a]!]!;
      for (let b = 0; b < ucols.length; b++) row[ucols[b]!] = row[ucols[b]!]! + uvals[a]! * uvals[b]!;
    }
  }

  /** AᵀA and Aᵀb at (β₁, β₂). */
  system(b1: number, b2: number): { AtA: Float64Array[]; Atb: Float64Array } {
    const n = this.n;
    const beta = [1, b1, b2];
    const AtA = Array.from({ length: n }, () => new Float64Array(n));
    const Atb = Float64Array.from(this.Bu);
    for (let i = 0; i < 3; i++) {
      const bi = beta[i]!;
      if (bi === 0) continue;
      // Σ_ij βᵢβⱼ S_ij with S = U + Uᵀ: each stored block (i ≤ j) and its transpose, which is S_ji's share
      for (let j = i; j < 3; j++) {
        const f = bi * beta[j]!;
        if (f === 0) continue;
        const Uij = this.U[3 * i + j]!;
        for (let p = 0; p < n; p++) {
          const out = AtA[p]!;
          const src = Uij[p]!;
          for (let q = 0; q < n; q++) {
            const x = f * src[q]!;
            if (x === 0) continue;
            out[q] = out[q]! + x;
            AtA[q]![p] = AtA[q]![p]! + x;
          }
        }
      }
      const Ci = this.C[i]!;
      for (let a = 0; a < n; a++) {
        const src = Ci[a]!;
        for (let p = 0; p < n; p++) {
          const x = bi * src[p]!;
          if (x === 0) continue;
          AtA[a]![p] = AtA[a]![p]! + x;
          AtA[p]![a] = AtA[p]![a]! + x;
        }
      }
      for (let p = 0; p < n; p++) Atb[p] = Atb[p]! + bi * this.B[i]![p]!;
    }
    for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) AtA[a]![b] = AtA[a]![b]! + this.D[a]![b]!;
    return { AtA, Atb };
  }

  /**
   * The NNLS at (β₁, β₂), each column's ridge weight the larger of `ridge[p]` × its AᵀA diagonal and
   * `ridgeFloor[p]`; empty columns get a unit diagonal (solution 0).
   */
  solve(b1: number, b2: number, fit: RidgedNnls): LoadFactorSolution | undefined {
    const { ridge, ridgeTo, free, ridgeFloor: ridgeAbs = [] } = fit;
    const { AtA, Atb } = this.system(b1, b2);
    const n = this.n;
    for (let p = 0; p < n; p++) if (AtA[p]![p]! === 0) AtA[p]![p] = 1;
    const A0 = AtA.map((r) => Float64Array.from(r));
    const b0 = Float64Array.from(Atb);
    for (let p = 0; p < n; p++) {
      const r = ridge[p] ?? 0;
      const ra = ridgeAbs[p] ?? 0;
      if (!(r > 0) && !(ra > 0)) continue;
      const lam = Math.max(r * AtA[p]![p]!, ra) + 1e-9;
      AtA[p]![p] = AtA[p]![p]! + lam;
      Atb[p] = Atb[p]! + lam * ridgeTo;
    }
    const x = nnlsNormal(AtA, Atb, free);
    if (!x.every((v) => Number.isFinite(v))) return undefined;
    let sse = this.bb;
    for (let p = 0; p < n; p++) {
      sse -= 2 * x[p]! * b0[p]!;
      const row = A0[p]!;
      for (let q = 0; q < n; q++) sse += x[p]! * row[q]! * x[q]!;
    }
    return { b1, b2, x, sse };
  }

  /**
   * The (β₁, β₂) of least residual: a grid (β₁ step 0.2 over [B1_MIN, 1.6], β₂ step 0.1 over [−1.2, B2_MAX]), then a
   * pattern search at steps 0.05, 0.025, 0.0125 (the residual has a long narrow valley along which the
   * intercept and the curvature trade off; the search follows it, inside the grid's box). Only factors staying above 0.1 on u ∈ [0, 1] are tried. `fixed` skips the search.
   */
  search(fit: RidgedNnls, fixed?: readonly [number, number]): LoadFactorSolution | undefined {
    if (fixed) return this.solve(fixed[0], fixed[1], fit);
    const admissible = (b1: number, b2: number): boolean => b1 >= B1_MIN - 1e-9 && b1 <= 1.6 + 1e-9 && b2 >= -1.2 - 1e-9 && b2 <= B2_MAX + 1e-9 && [0, 0.25, 0.5, 0.75, 1].every((u) => 1 + b1 * u + b2 * u * u > 0.1);
    let best: LoadFactorSolution | undefined;
    const tryBeta = (b1: number, b2: number): void => {
      if (!admissible(b1, b2)) return;
      const r = this.solve(b1, b2, fit);
      if (r && (!best || r.sse < best.sse)) best = r;
    };
    for (let i = Math.round(B1_MIN * 5); i <= 8; i++) for (let j = -12; j <= Math.round(B2_MAX * 10); j++) tryBeta(i / 5, j / 10);
    // pattern search down the valley at finer and finer steps (bounded)
    for (const d of [0.05, 0.025, 0.0125]) {
      for (let move = 0; move < 40; move++) {
        const c = best;
        if (!c) break;
        for (let i = -1; i <= 1; i++) for (let j = -1; j <= 1; j++) if (i !== 0 || j !== 0) tryBeta(c.b1 + i * d, c.b2 + j * d);
        if (best === c) break;
      }
    }
    return best;
  }
}

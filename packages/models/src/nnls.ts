/**
 * Non-negative least squares (Lawson & Hanson, "Solving Least Squares Problems", 1974, ch. 23) on the
 * normal equations: minimise ||A x − b||² subject to x_p ≥ 0 for every p not in `free`. Working on
 * AᵀA and Aᵀb keeps memory O(n²) however many rows were seen, so learners can accumulate them online.
 */

/** Solves M[idx,idx] z = v[idx] by Gaussian elimination with partial pivoting; near-singular pivots are damped. */
function solveSubset(M: Float64Array[], v: Float64Array, idx: number[]): number[] {
  const m = idx.length;
  const A = idx.map((p) => idx.map((q) => M[p]![q]!));
  const y = idx.map((p) => v[p]!);
  let scale = 0;
  for (let c = 0; c < m; c++) scale = Math.max(scale, Math.abs(A[c]![c]!));
  const eps = Math.max(scale, 1e-300) * 1e-12;
  for (let c = 0; c < m; c++) {
    let piv = c;
    for (let r = c + 1; r < m; r++) if (Math.abs(A[r]![c]!) > Math.abs(A[piv]![c]!)) piv = r;
    if (piv !== c) {
      [A[c], A[piv]] = [A[piv]!, A[c]!];
      [y[c], y[piv]] = [y[piv]!, y[c]!];
    }
    const row = A[c]!;
    if (Math.abs(row[c]!) < eps) row[c] = eps;
    for (let r = c + 1; r < m; r++) {
      const rr = A[r]!;
      const f = rr[c]! / row[c]!;
      if (f === 0) continue;
      for (let k = c; k < m; k++) rr[k] = rr[k]! - f * row[k]!;
      y[r] = y[r]! - f * y[c]!;
    }
  }
  const x = new Array<number>(m).fill(0);
  for (let c = m - 1; c >= 0; c--) {
    let s = y[c]!;
    for (let k = c + 1; k < m; k++) s -= A[c]![k]! * x[k]!;
    x[c] = s / A[c]![c]!;
  }
  return x;
}

/**
 * NNLS from accumulated normal equations. `AtA` is n×n (symmetric), `Atb` length n. Variables listed in
 * `free` are unconstrained (an intercept, for example). Returns x (length n).
 */
export function nnlsNormal(AtA: Float64Array[], Atb: Float64Array, free: readonly number[] = []): Float64Array {
  const n = Atb.length;
  const x = new Float64Array(n);
  const isFree = new Set(free);
  const P = new Set<number>();
  const maxIter = 3 * n + 10;
  let bmax = 0;
  for (let p = 0; p < n; p++) bmax = Math.max(bmax, Math.abs(Atb[p]!));
  const tol = 1e-11 * (1 + bmax);

  const setFrom = (idx: number[], z: number[]): void => {
    idx.forEach((p, k) => (x[p] = z[k]!));
  };
  if (isFree.size > 0) {
    for (const p of isFree) P.add(p);
    const idx = [...P];
    setFrom(idx, solveSubset(AtA, Atb, idx));
  }
  for (let it = 0; it < maxIter; it++) {
    // gradient of −½||Ax−b||²: w = Aᵀb − AᵀA x
    let best = -1;
    let bw = tol;
    for (let p = 0; p < n; p++) {
      if (P.has(p)) continue;
      let w = Atb[p]!;
      const row = AtA[p]!;
      for (let q = 0; q < n; q++) w -= row[q]! * x[q]!;
      if (w > bw) {
        bw = w;
        best = p;
      }
    }
    if (best < 0) break;
    P.add(best);
    for (let inner = 0; inner < maxIter; inner++) {
      const idx = [...P];
      const z = solveSubset(AtA, Atb, idx);
      if (idx.every((p, k) => isFree.has(p) || z[k]! > 0)) {
        setFrom(idx, z);
        break;
      }
      let alpha = 1;
      idx.forEach((p, k) => {
        if (!isFree.has(p) && z[k]! <= 0) {
          const a = x[p]! / (x[p]! - z[k]!);
          if (a < alpha) alpha = a;
        }
      });
      idx.forEach((p, k) => {
        x[p] = x[p]! + alpha * (z[k]! - x[p]!);
        if (!isFree.has(p) && x[p] <= 1e-14) {
          x[p] = 0;
          P.delete(p);
        }
      });
    }
  }
  return x;
}

/** NNLS from rows of A and b (convenience for small problems and tests). */
export function nnls(rows: readonly (readonly number[])[], b: readonly number[], free: readonly number[] = []): Float64Array {
  const n = rows[0]?.length ?? 0;
  const AtA = Array.from({ length: n }, () => new Float64Array(n));
  const Atb = new Float64Array(n);
  rows.forEach((r, i) => {
    for (let p = 0; p < n; p++) {
      const rp = r[p]!;
      if (rp === 0) continue;
      Atb[p] = Atb[p]! + rp * b[i]!;
      const row = AtA[p]!;
      for (let q = 0; q < n; q++) row[q] = row[q]! + rp * r[q]!;
    }
  });
  return nnlsNormal(AtA, Atb, free);
}

/**
 * Bound-constrained least squares on block-arrowhead normal equations: minimise ½ zᵀ M z − gᵀ z subject to
 * z_p ≥ 0 for every p not marked free, where z = (x_1 … x_K, y) and
 *
 *       ⎡ B_1            E_1 ⎤
 *   M = ⎢      ⋱          ⋮  ⎥      (B_k: one block's own columns, dense; y: the border, columns shared
 *       ⎢          B_K   E_K ⎥       by several blocks; E_k: a block's coupling to the border; D: dense)
 *       ⎣ E_1ᵀ  …  E_Kᵀ   D  ⎦
 *
 * This is the shape of a hardware class's normal equations (load-factor-fit.ts): a VM's column meets only the
 * columns of VMs on its own host and that host's intercept, plus a few columns every host has (I/O weights,
 * the hypervisor term). Dense Lawson–Hanson (nnls.ts) on the whole of it costs about N⁴ for N columns; here the
 * cost is Σ_k n_k³ + the border's, linear in the number of hosts.
 *
 * Method: block principal pivoting (Júdice & Pires 1994; Kim & Park, "Fast nonnegative matrix factorization",
 * SIAM J. Sci. Comput. 33(6), 2011, Algorithm 2), an active-set method for the LCP of a symmetric positive
 * definite M that exchanges many variables per step: with the passive set F (variables allowed off their
 * bound; free variables always) and the rest at 0, solve M_FF z_F = g_F; the infeasible variables are the
 * passive ones below 0 and the bound ones whose gradient (M z − g)_p is negative; exchange them all while
 * their number falls, up to 3 more times when it does not, then one at a time (the largest index: Murty's
 * rule, finite for positive definite M). The optimum is unique, so it is the one dense Lawson–Hanson finds.
 * Each step's solve goes through the Schur complement of the border, S = D − Σ_k E_kᵀ B_k⁻¹ E_k (restricted
 * to the passive sets), with a Cholesky factor per block kept while that block's passive set is unchanged.
 * A warm start (the passive sets of a nearby problem, say the previous load factor of a grid) usually
 * converges in one or two steps.
 */

export interface BorderedBlock {
  /** Columns of the block. */
  n: number;
  /** n×n, row-major, symmetric. */
  M: Float64Array;
  /** n×b, row-major: the block's columns against the border's. */
  E: Float64Array;
  /** Length n. */
  g: Float64Array;
  /** Per column, 1 when unconstrained. */
  free: Uint8Array;
}

export interface BorderedSystem {
  blocks: readonly BorderedBlock[];
  /** Border columns. */
  b: number;
  /** b×b, row-major, symmetric. */
  D: Float64Array;
  /** Length b. */
  h: Float64Array;
  /** Per border column, 1 when unconstrained. */
  freeB: Uint8Array;
}

/** Which variables are off their bound (1), per block and on the border: a warm start, updated in place. */
export interface PassiveSets {
  blocks: Uint8Array[];
  border: Uint8Array;
}

export interface BorderedSolution {
  x: Float64Array[];
  y: Float64Array;
  /** Pivoting steps (linear solves). */
  steps: number;
  /** False when the step limit was reached: `x`, `y` are then the last iterate clamped to the bounds. */
  converged: boolean;
}

/** All variables passive (every one off its bound): the usual cold start. */
export function allPassive(sys: BorderedSystem): PassiveSets {
  return { blocks: sys.blocks.map((bl) => new Uint8Array(bl.n).fill(1)), border: new Uint8Array(sys.b).fill(1) };
}

/**
 * In-place Cholesky factor (lower, row-major) of the m×m matrix `A`; a pivot below 1e-12 × the largest
 * diagonal is raised to it (a column with no independent data gets a tiny, not a negative, pivot).
 */
function cholesky(A: Float64Array, m: number): void {
  let scale = 0;
  for (let j = 0; j < m; j++) scale = Math.max(scale, Math.abs(A[j * m + j]!));
  const eps = Math.max(scale, 1e-300) * 1e-12;
  for (let j = 0; j < m; j++) {
    const rj = j * m;
    let d = A[rj + j]!;
    for (let k = 0; k < j; k++) d -= A[rj + k]! * A[rj + k]!;
    const ljj = Math.sqrt(d > eps ? d : eps);
    A[rj + j] = ljj;
    for (let i = j + 1; i < m; i++) {
      const ri = i * m;
      let s = A[ri + j]!;
      for (let k = 0; k < j; k++) s -= A[ri + k]! * A[rj + k]!;
      A[ri + j] = s / ljj;
    }
  }
}

/** Solves L Lᵀ x = v in place (v of length m at offset `o`), L from `cholesky`. */
function cholSolve(L: Float64Array, m: number, v: Float64Array, o: number): void {
  for (let i = 0; i < m; i++) {
    const ri = i * m;
    let s = v[o + i]!;
    for (let k = 0; k < i; k++) s -= L[ri + k]! * v[o + k]!;
    v[o + i] = s / L[ri + i]!;
  }
  for (let i = m - 1; i >= 0; i--) {
    let s = v[o + i]!;
    for (let k = i + 1; k < m; k++) s -= L[k * m + i]! * v[o + k]!;
    v[o + i] = s / L[i * m + i]!;
  }
}

/** Solves the q×q system S y = r (row-major, overwritten) by Gaussian elimination with partial pivoting, damped as in nnls.ts. */
function denseSolve(S: Float64Array, r: Float64Array, q: number): Float64Array {
  let scale = 0;
  for (let c = 0; c < q; c++) scale = Math.max(scale, Math.abs(S[c * q + c]!));
  const eps = Math.max(scale, 1e-300) * 1e-12;
  for (let c = 0; c < q; c++) {
    let piv = c;
    for (let i = c + 1; i < q; i++) if (Math.abs(S[i * q + c]!) > Math.abs(S[piv * q + c]!)) piv = i;
    if (piv !== c) {
      for (let k = 0; k < q; k++) {
        const t = S[c * q + k]!;
        S[c * q + k] = S[piv * q + k]!;
        S[piv * q + k] = t;
      }
      const t = r[c]!;
      r[c] = r[piv]!;
      r[piv] = t;
    }
    if (Math.abs(S[c * q + c]!) < eps) S[c * q + c] = eps;
    const pc = S[c * q + c]!;
    for (let i = c + 1; i < q; i++) {
      const f = S[i * q + c]! / pc;
      if (f === 0) continue;
      for (let k = c; k < q; k++) S[i * q + k] = S[i * q + k]! - f * S[c * q + k]!;
      r[i] = r[i]! - f * r[c]!;
    }
  }
  const y = new Float64Array(q);
  for (let c = q - 1; c >= 0; c--) {
    let s = r[c]!;
    for (let k = c + 1; k < q; k++) s -= S[c * q + k]! * y[k]!;
    y[c] = s / S[c * q + c]!;
  }
  return y;
}

/** One block's factor and solves for the current passive sets (kept while they do not change). */
interface BlockState {
  /** Passive local indices (the first `m`). */
  P: Int32Array;
  m: number;
  /** Cholesky factor of B_PP, m×m in the first m² entries. */
  L: Float64Array;
  /** B_PP⁻¹ g_P. */
  z0: Float64Array;
  /** B_PP⁻¹ E_PQ, column by column (q × m). */
  Z: Float64Array;
  factorValid: boolean;
  zValid: boolean;
}

/** Buffers for borderedNnls, reused from one call to the next on systems of the same shape (say a grid of β). */
export interface BorderedWorkspace {
  states: BlockState[];
}

/** A workspace for systems shaped as `sys` (block sizes and border). */
export function borderedWorkspace(sys: BorderedSystem): BorderedWorkspace {
  const b = sys.b;
  return { states: sys.blocks.map((bl) => ({ P: new Int32Array(bl.n), m: 0, L: new Float64Array(bl.n * bl.n), z0: new Float64Array(bl.n), Z: new Float64Array(b * bl.n), factorValid: false, zValid: false })) };
}

/**
 * Solves the bounded problem of `sys`. `warm` (updated in place) starts the pivoting from a nearby
 * problem's passive sets; by default every variable starts passive. `work` (from borderedWorkspace, same
 * shape) saves the allocations. `maxSteps` defaults to 20 + 3 × the number of variables.
 */
export function borderedNnls(sys: BorderedSystem, warm?: PassiveSets, work?: BorderedWorkspace, maxSteps?: number): BorderedSolution {
  const { blocks, b, D, h, freeB } = sys;
  const K = blocks.length;
  const pass = warm ?? allPassive(sys);
  let total = b;
  let gmax = 0;
  for (const bl of blocks) {
    total += bl.n;
    for (let i = 0; i < bl.n; i++) gmax = Math.max(gmax, Math.abs(bl.g[i]!));
  }
  for (let l = 0; l < b; l++) gmax = Math.max(gmax, Math.abs(h[l]!));
  // the gradient threshold of nnls.ts: a bound variable whose gradient is below −tol would lower the objective
  const tol = 1e-11 * (1 + gmax);
  for (let k = 0; k < K; k++) {
    const bl = blocks[k]!;
    const pk = pass.blocks[k]!;
    for (let i = 0; i < bl.n; i++) if (bl.free[i]) pk[i] = 1;
  }
  for (let l = 0; l < b; l++) if (freeB[l]) pass.border[l] = 1;

  const states = (work ?? borderedWorkspace(sys)).states;
  for (const st of states) st.factorValid = st.zValid = false;
  const x = blocks.map((bl) => new Float64Array(bl.n));
  let y = new Float64Array(b);
  let Q = new Int32Array(0);
  let borderValid = false;
  const limit = maxSteps ?? 20 + 3 * total;
  let ninf = Infinity;
  let lives = 3;
  let steps = 0;
  // scratch for the infeasible set: (block, index) pairs, block = K for the border
  const vb: number[] = [];
  const vi: number[] = [];
  for (;;) {
    steps++;
    // ---- the linear solve for the passive sets
    if (!borderValid) {
      const qs: number[] = [];
      for (let l = 0; l < b; l++) if (pass.border[l]) qs.push(l);
      Q = Int32Array.from(qs);
      for (const st of states) st.zValid = false;
      borderValid = true;
    }
    const q = Q.length;
    const S = new Float64Array(q * q);
    const r = new Float64Array(q);
    for (let i = 0; i < q; i++) {
      r[i] = h[Q[i]!]!;
      for (let j = 0; j < q; j++) S[i * q + j] = D[Q[i]! * b + Q[j]!]!;
    }
    for (let k = 0; k < K; k++) {
      const bl = blocks[k]!;
      const st = states[k]!;
      const n = bl.n;
      if (!st.factorValid) {
        const pk = pass.blocks[k]!;
        const P = st.P;
        let m = 0;
        for (let i = 0; i < n; i++) if (pk[i]) P[m++] = i;
        const L = st.L;
        // every column passive (the usual case): B_PP is B, copied whole (the factor reads the lower triangle only)
        if (m === n) L.set(bl.M.subarray(0, n * n));
        else {
          for (let i = 0; i < m; i++) {
            const src = P[i]! * n;
            for (let j = 0; j <= i; j++) L[i * m + j] = bl.M[src + P[j]!]!;
          }
        }
        cholesky(L, m);
        st.m = m;
        st.factorValid = true;
        st.zValid = false;
      }
      const { P, L, m } = st;
      if (m === 0) continue;
      if (!st.zValid) {
        const z0 = st.z0;
        for (let i = 0; i < m; i++) z0[i] = bl.g[P[i]!]!;
        cholSolve(L, m, z0, 0);
        const Z = st.Z;
        for (let l = 0; l < q; l++) {
          const col = Q[l]!;
          for (let i = 0; i < m; i++) Z[l * m + i] = bl.E[P[i]! * b + col]!;
          cholSolve(L, m, Z, l * m);
        }
        st.zValid = true;
      }
      // S −= E_PQᵀ B_PP⁻¹ E_PQ, r −= E_PQᵀ B_PP⁻¹ g_P
      const { z0, Z } = st;
      for (let l = 0; l < q; l++) {
        const col = Q[l]!;
        let s = 0;
        for (let i = 0; i < m; i++) s += bl.E[P[i]! * b + col]! * z0[i]!;
        r[l] = r[l]! - s;
        for (let l2 = 0; l2 <= l; l2++) {
          const zo = l2 * m;
          let t = 0;
          for (let i = 0; i < m; i++) t += bl.E[P[i]! * b + col]! * Z[zo + i]!;
          S[l * q + l2] = S[l * q + l2]! - t;
          if (l2 !== l) S[l2 * q + l] = S[l2 * q + l]! - t;
        }
      }
    }
    const yq = q > 0 ? denseSolve(S, r, q) : new Float64Array(0);
    y = new Float64Array(b);
    for (let l = 0; l < q; l++) y[Q[l]!] = yq[l]!;
    for (let k = 0; k < K; k++) {
      const xk = x[k]!;
      xk.fill(0);
      const { P, z0, Z, m } = states[k]!;
      for (let i = 0; i < m; i++) {
        let s = z0[i]!;
        for (let l = 0; l < q; l++) s -= Z[l * m + i]! * yq[l]!;
        xk[P[i]!] = s;
      }
    }
    // ---- infeasible variables: passive below 0, bound with a negative gradient (M z − g)_p
    vb.length = 0;
    vi.length = 0;
    for (let k = 0; k < K; k++) {
      const bl = blocks[k]!;
      const n = bl.n;
      const pk = pass.blocks[k]!;
      const xk = x[k]!;
      for (let i = 0; i < n; i++) {
        if (pk[i]) {
          if (!bl.free[i] && xk[i]! < 0) {
            vb.push(k);
            vi.push(i);
          }
          continue;
        }
        let w = -bl.g[i]!;
        const row = i * n;
        for (let j = 0; j < n; j++) if (pk[j]) w += bl.M[row + j]! * xk[j]!;
        for (let l = 0; l < q; l++) w += bl.E[i * b + Q[l]!]! * yq[l]!;
        if (w < -tol) {
          vb.push(k);
          vi.push(i);
        }
      }
    }
    for (let l = 0; l < b; l++) {
      if (pass.border[l]) {
        if (!freeB[l] && y[l]! < 0) {
          vb.push(K);
          vi.push(l);
        }
        continue;
      }
      let w = -h[l]!;
      for (let l2 = 0; l2 < q; l2++) w += D[l * b + Q[l2]!]! * yq[l2]!;
      for (let k = 0; k < K; k++) {
        const bl = blocks[k]!;
        const { P, m } = states[k]!;
        const xk = x[k]!;
        for (let i = 0; i < m; i++) w += bl.E[P[i]! * b + l]! * xk[P[i]!]!;
      }
      if (w < -tol) {
        vb.push(K);
        vi.push(l);
      }
    }
    const nv = vb.length;
    if (nv === 0) return { x, y, steps, converged: true };
    if (steps >= limit) break;
    // ---- exchange: all while the count falls, then up to 3 more times, then the last one alone
    let from = 0;
    const to = nv;
    if (nv < ninf) {
      ninf = nv;
      lives = 3;
    } else if (lives > 0) lives--;
    else from = to - 1; // the largest (block, index): blocks in order, the border last
    for (let v = from; v < to; v++) {
      const k = vb[v]!;
      const i = vi[v]!;
      if (k === K) {
        pass.border[i] = pass.border[i] ? 0 : 1;
        borderValid = false;
      } else {
        const pk = pass.blocks[k]!;
        pk[i] = pk[i] ? 0 : 1;
        states[k]!.factorValid = false;
      }
    }
  }
  x.forEach((xk, k) => {
    const fr = blocks[k]!.free;
    for (let i = 0; i < xk.length; i++) if (!fr[i] && xk[i]! < 0) xk[i] = 0;
  });
  for (let l = 0; l < b; l++) if (!freeB[l] && y[l]! < 0) y[l] = 0;
  return { x, y, steps, converged: false };
}

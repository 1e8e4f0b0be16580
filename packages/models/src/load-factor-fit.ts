/**
 * Least squares with a load factor: rows  b ≈ Σ_p x_p · (v0_p + β₁·v1_p + β₂·v2_p) + Σ_a x_a · w_a,
 * where the scaled columns p are CPU terms (v_k = Σ cpuTerm · u^k over the terms of that column, u the load
 * of each term's socket or host) and the unscaled columns a are intercepts and I/O terms. For fixed (β₁, β₂)
 * it is an NNLS; the normal equations are polynomials in β and are accumulated once over all rows:
 *   AᵀA = Σ_{i≤j} βᵢβⱼ T_ij,   Aᵀb = Σ_i βᵢ B_i     (β₀ = 1; T_ij = S_ij + S_ji for i < j, T_ii = S_ii)
 * with S_ij = Σ_rows a_i a_jᵀ, a_0 = v0 + the unscaled values, a_1 = v1, a_2 = v2; so a grid over β costs one
 * solve per point, not a pass over the data.
 *
 * Structure (what makes a hardware class of many hosts cheap): a row is one interval of one host, so a VM's
 * column meets only the columns of that host (its VMs, its intercept) and a few columns every host has (I/O
 * weights, the hypervisor term). The rows are kept (compactly) as they are added; before the first solve the
 * columns are split into a border (columns in the rows of many hosts, peeled greedily by how many rows they
 * are in while that lowers the cost of the solve) and blocks: the connected components of the rest, columns
 * linked when they share a row (union–find; a VM that migrated joins its hosts' blocks, which stays exact).
 * The normal equations are then accumulated per block (its columns against themselves and against the
 * border) and on the border: Σ_k (n_k + b)² entries instead of N², and each solve is the bordered NNLS of
 * bordered-nnls.ts, linear in the number of hosts, warm-started from the previous solve's active sets.
 * `solver: 'dense'` keeps the whole AᵀA and Lawson–Hanson (nnls.ts): the reference, for tests; it is also the
 * fallback should the pivoting not converge.
 */
import { borderedNnls, borderedWorkspace, type BorderedBlock, type BorderedWorkspace, type PassiveSets } from './bordered-nnls.js';
import { nnlsNormal } from './nnls.js';
import type { Logger } from '@wattsplit/wire';

export interface LoadFactorSolution {
  b1: number;
  b2: number;
  x: Float64Array;
  /** Residual sum of squares of the data (without the ridge). */
  sse: number;
}

/**
 * One row: `m` scaled entries (columns `cols[0..m)`, values `v[k][0..m)` for k = 0, 1, 2) and unscaled
 * entries (`ucols`, `uvals`); `target` is b. A column may appear more than once (its entries add up).
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

export interface LoadFactorOptions {
  /** 'blocks' (default): the block structure above; 'dense': one dense AᵀA and Lawson–Hanson (the reference). */
  solver?: 'blocks' | 'dense';
  /** How `search` walks the (β₁, β₂) box: 'coarse-to-fine' (default) or 'grid' (every grid point: the reference). */
  search?: 'coarse-to-fine' | 'grid';
  /** Where a point solved by the dense fallback is reported (a warning, once per system or per label in `warned`; the count in `denseFallbacks`). */
  logger?: Logger;
  /** Names the system in that warning (e.g. the hardware class and source). */
  label?: string;
  /** Pivoting steps the bordered NNLS may take per point before the dense fallback (default: bordered-nnls.ts's own bound). */
  maxPivotSteps?: number;
  /**
   * Labels already warned about, shared by the systems of one training (the trainer builds several per
   * source): the fallback warning is given once per label over all of them. Default: this system's own set
   * (once per system).
   */
  warned?: Set<string>;
  /** A counter shared by the systems of one training: every dense fallback of any of them adds 1 to `count`. */
  fallbacks?: { count: number };
}

/** How the columns were split (for tests and diagnostics). */
export interface LoadFactorStructure {
  /** Columns of each block, in ascending order. */
  blocks: number[][];
  /** The border's columns, in the order peeled. */
  border: number[];
}

/**
 * The box of load factors searched. Per-core power may fall with load as steeply as it rises (turbo bins by
 * active cores, SMT siblings, neighbours' contention): β₁ down to −1.2 with a convex β₂ up to 1.2.
 */
const B1_MIN = -1.2;
const B2_MAX = 1.2;
/** How many of the coarse grid's best points the coarse-to-fine search refines around. */
const REFINE = 3;

/** A block's accumulated polynomials: 6 coefficients per entry (T_00, T_01, T_02, T_11, T_12, T_22), 3 per Aᵀb entry. */
interface BlockSums {
  /** Global columns, in local order. */
  cols: Int32Array;
  /** s×s, upper triangle used: T[(p·s + q)·6 + c], p ≤ q. */
  T: Float64Array;
  /** s×b: against the border, E[(p·b + l)·6 + c]. */
  E: Float64Array;
  /** Aᵀb: g[p·3 + c]. */
  g: Float64Array;
}

interface Layout {
  blocks: BlockSums[];
  border: Int32Array;
  /** b×b border against border, upper triangle, 6 per entry. */
  D: Float64Array;
  /** b, 3 per entry. */
  h: Float64Array;
  /** Per column: its block, or −1 − its border index. */
  where: Int32Array;
  /** Per column: its index in its block. */
  local: Int32Array;
  /** The system at one β (overwritten by each `assemble`) and the solver's buffers. */
  at: { blocks: BorderedBlock[]; D: Float64Array; h: Float64Array; work: BorderedWorkspace | undefined };
}

/** Adds the pair (x, y) of entries (a0, a1, a2) into the 6 coefficients at T[o]. */
function addPair(T: Float64Array, o: number, x0: number, x1: number, x2: number, y0: number, y1: number, y2: number): void {
  T[o] = T[o]! + x0 * y0;
  T[o + 1] = T[o + 1]! + x0 * y1 + x1 * y0;
  T[o + 2] = T[o + 2]! + x0 * y2 + x2 * y0;
  T[o + 3] = T[o + 3]! + x1 * y1;
  T[o + 4] = T[o + 4]! + x1 * y2 + x2 * y1;
  T[o + 5] = T[o + 5]! + x2 * y2;
}

/** Cost of solving with these block sizes and a border of b (flops of the factorisations and the Schur complement, ∝). */
function solveCost(sizes: readonly number[], b: number): number {
  let c = (b * b * b) / 3;
  for (const s of sizes) c += (s * s * s) / 3 + s * s * b + s * b * b;
  return c;
}

export class LoadFactorNormalEquations {
  readonly n: number;
  rows = 0;
  /** NNLS solved so far (one per (β₁, β₂) tried): for tests and diagnostics. */
  solves = 0;
  /** Pivoting steps (block solves) of those NNLS, all together. */
  pivotSteps = 0;
  /** Points where the block pivoting did not converge and the dense Lawson–Hanson solved them instead. */
  denseFallbacks = 0;
  private readonly logger: Logger | undefined;
  private readonly label: string;
  private readonly maxPivotSteps: number | undefined;
  private readonly warned: Set<string>;
  private readonly fallbacks: { count: number } | undefined;
  private bb = 0;
  private readonly dense: boolean;
  private readonly searchMode: 'coarse-to-fine' | 'grid';
  // the rows, compactly: entries [rowStart[r], rowStart[r+1]) of (column, a0, a1, a2), duplicates merged
  private rowStart = new Int32Array(1024);
  private entCol = new Int32Array(16384);
  private entA = new Float64Array(3 * 16384);
  private targets = new Float64Array(1024);
  private entries = 0;
  private layout: Layout | undefined;
  private warm: PassiveSets | undefined;
  private readonly slot: Int32Array;

  constructor(n: number, opts: LoadFactorOptions = {}) {
    this.n = n;
    this.dense = opts.solver === 'dense';
    this.searchMode = opts.search ?? 'coarse-to-fine';
    this.logger = opts.logger;
    this.label = opts.label ?? 'load factor';
    this.maxPivotSteps = opts.maxPivotSteps;
    this.warned = opts.warned ?? new Set<string>();
    this.fallbacks = opts.fallbacks;
    this.slot = new Int32Array(n).fill(-1);
  }

  /** Adds one row (LoadFactorRow); the sums are formed at the next `system`, `solve` or `structure`. */
  addRow(row: LoadFactorRow): void {
    const { m, cols, v, ucols, uvals, target } = row;
    this.bb += target * target;
    const r = this.rows++;
    const need = this.entries + m + ucols.length;
    if (need > this.entCol.length) {
      const cap = Math.max(need, 2 * this.entCol.length);
      const c = new Int32Array(cap);
      c.set(this.entCol);
      this.entCol = c;
      const a = new Float64Array(3 * cap);
      a.set(this.entA);
      this.entA = a;
    }
    if (r + 2 > this.rowStart.length) {
      const s = new Int32Array(2 * this.rowStart.length);
      s.set(this.rowStart);
      this.rowStart = s;
      const t = new Float64Array(2 * this.targets.length);
      t.set(this.targets);
      this.targets = t;
    }
    const start = this.entries;
    let e = start;
    const { slot, entCol, entA } = this;
    const put = (c: number, a0: number, a1: number, a2: number): void => {
      let k = slot[c]!;
      if (k < 0) {
        k = e++;
        slot[c] = k;
        entCol[k] = c;
        entA[3 * k] = entA[3 * k + 1] = entA[3 * k + 2] = 0;
      }
      entA[3 * k] = entA[3 * k]! + a0;
      entA[3 * k + 1] = entA[3 * k + 1]! + a1;
      entA[3 * k + 2] = entA[3 * k + 2]! + a2;
    };
    const v0 = v[0]!;
    const v1 = v[1]!;
    const v2 = v[2]!;
    for (let p = 0; p < m; p++) {
      const a0 = v0[p]!;
      const a1 = v1[p]!;
      const a2 = v2[p]!;
      if (a0 !== 0 || a1 !== 0 || a2 !== 0) put(cols[p]!, a0, a1, a2);
    }
    for (let a = 0; a < ucols.length; a++) if (uvals[a]! !== 0) put(ucols[a]!, uvals[a]!, 0, 0);
    // drop entries that cancelled to 0 (they add nothing, and would link columns for nothing)
    let w = start;
    for (let k = start; k < e; k++) {
      slot[entCol[k]!] = -1;
      if (entA[3 * k] === 0 && entA[3 * k + 1] === 0 && entA[3 * k + 2] === 0) continue;
      if (w !== k) {
        entCol[w] = entCol[k]!;
        entA[3 * w] = entA[3 * k]!;
        entA[3 * w + 1] = entA[3 * k + 1]!;
        entA[3 * w + 2] = entA[3 * k + 2]!;
      }
      w++;
    }
    this.entries = w;
    this.rowStart[r + 1] = w;
    this.targets[r] = target;
    this.layout = undefined;
    this.warm = undefined;
  }

  /** The split into blocks and border (formed from the rows so far). */
  structure(): LoadFactorStructure {
    const L = this.sums();
    const blocks = L.blocks.map((bl) => Array.from(bl.cols).sort((a, b) => a - b));
    return { blocks, border: Array.from(L.border) };
  }

  /** Union–find components of the columns outside `border` (rows link their columns); returns each column's root. */
  private components(isBorder: Uint8Array): Int32Array {
    const parent = new Int32Array(this.n);
    for (let c = 0; c < this.n; c++) parent[c] = c;
    const find = (c: number): number => {
      while (parent[c] !== c) {
        const p = parent[parent[c]!]!;
        parent[c] = p;
        c = p;
      }
      return c;
    };
    const { rowStart, entCol } = this;
    for (let r = 0; r < this.rows; r++) {
      let first = -1;
      for (let e = rowStart[r]!; e < rowStart[r + 1]!; e++) {
        const c = entCol[e]!;
        if (isBorder[c]) continue;
        if (first < 0) first = find(c);
        else {
          const rc = find(c);
          if (rc !== first) {
            // union by index: the smaller root wins (deterministic)
            if (rc < first) {
              parent[first] = rc;
              first = rc;
            } else parent[rc] = first;
          }
        }
      }
    }
    for (let c = 0; c < this.n; c++) parent[c] = find(c);
    return parent;
  }

  private blockSizes(root: Int32Array, isBorder: Uint8Array): number[] {
    const count = new Map<number, number>();
    for (let c = 0; c < this.n; c++) if (!isBorder[c]) count.set(root[c]!, (count.get(root[c]!) ?? 0) + 1);
    return [...count.values()];
  }

  /**
   * The layout and the sums. Border: columns by how many rows they are in (most first), each peeled off while
   * the solve's cost (solveCost) falls, stopping 8 columns after the last fall (or at 64 border columns). A
   * column in one host's rows only never helps (it splits nothing), so the search ends soon after the
   * columns every host has.
   */
  private sums(): Layout {
    if (this.layout) return this.layout;
    const n = this.n;
    const { rowStart, entCol, entA, targets } = this;
    const isBorder = new Uint8Array(n);
    const border: number[] = [];
    if (!this.dense) {
      const cnt = new Int32Array(n);
      for (let e = 0; e < this.entries; e++) cnt[entCol[e]!] = cnt[entCol[e]!]! + 1;
      const order = Array.from({ length: n }, (_, c) => c)
        .filter((c) => cnt[c]! > 0)
        .sort((a, b) => cnt[b]! - cnt[a]! || a - b);
      let best = solveCost(this.blockSizes(this.components(isBorder), isBorder), 0);
      let bestLen = 0;
      for (let i = 0; i < order.length && i < 64 && i - bestLen < 8; i++) {
        isBorder[order[i]!] = 1;
        const c = solveCost(this.blockSizes(this.components(isBorder), isBorder), i + 1);
        if (c < best * (1 - 1e-9)) {
          best = c;
          bestLen = i + 1;
        }
      }
      isBorder.fill(0);
      for (let i = 0; i < bestLen; i++) {
        isBorder[order[i]!] = 1;
        border.push(order[i]!);
      }
    }
    const b = border.length;
    const where = new Int32Array(n);
    const local = new Int32Array(n);
    border.forEach((c, l) => {
      where[c] = -1 - l;
      local[c] = l;
    });
    const blockCols: number[][] = [];
    if (this.dense) blockCols.push(Array.from({ length: n }, (_, c) => c));
    else {
      const root = this.components(isBorder);
      const blockOf = new Map<number, number>();
      for (let c = 0; c < n; c++) {
        if (isBorder[c]) continue;
        let k = blockOf.get(root[c]!);
        if (k === undefined) {
          k = blockCols.length;
          blockOf.set(root[c]!, k);
          blockCols.push([]);
        }
        blockCols[k]!.push(c);
      }
    }
    const blocks: BlockSums[] = blockCols.map((cs, k) => {
      cs.forEach((c, i) => {
        where[c] = k;
        local[c] = i;
      });
      const s = cs.length;
      return { cols: Int32Array.from(cs), T: new Float64Array(6 * s * s), E: new Float64Array(6 * s * b), g: new Float64Array(3 * s) };
    });
    const D = new Float64Array(6 * b * b);
    const h = new Float64Array(3 * b);
    // per row: its block entries (local index, a) and border entries (border index, a)
    const li = new Int32Array(n);
    const la = new Float64Array(3 * n);
    const bi = new Int32Array(Math.max(1, b));
    const ba = new Float64Array(3 * Math.max(1, b));
    for (let r = 0; r < this.rows; r++) {
      const t = targets[r]!;
      let k = -1;
      let nl = 0;
      let nb = 0;
      for (let e = rowStart[r]!; e < rowStart[r + 1]!; e++) {
        const c = entCol[e]!;
        const w = where[c]!;
        if (w >= 0) {
          k = w;
          li[nl] = local[c]!;
          la[3 * nl] = entA[3 * e]!;
          la[3 * nl + 1] = entA[3 * e + 1]!;
          la[3 * nl + 2] = entA[3 * e + 2]!;
          nl++;
        } else {
          bi[nb] = local[c]!;
          ba[3 * nb] = entA[3 * e]!;
          ba[3 * nb + 1] = entA[3 * e + 1]!;
          ba[3 * nb + 2] = entA[3 * e + 2]!;
          nb++;
        }
      }
      if (nl > 0) {
        const bl = blocks[k]!;
        const s = bl.cols.length;
        const { T, E, g } = bl;
        for (let i = 0; i < nl; i++) {
          const p = li[i]!;
          const x0 = la[3 * i]!;
          const x1 = la[3 * i + 1]!;
          const x2 = la[3 * i + 2]!;
          g[3 * p] = g[3 * p]! + x0 * t;
          g[3 * p + 1] = g[3 * p + 1]! + x1 * t;
          g[3 * p + 2] = g[3 * p + 2]! + x2 * t;
          for (let j = i; j < nl; j++) {
            const q = li[j]!;
            addPair(T, 6 * (p <= q ? p * s + q : q * s + p), x0, x1, x2, la[3 * j]!, la[3 * j + 1]!, la[3 * j + 2]!);
          }
          for (let j = 0; j < nb; j++) addPair(E, 6 * (p * b + bi[j]!), x0, x1, x2, ba[3 * j]!, ba[3 * j + 1]!, ba[3 * j + 2]!);
        }
      }
      for (let i = 0; i < nb; i++) {
        const p = bi[i]!;
        const x0 = ba[3 * i]!;
        const x1 = ba[3 * i + 1]!;
        const x2 = ba[3 * i + 2]!;
        h[3 * p] = h[3 * p]! + x0 * t;
        h[3 * p + 1] = h[3 * p + 1]! + x1 * t;
        h[3 * p + 2] = h[3 * p + 2]! + x2 * t;
        for (let j = i; j < nb; j++) {
          const q = bi[j]!;
          addPair(D, 6 * (p <= q ? p * b + q : q * b + p), x0, x1, x2, ba[3 * j]!, ba[3 * j + 1]!, ba[3 * j + 2]!);
        }
      }
    }
    const at = {
      blocks: blocks.map((bl) => {
        const s = bl.cols.length;
        return { n: s, M: new Float64Array(s * s), E: new Float64Array(s * b), g: new Float64Array(s), free: new Uint8Array(s) };
      }),
      D: new Float64Array(b * b),
      h: new Float64Array(b),
      work: undefined,
    };
    this.layout = { blocks, border: Int32Array.from(border), D, h, where, local, at };
    return this.layout;
  }

  /** The blocks and the border at (β₁, β₂): full symmetric matrices (before any ridge), in the layout's `at` buffers. */
  private assemble(b1: number, b2: number): { blocks: BorderedBlock[]; D: Float64Array; h: Float64Array } {
    const L = this.sums();
    const w1 = b1;
    const w2 = b2;
    const w3 = b1 * b1;
    const w4 = b1 * b2;
    const w5 = b2 * b2;
    const b = L.border.length;
    const sym = (T: Float64Array, s: number, M: Float64Array): void => {
      for (let p = 0; p < s; p++) {
        for (let q = p; q < s; q++) {
          const o = 6 * (p * s + q);
          const x = T[o]! + w1 * T[o + 1]! + w2 * T[o + 2]! + w3 * T[o + 3]! + w4 * T[o + 4]! + w5 * T[o + 5]!;
          M[p * s + q] = x;
          M[q * s + p] = x;
        }
      }
    };
    const vec = (G: Float64Array, s: number, g: Float64Array): void => {
      for (let p = 0; p < s; p++) g[p] = G[3 * p]! + b1 * G[3 * p + 1]! + b2 * G[3 * p + 2]!;
    };
    const { at } = L;
    L.blocks.forEach((bl, k) => {
      const s = bl.cols.length;
      const out = at.blocks[k]!;
      const E = out.E;
      for (let i = 0; i < s * b; i++) {
        const o = 6 * i;
        E[i] = bl.E[o]! + w1 * bl.E[o + 1]! + w2 * bl.E[o + 2]! + w3 * bl.E[o + 3]! + w4 * bl.E[o + 4]! + w5 * bl.E[o + 5]!;
      }
      sym(bl.T, s, out.M);
      vec(bl.g, s, out.g);
    });
    sym(L.D, b, at.D);
    vec(L.h, b, at.h);
    return at;
  }

  /** AᵀA and Aᵀb at (β₁, β₂), dense (for tests and small systems). */
  system(b1: number, b2: number): { AtA: Float64Array[]; Atb: Float64Array } {
    const n = this.n;
    const L = this.sums();
    const { blocks, D, h } = this.assemble(b1, b2);
    const b = L.border.length;
    const AtA = Array.from({ length: n }, () => new Float64Array(n));
    const Atb = new Float64Array(n);
    L.blocks.forEach((bl, k) => {
      const { M, E, g } = blocks[k]!;
      const s = bl.cols.length;
      for (let p = 0; p < s; p++) {
        const cp = bl.cols[p]!;
        Atb[cp] = g[p]!;
        for (let q = 0; q < s; q++) AtA[cp]![bl.cols[q]!] = M[p * s + q]!;
        for (let l = 0; l < b; l++) {
          const cl = L.border[l]!;
          AtA[cp]![cl] = E[p * b + l]!;
          AtA[cl]![cp] = E[p * b + l]!;
        }
      }
    });
    for (let l = 0; l < b; l++) {
      const cl = L.border[l]!;
      Atb[cl] = h[l]!;
      for (let l2 = 0; l2 < b; l2++) AtA[cl]![L.border[l2]!] = D[l * b + l2]!;
    }
    return { AtA, Atb };
  }

  /**
   * The NNLS at (β₁, β₂), each column's ridge weight the larger of `ridge[p]` × its AᵀA diagonal and
   * `ridgeFloor[p]`; empty columns get a unit diagonal (solution 0 without a ridge).
   */
  solve(b1: number, b2: number, fit: RidgedNnls): LoadFactorSolution | undefined {
    const { ridge, ridgeTo, free, ridgeFloor: ridgeAbs = [] } = fit;
    this.solves++;
    const n = this.n;
    const L = this.sums();
    const { blocks: parts, D, h } = this.assemble(b1, b2);
    const b = L.border.length;
    const isFree = new Uint8Array(n);
    for (const p of free) isFree[p] = 1;
    // the unit diagonal of empty columns, then the ridge (kept apart: the residual is of the data alone)
    const lam = new Float64Array(n);
    const ridgeOn = (p: number, M: Float64Array, o: number, g: Float64Array, gi: number): void => {
      if (M[o]! === 0) M[o] = 1;
      const r = ridge[p] ?? 0;
      const ra = ridgeAbs[p] ?? 0;
      if (!(r > 0) && !(ra > 0)) return;
      lam[p] = Math.max(r * M[o]!, ra) + 1e-9;
      M[o] = M[o]! + lam[p];
      g[gi] = g[gi]! + lam[p] * ridgeTo;
    };
    const g0 = new Float64Array(n);
    const sys: BorderedBlock[] = L.blocks.map((bl, k) => {
      const part = parts[k]!;
      const { M, g, free: fr } = part;
      const s = bl.cols.length;
      for (let p = 0; p < s; p++) {
        const c = bl.cols[p]!;
        g0[c] = g[p]!;
        fr[p] = isFree[c]!;
        ridgeOn(c, M, p * s + p, g, p);
      }
      return part;
    });
    const freeB = new Uint8Array(b);
    for (let l = 0; l < b; l++) {
      const c = L.border[l]!;
      g0[c] = h[l]!;
      freeB[l] = isFree[c]!;
      ridgeOn(c, D, l * b + l, h, l);
    }
    const x = new Float64Array(n);
    let z: { x: Float64Array[]; y: Float64Array } | undefined;
    if (!this.dense) {
      this.warm ??= { blocks: sys.map((bl) => new Uint8Array(bl.n).fill(1)), border: new Uint8Array(b).fill(1) };
      const bordered = { blocks: sys, b, D, h, freeB };
      L.at.work ??= borderedWorkspace(bordered);
      const sol = borderedNnls(bordered, this.warm, L.at.work, this.maxPivotSteps);
      this.pivotSteps += sol.steps;
      if (sol.converged) z = sol;
      else {
        this.warm = undefined;
        // the dense solve below gives the same optimum, at about N⁴ instead of linear in the hosts: say so once
        // per label (over the systems sharing `warned`)
        this.denseFallbacks++;
        if (this.fallbacks) this.fallbacks.count++;
        if (!this.warned.has(this.label)) {
          this.warned.add(this.label);
          this.logger?.warn({ system: this.label, b1, b2, columns: n, blocks: sys.length, border: b, steps: sol.steps }, 'bordered NNLS did not converge: this point, and any other that does not, is solved by the dense Lawson–Hanson (same optimum, slower)');
        }
      }
    }
    // x·(AᵀA + Λ)·x over the blocks and the border, in the same pass as the scatter to global columns
    let quad = 0;
    if (z) {
      const { x: xs, y } = z;
      L.blocks.forEach((bl, k) => {
        const { M, E } = sys[k]!;
        const xk = xs[k]!;
        const s = bl.cols.length;
        for (let p = 0; p < s; p++) {
          x[bl.cols[p]!] = xk[p]!;
          let row = 0;
          for (let q = 0; q < s; q++) row += M[p * s + q]! * xk[q]!;
          let cross = 0;
          for (let l = 0; l < b; l++) cross += E[p * b + l]! * y[l]!;
          quad += xk[p]! * (row + 2 * cross);
        }
      });
      for (let l = 0; l < b; l++) {
        x[L.border[l]!] = y[l]!;
        let row = 0;
        for (let l2 = 0; l2 < b; l2++) row += D[l * b + l2]! * y[l2]!;
        quad += y[l]! * row;
      }
    } else {
      // the reference: one dense AᵀA (with the unit diagonals and the ridge) and Lawson–Hanson
      const AtA = Array.from({ length: n }, () => new Float64Array(n));
      const Atb = new Float64Array(n);
      L.blocks.forEach((bl, k) => {
        const { M, E, g } = sys[k]!;
        const s = bl.cols.length;
        for (let p = 0; p < s; p++) {
          const cp = bl.cols[p]!;
          Atb[cp] = g[p]!;
          for (let q = 0; q < s; q++) AtA[cp]![bl.cols[q]!] = M[p * s + q]!;
          for (let l = 0; l < b; l++) AtA[cp]![L.border[l]!] = AtA[L.border[l]!]![cp] = E[p * b + l]!;
        }
      });
      for (let l = 0; l < b; l++) {
        Atb[L.border[l]!] = h[l]!;
        for (let l2 = 0; l2 < b; l2++) AtA[L.border[l]!]![L.border[l2]!] = D[l * b + l2]!;
      }
      x.set(nnlsNormal(AtA, Atb, free));
      for (let p = 0; p < n; p++) {
        const row = AtA[p]!;
        let s = 0;
        for (let q = 0; q < n; q++) s += row[q]! * x[q]!;
        quad += x[p]! * s;
      }
    }
    if (!x.every((v) => Number.isFinite(v))) return undefined;
    // sse = bb − 2 xᵀAᵀb + xᵀAᵀA x, the ridge taken out of the quadratic form
    let sse = this.bb + quad;
    for (let p = 0; p < n; p++) sse -= 2 * x[p]! * g0[p]! + lam[p]! * x[p]! * x[p]!;
    return { b1, b2, x, sse };
  }

  /**
   * The (β₁, β₂) of least residual. The reference (`search: 'grid'`): every point of a grid (β₁ step 0.2 over
   * [B1_MIN, 1.6], β₂ step 0.1 over [−1.2, B2_MAX]: 15 × 25 points, about 306 admissible), then a pattern
   * search from its best point at steps 0.05, 0.025, 0.0125 (the residual has a long narrow valley along which
   * the intercept and the curvature trade off; the search follows it, inside the grid's box). Only factors
   * staying above 0.1 on u ∈ [0, 1] are tried. `fixed` skips the search.
   *
   * The default (`search: 'coarse-to-fine'`) solves 33–52 % as many points (114–165 NNLS per search against the
   * grid's 315–346, counted by benchmarks/training-fit.mjs on 10 × 50 and 50 × 50 hosts × VMs, 2026-12-06;
   * docs/benchmarks.md, the coarse-to-fine section): the grid's even points first
   * (β₁ step 0.4, β₂ step 0.2: about 85 admissible), then every grid point in the coarse cells around the REFINE
   * best of them, then the same pattern search from the best grid point seen. Whenever the grid's best point
   * lies in one of those cells it is found, and the pattern search from it is the reference's step for step
   * (same point, same fit to the solver's precision). That is an assumption about the residual surface (its
   * best coarse points are near its best grid point), not a guarantee: the tests hold it against the reference
   * on classes of 1–6 hosts with load factors across the box, and the trainer on one host and four.
   * Both memoise the points solved (a pattern move revisits most of its neighbours).
   */
  search(fit: RidgedNnls, fixed?: readonly [number, number]): LoadFactorSolution | undefined {
    if (fixed) return this.solve(fixed[0], fixed[1], fit);
    // grid indices: β₁ = i / 5, β₂ = j / 10; the pattern steps are multiples of 0.0125 = 1/80, so a point is
    // keyed by its coordinates in 1/80 (exact integers whatever path reached it)
    const I0 = Math.round(B1_MIN * 5);
    const I1 = 8;
    const J0 = -12;
    const J1 = Math.round(B2_MAX * 10);
    const admissible = (b1: number, b2: number): boolean => b1 >= B1_MIN - 1e-9 && b1 <= 1.6 + 1e-9 && b2 >= -1.2 - 1e-9 && b2 <= B2_MAX + 1e-9 && [0, 0.25, 0.5, 0.75, 1].every((u) => 1 + b1 * u + b2 * u * u > 0.1);
    const seen = new Map<number, LoadFactorSolution | undefined>();
    let best: LoadFactorSolution | undefined;
    const tryBeta = (b1: number, b2: number): LoadFactorSolution | undefined => {
      const key = Math.round(b1 * 80) * 4096 + Math.round(b2 * 80);
      if (seen.has(key)) return seen.get(key);
      const r = admissible(b1, b2) ? this.solve(b1, b2, fit) : undefined;
      seen.set(key, r);
      if (r && (!best || r.sse < best.sse)) best = r;
      return r;
    };
    if (this.searchMode === 'grid') {
      for (let i = I0; i <= I1; i++) for (let j = J0; j <= J1; j++) tryBeta(i / 5, j / 10);
    } else {
      const coarse: LoadFactorSolution[] = [];
      const at = new Map<LoadFactorSolution, readonly [number, number]>();
      for (let i = I0; i <= I1; i += 2) {
        for (let j = J0; j <= J1; j += 2) {
          const r = tryBeta(i / 5, j / 10);
          if (r) {
            coarse.push(r);
            at.set(r, [i, j]);
          }
        }
      }
      coarse.sort((a, b) => a.sse - b.sse);
      for (const c of coarse.slice(0, REFINE)) {
        const [ci, cj] = at.get(c)!;
        for (let i = Math.max(I0, ci - 2); i <= Math.min(I1, ci + 2); i++) for (let j = Math.max(J0, cj - 2); j <= Math.min(J1, cj + 2); j++) tryBeta(i / 5, j / 10);
      }
    }
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

/**
 * RaplGram: the running sums behind StaticPowerLearner's RAPL regression, kept per host as records enter
 * and leave its window, so an estimate costs O(VMs²) instead of O(window × VMs²).
 *
 * Why: the regression has two columns per VM (cores, and cores × busy fraction). Building its normal
 * equations from the records at every interval cost ~10 M multiply-adds per host-interval at a full
 * window (900 records × 104² for 50 VMs), plus a Gauss-Jordan solve of 104³: it was most of the
 * collector's CPU per VM-sample. The normal equations only need sums over the records, and every column
 * is a sum of base features (a VM's cores, or the hypervisor's, times u⁰ or u¹), so sums of products of
 * base features — kept under add and evict — give every column's, whatever VMs are chosen as columns.
 *
 * Invariant: after any sequence of add(r) and remove(r) (remove only of a record added before and not yet
 * removed), the sums equal those over the records added and not removed, up to rounding; `rebuild`
 * recomputes them from scratch (the learner does so every REBUILD_EVERY pushes and after an import, so
 * rounding from evictions never accumulates and VMs gone from the window are forgotten).
 * Same regression as `ridgeIntercept` on the records' design matrix, same column choice, the same λ;
 * the intercept agrees with it to rounding (static-power-learner.test.ts checks 1e-6 W). A column whose
 * variance the sums cannot tell from rounding (below 1e-12 of its mean square) counts as constant, as a
 * constant column does there.
 */

/** What the sums need of one record (a subset of StaticPowerLearner's record). */
export interface GramRecord {
  /** Cores per VM (cpu seconds / interval seconds). */
  cores: ReadonlyMap<string, number>;
  overheadCores: number;
  busyFrac: number;
  /** power.rapl: RAPL watts (the regressand). */
  power: { readonly rapl: number };
}

/**
 * Pushes between two rebuilds from the window (bounds rounding from evictions, and forgets VMs gone from it).
 * Every sum is of non-negative terms (cores, busy fractions, watts), so 2 × 1024 adds and evictions leave at
 * most ≈ 2·10⁻¹³ of a sum's size; 256 until 2026-12-06, when a rebuild (the window's 900 records) every 256
 * pushes was three quarters of the sums' cost per interval (`node benchmarks/static-power.mjs`).
 */
export const REBUILD_EVERY = 1024;

export class RaplGram {
  /** VM uuid → base index; index 0 is the hypervisor's cores. */
  private idx = new Map<string, number>();
  private dim = 0;
  private cap = 0;
  /** Σ fa·fb·u^p, p = 0, 1, 2 (cap × cap, row-major). */
  private p0 = new Float64Array(0);
  private p1 = new Float64Array(0);
  private p2 = new Float64Array(0);
  /** Σ fa·u^p, Σ fa·u^p·y (p = 0, 1), and in how many records VM a appears. */
  private l0 = new Float64Array(0);
  private l1 = new Float64Array(0);
  private y0 = new Float64Array(0);
  private y1 = new Float64Array(0);
  private count = new Float64Array(0);
  /** Records in the sums, and Σy. */
  n = 0;
  private sy = 0;
  // scratch per record: base indices and values, m of them (typed arrays, grown by doubling: a record
  // allocates nothing on the heap; a `[uuid, cores]` pair per VM from the Map's iterator and the arrays
  // re-grown after `length = 0` were ≈ 230 bytes per VM-sample of garbage)
  private ks = new Int32Array(64);
  private vs = new Float64Array(64);
  private m = 0;
  private sign: 1 | -1 = 1;
  /** Map.forEach callback of apply (one function for the object's life, not a closure per record). */
  private readonly collect = (c: number, uuid: string): void => {
    const i = this.indexOf(uuid);
    this.count[i]! += this.sign;
    if (this.m === this.ks.length) {
      const ks = new Int32Array(2 * this.m);
      const vs = new Float64Array(2 * this.m);
      ks.set(this.ks);
      vs.set(this.vs);
      this.ks = ks;
      this.vs = vs;
    }
    this.ks[this.m] = i;
    this.vs[this.m] = c;
    this.m++;
  };

  constructor() {
    this.grow(64);
    this.idx.clear();
    this.dim = 1;
  }

  add(r: GramRecord): void {
    this.apply(r, 1);
  }

  remove(r: GramRecord): void {
    this.apply(r, -1);
  }

  /** Replaces the sums by those of `recs`. */
  rebuild(recs: Iterable<GramRecord>): void {
    this.idx = new Map();
    this.dim = 1;
    for (const a of [this.p0, this.p1, this.p2, this.l0, this.l1, this.y0, this.y1, this.count]) a.fill(0);
    this.n = 0;
    this.sy = 0;
    for (const r of recs) this.apply(r, 1);
  }

  /** Base indices in use beyond the VMs still in the window (a rebuild forgets the others). */
  get staleIndices(): number {
    let live = 0;
    for (const i of this.idx.values()) if (this.count[i]! > 0.5) live++;
    return this.idx.size - live;
  }

  private grow(min: number): void {
    const cap = Math.max(min, this.cap * 2);
    const old = this.cap;
    const sq = (a: Float64Array) => {
      const b = new Float64Array(cap * cap);
      for (let i = 0; i < old; i++) b.set(a.subarray(i * old, i * old + old), i * cap);
      return b;
    };
    const lin = (a: Float64Array) => {
      const b = new Float64Array(cap);
      b.set(a);
      return b;
    };
    this.p0 = sq(this.p0);
    this.p1 = sq(this.p1);
    this.p2 = sq(this.p2);
    this.l0 = lin(this.l0);
    this.l1 = lin(this.l1);
    this.y0 = lin(this.y0);
    this.y1 = lin(this.y1);
    this.count = lin(this.count);
    this.cap = cap;
  }

  private indexOf(uuid: string): number {
    let i = this.idx.get(uuid);
    if (i === undefined) {
      i = this.dim++;
      if (i >= this.cap) this.grow(i + 1);
      this.idx.set(uuid, i);
    }
    return i;
  }

  private apply(r: GramRecord, s: 1 | -1): void {
    this.ks[0] = 0;
    this.vs[0] = r.overheadCores;
    this.m = 1;
    this.sign = s;
    r.cores.forEach(this.collect); // the Map's order, as iterating it
    const { ks, vs, m } = this;
    const u = r.busyFrac;
    const y = r.power.rapl;
    const cap = this.cap;
    const { p0, p1, p2, l0, l1, y0, y1 } = this;
    for (let x = 0; x < m; x++) {
      const a = ks[x]!;
      const fa = s * vs[x]!;
      l0[a]! += fa;
      l1[a]! += fa * u;
      y0[a]! += fa * y;
      y1[a]! += fa * u * y;
      const row = a * cap;
      for (let z = 0; z < m; z++) {
        const f = fa * vs[z]!;
        const at = row + ks[z]!;
        p0[at]! += f;
        p1[at]! += f * u;
        p2[at]! += f * u * u;
      }
    }
    this.n += s;
    this.sy += s * y;
  }

  /**
   * The regression's intercept (RAPL watts with every VM and the hypervisor idle), or undefined when the
   * system is degenerate. Columns: each VM present in at least `minShare` of the records, the other VMs
   * summed, the hypervisor's cores; each also times the busy fraction. Ridge λ on standardised columns.
   */
  intercept({ minShare = 0.1, lambda = 1e-4, work = new InterceptWork() }: InterceptOptions = {}): number | undefined {
    const n = this.n;
    if (n < 3) return undefined;
    // Groups as runs of base indices: each VM in at least minShare of the records alone, the others, the
    // hypervisor ([0]); group g's members are members[start[g] … start[g + 1]).
    const dim = this.dim;
    work.ensureGroups(dim + 2);
    const { members, start } = work;
    let ng = 0;
    let w = 0;
    for (const i of this.idx.values()) {
      const c = this.count[i]!;
      if (c < 0.5) continue; // not in the window (its sums are rounding residue)
      if (c >= minShare * n) {
        start[w++] = ng;
        members[ng++] = i;
      }
    }
    start[w++] = ng;
    for (const i of this.idx.values()) {
      const c = this.count[i]!;
      if (!(c < 0.5) && !(c >= minShare * n)) members[ng++] = i;
    }
    start[w++] = ng;
    members[ng++] = 0;
    start[w] = ng;
    const cap = this.cap;
    work.ensureColumns(w);
    // Group sums: G_p[g][h] = Σ_{a∈g, b∈h} P_p[a][b] (most groups are one VM: dim² terms in all), the three
    // powers in one pass, each sum in member order.
    const { g0, g1, g2 } = work;
    const { p0, p1, p2 } = this;
    for (let g = 0; g < w; g++) {
      const ga0 = start[g]!;
      const ga1 = start[g + 1]!;
      for (let h = 0; h < w; h++) {
        const hb0 = start[h]!;
        const hb1 = start[h + 1]!;
        if (ga1 - ga0 === 1 && hb1 - hb0 === 1) {
          // two one-VM groups (most pairs): the loops below would add the one term to 0, as here
          const at = members[ga0]! * cap + members[hb0]!;
          g0[g * w + h] = 0 + p0[at]!;
          g1[g * w + h] = 0 + p1[at]!;
          g2[g * w + h] = 0 + p2[at]!;
          continue;
        }
        let t0 = 0;
        let t1 = 0;
        let t2 = 0;
        for (let x = ga0; x < ga1; x++) {
          const row = members[x]! * cap;
          for (let z = hb0; z < hb1; z++) {
            const at = row + members[z]!;
            t0 += p0[at]!;
            t1 += p1[at]!;
            t2 += p2[at]!;
          }
        }
        g0[g * w + h] = t0;
        g1[g * w + h] = t1;
        g2[g * w + h] = t2;
      }
    }
    const { gl0, gl1, gy0, gy1 } = work;
    for (let g = 0; g < w; g++) {
      let a0 = 0;
      let a1 = 0;
      let b0 = 0;
      let b1 = 0;
      for (let x = start[g]!; x < start[g + 1]!; x++) {
        const m = members[x]!;
        a0 += this.l0[m]!;
        a1 += this.l1[m]!;
        b0 += this.y0[m]!;
        b1 += this.y1[m]!;
      }
      gl0[g] = a0;
      gl1[g] = a1;
      gy0[g] = b0;
      gy1[g] = b1;
    }
    // Column j = (group j mod w, power ⌊j / w⌋): its sums with column l are in G_{power(j)+power(l)}.
    const p = 2 * w;
    const ym = this.sy / n;
    const { mean, sd, keep } = work;
    let k = 0;
    for (let j = 0; j < p; j++) {
      const hi = j >= w;
      const g = hi ? j - w : j;
      const m = (hi ? gl1[g]! : gl0[g]!) / n;
      const sq = (hi ? g2 : g0)[g * w + g]! / n;
      const v = sq - m * m;
      mean[j] = m;
      sd[j] = v > 0 ? Math.sqrt(v) : 0;
      if (v > 1e-18 && v > 1e-12 * sq) keep[k++] = j;
    }
    if (k === 0) return ym;
    work.ensureSystem(k);
    const { M, rhs } = work;
    // keep is ascending: its first k0 columns are the groups' (power 0), the rest times u (power 1).
    let k0 = 0;
    while (k0 < k && keep[k0]! < w) k0++;
    // The lower triangle only (choleskySolve reads no other entry), row by row; each entry the same
    // expression as a full symmetric fill: (G − n·m_j·m_l) / (sd_j·sd_l), n·m_j·m_l evaluated left to right.
    for (let r = 0; r < k; r++) {
      const j = keep[r]!;
      const jhi = j >= w;
      const gj = jhi ? j - w : j;
      const row = gj * w;
      const nmj = n * mean[j]!;
      const sdj = sd[j]!;
      const mr = r * k;
      const G0 = jhi ? g1 : g0; // with a power-0 column
      const G1 = jhi ? g2 : g1; // with a power-1 column
      const lo = r + 1 < k0 ? r + 1 : k0;
      let c = 0;
      for (; c < lo; c++) {
        const l = keep[c]!;
        M[mr + c] = (G0[row + l]! - nmj * mean[l]!) / (sdj * sd[l]!);
      }
      for (; c <= r; c++) {
        const l = keep[c]!;
        M[mr + c] = (G1[row + l - w]! - nmj * mean[l]!) / (sdj * sd[l]!);
      }
      M[mr + r]! += lambda * n;
      rhs[r] = ((jhi ? gy1[gj]! : gy0[gj]!) - nmj * ym) / sdj;
    }
    const b = choleskySolve(M, rhs, k, work.cholesky);
    if (!b) return undefined;
    let a = ym;
    for (let r = 0; r < k; r++) a -= (b[r]! * mean[keep[r]!]!) / sd[keep[r]!]!;
    return Number.isFinite(a) ? a : undefined;
  }
}

/** Options of `RaplGram.intercept`. */
export interface InterceptOptions {
  /** A VM present in at least this share of the window's records gets columns of its own (default 0.1). */
  readonly minShare?: number;
  /** Ridge λ on standardised columns (λ·n added to the diagonal of the n records' sums; default 1e-4). */
  readonly lambda?: number;
  /** The arrays an estimate fills (reused by the caller across hosts, see InterceptWork); a new one when not given. */
  readonly work?: InterceptWork;
}

/** Scratch arrays of choleskySolve, grown to the largest k solved (the result x is overwritten by the next solve). */
export class CholeskyWork {
  L = new Float64Array(0);
  z = new Float64Array(0);
  x = new Float64Array(0);
  ensure(k: number): void {
    if (this.z.length >= k) return;
    this.L = new Float64Array(k * k);
    this.z = new Float64Array(k);
    this.x = new Float64Array(k);
  }
}

/**
 * The arrays one `RaplGram.intercept` fills (group lists, group sums, the ridge system and its Cholesky
 * factor: ≈ 230 KB at 50 VMs), kept by the caller and reused by every estimate, so an estimate allocates
 * nothing. One per StaticPowerLearner (estimates run one at a time), not one per host.
 * Invariant: every entry an estimate reads was written by that estimate (nothing carries over between calls).
 */
export class InterceptWork {
  members = new Int32Array(0);
  start = new Int32Array(0);
  g0 = new Float64Array(0);
  g1 = new Float64Array(0);
  g2 = new Float64Array(0);
  gl0 = new Float64Array(0);
  gl1 = new Float64Array(0);
  gy0 = new Float64Array(0);
  gy1 = new Float64Array(0);
  mean = new Float64Array(0);
  sd = new Float64Array(0);
  keep = new Int32Array(0);
  M = new Float64Array(0);
  rhs = new Float64Array(0);
  readonly cholesky = new CholeskyWork();

  /** Room for `members` base indices in groups (at most members + 2 groups). */
  ensureGroups(members: number): void {
    if (this.members.length >= members) return;
    this.members = new Int32Array(members);
    this.start = new Int32Array(members + 3);
  }

  /** Room for w groups (2w columns). */
  ensureColumns(w: number): void {
    if (this.gl0.length >= w) return;
    for (const k of ['g0', 'g1', 'g2'] as const) this[k] = new Float64Array(w * w);
    for (const k of ['gl0', 'gl1', 'gy0', 'gy1'] as const) this[k] = new Float64Array(w);
    this.mean = new Float64Array(2 * w);
    this.sd = new Float64Array(2 * w);
    this.keep = new Int32Array(2 * w);
  }

  /** Room for a k × k system. */
  ensureSystem(k: number): void {
    if (this.rhs.length >= k) return;
    this.M = new Float64Array(k * k);
    this.rhs = new Float64Array(k);
  }
}

/**
 * Solves M x = rhs for symmetric positive definite M (k×k, row-major, stride k); undefined when M is not
 * (numerically) positive definite. Reads only M's lower triangle (M[i][j], j ≤ i): the upper one may hold anything. The result has exactly k entries. With `work`, the factor and the result
 * live in its arrays (the result is a view of work.x's first k entries, valid until the next solve with that
 * work: work.x may be longer, from a larger earlier solve); without, in new ones.
 *
 * Cholesky–Banachiewicz, rows two at a time: L[i][j] and L[i+1][j] (j < i) share the loads of row j.
 * Every entry is the same sum in the same order as one row at a time — four partial sums over t mod 4
 * (t < j rounded down to a multiple of 4), the rest added to the first — so the factor is the same to the bit.
 */
export function choleskySolve(M: Float64Array, rhs: Float64Array, k: number, work?: CholeskyWork): Float64Array | undefined {
  let L: Float64Array;
  let z: Float64Array;
  let x: Float64Array;
  if (work) {
    work.ensure(k);
    ({ L, z, x } = work);
  } else {
    L = new Float64Array(k * k);
    z = new Float64Array(k);
    x = new Float64Array(k);
  }
  let i = 0;
  for (; i + 1 < k; i += 2) {
    const ra = i * k;
    const rb = ra + k;
    for (let j = 0; j < i; j++) {
      const rj = j * k;
      let a0 = 0;
      let a1 = 0;
      let a2 = 0;
      let a3 = 0;
      let b0 = 0;
      let b1 = 0;
      let b2 = 0;
      let b3 = 0;
      let t = 0;
      for (; t + 3 < j; t += 4) {
        const l0 = L[rj + t]!;
        const l1 = L[rj + t + 1]!;
        const l2 = L[rj + t + 2]!;
        const l3 = L[rj + t + 3]!;
        a0 += L[ra + t]! * l0;
        a1 += L[ra + t + 1]! * l1;
        a2 += L[ra + t + 2]! * l2;
        a3 += L[ra + t + 3]! * l3;
        b0 += L[rb + t]! * l0;
        b1 += L[rb + t + 1]! * l1;
        b2 += L[rb + t + 2]! * l2;
        b3 += L[rb + t + 3]! * l3;
      }
      for (; t < j; t++) {
        const l = L[rj + t]!;
        a0 += L[ra + t]! * l;
        b0 += L[rb + t]! * l;
      }
      const d = L[rj + j]!;
      L[ra + j] = (M[ra + j]! - (a0 + a1 + a2 + a3)) / d;
      L[rb + j] = (M[rb + j]! - (b0 + b1 + b2 + b3)) / d;
    }
    // the 2×2 block on the diagonal: L[i][i], then L[i+1][i] (needs L[i][i]), then L[i+1][i+1]
    if (!choleskyEntry(M, L, k, i, i)) return undefined;
    choleskyEntry(M, L, k, i + 1, i);
    if (!choleskyEntry(M, L, k, i + 1, i + 1)) return undefined;
  }
  if (i < k) {
    // the last row of an odd k
    for (let j = 0; j < i; j++) choleskyEntry(M, L, k, i, j);
    if (!choleskyEntry(M, L, k, i, i)) return undefined;
  }
  for (let i = 0; i < k; i++) {
    let s = rhs[i]!;
    for (let t = 0; t < i; t++) s -= L[i * k + t]! * z[t]!;
    z[i] = s / L[i * k + i]!;
  }
  for (let i = k - 1; i >= 0; i--) {
    let s = z[i]!;
    for (let t = i + 1; t < k; t++) s -= L[t * k + i]! * x[t]!;
    x[i] = s / L[i * k + i]!;
  }
  return x.length === k ? x : x.subarray(0, k);
}

/** L[i][j] (j ≤ i) from M and the entries of rows i and j before column j; false when i = j and M is not positive definite there. */
function choleskyEntry(M: Float64Array, L: Float64Array, k: number, i: number, j: number): boolean {
  const ri = i * k;
  const rj = j * k;
  // the dot product of rows i and j of L up to column j, four partial sums
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let t = 0;
  for (; t + 3 < j; t += 4) {
    s0 += L[ri + t]! * L[rj + t]!;
    s1 += L[ri + t + 1]! * L[rj + t + 1]!;
    s2 += L[ri + t + 2]! * L[rj + t + 2]!;
    s3 += L[ri + t + 3]! * L[rj + t + 3]!;
  }
  for (; t < j; t++) s0 += L[ri + t]! * L[rj + t]!;
  const s = M[ri + j]! - (s0 + s1 + s2 + s3);
  if (i === j) {
    if (!(s > 1e-12)) return false;
    L[ri + i] = Math.sqrt(s);
  } else {
    L[ri + j] = s / L[rj + j]!;
  }
  return true;
}

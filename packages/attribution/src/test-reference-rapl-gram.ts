/**
 * Frozen reference for rapl-gram.test.ts (not exported from the index): `RaplGram` and `choleskySolve` exactly
 * as they were at cb03fb3, before issue 15 made the estimate allocate nothing (the arrays kept in an
 * InterceptWork) and factor two rows at a time. The shipped intercept must equal this one to the bit.
 * Do not edit it to follow the code: it is the old behaviour, pasted from
 * `git show cb03fb3:packages/attribution/src/rapl-gram.ts` (renamed; its header and REBUILD_EVERY left out).
 */
/** What the sums need of one record (a subset of StaticPowerLearner's record). */
interface GramRecord {
  /** Cores per VM (cpu seconds / interval seconds). */
  cores: ReadonlyMap<string, number>;
  overheadCores: number;
  busyFrac: number;
  /** power.rapl: RAPL watts (the regressand). */
  power: { readonly rapl: number };
}

/** Pushes between two rebuilds from the window (bounds rounding from evictions). */

export class ReferenceRaplGram {
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
  // scratch per record (base indices and values)
  private ks: number[] = [];
  private vs: number[] = [];

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
    const ks = this.ks;
    const vs = this.vs;
    ks.length = 0;
    vs.length = 0;
    ks.push(0);
    vs.push(r.overheadCores);
    for (const [uuid, c] of r.cores) {
      const i = this.indexOf(uuid);
      this.count[i]! += s;
      ks.push(i);
      vs.push(c);
    }
    const u = r.busyFrac;
    const y = r.power.rapl;
    const cap = this.cap;
    const { p0, p1, p2, l0, l1, y0, y1 } = this;
    for (let x = 0; x < ks.length; x++) {
      const a = ks[x]!;
      const fa = s * vs[x]!;
      l0[a]! += fa;
      l1[a]! += fa * u;
      y0[a]! += fa * y;
      y1[a]! += fa * u * y;
      const row = a * cap;
      for (let z = 0; z < ks.length; z++) {
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
  intercept(minShare = 0.1, lambda = 1e-4): number | undefined {
    const n = this.n;
    if (n < 3) return undefined;
    const groups: number[][] = [];
    const others: number[] = [];
    for (const i of this.idx.values()) {
      const c = this.count[i]!;
      if (c < 0.5) continue; // not in the window (its sums are rounding residue)
      if (c >= minShare * n) groups.push([i]);
      else others.push(i);
    }
    groups.push(others, [0]);
    const w = groups.length;
    const cap = this.cap;
    // Group sums: G_p[g][h] = Σ_{a∈g, b∈h} P_p[a][b] (most groups are one VM: dim² terms in all).
    const gp = [this.p0, this.p1, this.p2].map((P) => {
      const G = new Float64Array(w * w);
      for (let g = 0; g < w; g++) {
        const ga = groups[g]!;
        for (let h = 0; h < w; h++) {
          const hb = groups[h]!;
          let t = 0;
          for (let x = 0; x < ga.length; x++) {
            const row = ga[x]! * cap;
            for (let z = 0; z < hb.length; z++) t += P[row + hb[z]!]!;
          }
          G[g * w + h] = t;
        }
      }
      return G;
    });
    const gsum = (v: Float64Array, out: Float64Array) => {
      for (let g = 0; g < w; g++) {
        let t = 0;
        for (const x of groups[g]!) t += v[x]!;
        out[g] = t;
      }
      return out;
    };
    const gl0 = gsum(this.l0, new Float64Array(w));
    const gl1 = gsum(this.l1, new Float64Array(w));
    const gy0 = gsum(this.y0, new Float64Array(w));
    const gy1 = gsum(this.y1, new Float64Array(w));
    const [g0, g1, g2] = gp as [Float64Array, Float64Array, Float64Array];
    // Column j = (group j mod w, power ⌊j / w⌋): its sums with column l are in G_{power(j)+power(l)}.
    const p = 2 * w;
    const ym = this.sy / n;
    const mean = new Float64Array(p);
    const sd = new Float64Array(p);
    const keep = new Int32Array(p);
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
    const M = new Float64Array(k * k);
    const rhs = new Float64Array(k);
    for (let r = 0; r < k; r++) {
      const j = keep[r]!;
      const jhi = j >= w;
      const gj = jhi ? j - w : j;
      for (let c = 0; c <= r; c++) {
        const l = keep[c]!;
        const lhi = l >= w;
        const G = jhi ? (lhi ? g2 : g1) : lhi ? g1 : g0;
        const v = (G[gj * w + (lhi ? l - w : l)]! - n * mean[j]! * mean[l]!) / (sd[j]! * sd[l]!);
        M[r * k + c] = v;
        M[c * k + r] = v;
      }
      M[r * k + r]! += lambda * n;
      rhs[r] = ((jhi ? gy1[gj]! : gy0[gj]!) - n * mean[j]! * ym) / sd[j]!;
    }
    const b = referenceCholeskySolve(M, rhs, k);
    if (!b) return undefined;
    let a = ym;
    for (let r = 0; r < k; r++) a -= (b[r]! * mean[keep[r]!]!) / sd[keep[r]!]!;
    return Number.isFinite(a) ? a : undefined;
  }
}

/** Solves M x = rhs for symmetric positive definite M (k×k, row-major); undefined when M is not (numerically) positive definite. */
export function referenceCholeskySolve(M: Float64Array, rhs: Float64Array, k: number): Float64Array | undefined {
  const L = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    const ri = i * k;
    for (let j = 0; j <= i; j++) {
      const rj = j * k;
      // the dot product of rows i and j of L up to column j, four partial sums (most of the solve's time)
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
        if (!(s > 1e-12)) return undefined;
        L[ri + i] = Math.sqrt(s);
      } else {
        L[ri + j] = s / L[rj + j]!;
      }
    }
  }
  const z = new Float64Array(k);
  for (let i = 0; i < k; i++) {
    let s = rhs[i]!;
    for (let t = 0; t < i; t++) s -= L[i * k + t]! * z[t]!;
    z[i] = s / L[i * k + i]!;
  }
  const x = new Float64Array(k);
  for (let i = k - 1; i >= 0; i--) {
    let s = z[i]!;
    for (let t = i + 1; t < k; t++) s -= L[t * k + i]! * x[t]!;
    x[i] = s / L[i * k + i]!;
  }
  return x;
}

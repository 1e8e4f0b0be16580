/**
 * Conservation: for every host interval and source, the parts sum exactly to what was measured.
 * `reconcile` is what every method (baseline and learned) runs last; `checkConservation` is what tests,
 * the collector and the store writer run to refuse a result that breaks the contract.
 */
import type { AttributionResult, AttributionShare, SourceName } from './types.js';

export const SOURCES: readonly SourceName[] = Object.freeze(['rapl', 'gpu', 'bmc_rest']);

export interface ReconcileOptions {
  /** Labels of the unallocated share created when nothing else can absorb a residual. */
  unallocatedName?: string;
}

/**
 * Returns new shares whose (dynamic + static) sum, per source, equals `measured[source]`:
 * 1. negative or non-finite parts become 0;
 * 2. if static parts alone exceed the measurement, statics are scaled down and dynamics zeroed;
 *    otherwise dynamic parts are scaled by (measured − Σstatic) / Σdynamic;
 * 3. if there is no dynamic part to scale, the residual goes to an unallocated static share;
 * 4. the last floating-point residual is added to the largest part, so the float sum is exact to a few ulps.
 * low/high bounds are scaled with their share. Shares of a source measuring 0 are kept, at 0.
 */
export function reconcile(shares: readonly AttributionShare[], measured: Readonly<Record<SourceName, number>>, opts: ReconcileOptions = {}): AttributionShare[] {
  const out = shares.map((s) => ({ ...s }));
  reconcileInPlace(out, measured, opts);
  return out;
}

/**
 * `reconcile` on shares the caller owns (a method's own fresh shares): the same steps and the same
 * arithmetic in the same order, applied to the objects themselves; an unallocated share it has to create
 * is appended to `shares`. No copy of any share and no array per source (issue 15: the copies were a
 * sixth of the collector's allocations per VM-sample).
 */
export function reconcileInPlace(shares: AttributionShare[], measured: Readonly<Record<SourceName, number>>, opts: ReconcileOptions = {}): void {
  for (const s of shares) {
    s.dynamicJoules = clean(s.dynamicJoules);
    s.staticJoules = clean(s.staticJoules);
    s.lowJoules = clean(s.lowJoules);
    s.highJoules = clean(s.highJoules);
  }
  for (const source of SOURCES) {
    const m = clean(measured[source]);
    // this source's shares are those of `shares` with that source, in order (an appended one last)
    let dyn = 0;
    let sta = 0;
    for (const s of shares) {
      if (s.source !== source) continue;
      dyn += s.dynamicJoules;
      sta += s.staticJoules;
    }
    if (sta > m) {
      const f = sta > 0 ? m / sta : 0;
      for (const s of shares) {
        if (s.source !== source) continue;
        const before = s.dynamicJoules + s.staticJoules;
        s.dynamicJoules = 0;
        s.staticJoules *= f;
        scaleBounds(s, before);
      }
    } else if (dyn > 0) {
      const f = (m - sta) / dyn;
      for (const s of shares) {
        if (s.source !== source) continue;
        const before = s.dynamicJoules + s.staticJoules;
        s.dynamicJoules *= f;
        scaleBounds(s, before);
      }
    } else if (m - sta > 0) {
      let un = shares.find((s) => s.source === source && s.kind === 'unallocated');
      if (!un) {
        un = { kind: 'unallocated', vmUuid: '', vmName: opts.unallocatedName ?? '', tenant: '', source, dynamicJoules: 0, staticJoules: 0, lowJoules: 0, highJoules: 0 };
        shares.push(un);
      }
      un.staticJoules += m - sta;
      un.lowJoules = un.highJoules = un.staticJoules + un.dynamicJoules;
    }
    // last-ulp residual onto the largest part
    let sum = 0;
    let largest: AttributionShare | undefined;
    for (const s of shares) {
      if (s.source !== source) continue;
      sum += s.dynamicJoules + s.staticJoules;
      if (!largest || s.dynamicJoules + s.staticJoules > largest.dynamicJoules + largest.staticJoules) largest = s;
    }
    const r = m - sum;
    if (r !== 0 && largest) {
      if (largest.dynamicJoules >= largest.staticJoules) largest.dynamicJoules = Math.max(0, largest.dynamicJoules + r);
      else largest.staticJoules = Math.max(0, largest.staticJoules + r);
    }
  }
}

function clean(x: number | undefined): number {
  return x !== undefined && Number.isFinite(x) && x > 0 ? x : 0;
}

function scaleBounds(s: AttributionShare, before: number): void {
  const after = s.dynamicJoules + s.staticJoules;
  if (before > 0) {
    s.lowJoules *= after / before;
    s.highJoules *= after / before;
  } else {
    s.lowJoules = s.highJoules = after;
  }
}

const SHARE_PARTS = ['dynamicJoules', 'staticJoules', 'lowJoules', 'highJoules'] as const;

/** Problems with a result (empty = it honours the contract): per-source sums off by more than tol (relative, min 1 J scale), negative or non-finite parts, missing method. */
export function checkConservation(result: AttributionResult, tol = 1e-9): string[] {
  const problems: string[] = [];
  const where = `host ${result.hostId} seq ${result.seq} method ${result.method || '?'}`;
  if (!result.method) problems.push(`${where}: method is empty`);
  const sums: Record<SourceName, number> = { rapl: 0, gpu: 0, bmc_rest: 0 };
  for (let i = 0; i < result.shares.length; i++) {
    const s = result.shares[i]!;
    for (const f of SHARE_PARTS) {
      const v = s[f];
      if (!Number.isFinite(v) || v < 0) problems.push(`${where}: shares[${i}] (${s.kind} ${s.vmName || s.vmUuid} ${s.source}) ${f}=${v} must be finite and ≥ 0`);
    }
    if (!(s.source in sums)) {
      problems.push(`${where}: shares[${i}].source=${JSON.stringify(s.source)} is not a known source`);
      continue;
    }
    sums[s.source] += s.dynamicJoules + s.staticJoules;
  }
  for (const source of SOURCES) {
    const m = result.measured[source];
    const d = Math.abs(sums[source] - m);
    if (!(d <= tol * Math.max(1, Math.abs(m)))) {
      problems.push(`${where}: ${source} shares sum to ${sums[source]} J but ${m} J was measured (off by ${d} J)`);
    }
  }
  return problems;
}

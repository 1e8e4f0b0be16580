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

/** Problems with a result (empty = it honours the contract): per-source sums off by more than tol (relative, min 1 J scale), negative or non-finite parts, missing method. */
export function checkConservation(result: AttributionResult, tol = 1e-9): string[] {
  // The collector checks every result: the parts are read by name and the sums kept in locals, not by key
  // (s[f], sums[source] box a double per read or write: ≈ 170 bytes of garbage per VM-sample, issue 15), and
  // the message prefix is built only for a problem. Same problems, in the same order, as the keyed loop.
  const problems: string[] = [];
  const where = (): string => `host ${result.hostId} seq ${result.seq} method ${result.method || '?'}`;
  if (!result.method) problems.push(`${where()}: method is empty`);
  let rapl = 0;
  let gpu = 0;
  let bmcRest = 0;
  const shares = result.shares;
  for (let i = 0; i < shares.length; i++) {
    const s = shares[i]!;
    const dyn = s.dynamicJoules;
    const sta = s.staticJoules;
    if (!partOk(dyn) || !partOk(sta) || !partOk(s.lowJoules) || !partOk(s.highJoules)) badParts(problems, where(), s, i);
    switch (s.source) {
      case 'rapl':
        rapl += dyn + sta;
        break;
      case 'gpu':
        gpu += dyn + sta;
        break;
      case 'bmc_rest':
        bmcRest += dyn + sta;
        break;
      default:
        problems.push(`${where()}: shares[${i}].source=${JSON.stringify(s.source)} is not a known source`);
    }
  }
  sumProblem(problems, result, 'rapl', rapl, tol, where);
  sumProblem(problems, result, 'gpu', gpu, tol, where);
  sumProblem(problems, result, 'bmc_rest', bmcRest, tol, where);
  return problems;
}

function partOk(v: number): boolean {
  return Number.isFinite(v) && v >= 0;
}

/** The problem of each part of share i that is not finite and ≥ 0, in the order dynamic, static, low, high. */
function badParts(problems: string[], where: string, s: AttributionShare, i: number): void {
  const parts = [
    ['dynamicJoules', s.dynamicJoules],
    ['staticJoules', s.staticJoules],
    ['lowJoules', s.lowJoules],
    ['highJoules', s.highJoules],
  ] as const;
  for (const [f, v] of parts) if (!partOk(v)) problems.push(`${where}: shares[${i}] (${s.kind} ${s.vmName || s.vmUuid} ${s.source}) ${f}=${v} must be finite and ≥ 0`);
}

/** The problem of a source whose shares' sum is off its measured energy by more than tol (relative, min 1 J). */
function sumProblem(problems: string[], result: AttributionResult, source: SourceName, sum: number, tol: number, where: () => string): void {
  const m = result.measured[source];
  const d = Math.abs(sum - m);
  if (!(d <= tol * Math.max(1, Math.abs(m)))) problems.push(`${where()}: ${source} shares sum to ${sum} J but ${m} J was measured (off by ${d} J)`);
}

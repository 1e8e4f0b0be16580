/**
 * Frozen references for this package's tests (not exported from the index): `reconcile` and
 * `staticSplitWeights` exactly as they were at caaca9a, before issue 15 cut their allocations (reconcile copied
 * every share; the static split returned a map by uuid). The shipped code must give the same joules to the bit;
 * comparing it with its own current functions would prove nothing, since `reconcile` is now a copy +
 * `reconcileInPlace`. Do not edit these to follow the code: they are the old behaviour, pasted from
 * `git show caaca9a:packages/attribution/src/{conservation,idle-split}.ts` (the WattsplitError of a bad weight
 * became a plain Error: the tests compare joules, not errors).
 */
import type { AttributionShare, IdleSplitPolicy, ReservedWeights, SourceName, VmInterval } from './types.js';

const SOURCES: readonly SourceName[] = ['rapl', 'gpu', 'bmc_rest'];

export const REFERENCE_RESERVED_WEIGHTS: Readonly<ReservedWeights> = Object.freeze({ vcpu: 0.5, memory: 0.5 });

/** caaca9a's `reconcile`: new shares whose (dynamic + static) sum, per source, equals `measured[source]`. */
export function referenceReconcile(shares: readonly AttributionShare[], measured: Readonly<Record<SourceName, number>>, opts: { unallocatedName?: string } = {}): AttributionShare[] {
  const out: AttributionShare[] = shares.map((s) => ({
    ...s,
    dynamicJoules: clean(s.dynamicJoules),
    staticJoules: clean(s.staticJoules),
    lowJoules: clean(s.lowJoules),
    highJoules: clean(s.highJoules),
  }));
  for (const source of SOURCES) {
    const m = clean(measured[source]);
    const mine = out.filter((s) => s.source === source);
    let dyn = 0;
    let sta = 0;
    for (const s of mine) {
      dyn += s.dynamicJoules;
      sta += s.staticJoules;
    }
    if (sta > m) {
      const f = sta > 0 ? m / sta : 0;
      for (const s of mine) {
        const before = s.dynamicJoules + s.staticJoules;
        s.dynamicJoules = 0;
        s.staticJoules *= f;
        scaleBounds(s, before);
      }
    } else if (dyn > 0) {
      const f = (m - sta) / dyn;
      for (const s of mine) {
        const before = s.dynamicJoules + s.staticJoules;
        s.dynamicJoules *= f;
        scaleBounds(s, before);
      }
    } else if (m - sta > 0) {
      let un = mine.find((s) => s.kind === 'unallocated');
      if (!un) {
        un = { kind: 'unallocated', vmUuid: '', vmName: opts.unallocatedName ?? '', tenant: '', source, dynamicJoules: 0, staticJoules: 0, lowJoules: 0, highJoules: 0 };
        out.push(un);
        mine.push(un);
      }
      un.staticJoules += m - sta;
      un.lowJoules = un.highJoules = un.staticJoules + un.dynamicJoules;
    }
    // last-ulp residual onto the largest part
    let sum = 0;
    let largest: AttributionShare | undefined;
    for (const s of mine) {
      sum += s.dynamicJoules + s.staticJoules;
      if (!largest || s.dynamicJoules + s.staticJoules > largest.dynamicJoules + largest.staticJoules) largest = s;
    }
    const r = m - sum;
    if (r !== 0 && largest) {
      if (largest.dynamicJoules >= largest.staticJoules) largest.dynamicJoules = Math.max(0, largest.dynamicJoules + r);
      else largest.staticJoules = Math.max(0, largest.staticJoules + r);
    }
  }
  return out;
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

type SplitVm = Pick<VmInterval, 'uuid' | 'vcpus' | 'memoryBytes' | 'presence'>;

/** caaca9a's `staticSplitWeights`: fractions (summing to 1, or an empty map) of static energy each VM pays. */
export function referenceStaticSplitWeights(vms: readonly SplitVm[], policy: IdleSplitPolicy, weights: ReservedWeights = REFERENCE_RESERVED_WEIGHTS): Map<string, number> {
  const out = new Map<string, number>();
  if (policy === 'unallocated' || vms.length === 0) return out;
  const raw: number[] = [];
  if (policy === 'equal') {
    for (const v of vms) raw.push(clampPresence(v.presence));
  } else {
    const wsum = weights.vcpu + weights.memory;
    if (!(weights.vcpu >= 0 && weights.memory >= 0 && wsum > 0)) throw new Error(`reservedWeights={vcpu:${weights.vcpu}, memory:${weights.memory}} must be ≥ 0 with a positive sum`);
    const a = weights.vcpu / wsum;
    const b = weights.memory / wsum;
    let cpuSum = 0;
    let memSum = 0;
    for (const v of vms) {
      cpuSum += Math.max(0, v.vcpus);
      memSum += Math.max(0, v.memoryBytes);
    }
    for (const v of vms) {
      const c = cpuSum > 0 ? Math.max(0, v.vcpus) / cpuSum : 0;
      const m = memSum > 0 ? Math.max(0, v.memoryBytes) / memSum : 0;
      raw.push(clampPresence(v.presence) * (a * c + b * m));
    }
  }
  let total = 0;
  for (const r of raw) total += r;
  if (!(total > 0)) return out;
  vms.forEach((v, i) => out.set(v.uuid, (out.get(v.uuid) ?? 0) + raw[i]! / total));
  return out;
}

function clampPresence(p: number): number {
  return Number.isFinite(p) ? Math.min(1, Math.max(0, p)) : 0;
}

/**
 * Idle/static power split policies. Static energy (what the host draws with no VM activity) is not
 * caused by any one VM; who pays for it is a business choice, made explicit here:
 * - 'reserved': by what each VM reserves, w_v ∝ presence_v · (a · vcpus_v / Σvcpus + b · mem_v / Σmem),
 *   a + b = 1 (default 0.5 / 0.5);
 * - 'equal': w_v ∝ presence_v;
 * - 'unallocated': nobody; static energy is reported as unallocated.
 * Weights are normalised over the VMs of the interval (presence-weighted: a VM there for half the
 * interval weighs half). No VMs, or all weights 0 → empty map (everything unallocated).
 */
import { WattsplitError } from '@wattsplit/wire';
import type { IdleSplitPolicy, ReservedWeights, VmInterval } from './types.js';

export const DEFAULT_RESERVED_WEIGHTS: Readonly<ReservedWeights> = Object.freeze({ vcpu: 0.5, memory: 0.5 });

type SplitVm = Pick<VmInterval, 'uuid' | 'vcpus' | 'memoryBytes' | 'presence'>;

/** Fractions (summing to 1, or an empty map) of static energy each VM pays under `policy`. */
export function staticSplitWeights(vms: readonly SplitVm[], policy: IdleSplitPolicy, weights: ReservedWeights = DEFAULT_RESERVED_WEIGHTS): Map<string, number> {
  const out = new Map<string, number>();
  const byVm = staticSplitWeightsByVm(vms, policy, weights);
  if (byVm) vms.forEach((v, i) => out.set(v.uuid, (out.get(v.uuid) ?? 0) + byVm[i]!));
  return out;
}

/**
 * `staticSplitWeights` by position: the fraction of `vms[i]` at index i (summing to 1), or undefined where
 * the map would be empty (nothing to split). VMs of one uuid get a fraction each, which the map sums.
 * No map per call: what the baseline runs for the host's static split of an interval (issue 15; cpu_share refuses
 * an interval that repeats a uuid); the GPU split (per device, over the VMs attached to it) still uses the map
 * version, `staticSplitWeights`.
 */
export function staticSplitWeightsByVm(vms: readonly SplitVm[], policy: IdleSplitPolicy, weights: ReservedWeights = DEFAULT_RESERVED_WEIGHTS): number[] | undefined {
  if (policy === 'unallocated' || vms.length === 0) return undefined;
  const raw: number[] = [];
  if (policy === 'equal') {
    for (const v of vms) raw.push(clampPresence(v.presence));
  } else {
    const wsum = weights.vcpu + weights.memory;
    if (!(weights.vcpu >= 0 && weights.memory >= 0 && wsum > 0)) {
      throw new WattsplitError('CONFIG_INVALID', `reservedWeights={vcpu:${weights.vcpu}, memory:${weights.memory}} must be ≥ 0 with a positive sum`, {
        details: { field: 'reservedWeights', value: weights },
      });
    }
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
  if (!(total > 0)) return undefined;
  for (let i = 0; i < raw.length; i++) raw[i] = raw[i]! / total;
  return raw;
}

function clampPresence(p: number): number {
  return Number.isFinite(p) ? Math.min(1, Math.max(0, p)) : 0;
}

/**
 * Which host intervals the additive model learns from. Every interval is still attributed; this only keeps
 * measurement artefacts out of the fit, where one interval whose CPU time and energy cover different spans
 * pulls every VM's coefficient (squared loss), the small VMs' most.
 *
 * Artefacts of a real agent (the aligner repairs them so that energy and CPU time are conserved over time,
 * not per interval):
 *   - a VM's cgroup briefly absent: the VM is `gone` / at partial presence with no CPU time in the interval
 *     where it vanishes, and the interval where it comes back carries the CPU time of the whole gap;
 *   - a VM starting, stopping or arriving by migration inside the interval (partial presence);
 *   - a held frame or a sequence gap: the interval spans several nominal periods (> 1.5 ×);
 *   - anything the aligner flagged as an anomaly (counter reset, implausible delta).
 *   - a VM migrating out: it still runs here with whole cgroup accounting, but the pre-copy transient (dirty
 *     page tracking, the copy itself: package, DRAM and NIC power that no VM's CPU time explains) would be fit
 *     by the coefficients of whichever VMs happen to be busy then. Still attributed (the transient goes to the
 *     VMs and the hypervisor by the model), only not learned from.
 */
import type { HostInterval } from '@wattsplit/attribution';

export const TRAINING_EXCLUSIONS = ['unusable', 'anomaly', 'long', 'partial_vm', 'after_partial', 'migrating'] as const;
export type TrainingExclusion = (typeof TRAINING_EXCLUSIONS)[number];

export interface TrainingSelection {
  /** Intervals to fit, in input order. */
  intervals: HostInterval[];
  /** How many were left out, by first reason. */
  excluded: Record<TrainingExclusion, number>;
}

/** Longer than this × the host's median interval: a held frame or a gap. */
const LONG_FACTOR = 1.5;
const FULL_PRESENCE = 0.999;

/** Usable at all: a positive duration and a measured, finite RAPL energy. */
export function isUsableForTraining(iv: HostInterval): boolean {
  return iv.durationS > 0 && Number.isFinite(iv.measured.rapl) && !(iv.unusableSources ?? []).includes('rapl');
}

function partialVm(iv: HostInterval): boolean {
  return iv.vms.some((v) => !(v.presence >= FULL_PRESENCE) || v.state === 'gone' || v.state === 'migrating_in');
}

function sameVms(a: HostInterval, b: HostInterval): boolean {
  if (a.vms.length !== b.vms.length) return false;
  const ids = new Set(a.vms.map((v) => v.uuid));
  return b.vms.every((v) => ids.has(v.uuid));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)] ?? 0;
}

/**
 * Splits intervals into those fit for training and counts of the rest. The interval after a partial one (same
 * host, `prevSeq`) is left out too when the VM set changed or the previous interval was partial: CPU time
 * deferred over a cgroup gap lands there. When the previous interval is not in the input (sampled history),
 * only the interval's own checks apply.
 */
export function selectTrainingIntervals(intervals: readonly HostInterval[]): TrainingSelection {
  const excluded = Object.fromEntries(TRAINING_EXCLUSIONS.map((k) => [k, 0])) as Record<TrainingExclusion, number>;
  const byHost = new Map<string, HostInterval[]>();
  for (const iv of intervals) {
    let l = byHost.get(iv.hostId);
    if (!l) byHost.set(iv.hostId, (l = []));
    l.push(iv);
  }
  const nominal = new Map<string, number>();
  const bySeq = new Map<string, Map<number, HostInterval>>();
  for (const [host, l] of byHost) {
    nominal.set(host, median(l.filter((iv) => iv.durationS > 0).map((iv) => iv.durationS)));
    bySeq.set(host, new Map(l.map((iv) => [iv.seq, iv])));
  }
  const reason = (iv: HostInterval): TrainingExclusion | undefined => {
    if (!isUsableForTraining(iv)) return 'unusable';
    if (iv.anomalies.length > 0) return 'anomaly';
    if (iv.durationS > LONG_FACTOR * nominal.get(iv.hostId)!) return 'long';
    if (partialVm(iv)) return 'partial_vm';
    if (iv.vms.some((v) => v.state === 'migrating_out')) return 'migrating';
    const prev = bySeq.get(iv.hostId)!.get(iv.prevSeq);
    if (prev && prev !== iv && (partialVm(prev) || !sameVms(prev, iv))) return 'after_partial';
    return undefined;
  };
  const kept: HostInterval[] = [];
  for (const iv of intervals) {
    const r = reason(iv);
    if (r) excluded[r]++;
    else kept.push(iv);
  }
  return { intervals: kept, excluded };
}

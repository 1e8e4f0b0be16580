/**
 * A plan's actions as a time-ordered schedule of actuator steps: per VM, the CPU quota or frequency cap
 * that holds in each stretch of time (overlapping throttles of one VM combine to the lowest), restored
 * when the last throttle ends; migrations with their mode and bandwidth. Pure: `wattsplit cap-apply`
 * turns the steps into libvirt and cgroup/cpufreq operations (printed, or performed with --execute).
 *
 * A VM's steps after its migration's switchover are addressed to its destination (libvirt migrates
 * the live scheduler parameters with the domain).
 *
 * Contract: for every VM, the steps alternate set → … → restore, the last step of a VM that is
 * throttled only until some time is a restore at that time, and a VM whose throttle has no end keeps it
 * (the plan says "until further notice"): no restore step.
 */
import type { CapAction, MigrateAction, ThrottleAction } from './cap-plan-types.js';

export type ActuationStep =
  | { kind: 'set-cpu-quota'; atS: number; hostId: string; vmUuid: string; tenant: string; fraction: number; reason: string }
  | { kind: 'restore-cpu-quota'; atS: number; hostId: string; vmUuid: string; tenant: string; reason: string }
  | { kind: 'set-max-frequency'; atS: number; hostId: string; vmUuid: string; tenant: string; fraction: number; reason: string }
  | { kind: 'restore-max-frequency'; atS: number; hostId: string; vmUuid: string; tenant: string; reason: string }
  | { kind: 'migrate'; atS: number; hostId: string; vmUuid: string; tenant: string; action: MigrateAction; reason: string };

const ORDER: Record<ActuationStep['kind'], number> = { 'restore-cpu-quota': 0, 'restore-max-frequency': 0, 'set-cpu-quota': 1, 'set-max-frequency': 1, migrate: 2 };

export function actuationSchedule(actions: readonly CapAction[]): ActuationStep[] {
  const steps: ActuationStep[] = [];
  const byVm = new Map<string, ThrottleAction[]>();
  for (const a of actions) {
    if (a.kind === 'throttle') byVm.set(`${a.hostId}\0${a.vmUuid}\0${a.method}`, [...(byVm.get(`${a.hostId}\0${a.vmUuid}\0${a.method}`) ?? []), a]);
    else steps.push({ kind: 'migrate', atS: a.startS, hostId: a.fromHostId, vmUuid: a.vmUuid, tenant: a.tenant, action: a, reason: a.reason });
  }
  for (const list of byVm.values()) {
    const first = list[0]!;
    const dvfs = first.method === 'dvfs';
    const value = (t: ThrottleAction): number => (dvfs ? (t.frequencyFraction ?? 1) : t.cpuQuotaFraction);
    const times = [...new Set(list.flatMap((t) => (t.untilS === null ? [t.fromS] : [t.fromS, t.untilS])))].sort((a, b) => a - b);
    let current: number | undefined;
    for (const at of times) {
      const active = list.filter((t) => t.fromS <= at && (t.untilS === null || at < t.untilS));
      const base = { atS: at, hostId: first.hostId, vmUuid: first.vmUuid, tenant: first.tenant };
      if (active.length === 0) {
        if (current !== undefined) steps.push({ ...base, kind: dvfs ? 'restore-max-frequency' : 'restore-cpu-quota', reason: 'the plan lifts the throttle here' });
        current = undefined;
        continue;
      }
      const fraction = Math.min(...active.map(value));
      if (fraction === current) continue;
      current = fraction;
      steps.push({ ...base, kind: dvfs ? 'set-max-frequency' : 'set-cpu-quota', fraction, reason: active.map((t) => t.reason).join('; ') });
    }
  }
  // A migrated VM's later steps go to its new host: the live scheduler parameters travel with it.
  for (const st of steps) {
    if (st.kind === 'migrate') continue;
    const moved = actions.find((a): a is MigrateAction => a.kind === 'migrate' && a.vmUuid === st.vmUuid && a.fromHostId === st.hostId && Math.ceil(a.switchoverS) <= st.atS);
    if (moved) st.hostId = moved.toHostId;
  }
  return steps.sort((a, b) => a.atS - b.atS || ORDER[a.kind] - ORDER[b.kind] || a.vmUuid.localeCompare(b.vmUuid));
}

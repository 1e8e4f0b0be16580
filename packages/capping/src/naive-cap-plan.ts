/**
 * The advisor wattsplit replaces, kept for comparison in tests, docs and benchmarks: for each host over
 * its cap, migrate its biggest movable VM, right now and unthrottled, to the host with the most headroom
 * for that VM's steady-state power. It ignores the migration transient, so the source overshoots its cap
 * by the transient for the whole transfer and a nearly full destination can be pushed over too.
 */
import type { CapAction, PlanCapsInput } from './cap-plan-types.js';
import { MigrationTransientModel } from './migration-transient-model.js';

export function naiveCapPlan(input: PlanCapsInput, model = new MigrationTransientModel()): CapAction[] {
  const load = new Map(input.hosts.map((h) => [h.hostId, h.powerW]));
  const actions: CapAction[] = [];
  for (const src of input.hosts) {
    if (src.powerW <= src.capW) continue;
    const vm = [...src.vms].filter((v) => v.movable !== false).sort((a, b) => b.powerW - a.powerW)[0];
    if (!vm) continue;
    let best: { id: string; head: number } | undefined;
    for (const d of input.hosts) {
      if (d === src) continue;
      const head = d.capW - load.get(d.hostId)! - vm.powerW;
      if (head >= 0 && (!best || head > best.head)) best = { id: d.hostId, head };
    }
    if (!best) continue;
    const est = model.estimate(vm, input.linkBps);
    load.set(best.id, load.get(best.id)! + vm.powerW);
    actions.push({
      kind: 'migrate',
      vmUuid: vm.uuid,
      tenant: vm.tenant,
      fromHostId: src.hostId,
      toHostId: best.id,
      startS: 0,
      durationS: est.durationS,
      switchoverS: est.durationS,
      vmPowerW: vm.powerW,
      sourceExtraW: est.sourceExtraW,
      destinationExtraW: est.destinationExtraW,
      rounds: est.rounds,
      transferredBytes: est.transferredBytes,
      reason: 'naive: biggest VM to the most headroom',
    });
  }
  return actions;
}

/**
 * The advisor wattsplit replaces, kept for comparison in tests, docs and benchmarks: for each host over
 * its cap, and then each group over its cap, migrate its biggest movable VM by pre-copy, right now and
 * unthrottled, to the host outside it with the most headroom for that VM's steady-state power. It ignores
 * the migration transient, so the source overshoots its cap by the transient for the whole transfer
 * and a nearly full destination can be pushed over too; a group over its cap by more than one VM's power
 * stays over.
 */
import type { CapAction, PlanCapsInput } from './cap-plan-types.js';
import { MigrationTransientModel } from './migration-transient-model.js';
import { groupHosts, groupOtherW } from './power-timeline.js';

export function naiveCapPlan(input: PlanCapsInput, model = new MigrationTransientModel()): CapAction[] {
  const load = new Map(input.hosts.map((h) => [h.hostId, h.powerW]));
  const hostsById = new Map(input.hosts.map((h) => [h.hostId, h]));
  const members = groupHosts(input.groups ?? [], new Set(hostsById.keys()));
  const other = groupOtherW(input.groups ?? []);
  const scopes = [
    ...input.hosts.map((h) => ({ capW: h.capW, hostIds: [h.hostId], otherW: 0 })),
    ...(input.groups ?? []).map((g) => ({ capW: g.capW, hostIds: members.get(g.groupId)!, otherW: other.get(g.groupId)! })),
  ];
  const moved = new Set<string>();
  const actions: CapAction[] = [];
  for (const scope of scopes) {
    const power = scope.otherW + scope.hostIds.reduce((a, id) => a + load.get(id)!, 0);
    if (power <= scope.capW) continue;
    const candidates = scope.hostIds.flatMap((id) => hostsById.get(id)!.vms.filter((v) => v.movable !== false && !moved.has(v.uuid)).map((v) => ({ v, from: id })));
    const pick = candidates.sort((a, b) => b.v.powerW - a.v.powerW)[0];
    if (!pick) continue;
    const { v: vm, from } = pick;
    let best: { id: string; head: number } | undefined;
    for (const d of input.hosts) {
      if (scope.hostIds.includes(d.hostId)) continue;
      const head = d.capW - load.get(d.hostId)! - vm.powerW;
      if (head >= 0 && (!best || head > best.head)) best = { id: d.hostId, head };
    }
    if (!best) continue;
    const est = model.estimateMode(vm, input.linkBps, 'pre-copy');
    load.set(best.id, load.get(best.id)! + vm.powerW);
    load.set(from, load.get(from)! - vm.powerW);
    moved.add(vm.uuid);
    actions.push({
      kind: 'migrate',
      vmUuid: vm.uuid,
      tenant: vm.tenant,
      fromHostId: from,
      toHostId: best.id,
      mode: 'pre-copy',
      bandwidthBps: input.linkBps,
      startS: 0,
      durationS: est.durationS,
      switchoverS: est.durationS,
      endS: est.durationS,
      arriveS: est.durationS,
      slowdown: est.slowdown,
      slowedS: est.slowedS,
      downtimeS: est.downtimeS,
      slaCost: (1 + Math.max(0, vm.priority ?? 0)) * (est.slowdown * est.slowedS + est.downtimeS),
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

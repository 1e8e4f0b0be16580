/**
 * Per-second predicted host power under a list of actions. Second t stands for [t, t+1) and holds the
 * HIGHEST power the host can draw in it: something that adds power counts in every second it touches,
 * something that removes power only in the seconds it fully covers. A migration's transient therefore
 * covers [floor(start), ceil(end)); the VM leaves the source at ceil(switchover) and is counted on the
 * destination from floor(arrive), the earliest it could get there (from then to the switchover both hosts
 * carry it: a migration that runs faster than estimated must not overload the destination). For pre-copy end = switchover;
 * for post-copy the switchover comes ~0.12 s after setup and the transient runs on while pages are pushed.
 *
 * The baseline is the host's forecast upper bound where the input has one (`forecastW`), else today's
 * measured power held flat. A group's timeline is the sum of its hosts' plus its `otherW`.
 */
import { WattsplitError } from '@wattsplit/wire';
import type { CapAction, CapGroup, CapHost } from './cap-plan-types.js';

export interface PowerStep {
  hostId: string;
  fromS: number;
  untilS: number;
  watts: number;
}

/** The power steps one action causes, in integer seconds clipped to [0, horizonS). */
export function stepsOf(a: CapAction, horizonS: number): PowerStep[] {
  const clip = (s: PowerStep): PowerStep[] => {
    const fromS = Math.max(0, s.fromS);
    const untilS = Math.min(horizonS, s.untilS);
    return untilS > fromS && s.watts !== 0 ? [{ ...s, fromS, untilS }] : [];
  };
  switch (a.kind) {
    case 'throttle':
      return clip({ hostId: a.hostId, fromS: Math.ceil(a.fromS), untilS: a.untilS === null ? horizonS : Math.floor(a.untilS), watts: -a.shedW });
    case 'migrate': {
      const start = Math.floor(a.startS);
      const leave = Math.ceil(a.switchoverS);
      const arrive = Math.floor(Math.min(a.arriveS, a.switchoverS));
      const end = Math.ceil(a.endS);
      return [
        ...clip({ hostId: a.fromHostId, fromS: start, untilS: end, watts: a.sourceExtraW }),
        ...clip({ hostId: a.toHostId, fromS: start, untilS: end, watts: a.destinationExtraW }),
        ...clip({ hostId: a.fromHostId, fromS: leave, untilS: horizonS, watts: -a.vmPowerW }),
        ...clip({ hostId: a.toHostId, fromS: arrive, untilS: horizonS, watts: a.vmPowerW }),
      ];
    }
  }
}

export function applySteps(timelines: Map<string, Float64Array>, steps: readonly PowerStep[]): void {
  for (const s of steps) {
    const tl = timelines.get(s.hostId);
    if (!tl) continue;
    for (let t = s.fromS; t < s.untilS; t++) tl[t] = tl[t]! + s.watts;
  }
}

/** A host's baseline: its forecast bound for each second where given, else its measured power held flat. */
export function baselineOf(h: CapHost, horizonS: number): Float64Array {
  const tl = new Float64Array(horizonS).fill(h.powerW);
  if (h.forecastW) for (let t = 0; t < horizonS; t++) tl[t] = h.forecastW[t] ?? h.powerW;
  return tl;
}

/** Predicted per-second power of every host under `actions`, any actions (the advisor's or a naive plan's). */
export function simulatePlan(hosts: readonly CapHost[], actions: readonly CapAction[], horizonS: number): Map<string, number[]> {
  const tls = new Map<string, Float64Array>(hosts.map((h) => [h.hostId, baselineOf(h, horizonS)]));
  for (const a of actions) applySteps(tls, stepsOf(a, horizonS));
  return new Map([...tls].map(([k, v]) => [k, Array.from(v, (w) => Math.round(w * 1e6) / 1e6)]));
}

/**
 * The hosts each group sums over: members flattened through nested groups, each host once. Throws
 * CAP_INPUT_INVALID for an unknown member or a cycle.
 */
export function groupHosts(groups: readonly CapGroup[], hostIds: ReadonlySet<string>): Map<string, string[]> {
  const byId = new Map(groups.map((g) => [g.groupId, g]));
  const out = new Map<string, string[]>();
  const visit = (g: CapGroup, path: string[]): string[] => {
    const done = out.get(g.groupId);
    if (done) return done;
    if (path.includes(g.groupId)) throw new WattsplitError('CAP_INPUT_INVALID', `planCaps: groups: ${[...path, g.groupId].join(' → ')} is a cycle`, { details: { field: 'groups', value: g.groupId } });
    const hosts = new Set<string>();
    g.members.forEach((m, i) => {
      const child = byId.get(m);
      if (child && !hostIds.has(m)) for (const h of visit(child, [...path, g.groupId])) hosts.add(h);
      else if (hostIds.has(m)) hosts.add(m);
      else throw new WattsplitError('CAP_INPUT_INVALID', `planCaps: groups[${groups.indexOf(g)}].members[${i}]=${JSON.stringify(m)} is neither a host nor a group`, { details: { field: `groups[${groups.indexOf(g)}].members[${i}]`, value: m } });
    });
    const list = [...hosts].sort();
    out.set(g.groupId, list);
    return list;
  };
  for (const g of groups) visit(g, []);
  return out;
}

/** Each group's power outside its hosts: its own otherW and that of every group nested in it, each once. */
export function groupOtherW(groups: readonly CapGroup[]): Map<string, number> {
  const byId = new Map(groups.map((g) => [g.groupId, g]));
  const below = (g: CapGroup, seen: Set<string>): void => {
    if (seen.has(g.groupId)) return;
    seen.add(g.groupId);
    for (const m of g.members) {
      const child = byId.get(m);
      if (child) below(child, seen);
    }
  };
  return new Map(
    groups.map((g) => {
      const seen = new Set<string>();
      below(g, seen);
      return [g.groupId, [...seen].reduce((a, id) => a + (byId.get(id)!.otherW ?? 0), 0)];
    }),
  );
}

/** Per-second power of every group under `actions`: Σ its hosts' timelines + its and its nested groups' otherW. */
export function simulateGroups(hosts: readonly CapHost[], groups: readonly CapGroup[], actions: readonly CapAction[], horizonS: number): Map<string, number[]> {
  const hostTl = simulatePlan(hosts, actions, horizonS);
  const members = groupHosts(groups, new Set(hosts.map((h) => h.hostId)));
  const other = groupOtherW(groups);
  return new Map(
    groups.map((g) => {
      const tl = new Array<number>(horizonS).fill(other.get(g.groupId)!);
      for (const id of members.get(g.groupId)!) hostTl.get(id)!.forEach((w, t) => (tl[t]! += w));
      return [g.groupId, tl.map((w) => Math.round(w * 1e6) / 1e6)];
    }),
  );
}

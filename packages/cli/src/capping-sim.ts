/**
 * The capping advisor against the migration simulator: a simulated fleet (cores, VMs, memory profiles)
 * is turned into the advisor's input the way wattsplit would see it (each VM's power, its floor, the
 * host's measured power, whether its CPU is saturated), and a plan's actions are replayed in the
 * simulator, whose power comes from its own mechanisms (copy CPU, rounds, remote faults), not from the
 * advisor's model. Used by the plan-vs-simulator test and `benchmarks/capping.mjs`.
 */
import type { CapAction, CapGroup, CapHost, PlanCapsInput, ThrottleMethod } from '@wattsplit/capping';
import { simulateMigrations, type MigSimAction, type MigSimHost, type MigSimResult } from '@wattsplit/simulator';

export interface SimCapFleet {
  hosts: MigSimHost[];
  /** Cap per host id. */
  capsW: Record<string, number>;
  groups: CapGroup[];
  linkBps: number;
  horizonS: number;
  /** Hosts that offer DVFS on their VMs' cores. */
  dvfsHosts?: string[];
}

/** One VM's power on its host now: its share of the busy cores × coreW + its static power. */
function vmPowers(h: MigSimHost): Map<string, number> {
  const demand = h.vms.reduce((a, v) => a + v.cores, 0);
  const share = demand > 0 ? Math.min(1, h.cores / demand) : 1;
  return new Map(h.vms.map((v) => [v.uuid, v.cores * share * h.coreW + v.staticW]));
}

/** The advisor's input for a simulated fleet: what wattsplit's attribution would report for it. */
export function capInputOf(f: SimCapFleet): PlanCapsInput {
  const hosts: CapHost[] = f.hosts.map((h) => {
    const powers = vmPowers(h);
    const demand = h.vms.reduce((a, v) => a + v.cores, 0);
    const methods: ThrottleMethod[] = f.dvfsHosts?.includes(h.hostId) ? ['dvfs', 'cpu-quota'] : ['cpu-quota'];
    return {
      hostId: h.hostId,
      capW: f.capsW[h.hostId] ?? Infinity,
      powerW: h.idleW + [...powers.values()].reduce((a, w) => a + w, 0),
      cpuSaturated: demand >= h.cores,
      throttleMethods: methods,
      vms: h.vms.map((v) => ({
        uuid: v.uuid,
        tenant: v.uuid.split('-')[0] ?? 't',
        powerW: powers.get(v.uuid)!,
        minPowerW: v.staticW,
        memoryBytes: v.memoryBytes,
        dirtyRateBps: v.dirtyRateBps,
        ...(v.workingSetBytes !== undefined ? { workingSetBytes: v.workingSetBytes } : {}),
      })),
    };
  });
  return { hosts, groups: f.groups, linkBps: f.linkBps, horizonS: f.horizonS };
}

/** A plan's actions as the simulator's. */
export function simActionsOf(actions: readonly CapAction[]): MigSimAction[] {
  return actions.map((a): MigSimAction => {
    if (a.kind === 'migrate') return { kind: 'migrate', vmUuid: a.vmUuid, fromHostId: a.fromHostId, toHostId: a.toHostId, startS: a.startS, mode: a.mode, bandwidthBps: a.bandwidthBps };
    return {
      kind: 'throttle',
      hostId: a.hostId,
      vmUuid: a.vmUuid,
      fromS: a.fromS,
      untilS: a.untilS,
      method: a.method,
      cpuQuotaFraction: a.cpuQuotaFraction,
      ...(a.frequencyFraction !== undefined ? { frequencyFraction: a.frequencyFraction } : {}),
    };
  });
}

export interface SimCapOutcome {
  sim: MigSimResult;
  /** Per group, mean power per second (Σ its hosts' + its otherW). */
  groupPowerW: Map<string, number[]>;
  /** Host- and group-seconds whose simulated mean power is above the cap (0.01 W tolerance). */
  overCapSeconds: number;
  /** The highest simulated overshoot over any cap, W. */
  peakOvershootW: number;
  /** Seconds of work the VMs lost (throttles, migration slowdowns and pauses), Σ over VMs. */
  lostWorkS: number;
}

/** Replays `actions` in the simulator and measures every host and group against its cap. */
export function replayInSimulator(f: SimCapFleet, input: PlanCapsInput, actions: readonly CapAction[], groupHostIds: ReadonlyMap<string, readonly string[]>, groupOtherW: ReadonlyMap<string, number>): SimCapOutcome {
  const sim = simulateMigrations(f.hosts, simActionsOf(actions), f.horizonS);
  let over = 0;
  let peak = 0;
  const check = (tl: readonly number[], capW: number): void => {
    for (const w of tl) {
      if (w > capW + 0.01) over++;
      peak = Math.max(peak, w - capW);
    }
  };
  for (const h of input.hosts) check(sim.powerW.get(h.hostId)!, h.capW);
  const groupPowerW = new Map<string, number[]>();
  for (const g of input.groups ?? []) {
    const tl = new Array<number>(f.horizonS).fill(groupOtherW.get(g.groupId) ?? 0);
    for (const id of groupHostIds.get(g.groupId) ?? []) sim.powerW.get(id)!.forEach((w, t) => (tl[t] = tl[t]! + w));
    groupPowerW.set(g.groupId, tl);
    check(tl, g.capW);
  }
  return { sim, groupPowerW, overCapSeconds: over, peakOvershootW: peak, lostWorkS: [...sim.lostWorkS.values()].reduce((a, x) => a + x, 0) };
}

/** A deterministic generator (LCG) of over-cap scenarios: racks of hosts under a PDU. */
export interface OverCapScenarioOptions {
  seed: number;
  racks: number;
  hostsPerRack: number;
  vmsPerHost: number;
  horizonS: number;
  /** Link between hosts, bytes/s. Default 10 GbE. */
  linkBps?: number;
}

const GiB = 1024 ** 3;

/**
 * Hosts of 32 cores (120 W idle, 8 W per busy core) with VMs of 0.5–4 cores, 2–10 W static, 1–16 GiB,
 * dirtying 1–200 MB/s with working sets of 4–400 MB; about one host in four is 5–40 W over its own cap,
 * about one rack in two is 10–80 W over its rack cap (each of its hosts under its own), the PDU over
 * all racks has 2 % slack; a third of the hosts offer DVFS. No host is CPU-saturated (see docs/capping.md).
 */
export function overCapScenario(o: OverCapScenarioOptions): SimCapFleet {
  let seed = o.seed >>> 0 || 1;
  const rnd = (): number => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const hosts: MigSimHost[] = [];
  const capsW: Record<string, number> = {};
  const groups: CapGroup[] = [];
  const dvfsHosts: string[] = [];
  let fleetW = 0;
  for (let r = 0; r < o.racks; r++) {
    const ids: string[] = [];
    let rackW = 0;
    let rackHeadroom = Infinity;
    const rackOver = rnd() < 0.5;
    for (let k = 0; k < o.hostsPerRack; k++) {
      const hostId = `r${r}-h${k}`;
      const vms = Array.from({ length: o.vmsPerHost }, (_, v) => ({
        uuid: `t${v % 5}-${hostId}-vm${v}`,
        cores: 0.5 + Math.round(rnd() * 7) / 2,
        staticW: 2 + Math.round(rnd() * 8),
        memoryBytes: (1 + Math.floor(rnd() * 16)) * GiB,
        dirtyRateBps: 1e6 + rnd() * 199e6,
        workingSetBytes: 4e6 + rnd() * 396e6,
      }));
      // Keep demand under the cores: scale down if the draw oversubscribed the host.
      const demand = vms.reduce((a, v) => a + v.cores, 0);
      if (demand > 28) for (const v of vms) v.cores = Math.round((v.cores * 28 * 100) / demand) / 100;
      const h: MigSimHost = { hostId, cores: 32, idleW: 120, coreW: 8, vms };
      const powerW = 120 + vms.reduce((a, v) => a + v.cores * 8 + v.staticW, 0);
      const over = !rackOver && rnd() < 0.25;
      capsW[hostId] = over ? powerW - Math.round(5 + rnd() * 35) : powerW + Math.round(15 + rnd() * 120);
      rackHeadroom = Math.min(rackHeadroom, capsW[hostId] - powerW);
      if (rnd() < 1 / 3) dvfsHosts.push(hostId);
      hosts.push(h);
      ids.push(hostId);
      rackW += powerW;
    }
    const otherW = 30;
    rackW += otherW;
    groups.push({ groupId: `rack-${r}`, kind: 'rack', capW: rackOver ? rackW - Math.round(10 + rnd() * 70) : rackW + Math.round(50 + rnd() * 150), members: ids, otherW });
    fleetW += rackW;
  }
  groups.push({ groupId: 'pdu', kind: 'pdu', capW: Math.round(fleetW * 1.02), members: groups.map((g) => g.groupId) });
  return { hosts, capsW, groups, linkBps: o.linkBps ?? 1.25e9, horizonS: o.horizonS, dvfsHosts };
}

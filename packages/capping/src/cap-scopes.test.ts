// Group caps (racks, PDUs, named groups), migration modes chosen by SLA cost, CPU-saturated sources,
// DVFS and the headroom margin: each checked against an independent simulation of the plan's actions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWattsplitError } from '@wattsplit/wire';
import { naiveCapPlan, planCaps, simulateGroups, simulatePlan, type CapAction, type CapVm, type MigrateAction, type PlanCapsInput, type ThrottleAction } from './index.js';

const GiB = 1024 ** 3;
const MB = 1e6;
const TEN_GBE = 1.25e9;
const throttles = (a: CapAction[]): ThrottleAction[] => a.filter((x): x is ThrottleAction => x.kind === 'throttle');
const migrations = (a: CapAction[]): MigrateAction[] => a.filter((x): x is MigrateAction => x.kind === 'migrate');
const pinned = (uuid: string, powerW: number, extra: Partial<CapVm> = {}): CapVm => ({ uuid, powerW, memoryBytes: 8 * GiB, tenant: 't', movable: false, ...extra });

/** Every host and group of `input` under its cap (less `marginW`) in every second of an independent simulation of `actions`. */
function assertKept(input: PlanCapsInput, actions: CapAction[], marginW = 0): void {
  const hosts = simulatePlan(input.hosts, actions, input.horizonS);
  for (const h of input.hosts) {
    const peak = Math.max(...hosts.get(h.hostId)!);
    assert.ok(peak <= h.capW - marginW + 1e-6, `${h.hostId} peaks at ${peak} W, cap ${h.capW} W − ${marginW} W`);
  }
  const groups = simulateGroups(input.hosts, input.groups ?? [], actions, input.horizonS);
  for (const g of input.groups ?? []) {
    const peak = Math.max(...groups.get(g.groupId)!);
    assert.ok(peak <= g.capW - marginW + 1e-6, `${g.groupId} peaks at ${peak} W, cap ${g.capW} W − ${marginW} W`);
  }
}

/** Two racks under one PDU; every host is under its own cap, rack-1 is 60 W over its cap. */
function rackFleet(): PlanCapsInput {
  const mover = (uuid: string, powerW: number): CapVm => ({ uuid, powerW, memoryBytes: 2 * GiB, dirtyRateBps: 8 * MB, workingSetBytes: 16 * MB, tenant: 'web' });
  return {
    linkBps: TEN_GBE,
    horizonS: 300,
    hosts: [
      { hostId: 'r1-a', capW: 450, powerW: 400, vms: [mover('a-web', 80), pinned('a-db', 200)] },
      { hostId: 'r1-b', capW: 450, powerW: 400, vms: [mover('b-web', 70), pinned('b-db', 200)] },
      { hostId: 'r2-a', capW: 450, powerW: 250, vms: [pinned('c-db', 100)] },
      { hostId: 'r2-b', capW: 450, powerW: 300, vms: [pinned('d-db', 150)] },
    ],
    groups: [
      { groupId: 'rack-1', kind: 'rack', capW: 760, members: ['r1-a', 'r1-b'], otherW: 20 },
      { groupId: 'rack-2', kind: 'rack', capW: 760, members: ['r2-a', 'r2-b'], otherW: 20 },
      { groupId: 'pdu-A', kind: 'pdu', capW: 1500, members: ['rack-1', 'rack-2'] },
    ],
  };
}

test('a rack over its cap while every host is under its own: the plan keeps the rack, the PDU and every host under in every second', () => {
  const input = rackFleet();
  const plan = planCaps(input);
  assert.equal(plan.safe, true);
  const rack = plan.groups.find((g) => g.groupId === 'rack-1')!;
  assert.equal(rack.kind, 'rack');
  assert.deepEqual(rack.hostIds, ['r1-a', 'r1-b']);
  assert.equal(rack.status, 'throttle-then-migrate');
  assert.equal(rack.timelineW[0]! <= 760 && rack.peakW <= 760, true);
  const [m] = migrations(plan.actions);
  assert.ok(m, 'a web VM leaves the rack');
  assert.ok(['r2-a', 'r2-b'].includes(m.toHostId), `moves out of rack-1, to ${m.toHostId}`);
  assert.match(m.reason, /rack-1 is 60 W over its rack cap/);
  assertKept(input, plan.actions);
  // The plan's own group timelines are the independent simulation's.
  const sim = simulateGroups(input.hosts, input.groups!, plan.actions, input.horizonS);
  for (const g of plan.groups) assert.deepEqual(g.timelineW, sim.get(g.groupId));
  assert.match(rack.notes.join('\n'), /chosen: .* VM·s .*throttling instead would cost/);

  // The naive plan looks at hosts only (none is over) and then moves the rack's biggest VM unthrottled:
  // the rack carries +12 W for the whole transfer on top of its 60 W excess.
  const naive = naiveCapPlan(input);
  const ng = simulateGroups(input.hosts, input.groups!, naive, input.horizonS).get('rack-1')!;
  assert.equal(ng[0], 832, '820 W + the 12 W source transient');
  assert.ok(ng.filter((w) => w > 760).length >= 8);
});

test('a PDU over its cap is fixed across its racks; a group that nothing can fix is infeasible and the plan unsafe', () => {
  const input = rackFleet();
  // rack-1 under a looser cap, rack-2 heavier: neither rack is over, the PDU (820 + 650 W, the racks'
  // own 20 W each included) is 20 W over its 1450 W.
  input.groups![0]!.capW = 900;
  input.groups![2]!.capW = 1450;
  input.hosts[2]!.powerW = 330;
  input.hosts[2]!.vms = [pinned('c-db', 180)];
  input.hosts.push({ hostId: 'elsewhere', capW: 450, powerW: 100, vms: [] });
  const plan = planCaps(input);
  const pdu = plan.groups.find((g) => g.groupId === 'pdu-A')!;
  assert.equal(pdu.timelineW[0]! <= 1450, true);
  assert.ok(pdu.timelineW.every((w) => w <= 1450 + 1e-6), `PDU peak ${pdu.peakW}`);
  assert.notEqual(pdu.status, 'within-cap');
  assertKept(input, plan.actions);

  // Everything pinned and the whole fleet in the group: nothing can leave; throttling to the floor is not enough.
  const tight: PlanCapsInput = {
    linkBps: TEN_GBE,
    horizonS: 30,
    hosts: [{ hostId: 'h', capW: 1000, powerW: 500, vms: [pinned('x', 100)] }],
    groups: [{ groupId: 'row', kind: 'row', capW: 300, members: ['h'] }],
  };
  const bad = planCaps(tight);
  assert.equal(bad.safe, false);
  assert.equal(bad.groups[0]!.status, 'infeasible');
  assert.match(bad.groups[0]!.notes.join('\n'), /sheds 90 W of the 200 W needed; 110 W over remains/);
});

test('bad groups name the field: unknown member, cycle, id clash', () => {
  const bad = (mut: (i: PlanCapsInput) => void, re: RegExp): void => {
    const i = rackFleet();
    mut(i);
    assert.throws(() => planCaps(i), (e) => isWattsplitError(e, 'CAP_INPUT_INVALID') && re.test(e.message), re.source);
  };
  bad((i) => i.groups![0]!.members.push('nope'), /groups\[0\]\.members\[2\]="nope" is neither a host nor a group/);
  bad((i) => i.groups![0]!.members.push('pdu-A'), /rack-1 → pdu-A → rack-1 is a cycle|pdu-A → rack-1 → pdu-A is a cycle/);
  bad((i) => (i.groups![1]!.groupId = 'r1-a'), /groups\[1\]\.groupId="r1-a" is repeated/);
  bad((i) => (i.groups![1]!.capW = -1), /groups\[1\]\.capW=-1/);
});

/** One host 40 W over its cap, a single movable VM, a destination with `roomW` W of headroom. */
function oneMover(vm: Partial<CapVm>, roomW = 200, horizonS = 300): PlanCapsInput {
  return {
    linkBps: TEN_GBE,
    horizonS,
    hosts: [
      { hostId: 'src', capW: 500, powerW: 540, vms: [{ uuid: 'mover', powerW: 100, memoryBytes: 4 * GiB, tenant: 'm', ...vm }, pinned('stay', 300)] },
      { hostId: 'dst', capW: 500, powerW: 500 - roomW, vms: [] },
    ],
  };
}

test('post-copy for a small working set: the source sheds its window throttle after ~3 s instead of ~9 s; a memory-intensive VM goes by pre-copy', () => {
  const small = oneMover({ dirtyRateBps: 5 * MB, workingSetBytes: 5 * MB });
  const p = planCaps(small);
  const [m] = migrations(p.actions);
  assert.equal(m!.mode, 'post-copy');
  assert.ok(m!.switchoverS - m!.startS < 2.2, `switchover ${m!.switchoverS - m!.startS} s after start: setup + 0.12 s`);
  assert.ok(m!.slowdown >= 0.1 && m!.slowdown < 0.12, `slowdown ${m!.slowdown}`);
  assert.equal(m!.downtimeS, 0.12);
  assert.match(m!.reason, /post-copy of mover to dst: SLA/);
  assert.match(p.hosts[0]!.notes.join('\n'), /next best: .*pre-copy/);
  assertKept(small, p.actions);
  // The source keeps its +12 W while the pages are pushed, but the VM's 100 W is gone from second 4.
  const src = p.hosts.find((h) => h.hostId === 'src')!;
  assert.ok(src.timelineW[4]! <= 540 - 100 + 12 + 1e-9);

  // A 200 MB working set rewritten every second: post-copy would slow it by 68 % for the whole push.
  const heavy = oneMover({ dirtyRateBps: 200 * MB, workingSetBytes: 200 * MB });
  const q = planCaps(heavy);
  const [n] = migrations(q.actions);
  assert.notEqual(n!.mode, 'post-copy');
  assert.match(q.hosts[0]!.notes.join('\n'), /post-copy of mover to dst: SLA [\d.]+ VM·s \(68 % slower/);
  assertKept(heavy, q.actions);
});

test('a destination with room for the VM but not the full transient: bandwidth-throttled pre-copy (lower watts, longer transfer)', () => {
  // dst: 100 W for the VM + 6 W: full-rate pre-copy and post-copy need +12 W there, half rate +6 W.
  // 8 GiB: the switchover falls inside a second, where the destination carries the VM and the transient.
  const input = oneMover({ dirtyRateBps: 5 * MB, memoryBytes: 8 * GiB }, 106);
  const plan = planCaps(input);
  const [m] = migrations(plan.actions);
  assert.equal(m!.mode, 'pre-copy-throttled');
  assert.equal(m!.bandwidthBps, TEN_GBE / 2);
  assert.equal(m!.destinationExtraW, 6);
  const full = planCaps(input, { modes: ['pre-copy'] });
  assert.equal(migrations(full.actions).length, 0, 'no full-rate pre-copy fits');
  assert.ok(m!.durationS > 8, `half the bandwidth: ${m!.durationS} s`);
  assertKept(input, plan.actions);
});

test('a CPU-saturated source: pre-copy adds no watts there (its power held until switchover, its guests slowed); unsaturated it adds 12 W', () => {
  // Rack of a (the mover's host, under its own cap) and c (throttleable VMs); the rack is 1 W over.
  const input = (saturated: boolean): PlanCapsInput => ({
    linkBps: TEN_GBE,
    horizonS: 300,
    hosts: [
      { hostId: 'a', capW: 600, powerW: 300, cpuSaturated: saturated, vms: [{ uuid: 'mv', powerW: 120, memoryBytes: 4 * GiB, dirtyRateBps: 300 * MB, workingSetBytes: 400 * MB, tenant: 'x' }, pinned('p', 100)] },
      { hostId: 'c', capW: 600, powerW: 300, vms: [pinned('c1', 200)] },
      { hostId: 'b', capW: 600, powerW: 300, vms: [] },
    ],
    groups: [{ groupId: 'rack', kind: 'rack', capW: 599, members: ['a', 'c'] }],
  });
  const opts = { modes: ['pre-copy' as const] };
  const sat = planCaps(input(true), opts);
  const uns = planCaps(input(false), opts);
  const ms = migrations(sat.actions)[0]!;
  const mu = migrations(uns.actions)[0]!;
  assert.equal(ms.sourceExtraW, 0, 'saturated: the copy takes CPU from the guests, no watts added');
  assert.equal(mu.sourceExtraW, 12);
  const windowShed = (p: typeof sat): number => throttles(p.actions).filter((t) => t.untilS !== null).reduce((a, t) => a + t.shedW, 0);
  assert.ok(Math.abs(windowShed(sat) - 1) < 2e-3, `saturated: the 1 W excess, from c, got ${windowShed(sat)}`);
  assert.deepEqual([...new Set(throttles(sat.actions).map((t) => t.hostId))], ['c'], 'not on the saturated source: freed CPU would go to the copy');
  assert.ok(Math.abs(windowShed(uns) - 13) < 2e-3, `unsaturated: 1 W + the 12 W transient, got ${windowShed(uns)}`);
  // The saturated source's guests pay for the displaced CPU: the migration's SLA cost includes p's slowdown.
  assert.ok(ms.slaCost > mu.slaCost, `saturated ${ms.slaCost} vs unsaturated ${mu.slaCost} VM·s`);
  assertKept(input(true), sat.actions);
  assertKept(input(false), uns.actions);
});

test('DVFS where the host offers it: the same watts for less slowdown; the margin is kept free under every cap', () => {
  const base = (methods?: ('cpu-quota' | 'dvfs')[]): PlanCapsInput => ({
    linkBps: TEN_GBE,
    horizonS: 60,
    hosts: [{ hostId: 'h', capW: 500, powerW: 530, ...(methods ? { throttleMethods: methods } : {}), vms: [pinned('a', 200), pinned('b', 200)] }],
  });
  const quota = planCaps(base());
  const dvfs = planCaps(base(['dvfs', 'cpu-quota']));
  assert.deepEqual(throttles(quota.actions).map((t) => t.method), ['cpu-quota', 'cpu-quota']);
  const d = throttles(dvfs.actions);
  assert.deepEqual(d.map((t) => t.method), ['dvfs', 'dvfs']);
  // 15 W of 180 W each: quota 8.3 % slower; f² law: f = √(1 − 15/180) = 0.957, 4.3 % slower.
  assert.equal(d[0]!.frequencyFraction, 0.957);
  assert.ok(dvfs.slaCost < quota.slaCost * 0.55, `dvfs ${dvfs.slaCost} vs quota ${quota.slaCost} VM·s`);
  assert.equal(d[0]!.cpuQuotaFraction, 1);

  const margin = planCaps(base(), { marginW: 10 });
  assert.equal(margin.hosts[0]!.peakW, 490);
  assert.match(throttles(margin.actions)[0]!.reason, /less the 10 W margin/);
  const frac = planCaps(base(), { marginFraction: 0.02 });
  assert.equal(frac.hosts[0]!.peakW, 490);
  assert.throws(() => planCaps(base(), { marginFraction: 1.5 }), /options\.marginFraction=1\.5/);
});

test('random fleets with racks and a PDU: every plan marked safe keeps every host and group under its cap in every second', () => {
  let seed = 11;
  const rnd = (): number => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  let migrated = 0;
  const modes = new Set<string>();
  let safe = 0;
  for (let round = 0; round < 30; round++) {
    const hosts = Array.from({ length: 8 }, (_, h) => {
      const vms = Array.from({ length: 1 + Math.floor(rnd() * 6) }, (_, v) => ({
        uuid: `r${round}-h${h}-v${v}`,
        powerW: Math.round(5 + rnd() * 60),
        memoryBytes: Math.round((0.5 + rnd() * 12) * GiB),
        dirtyRateBps: rnd() * 300 * MB,
        workingSetBytes: rnd() * 400 * MB,
        tenant: 't',
        priority: Math.floor(rnd() * 3),
        movable: rnd() > 0.2,
      }));
      const powerW = vms.reduce((a, v) => a + v.powerW, 0) + 80;
      return { hostId: `h${h}`, capW: Math.round(powerW + (rnd() - 0.3) * 120), powerW, vms, cpuSaturated: rnd() < 0.3, ...(rnd() < 0.3 ? { throttleMethods: ['dvfs' as const, 'cpu-quota' as const] } : {}) };
    });
    const rackW = (ids: string[]): number => ids.reduce((a, id) => a + hosts.find((h) => h.hostId === id)!.powerW, 0);
    const r1 = ['h0', 'h1', 'h2'];
    const r2 = ['h3', 'h4', 'h5'];
    const input: PlanCapsInput = {
      hosts,
      linkBps: TEN_GBE * (0.5 + rnd() * 2),
      horizonS: 30 + Math.floor(rnd() * 300),
      groups: [
        { groupId: 'rack-1', kind: 'rack', capW: Math.round(rackW(r1) * (0.85 + rnd() * 0.25)), members: r1 },
        { groupId: 'rack-2', kind: 'rack', capW: Math.round(rackW(r2) * (0.85 + rnd() * 0.25)), members: r2 },
        { groupId: 'pdu', kind: 'pdu', capW: Math.round((rackW(r1) + rackW(r2)) * (0.9 + rnd() * 0.2)), members: ['rack-1', 'rack-2'] },
      ],
    };
    const marginW = rnd() < 0.5 ? 5 : 0;
    const plan = planCaps(input, { marginW });
    const hostSim = simulatePlan(hosts, plan.actions, input.horizonS);
    const groupSim = simulateGroups(hosts, input.groups!, plan.actions, input.horizonS);
    for (const hp of plan.hosts) assert.deepEqual(hp.timelineW, hostSim.get(hp.hostId));
    for (const gp of plan.groups) assert.deepEqual(gp.timelineW, groupSim.get(gp.groupId));
    const infeasible = plan.hosts.some((h) => h.status === 'infeasible') || plan.groups.some((g) => g.status === 'infeasible');
    if (!infeasible) {
      assert.equal(plan.safe, true, `round ${round}`);
      assertKept(input, plan.actions, marginW);
      safe++;
    }
    for (const m of migrations(plan.actions)) modes.add(m.mode);
    migrated += migrations(plan.actions).length;
  }
  assert.ok(migrated > 5 && safe > 15, `the random fleets exercised migrations (${migrated}) and safe plans (${safe})`);
  assert.ok(modes.size >= 2, `more than one mode chosen: ${[...modes].join(', ')}`);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWattsplitError } from '@wattsplit/wire';
import { MigrationTransientModel, naiveCapPlan, planCaps, simulatePlan, type CapAction, type MigrateAction, type PlanCapsInput, type PlanCapsOptions, type ThrottleAction } from './index.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const TEN_GBE = 1.25e9;

/** The tests written for the pre-copy transient: the advisor limited to pre-copy (modes are compared in cap-modes.test.ts). */
const PRE: PlanCapsOptions = { modes: ['pre-copy'] };

const rep = (w: number, n: number): number[] => Array.from({ length: n }, () => w);
const throttles = (a: CapAction[]): ThrottleAction[] => a.filter((x): x is ThrottleAction => x.kind === 'throttle');
const migrations = (a: CapAction[]): MigrateAction[] => a.filter((x): x is MigrateAction => x.kind === 'migrate');

/** hv-a is 20 W over its 500 W cap; hv-c is the only other host and has 210 W of headroom. */
function atCapFleet(horizonS = 300): PlanCapsInput {
  return {
    linkBps: TEN_GBE,
    horizonS,
    hosts: [
      {
        hostId: 'hv-a',
        capW: 500,
        powerW: 520,
        vms: [
          { uuid: 'db-1', powerW: 200, memoryBytes: 8 * GiB, dirtyRateBps: 64 * MiB, tenant: 'acme' },
          { uuid: 'web-1', powerW: 100, memoryBytes: 2 * GiB, dirtyRateBps: 16 * MiB, tenant: 'acme' },
          { uuid: 'batch-1', powerW: 150, memoryBytes: 4 * GiB, dirtyRateBps: 32 * MiB, tenant: 'globex' },
        ],
      },
      { hostId: 'hv-c', capW: 500, powerW: 290, vms: [{ uuid: 'idle-1', powerW: 40, memoryBytes: GiB, tenant: 'initech' }] },
    ],
  };
}

test('the naive plan overshoots the cap during the transfer; the advisor throttles first and picks a VM whose arrival fits', () => {
  const input = atCapFleet();
  // Naive: the biggest VM (db-1, 200 W) to the only host with 200 W of headroom, now, unthrottled.
  const naive = naiveCapPlan(input);
  assert.equal(naive.length, 1);
  const nm = migrations(naive)[0]!;
  assert.equal(nm.vmUuid, 'db-1');
  assert.ok(nm.durationS > 11 && nm.durationS < 11.3, `db-1 takes ${nm.durationS} s`);
  const nt = simulatePlan(input.hosts, naive, input.horizonS);
  const a = nt.get('hv-a')!;
  assert.deepEqual(a.slice(0, 12), rep(532, 12), 'source: 520 W + 12 W transient, worse than before, until switchover');
  assert.deepEqual(a.slice(12, 15), rep(320, 3));
  const c = nt.get('hv-c')!;
  assert.equal(c[0], 302);
  assert.equal(c[11], 290 + 12 + 200, 'destination: VM and transient in the switchover second = 502 W > 500 W cap');

  const plan = planCaps(input, PRE);
  assert.equal(plan.safe, true);
  const ha = plan.hosts.find((h) => h.hostId === 'hv-a')!;
  const hc = plan.hosts.find((h) => h.hostId === 'hv-c')!;
  assert.equal(ha.status, 'throttle-then-migrate');
  assert.equal(hc.status, 'destination');
  const [m] = migrations(plan.actions);
  assert.ok(m);
  assert.notEqual(m.vmUuid, 'db-1', 'db-1 + its transient does not fit under hv-c cap');
  assert.equal(m.toHostId, 'hv-c');
  assert.equal(m.startS, 1, 'migration starts one second after the throttle');
  // The source sheds 520 + 12 - 500 = 32 W for the migration window, from the migrating VM itself.
  const th = throttles(plan.actions);
  assert.equal(th.length, 1);
  assert.equal(th[0]!.vmUuid, m.vmUuid);
  assert.equal(th[0]!.shedW, 32);
  assert.equal(th[0]!.fromS, 0);
  assert.equal(th[0]!.untilS, Math.ceil(m.switchoverS));
  // Timelines, second by second.
  const leave = Math.ceil(m.switchoverS);
  assert.deepEqual(ha.timelineW.slice(0, 1), [488]);
  assert.deepEqual(ha.timelineW.slice(1, leave), rep(500, leave - 1), 'at most the cap during the transient');
  assert.deepEqual(ha.timelineW.slice(leave), rep(520 - m.vmPowerW, 300 - leave));
  // The destination carries the transient from the start and the VM from the earliest it could arrive
  // (setup + one pass over its memory at the link rate), not only from the estimated switchover.
  const arrive = Math.floor(m.arriveS);
  assert.ok(arrive < m.switchoverS && arrive >= 3, `earliest arrival ${m.arriveS} s`);
  assert.deepEqual(hc.timelineW.slice(0, 1), [290]);
  assert.deepEqual(hc.timelineW.slice(1, arrive), rep(302, arrive - 1));
  assert.deepEqual(hc.timelineW.slice(arrive, leave), rep(302 + m.vmPowerW, leave - arrive));
  assert.deepEqual(hc.timelineW.slice(leave), rep(290 + m.vmPowerW, 300 - leave));
  assert.ok(ha.peakW <= 500 && hc.peakW <= 500);
  assert.equal(ha.overCapSeconds, 0);
  // The advisor's own timelines agree with an independent simulation of its actions.
  const sim = simulatePlan(input.hosts, plan.actions, input.horizonS);
  assert.deepEqual(sim.get('hv-a'), ha.timelineW);
  assert.deepEqual(sim.get('hv-c'), hc.timelineW);
  assert.ok(ha.notes.some((n) => n.includes('migrate db-1') && n.includes('no destination has 200 W for the VM plus 12 W for its transient')), ha.notes.join('\n'));
});

test('throttle-then-migrate: the migrating VM cannot shed enough alone, other VMs are throttled for the window only', () => {
  const input: PlanCapsInput = {
    linkBps: TEN_GBE,
    horizonS: 120,
    hosts: [
      {
        hostId: 'src',
        capW: 300,
        powerW: 330,
        vms: [
          { uuid: 'mover', powerW: 40, minPowerW: 20, memoryBytes: 2 * GiB, tenant: 't1', dirtyRateBps: 0 },
          { uuid: 'lowprio', powerW: 100, minPowerW: 10, memoryBytes: 16 * GiB, tenant: 't2', priority: 0, movable: false },
          { uuid: 'vip', powerW: 150, memoryBytes: 16 * GiB, tenant: 't3', priority: 5, movable: false },
        ],
      },
      { hostId: 'dst', capW: 300, powerW: 100, vms: [] },
    ],
  };
  const plan = planCaps(input, PRE);
  assert.equal(plan.safe, true);
  const [m] = migrations(plan.actions);
  assert.equal(m!.vmUuid, 'mover');
  assert.equal(m!.durationS, 8, 'a 2 GiB VM with no dirtying takes the 8 s minimum');
  assert.equal(m!.switchoverS, 9);
  // Window need: 330 + 12 - 300 = 42 W: 20 W from mover (to its floor), 22 W from lowprio, nothing from vip.
  const th = throttles(plan.actions);
  assert.deepEqual(
    th.map((t) => [t.vmUuid, t.shedW, t.fromS, t.untilS]),
    [
      ['mover', 20, 0, 9],
      ['lowprio', 22, 0, 9],
    ],
  );
  assert.equal(th[1]!.cpuQuotaFraction, Math.floor((1 - 22 / 90) * 1000) / 1000, 'rounded down: never sheds less than planned');
  const src = plan.hosts.find((h) => h.hostId === 'src')!;
  assert.deepEqual(src.timelineW.slice(0, 12), [288, ...rep(300, 8), 290, 290, 290]);
  assert.equal(src.status, 'throttle-then-migrate');
});

test('destination headroom includes its own transient and earlier decisions: two sources do not both land on one host', () => {
  // 7 GiB at 1e9 B/s usable: 2 s setup + 7.516 s copy = 9.5162 s (rounded up to 9.517), so switchover falls inside second 10.
  const vm = (uuid: string) => ({ uuid, powerW: 100, memoryBytes: 7 * GiB, tenant: 't', dirtyRateBps: 0 });
  const input: PlanCapsInput = {
    linkBps: TEN_GBE,
    horizonS: 300,
    hosts: [
      { hostId: 'a', capW: 400, powerW: 420, vms: [vm('a1'), { ...vm('a2'), movable: false }, { ...vm('a3'), movable: false }] },
      { hostId: 'b', capW: 400, powerW: 410, vms: [vm('b1'), { ...vm('b2'), movable: false }, { ...vm('b3'), movable: false }] },
      // Room for both VMs at steady state (180 + 200 = 380) but not for both transients and arrivals in one second (404).
      { hostId: 'big', capW: 400, powerW: 180, vms: [] },
      // Room for one VM and its transient: 285 + 12 + 100 = 397.
      { hostId: 'small', capW: 400, powerW: 285, vms: [] },
      // Room for the VM (395) but not for the VM and its transient in the switchover second (407).
      { hostId: 'tight', capW: 400, powerW: 295, vms: [] },
    ],
  };
  const plan = planCaps(input, PRE);
  assert.equal(plan.safe, true);
  const ms = migrations(plan.actions);
  assert.deepEqual(ms.map((m) => [m.vmUuid, m.toHostId, m.switchoverS]), [
    ['a1', 'big', 10.517],
    ['b1', 'small', 10.517],
  ]);
  const sim = simulatePlan(input.hosts, plan.actions, input.horizonS);
  for (const h of input.hosts) assert.ok(Math.max(...sim.get(h.hostId)!) <= h.capW + 1e-9, `${h.hostId} over its cap: ${Math.max(...sim.get(h.hostId)!)}`);
  const big = plan.hosts.find((h) => h.hostId === 'big')!;
  // 7 GiB: the earliest arrival is 1 + 2 + 6.01 s (second 9); seconds 9 and 10 carry the transient and the VM.
  assert.deepEqual(big.timelineW.slice(0, 13), [180, ...rep(192, 8), 292, 292, 280, 280], 'seconds 9–10 carry the transient and the arrived VM');
  const small = plan.hosts.find((h) => h.hostId === 'small')!;
  assert.deepEqual(small.timelineW.slice(0, 13), [285, ...rep(297, 8), 397, 397, 385, 385]);
  assert.equal(plan.hosts.find((h) => h.hostId === 'tight'), undefined, 'tight is not touched');
  // Source a: 420 + 12 - 400 = 32 W shed until it leaves in second 11; the VM stays on it through second 10.
  const a = plan.hosts.find((h) => h.hostId === 'a')!;
  assert.deepEqual(a.timelineW.slice(0, 13), [388, ...rep(400, 10), 320, 320]);
});

test('when the only destination cannot take two overlapping transients, the second migration starts after the first switched over', () => {
  const vm = (uuid: string) => ({ uuid, powerW: 100, memoryBytes: 7 * GiB, tenant: 't', dirtyRateBps: 0 });
  const input: PlanCapsInput = {
    linkBps: TEN_GBE,
    horizonS: 120,
    hosts: [
      { hostId: 'a', capW: 400, powerW: 420, vms: [vm('a1'), { ...vm('a2'), movable: false }, { ...vm('a3'), movable: false }] },
      { hostId: 'b', capW: 400, powerW: 410, vms: [vm('b1'), { ...vm('b2'), movable: false }, { ...vm('b3'), movable: false }] },
      { hostId: 'big', capW: 400, powerW: 180, vms: [] },
    ],
  };
  const plan = planCaps(input, PRE);
  assert.equal(plan.safe, true);
  const ms = migrations(plan.actions);
  assert.deepEqual(ms.map((m) => [m.vmUuid, m.toHostId, m.startS, m.switchoverS]), [
    ['a1', 'big', 1, 10.517],
    ['b1', 'big', 11, 20.517],
  ]);
  assert.match(ms[1]!.reason, /starts at 11 s, after an earlier migration's switchover/);
  const big = plan.hosts.find((h) => h.hostId === 'big')!;
  assert.deepEqual(big.timelineW.slice(0, 23), [180, ...rep(192, 8), ...rep(292, 10), 392, 392, 380, 380]);
  // b holds its 22 W window throttle until b1 leaves in second 21.
  const b = plan.hosts.find((h) => h.hostId === 'b')!;
  assert.deepEqual(b.timelineW.slice(0, 23), [388, ...rep(388, 10), ...rep(400, 10), 310, 310]);
  assert.deepEqual(throttles(plan.actions).filter((t) => t.hostId === 'b').map((t) => [t.vmUuid, t.shedW, t.fromS, t.untilS]), [['b1', 22, 0, 21]]);
});

test('no safe migration (pinned VMs, full fleet): throttling amounts by priority, and it says so', () => {
  const input: PlanCapsInput = {
    linkBps: TEN_GBE,
    horizonS: 600,
    hosts: [
      {
        hostId: 'gpu-1',
        capW: 700,
        powerW: 730,
        vms: [
          { uuid: 'train', powerW: 400, memoryBytes: 64 * GiB, tenant: 'ai', priority: 1, movable: false },
          { uuid: 'etl-1', powerW: 120, memoryBytes: 8 * GiB, tenant: 'data', movable: false },
          { uuid: 'etl-2', powerW: 80, memoryBytes: 8 * GiB, tenant: 'data', movable: false },
        ],
      },
      { hostId: 'gpu-2', capW: 700, powerW: 690, vms: [] },
    ],
  };
  const plan = planCaps(input);
  assert.equal(plan.safe, true);
  const h = plan.hosts.find((x) => x.hostId === 'gpu-1')!;
  assert.equal(h.status, 'throttle');
  assert.match(h.notes.join('\n'), /no safe migration exists: throttling instead/);
  // 30 W from the priority-0 VMs, in proportion to what each can shed (108 W and 72 W): 18 W and 12 W.
  assert.deepEqual(throttles(plan.actions).map((t) => [t.vmUuid, t.shedW, t.untilS]), [['etl-1', 18, null], ['etl-2', 12, null]]);
  assert.deepEqual(h.timelineW, rep(700, 600));
});

test('over a short horizon throttling is cheaper than migrating, and the note compares the SLA costs', () => {
  // 20 W over: throttling sheds 20 W of 405 W throttleable (each VM 4.9 % slower) for 10 s = 1.48 VM·s;
  // the cheapest pre-copy (batch-1, throttled 32 W for 9 s, then 5 % slower for 8 s) costs 2.64 VM·s.
  const plan = planCaps(atCapFleet(10), PRE);
  const h = plan.hosts.find((x) => x.hostId === 'hv-a')!;
  assert.equal(h.status, 'throttle');
  assert.match(h.notes.join('\n'), /throttling \(SLA 1\.48\d* VM·s\) is cheaper than the best migration, pre-copy of batch-1 to hv-c: SLA 2\.64\d* VM·s .* over 10 s/);
  const shed = throttles(plan.actions).reduce((a, t) => a + t.shedW, 0);
  assert.ok(shed >= 20 && shed < 20.003, `shed ${shed} W: 20 W, each VM's share rounded up to the mW`);
  assert.ok(Math.abs(plan.slaCost - 1.481) < 0.002, `plan SLA cost ${plan.slaCost}`);
  // Over 300 s the same host is better served by moving a VM.
  assert.equal(planCaps(atCapFleet(300), PRE).hosts.find((x) => x.hostId === 'hv-a')!.status, 'throttle-then-migrate');
});

test('infeasible: even every VM at its floor leaves the host over its cap; the plan is marked unsafe and says by how much', () => {
  const plan = planCaps({
    linkBps: TEN_GBE,
    horizonS: 60,
    hosts: [{ hostId: 'hot', capW: 100, powerW: 300, vms: [{ uuid: 'x', powerW: 150, memoryBytes: GiB, tenant: 't', movable: false }] }],
  });
  assert.equal(plan.safe, false);
  const h = plan.hosts[0]!;
  assert.equal(h.status, 'infeasible');
  assert.deepEqual(throttles(plan.actions).map((t) => [t.vmUuid, t.shedW, t.cpuQuotaFraction]), [['x', 135, 0]]);
  assert.match(h.notes[0]!, /sheds 135 W of the 200 W needed; 65 W over remains/);
  assert.equal(h.overCapSeconds, 60);
  assert.equal(h.peakW, 165);
});

test('a host over its cap with no VMs at all is infeasible, with nothing to throttle', () => {
  const plan = planCaps({ linkBps: TEN_GBE, horizonS: 10, hosts: [{ hostId: 'empty', capW: 100, powerW: 130, vms: [] }] });
  assert.equal(plan.safe, false);
  assert.deepEqual(plan.actions, []);
  assert.equal(plan.hosts[0]!.status, 'infeasible');
  assert.match(plan.hosts[0]!.notes.join('\n'), /sheds 0 W of the 30 W needed; 30 W over remains/);
  assert.deepEqual(plan.hosts[0]!.timelineW, rep(130, 10));
});

test('hosts under their caps get no actions; a custom transient model changes the window', () => {
  const input = atCapFleet();
  input.hosts[0]!.powerW = 480;
  const none = planCaps(input);
  assert.deepEqual(none.actions, []);
  assert.deepEqual(none.hosts, []);
  assert.equal(none.safe, true);
  const big = planCaps(atCapFleet(), { model: new MigrationTransientModel({ sourceExtraW: 30, minDurationS: 15 }) });
  const th = throttles(big.actions).filter((t) => t.untilS !== null);
  assert.equal(th.reduce((a, t) => a + t.shedW, 0), 50, '520 + 30 - 500');
  assert.ok(migrations(big.actions)[0]!.durationS >= 15);
});

test('bad input names the host, VM, field and value', () => {
  const bad = (mut: (i: PlanCapsInput) => void, re: RegExp) => {
    const i = atCapFleet();
    mut(i);
    assert.throws(() => planCaps(i), (e) => isWattsplitError(e, 'CAP_INPUT_INVALID') && re.test(e.message));
  };
  bad((i) => (i.hosts[1]!.vms[0]!.powerW = -3), /^planCaps: hosts\[1\]\.vms\[0\]\.powerW=-3 must be a number of watts ≥ 0/);
  bad((i) => (i.hosts[0]!.capW = 0), /hosts\[0\]\.capW=0 must be a positive number/);
  bad((i) => (i.horizonS = 2.5), /horizonS=2\.5 must be an integer/);
  bad((i) => (i.linkBps = -1), /linkBps=-1/);
  bad((i) => (i.hosts[1]!.vms[0]!.uuid = 'db-1'), /hosts\[1\]\.vms\[0\]\.uuid="db-1" is also on host "hv-a"/);
  bad((i) => (i.hosts[1]!.hostId = 'hv-a'), /hosts\[1\]\.hostId="hv-a" is repeated/);
  bad((i) => (i.hosts[0]!.powerW = 400), /hosts\[0\]\.vms\[\*\]\.powerW=450 sum exceeds the host's measured powerW=400/);
  bad((i) => (i.hosts[0]!.vms[0]!.minPowerW = 500), /hosts\[0\]\.vms\[0\]\.minPowerW=500 must be in \[0, powerW=200\]/);
});

test('on random fleets, every plan marked safe keeps every host under its cap in every second of an independent simulation', () => {
  let seed = 7;
  const rnd = (): number => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  let migrated = 0;
  for (let round = 0; round < 40; round++) {
    const hosts = Array.from({ length: 8 }, (_, h) => {
      const vms = Array.from({ length: 1 + Math.floor(rnd() * 6) }, (_, v) => ({
        uuid: `r${round}-h${h}-v${v}`,
        powerW: Math.round(5 + rnd() * 60),
        memoryBytes: Math.round((0.5 + rnd() * 20) * GiB),
        dirtyRateBps: rnd() * 400 * MiB,
        tenant: 't',
        priority: Math.floor(rnd() * 3),
        movable: rnd() > 0.2,
      }));
      const powerW = vms.reduce((a, v) => a + v.powerW, 0) + 80;
      return { hostId: `h${h}`, capW: Math.round(powerW + (rnd() - 0.4) * 120), powerW, vms };
    });
    const input: PlanCapsInput = { hosts, linkBps: TEN_GBE * (0.5 + rnd() * 2), horizonS: 30 + Math.floor(rnd() * 300) };
    const plan = planCaps(input);
    const sim = simulatePlan(hosts, plan.actions, input.horizonS);
    const infeasible = new Set(plan.hosts.filter((h) => h.status === 'infeasible').map((h) => h.hostId));
    for (const h of hosts) {
      const peak = Math.max(...sim.get(h.hostId)!);
      if (!infeasible.has(h.hostId)) assert.ok(peak <= h.capW + 1e-6, `round ${round}: ${h.hostId} peaks at ${peak} W over its cap ${h.capW} W`);
    }
    for (const hp of plan.hosts) assert.deepEqual(hp.timelineW, sim.get(hp.hostId));
    assert.equal(plan.safe, infeasible.size === 0);
    migrated += plan.actions.filter((a) => a.kind === 'migrate').length;
  }
  assert.ok(migrated > 5, `the random fleets exercised migrations (${migrated})`);
});

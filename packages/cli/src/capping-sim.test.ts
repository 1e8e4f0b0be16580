// The advisor's plans replayed in the migration simulator (its own mechanisms: copy CPU, rounds, remote
// faults, quotas and DVFS), on generated over-cap fleets with racks and a PDU: what the plan predicts
// is an upper bound of what then happens, and no host or group goes over its cap in any second.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { groupHosts, groupOtherW, naiveCapPlan, planCaps } from '@wattsplit/capping';
import { capInputOf, overCapScenario, replayInSimulator } from './capping-sim.js';

test('plans checked against the simulator: every host and group under its cap every second; the naive plan is not', () => {
  let naiveOver = 0;
  let migrations = 0;
  for (const seed of [1, 2, 3, 4]) {
    const fleet = overCapScenario({ seed, racks: 3, hostsPerRack: 4, vmsPerHost: 6, horizonS: 120 });
    const input = capInputOf(fleet);
    const members = groupHosts(input.groups!, new Set(input.hosts.map((h) => h.hostId)));
    const other = groupOtherW(input.groups!);
    const overBefore = input.hosts.filter((h) => h.powerW > h.capW).length;
    const plan = planCaps(input);
    assert.equal(plan.safe, true, `seed ${seed}: ${JSON.stringify([...plan.hosts, ...plan.groups].filter((x) => x.overCapSeconds > 0).map((x) => ('hostId' in x ? x.hostId : x.groupId)))}`);
    const got = replayInSimulator(fleet, input, plan.actions, members, other);
    assert.equal(got.overCapSeconds, 0, `seed ${seed}: simulated overshoot ${got.peakOvershootW} W`);
    // The plan's timelines bound the simulated power, second by second.
    for (const h of plan.hosts) {
      const sim = got.sim.powerW.get(h.hostId)!;
      h.timelineW.forEach((w, t) => assert.ok(sim[t]! <= w + 0.01, `seed ${seed} ${h.hostId} t=${t}: simulated ${sim[t]} W > planned ${w} W`));
    }
    for (const g of plan.groups) {
      const sim = got.groupPowerW.get(g.groupId)!;
      g.timelineW.forEach((w, t) => assert.ok(sim[t]! <= w + 0.01, `seed ${seed} ${g.groupId} t=${t}: simulated ${sim[t]} W > planned ${w} W`));
    }
    // Every migration the plan starts finishes in the simulator no later than the plan says.
    for (const a of plan.actions) {
      if (a.kind !== 'migrate') continue;
      migrations++;
      const m = got.sim.migrations.find((x) => x.vmUuid === a.vmUuid)!;
      assert.ok(m.endS <= a.endS + 0.03, `${a.vmUuid} ${a.mode}: ends at ${m.endS} s in the simulator, planned ${a.endS} s (the simulator moves in 10 ms ticks)`);
    }
    // The plan's SLA cost (its model of the work the VMs lose) is what the simulator's VMs lose: within
    // 10 % + 3 VM·s (the simulator's pauses and faults are mechanisms, not the advisor's constants).
    assert.ok(Math.abs(got.lostWorkS - plan.slaCost) <= 0.1 * plan.slaCost + 3, `seed ${seed}: SLA ${plan.slaCost} VM·s planned, ${got.lostWorkS} s of work lost in the simulator`);
    const naive = replayInSimulator(fleet, input, naiveCapPlan(input), members, other);
    if (overBefore > 0 || plan.groups.some((g) => g.status !== 'within-cap')) assert.ok(naive.overCapSeconds > 0, `seed ${seed}: the naive plan overshoots`);
    naiveOver += naive.overCapSeconds;
  }
  assert.ok(migrations > 0 && naiveOver > 0, `migrations ${migrations}, naive over-cap seconds ${naiveOver}`);
});

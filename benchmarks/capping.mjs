#!/usr/bin/env node
// The capping advisor against the naive plan ("migrate the biggest VM by pre-copy now") on generated
// over-cap scenarios with group caps: racks of hosts under a PDU, some hosts over their own cap, some
// racks over theirs while each of their hosts is under. Each plan is judged twice: by the advisor's
// own timeline model (simulatePlan/simulateGroups) and by replaying it in the migration simulator
// (packages/simulator/src/migration.ts: copy CPU, pre-copy rounds, post-copy remote faults, quotas,
// DVFS), whose mechanisms are not the advisor's model. Reported per plan: host- and group-seconds over
// a cap, the peak overshoot, the SLA cost (VM·s of lost work weighted by 1 + priority, the advisor's
// measure) and the work the VMs lost in the simulator (s), and the advisor's planning time.
//
//   node benchmarks/capping.mjs [--scenarios 6] [--racks 4] [--hosts-per-rack 6] [--vms 8] [--horizon 300] [--seed 1] [--json]
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const imp = (p) => import(pathToFileURL(join(root, p)).href);
const { planCaps, naiveCapPlan, simulatePlan, simulateGroups, groupHosts, groupOtherW } = await imp('packages/capping/dist/index.js');
const { capInputOf, overCapScenario, replayInSimulator } = await imp('packages/cli/dist/capping-sim.js');

const argv = process.argv.slice(2);
const arg = (k, d) => (argv.includes(k) ? Number(argv[argv.indexOf(k) + 1]) : d);
const o = {
  scenarios: arg('--scenarios', 6),
  racks: arg('--racks', 4),
  hostsPerRack: arg('--hosts-per-rack', 6),
  vmsPerHost: arg('--vms', 8),
  horizonS: arg('--horizon', 300),
  seed: arg('--seed', 1),
};
const json = argv.includes('--json');
const load0 = loadavg()[0];

/** Host- and group-seconds over the cap, and the peak overshoot, of per-second timelines. */
function overCap(input, hostTl, groupTl) {
  let seconds = 0;
  let peak = 0;
  const check = (tl, capW) => {
    for (const w of tl) {
      if (w > capW + 1e-6) seconds++;
      peak = Math.max(peak, w - capW);
    }
  };
  for (const h of input.hosts) check(hostTl.get(h.hostId), h.capW);
  for (const g of input.groups) check(groupTl.get(g.groupId), g.capW);
  return { seconds, peakW: peak };
}

const rows = [];
for (let i = 0; i < o.scenarios; i++) {
  const fleet = overCapScenario({ seed: o.seed + i, racks: o.racks, hostsPerRack: o.hostsPerRack, vmsPerHost: o.vmsPerHost, horizonS: o.horizonS });
  const input = capInputOf(fleet);
  const members = groupHosts(input.groups, new Set(input.hosts.map((h) => h.hostId)));
  const other = groupOtherW(input.groups);
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const plan = planCaps(input);
  const planMs = performance.now() - t0;
  const cpu = process.cpuUsage(c0);
  const naive = naiveCapPlan(input);
  const judge = (actions, slaCost) => {
    const model = overCap(input, simulatePlan(input.hosts, actions, o.horizonS), simulateGroups(input.hosts, input.groups, actions, o.horizonS));
    const sim = replayInSimulator(fleet, input, actions, members, other);
    return {
      modelOverCapSeconds: model.seconds,
      modelPeakOvershootW: Math.round(model.peakW * 10) / 10,
      simOverCapSeconds: sim.overCapSeconds,
      simPeakOvershootW: Math.round(Math.max(0, sim.peakOvershootW) * 10) / 10,
      slaCostVmS: Math.round(slaCost * 100) / 100,
      simLostWorkS: Math.round(sim.lostWorkS * 100) / 100,
      migrations: actions.filter((a) => a.kind === 'migrate').length,
      throttles: actions.filter((a) => a.kind === 'throttle').length,
    };
  };
  const modes = {};
  for (const a of plan.actions) if (a.kind === 'migrate') modes[a.mode] = (modes[a.mode] ?? 0) + 1;
  const baseline = overCap(input, simulatePlan(input.hosts, [], o.horizonS), simulateGroups(input.hosts, input.groups, [], o.horizonS));
  rows.push({
    seed: o.seed + i,
    hosts: input.hosts.length,
    vms: input.hosts.reduce((a, h) => a + h.vms.length, 0),
    overHosts: input.hosts.filter((h) => h.powerW > h.capW).length,
    overGroups: input.groups.filter((g) => (simulateGroups(input.hosts, input.groups, [], 1).get(g.groupId)[0] ?? 0) > g.capW).length,
    doNothingOverCapSeconds: baseline.seconds,
    planMs: Math.round(planMs),
    // CPU time of the planning: on a shared machine the wall time says more about the neighbours.
    planCpuMs: Math.round((cpu.user + cpu.system) / 1000),
    safe: plan.safe,
    modes,
    advisor: judge(plan.actions, plan.slaCost),
    naive: judge(naive, naive.reduce((a, m) => a + m.slaCost, 0)),
  });
}

const sum = (f) => rows.reduce((a, r) => a + f(r), 0);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const result = {
  bench: 'capping',
  date: new Date().toISOString(),
  machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.versions.node}`,
  loadavgStart: Math.round(load0 * 100) / 100,
  loadavgEnd: Math.round(loadavg()[0] * 100) / 100,
  command: `node benchmarks/capping.mjs ${argv.join(' ')}`.trim(),
  options: o,
  totals: {
    overHosts: sum((r) => r.overHosts),
    overGroups: sum((r) => r.overGroups),
    advisorSafePlans: rows.filter((r) => r.safe).length,
    advisorModelOverCapSeconds: sum((r) => r.advisor.modelOverCapSeconds),
    advisorSimOverCapSeconds: sum((r) => r.advisor.simOverCapSeconds),
    naiveModelOverCapSeconds: sum((r) => r.naive.modelOverCapSeconds),
    naiveSimOverCapSeconds: sum((r) => r.naive.simOverCapSeconds),
    doNothingOverCapSeconds: sum((r) => r.doNothingOverCapSeconds),
    advisorSlaCostVmS: Math.round(sum((r) => r.advisor.slaCostVmS) * 100) / 100,
    naiveSlaCostVmS: Math.round(sum((r) => r.naive.slaCostVmS) * 100) / 100,
    advisorSimLostWorkS: Math.round(sum((r) => r.advisor.simLostWorkS) * 100) / 100,
    naiveSimLostWorkS: Math.round(sum((r) => r.naive.simLostWorkS) * 100) / 100,
    planMsMedian: median(rows.map((r) => r.planMs)),
    planCpuMsMedian: median(rows.map((r) => r.planCpuMs)),
  },
  scenarios: rows,
};

if (json) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
} else {
  const t = result.totals;
  process.stdout.write(`${result.command} — ${result.machine}, load ${result.loadavgStart} → ${result.loadavgEnd}, ${result.date}\n\n`);
  process.stdout.write('| seed | hosts | over hosts / groups | plan ms (CPU) | advisor over-cap s (model / sim) | naive over-cap s (model / sim) | naive peak overshoot W (sim) | advisor SLA VM·s / lost work s (sim) | naive SLA VM·s / lost work s (sim) | modes |\n|---|---|---|---|---|---|---|---|---|---|\n');
  for (const r of rows) {
    process.stdout.write(
      `| ${r.seed} | ${r.hosts} | ${r.overHosts} / ${r.overGroups} | ${r.planMs} (${r.planCpuMs}) | ${r.advisor.modelOverCapSeconds} / ${r.advisor.simOverCapSeconds} | ${r.naive.modelOverCapSeconds} / ${r.naive.simOverCapSeconds} | ${r.naive.simPeakOvershootW} | ${r.advisor.slaCostVmS} / ${r.advisor.simLostWorkS} | ${r.naive.slaCostVmS} / ${r.naive.simLostWorkS} | ${Object.entries(r.modes).map(([k, v]) => `${k} ${v}`).join(', ')} |\n`,
    );
  }
  process.stdout.write(`\ntotals: advisor ${t.advisorModelOverCapSeconds} / ${t.advisorSimOverCapSeconds} over-cap s, naive ${t.naiveModelOverCapSeconds} / ${t.naiveSimOverCapSeconds}, doing nothing ${t.doNothingOverCapSeconds}; SLA advisor ${t.advisorSlaCostVmS} VM·s, naive ${t.naiveSlaCostVmS} VM·s; plan time median ${t.planMsMedian} ms\n`);
}

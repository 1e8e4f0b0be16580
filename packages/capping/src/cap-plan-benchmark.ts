/**
 * Advisor speed and outcome on a synthetic fleet: `--hosts` hosts of `--vms` VMs, a fifth of them over
 * their cap by 5–40 W, compared with the naive plan (biggest VM, now, unthrottled). Prints one JSON line.
 *
 *   node packages/capping/dist/cap-plan-benchmark.js [--hosts 200] [--vms 20] [--horizon 300] [--seed 1]
 */
import type { CapHost, PlanCapsInput } from './cap-plan-types.js';
import { planCaps } from './cap-planner.js';
import { naiveCapPlan } from './naive-cap-plan.js';
import { simulatePlan } from './power-timeline.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}
const nHosts = arg('hosts', 200);
const nVms = arg('vms', 20);
const horizonS = arg('horizon', 300);
let seed = arg('seed', 1);
const rnd = (): number => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);

const GiB = 1024 ** 3;
const hosts: CapHost[] = Array.from({ length: nHosts }, (_, h) => {
  const vms = Array.from({ length: nVms }, (_, v) => ({
    uuid: `h${h}-vm${v}`,
    powerW: Math.round(5 + rnd() * 25),
    memoryBytes: (1 + Math.floor(rnd() * 16)) * GiB,
    dirtyRateBps: rnd() * 200e6,
    tenant: `t${v % 7}`,
    priority: Math.floor(rnd() * 3),
  }));
  const vmW = vms.reduce((a, v) => a + v.powerW, 0);
  const powerW = vmW + 120; // idle + hypervisor
  const over = h % 5 === 0;
  const capW = over ? powerW - Math.round(5 + rnd() * 35) : powerW + Math.round(20 + rnd() * 200);
  return { hostId: `hv-${h}`, capW, powerW, vms };
});
const input: PlanCapsInput = { hosts, linkBps: 1.25e9, horizonS };

const t0 = performance.now();
const c0 = process.cpuUsage();
const plan = planCaps(input);
const ms = performance.now() - t0;
// CPU time of this process: on a shared machine the wall time says more about the neighbours.
const cpu = process.cpuUsage(c0);

const overSeconds = (tl: Map<string, number[]>): number => hosts.reduce((a, h) => a + tl.get(h.hostId)!.filter((w) => w > h.capW + 1e-6).length, 0);
const peakOvershoot = (tl: Map<string, number[]>): number => Math.max(0, ...hosts.map((h) => Math.max(...tl.get(h.hostId)!) - h.capW));
const naive = simulatePlan(hosts, naiveCapPlan(input), horizonS);
const advised = simulatePlan(hosts, plan.actions, horizonS);
const count = (s: string): number => plan.hosts.filter((h) => h.status === s).length;
process.stdout.write(
  JSON.stringify({
    hosts: nHosts,
    vmsPerHost: nVms,
    horizonS,
    overCapHosts: hosts.filter((h) => h.powerW > h.capW).length,
    planMs: Math.round(ms),
    planCpuMs: Math.round((cpu.user + cpu.system) / 1000),
    safe: plan.safe,
    throttleThenMigrate: count('throttle-then-migrate'),
    throttle: count('throttle'),
    infeasible: count('infeasible'),
    advisedOverCapHostSeconds: overSeconds(advised),
    advisedPeakOvershootW: Math.round(peakOvershoot(advised) * 10) / 10,
    naiveOverCapHostSeconds: overSeconds(naive),
    naivePeakOvershootW: Math.round(peakOvershoot(naive) * 10) / 10,
  }) + '\n',
);

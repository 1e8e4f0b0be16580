#!/usr/bin/env node
// Simulator speed: 4 hosts × 12 VMs stepped 600 × 1 s, five fresh fleets after a warm-up; prints each run.
//   node packages/simulator/bench/step.mjs [hosts] [vmsPerHost] [seconds]
import { performance } from 'node:perf_hooks';
import { createFleet } from '../dist/index.js';

const [hosts = 4, vms = 12, secs = 600] = process.argv.slice(2).map(Number);
const warm = createFleet({ hosts, vmsPerHost: vms, seed: 99 });
for (let i = 0; i < secs; i++) warm.step(1);
const runs = [];
for (let r = 0; r < 5; r++) {
  const f = createFleet({ hosts, vmsPerHost: vms, seed: r + 1 });
  const t = performance.now();
  for (let i = 0; i < secs; i++) f.step(1);
  runs.push(performance.now() - t);
}
const best = Math.min(...runs);
const med = [...runs].sort((a, b) => a - b)[2];
const perVm = (ms) => ((ms * 1000) / (secs * hosts * vms)).toFixed(2);
process.stdout.write(`${hosts}×${vms} VMs × ${secs} s: best ${best.toFixed(1)} ms (${perVm(best)} µs/VM-step), median ${med.toFixed(1)} ms (${perVm(med)} µs/VM-step); runs ${runs.map((x) => x.toFixed(0)).join(', ')} ms\n`);
const h = createFleet({ hosts, vmsPerHost: vms, seed: 1 }).hosts[1] ?? createFleet({ hosts, vmsPerHost: vms, seed: 1 }).hosts[0];
const dirs = h.fs.exists('/sys/fs/cgroup/machine.slice') ? h.fs.readDir('/sys/fs/cgroup/machine.slice').map((d) => `/sys/fs/cgroup/machine.slice/${d}/cpu.stat`) : [];
let t = performance.now();
let n = 0;
for (let i = 0; i < 2000 && dirs.length; i++) for (const p of dirs) (h.fs.readText(p), n++);
if (n) process.stdout.write(`cgroup cpu.stat read: ${(((performance.now() - t) * 1000) / n).toFixed(2)} µs\n`);
t = performance.now();
for (let i = 0; i < 200; i++) h.fs.readText('/proc/stat');
process.stdout.write(`/proc/stat read: ${(((performance.now() - t) * 1000) / 200).toFixed(1)} µs\n`);

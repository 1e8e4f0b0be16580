#!/usr/bin/env node
// The fit alone: trainAdditiveModel (packages/models) on the host-day of benchmarks/training.mjs (synthHost
// seed 5, one 50-VM host, 1 Hz), evenly sampled to the 17 470 intervals a collector's training fits (its read
// takes 20 000 by hash, the trainer's selection keeps ~17 470), in this thread; CPU and wall seconds and the
// model's residuals (to check that a speed-up left the model as it was). --profile DIR writes a V8 CPU
// profile of the fit only (not of generating the history) to DIR/fit.cpuprofile. --models-dist DIR loads
// packages/models from another build inside packages/models (say a copy with one file from an older commit)
// for a before/after on the same machine; alternate the runs.
//
//   node benchmarks/training-fit.mjs [--seconds 86400] [--profile DIR] [--models-dist packages/models/dist]
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const imp = (p) => import(pathToFileURL(join(root, p)).href);
const argv = process.argv.slice(2);
const opt = (k, d) => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : d);
const modelsDist = opt('--models-dist', 'packages/models/dist');
const { synthHost } = await imp(`${modelsDist}/test-hosts.js`);
const { trainAdditiveModel } = await imp(`${modelsDist}/index.js`);
const seconds = Number(opt('--seconds', 86_400));
const profileDir = opt('--profile', '');

const { intervals } = synthHost({ seed: 5, vms: 50, seconds, hardwareClass: 'synth-50' });
const n = Math.min(17_470, intervals.length);
const step = intervals.length / n;
const sample = [];
for (let x = 0; Math.floor(x) < intervals.length && sample.length < n; x += step) sample.push(intervals[Math.floor(x)]);
const session = new Session();
if (profileDir) {
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
}
const load0 = loadavg()[0];
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const m = await trainAdditiveModel(sample, { hardwareClass: 'synth-50', version: 1 });
const cpu = process.cpuUsage(cpu0);
const wallS = (performance.now() - t0) / 1000;
if (profileDir) {
  const { profile } = await session.post('Profiler.stop');
  writeFileSync(join(profileDir, 'fit.cpuprofile'), JSON.stringify(profile));
}
console.log(JSON.stringify({
  models: modelsDist, date: new Date().toISOString(), machine: `${cpus().length}× ${cpus()[0]?.model ?? '?'}`, node: process.version, load: [+load0.toFixed(1), +loadavg()[0].toFixed(1)],
  intervals: sample.length, fitWallS: +wallS.toFixed(1), fitCpuS: +((cpu.user + cpu.system) / 1e6).toFixed(1),
  raplResidualRmsW: m.sources.rapl.residualRmsW, bmcRestResidualRmsW: m.sources.bmc_rest.residualRmsW, raplLoad: m.sources.rapl.load, raplStaticW: m.sources.rapl.staticW,
}));

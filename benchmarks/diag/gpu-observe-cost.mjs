// What GpuTimeSliceMethod.observe costs per GPU interval on the boundary path (the busyVarS2 weighting asks the
// learner for its fit and pooled signature on nearly every window) against the interval alignment (no busyVarS2)
// and no weighting, side by side in one process: the same synthetic intervals (three VMs time-slicing one GPU,
// 0.15 s lag, the models package's test generator), builds and configurations interleaved per rep, median per cell.
// Two flows: observe only, and attribute then observe (the collector's: attribute solves the fit, observe reuses it).
// --before DIR compares with another build of packages/models/dist (e.g. a copy made before a change; keep it under
// packages/models/ so that it resolves the workspace packages).
// Run: node_modules/.bin/tsc -b && node benchmarks/diag/gpu-observe-cost.mjs [--intervals 3000] [--reps 9] [--before packages/models/.bench-before]
import { performance } from 'node:perf_hooks';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const argOf = (name) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const N = Number(argOf('intervals') ?? 3000);
const REPS = Number(argOf('reps') ?? 9);
const root = new URL('../../', import.meta.url);
const load = async (dir) => import(pathToFileURL(resolve(dir, 'index.js')).href);
const builds = { now: await load(new URL('packages/models/dist/', root).pathname) };
if (argOf('before')) builds.before = await load(resolve(argOf('before')));
const { laggedSlicedIntervals } = await import(new URL('packages/models/dist/test-hosts.js', root).href);
const { ivs } = laggedSlicedIntervals(7, N, 0.15);
const ctx = { policy: 'equal', staticPower: { watts: { rapl: 0, gpu: 0, bmc_rest: 0 }, origin: 'configured' } };
const configs = { 'boundary (default)': {}, 'interval alignment': { utilAlignment: 'interval' }, 'no weighting': { sampleWeighting: false } };
const cells = [];
for (const b of Object.keys(builds)) for (const c of Object.keys(configs)) for (const flow of ['observe', 'attribute+observe']) cells.push({ b, c, flow, us: [] });
for (let rep = 0; rep < REPS + 1; rep++) {
  for (const cell of cells) {
    const m = new builds[cell.b].GpuTimeSliceMethod({ minWindows: 60, ...configs[cell.c] });
    const withAttr = cell.flow !== 'observe';
    const t0 = performance.now();
    for (const iv of ivs) {
      if (withAttr) m.attribute(iv, ctx);
      m.observe(iv);
    }
    if (rep > 0) cell.us.push(((performance.now() - t0) * 1000) / ivs.length); // rep 0 warms the JIT
  }
}
const med = (xs) => {
  const v = [...xs].sort((a, b) => a - b);
  return (v[(v.length - 1) >> 1] + v[v.length >> 1]) / 2;
};
console.log(`GpuTimeSliceMethod, ${N} intervals (3 VMs on one time-sliced GPU), ${REPS} reps interleaved; µs per interval, median [min, max]`);
console.log('| build | configuration | flow | µs per interval |\n|---|---|---|---:|');
for (const x of cells) console.log(`| ${x.b} | ${x.c} | ${x.flow} | ${med(x.us).toFixed(2)} [${Math.min(...x.us).toFixed(2)}, ${Math.max(...x.us).toFixed(2)}] |`);

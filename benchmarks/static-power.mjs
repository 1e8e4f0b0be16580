#!/usr/bin/env node
// The static-power learner's cost per host-interval (issue 15), at a full window, side by side in one run:
// - the direct fit it replaced (the design matrix of the whole window rebuilt and solved at every interval);
// - one estimate from the running sums (rapl-gram.ts): what every interval cost with `refreshEvery: 1`;
// - what the collector does per interval — observe it, then take the host's estimate — with `refreshEvery: 1`
//   and with the default (10: the estimate recomputed after every 10th interval, static-power-learner.ts).
//
//   [ATTRIBUTION_DIST=...] node benchmarks/static-power.mjs [--vms 50] [--window 900] [--reps 5] [--intervals 2048]
//
// One simulated host: VMs with varying load, RAPL power from a known static 100 W plus per-VM watts per
// core. Prints a JSON line and a markdown table: ms per host interval (median of --reps), µs per VM-sample
// (one host interval carries --vms VM-samples), and the intercepts (they must agree).
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
// ATTRIBUTION_DIST=<path to another build's packages/attribution/dist/index.js>: measure that build (e.g. a
// worktree of the code before a change) with this script
const { StaticPowerLearner, ridgeIntercept } = process.env.ATTRIBUTION_DIST ? await import(process.env.ATTRIBUTION_DIST) : await import('@wattsplit/attribution');

const opt = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const VMS = opt('vms', 50);
const WINDOW = opt('window', 900);
const REPS = opt('reps', 5);
const INTERVALS = opt('intervals', 2048); // two periods of the sums' rebuild (REBUILD_EVERY), so it counts at its share
let seed = 7;
const rnd = () => (seed = (seed * 16807) % 2147483647) / 2147483647;

const learner = new StaticPowerLearner({ fallback: { rapl: 0, gpu: 0, bmc_rest: 0 }, window: WINDOW, refreshEvery: 1 });
const uuids = Array.from({ length: VMS }, (_, k) => `vm-${String(k).padStart(4, '0')}`);
const wpc = uuids.map(() => 2 + 8 * rnd());
const recs = []; // what the learner keeps per interval, for the direct fit
/** One host interval with seq s (random loads), and its record for the direct fit. */
function interval(s) {
  const cores = uuids.map(() => 2 * rnd());
  const overhead = 0.2 + 0.5 * rnd();
  const busy = cores.reduce((a, b) => a + b, overhead);
  const u = busy / 128;
  const rapl = 100 + (1 + 0.5 * u) * cores.reduce((a, c, k) => a + c * wpc[k], 3 * overhead) + (rnd() - 0.5) * 2;
  const iv = {
    hostId: 'h', hardwareClass: 'bench', seq: s, prevSeq: s - 1, t0UnixNs: (s - 1) * 1e9, t1UnixNs: s * 1e9, durationS: 1,
    measured: { rapl, gpu: 0, bmc_rest: 60 + 0.1 * rapl }, raplZones: {}, gpus: [],
    hostCpu: { busySeconds: busy, idleSeconds: 128 - busy, onlineCpus: 128, avgFreqMhz: 0 },
    vms: uuids.map((uuid, k) => ({ uuid, name: uuid, tenant: 't', vcpus: 4, memoryBytes: 1, cpuSeconds: cores[k], vcpuSeconds: [], memoryUsedBytes: 0, blockReadBytes: 0, blockWriteBytes: 0, netRxBytes: 0, netTxBytes: 0, gpus: [], presence: 1, state: 'running' })),
    anomalies: [],
  };
  return { iv, rec: { cores: new Map(uuids.map((k, i) => [k, cores[i]])), overheadCores: overhead, busyFrac: u, y: rapl } };
}
const warm = [];
for (let s = 1; s <= WINDOW; s++) {
  const { iv, rec } = interval(s);
  warm.push(iv);
  learner.observe(iv);
  recs.push(rec);
}
const more = Array.from({ length: INTERVALS }, (_, i) => interval(WINDOW + 1 + i).iv);
/** A learner with a full window (the same records as `learner`), refreshing every `every` intervals. */
function fullLearner(every) {
  const l = new StaticPowerLearner({ fallback: { rapl: 0, gpu: 0, bmc_rest: 0 }, window: WINDOW, refreshEvery: every });
  for (const iv of warm) l.observe(iv);
  return l;
}
/** The collector's per-interval work: observe the interval, take the host's estimate (ms per interval). */
function perInterval(every) {
  const l = fullLearner(every);
  const t0 = performance.now();
  let e;
  for (const iv of more) {
    l.observe(iv);
    e = l.estimate('h');
  }
  return { ms: (performance.now() - t0) / more.length, v: e };
}

/** The fit as StaticPowerLearner made it before the running sums: the window's design matrix, every interval. */
function direct() {
  const seen = new Map();
  for (const r of recs) for (const k of r.cores.keys()) seen.set(k, (seen.get(k) ?? 0) + 1);
  const cols = [...seen].filter(([, n]) => n >= 0.1 * recs.length).map(([k]) => k);
  const colIdx = new Map(cols.map((k, i) => [k, i]));
  const w = cols.length + 2;
  const X = recs.map((r) => {
    const row = new Array(2 * w).fill(0);
    for (const [k, c] of r.cores) row[colIdx.get(k) ?? cols.length] += c;
    row[cols.length + 1] = r.overheadCores;
    for (let j = 0; j < w; j++) row[w + j] = row[j] * r.busyFrac;
    return row;
  });
  return ridgeIntercept(X, recs.map((r) => r.y));
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const time = (f, n) => {
  const t0 = performance.now();
  let v;
  for (let i = 0; i < n; i++) v = f();
  return { ms: (performance.now() - t0) / n, v };
};
const load0 = loadavg()[0];
const sums = [];
const fits = [];
const every1 = [];
const every10 = [];
let est;
let fit;
let est10;
// the learner's private compute: an estimate from its records as they are, what refreshEvery 1 ran per interval
// (a build before 2026-12-06 has no compute: its estimate() computed at every call)
const computeNow = typeof learner.compute === 'function' ? () => learner.compute(learner.records.get('h')) : () => learner.estimate('h');
for (let r = 0; r < REPS; r++) {
  const a = time(computeNow, 20);
  const b = time(direct, 3);
  sums.push(a.ms);
  fits.push(b.ms);
  est = a.v;
  fit = b.v;
  every1.push(perInterval(1).ms);
  const p10 = perInterval(10);
  every10.push(p10.ms);
  est10 = p10.v;
}
const out = {
  bench: 'static-power', vms: VMS, window: WINDOW, reps: REPS, intervals: INTERVALS,
  estimate_ms: median(sums), direct_fit_ms: median(fits), ratio: median(fits) / median(sums),
  estimate_us_per_vm_sample: (1000 * median(sums)) / VMS, direct_us_per_vm_sample: (1000 * median(fits)) / VMS,
  per_interval_refresh1_ms: median(every1), per_interval_refresh10_ms: median(every10),
  per_interval_refresh1_us_per_vm_sample: (1000 * median(every1)) / VMS, per_interval_refresh10_us_per_vm_sample: (1000 * median(every10)) / VMS,
  refresh_ratio: median(every10) / median(every1),
  rapl_static_w: est.watts.rapl, direct_intercept_w: fit, origin: est.origin, rapl_static_w_refresh10_end: est10.watts.rapl,
  loadavg_1m_start_end: [load0, loadavg()[0]], machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`, node: process.version, date: new Date().toISOString(),
};
console.log(JSON.stringify(out));
console.log(`\n| what | ms per host-interval | µs per VM-sample |\n|---|---|---|`);
console.log(`| direct fit of the window (before) | ${out.direct_fit_ms.toFixed(2)} | ${out.direct_us_per_vm_sample.toFixed(1)} |`);
console.log(`| one estimate from the running sums | ${out.estimate_ms.toFixed(2)} | ${out.estimate_us_per_vm_sample.toFixed(1)} |`);
console.log(`| per interval: observe + estimate, refreshEvery 1 | ${out.per_interval_refresh1_ms.toFixed(3)} | ${out.per_interval_refresh1_us_per_vm_sample.toFixed(2)} |`);
console.log(`| per interval: observe + estimate, refreshEvery 10 (default) | ${out.per_interval_refresh10_ms.toFixed(3)} | ${out.per_interval_refresh10_us_per_vm_sample.toFixed(2)} |`);
console.log(`\n${VMS} VMs, window ${WINDOW}, median of ${REPS} (${INTERVALS} intervals per rep for the per-interval rows); direct / running sums ${out.ratio.toFixed(1)}×; refreshEvery 10 / 1 per interval ${out.refresh_ratio.toFixed(2)}×; RAPL static ${out.rapl_static_w.toFixed(3)} W (direct intercept ${fit.toFixed(3)} W, true 100); load average ${load0.toFixed(1)} → ${loadavg()[0].toFixed(1)}; ${out.machine}; node ${process.version}; ${out.date}`);

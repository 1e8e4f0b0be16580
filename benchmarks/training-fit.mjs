#!/usr/bin/env node
// The fit alone: trainAdditiveModel (packages/models) on the host-day of benchmarks/training.mjs (synthHost
// seed 5, one 50-VM host, 1 Hz), evenly sampled to the 17 470 intervals a collector's training fits (its read
// takes 20 000 by hash, the trainer's selection keeps ~17 470), in this thread; CPU and wall seconds and the
// model's residuals (to check that a speed-up left the model as it was). --profile DIR writes a V8 CPU
// profile of the fit only (not of generating the history) to DIR/fit.cpuprofile. --models-dist DIR loads
// packages/models from another build inside packages/models (say a copy with one file from an older commit)
// for a before/after on the same machine; alternate the runs.
//
// A hardware class of many hosts: --hosts H trains one class of H hosts × --vms VMs (host k: synthHost seed
// 5 + k, hostId h<k>, its VMs h<k>-vm-<i>), the same number of intervals in all (--seconds of history split
// evenly among the hosts, interleaved in time, then sampled to 17 470 as above: what the collector reads of
// a class, whatever its size). --hosts 1 is the host-day above. --model-out FILE writes the trained model's
// JSON there (per-VM coefficients, residuals) for a comparison.
//
// Several runs side by side: a comma-separated list in --hosts or --models-dist (say
// `--hosts 1,10,50 --models-dist packages/models/.cache/before,packages/models/dist`) runs each combination
// in a fresh child process, one after another (for each class size, the builds in the order given), each
// under --timeout seconds (default 600; a list gives each build its own; a run that does not finish is reported as such), and prints a table
// (CPU-s, wall, load average before and after each run) and, per class size, how far each build's model is
// from the first build's: the largest relative difference of the per-VM W per core and of the residuals.
//
//   node benchmarks/training-fit.mjs [--seconds 86400] [--hosts 1] [--vms 50] [--profile DIR]
//        [--models-dist packages/models/dist] [--model-out FILE] [--timeout 600] [--json]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const imp = (p) => import(pathToFileURL(join(root, p)).href);
const argv = process.argv.slice(2);
const opt = (k, d) => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : d);
const dists = opt('--models-dist', 'packages/models/dist').split(',');
const hostsList = opt('--hosts', '1').split(',').map(Number);
for (const h of hostsList) if (!(Number.isInteger(h) && h >= 1)) throw new Error(`--hosts: ${h} is not a positive integer`);
const seconds = Number(opt('--seconds', 86_400));
const vms = Number(opt('--vms', 50));
const profileDir = opt('--profile', '');
const modelOut = opt('--model-out', '');
const timeouts = opt('--timeout', '600').split(',').map(Number);
const timeoutOf = (i) => timeouts[Math.min(i, timeouts.length - 1)];
const machine = `${cpus().length}× ${cpus()[0]?.model ?? '?'}`;

if (dists.length > 1 || hostsList.length > 1) await sideBySide();
else await fitOnce(dists[0], hostsList[0]);

/** The class's intervals: one host (the host-day, as before) or H hosts with their own VMs, interleaved in time. */
function classIntervals(synthHost, hosts) {
  const hardwareClass = `synth-${vms}`;
  if (hosts === 1) return synthHost({ seed: 5, vms, seconds, hardwareClass }).intervals;
  const all = [];
  for (let k = 0; k < hosts; k++) {
    const hostId = `h${k + 1}`;
    for (const iv of synthHost({ seed: 5 + k, vms, seconds: Math.round(seconds / hosts), hardwareClass }).intervals) {
      iv.hostId = hostId;
      for (const v of iv.vms) v.uuid = v.name = `${hostId}-${v.uuid}`;
      all.push(iv);
    }
  }
  return all.sort((a, b) => a.t0UnixNs - b.t0UnixNs);
}

async function fitOnce(modelsDist, hosts) {
  const { synthHost } = await imp(`${modelsDist}/test-hosts.js`);
  const { trainAdditiveModel } = await imp(`${modelsDist}/index.js`);
  const intervals = classIntervals(synthHost, hosts);
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
  const m = await trainAdditiveModel(sample, { hardwareClass: `synth-${vms}`, version: 1 });
  const cpu = process.cpuUsage(cpu0);
  const wallS = (performance.now() - t0) / 1000;
  if (profileDir) {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(join(profileDir, 'fit.cpuprofile'), JSON.stringify(profile));
  }
  if (modelOut) writeFileSync(modelOut, JSON.stringify(m));
  console.log(JSON.stringify({
    models: modelsDist, hosts, vms, date: new Date().toISOString(), machine, node: process.version, load: [+load0.toFixed(1), +loadavg()[0].toFixed(1)],
    intervals: sample.length, fitWallS: +wallS.toFixed(1), fitCpuS: +((cpu.user + cpu.system) / 1e6).toFixed(1),
    raplResidualRmsW: m.sources.rapl.residualRmsW, bmcRestResidualRmsW: m.sources.bmc_rest.residualRmsW, raplLoad: m.sources.rapl.load, raplStaticW: m.sources.rapl.staticW,
  }));
}

/** Largest relative difference between two models' per-VM coefficients and residuals (b against a). */
function modelDiff(a, b) {
  const rel = (x, y) => Math.abs(x - y) / Math.max(Math.abs(x), Math.abs(y), 1e-12);
  let vm = 0;
  let vmCount = 0;
  const own = (m) => m.sources.rapl.vmCoreW ?? {};
  for (const [id, w] of Object.entries(own(a))) {
    const w2 = own(b)[id];
    vm = Math.max(vm, w2 === undefined ? Infinity : rel(w, w2));
    vmCount++;
  }
  let bmcVm = 0;
  for (const [id, w] of Object.entries(a.sources.bmc_rest.vm ?? {})) bmcVm = Math.max(bmcVm, Math.abs(w - (b.sources.bmc_rest.vm?.[id] ?? Infinity)));
  const residual = Math.max(rel(a.sources.rapl.residualRmsW, b.sources.rapl.residualRmsW), rel(a.sources.bmc_rest.residualRmsW, b.sources.bmc_rest.residualRmsW));
  return { vms: vmCount, raplVmCoreWRel: vm, bmcVmLogAbs: bmcVm, residualRel: residual, raplLoad: [a.sources.rapl.load, b.sources.rapl.load] };
}

function child(modelsDist, hosts, out, timeoutS) {
  const args = [fileURLToPath(import.meta.url), '--models-dist', modelsDist, '--hosts', String(hosts), '--vms', String(vms), '--seconds', String(seconds), '--model-out', out];
  return new Promise((resolve) => {
    const p = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    p.stdout.on('data', (d) => (stdout += d));
    const t0 = performance.now();
    const load0 = loadavg()[0];
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutS * 1000);
    p.on('exit', (code, signal) => {
      clearTimeout(timer);
      const wallS = (performance.now() - t0) / 1000;
      const line = stdout.trim().split('\n').pop() ?? '';
      let r;
      try {
        r = JSON.parse(line);
      } catch {
        r = undefined;
      }
      resolve({ modelsDist, hosts, timeoutS, ok: code === 0 && r !== undefined, signal, processWallS: +wallS.toFixed(1), load: [+load0.toFixed(1), +loadavg()[0].toFixed(1)], ...(r ?? {}), out });
    });
  });
}

async function sideBySide() {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-training-fit-'));
  const runs = [];
  try {
    for (const hosts of hostsList) {
      const here = [];
      for (const [i, d] of dists.entries()) {
        process.stderr.write(`training-fit: ${hosts} host(s) × ${vms} VMs, ${d}\n`);
        const r = await child(d, hosts, join(dir, `h${hosts}-${i}.json`), timeoutOf(i));
        process.stderr.write(`training-fit: ${JSON.stringify(r)}\n`);
        here.push(r);
      }
      const first = here[0];
      for (const r of here) {
        if (r !== first && r.ok && first?.ok) r.diff = modelDiff(JSON.parse(readFileSync(first.out, 'utf8')), JSON.parse(readFileSync(r.out, 'utf8')));
        runs.push(r);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  if (argv.includes('--json')) {
    console.log(JSON.stringify({ date: new Date().toISOString(), machine, node: process.version, seconds, vms, runs: runs.map((r) => ({ ...r, out: undefined })) }));
    return;
  }
  console.log(`# trainAdditiveModel, one class of H hosts × ${vms} VMs, ${Math.min(17_470, seconds)} intervals sampled; ${new Date().toISOString()}, ${machine}, Node ${process.version}, timeout ${timeouts.join(' / ')} s per run (per build)\n`);
  console.log('| hosts × VMs | build | fit wall s | fit CPU s | load avg (1 min) before → after | RAPL residual W | bmc_rest residual W | model vs the first build (per-VM W/core max rel. diff; residual rel. diff) |');
  console.log('|---|---|---:|---:|---|---:|---:|---|');
  for (const r of runs) {
    const d = r.diff ? `${r.diff.raplVmCoreWRel.toExponential(1)} over ${r.diff.vms} VMs; ${r.diff.residualRel.toExponential(1)}` : '';
    if (!r.ok) console.log(`| ${r.hosts} × ${vms} | ${r.modelsDist} | > ${r.processWallS} (${r.signal ? `killed at the ${r.timeoutS} s timeout` : 'failed'}) | | ${r.load.join(' → ')} | | | |`);
    else console.log(`| ${r.hosts} × ${vms} | ${r.modelsDist} | ${r.fitWallS} | ${r.fitCpuS} | ${r.load.join(' → ')} | ${r.raplResidualRmsW.toPrecision(5)} | ${r.bmcRestResidualRmsW.toPrecision(5)} | ${d} |`);
  }
}

// Two figures of docs/accuracy-gpu.md ("The collector path at the replay's level"), rerunnable:
// 1. How much busy time each alignment of the agent's 1 s frames misplaces on the H100 development trace, phase 0,
//    τ = 0.15 s (1.5 reads) for all three: per interval, |U − U_reads| in busy-seconds, where U_reads is the busy time
//    from every read's gpu_util shifted by 1.5 reads (nvmlTraceWindows, the replay's per-read alignment) and U is
//    the interval alignment ((1 − τ/dt)·m_i + τ/dt·m_{i+1}) or the boundary alignment (boundaryAlignedWindow) of
//    the frame's mean m_i and closing reads p_i (scoring/nvmlTraceHostIntervals). Max and mean over intervals.
// 2. A stronger busy-time weighting: the collector path (runCollectorPath of benchmarks/accuracy-gpu.mjs, phase 0,
//    default options) with every window's busyVarS2 multiplied by k before the learner sees it (k = 1 is the
//    default), headline worst big tenant and light tenant.
// Run: node_modules/.bin/tsc -b && node benchmarks/diag/gpu-busy-alignment.mjs [--trace ../shared/data/gpu/h100-mix-dev.jsonl]
import { existsSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { runCollectorPath, summarise } from '../accuracy-gpu.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const imp = (p) => import(pathToFileURL(join(root, p)).href);
const models = await imp('packages/models/dist/index.js');
const scoring = await imp('packages/models/dist/scoring.js');
const liveWire = await imp('packages/wire/dist/index.js');
const argv = process.argv.slice(2);
const tracePath = argv.includes('--trace') ? argv[argv.indexOf('--trace') + 1] : join(root, '../shared/data/gpu/h100-mix-dev.jsonl');
if (!existsSync(tracePath)) throw new Error(`no trace at ${tracePath} (--trace file.jsonl)`);
const text = readFileSync(tracePath, 'utf8');
const trace = liveWire.parseNvmlTrace(text, tracePath);
console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, Node ${process.version}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}; date: ${new Date().toISOString()}; command: node benchmarks/diag/gpu-busy-alignment.mjs ${argv.join(' ')}\n`);

// 1. misplaced busy time
{
  const TAU = 0.15;
  const ivs = scoring.nvmlTraceHostIntervals(trace, 1, 'd');
  const R = models.nvmlTraceWindows(trace, 1.05, [], TAU / 0.1);
  const n = Math.min(ivs.length, R.length);
  const err = { interval: [], boundary: [] };
  for (let i = 1; i + 1 < n; i++) {
    const iv = ivs[i];
    if (Math.abs(iv.t0UnixNs / 1e9 - R[i].t0) > 1e-6 || Math.abs(iv.t1UnixNs / 1e9 - R[i].t1) > 1e-6) throw new Error(`interval ${i} and the replay's window ${i} cover different times`);
    const g = iv.gpus[0];
    const dt = iv.durationS;
    const m = g.gpuUtilMeanPct / 100;
    const next = ivs[i + 1].gpus[0].gpuUtilMeanPct / 100;
    let reads = 0;
    for (const a of Object.values(R[i].activity)) reads += a;
    const p = { seq: i, t1UnixNs: 0, busy: m, point: g.gpuUtilPct / 100, prevPoint: ivs[i - 1].gpus[0].gpuUtilPct / 100, utilSamples: g.gpuUtilSamples, shares: { x: 1 }, window: { durationS: dt, joules: g.joules, activity: { x: m * dt }, contexts: {} } };
    const U = (w) => w.activity.x ?? 0;
    err.interval.push(Math.abs(U(models.alignedWindow(p, next, TAU)) - reads));
    err.boundary.push(Math.abs(U(models.boundaryAlignedWindow(p, next, TAU)) - reads));
  }
  console.log(`### Busy time misplaced against the per-read alignment, phase 0, τ = ${TAU} s, ${err.interval.length} intervals (busy-seconds)\n`);
  console.log('| alignment | max | mean | intervals off by > 0.01 s |\n|---|---:|---:|---:|');
  for (const [k, xs] of Object.entries(err)) console.log(`| ${k} | ${Math.max(...xs).toFixed(3)} | ${(xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(4)} | ${xs.filter((x) => x > 0.01).length} |`);
  console.log('');
}

// 2. the busy-time variance scaled by k
{
  const fullRef = scoring.gpuTraceReference(text);
  const proto = models.GpuSignatureLearner.prototype;
  const observe = proto.observe;
  console.log('### The collector path with busyVarS2 × k (phase 0, default options otherwise)\n');
  console.log('| k | headline worst ≥ 5 % | light |\n|---:|---:|---:|');
  const pct = (x) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)} %`;
  for (const k of [1, 3, 10, 100]) {
    proto.observe = function (w) {
      return observe.call(this, w.busyVarS2 !== undefined ? { ...w, busyVarS2: k * w.busyVarS2 } : w);
    };
    const s = summarise(runCollectorPath(trace, fullRef).rows);
    console.log(`| ${k} | ${(100 * s.worstModel).toFixed(1)} % | ${pct(s.light.model)} |`);
  }
  proto.observe = observe;
}

#!/usr/bin/env node
// The collector's per-VM work in memory, before and after a change, side by side (issue 15):
//   decode     decodeFrame with protobufjs's own uint64/int64 readers (a LongBits object per field) vs the
//              installed ones (packages/wire/src/varint64-reader.ts)
//   align      IntervalAligner alone (frames → host intervals), the same two builds as `attribute`
//   attribute  align + cpu_share + checkConservation with another build of @wattsplit/attribution
//              (BEFORE_DIST=<a copy of packages/attribution/dist from before the change, placed under
//              packages/attribution/ so that its imports resolve, e.g. packages/attribution/node_modules/.before>) vs this one
//
//   learner    StaticPowerLearner.estimate then observe of every aligned interval, as the collector runs them
//              (window 900, minSamples 60: the RAPL regression solves from a host's 60th interval on, so
//              SECONDS well above 60 — e.g. 600 — to see it), with the BEFORE_DIST build vs this one; both must
//              give the same estimates
//
//   metrics    CollectorMetrics.recordResult of every cpu_share result (a fresh metrics object per repetition)
//              with another build's collector-metrics.js (BEFORE_METRICS=<its path>, e.g. a before tree's
//              packages/collector/dist/collector-metrics.js) vs this one; both must give the same series text
//
//   node benchmarks/collector-hot-path.mjs                         (decode only)
//   BEFORE_DIST=packages/attribution/node_modules/.before node benchmarks/collector-hot-path.mjs
//   env: HOSTS (8) VMS (50) SECONDS (60) REPS (7) SCHEDULE (shipped | every-round)
//
// Frames come from real Agents over the simulator, as in benchmarks/pipeline.mjs. Each repetition runs both
// variants of each part, alternating which goes first; CPU time (user + system, GC included) per
// VM-sample, medians and after/before ratios. The attribute part first checks that both builds give the
// same intervals and results (JSON of every HostInterval and AttributionResult): a change here must not
// move a joule.
import { createRequire } from 'node:module';
import { loadavg, cpus } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { encodeFrame, decodeFrame, silentLogger } from '@wattsplit/wire';
import { Agent, SHIPPED_SCHEDULE } from '@wattsplit/agent';
import * as after from '@wattsplit/attribution';
import { createFleet } from '@wattsplit/simulator';

const HOSTS = Number(process.env.HOSTS ?? 8);
const VMS = Number(process.env.VMS ?? 50);
const SECONDS = Number(process.env.SECONDS ?? 60);
const REPS = Number(process.env.REPS ?? 7);

/**
 * The agents' counter schedule: the installed agent's (SHIPPED_SCHEDULE: memory, block I/O and per-vCPU counters
 * every 5 s, so the aligner's slow-counter paths run as they do on a real fleet); SCHEDULE=every-round: every
 * counter every round (the frames every run of this benchmark used before 2026-12-06T06:00Z).
 */
const SCHEDULE = process.env.SCHEDULE ?? 'shipped';
if (SCHEDULE !== 'shipped' && SCHEDULE !== 'every-round') throw new Error(`SCHEDULE must be shipped or every-round, not ${JSON.stringify(SCHEDULE)}`);
const schedule = SCHEDULE === 'shipped' ? SHIPPED_SCHEDULE : {};
const fleet = createFleet({ hosts: HOSTS, vmsPerHost: VMS, seed: 7, events: 'none', noise: true, startUnixMs: Date.now() - SECONDS * 1000 });
const agents = fleet.hosts.map((h) => new Agent({ hostId: h.hostId, hardwareClass: h.hardwareClass, fs: h.fs, domains: h.domains, gpus: h.gpus, perf: h.perf, bmc: h.bmc, processOwners: h.processOwners, clock: h.clock, logger: silentLogger, bootId: 'bench', ...schedule }));
const bytes = [];
for (let t = 0; t <= SECONDS; t++) {
  if (t > 0) fleet.step(1);
  for (const a of agents) bytes.push(Buffer.from(encodeFrame(await a.sampleOnce())));
}
const frames = bytes.map((b) => decodeFrame(b));
const vmSamples = frames.reduce((n, f) => n + f.vms.length, 0);

const cpuUs = (f) => {
  const c0 = process.cpuUsage();
  f();
  const c = process.cpuUsage(c0);
  return c.user + c.system;
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// ---- decode
const protobuf = createRequire(new URL('../packages/wire/package.json', import.meta.url))('protobufjs/minimal.js');
const proto = protobuf.Reader.prototype;
const installed = { uint64: proto.uint64, int64: proto.int64 };
const decodeVariants = { before: () => protobuf.Reader._configure(protobuf.BufferReader), after: () => Object.assign(proto, installed) };
const decodeOnce = () => {
  let n = 0;
  for (let k = 0; k < 5; k++) for (const b of bytes) n += decodeFrame(b).vms.length;
  return n;
};

// ---- align + attribute
const ctx = { policy: 'reserved', staticPower: { watts: { rapl: 100, gpu: 70, bmc_rest: 60 }, origin: 'configured' } };
function alignAll(lib) {
  const al = new lib.IntervalAligner();
  const out = [];
  for (const f of frames) {
    const r = al.push(f);
    if (r.interval) out.push(r.interval);
  }
  return out;
}
function attributeAll(lib) {
  const al = new lib.IntervalAligner();
  const m = new lib.CpuShareMethod();
  const out = [];
  for (const f of frames) {
    const r = al.push(f);
    if (!r.interval) continue;
    const res = m.attribute(r.interval, ctx);
    if (lib.checkConservation(res).length > 0) throw new Error(`conservation broken at ${res.hostId} ${res.seq}`);
    out.push(res);
  }
  return out;
}
const before = process.env.BEFORE_DIST ? await import(pathToFileURL(`${resolve(process.env.BEFORE_DIST)}/index.js`).href) : undefined;
const sameJson = (x, y) => isDeepStrictEqual(JSON.parse(JSON.stringify(x)), JSON.parse(JSON.stringify(y)));
if (before && !sameJson(alignAll(before), alignAll(after))) throw new Error('the two builds align differently');
if (before && !sameJson(attributeAll(before), attributeAll(after))) throw new Error('the two builds attribute differently');

// ---- learner (on the intervals of this build's aligner, the same as the other's: checked above)
const learnerIntervals = before ? alignAll(after) : [];
function learnAll(lib) {
  const l = new lib.StaticPowerLearner({ fallback: ctx.staticPower.watts });
  const out = [];
  for (const iv of learnerIntervals) {
    out.push(l.estimate(iv.hostId));
    l.observe(iv);
  }
  return out;
}
if (before && !sameJson(learnAll(before), learnAll(after))) throw new Error('the two builds learn different static power');

// ---- metrics
const afterMetrics = process.env.BEFORE_METRICS ? await import('@wattsplit/collector') : undefined;
const beforeMetrics = process.env.BEFORE_METRICS ? await import(pathToFileURL(resolve(process.env.BEFORE_METRICS)).href) : undefined;
const metricResults = afterMetrics ? attributeAll(after) : [];
const recordAll = (lib) => {
  const m = new lib.CollectorMetrics();
  for (const r of metricResults) m.recordResult(r);
  return m;
};
// the energy series of both (render's lag gauge depends on the clock: left out)
const energyText = (m) => m.render(0).split('\n').filter((l) => l.startsWith('wattsplit_vm_energy') || l.startsWith('wattsplit_host_share')).join('\n');
if (afterMetrics && energyText(recordAll(beforeMetrics)) !== energyText(recordAll(afterMetrics))) throw new Error('the two metrics builds count differently');

const load0 = loadavg()[0];
const res = { decode: { before: [], after: [] }, align: { before: [], after: [] }, attribute: { before: [], after: [] }, learner: { before: [], after: [] }, metrics: { before: [], after: [] } };
for (let i = 0; i < REPS; i++) {
  const order = i % 2 === 0 ? ['before', 'after'] : ['after', 'before'];
  for (const v of order) {
    decodeVariants[v]();
    res.decode[v].push(cpuUs(decodeOnce) / (5 * vmSamples));
  }
  decodeVariants.after();
  if (before) for (const v of order) res.align[v].push(cpuUs(() => alignAll(v === 'before' ? before : after)) / vmSamples);
  if (before) for (const v of order) res.attribute[v].push(cpuUs(() => attributeAll(v === 'before' ? before : after)) / vmSamples);
  if (before) for (const v of order) res.learner[v].push(cpuUs(() => learnAll(v === 'before' ? before : after)) / vmSamples);
  if (afterMetrics) for (const v of order) res.metrics[v].push(cpuUs(() => recordAll(v === 'before' ? beforeMetrics : afterMetrics)) / vmSamples);
}

const rows = [];
for (const part of ['decode', 'align', 'attribute', 'learner', 'metrics']) {
  if (res[part].before.length === 0) continue;
  const b = median(res[part].before);
  const a = median(res[part].after);
  rows.push({ part, before_us_per_vm_sample: b, after_us_per_vm_sample: a, ratio: a / b, before_runs: res[part].before, after_runs: res[part].after });
}
const out = { bench: 'collector-hot-path', hosts: HOSTS, vms_per_host: VMS, seconds: SECONDS, vm_samples: vmSamples, agent_schedule: SCHEDULE, reps: REPS, results_equal: before ? true : undefined, rows, loadavg_1m_start_end: [load0, loadavg()[0]], machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`, node: process.version, date: new Date().toISOString() };
console.log(JSON.stringify(out));
console.log(`\n| part | before CPU µs / VM-sample | after CPU µs / VM-sample | after / before |\n|---|---|---|---|`);
for (const r of rows) console.log(`| ${r.part} | ${r.before_us_per_vm_sample.toFixed(3)} | ${r.after_us_per_vm_sample.toFixed(3)} | ${r.ratio.toFixed(2)}× |`);
console.log(`\n${HOSTS} hosts × ${VMS} VMs × ${SECONDS + 1} frames (${SCHEDULE} counter schedule), median of ${REPS} interleaved; load average ${load0.toFixed(1)} → ${loadavg()[0].toFixed(1)}; ${out.machine}; node ${process.version}; ${out.date}`);

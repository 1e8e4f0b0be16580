#!/usr/bin/env node
// Embedded pipeline throughput (issue 2): frames and VM-samples per second, and peak memory.
//
//   node benchmarks/pipeline.mjs            (after `npm run build`; env HOSTS VMS SECONDS REPEAT STAGES NOISE DISK SCHEDULE)
//
// Frames are produced first by the real Agent over simulated hosts (so parsing of sysfs/cgroup text is
// not part of the pipeline numbers; it is in benchmarks/agent-round.mjs). Then, REPEAT times each, in
// one process, interleaved so machine noise hits every stage alike:
//   A. align + attribute   IntervalAligner + CpuShareMethod, in memory (the pure math)
//   B. collector           InProcessBus → NestJS collector (align, attribute, conservation) → chDB store
//   C. full                gRPC client → gateway → InProcessBus → collector → chDB store
// PROFILE=<file> writes a main-thread CPU profile of the stage runs alone; HEAP_PROFILE=<file> a sampling heap profile
// of the same runs (every allocation sampled, kept or collected), which benchmarks/heap-sites.mjs sums by function.
// ENGINE_STATS=1: the chDB engine's own counters (system.events) over each stage B/C run, per VM-sample: inserts and
// rows, bytes written as parts, parts, background merges, the insert-time merge pass, the queries' CPU (issue 15).
// Every stage B/C run also reports its other threads' CPU by name, node's start-up threads (among them V8's GC and
// compiler workers) one by one, and the main thread's GC pauses by kind (count, µs per VM-sample, longest pause). V8 flags
// (e.g. --max-semi-space-size) go to the node running this script: the collector runs in this process.
// STATIC_REFRESH_EVERY=N: the collector's static-power refresh cadence (staticPower.refreshEvery; see below).
// STORE_IN_FLIGHT=N: the collector's store writes in flight at once (storeWrites.maxInFlight, default 1).
// ATTRIBUTION_READER=1: a consumer group in this process reads the attribution topic (a streaming consumer of the
// embedded bus: it counts the messages and their bytes), so the collector encodes and publishes every batch. Without
// one it publishes none (Bus.hasReaders, since 2026-12-07; before, every batch was encoded and kept by the bus).
// Prints a JSON line and a markdown table with medians and the ratios between stages.
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { createRequire } from 'node:module';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { performance, PerformanceObserver, constants as perfConstants } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { InProcessBus, TOPICS, silentLogger, encodeFrame, decodeFrame, FrameBatch } from '@wattsplit/wire';
import { Agent, GrpcIngestClient, SHIPPED_SCHEDULE } from '@wattsplit/agent';
import { IntervalAligner, CpuShareMethod } from '@wattsplit/attribution';
import { createFleet } from '@wattsplit/simulator';
import { startGateway } from '@wattsplit/gateway';
import { startEmbeddedCollector } from '@wattsplit/collector';

const HOSTS = Number(process.env.HOSTS ?? 8);
const VMS = Number(process.env.VMS ?? 50);
const SECONDS = Number(process.env.SECONDS ?? 120);
const REPEAT = Number(process.env.REPEAT ?? 3);
/** Which stages to run (default all three: A,B,C); e.g. STAGES=B to profile the collector alone. */
const STAGES = new Set((process.env.STAGES ?? 'A,B,C').split(',').map((x) => x.trim().toUpperCase()));
// HEAP_PROFILE puts the sampled bytes per VM-sample, which holds only when the sampled window runs one stage
// over the frames once per repetition: stage A's runs and AB's extra B runs would be counted in the bytes and
// not in the VM-samples.
if (process.env.HEAP_PROFILE && !((STAGES.size === 1 && (STAGES.has('B') || STAGES.has('C'))) && !process.env.AB)) {
  console.error(`HEAP_PROFILE needs STAGES=B or STAGES=C alone and no AB (got STAGES=${[...STAGES].join(',')}${process.env.AB ? ` AB=${process.env.AB}` : ''}): its bytes are put per VM-sample of one stage run per repetition`);
  process.exit(2);
}

// ---- frames from real agents over the simulator
/** NOISE=1: the simulator's measurement noise on (for DISK: noise-free counters compress better than real ones). */
const NOISE = process.env.NOISE === '1';
/** DISK=1: after the runs, bytes on disk per stored VM-sample by table (system.parts), as written and after OPTIMIZE … FINAL. */
const DISK = process.env.DISK === '1';
/**
 * The agents' counter schedule: the installed agent's (SHIPPED_SCHEDULE: memory, block I/O and per-vCPU counters
 * every 5 s, so the aligner's slow-counter paths run as they do on a real fleet); SCHEDULE=every-round: every
 * counter every round (the frames every run of this benchmark used before 2026-12-06T06:00Z).
 */
const SCHEDULE = process.env.SCHEDULE ?? 'shipped';
if (SCHEDULE !== 'shipped' && SCHEDULE !== 'every-round') throw new Error(`SCHEDULE must be shipped or every-round, not ${JSON.stringify(SCHEDULE)}`);
const schedule = SCHEDULE === 'shipped' ? SHIPPED_SCHEDULE : {};
const fleet = createFleet({ hosts: HOSTS, vmsPerHost: VMS, seed: 7, events: 'none', noise: NOISE, startUnixMs: Date.now() - SECONDS * 1000 });
const agents = fleet.hosts.map((h) => new Agent({ hostId: h.hostId, hardwareClass: h.hardwareClass, fs: h.fs, domains: h.domains, gpus: h.gpus, perf: h.perf, bmc: h.bmc, processOwners: h.processOwners, clock: h.clock, logger: silentLogger, bootId: 'bench', ...schedule }));
const frames = []; // encoded, in time order across hosts
const genT0 = performance.now();
for (let t = 0; t <= SECONDS; t++) {
  if (t > 0) fleet.step(1);
  for (const a of agents) frames.push(encodeFrame(await a.sampleOnce()));
}
const genS = (performance.now() - genT0) / 1000;
const vmSamples = frames.length * VMS;

// Every run gets its own host ids (the store deduplicates by host+seq; runs must not collide).
let runNo = 0;
function renamed(run) {
  return frames.map((b) => {
    const f = decodeFrame(b);
    f.hostId = `r${run}-${f.hostId}`;
    return f;
  });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * The process's threads when this module runs, before the collector starts its chDB worker thread: besides the main
 * thread, node's own, all named "node": V8's platform workers (`--v8-pool-size`, default 4: parallel scavenge and
 * mark, concurrent marking and sweeping, concurrent TurboFan), node's delayed-task and signal threads, and libuv's
 * pool (the ES module loader reads files through it). Their CPU is reported apart, per thread, as
 * `node (start-up, tid +k)` with k the tid less the pid (other processes' tids may fall between, so k varies from run
 * to run). In stage B only V8's four workers showed CPU (`perf record`: GC and TurboFan symbols; issue 15, tenth pass).
 */
const startTids = (() => {
  try {
    return new Set(readdirSync('/proc/self/task').map(Number));
  } catch {
    return new Set();
  }
})();
/**
 * CPU seconds of this process's threads (Linux /proc/self/task/<tid>/stat, utime + stime at 100 Hz): the
 * main thread (the collector's event loop) apart from all others (the chDB worker, the engine's threads,
 * libuv, GC helpers). Unlike wall time these do not grow with other jobs on a shared box, so they give
 * the cost per VM-sample; on a quiet 2-core box the rate is bounded by max(main, all / 2).
 */
function threadCpu() {
  let main = 0;
  let other = 0;
  const byName = {};
  const tick = 100;
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      let f;
      try {
        f = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      } catch {
        continue; // the thread ended meanwhile
      }
      const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
      const s = (Number(rest[11]) + Number(rest[12])) / tick;
      if (Number(tid) === process.pid) main += s;
      else {
        other += s;
        // Thread names (comm) with digits folded, e.g. the engine's "QueryPipelineEx"; node's own threads are all
        // "node": those from start-up by tid, the later ones (the chDB worker thread, libuv's pool) together.
        const comm = f.slice(f.indexOf('(') + 1, f.lastIndexOf(')'));
        const name = comm === 'node' && startTids.has(Number(tid)) ? `node (start-up, tid +${Number(tid) - process.pid})` : comm.replace(/[0-9]+/g, '#');
        byName[name] = (byName[name] ?? 0) + s;
      }
    }
  } catch {
    return undefined; // not Linux
  }
  return { main, other, byName };
}
const cpuSince = (a) => {
  const b = threadCpu();
  if (!a || !b) return undefined;
  const byName = {};
  for (const [k, v] of Object.entries(b.byName)) {
    const d = v - (a.byName[k] ?? 0);
    if (d > 0) byName[k] = d;
  }
  return { main: b.main - a.main, other: Math.max(0, b.other - a.other), byName };
};

/**
 * The main thread's GC pauses (PerformanceObserver 'gc' entries: count and wall ms by kind, summed), read before and
 * after each stage B/C run like the threads' CPU. The helpers' share of a collection (parallel scavenge and mark,
 * concurrent marking and sweeping) is not in these pauses; it is in the start-up threads' CPU.
 */
const GC_KINDS = { [perfConstants.NODE_PERFORMANCE_GC_MINOR]: 'scavenge', [perfConstants.NODE_PERFORMANCE_GC_MAJOR]: 'mark_compact', [perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental_mark', [perfConstants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak_callbacks' };
const gcTotals = {};
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const k = GC_KINDS[e.detail?.kind] ?? `kind_${e.detail?.kind}`;
    const t = (gcTotals[k] ??= { n: 0, ms: 0, pausesMs: [] });
    t.n++;
    t.ms += e.duration;
    t.pausesMs.push(e.duration);
  }
}).observe({ entryTypes: ['gc'] });
const gcSnapshot = () => Object.fromEntries(Object.entries(gcTotals).map(([k, v]) => [k, { n: v.n, ms: v.ms }]));
/** GC pauses since a snapshot: count per run, main-thread µs per VM-sample and the longest pause in ms, by kind. */
const gcSince = async (g0) => {
  await nextTurn(); // let the observer's buffered entries arrive
  const out = {};
  for (const [k, v] of Object.entries(gcTotals)) {
    const n = v.n - (g0[k]?.n ?? 0);
    if (n > 0) out[k] = { n, us_per_vm_sample: Number(((1000 * (v.ms - (g0[k]?.ms ?? 0))) / vmSamples).toFixed(2)), max_ms: Number(Math.max(...v.pausesMs.slice(-n)).toFixed(2)) };
  }
  return out;
};

async function stageA() {
  const fs = renamed(runNo++);
  const al = new IntervalAligner();
  const m = new CpuShareMethod();
  const ctx = { policy: 'reserved', staticPower: { watts: { rapl: 100, gpu: 70, bmc_rest: 60 }, origin: 'configured' } };
  const t0 = performance.now();
  let n = 0;
  for (const f of fs) {
    const r = al.push(f);
    if (r.interval) {
      m.attribute(r.interval, ctx);
      n++;
    }
  }
  return { s: (performance.now() - t0) / 1000, intervals: n };
}

const dir = mkdtempSync(join(tmpdir(), 'wattsplit-pipeline-bench-'));
const bus = new InProcessBus({ logger: silentLogger, lingerMs: 100 });
/**
 * STATIC_REFRESH_EVERY=N: the collector's static-power learner recomputes a host's estimate every N intervals (its
 * config `staticPower.refreshEvery`; default 10 since 2026-12-06; 1 = after every interval, as before).
 */
const refreshEvery = process.env.STATIC_REFRESH_EVERY === undefined ? undefined : Number(process.env.STATIC_REFRESH_EVERY);
const storeInFlight = process.env.STORE_IN_FLIGHT === undefined ? undefined : Number(process.env.STORE_IN_FLIGHT);
const storeWriteOptions = storeInFlight === undefined ? {} : { maxInFlight: storeInFlight };
const collector = await startEmbeddedCollector({
  dataDir: join(dir, 'db'),
  bus,
  logger: silentLogger,
  ...(refreshEvery === undefined ? {} : { staticPower: { refreshEvery } }),
  ...(Object.keys(storeWriteOptions).length > 0 ? { storeWrites: storeWriteOptions } : {}),
});
const gateway = await startGateway({ producer: bus.producer(), logger: silentLogger });
const attributionRead = { reader: process.env.ATTRIBUTION_READER === '1', messages: 0, bytes: 0 };
if (attributionRead.reader) {
  await bus.subscribe({ topic: TOPICS.attribution, groupId: 'bench-attribution-reader', handler: async (ms) => {
    attributionRead.messages += ms.length;
    for (const m of ms) attributionRead.bytes += m.value.byteLength;
  } });
}

/**
 * ENGINE_STATS=1: system.events (the engine's process-wide counters; chDB runs in this process) read before and
 * after each stage B/C run. The two reads are queries of their own (a few ms, not in the stage's wall time).
 */
const ENGINE_STATS = process.env.ENGINE_STATS === '1';
async function engineEvents() {
  if (!ENGINE_STATS) return undefined;
  const r = await collector.store.query('SELECT event, value FROM system.events');
  return Object.fromEntries(r.rows.map((x) => [x.event, Number(x.value)]));
}
/** The counters' change over a run, put per VM-sample (µs, rows, bytes) or as counts per run. */
function engineSince(e0, e1) {
  if (!e0 || !e1) return undefined;
  const d = (k) => (e1[k] ?? 0) - (e0[k] ?? 0);
  const per = (x, digits = 2) => Number((x / vmSamples).toFixed(digits));
  const inserts = d('InsertQuery');
  return {
    insert_queries: inserts,
    select_queries: d('SelectQuery'),
    inserted_rows_per_vm_sample: per(d('InsertedRows'), 3),
    rows_per_insert: inserts ? Math.round(d('InsertedRows') / inserts) : 0,
    parts_written: d('InsertedCompactParts') + d('InsertedWideParts'),
    part_bytes_per_vm_sample: { uncompressed: per(d('MergeTreeDataWriterUncompressedBytes'), 1), compressed: per(d('MergeTreeDataWriterCompressedBytes'), 1) },
    // the ReplacingMergeTree/SummingMergeTree pass over each inserted block (optimize_on_insert)
    insert_time_merge_us_per_vm_sample: per(d('MergeTreeDataWriterMergingBlocksMicroseconds')),
    insert_sort_us_per_vm_sample: per(d('MergeTreeDataWriterSortingBlocksMicroseconds')),
    // CPU of the queries' threads (inserts with their views, and the collector's few reads), as the engine counts it
    query_cpu_us_per_vm_sample: per(d('UserTimeMicroseconds') + d('SystemTimeMicroseconds')),
    insert_wall_us_per_vm_sample: per(d('InsertQueryTimeMicroseconds')),
    merges: d('Merge'),
    merged_rows_per_vm_sample: per(d('MergedRows'), 3),
    merged_uncompressed_bytes_per_vm_sample: per(d('MergedUncompressedBytes'), 1),
    // wall time of the merge steps (they run on the engine's background threads; CPU is in the MergeMutate threads)
    merge_wall_us_per_vm_sample: per(d('MergeMutateBackgroundExecutorTaskExecuteStepMicroseconds')),
  };
}

async function stageB() {
  const msgs = preparedB[bNo++];
  const before = collector.pipeline.stats.intervalsStored;
  const e0 = await engineEvents();
  const g0 = gcSnapshot();
  const c0 = threadCpu();
  const t0 = performance.now();
  for (let i = 0; i < msgs.length; i += 512) await bus.producer().send(TOPICS.telemetry, msgs.slice(i, i + 512));
  await bus.idle();
  const s = (performance.now() - t0) / 1000;
  const cpu = cpuSince(c0);
  return { s, intervals: collector.pipeline.stats.intervalsStored - before, cpu, gc: await gcSince(g0), engine: engineSince(e0, await engineEvents()) };
}

async function stageC() {
  const fs = renamed(runNo++);
  const byHost = new Map();
  for (const f of fs) {
    if (!byHost.has(f.hostId)) byHost.set(f.hostId, []);
    byHost.get(f.hostId).push(f);
  }
  const before = collector.pipeline.stats.intervalsStored;
  const e0 = await engineEvents();
  const g0 = gcSnapshot();
  const c0 = threadCpu();
  const t0 = performance.now();
  // One gRPC stream per host, batches of 64 frames, as the agents' SpoolingSender sends them.
  await Promise.all(
    [...byHost.values()].map(async (hostFrames) => {
      const client = new GrpcIngestClient({ address: gateway.address, tls: false, logger: silentLogger });
      let id = 0;
      for (let i = 0; i < hostFrames.length; i += 64) {
        const r = await client.send(FrameBatch.create({ batchId: ++id, frames: hostFrames.slice(i, i + 64) }));
        if (r.kind !== 'ok') throw new Error(`batch not acked: ${r.kind} ${r.error?.message}`);
      }
      await client.close();
    }),
  );
  await bus.idle();
  const s = (performance.now() - t0) / 1000;
  const cpu = cpuSince(c0);
  return { s, intervals: collector.pipeline.stats.intervalsStored - before, cpu, gc: await gcSince(g0), engine: engineSince(e0, await engineEvents()) };
}

const runs = { A: [], B: [], C: [], B_before: [], B_after: [] };
/**
 * AB=<change>: each repetition also runs stage B with the code before and after one change, side by side in
 * this process (the shipped code is "after"; "before" puts the replaced code back for that run):
 *   decode   protobufjs's own uint64/int64 readers (a LongBits per field) vs varint64-reader.ts (issue 15)
 */
const AB = (() => {
  switch (process.env.AB ?? '') {
    case '':
      return undefined;
    case 'decode': {
      const protobuf = createRequire(new URL('../packages/wire/package.json', import.meta.url))('protobufjs/minimal.js');
      const proto = protobuf.Reader.prototype;
      const installed = { uint64: proto.uint64, int64: proto.int64 };
      return { before: () => protobuf.Reader._configure(protobuf.BufferReader), after: () => Object.assign(proto, installed) };
    }
    default:
      throw new Error(`AB=${process.env.AB}: unknown change (decode)`);
  }
})();
/**
 * Stage B's messages for every run, renamed and encoded before the first run: encoding them (≈ 4.5 KB of garbage
 * per VM-sample, from a heap profile on 2026-12-06) inside each run put the benchmark's own allocations in the
 * sampled heap profile and their collection partly in the measured main-thread CPU.
 */
const preparedB = Array.from({ length: STAGES.has('B') ? REPEAT * (AB ? 3 : 1) : 0 }, (_, k) => renamed(`b${k}`).map((f) => ({ key: f.hostId, value: encodeFrame(f) })));
let bNo = 0;
const loadStart = loadavg()[0];
// PROFILE=<file.cpuprofile>: a V8 CPU profile of the main thread over the stage runs only (not the frame
// generation nor the start-up, which `node --cpu-prof` would include), after the first repetition.
const profiler = process.env.PROFILE ? new Session() : undefined;
const post = (m, p) => new Promise((res, rej) => profiler.post(m, p ?? {}, (e, r) => (e ? rej(e) : res(r))));
if (profiler) {
  profiler.connect();
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: 500 });
}
const heapProfiler = process.env.HEAP_PROFILE ? new Session() : undefined;
const heapPost = (m, p) => new Promise((res, rej) => heapProfiler.post(m, p ?? {}, (e, r) => (e ? rej(e) : res(r))));
if (heapProfiler) {
  heapProfiler.connect();
  await heapPost('HeapProfiler.enable');
}
const writes0 = { ...collector.pipeline.writer.stats };
for (let i = 0; i < REPEAT; i++) {
  // the profile leaves out the first repetition (JIT warm-up, the engine's first inserts) when there are more
  if (profiler && i === Math.min(1, REPEAT - 1)) await post('Profiler.start');
  // allocations sampled every 4 KiB on average, those collected by minor and major GC kept in the profile
  if (heapProfiler && i === Math.min(1, REPEAT - 1)) await heapPost('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  if (STAGES.has('A')) runs.A.push(await stageA());
  if (STAGES.has('B')) runs.B.push(await stageB());
  if (AB) {
    // both variants of the change under test, in alternating order (the first run of a pair is not favoured)
    for (const v of i % 2 === 0 ? ['before', 'after'] : ['after', 'before']) {
      AB[v]();
      runs[`B_${v}`].push(await stageB());
    }
    AB.after();
  }
  if (STAGES.has('C')) runs.C.push(await stageC());
}
const ws = collector.pipeline.writer.stats;
/** Store writes (group commits) over all stage runs, and intervals per write: each write is one insert per table. */
const storeWrites = { writes: ws.writes - writes0.writes, intervals_per_write: (ws.items - writes0.items) / Math.max(1, ws.writes - writes0.writes) };
if (profiler) {
  const { profile } = await post('Profiler.stop');
  writeFileSync(process.env.PROFILE, JSON.stringify(profile));
  profiler.disconnect();
}
if (heapProfiler) {
  const { profile } = await heapPost('HeapProfiler.stopSampling');
  // the VM-samples the sampled runs carried (one stage, B or C, once per repetition: checked at the start), so
  // that the sums can be put per VM-sample
  writeFileSync(process.env.HEAP_PROFILE, JSON.stringify({ ...profile, vmSamples: vmSamples * (REPEAT - Math.min(1, REPEAT - 1)) }));
  heapProfiler.disconnect();
}
let disk;
if (DISK) {
  const stored = collector.pipeline.stats.intervalsStored * VMS;
  const parts = async () =>
    Object.fromEntries(
      (await collector.store.query(`SELECT table, count() AS parts, sum(rows) AS rows, sum(bytes_on_disk) AS bytes FROM system.parts WHERE active AND database = currentDatabase() GROUP BY table ORDER BY table`)).rows.map((r) => [
        r.table,
        { parts: Number(r.parts), rows: Number(r.rows), bytes_per_vm_sample: Number(r.bytes) / stored },
      ]),
    );
  const asWritten = await parts();
  for (const t of Object.keys(asWritten)) await collector.store.query(`OPTIMIZE TABLE ${t} FINAL`, 'CSV');
  const merged = await parts();
  const total = (x) => Object.values(x).reduce((a, b) => a + b.bytes_per_vm_sample, 0);
  disk = { vm_samples_stored: stored, noise: NOISE, as_written: asWritten, after_optimize_final: merged, total_bytes_per_vm_sample: { as_written: total(asWritten), after_optimize_final: total(merged) } };
}
await gateway.close();
await collector.close();
await bus.close();
rmSync(dir, { recursive: true, force: true });

const rss = process.resourceUsage().maxRSS / 1024; // MiB
const row = (k) => {
  if (runs[k].length === 0) return { median_s: Number.NaN, frames_per_s: Number.NaN, vm_samples_per_s: Number.NaN, intervals: 0 };
  const s = median(runs[k].map((r) => r.s));
  const cpus = runs[k].map((r) => r.cpu).filter(Boolean);
  const us = (x) => (1e6 * x) / vmSamples;
  const main = cpus.length ? median(cpus.map((c) => us(c.main))) : undefined;
  const other = cpus.length ? median(cpus.map((c) => us(c.other))) : undefined;
  const cpu =
    main !== undefined && other !== undefined
      ? // what a quiet 2-core box would sustain: the main thread on one core, all threads on two
        {
          main_us_per_vm_sample: main,
          other_threads_us_per_vm_sample: other,
          quiet_2core_vm_samples_per_s_bound: 1e6 / Math.max(main, (main + other) / 2),
          // the other threads by name (summed over the runs, then per VM-sample): which of them cost what
          other_threads_by_name_us_per_vm_sample: Object.fromEntries(
            Object.entries(cpus.reduce((acc, c) => { for (const [k, v] of Object.entries(c.byName)) acc[k] = (acc[k] ?? 0) + v; return acc; }, {}))
              .map(([k, v]) => [k, Math.round((10 * us(v)) / cpus.length) / 10])
              .filter(([, v]) => v > 0)
              .sort((x, y) => y[1] - x[1]),
          ),
        }
      : undefined;
  // every run in order: the first of a process pays for JIT warm-up and the engine's first inserts
  const perRun = runs[k].map((r) => ({ vm_samples_per_s: Math.round(vmSamples / r.s), ...(r.cpu ? { main_us: Math.round(10 * us(r.cpu.main)) / 10, other_us: Math.round(10 * us(r.cpu.other)) / 10, other_by_name_us: Object.fromEntries(Object.entries(r.cpu.byName).map(([k, v]) => [k, Math.round(10 * us(v)) / 10]).filter(([, v]) => v > 0)) } : {}), ...(r.gc ? { gc: r.gc } : {}), ...(r.engine ? { engine: r.engine } : {}) }));
  return { median_s: s, frames_per_s: frames.length / s, vm_samples_per_s: vmSamples / s, intervals: runs[k][0].intervals, ...(cpu ? { cpu } : {}), runs: perRun };
};
const A = row('A');
const B = row('B');
const C = row('C');
const abRows = AB ? { change: process.env.AB, before: row('B_before'), after: row('B_after') } : undefined;
const out = {
  bench: 'pipeline',
  hosts: HOSTS,
  vms_per_host: VMS,
  seconds: SECONDS,
  frames: frames.length,
  vm_samples: vmSamples,
  agent_schedule: SCHEDULE,
  repeat: REPEAT,
  agent_frame_generation_s: genS,
  align_attribute: A,
  collector_chdb: B,
  full_grpc: C,
  ratio_collector_vs_math: A.median_s / B.median_s,
  ratio_full_vs_collector: B.median_s / C.median_s,
  store_writes: storeWrites,
  attribution_reader: { ...attributionRead, retained_unread_messages: bus.lag(TOPICS.attribution, 'bench-attribution-reader') },
  ...(abRows ? { ab: abRows } : {}),
  peak_rss_mib: rss,
  ...(disk ? { disk } : {}),
  loadavg_1m_start_end: [loadStart, loadavg()[0]],
  machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`,
  node: process.version,
  date: new Date().toISOString(),
};
console.log(JSON.stringify(out));
const f = (x) => Math.round(x).toLocaleString('en-US');
console.log(`\n| stage | median s | frames/s | VM-samples/s | vs previous |\n|---|---|---|---|---|`);
console.log(`| align + cpu_share (in memory) | ${A.median_s.toFixed(3)} | ${f(A.frames_per_s)} | ${f(A.vm_samples_per_s)} | — |`);
console.log(`| bus → collector → chDB | ${B.median_s.toFixed(3)} | ${f(B.frames_per_s)} | ${f(B.vm_samples_per_s)} | ${(A.median_s / B.median_s).toFixed(3)}× |`);
console.log(`| gRPC → gateway → bus → collector → chDB | ${C.median_s.toFixed(3)} | ${f(C.frames_per_s)} | ${f(C.vm_samples_per_s)} | ${(B.median_s / C.median_s).toFixed(3)}× |`);
const cpuRow = (name, r) => (r.cpu ? `| ${name} | ${r.cpu.main_us_per_vm_sample.toFixed(1)} | ${r.cpu.other_threads_us_per_vm_sample.toFixed(1)} | ${f(r.cpu.quiet_2core_vm_samples_per_s_bound)} |` : '');
if (B.cpu || C.cpu) {
  console.log(`\n| stage | main thread CPU µs / VM-sample | other threads CPU µs / VM-sample | quiet 2-core bound VM-samples/s |\n|---|---|---|---|`);
  if (B.cpu) console.log(cpuRow('bus → collector → chDB', B));
  if (C.cpu) console.log(cpuRow('gRPC → gateway → bus → collector → chDB', C));
}
if (abRows) {
  const b = abRows.before;
  const a = abRows.after;
  const r = (x, y) => (x !== undefined && y !== undefined ? `${(x / y).toFixed(2)}×` : '—');
  console.log(`\n| AB=${abRows.change}: bus → collector → chDB | VM-samples/s (wall) | main thread CPU µs / VM-sample | other threads CPU µs / VM-sample | quiet 2-core bound VM-samples/s |\n|---|---|---|---|---|`);
  for (const [name, x] of [['before', b], ['after', a]]) console.log(`| ${name} | ${f(x.vm_samples_per_s)} | ${x.cpu?.main_us_per_vm_sample.toFixed(1)} | ${x.cpu?.other_threads_us_per_vm_sample.toFixed(1)} | ${f(x.cpu?.quiet_2core_vm_samples_per_s_bound ?? Number.NaN)} |`);
  console.log(`| after / before | ${r(a.vm_samples_per_s, b.vm_samples_per_s)} | ${r(a.cpu?.main_us_per_vm_sample, b.cpu?.main_us_per_vm_sample)} | ${r(a.cpu?.other_threads_us_per_vm_sample, b.cpu?.other_threads_us_per_vm_sample)} | ${r(a.cpu?.quiet_2core_vm_samples_per_s_bound, b.cpu?.quiet_2core_vm_samples_per_s_bound)} |`);
}
console.log(`\n${HOSTS} hosts × ${VMS} VMs × ${SECONDS + 1} frames each (${SCHEDULE} counter schedule), median of ${REPEAT}; peak RSS ${rss.toFixed(0)} MiB; load average ${loadStart.toFixed(1)} → ${loadavg()[0].toFixed(1)}; ${out.machine}; node ${process.version}; ${out.date}`);

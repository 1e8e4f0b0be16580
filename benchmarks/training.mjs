#!/usr/bin/env node
// Training through the collector's own path (ModelLifecycle.train: lease, read the class's history from
// the store, train, store the artefact, activate) on a host-day of 1 Hz history of a 50-VM host, and what
// training does to the collector's event loop (ingest runs there): event-loop delay while training in a
// worker thread (what the collector does: the worker reads the history through its own connection and
// trains) vs everything on the main thread, vs idle, in one run. Reports, per mode, the history read and
// the fit (both timed where they run) and the whole train().
//
//   node benchmarks/training.mjs [--seconds 86400] [--vms 50]
//        [--clickhouse http://127.0.0.1:8123 [--database NAME]]   the ClickHouse server instead of chDB
//        [--data-dir DIR]     keep the chDB data there (reused when it already holds the host-day)
//        [--modes worker,worker-nice0,main]
//
// Modes: `worker` trains as the collector does (a worker thread at nice 19, background history reads);
// `worker-nice0` the same with the worker at the collector's own priority (workerNice 0, as before the
// renice); `main` everything on the main thread (for comparison). The CPU of the main thread (where the
// collector's ingest runs) is read from /proc/self/task/<pid>/stat apart from the whole process's.
//
// With --data-dir or --database, a store that already holds the class's history is not loaded again
// (loading a host-day takes minutes); the database is kept.
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { readFileSync } from 'node:fs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const imp = (p) => import(pathToFileURL(join(root, p)).href);
const { ChdbStore, ClickHouseServerStore } = await imp('packages/store/dist/index.js');
const { ModelLifecycle } = await imp('packages/collector/dist/index.js');
const { synthHost } = await imp('packages/models/dist/test-hosts.js');
const { CpuShareMethod } = await imp('packages/attribution/dist/index.js');
const { silentLogger } = await imp('packages/wire/dist/index.js');

const argv = process.argv.slice(2);
const opt = (k, d) => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : d);
const seconds = Number(opt('--seconds', 86_400));
const vms = Number(opt('--vms', 50));
const chUrl = opt('--clickhouse', '');
const database = opt('--database', '');
const keepDir = opt('--data-dir', '');
const modes = opt('--modes', 'worker,main').split(',');
for (const m of modes) if (!['worker', 'worker-nice0', 'main'].includes(m)) throw new Error(`--modes: ${m} is not worker, worker-nice0 or main`);
/** CPU seconds of this process's main thread (utime + stime, fields 14-15 of /proc/self/task/<pid>/stat), or NaN. */
const mainThreadCpuS = () => {
  try {
    const st = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ is 100 on Linux
  } catch {
    return NaN;
  }
};
const hardwareClass = `synth-${vms}`;
const log = (s) => process.stdout.write(`${s}\n`);
const say = (s) => process.stderr.write(`training-bench: ${s}\n`);

const dir = keepDir || mkdtempSync(join(tmpdir(), 'wattsplit-bench-training-'));
const store = chUrl
  ? new ClickHouseServerStore({ url: chUrl, database: database || `bench_training_${process.pid}`, requestTimeoutMs: 300_000, logger: silentLogger })
  : new ChdbStore({ dataDir: keepDir || join(dir, 'db'), logger: silentLogger });
const load = [];
try {
  await store.init();
  const have = Number((await store.query(`SELECT count() AS n FROM host_samples WHERE hardware_class = '${hardwareClass}'`)).rows[0]?.n ?? 0);
  let loadS = 0;
  if (have < seconds) {
    const t0 = performance.now();
    const { intervals } = synthHost({ seed: 5, vms, seconds, hardwareClass });
    // End the day now (TTL keeps the rows; the lifecycle reads the last lookbackS).
    const shift = (Math.floor(Date.now() / 1000) - seconds) * 1e9;
    for (const iv of intervals) {
      iv.t0UnixNs += shift;
      iv.t1UnixNs += shift;
    }
    // Stored as the collector stores them: with their cpu_share attribution (history reads complete intervals only).
    const cpu = new CpuShareMethod();
    const ctx = { policy: 'reserved', staticPower: { watts: { rapl: 100, gpu: 0, bmc_rest: 30 }, origin: 'configured' } };
    for (let i = 0; i < intervals.length; i += 2000) {
      const r = await store.writeIntervals(intervals.slice(i, i + 2000).map((interval) => ({ interval, results: [cpu.attribute(interval, ctx)] })));
      if (r.kind !== 'ok') throw new Error(`write failed: ${r.error.message}`);
      if (i % 20_000 === 0) say(`loaded ${i} of ${intervals.length} intervals`);
    }
    loadS = (performance.now() - t0) / 1000;
  } else {
    say(`reusing ${have} stored intervals of ${hardwareClass}`);
  }
  // The history ends now: read everything since the first stored interval.
  const first = Number((await store.query(`SELECT min(t1_ns) AS t FROM host_samples WHERE hardware_class = '${hardwareClass}'`)).rows[0]?.t ?? 0);
  const lookbackS = Math.ceil((Date.now() * 1e6 - first) / 1e9) + 60;

  const run = async (mode) => {
    const inWorker = mode !== 'main';
    const lc = new ModelLifecycle({ store, holder: `bench-${mode}`, logger: silentLogger, training: { inWorker, leaseSettleMs: 0, lookbackS, workerNice: mode === 'worker-nice0' ? 0 : 19 } });
    const h = monitorEventLoopDelay({ resolution: 10 });
    load.push(loadavg()[0]);
    h.enable();
    const cpu0 = process.cpuUsage();
    const main0 = mainThreadCpuS();
    const out = await lc.train(hardwareClass, { reason: 'manual' });
    const cpu = process.cpuUsage(cpu0);
    const mainCpuS = mainThreadCpuS() - main0;
    h.disable();
    load.push(loadavg()[0]);
    if (!out.version) throw new Error(`not trained: ${out.skipped}`);
    return { ...out.timings, cpuS: (cpu.user + cpu.system) / 1e6, read: out.version.intervals, p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6, version: out.version.version, mainCpuS, priority: lc.lastWorkerPriority };
  };
  const idle = monitorEventLoopDelay({ resolution: 10 });
  idle.enable();
  await new Promise((r) => setTimeout(r, 3000));
  idle.disable();
  const results = [];
  const names = { worker: 'worker thread at nice 19 (the collector)', 'worker-nice0': 'worker thread at nice 0 (before the renice)', main: 'main thread (for comparison)' };
  for (const m of modes) {
    say(`training: ${names[m]}`);
    const r = await run(m);
    say(`${m}: ${JSON.stringify(r)}`);
    results.push([names[m], r]);
  }

  const backend = chUrl ? `ClickHouse server ${(await store.query('SELECT version() AS v')).rows[0]?.v}` : 'chDB';
  log(`# Training through ModelLifecycle.train (${backend}), ${new Date().toISOString()}, ${cpus().length}× ${cpus()[0]?.model ?? '?'}, Node ${process.version}`);
  log(`history: ${seconds} intervals (1 Hz, one ${vms}-VM host)${loadS ? `, loaded in ${loadS.toFixed(1)} s` : ' (already stored)'}; load average (1 min) during the runs ${load.map((l) => l.toFixed(1)).join(' → ')}\n`);
  log('| training | read history | train (fit) | whole train() | CPU s, all threads of this process (main thread) | event-loop delay p50 / p99 / max |');
  log('|---|---:|---:|---:|---:|---:|');
  log(`| idle (3 s, no training) | | | | | ${(idle.percentile(50) / 1e6).toFixed(1)} / ${(idle.percentile(99) / 1e6).toFixed(1)} / ${(idle.max / 1e6).toFixed(1)} ms |`);
  for (const [name, r] of results) {
    log(`| ${name} | ${r.read} intervals in ${r.readS.toFixed(1)} s | ${r.trainS.toFixed(1)} s | ${r.totalS.toFixed(1)} s | ${r.cpuS.toFixed(1)} (${r.mainCpuS.toFixed(1)}) | ${r.p50.toFixed(1)} / ${r.p99.toFixed(1)} / ${r.max.toFixed(0)} ms |`);
  }
  for (const [name, r] of results) if (r.priority) log(`\n${name}: worker priority ${JSON.stringify(r.priority)}`);
} finally {
  if (chUrl && !database) await store.t.command(`DROP DATABASE IF EXISTS bench_training_${process.pid}`).catch(() => undefined);
  await store.close();
  if (!keepDir) rmSync(dir, { recursive: true, force: true });
}

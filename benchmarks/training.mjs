#!/usr/bin/env node
// Training through the collector's own path (ModelLifecycle.train: lease, read the class's history from
// the store, train, store the artefact, activate), on a host-day of 1 Hz history of a 50-VM host in chDB,
// and what training does to the collector's event loop (ingest runs there): event-loop delay while
// training in a worker thread (what the collector does) vs on the main thread, vs idle, in one run.
//
//   node benchmarks/training.mjs [--seconds 86400] [--vms 50]
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const imp = (p) => import(pathToFileURL(join(root, p)).href);
const { ChdbStore } = await imp('packages/store/dist/index.js');
const { ModelLifecycle } = await imp('packages/collector/dist/index.js');
const { synthHost } = await imp('packages/models/dist/test-hosts.js');
const { CpuShareMethod } = await imp('packages/attribution/dist/index.js');
const { silentLogger } = await imp('packages/wire/dist/index.js');

const argv = process.argv.slice(2);
const arg = (k, d) => (argv.includes(k) ? Number(argv[argv.indexOf(k) + 1]) : d);
const seconds = arg('--seconds', 86_400);
const vms = arg('--vms', 50);
const log = (s) => process.stdout.write(`${s}\n`);

const dir = mkdtempSync(join(tmpdir(), 'wattsplit-bench-training-'));
const store = new ChdbStore({ dataDir: join(dir, 'db'), logger: silentLogger });
try {
  await store.init();
  const t0 = performance.now();
  const { intervals } = synthHost({ seed: 5, vms, seconds, hardwareClass: 'synth-50' });
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
  }
  const loadS = (performance.now() - t0) / 1000;

  const run = async (inWorker) => {
    const lc = new ModelLifecycle({ store, holder: `bench-${inWorker ? 'worker' : 'main'}`, logger: silentLogger, training: { inWorker, leaseSettleMs: 0, lookbackS: seconds + 60 } });
    const h = monitorEventLoopDelay({ resolution: 10 });
    h.enable();
    const tr = performance.now();
    const readStart = performance.now();
    const history = await store.readHistory({ hardwareClass: 'synth-50', sinceUnixNs: 0, limit: 20_000 });
    const readS = (performance.now() - readStart) / 1000;
    const out = await lc.train('synth-50', { reason: 'manual' });
    const totalS = (performance.now() - tr) / 1000;
    h.disable();
    if (!out.version) throw new Error(`not trained: ${out.skipped}`);
    return { readS, read: history.length, totalS, trainS: out.version.trainSeconds, p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6, version: out.version.version };
  };
  const idle = monitorEventLoopDelay({ resolution: 10 });
  idle.enable();
  await new Promise((r) => setTimeout(r, 3000));
  idle.disable();
  const worker = await run(true);
  const main = await run(false);

  log(`# Training through ModelLifecycle.train (chDB), ${new Date().toISOString()}, ${cpus().length}× ${cpus()[0]?.model ?? '?'}, Node ${process.version}`);
  log(`history: ${intervals.length} intervals (1 Hz, one ${vms}-VM host), loaded in ${loadS.toFixed(1)} s\n`);
  log('| training | read history | train (incl. worker start) | whole train() | event-loop delay p50 / p99 / max |');
  log('|---|---:|---:|---:|---:|');
  log(`| idle (3 s, no training) | | | | ${(idle.percentile(50) / 1e6).toFixed(1)} / ${(idle.percentile(99) / 1e6).toFixed(1)} / ${(idle.max / 1e6).toFixed(1)} ms |`);
  for (const [name, r] of [['worker thread (the collector)', worker], ['main thread (for comparison)', main]]) {
    log(`| ${name} | ${r.read} intervals in ${r.readS.toFixed(1)} s | ${r.trainS.toFixed(1)} s | ${r.totalS.toFixed(1)} s | ${r.p50.toFixed(1)} / ${r.p99.toFixed(1)} / ${r.max.toFixed(0)} ms |`);
  }
} finally {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}

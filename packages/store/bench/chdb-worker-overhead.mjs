#!/usr/bin/env node
// What running chDB in a worker thread costs and buys (packages/store/src/chdb-transport.ts).
//   node packages/store/bench/chdb-worker-overhead.mjs   (after tsc -b packages/store)
// Measures, on one data directory (one process can hold only one):
//   1. per-query round trip: Session.query on the main thread vs through the worker (SELECT 1);
//   2. writeInterval of a 10-VM interval with 2 methods (4 inserts) through the worker, alone and batched;
//   3. event-loop delay while a heavy query runs: worker vs main thread.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setInterval, clearInterval } from 'node:timers';
import { createRequire } from 'node:module';
import { ChdbStore } from '../dist/index.js';
import { sampleInterval, sampleResult, sampleVm } from '../dist/test-fixtures.js';

const N = Number(process.env.N ?? 2000);
const dir = mkdtempSync(join(tmpdir(), 'wattsplit-bench-'));
const HEAVY = 'SELECT sum(cityHash64(number)) FROM numbers(300000000)';
const out = [];
const row = (what, value) => { out.push([what, value]); console.log(`${what.padEnd(58)} ${value}`); };
const ms = (t0) => performance.now() - t0;

/** Longest gap between 1 ms timer ticks while `fn` runs: how long the event loop was blocked. */
async function loopDelayDuring(fn) {
  let last = performance.now();
  let maxGap = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
  }, 1);
  await new Promise((r) => setTimeout(r, 20));
  const t0 = performance.now();
  await fn();
  const took = ms(t0);
  await new Promise((r) => setTimeout(r, 20));
  clearInterval(tick);
  return { took, maxDelayMs: maxGap };
}

// ---- worker
const store = new ChdbStore({ dataDir: join(dir, 'db') });
await store.init();
for (let i = 0; i < 50; i++) await store.query('SELECT 1', 'CSV');
let t0 = performance.now();
for (let i = 0; i < N; i++) await store.query('SELECT 1', 'CSV');
const workerQ = ms(t0) / N;
row('worker: SELECT 1 round trip (ms)', workerQ.toFixed(3));

const NOW = Math.floor(Date.now() / 1000) * 1e9;
const W = Math.min(N, 500);
t0 = performance.now();
for (let s = 1; s <= W; s++) {
  const iv = sampleInterval('bench-host', s, NOW + s * 1e9);
  iv.vms = Array.from({ length: 10 }, (_, k) => sampleVm(`vm-${k}-uuid`, k % 2 ? 'acme' : 'globex', 0.1 * (k + 1)));
  const r = await store.writeInterval({ interval: iv, results: [sampleResult(iv), sampleResult(iv, 'additive_model')] });
  if (r.kind !== 'ok') throw new Error(JSON.stringify(r));
}
const perWrite = ms(t0) / W;
row('worker: writeInterval, 10 VMs, 2 methods (ms)', perWrite.toFixed(3));
row('worker: intervals/s one writer', (1000 / perWrite).toFixed(0));
const B = 50;
const batches = Math.max(2, Math.floor(W / B));
t0 = performance.now();
for (let b = 0; b < batches; b++) {
  const ws = [];
  for (let k = 1; k <= B; k++) {
    const seq = 100_000 + b * B + k;
    const iv = sampleInterval('bench-host', seq, NOW + seq * 1e9);
    iv.vms = Array.from({ length: 10 }, (_, j) => sampleVm(`vm-${j}-uuid`, j % 2 ? 'acme' : 'globex', 0.1 * (j + 1)));
    ws.push({ interval: iv, results: [sampleResult(iv), sampleResult(iv, 'additive_model')] });
  }
  const r = await store.writeIntervals(ws);
  if (r.kind !== 'ok') throw new Error(JSON.stringify(r));
}
const perBatched = ms(t0) / (batches * B);
row(`worker: writeIntervals, batches of ${B} (ms per interval)`, perBatched.toFixed(3));
row('worker: intervals/s batched', (1000 / perBatched).toFixed(0));
const wHeavy = await loopDelayDuring(() => store.query(HEAVY, 'CSV'));
row('worker: heavy query (ms) / longest event-loop stall (ms)', `${wHeavy.took.toFixed(0)} / ${wHeavy.maxDelayMs.toFixed(1)}`);
await store.close();

// ---- main thread, same directory
const { Session } = createRequire(import.meta.url)('chdb');
const s = new Session(join(dir, 'db'));
for (let i = 0; i < 50; i++) s.query('SELECT 1', 'CSV');
t0 = performance.now();
for (let i = 0; i < N; i++) s.query('SELECT 1', 'CSV');
const directQ = ms(t0) / N;
row('main thread: SELECT 1 (ms)', directQ.toFixed(3));
row('worker overhead per query (ms)', (workerQ - directQ).toFixed(3));
const mHeavy = await loopDelayDuring(async () => { s.query(HEAVY, 'CSV'); });
row('main thread: heavy query (ms) / longest event-loop stall (ms)', `${mHeavy.took.toFixed(0)} / ${mHeavy.maxDelayMs.toFixed(1)}`);
s.close();
rmSync(dir, { recursive: true, force: true });
console.log(`\n${cpus().length} CPUs (${cpus()[0]?.model}), node ${process.version}, ${new Date().toISOString()}`);

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpuShareMethod, type HostInterval } from '@wattsplit/attribution';
import { ChdbStore } from '@wattsplit/store';
import { WattsplitError, silentLogger } from '@wattsplit/wire';
import { ModelLifecycle } from './model-lifecycle.js';
import { TrainingGate } from './training-gate.js';
import { threadNice } from './thread-priority.js';

const dir = mkdtempSync(join(tmpdir(), 'wattsplit-lifecycle-'));
const store = new ChdbStore({ dataDir: join(dir, 'db'), logger: silentLogger });
after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Writes `seconds` 1 Hz intervals of a 6-VM host of class `hardwareClass` ending now, as the collector stores them. */
async function writeHistory(hostId: string, hardwareClass: string, seconds: number): Promise<void> {
  const start = (Math.floor(Date.now() / 1000) - seconds) * 1e9;
  const intervals: HostInterval[] = Array.from({ length: seconds }, (_, k) => {
    const cpuS = Array.from({ length: 6 }, (_, v) => ((k * (v + 3)) % 7) / 7 + 0.05 * v);
    const busy = cpuS.reduce((a, b) => a + b, 0);
    return {
      hostId, hardwareClass, seq: k + 1, prevSeq: k, t0UnixNs: start + k * 1e9, t1UnixNs: start + (k + 1) * 1e9, durationS: 1,
      measured: { rapl: 100 + 20 * busy, gpu: 0, bmc_rest: 30 + busy }, raplZones: { 'intel-rapl:0': 100 + 20 * busy }, gpus: [],
      hostCpu: { busySeconds: busy + 0.1, idleSeconds: 8 - busy, onlineCpus: 8, avgFreqMhz: 2400 },
      vms: cpuS.map((c, v) => ({
        uuid: `vm-${v}`, name: `vm-${v}`, tenant: 't', vcpus: 1, memoryBytes: 2 ** 30, cpuSeconds: c, vcpuSeconds: [c], memoryUsedBytes: 2 ** 29,
        blockReadBytes: 0, blockWriteBytes: 0, netRxBytes: 0, netTxBytes: 0, gpus: [], presence: 1, state: 'running' as const,
      })),
      anomalies: [],
    };
  });
  const cpu = new CpuShareMethod();
  const ctx = { policy: 'reserved' as const, staticPower: { watts: { rapl: 100, gpu: 0, bmc_rest: 30 }, origin: 'configured' as const } };
  assert.equal((await store.writeIntervals(intervals.map((interval) => ({ interval, results: [cpu.attribute(interval, ctx)] })))).kind, 'ok');
}

test('stop() ends a training running in its worker: train() rejects MODEL_TRAINING_FAILED at once and the lease is free', async () => {
  await store.init();
  const seconds = 600;
  await writeHistory('host-stop', 'synth-stop', seconds);
  const lc = new ModelLifecycle({ store, holder: 'test-stop', logger: silentLogger, training: { leaseSettleMs: 0, lookbackS: seconds + 60 } });
  const training = lc.train('synth-stop', { reason: 'manual' });
  // Once the lease is taken the job is on its way to (or in) the worker: stop it there.
  for (let i = 0; i < 200 && !(await lc.models.leaseHolder('train:synth-stop')); i++) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 200));
  const t0 = performance.now();
  await lc.stop();
  await assert.rejects(training, (e: unknown) => e instanceof WattsplitError && e.code === 'MODEL_TRAINING_FAILED');
  assert.ok(performance.now() - t0 < 5000, `stopped after ${Math.round(performance.now() - t0)} ms`);
  assert.equal(await lc.models.holdsLease('train:synth-stop', 'test-stop'), false, 'the lease was released');
  assert.deepEqual(await lc.models.versions('synth-stop'), []);
  // A stopped lifecycle starts no new job.
  await assert.rejects(lc.train('synth-stop', { reason: 'manual' }), /training stopped/);
});

test('the training worker runs at nice 19, only its own thread: the collector\'s threads keep their priority (read in /proc/<pid>/task/<tid>/stat while it trains)', async () => {
  await store.init();
  await writeHistory('host-nice', 'synth-nice', 600);
  const tasks = () => new Map(readdirSync(`/proc/${process.pid}/task`).map((t) => [Number(t), threadNice(process.pid, Number(t))]));
  const before = tasks();
  const lc = new ModelLifecycle({ store, holder: 'test-nice', logger: silentLogger, training: { leaseSettleMs: 0, lookbackS: 660 } });
  const seen = new Map<number, Set<number | undefined>>();
  const poll = setInterval(() => {
    // A thread that ended between the listing and the read has no stat (undefined): not a priority seen.
    for (const [tid, nice] of tasks()) if (nice !== undefined) (seen.get(tid) ?? seen.set(tid, new Set()).get(tid)!).add(nice);
  }, 5);
  const out = await lc.train('synth-nice', { reason: 'manual' });
  clearInterval(poll);
  assert.ok(out.version, `trained: ${out.skipped ?? ''}`);
  const p = lc.lastWorkerPriority;
  assert.ok(p?.kind === 'lowered', `worker priority: ${JSON.stringify(p)}`);
  assert.equal(p.nice, 19);
  assert.ok(!before.has(p.tid), 'the worker is a thread of its own, started for the job');
  assert.deepEqual([...(seen.get(p.tid) ?? [])].filter((n) => n !== 0), [19], `the worker thread ${p.tid} was seen at nice 19 (${[...(seen.get(p.tid) ?? [])].join(', ')})`);
  // The main thread (ingest's event loop) stayed at nice 0 throughout; every thread that was there before
  // has its nice value again after (on chDB a background read renices the engine's query threads while
  // they read for it, read-transport.ts, and the engine sets them back; chDB's MemoryWorker runs at -20).
  assert.deepEqual([...(seen.get(process.pid) ?? [])], [0], 'the main thread while training');
  for (const [tid, nice] of before) {
    const now = threadNice(process.pid, tid);
    assert.ok(now === nice || now === undefined, `thread ${tid} at nice ${now} after the training, ${nice} before`);
  }
  assert.equal(threadNice(process.pid, process.pid), 0, 'the main thread');
});

test('workerNice 0 leaves the worker at the collector\'s priority; a value outside -20..19 is refused', async () => {
  await store.init();
  const lc = new ModelLifecycle({ store, holder: 'test-nice-0', logger: silentLogger, training: { leaseSettleMs: 0, lookbackS: 660, workerNice: 0 } });
  const out = await lc.train('synth-nice', { reason: 'manual' });
  assert.ok(out.version);
  assert.deepEqual(lc.lastWorkerPriority, { kind: 'unchanged', why: 'nice 0 configured' });
  assert.throws(() => new ModelLifecycle({ store, holder: 'x', training: { workerNice: 20 } }), (e: unknown) => e instanceof WattsplitError && e.code === 'CONFIG_INVALID');
});

/** An ingest delay the test sets. */
const fakeIngest = () => {
  const s = { d: 0, delayS: () => s.d, idle: () => false };
  return s;
};

test('a training yields to ingest: it does not start while ingest is behind, resumes when it catches up, and keeps its lease through the pause', async () => {
  await store.init();
  await writeHistory('host-gate', 'synth-gate', 600);
  const ingest = fakeIngest();
  ingest.d = 30;
  const gate = new TrainingGate(ingest, { pauseAboveS: 2, resumeAfterS: 0.2, pollMs: 20 });
  // a lease of 3 s: without the renewal a 4 s pause would lose it and the result would be discarded
  const lc = new ModelLifecycle({ store, holder: 'test-gate', logger: silentLogger, gate, training: { leaseSettleMs: 0, lookbackS: 660, leaseTtlS: 3 } });
  let settled = false;
  const training = lc.train('synth-gate', { reason: 'manual' }).finally(() => (settled = true));
  for (let i = 0; i < 3000 && gate.pausedJobs === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(gate.pausedJobs, 1, 'the job is blocked at its first yield point');
  await new Promise((r) => setTimeout(r, 4000));
  assert.equal(settled, false, 'no training while ingest is behind');
  assert.deepEqual(await lc.models.versions('synth-gate'), []);
  ingest.d = 0.5;
  const out = await training;
  assert.ok(out.version, `trained after the pause: ${out.skipped ?? ''}`);
  assert.ok(out.timings && out.timings.pausedS >= 3.9, `paused ${out.timings?.pausedS} s`);
  assert.ok(out.timings.maxYieldGapS > 0);
  assert.ok((lc.lastJobYield?.points ?? 0) >= 8, `yield points passed: ${lc.lastJobYield?.points}`);
  assert.ok(gate.pausedSecondsTotal >= 3.9);
  assert.equal(gate.pausedJobs, 0);
  gate.close();
});

test('a training paused for ingest is bounded: after maxPauseS in total it runs on although ingest stays behind', async () => {
  await store.init();
  await writeHistory('host-gate-bound', 'synth-gate-bound', 600);
  const ingest = fakeIngest();
  ingest.d = 30;
  const gate = new TrainingGate(ingest, { pauseAboveS: 2, maxPauseS: 1, pollMs: 20 });
  const lc = new ModelLifecycle({ store, holder: 'test-gate-bound', logger: silentLogger, gate, training: { leaseSettleMs: 0, lookbackS: 660 } });
  const out = await lc.train('synth-gate-bound', { reason: 'manual' });
  assert.ok(out.version, `trained: ${out.skipped ?? ''}`);
  assert.equal(gate.overruns, 1);
  assert.ok(out.timings && out.timings.pausedS >= 0.9 && out.timings.pausedS < 3, `paused ${out.timings?.pausedS} s`);
  gate.close();
});

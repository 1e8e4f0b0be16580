import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { WattsplitError } from '@wattsplit/wire';
import { IngestDelay, type IngestSignal } from './ingest-delay.js';
import { GATE_DELAY_MS, GATE_PAUSE, GATE_WAITED_MS, GATE_WAITING, TrainingGate, throttleAfterQuery, yieldToIngest, type GateSlot } from './training-gate.js';

/** A delay the test sets, and a clock it moves. */
function fakes(): { signal: IngestSignal & { d: number; isIdle: boolean }; clock: { t: number; now: () => number } } {
  const signal = { d: 0, isIdle: false, delayS: () => signal.d, idle: () => signal.isIdle };
  const clock = { t: 0, now: () => clock.t };
  return { signal, clock };
}

const paused = (buf: SharedArrayBuffer) => Atomics.load(new Int32Array(buf), GATE_PAUSE) === 1;

/** Polls the gate; then each fake job is blocked at its yield point exactly while it is paused (as a worker that yields often). */
function poll(g: TrainingGate, ...slots: GateSlot[]): void {
  g.poll();
  for (const s of slots) Atomics.store(new Int32Array(s.buffer), GATE_WAITING, Atomics.load(new Int32Array(s.buffer), GATE_PAUSE));
}

test('IngestDelay: the age of the oldest frame in flight, then of the last finished batches for holdMs; 0 when idle', async () => {
  const clock = { t: 100_000 };
  const d = new IngestDelay(2000, () => clock.t);
  assert.equal(d.delayS(), 0);
  assert.equal(d.idle(), true);
  let finish!: () => void;
  const running = d.track([{ timestampMs: 97_000 }, { timestampMs: 96_500 }, { timestampMs: 0 }], () => new Promise<void>((r) => (finish = r)));
  assert.equal(d.callsInFlight, 1);
  assert.equal(d.delayS(), 3.5, 'the oldest usable timestamp, 0 left out');
  clock.t += 1000;
  assert.equal(d.delayS(), 4.5, 'grows while the call is stuck');
  finish();
  await running;
  assert.equal(d.callsInFlight, 0);
  assert.equal(d.delayS(), 4.5, 'the finished batch counts for holdMs');
  assert.equal(d.idle(), false);
  clock.t += 2001;
  assert.equal(d.delayS(), 0);
  assert.equal(d.idle(), true);
  // a handler that throws is counted the same and rethrows
  await assert.rejects(d.track([{ timestampMs: clock.t - 300 }], () => Promise.reject(new Error('store down'))), /store down/);
  assert.equal(d.delayS(), 0.3);
  // messages without timestamps are not tracked
  assert.equal(await d.track([{ timestampMs: NaN }], () => Promise.resolve(7)), 7);
});

test('the gate pauses jobs while ingest is behind and resumes them after resumeAfterS within the threshold; paused time is counted', () => {
  const { signal, clock } = fakes();
  const g = new TrainingGate(signal, { pauseAboveS: 2, resumeAfterS: 5, maxPauseS: 900, pollMs: 1000 }, undefined, clock.now);
  const slot = g.register('train');
  poll(g, slot);
  assert.equal(paused(slot.buffer), false, 'ingest on time: the job runs');
  signal.d = 2.5;
  clock.t += 1000;
  poll(g, slot);
  assert.equal(paused(slot.buffer), true, 'behind: paused');
  assert.equal(g.behind, true);
  assert.equal(g.pausedJobs, 1);
  assert.equal(Atomics.load(new Int32Array(slot.buffer), GATE_DELAY_MS), 2500);
  signal.d = 1.0;
  for (let s = 1; s <= 4; s++) {
    clock.t += 1000;
    poll(g, slot);
    assert.equal(paused(slot.buffer), true, `within the threshold for ${s - 1} s only: still paused`);
  }
  signal.d = 3; // behind again: the calm period starts over
  clock.t += 1000;
  poll(g, slot);
  signal.d = 1;
  for (let s = 0; s < 5; s++) {
    clock.t += 1000;
    poll(g, slot);
  }
  assert.equal(paused(slot.buffer), true, '5 s since the calm began, not yet 5 s in a row at the last check');
  clock.t += 1000;
  poll(g, slot);
  assert.equal(paused(slot.buffer), false, 'calm for 5 s: resumed');
  assert.equal(g.pauses, 1, 'one episode behind (the relapse did not resume in between)');
  const out = slot.done();
  assert.equal(out.overran, false);
  assert.equal(out.pausedS, 11, 'paused from the first poll behind to the resume');
  assert.equal(g.pausedSecondsTotal, 11);
  g.close();
});

test('the gate resumes at once when ingest is idle, and a job registered while ingest is behind starts paused', () => {
  const { signal, clock } = fakes();
  const g = new TrainingGate(signal, { pauseAboveS: 1, resumeAfterS: 60 }, undefined, clock.now);
  signal.d = 10;
  const slot = g.register('drift');
  assert.equal(paused(slot.buffer), true, 'does not start while behind');
  signal.d = 0;
  signal.isIdle = true;
  clock.t += 200;
  poll(g, slot);
  assert.equal(paused(slot.buffer), false, 'nothing in hand: nothing to protect');
  slot.done();
  g.close();
});

test('a job is paused at most maxPauseS in total, then runs on while ingest stays behind; pauseAboveS 0 never pauses; bad settings are refused', () => {
  const { signal, clock } = fakes();
  const g = new TrainingGate(signal, { pauseAboveS: 2, maxPauseS: 3 }, undefined, clock.now);
  signal.d = 100;
  const slot = g.register('train');
  poll(g, slot);
  for (let s = 0; s < 10; s++) {
    clock.t += 1000;
    poll(g, slot);
    assert.equal(paused(slot.buffer), s < 2, `after ${s + 1} s behind`);
  }
  assert.equal(g.overruns, 1);
  const later = g.register('train');
  assert.equal(paused(later.buffer), true, 'the bound is per job: a new job pauses again');
  assert.deepEqual(slot.done(), { pausedS: 3, overran: true });
  later.done();
  g.close();
  const off = new TrainingGate(signal, { pauseAboveS: 0 }, undefined, clock.now);
  assert.equal(off.enabled, false);
  const s2 = off.register('train');
  off.poll();
  assert.equal(paused(s2.buffer), false);
  assert.throws(() => new TrainingGate(signal, { pauseAboveS: -1 }), (e: unknown) => e instanceof WattsplitError && e.code === 'CONFIG_INVALID');
  assert.throws(() => new TrainingGate(signal, { maxPauseS: NaN }), (e: unknown) => e instanceof WattsplitError && e.code === 'CONFIG_INVALID');
});

test('a worker thread blocks at its yield point while the gate says pause and goes on when it is released (Atomics.wait on the shared flag)', async () => {
  const { signal } = fakes();
  const g = new TrainingGate(signal, { pauseAboveS: 1, resumeAfterS: 0, pollMs: 10 });
  signal.d = 5;
  const slot = g.register('train');
  assert.equal(paused(slot.buffer), true);
  // The worker counts in a loop with a yield point (this module's yieldToIngest) each round, as the trainer does between its stages.
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.gateModule).then(({ yieldToIngest }) => {
      const flags = new Int32Array(workerData.gate);
      const counter = new Int32Array(workerData.counter);
      for (let i = 0; i < 1e9 && Atomics.load(counter, 1) === 0; i++) {
        yieldToIngest(flags);
        Atomics.add(counter, 0, 1);
      }
      parentPort.postMessage('done');
    });`;
  const counter = new SharedArrayBuffer(8);
  const c = new Int32Array(counter);
  const w = new Worker(code, { eval: true, workerData: { gate: slot.buffer, counter, gateModule: new URL('./training-gate.js', import.meta.url).href } });
  try {
    for (let i = 0; i < 1000 && g.pausedJobs === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(g.pausedJobs, 1, 'the worker is blocked at its yield point');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(Atomics.load(c, 0), 0, 'no progress while paused');
    signal.d = 0;
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(Atomics.load(c, 0) > 0, 'released: it runs');
    signal.d = 5;
    await new Promise((r) => setTimeout(r, 100));
    const held = Atomics.load(c, 0);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(Atomics.load(c, 0), held, 'paused again');
    assert.ok(slot.done().pausedS >= 0.3);
  } finally {
    Atomics.store(c, 1, 1);
    g.close();
    await w.terminate();
  }
});

test('yieldToIngest returns at once when not paused and counts what it waited; the read throttle waits only while ingest is busy', async () => {
  assert.equal(yieldToIngest(undefined), 0);
  const flags = new Int32Array(new SharedArrayBuffer(5 * 4));
  assert.equal(yieldToIngest(flags), 0);
  Atomics.store(flags, GATE_PAUSE, 1);
  const t0 = performance.now();
  // released from another thread, as the collector's main thread releases a training worker
  const w = new Worker(`const { workerData } = require('node:worker_threads'); const f = new Int32Array(workerData); setTimeout(() => { Atomics.store(f, 0, 0); Atomics.notify(f, 0); }, 200);`, { eval: true, workerData: flags.buffer });
  const waited = yieldToIngest(flags);
  await w.terminate();
  assert.ok(waited >= 150 && performance.now() - t0 >= 150, `waited ${waited} ms`);
  assert.equal(Atomics.load(flags, GATE_WAITED_MS), Math.round(waited));
  // throttle: busy threshold 1000 ms, delay 500 → no wait; delay 1500 → waits as long as the query took
  Atomics.store(flags, 2, 1000);
  Atomics.store(flags, GATE_DELAY_MS, 500);
  assert.equal(await throttleAfterQuery(flags, 50), 0);
  Atomics.store(flags, GATE_DELAY_MS, 1500);
  assert.equal(await throttleAfterQuery(flags, 50), 50);
  assert.equal(await throttleAfterQuery(flags, 60_000), 2000, 'at most 2 s');
});

/**
 * Training yields to ingest. The collector's training jobs (training-worker.ts) run in worker threads at
 * nice 19, but on a busy box that is not enough: the ClickHouse server's work for the training's reads,
 * V8's helper threads and plain CPU and memory contention still slow ingest. So the jobs also stop
 * outright while ingest is behind:
 *
 * - The signal is IngestDelay (ingest-delay.ts): the age of the oldest frame the collector has received
 *   and not finished, seconds.
 * - The rule (TrainingGate, on the collector's main thread, polled every `pollMs` while a job runs):
 *   ingest is *behind* from the moment the delay exceeds `pauseAboveS` until it has stayed at or below
 *   `pauseAboveS` for `resumeAfterS` in a row, or until ingest is idle (no frame in hand and none
 *   finished in the last 2 s: nothing left to protect). While it is behind, every job is paused.
 * - The mechanism: each job gets a SharedArrayBuffer (GATE_* slots below). The main thread sets
 *   GATE_PAUSE; the worker, at its yield points (before its first read, before each history-read query,
 *   between the fit's stages and every 50 optimiser steps: `yieldToIngest`), blocks in Atomics.wait
 *   until it is cleared. A paused worker uses no CPU and sends no query; a query or a fit stage already
 *   under way finishes first (the pause takes effect at the next yield point).
 * - Busy but not behind (delay above half of `pauseAboveS`): between two history-read queries the
 *   worker waits as long as the last query took (`throttleAfterQuery`), so the server answers the
 *   training at most half the time while ingest is close to its limit.
 * - Bounded: a job blocked at its yield points `maxPauseS` in total (default 15 min) is not paused again; it runs on at its
 *   nice value and the gate logs a warning (`wattsplit_training_pause_overruns_total`). A fleet that is
 *   always a little behind still gets its models, at most `maxPauseS` late; the training lease is renewed
 *   while a job runs (model-lifecycle.ts), so a long pause does not lose it.
 * - `pauseAboveS: 0` switches the gate off (jobs never pause).
 */
import { WattsplitError, type Logger } from '@wattsplit/wire';
import type { IngestSignal } from './ingest-delay.js';

/** Slots of a job's gate buffer (Int32Array). */
export const GATE_PAUSE = 0;
/** The ingest delay at the last poll, ms (the worker's throttle reads it). */
export const GATE_DELAY_MS = 1;
/** Above this delay (ms) ingest is busy: the worker throttles its reads. */
export const GATE_BUSY_MS = 2;
/** Milliseconds the worker spent blocked at yield points (written by the worker). */
export const GATE_WAITED_MS = 3;
/** 1 while the worker is blocked at a yield point (written by the worker). */
export const GATE_WAITING = 4;
const GATE_SLOTS = 5;

export interface IngestYieldOptions {
  /** Pause training while ingest is behind by more than this, seconds. Default 2; 0: never pause. */
  pauseAboveS?: number;
  /** Resume once the delay has stayed at or below `pauseAboveS` this long, seconds. Default 5. */
  resumeAfterS?: number;
  /** A job paused this long in total is not paused again (it runs on at nice 19), seconds. Default 900. */
  maxPauseS?: number;
  /** How often the gate reads the delay while a job runs, ms. Default 200. */
  pollMs?: number;
}

export const INGEST_YIELD_DEFAULTS = { pauseAboveS: 2, resumeAfterS: 5, maxPauseS: 900, pollMs: 200 } as const;

/** One running job's view of the gate. */
export interface GateSlot {
  /** Posted to the worker (workerData.gate). */
  readonly buffer: SharedArrayBuffer;
  /** The job ended: stop tracking it; what it was paused. */
  done(): { pausedS: number; overran: boolean };
}

interface Job {
  kind: string;
  flags: Int32Array;
  pausedMs: number;
  overran: boolean;
}

/** The main thread's side: decides when jobs pause (see the header). */
export class TrainingGate {
  readonly o: Required<IngestYieldOptions>;
  private readonly jobs = new Set<Job>();
  private timer: NodeJS.Timeout | undefined;
  private lastPollMs: number | undefined;
  /** Since when (ms) the delay has been at or below the threshold while behind. */
  private calmSinceMs: number | undefined;
  private behindNow = false;
  private closed = false;
  /** Seconds jobs spent paused (summed over jobs), since start. */
  pausedSecondsTotal = 0;
  /** Jobs that hit `maxPauseS` and ran on. */
  overruns = 0;
  /** Times ingest fell behind while a job ran. */
  pauses = 0;

  constructor(
    private readonly ingest: IngestSignal,
    opts: IngestYieldOptions = {},
    private readonly log?: Logger,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.o = { ...INGEST_YIELD_DEFAULTS, ...opts };
    for (const [k, v] of Object.entries(this.o)) {
      if (!(typeof v === 'number' && Number.isFinite(v) && v >= 0)) throw new WattsplitError('CONFIG_INVALID', `training.yieldToIngest.${k}=${String(v)} must be a number ≥ 0`, { details: { field: `training.yieldToIngest.${k}`, value: v } });
    }
  }

  get enabled(): boolean {
    return this.o.pauseAboveS > 0;
  }

  /** Whether ingest counts as behind (jobs are paused) at the last poll. */
  get behind(): boolean {
    return this.behindNow;
  }

  /** Jobs blocked at a yield point now (paused and arrived there). */
  get pausedJobs(): number {
    let n = 0;
    for (const j of this.jobs) if (Atomics.load(j.flags, GATE_WAITING) === 1) n++;
    return n;
  }

  /** A job starts: its flags, paused at once when ingest is behind now. */
  register(kind: string): GateSlot {
    const buffer = new SharedArrayBuffer(GATE_SLOTS * 4);
    const job: Job = { kind, flags: new Int32Array(buffer), pausedMs: 0, overran: false };
    Atomics.store(job.flags, GATE_BUSY_MS, Math.round((this.o.pauseAboveS * 1000) / 2));
    if (!this.enabled || this.closed) return { buffer, done: () => ({ pausedS: 0, overran: false }) };
    this.jobs.add(job);
    this.poll();
    if (!this.timer) {
      this.timer = setInterval(() => this.poll(), this.o.pollMs);
      this.timer.unref();
    }
    return {
      buffer,
      done: () => {
        this.poll();
        this.release(job);
        this.jobs.delete(job);
        if (this.jobs.size === 0) {
          clearInterval(this.timer);
          this.timer = undefined;
          this.lastPollMs = undefined;
        }
        return { pausedS: job.pausedMs / 1000, overran: job.overran };
      },
    };
  }

  /** Releases every job and stops polling (shutdown: the workers are being terminated). */
  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    this.timer = undefined;
    for (const j of this.jobs) this.release(j);
    this.jobs.clear();
  }

  /** Reads the delay and sets every job's flags (the timer calls it every `pollMs`; tests call it directly). */
  poll(): void {
    const t = this.now();
    const dt = this.lastPollMs === undefined ? 0 : t - this.lastPollMs;
    this.lastPollMs = t;
    // Time since the last poll counts for the jobs blocked at a yield point now (paused time is time
    // the job really waited, not time the flag was up while the job was still on its way to a yield point).
    for (const j of this.jobs) {
      if (Atomics.load(j.flags, GATE_WAITING) === 1) {
        j.pausedMs += dt;
        this.pausedSecondsTotal += dt / 1000;
      }
    }
    let d = this.ingest.delayS();
    if (!Number.isFinite(d) || d < 0) d = 0;
    const aboveMs = this.o.pauseAboveS * 1000;
    if (d * 1000 > aboveMs) {
      this.calmSinceMs = undefined;
      if (!this.behindNow) {
        this.behindNow = true;
        this.pauses++;
        this.log?.info({ ingestDelayS: round(d), pauseAboveS: this.o.pauseAboveS, jobs: [...this.jobs].map((j) => j.kind) }, `ingest is ${round(d)} s behind (above ${this.o.pauseAboveS} s): training pauses`);
      }
    } else if (this.behindNow) {
      this.calmSinceMs ??= t;
      if (t - this.calmSinceMs >= this.o.resumeAfterS * 1000 || this.ingest.idle()) {
        this.behindNow = false;
        this.calmSinceMs = undefined;
        this.log?.info({ ingestDelayS: round(d), resumeAfterS: this.o.resumeAfterS }, `ingest caught up (within ${this.o.pauseAboveS} s for ${this.o.resumeAfterS} s): training resumes`);
      }
    }
    for (const j of this.jobs) {
      Atomics.store(j.flags, GATE_DELAY_MS, Math.min(2 ** 31 - 1, Math.round(d * 1000)));
      if (!j.overran && j.pausedMs >= this.o.maxPauseS * 1000) {
        j.overran = true;
        this.overruns++;
        this.log?.warn({ job: j.kind, pausedS: round(j.pausedMs / 1000), maxPauseS: this.o.maxPauseS }, `a training ${j.kind} job was paused ${round(j.pausedMs / 1000)} s for ingest (maxPauseS ${this.o.maxPauseS}): it runs on at its nice value without pausing again`);
      }
      if (this.behindNow && !j.overran) Atomics.store(j.flags, GATE_PAUSE, 1);
      else this.release(j);
    }
  }

  private release(j: Job): void {
    if (Atomics.exchange(j.flags, GATE_PAUSE, 0) !== 0) Atomics.notify(j.flags, GATE_PAUSE);
  }
}

const round = (x: number) => Math.round(x * 100) / 100;

// ---- the worker's side (training-worker.ts runs these in the worker thread)

/**
 * A yield point: blocks this (worker) thread while the gate says pause, in waits of at most 250 ms (a
 * terminated worker stops within that); returns the ms it waited. Without flags it returns 0 at once.
 */
export function yieldToIngest(flags: Int32Array | undefined): number {
  if (!flags || Atomics.load(flags, GATE_PAUSE) === 0) return 0;
  const t0 = performance.now();
  Atomics.store(flags, GATE_WAITING, 1);
  while (Atomics.load(flags, GATE_PAUSE) === 1) Atomics.wait(flags, GATE_PAUSE, 1, 250);
  Atomics.store(flags, GATE_WAITING, 0);
  const ms = performance.now() - t0;
  Atomics.add(flags, GATE_WAITED_MS, Math.round(ms));
  return ms;
}

/** After a history-read query of `queryMs`: while ingest is busy, wait as long again (at most 2 s); returns the ms waited. */
export async function throttleAfterQuery(flags: Int32Array | undefined, queryMs: number): Promise<number> {
  if (!flags || Atomics.load(flags, GATE_DELAY_MS) <= Atomics.load(flags, GATE_BUSY_MS)) return 0;
  const ms = Math.min(2000, Math.max(0, queryMs));
  await new Promise((r) => setTimeout(r, ms));
  return ms;
}

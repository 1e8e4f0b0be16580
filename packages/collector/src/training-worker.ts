/**
 * Worker-thread entry: the collector's training jobs, off its event loop (ingest runs there and must
 * not wait). A job reads its history itself, through a read connection the store shared with it
 * (Store.shareReads → openReadTransport: for chDB a port to the store's worker, for a server an HTTP
 * client of its own), so neither the read nor its decoding (a sampled host-day of a 50-VM host is
 * ~870 000 VM rows) runs on the collector's main thread. A store that cannot share reads sends the
 * intervals in the job instead.
 *
 * Jobs (workerData, a TrainingJob): `train` one additive model of a class; `drift`: score a model on
 * recent history. Posts back one TrainingJobResult; one job per worker.
 *
 * Training takes only the CPU that ingest leaves: before anything else the worker lowers its own
 * thread to `nice` (workerData, default 19; thread-priority.ts: only this thread, not the collector's),
 * and its reads are background reads (read-transport.ts: one engine thread each, on chDB at nice 19
 * too). The answer says whether the renice happened (`priority`), for the collector to log.
 *
 * And it yields to ingest (training-gate.ts): with a gate buffer (workerData.gate) the job stops at its
 * yield points while the collector says ingest is behind — before its first read, before each history
 * query (read in chunks of `READ_CHUNK_INTERVALS`, so one query is short), between the fit's stages and
 * every 50 optimiser steps (the trainer's `yieldPoint` hook) — and, while ingest is busy, waits between
 * two history queries as long as the last one took. The answer says how long it waited and the longest
 * stretch it ran without a yield point (`yield`).
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { HostInterval } from '@wattsplit/attribution';
import { modelDrift, trainAdditiveModel, type AdditiveModelJson, type AdditiveTrainOptions, type DriftReport } from '@wattsplit/models';
import { openReadTransport, readHistoryFrom, type HistoryQuery, type HistoryTransport, type ReadHandle } from '@wattsplit/store';
import { normaliseError } from '@wattsplit/wire';
import { throttleAfterQuery, yieldToIngest } from './training-gate.js';
import { LOWEST_NICE, lowerThisThreadPriority, type ThreadPriorityResult } from './thread-priority.js';

/** Where a job's history comes from: read it through `read`, or these intervals (read in `readS` seconds by the caller). */
export type JobHistory = { read: ReadHandle; query: HistoryQuery } | { intervals: HostInterval[]; readS: number };

export type TrainingJob =
  | { kind: 'train'; history: JobHistory; options: Omit<AdditiveTrainOptions, 'logger' | 'yieldPoint'>; minIntervals: number }
  | { kind: 'drift'; history: JobHistory; model: AdditiveModelJson; driftRatio: number };

export type TrainingJobResult =
  | { kind: 'train'; model?: AdditiveModelJson; intervals: number; windowFromNs: number; windowToNs: number; readS: number; trainS: number }
  | { kind: 'drift'; drift?: DriftReport; intervals: number; readS: number }
  | { kind: 'error'; code: string; message: string };

/** How a job yielded to ingest: seconds blocked at yield points and throttled between reads, yield points passed, the longest stretch between two, seconds. */
export interface JobYield {
  pausedS: number;
  throttledS: number;
  points: number;
  maxGapS: number;
}

/** What a worker posts: the job's result, what became of its priority, how it yielded. */
export type TrainingWorkerAnswer = TrainingJobResult & { priority?: ThreadPriorityResult; yield?: JobYield };

/** workerData of a training worker. */
export interface TrainingWorkerData {
  trainingJob: TrainingJob;
  /** The worker thread's nice value (default 19; 0: leave it). */
  nice?: number;
  /** The job's gate buffer (training-gate.ts); absent: never pause. */
  gate?: SharedArrayBuffer;
}

/** Intervals per VM-row query of a training's history read (the store's default is 4 000): shorter queries, more yield points. */
export const READ_CHUNK_INTERVALS = 1000;

/** Yield points of one job, and what they cost (training-gate.ts). */
export class JobYielder {
  private readonly flags: Int32Array | undefined;
  private last = performance.now();
  readonly stats: JobYield = { pausedS: 0, throttledS: 0, points: 0, maxGapS: 0 };

  constructor(gate: SharedArrayBuffer | undefined) {
    this.flags = gate ? new Int32Array(gate) : undefined;
  }

  /** A yield point: waits while ingest is behind; returns how long it waited, ms. */
  point = (): number => {
    const t = performance.now();
    this.stats.maxGapS = Math.max(this.stats.maxGapS, (t - this.last) / 1000);
    this.stats.points++;
    const waited = yieldToIngest(this.flags);
    this.stats.pausedS += waited / 1000;
    this.last = performance.now();
    return waited;
  };

  /** `t` with a yield point before each query and the busy throttle after it. */
  transport(t: HistoryTransport): HistoryTransport {
    const timed = async <R>(q: () => Promise<R>): Promise<R> => {
      // While a pause blocks this thread its sockets' events and timers do not run: a kept-alive connection
      // that the server closed meanwhile would be reused for the next query. One turn of the loop closes it.
      if (this.point() > 0) await new Promise((r) => setImmediate(r));
      const t0 = performance.now();
      let r: R;
      try {
        r = await q();
      } catch (e) {
        // a history read is idempotent: one retry after a retriable store error (a connection that went away)
        if (!normaliseError(e).retriable) throw e;
        await new Promise((res) => setTimeout(res, 250));
        r = await q();
      }
      const ms = performance.now() - t0;
      this.stats.throttledS += (await throttleAfterQuery(this.flags, ms)) / 1000;
      return r;
    };
    return { query: (sql, format) => timed(() => t.query(sql, format)), queryBytes: (sql, format) => timed(() => t.queryBytes(sql, format)) };
  }
}

/** The job's history and how long reading it took, seconds. */
export async function jobHistory(h: JobHistory, yielder = new JobYielder(undefined)): Promise<{ intervals: HostInterval[]; readS: number }> {
  if ('intervals' in h) return { intervals: h.intervals, readS: h.readS };
  const t0 = performance.now();
  const t = openReadTransport(h.read, { background: true });
  try {
    return { intervals: await readHistoryFrom(yielder.transport(t), { chunkIntervals: READ_CHUNK_INTERVALS, ...h.query }), readS: (performance.now() - t0) / 1000 };
  } finally {
    await t.close();
  }
}

/** Runs one job (in this thread; the worker entry below calls it with the job's gate). */
export async function runTrainingJob(job: TrainingJob, yielder = new JobYielder(undefined)): Promise<TrainingJobResult> {
  yielder.point(); // a job does not start while ingest is behind
  const { intervals, readS } = await jobHistory(job.history, yielder);
  yielder.point();
  if (job.kind === 'drift') {
    const drift = modelDrift(job.model, intervals, job.driftRatio);
    return { kind: 'drift', intervals: intervals.length, readS, ...(drift ? { drift } : {}) };
  }
  const window = { intervals: intervals.length, windowFromNs: intervals[0]?.t1UnixNs ?? 0, windowToNs: intervals[intervals.length - 1]?.t1UnixNs ?? 0, readS };
  if (intervals.length < job.minIntervals) return { kind: 'train', ...window, trainS: 0 };
  const t0 = performance.now();
  const model = await trainAdditiveModel(intervals, { ...job.options, yieldPoint: yielder.point });
  return { kind: 'train', model, ...window, trainS: (performance.now() - t0) / 1000 };
}

if (parentPort && (workerData as Partial<TrainingWorkerData> | null)?.trainingJob) {
  const port = parentPort;
  const data = workerData as TrainingWorkerData;
  const priority = lowerThisThreadPriority(data.nice ?? LOWEST_NICE);
  const yielder = new JobYielder(data.gate);
  try {
    port.postMessage({ ...(await runTrainingJob(data.trainingJob, yielder)), priority, yield: yielder.stats } satisfies TrainingWorkerAnswer);
  } catch (e) {
    const err = normaliseError(e, 'MODEL_TRAINING_FAILED');
    port.postMessage({ kind: 'error', code: err.code, message: err.message, priority, yield: yielder.stats } satisfies TrainingWorkerAnswer);
  }
}

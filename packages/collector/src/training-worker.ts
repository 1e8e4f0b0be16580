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
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { HostInterval } from '@wattsplit/attribution';
import { modelDrift, trainAdditiveModel, type AdditiveModelJson, type AdditiveTrainOptions, type DriftReport } from '@wattsplit/models';
import { openReadTransport, readHistoryFrom, type HistoryQuery, type ReadHandle } from '@wattsplit/store';
import { normaliseError } from '@wattsplit/wire';
import { LOWEST_NICE, lowerThisThreadPriority, type ThreadPriorityResult } from './thread-priority.js';

/** Where a job's history comes from: read it through `read`, or these intervals (read in `readS` seconds by the caller). */
export type JobHistory = { read: ReadHandle; query: HistoryQuery } | { intervals: HostInterval[]; readS: number };

export type TrainingJob =
  | { kind: 'train'; history: JobHistory; options: Omit<AdditiveTrainOptions, 'logger'>; minIntervals: number }
  | { kind: 'drift'; history: JobHistory; model: AdditiveModelJson; driftRatio: number };

export type TrainingJobResult =
  | { kind: 'train'; model?: AdditiveModelJson; intervals: number; windowFromNs: number; windowToNs: number; readS: number; trainS: number }
  | { kind: 'drift'; drift?: DriftReport; intervals: number; readS: number }
  | { kind: 'error'; code: string; message: string };

/** What a worker posts: the job's result and what became of its priority. */
export type TrainingWorkerAnswer = TrainingJobResult & { priority?: ThreadPriorityResult };

/** workerData of a training worker. */
export interface TrainingWorkerData {
  trainingJob: TrainingJob;
  /** The worker thread's nice value (default 19; 0: leave it). */
  nice?: number;
}

/** The job's history and how long reading it took, seconds. */
export async function jobHistory(h: JobHistory): Promise<{ intervals: HostInterval[]; readS: number }> {
  if ('intervals' in h) return { intervals: h.intervals, readS: h.readS };
  const t0 = performance.now();
  const t = openReadTransport(h.read, { background: true });
  try {
    return { intervals: await readHistoryFrom(t, h.query), readS: (performance.now() - t0) / 1000 };
  } finally {
    await t.close();
  }
}

/** Runs one job (in this thread; the worker entry below calls it). */
export async function runTrainingJob(job: TrainingJob): Promise<TrainingJobResult> {
  const { intervals, readS } = await jobHistory(job.history);
  if (job.kind === 'drift') {
    const drift = modelDrift(job.model, intervals, job.driftRatio);
    return { kind: 'drift', intervals: intervals.length, readS, ...(drift ? { drift } : {}) };
  }
  const window = { intervals: intervals.length, windowFromNs: intervals[0]?.t1UnixNs ?? 0, windowToNs: intervals[intervals.length - 1]?.t1UnixNs ?? 0, readS };
  if (intervals.length < job.minIntervals) return { kind: 'train', ...window, trainS: 0 };
  const t0 = performance.now();
  const model = await trainAdditiveModel(intervals, job.options);
  return { kind: 'train', model, ...window, trainS: (performance.now() - t0) / 1000 };
}

if (parentPort && (workerData as Partial<TrainingWorkerData> | null)?.trainingJob) {
  const port = parentPort;
  const data = workerData as TrainingWorkerData;
  const priority = lowerThisThreadPriority(data.nice ?? LOWEST_NICE);
  try {
    port.postMessage({ ...(await runTrainingJob(data.trainingJob)), priority } satisfies TrainingWorkerAnswer);
  } catch (e) {
    const err = normaliseError(e, 'MODEL_TRAINING_FAILED');
    port.postMessage({ kind: 'error', code: err.code, message: err.message, priority } satisfies TrainingWorkerAnswer);
  }
}

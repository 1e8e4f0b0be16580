/**
 * Worker-thread entry: trains one additive model off the collector's event loop (training a class takes
 * seconds of CPU; ingest must not wait). Receives { intervals, options } and posts back { model } or
 * { error: { code, message } }; one job per worker.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { HostInterval } from '@wattsplit/attribution';
import { trainAdditiveModel, type AdditiveTrainOptions } from '@wattsplit/models';
import { normaliseError } from '@wattsplit/wire';

interface Job {
  intervals: HostInterval[];
  options: Omit<AdditiveTrainOptions, 'logger'>;
}

const job = workerData as Job;
try {
  const model = await trainAdditiveModel(job.intervals, job.options);
  parentPort?.postMessage({ model });
} catch (e) {
  const err = normaliseError(e, 'MODEL_TRAINING_FAILED');
  parentPort?.postMessage({ error: { code: err.code, message: err.message } });
}

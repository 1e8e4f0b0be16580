/**
 * ModelLifecycle: what can happen to a hardware class's model, one place for the collector's scheduler
 * (training-service.ts) and the operator's `wattsplit models` command alike.
 *
 * - decide: should a class be trained now, and why: `first` (no class has a model yet) / `new_class`
 *   (this class has none) once `minIntervals` of its history are stored; `drift` when the active
 *   model's residual on the last `driftWindowS` exceeds `driftRatio` × its training residual; `period`
 *   when the active model is older than `periodS`.
 * - train: under the class's lease (model-store.ts says how the lease works), read the class's host
 *   intervals (host totals only: never per-VM truth) of the last `lookbackS` and train, both in a
 *   worker thread (training-worker.ts: it reads through its own connection to the store, so the
 *   collector's event loop neither reads nor decodes the history), re-check the lease (fencing), store
 *   the artefact and activate it from `effectiveFromNs` (default: now + `activationDelayS`, enough for
 *   every replica to load it before it applies).
 * - The drift check of `decide` reads and scores the recent history in a worker thread the same way.
 * - Jobs yield to ingest (training-gate.ts): with a `gate`, each worker job gets its flags and stops at
 *   its yield points while ingest is behind; the lease is renewed every third of its TTL while a job of
 *   train() runs, so a long (paused) training keeps it.
 * - promote / rollback: append an activation of an existing version.
 */
import { Worker, type TransferListItem } from 'node:worker_threads';
import { checkModelJson, type AdditiveModelJson, type AdditiveTrainOptions, type DriftReport } from '@wattsplit/models';
import { ModelStore, str, type HistoryQuery, type ModelActivation, type ModelVersionMeta, type Store } from '@wattsplit/store';
import { WattsplitError, silentLogger, type Logger } from '@wattsplit/wire';
import type { IngestYieldOptions, TrainingGate } from './training-gate.js';
import type { ThreadPriorityResult } from './thread-priority.js';
import { runTrainingJob, type JobHistory, type JobYield, type TrainingJob, type TrainingJobResult, type TrainingWorkerAnswer, type TrainingWorkerData } from './training-worker.js';

export const TRAIN_REASONS = ['first', 'new_class', 'drift', 'period', 'manual'] as const;
export type TrainReason = (typeof TRAIN_REASONS)[number];

export interface TrainingOptions {
  /** History a training reads, seconds back from now. Default 86400 (a day). */
  lookbackS?: number;
  /** At most this many host intervals per training, an even sample when more. Default 20000: what the trainer fits on anyway (additive-trainer maxIntervals); reading more only costs time. */
  limit?: number;
  /** Stored intervals of a class needed before its first model. Default 300. */
  minIntervals?: number;
  /** Recent history a drift check reads, seconds. Default 900. */
  driftWindowS?: number;
  /** Drift when recent residual RMS > driftRatio × training residual RMS. Default 1.5. */
  driftRatio?: number;
  /** Retrain a model older than this, seconds. Default 7 days. */
  periodS?: number;
  /** Training lease length, seconds (renewed by training again). Default 600. */
  leaseTtlS?: number;
  /** Wait after taking a lease before reading it back, ms. Default 500. */
  leaseSettleMs?: number;
  /** A new version applies to intervals ending this long after its commit. Default 2 s. */
  activationDelayS?: number;
  /** Read the history and train in a worker thread (default) or on the calling thread (tests, CLI). */
  inWorker?: boolean;
  /**
   * The worker thread's nice value, -20..19. Default 19, the lowest CPU priority: training takes only
   * what ingest leaves (thread-priority.ts). 0 leaves the worker at the collector's priority.
   */
  workerNice?: number;
  /** When training pauses for ingest (training-gate.ts): the delay threshold, the resume hold, the bound. */
  yieldToIngest?: IngestYieldOptions;
  /** Options of the trainer itself. */
  additive?: Omit<AdditiveTrainOptions, 'logger' | 'hardwareClass' | 'version'>;
}

export interface TrainOutcome {
  hardwareClass: string;
  reason: TrainReason;
  /** Set when a version was stored and activated. */
  version?: ModelVersionMeta;
  activation?: ModelActivation;
  /** Why nothing was trained (lease held elsewhere, too little history, lost the lease). */
  skipped?: string;
  drift?: DriftReport;
  /**
   * Where the time went, seconds: reading the history, fitting, the whole train() (lease to activation);
   * paused for ingest (included in the others), and the longest stretch the job ran without a yield point.
   */
  timings?: { readS: number; trainS: number; totalS: number; pausedS: number; maxYieldGapS: number };
}

export interface Decision {
  reason: TrainReason | undefined;
  why: string;
  drift?: DriftReport;
}

const DEF = { workerNice: 19, lookbackS: 86_400, limit: 20_000, minIntervals: 300, driftWindowS: 900, driftRatio: 1.5, periodS: 7 * 86_400, leaseTtlS: 600, leaseSettleMs: 500, activationDelayS: 2 };

export class ModelLifecycle {
  readonly models: ModelStore;
  private readonly o: typeof DEF & { inWorker: boolean; additive: TrainingOptions['additive'] };
  private readonly log: Logger;
  private readonly now: () => number;

  /** Pauses worker jobs while ingest is behind (training-gate.ts); absent: they never pause. */
  private readonly gate: TrainingGate | undefined;

  constructor(opts: { store: Store; holder: string; logger?: Logger; training?: TrainingOptions; now?: () => number; gate?: TrainingGate }) {
    this.now = opts.now ?? Date.now;
    this.gate = opts.gate;
    this.models = new ModelStore(opts.store, this.now);
    this.store = opts.store;
    this.holder = opts.holder;
    this.log = (opts.logger ?? silentLogger).child({ component: 'model-lifecycle' });
    const t = opts.training ?? {};
    this.o = {
      lookbackS: t.lookbackS ?? DEF.lookbackS,
      limit: t.limit ?? DEF.limit,
      minIntervals: t.minIntervals ?? DEF.minIntervals,
      driftWindowS: t.driftWindowS ?? DEF.driftWindowS,
      driftRatio: t.driftRatio ?? DEF.driftRatio,
      periodS: t.periodS ?? DEF.periodS,
      leaseTtlS: t.leaseTtlS ?? DEF.leaseTtlS,
      leaseSettleMs: t.leaseSettleMs ?? DEF.leaseSettleMs,
      activationDelayS: t.activationDelayS ?? DEF.activationDelayS,
      workerNice: t.workerNice ?? DEF.workerNice,
      inWorker: t.inWorker ?? true,
      additive: t.additive,
    };
    if (!(Number.isInteger(this.o.workerNice) && this.o.workerNice >= -20 && this.o.workerNice <= 19)) {
      throw new WattsplitError('CONFIG_INVALID', `training.workerNice=${this.o.workerNice} must be an integer in -20..19`, { details: { field: 'training.workerNice', value: this.o.workerNice } });
    }
    for (const [k, v] of Object.entries(this.o)) {
      if (k !== 'workerNice' && typeof v === 'number' && !(Number.isFinite(v) && v >= 0)) throw new WattsplitError('CONFIG_INVALID', `training.${k}=${v} must be a number ≥ 0`, { details: { field: `training.${k}`, value: v } });
    }
    if (!(this.o.driftRatio > 1)) throw new WattsplitError('CONFIG_INVALID', `training.driftRatio=${this.o.driftRatio} must be > 1`, { details: { field: 'training.driftRatio', value: this.o.driftRatio } });
  }

  private readonly store: Store;
  readonly holder: string;

  /** Hardware classes with stored history. */
  async classes(): Promise<string[]> {
    const rows = (await this.store.query(`SELECT DISTINCT hardware_class AS c FROM host_samples WHERE hardware_class != '' ORDER BY c`)).rows;
    return rows.map((r) => String(r.c as string));
  }

  /** Should `hardwareClass` be trained now? `current` is the model in force for it (undefined: cold start). */
  async decide(hardwareClass: string, current: AdditiveModelJson | undefined, anyModel: boolean): Promise<Decision> {
    const nowNs = this.now() * 1e6;
    if (!current) {
      const n = Number((await this.store.query(`SELECT count() AS n FROM host_samples WHERE hardware_class = ${str(hardwareClass)} AND t1_ns >= ${Math.round(nowNs - this.o.lookbackS * 1e9)}`)).rows[0]?.n ?? 0);
      if (n < this.o.minIntervals) return { reason: undefined, why: `${n} of ${this.o.minIntervals} intervals stored for a first model` };
      return { reason: anyModel ? 'new_class' : 'first', why: `no model yet, ${n} intervals stored` };
    }
    const ageS = (this.now() - Date.parse(current.trainedAt)) / 1000;
    if (ageS > this.o.periodS) return { reason: 'period', why: `model v${current.version} is ${Math.round(ageS)} s old (period ${this.o.periodS} s)` };
    const r = await this.job({ kind: 'drift', history: await this.history({ hardwareClass, sinceUnixNs: nowNs - this.o.driftWindowS * 1e9, limit: 5000, omitVmLabels: true }), model: current, driftRatio: this.o.driftRatio });
    const drift = r.kind === 'drift' ? r.drift : undefined;
    if (drift?.drifted) return { reason: 'drift', why: `residual ${drift.ratio.toFixed(2)}× the training residual on ${drift.intervals} recent intervals`, drift };
    return { reason: undefined, why: drift ? `no drift (${drift.ratio.toFixed(2)}×)` : 'no recent intervals', ...(drift ? { drift } : {}) };
  }

  /** Trains, stores and activates a new version of a class under its lease; see the file comment. */
  async train(hardwareClass: string, opts: { reason: TrainReason; effectiveFromNs?: number; untilUnixNs?: number; drift?: DriftReport }): Promise<TrainOutcome> {
    const lease = `train:${hardwareClass}`;
    const base: TrainOutcome = { hardwareClass, reason: opts.reason, ...(opts.drift ? { drift: opts.drift } : {}) };
    if (!(await this.models.tryLease(lease, this.holder, this.o.leaseTtlS * 1000, this.o.leaseSettleMs))) {
      const h = await this.models.leaseHolder(lease);
      return { ...base, skipped: `another trainer holds the lease (${h?.holder ?? '?'})` };
    }
    try {
      const started = performance.now();
      const untilNs = opts.untilUnixNs ?? this.now() * 1e6;
      const fromNs = untilNs - this.o.lookbackS * 1e9;
      const version = await this.models.nextVersion(hardwareClass);
      const renew = this.renewWhileRunning(lease);
      let r: TrainingJobResult;
      try {
        r = await this.job({
          kind: 'train',
          history: await this.history({ hardwareClass, sinceUnixNs: fromNs, untilUnixNs: untilNs + 1, limit: this.o.limit, omitVmLabels: true }),
          options: { ...this.o.additive, hardwareClass, version },
          minIntervals: 30,
        });
      } finally {
        clearInterval(renew);
      }
      const jy = this.lastJobYield;
      if (r.kind !== 'train') throw new WattsplitError('MODEL_TRAINING_FAILED', `training ${hardwareClass}: the worker answered a ${r.kind} job`);
      if (!r.model) return { ...base, skipped: `${r.intervals} intervals of history: too few to train` };
      const model = checkModelJson(r.model, `trained model ${hardwareClass}`);
      if (!(await this.models.holdsLease(lease, this.holder))) return { ...base, skipped: 'the lease expired during training; the result was discarded' };
      const meta: ModelVersionMeta = {
        hardwareClass,
        version,
        modelId: ModelStore.newModelId(),
        trainedAtMs: this.now(),
        trainedBy: this.holder,
        reason: opts.reason,
        windowFromNs: r.windowFromNs,
        windowToNs: r.windowToNs,
        intervals: r.intervals,
        trainSeconds: r.trainS,
        residualRmsW: { rapl: model.sources.rapl.residualRmsW, bmc_rest: model.sources.bmc_rest.residualRmsW },
        driftRatio: opts.drift?.ratio ?? 0,
      };
      await this.models.saveVersion({ ...meta, modelJson: JSON.stringify(model) });
      const activation = await this.models.activate({
        hardwareClass,
        version,
        modelId: meta.modelId,
        effectiveFromNs: opts.effectiveFromNs ?? (this.now() + this.o.activationDelayS * 1000) * 1e6,
        activatedBy: this.holder,
        action: 'train',
        note: opts.reason,
      });
      const timings = { readS: r.readS, trainS: r.trainS, totalS: (performance.now() - started) / 1000, pausedS: jy?.pausedS ?? 0, maxYieldGapS: jy?.maxGapS ?? 0 };
      this.log.info({ hardwareClass, version, reason: opts.reason, intervals: meta.intervals, readSeconds: Number(timings.readS.toFixed(2)), seconds: Number(meta.trainSeconds.toFixed(2)), pausedSeconds: Number(timings.pausedS.toFixed(2)), maxYieldGapSeconds: Number(timings.maxYieldGapS.toFixed(2)), residualRmsW: meta.residualRmsW, effectiveFromNs: activation.effectiveFromNs }, `model ${hardwareClass} v${version} trained (${opts.reason}) and activated`);
      return { ...base, version: meta, activation, timings };
    } finally {
      await this.models.releaseLease(lease, this.holder).catch((e: unknown) => this.log.warn({ lease, err: (e as Error).message }, 'could not release the training lease (it expires by itself)'));
    }
  }

  /** Activates an existing version (from `effectiveFromNs`, default now + the activation delay). */
  async promote(hardwareClass: string, version: number, by: string, note = '', effectiveFromNs?: number, action = 'promote'): Promise<ModelActivation> {
    const row = await this.models.loadVersion(hardwareClass, version);
    if (!row) {
      const have = (await this.models.versions(hardwareClass)).map((v) => v.version);
      throw new WattsplitError('CONFIG_INVALID', `model ${hardwareClass} v${version} does not exist (versions: ${have.join(', ') || 'none'})`, { details: { field: 'version', value: version } });
    }
    checkModelJson(JSON.parse(row.modelJson) as unknown, `model ${hardwareClass} v${version}`);
    return this.models.activate({ hardwareClass, version, modelId: row.modelId, effectiveFromNs: effectiveFromNs ?? (this.now() + this.o.activationDelayS * 1000) * 1e6, activatedBy: by, action, note });
  }

  /** Activates the version that was in force before the latest activation of the class. */
  async rollback(hardwareClass: string, by: string, note = '', effectiveFromNs?: number): Promise<ModelActivation> {
    const acts = await this.models.activations(hardwareClass);
    const latest = acts[acts.length - 1];
    const previous = [...acts].reverse().find((a) => latest && a.version !== latest.version);
    if (!latest || !previous) throw new WattsplitError('CONFIG_INVALID', `model ${hardwareClass}: no earlier version to roll back to (activations: ${acts.map((a) => `v${a.version}`).join(', ') || 'none'})`, { details: { field: 'hardwareClass', value: hardwareClass } });
    return this.promote(hardwareClass, previous.version, by, note || `rollback from v${latest.version}`, effectiveFromNs, 'rollback');
  }

  /**
   * A job's history: a read connection the worker opens itself when it runs in a worker and the store
   * can share reads; otherwise the intervals, read here.
   */
  private async history(query: HistoryQuery): Promise<JobHistory & { transfer?: TransferListItem[] }> {
    if (this.o.inWorker && this.store.shareReads) {
      const g = await this.store.shareReads();
      return { read: g.handle, query, transfer: g.transfer };
    }
    const t0 = performance.now();
    const intervals = await this.store.readHistory(query);
    return { intervals, readS: (performance.now() - t0) / 1000 };
  }

  /** Runs a job in a worker thread (or here when `inWorker` is false); a failed job throws MODEL_TRAINING_FAILED. */
  private async job(j: TrainingJob & { history: { transfer?: TransferListItem[] } }): Promise<TrainingJobResult> {
    const { transfer, ...history } = j.history;
    const job: TrainingJob = { ...j, history };
    this.lastJobYield = undefined;
    const r = this.o.inWorker ? await this.runInWorker(job, transfer ?? []) : await runTrainingJob(job);
    if (r.kind === 'error') throw new WattsplitError('MODEL_TRAINING_FAILED', r.message, { details: { code: r.code, job: j.kind } });
    return r;
  }

  private readonly workers = new Set<Worker>();
  private stopped = false;
  /** How the last worker job yielded to ingest (training-worker.ts JobYield). */
  lastJobYield: JobYield | undefined;

  /** Renews `lease` every third of its TTL until cleared (a training paused for ingest keeps its lease). */
  private renewWhileRunning(lease: string): NodeJS.Timeout {
    let busy = false;
    const t = setInterval(() => {
      if (busy) return;
      busy = true;
      this.models
        .tryLease(lease, this.holder, this.o.leaseTtlS * 1000, 0)
        .then((held) => {
          if (!held) this.log.warn({ lease }, 'the training lease could not be renewed (another trainer holds it): this training\'s result will be discarded');
        })
        .catch((e: unknown) => this.log.warn({ lease, err: (e as Error).message }, 'could not renew the training lease (retried)'))
        .finally(() => (busy = false));
    }, Math.max(1000, (this.o.leaseTtlS * 1000) / 3));
    t.unref();
    return t;
  }

  /**
   * Ends the jobs running in worker threads (their train() or decide() rejects with MODEL_TRAINING_FAILED
   * and the lease is released as after any failure) and refuses new ones: a collector shutting down does
   * not wait minutes for a fit whose result it would not use.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.gate?.close();
    await Promise.all([...this.workers].map((w) => w.terminate()));
  }

  /** What the last worker's renice came to (thread-priority.ts), for `wattsplit models` and tests. */
  lastWorkerPriority: ThreadPriorityResult | undefined;

  /** Logs the worker's priority at info the first time and whenever it changes kind (a refusal at warn). */
  private notePriority(p: ThreadPriorityResult): void {
    const changed = this.lastWorkerPriority?.kind !== p.kind;
    this.lastWorkerPriority = p;
    if (!changed) return;
    if (p.kind === 'lowered') this.log.info({ tid: p.tid, nice: p.nice }, `training worker thread ${p.tid} runs at nice ${p.nice} (only that thread): training takes the CPU that ingest leaves`);
    else if (this.o.workerNice !== 0) this.log.warn({ why: p.why }, `training worker runs at the collector's priority: ${p.why}`);
  }

  private runInWorker(job: TrainingJob, transfer: TransferListItem[]): Promise<TrainingJobResult> {
    if (this.stopped) return Promise.reject(new WattsplitError('MODEL_TRAINING_FAILED', 'training stopped (the collector is shutting down)'));
    return new Promise<TrainingJobResult>((resolve, reject) => {
      const slot = this.gate?.register(job.kind);
      let w: Worker;
      try {
        w = new Worker(new URL('./training-worker.js', import.meta.url), { workerData: { trainingJob: job, nice: this.o.workerNice, ...(slot ? { gate: slot.buffer } : {}) } satisfies TrainingWorkerData, transferList: transfer });
      } catch (e) {
        slot?.done(); // a worker that never started holds no place at the gate
        reject(new WattsplitError('MODEL_TRAINING_FAILED', `training worker did not start: ${(e as Error).message}`, { cause: e }));
        return;
      }
      this.workers.add(w);
      w.once('exit', () => {
        this.workers.delete(w);
        slot?.done();
      });
      let settled = false;
      w.once('message', ({ priority, yield: jy, ...m }: TrainingWorkerAnswer) => {
        settled = true;
        if (priority) this.notePriority(priority);
        this.lastJobYield = jy;
        resolve(m);
        void w.terminate();
      });
      w.once('error', (e) => {
        if (!settled) reject(new WattsplitError('MODEL_TRAINING_FAILED', `training worker crashed: ${e.message}`, { cause: e }));
      });
      w.once('exit', (code) => {
        if (!settled) reject(new WattsplitError('MODEL_TRAINING_FAILED', `training worker exited (${code}) without a result`));
      });
    });
  }
}

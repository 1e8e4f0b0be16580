/**
 * Retrains models on a schedule from the store's history. For each hardware class: read the last
 * `lookbackS` of intervals, check drift of the current model on the most recent `driftWindowS`, and train
 * a new version when there is no model yet, when it drifted, or when it is older than `maxAgeS`.
 */
import type { HostInterval } from '@wattsplit/attribution';
import { normaliseError, silentLogger, type Logger } from '@wattsplit/wire';
import type { DriftReport, ModelInfo, ModelRegistry } from './model-registry.js';

export interface HistoryQuery {
  hardwareClass: string;
  fromUnixNs: number;
  toUnixNs: number;
  /** At most this many intervals (the provider may sample). */
  limit?: number;
}

/** Implemented by the store: past host intervals of one hardware class. */
export interface HistoryProvider {
  readHistory(opts: HistoryQuery): Promise<HostInterval[]>;
}

export interface ModelTrainerOptions {
  registry: ModelRegistry;
  history: HistoryProvider;
  /** Hardware classes to keep trained (or a function listing them, e.g. from the store). */
  hardwareClasses: string[] | (() => Promise<string[]>);
  /** Period of `runOnce` when started. Default 3600 s. */
  intervalS?: number;
  /** History used for training. Default 86400 s. */
  lookbackS?: number;
  /** Recent history used for drift. Default 3600 s. */
  driftWindowS?: number;
  /** Retrain a model older than this even without drift. Default 7 days. */
  maxAgeS?: number;
  /** Fewer intervals than this: skip training (cold start continues). Default 300. */
  minIntervals?: number;
  limit?: number;
  logger?: Logger;
  now?: () => number;
}

export interface TrainerRunResult {
  hardwareClass: string;
  action: 'trained' | 'kept' | 'skipped' | 'failed';
  reason: string;
  drift?: DriftReport;
  model?: ModelInfo;
}

export class ModelTrainer {
  private readonly o: Required<Omit<ModelTrainerOptions, 'limit'>> & { limit: number | undefined };
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<TrainerRunResult[]> | undefined;

  constructor(opts: ModelTrainerOptions) {
    this.o = {
      intervalS: 3600,
      lookbackS: 86400,
      driftWindowS: 3600,
      maxAgeS: 7 * 86400,
      minIntervals: 300,
      logger: silentLogger,
      now: () => Date.now(),
      ...opts,
      limit: opts.limit,
    };
  }

  /** One pass over all hardware classes; never throws (failures are reported per class). Concurrent calls share one run. */
  runOnce(): Promise<TrainerRunResult[]> {
    this.running ??= this.pass().finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass(): Promise<TrainerRunResult[]> {
    const { registry, history, logger } = this.o;
    const classes = typeof this.o.hardwareClasses === 'function' ? await this.o.hardwareClasses() : this.o.hardwareClasses;
    const nowMs = this.o.now();
    const toNs = nowMs * 1e6;
    const out: TrainerRunResult[] = [];
    for (const hardwareClass of classes) {
      try {
        const current = registry.get(hardwareClass);
        const recent = current ? await history.readHistory({ hardwareClass, fromUnixNs: toNs - this.o.driftWindowS * 1e9, toUnixNs: toNs, ...(this.o.limit ? { limit: this.o.limit } : {}) }) : [];
        const drift = current ? registry.checkDrift(hardwareClass, recent) : undefined;
        const ageS = current ? (nowMs - Date.parse(current.trainedAt)) / 1000 : Infinity;
        let reason: string;
        if (!current) reason = 'no model yet (cold start)';
        else if (drift?.drifted) reason = `drift: recent residual ${drift.ratio.toFixed(2)}× training`;
        else if (ageS > this.o.maxAgeS) reason = `model is ${Math.round(ageS)} s old`;
        else {
          out.push({ hardwareClass, action: 'kept', reason: drift ? `no drift (ratio ${drift.ratio.toFixed(2)})` : 'no recent data', ...(drift ? { drift } : {}) });
          continue;
        }
        const hist = await history.readHistory({ hardwareClass, fromUnixNs: toNs - this.o.lookbackS * 1e9, toUnixNs: toNs, ...(this.o.limit ? { limit: this.o.limit } : {}) });
        if (hist.length < this.o.minIntervals) {
          out.push({ hardwareClass, action: 'skipped', reason: `${reason}; only ${hist.length} intervals of history (< ${this.o.minIntervals})`, ...(drift ? { drift } : {}) });
          continue;
        }
        const model = await registry.train(hardwareClass, hist);
        logger.info({ hardwareClass, version: model.version, reason }, 'model retrained');
        out.push({ hardwareClass, action: 'trained', reason, model, ...(drift ? { drift } : {}) });
      } catch (e) {
        const err = normaliseError(e, 'MODEL_TRAINING_FAILED');
        logger.error({ hardwareClass, code: err.code, err: err.message }, 'model training failed');
        out.push({ hardwareClass, action: 'failed', reason: err.message });
      }
    }
    return out;
  }

  /** Runs `runOnce` now and every intervalS (timer unref'd: it never keeps the process alive). */
  start(): void {
    if (this.timer) return;
    void this.runOnce();
    this.timer = setInterval(() => void this.runOnce(), this.o.intervalS * 1000);
    this.timer.unref();
  }

  /** Stops the schedule and waits for a run in progress. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.running) await this.running;
  }
}

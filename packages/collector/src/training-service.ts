/**
 * TrainingService: the collector trains its own models. Per hardware class, on a schedule
 * (`checkIntervalS`) and on triggers (first model once enough history is stored, a new class, drift past
 * the threshold, a model older than the period: model-lifecycle.ts decides), under a per-class lease so
 * exactly one replica trains a class at a time, in a worker thread so ingest never waits. Every replica,
 * trainer or not, refreshes the ModelCatalog every `refreshIntervalMs` (default 1 s), so a new version is
 * loaded before it takes effect (activation delay 2 s by default) and all replicas switch on the same
 * interval boundary. The demo and `wattsplit models train` call the same `runOnce`.
 *
 * Training yields to ingest (training-gate.ts): the jobs pause while the collector's ingest delay
 * (ingest-delay.ts, the age of the oldest frame not yet stored) is above `yieldToIngest.pauseAboveS`, and
 * resume once it has stayed below for `resumeAfterS`; a job is paused at most `maxPauseS` in total.
 * /metrics: wattsplit_collector_ingest_delay_seconds, wattsplit_training_yield_threshold_seconds,
 * wattsplit_training_paused (jobs held now), wattsplit_training_paused_seconds_total,
 * wattsplit_training_pauses_total, wattsplit_training_pause_overruns_total.
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Store } from '@wattsplit/store';
import { normaliseError, type Logger } from '@wattsplit/wire';
import { CollectorMetrics } from './collector-metrics.js';
import type { CollectorConfig } from './config.js';
import { ModelCatalog } from './model-catalog.js';
import { ModelLifecycle, type TrainOutcome, type TrainReason, type TrainingOptions } from './model-lifecycle.js';
import { TrainingGate } from './training-gate.js';
import { COLLECTOR_CONFIG, LOGGER, MODEL_CATALOG, STORE } from './tokens.js';

export interface CollectorTrainingConfig extends TrainingOptions {
  /** Train here (default true). false: only apply the versions other replicas train. */
  enabled?: boolean;
  /** How often the scheduler checks every class, seconds. Default 60. */
  checkIntervalS?: number;
  /** How often the catalog reads new activations, ms. Default 1000. */
  refreshIntervalMs?: number;
  /** This trainer's id in leases and model rows. Default hostname:pid:random. */
  holder?: string;
  /**
   * Activate every version the scheduler trains from this interval end time instead of its commit
   * time + `activationDelayS`: a fixed switch-over, so two runs over the same history bill the same
   * intervals with the new version whoever trained it and when (training-faults.e2e.test.ts).
   */
  effectiveFromNs?: number;
}

export interface RunOnceOptions {
  /** Train these classes whatever `decide` says, with this reason. */
  force?: TrainReason;
  /** Only these classes (default: every class with stored history). */
  classes?: readonly string[];
  /** Activate from this interval end time instead of now + the activation delay. */
  effectiveFromNs?: number;
  /** Train on history up to this time (default now). */
  untilUnixNs?: number;
}

@Injectable()
export class TrainingService implements OnApplicationBootstrap, OnApplicationShutdown {
  readonly lifecycle: ModelLifecycle;
  /** Pauses the training jobs while ingest is behind (training-gate.ts). */
  readonly gate: TrainingGate;
  private readonly cfg: CollectorTrainingConfig;
  private readonly log: Logger;
  private refreshTimer: NodeJS.Timeout | undefined;
  private checkTimer: NodeJS.Timeout | undefined;
  private running: Promise<TrainOutcome[]> | undefined;
  private closed = false;
  private lastRefreshError: string | undefined;
  readonly outcomes: TrainOutcome[] = [];

  constructor(
    @Inject(STORE) store: Store,
    @Inject(COLLECTOR_CONFIG) config: CollectorConfig,
    @Inject(MODEL_CATALOG) readonly catalog: ModelCatalog,
    private readonly metrics: CollectorMetrics,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.cfg = config.models?.training ?? {};
    this.log = logger.child({ component: 'training' });
    this.gate = new TrainingGate(metrics.ingest, this.cfg.yieldToIngest, this.log);
    this.lifecycle = new ModelLifecycle({ store, holder: this.cfg.holder ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`, logger, training: this.cfg, gate: this.gate });
    const g = this.gate;
    metrics.addGaugeProvider('wattsplit_training_yield_threshold_seconds', 'Training pauses while the ingest delay is above this, seconds (training.yieldToIngest.pauseAboveS; 0: never).', () => [{ labels: {}, value: g.o.pauseAboveS }]);
    metrics.addGaugeProvider('wattsplit_training_paused', 'Training jobs held at a yield point now because ingest is behind.', () => [{ labels: {}, value: g.pausedJobs }]);
    metrics.addProvider('wattsplit_training_paused_seconds_total', 'counter', 'Seconds training jobs spent paused for ingest (summed over jobs).', () => [{ labels: {}, value: g.pausedSecondsTotal }]);
    metrics.addProvider('wattsplit_training_pauses_total', 'counter', 'Times ingest fell behind while a training job ran (each pauses the jobs).', () => [{ labels: {}, value: g.pauses }]);
    metrics.addProvider('wattsplit_training_pause_overruns_total', 'counter', 'Training jobs paused for maxPauseS in total that ran on without pausing again.', () => [{ labels: {}, value: g.overruns }]);
    metrics.addGaugeProvider('wattsplit_model_version', 'Model version in force per hardware class (latest activation).', () => this.catalog.entries().map((e) => ({ labels: { hardware_class: e.hardwareClass }, value: e.version })));
    metrics.addGaugeProvider('wattsplit_model_age_seconds', 'Age of the latest activated model per hardware class, seconds since it was trained.', () =>
      this.catalog.entries().map((e) => ({ labels: { hardware_class: e.hardwareClass }, value: Math.max(0, (Date.now() - Date.parse(e.trainedAt)) / 1000) })),
    );
    metrics.addGaugeProvider('wattsplit_model_residual_watts', 'Training residual RMS of the latest activated model, watts, by source.', () =>
      this.catalog.entries().flatMap((e) => [
        { labels: { hardware_class: e.hardwareClass, source: 'rapl' }, value: e.residualRmsW.rapl },
        { labels: { hardware_class: e.hardwareClass, source: 'bmc_rest' }, value: e.residualRmsW.bmc_rest },
      ]),
    );
    metrics.addGaugeProvider('wattsplit_model_drift_ratio', 'Recent residual / training residual of the model in force, per hardware class, at the last check.', () =>
      [...this.lastDrift.entries()].map(([hc, ratio]) => ({ labels: { hardware_class: hc }, value: ratio })),
    );
  }

  private readonly lastDrift = new Map<string, number>();

  /** The drift ratio (recent / training residual) of a class's model at the last scheduler check, if any. */
  driftAtLastCheck(hardwareClass: string): number | undefined {
    return this.lastDrift.get(hardwareClass);
  }

  get enabled(): boolean {
    return this.cfg.enabled !== false;
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.refresh();
    const refreshMs = this.cfg.refreshIntervalMs ?? 1000;
    this.refreshTimer = setInterval(() => void this.refresh(), refreshMs);
    this.refreshTimer.unref();
    if (this.enabled) {
      const checkMs = (this.cfg.checkIntervalS ?? 60) * 1000;
      this.checkTimer = setInterval(() => void this.scheduled(), checkMs);
      this.checkTimer.unref();
    }
  }

  async onApplicationShutdown(): Promise<void> {
    this.closed = true;
    clearInterval(this.refreshTimer);
    clearInterval(this.checkTimer);
    this.gate.close();
    await this.lifecycle.stop();
    await this.running?.catch(() => undefined);
  }

  /** Reads new activations; a store error is logged once per cause and retried at the next tick. */
  async refresh(): Promise<void> {
    try {
      if (await this.catalog.refresh()) this.log.info({ models: this.catalog.entries().map((e) => `${e.hardwareClass}@v${e.version}`) }, 'model catalog updated');
      this.lastRefreshError = undefined;
    } catch (e) {
      const msg = normaliseError(e).message;
      if (msg !== this.lastRefreshError) this.log.warn({ err: msg }, `model catalog refresh failed (models in force are kept): ${msg}`);
      this.lastRefreshError = msg;
    }
  }

  private async scheduled(): Promise<void> {
    if (this.closed || this.running) return;
    try {
      await this.runOnce(this.cfg.effectiveFromNs !== undefined ? { effectiveFromNs: this.cfg.effectiveFromNs } : {});
    } catch (e) {
      const msg = normaliseError(e).message;
      // A check interrupted by the shutdown (lifecycle.stop ends its worker) is not a failure.
      if (this.closed) this.log.debug({ err: msg }, `scheduled training check ended by the shutdown: ${msg}`);
      else this.log.warn({ err: msg }, `scheduled training check failed: ${msg}`);
    }
  }

  /** One pass over the classes: decide, train what needs it (one at a time), refresh the catalog. */
  runOnce(opts: RunOnceOptions = {}): Promise<TrainOutcome[]> {
    const run = (this.running ??= this.pass(opts).finally(() => (this.running = undefined)));
    return run;
  }

  private async pass(opts: RunOnceOptions): Promise<TrainOutcome[]> {
    await this.refresh();
    const classes = opts.classes ?? (await this.lifecycle.classes());
    const out: TrainOutcome[] = [];
    for (const hc of classes) {
      if (this.closed) break;
      let reason: TrainReason | undefined = opts.force;
      let drift;
      if (!reason) {
        const d = await this.lifecycle.decide(hc, this.catalog.get(hc), this.catalog.entries().length > 0);
        if (d.drift) this.lastDrift.set(hc, d.drift.ratio);
        reason = d.reason;
        drift = d.drift;
        if (!reason) {
          this.log.debug({ hardwareClass: hc, why: d.why }, 'no training needed');
          continue;
        }
      }
      let r: TrainOutcome;
      try {
        r = await this.lifecycle.train(hc, { reason, ...(opts.effectiveFromNs !== undefined ? { effectiveFromNs: opts.effectiveFromNs } : {}), ...(opts.untilUnixNs !== undefined ? { untilUnixNs: opts.untilUnixNs } : {}), ...(drift ? { drift } : {}) });
      } catch (e) {
        if (this.closed) break; // stopped by the shutdown (lifecycle.stop), not a failure
        const err = normaliseError(e, 'MODEL_TRAINING_FAILED');
        this.metrics.inc('wattsplit_model_trainings_total', { hardware_class: hc, reason, result: 'failed' });
        this.log.error({ hardwareClass: hc, reason, code: err.code }, `training ${hc} failed: ${err.message}`);
        out.push({ hardwareClass: hc, reason, skipped: `failed: ${err.message}` });
        continue;
      }
      this.metrics.inc('wattsplit_model_trainings_total', { hardware_class: hc, reason, result: r.version ? 'trained' : 'skipped' });
      if (r.skipped) this.log.info({ hardwareClass: hc, reason }, `training ${hc} skipped: ${r.skipped}`);
      out.push(r);
    }
    await this.refresh();
    this.outcomes.push(...out);
    return out;
  }
}

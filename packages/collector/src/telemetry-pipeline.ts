/**
 * Telemetry → attribution → store → attribution topic, one bus partition at a time (a host's frames stay
 * on one partition, in order).
 *
 * Delivery contract: the bus commits a partition's offsets only when `handle` resolves, so a frame's
 * interval is in the store before its offset is committed. When a store write (or the attribution publish)
 * fails, `handle` rejects and the bus redelivers the same messages. To make that replay exact, per host:
 * - `committed` is the last frame whose interval was stored AND published; frames at or below it are
 *   replays and are skipped;
 * - a host whose write failed is marked dirty: before its next frame the aligner forgets it and is re-seeded
 *   with the committed frame, so the failed interval is rebuilt from the same two frames, not lost and not
 *   skipped as a duplicate;
 * - the store deduplicates host+seq writes anyway (insert_deduplication_token + ReplacingMergeTree), so an
 *   interval stored before a later step failed is not counted twice.
 * Poison messages (not a TelemetryFrame, or a frame failing structural validation) go to TOPICS.deadLetter
 * with the error in headers; the partition keeps flowing.
 */
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import {
  IntervalAligner,
  StaticPowerLearner,
  checkConservation,
  type AttributionContext,
  type AttributionMethod,
  type AttributionResult,
  type HostInterval,
  type SourceName,
  type StaticPowerEstimate,
} from '@wattsplit/attribution';
import type { Store } from '@wattsplit/store';
import {
  EnergySource,
  EnergyUnit,
  TOPICS,
  WattsplitError,
  decodeFrame,
  normaliseError,
  type Bus,
  type BusMessage,
  type BusProducer,
  type BusSubscription,
  type ITelemetryFrame,
  type Logger,
  type TelemetryFrame,
} from '@wattsplit/wire';
import { encodeAttributionBatch } from './attribution-batch.js';
import { CollectorMetrics } from './collector-metrics.js';
import { DEFAULT_GROUP_ID, type CollectorConfig } from './config.js';
import { BUS, COLLECTOR_CONFIG, LOGGER, METHODS, STORE } from './tokens.js';

/** Headers set on dead-lettered messages. */
export const DLQ_HEADERS = {
  code: 'x-wattsplit-error-code',
  message: 'x-wattsplit-error',
  origin: 'x-wattsplit-origin',
} as const;

const ZERO_WATTS: Record<SourceName, number> = { rapl: 0, gpu: 0, bmc_rest: 0 };

export interface PipelineStats {
  framesAccepted: number;
  framesRejected: number;
  framesReplayed: number;
  deadLetters: number;
  intervalsStored: number;
  storeFailures: number;
}

@Injectable()
export class TelemetryPipeline implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly aligner: IntervalAligner;
  private readonly committed = new Map<string, ITelemetryFrame>();
  private readonly dirty = new Set<string>();
  private readonly learner: StaticPowerLearner | undefined;
  private readonly fallbackWatts: Record<SourceName, number>;
  private readonly producer: BusProducer;
  private readonly log: Logger;
  private sub: BusSubscription | undefined;
  readonly stats: PipelineStats = { framesAccepted: 0, framesRejected: 0, framesReplayed: 0, deadLetters: 0, intervalsStored: 0, storeFailures: 0 };

  constructor(
    @Inject(BUS) private readonly bus: Bus,
    @Inject(STORE) readonly store: Store,
    @Inject(METHODS) readonly methods: AttributionMethod[],
    @Inject(COLLECTOR_CONFIG) private readonly config: CollectorConfig,
    readonly metrics: CollectorMetrics,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.log = logger.child({ component: 'telemetry-pipeline' });
    this.aligner = new IntervalAligner(config.aligner ?? {});
    this.fallbackWatts = { ...ZERO_WATTS, ...config.staticPower?.fallbackWatts };
    this.learner =
      config.staticPower?.learn === false
        ? undefined
        : new StaticPowerLearner({ fallback: this.fallbackWatts, ...(config.staticPower?.minSamples === undefined ? {} : { minSamples: config.staticPower.minSamples }) });
    this.producer = bus.producer();
    const lagOf = (bus as Partial<{ lag(topic: string, group: string): number }>).lag;
    if (typeof lagOf === 'function') this.metrics.addBusLagProvider(() => lagOf.call(bus, TOPICS.telemetry, this.groupId));
  }

  get groupId(): string {
    return this.config.groupId ?? DEFAULT_GROUP_ID;
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.start();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.stop();
  }

  /** Subscribes to TOPICS.telemetry (idempotent). */
  async start(): Promise<void> {
    if (this.sub) return;
    this.sub = await this.bus.subscribe({
      topic: TOPICS.telemetry,
      groupId: this.groupId,
      fromBeginning: true,
      handler: (messages, partition) => this.handle(messages, partition),
    });
    this.log.info({ topic: TOPICS.telemetry, groupId: this.groupId, methods: this.methods.map((m) => m.name) }, 'collector consuming telemetry');
  }

  /** Stops consuming once the in-flight batch settled (its offsets committed or not). */
  async stop(): Promise<void> {
    const s = this.sub;
    this.sub = undefined;
    if (s) await s.stop();
    await this.producer.close();
  }

  /** The bus handler: messages of one partition, in offset order. Rejects to have them redelivered. */
  async handle(messages: readonly BusMessage[], partition: number): Promise<void> {
    for (const m of messages) await this.handleOne(m, partition);
  }

  private async handleOne(m: BusMessage, partition: number): Promise<void> {
    const where = `${m.topic}/${partition}@${m.offset}`;
    let frame: TelemetryFrame;
    try {
      frame = decodeFrame(m.value, where);
    } catch (e) {
      await this.deadLetter(m, normaliseError(e, 'FRAME_DECODE_FAILED'));
      return;
    }
    const host = frame.hostId || m.key;
    const seq = frame.seq ?? 0;
    const last = this.committed.get(host);
    if (last && (last.bootId ?? '') === (frame.bootId ?? '') && seq <= (last.seq ?? 0)) {
      // Redelivery of a frame whose interval is already stored and published.
      this.stats.framesReplayed++;
      this.log.debug({ host, seq, where }, 'skipping replayed frame');
      return;
    }
    if (this.dirty.has(host)) {
      this.aligner.forget(host);
      if (last) this.aligner.push(last);
      this.dirty.delete(host);
    }
    const r = this.aligner.push(frame);
    for (const a of r.anomalies) this.metrics.inc('wattsplit_collector_anomalies_total', { code: a.code });
    if (r.rejected) {
      if (r.rejected.code === 'FRAME_INVALID_FIELD') {
        await this.deadLetter(m, r.rejected);
        return;
      }
      this.stats.framesRejected++;
      this.metrics.inc('wattsplit_collector_frames_total', { result: 'rejected' });
      this.metrics.inc('wattsplit_collector_anomalies_total', { code: r.rejected.code });
      this.log.warn({ host, seq, where, code: r.rejected.code }, r.rejected.message);
      const w = await this.store.writeAnomalies(host, seq, frame.wallUnixNs ?? 0, [{ code: r.rejected.code, message: r.rejected.message }]);
      if (w.kind !== 'ok') this.log.warn({ host, seq, code: w.error.code }, `could not store the anomaly: ${w.error.message}`);
      return;
    }
    this.stats.framesAccepted++;
    this.metrics.inc('wattsplit_collector_frames_total', { result: 'accepted' });
    if (!r.interval) {
      // First frame of a host (or after a boot_id change): nothing to attribute yet.
      if (r.anomalies.length > 0) {
        const w = await this.store.writeAnomalies(host, seq, frame.wallUnixNs ?? 0, r.anomalies);
        if (w.kind === 'retryable') this.fail(host, w.error, where);
      }
      this.committed.set(host, frame);
      return;
    }
    await this.processInterval(r.interval, frame, m, where);
  }

  private async processInterval(iv: HostInterval, frame: TelemetryFrame, m: BusMessage, where: string): Promise<void> {
    const host = iv.hostId;
    let results: AttributionResult[];
    try {
      results = this.attribute(iv);
    } catch (e) {
      // Even the baseline could not split this interval: keep the evidence, move on.
      await this.deadLetter(m, normaliseError(e));
      this.committed.set(host, frame);
      return;
    }
    const w = await this.store.writeInterval({ interval: iv, results, raw: rawCounters(frame) });
    if (w.kind === 'retryable') {
      this.stats.storeFailures++;
      this.metrics.inc('wattsplit_collector_store_failures_total', { kind: 'retryable' });
      this.fail(host, w.error, where);
    }
    if (w.kind === 'failed') {
      // The store refuses this interval for good (bad values): redelivery would loop forever.
      this.stats.storeFailures++;
      this.metrics.inc('wattsplit_collector_store_failures_total', { kind: 'failed' });
      await this.deadLetter(m, w.error);
      this.committed.set(host, frame);
      return;
    }
    if (this.config.publishAttributions !== false) {
      const p = await this.producer.send(TOPICS.attribution, [{ key: host, value: encodeAttributionBatch(results), headers: { 'x-wattsplit-seq': String(iv.seq) } }]);
      if (p.kind !== 'ok') this.fail(host, p.error, where);
    }
    this.committed.set(host, frame);
    this.learner?.observe(iv);
    this.stats.intervalsStored++;
    this.metrics.recordMeasured(host, iv.measured, iv.t1UnixNs);
    for (const res of results) this.metrics.recordResult(res);
  }

  /** Marks the host for re-alignment and rejects the batch so the bus redelivers it. */
  private fail(host: string, err: WattsplitError, where: string): never {
    this.dirty.add(host);
    this.log.warn({ host, where, code: err.code, retriable: err.retriable }, `interval not stored, batch will be redelivered: ${err.message}`);
    throw err;
  }

  private staticPower(hostId: string): StaticPowerEstimate {
    return this.learner ? this.learner.estimate(hostId) : { watts: { ...this.fallbackWatts }, origin: 'configured' };
  }

  /**
   * Runs every method on the interval. cpu_share first (it must conserve; otherwise this throws); any other
   * method that throws or breaks conservation is logged and replaced, under its own name, by the cpu_share
   * split with a note, so every method's series stays complete.
   */
  attribute(iv: HostInterval): AttributionResult[] {
    const ctx: AttributionContext = {
      policy: this.config.policy ?? 'reserved',
      staticPower: this.staticPower(iv.hostId),
      ...(this.config.reservedWeights ? { reservedWeights: this.config.reservedWeights } : {}),
    };
    const [base, ...others] = this.methods;
    if (!base) throw new WattsplitError('CONFIG_INVALID', 'collector has no attribution method');
    const baseline = base.attribute(iv, ctx);
    const bad = checkConservation(baseline);
    if (bad.length > 0) throw new WattsplitError('INTERNAL', `baseline ${base.name} broke conservation: ${bad.join('; ')}`, { details: { host: iv.hostId, seq: iv.seq } });
    const out: AttributionResult[] = [baseline];
    for (const method of others) {
      try {
        const r = method.attribute(iv, ctx);
        if (r.method !== method.name) {
          this.log.debug({ method: method.name, reported: r.method }, 'method reported another name; stored under its own');
        }
        const res: AttributionResult = r.method === method.name ? r : { ...r, method: method.name, note: r.note || `reported as ${r.method}` };
        const problems = checkConservation(res);
        if (problems.length > 0) throw new WattsplitError('INTERNAL', `broke conservation: ${problems.slice(0, 3).join('; ')}`);
        out.push(res);
      } catch (e) {
        const err = normaliseError(e);
        this.metrics.inc('wattsplit_collector_method_fallbacks_total', { method: method.name });
        this.log.warn({ host: iv.hostId, seq: iv.seq, method: method.name, code: err.code }, `method ${method.name} failed, using ${baseline.method}: ${err.message}`);
        out.push({
          ...baseline,
          method: method.name,
          modelVersion: `fallback:${baseline.method}/${baseline.modelVersion}`,
          note: `${method.name} failed (${err.message.slice(0, 200)}); fell back to ${baseline.method}`,
          shares: baseline.shares.map((s) => ({ ...s })),
        });
      }
    }
    return out;
  }

  private async deadLetter(m: BusMessage, err: WattsplitError): Promise<void> {
    const origin = `${m.topic}/${m.partition}@${m.offset}`;
    this.log.warn({ topic: m.topic, partition: m.partition, offset: m.offset, key: m.key, code: err.code }, `poison message → ${TOPICS.deadLetter}: ${err.message}`);
    const r = await this.producer.send(TOPICS.deadLetter, [
      { key: m.key, value: m.value, headers: { ...m.headers, [DLQ_HEADERS.code]: err.code, [DLQ_HEADERS.message]: err.message.slice(0, 1000), [DLQ_HEADERS.origin]: origin } },
    ]);
    if (r.kind !== 'ok') {
      this.log.warn({ origin, code: r.error.code }, `dead-letter publish failed, batch will be redelivered: ${r.error.message}`);
      throw r.error;
    }
    this.stats.deadLetters++;
    this.metrics.inc('wattsplit_collector_dead_letters_total', {});
    this.metrics.inc('wattsplit_collector_frames_total', { result: 'poison' });
  }
}

const SOURCE_NAMES: Record<number, string> = { [EnergySource.ENERGY_SOURCE_RAPL]: 'rapl', [EnergySource.ENERGY_SOURCE_GPU]: 'gpu', [EnergySource.ENERGY_SOURCE_BMC]: 'bmc' };
const UNIT_NAMES: Record<number, string> = { [EnergyUnit.ENERGY_UNIT_MICROJOULE]: 'uJ', [EnergyUnit.ENERGY_UNIT_MILLIJOULE]: 'mJ', [EnergyUnit.ENERGY_UNIT_JOULE]: 'J' };

function rawCounters(f: TelemetryFrame): { bootId: string; counters: { id: string; source: string; unit: string; value: number }[] } {
  return {
    bootId: f.bootId,
    counters: f.counters.map((c) => ({ id: c.id ?? '', source: SOURCE_NAMES[c.source ?? 0] ?? 'unspecified', unit: UNIT_NAMES[c.unit ?? 0] ?? 'unspecified', value: Number(c.value ?? 0) })),
  };
}

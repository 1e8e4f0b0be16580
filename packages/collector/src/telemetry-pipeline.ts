/**
 * TelemetryPipeline: telemetry → attribution → store → attribution topic, one bus partition at a time (a
 * host's frames stay on one partition, in order). It composes the pieces that own the state:
 * - HostProgress (host-progress.ts): per host, the committed frame (replays), the checkpoint lookup, the
 *   stored floor of a host taken over, the aligner re-seed after a dropped frame;
 * - PendingBatches (pending-batches.ts): per partition, the batch to retry and the checkpoint candidates;
 * - BatchEntry (batch-entry.ts): each interval's write state (stored, possibly landed, failed group), and
 *   IntervalWriter (interval-writer.ts), which stores a batch so each interval lands once;
 * - WallClockCheck (wall-clock-check.ts): frames whose wall clock is implausible are dated by the bus;
 * - GroupCommit (group-commit.ts): interval writes and checkpoint saves of concurrent partitions, grouped;
 * - LearnerStatePersistence (learner-state-persistence.ts): the learners' per-host state.
 *
 * Delivery contract: the bus commits a partition's offsets only when `handle` resolves, so a frame's
 * interval is in the store before its offset is committed. All intervals of one handler call are written
 * as ONE store batch (4 inserts, however many intervals). When that write (or the checkpoint save, or the
 * attribution publish) fails transiently, the batch is kept as the partition's pending batch and `handle`
 * rejects; on redelivery the pending batch is retried verbatim first (same intervals, same
 * insert_deduplication_token: if the failed write had landed, ClickHouse drops the retry and its rollup
 * inserts), then its frames count as committed and are skipped as replays. A write refused for good is
 * retried interval by interval; the intervals refused again go to TOPICS.deadLetter. Hosts with a frame
 * aligned but not kept are re-seeded from their committed frame before their next frame.
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
import { ModelStore, type Checkpoint, type HostResumeState, type Store, type StoredInterval, type StoredRange } from '@wattsplit/store';
import {
  EnergySource,
  EnergyUnit,
  RepeatGate,
  markReported,
  wasReported,
  TOPICS,
  WattsplitError,
  backoffMs,
  decodeFrame,
  normaliseError,
  type Bus,
  type BusMessage,
  type BusProducer,
  type BusSubscription,
  type HandlerOutcome,
  type Logger,
  type TelemetryFrame,
} from '@wattsplit/wire';
import { encodeAttributionBatch } from './attribution-batch.js';
import { BatchEntry } from './batch-entry.js';
import { CapWatch } from './cap-watch.js';
import { CollectorMetrics } from './collector-metrics.js';
import { DEFAULT_CHECKPOINT_EVERY_MS, DEFAULT_GROUP_ID, type CollectorConfig } from './config.js';
import { GroupCommit } from './group-commit.js';
import { HostProgress } from './host-progress.js';
import { IntervalWriter } from './interval-writer.js';
import { LearnerStatePersistence } from './learner-state-persistence.js';
import { PartitionContinuity } from './partition-continuity.js';
import { PendingBatches } from './pending-batches.js';
import { BUS, COLLECTOR_CONFIG, LOGGER, METHODS, STORE } from './tokens.js';
import { WallClockCheck } from './wall-clock-check.js';

/** The most seqs per host below its stored floor that a resume looks up at once (prefetchResume). */
const STORED_AHEAD_MAX = 3600;

/** Headers set on dead-lettered messages. */
export const DLQ_HEADERS = {
  code: 'x-wattsplit-error-code',
  message: 'x-wattsplit-error',
  origin: 'x-wattsplit-origin',
} as const;

const ZERO_WATTS: Record<SourceName, number> = { rapl: 0, gpu: 0, bmc_rest: 0 };

/** A start retrying its subscribe: the next attempt's timer, the attempt running, attempts made. */
interface Subscribing {
  timer: NodeJS.Timeout | undefined;
  attempt: Promise<void> | undefined;
  stopped: boolean;
  attempts: number;
}

export interface PipelineStats {
  framesAccepted: number;
  framesRejected: number;
  framesReplayed: number;
  deadLetters: number;
  intervalsStored: number;
  storeFailures: number;
  /** Batches whose not yet resumed hosts were looked up together (prefetchResume). */
  resumeLookups: number;
}

@Injectable()
export class TelemetryPipeline implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly aligner: IntervalAligner;
  /** Per host: committed frame, checkpoint lookup, stored floor, re-seed. */
  private readonly hosts = new HostProgress();
  /** Per partition: the batch to retry on redelivery, the checkpoint candidates. */
  private readonly partitions = new PendingBatches();
  /** Whether another collector handled a partition since our last batch of it. */
  private readonly continuity = new PartitionContinuity();
  /** The partitions the bus's last group join assigned (undefined on a bus that says none: in-process). */
  private assignedNow: Set<number> | undefined;
  private readonly wallClock: WallClockCheck;
  private readonly learner: StaticPowerLearner | undefined;
  /** Saves and restores the learners' per-host state (learner-state-persistence.ts). */
  readonly learnerState: LearnerStatePersistence;
  private readonly fallbackWatts: Record<SourceName, number>;
  private readonly producer: BusProducer;
  /** Interval writes and checkpoint saves of concurrent partitions, each grouped into one store call. */
  readonly writer: GroupCommit<BatchEntry>;
  /** Stores batches of intervals once each (interval-writer.ts). */
  private readonly intervals: IntervalWriter;
  private readonly checkpointWriter: GroupCommit<Checkpoint>;
  /** checkpoints.everyMs in effect: 0 = save checkpoints and commit with every batch. */
  readonly checkpointEveryMs: number;
  /** Per partition: performance.now() ms of its last checkpoint save (absent: none yet, the next batch saves). */
  private readonly checkpointSavedAt = new Map<number, number>();
  /** Per partition: its handler calls and idle commits, one after another (serial). */
  private readonly partitionChains = new Map<number, Promise<unknown>>();
  /** Per partition whose last handler call resolved `{ commit: false }`: the timer of its idle commit. */
  private readonly idleCommitTimers = new Map<number, NodeJS.Timeout>();
  /** Per host of the batch being handled: what prefetchResume found (its checkpoint and stored floor). */
  private readonly resumeLookups = new Map<string, HostResumeState>();
  /**
   * Per resumed host whose checkpoint is behind its stored floor: which intervals in (afterSeq, toSeq] are
   * stored, looked up with its batch (prefetchResume), so its redelivered stored frames are checked without
   * a query each. Dropped when the host passes its floor or is released.
   */
  private readonly storedAhead = new Map<string, { afterSeq: number; toSeq: number; bySeq: Map<number, StoredInterval> }>();
  /** Whether the last batch's attributions were published (attributionReaders: logged when this changes). */
  private publishingAttributions = true;
  private readonly log: Logger;
  private sub: BusSubscription | undefined;
  /** A start whose subscribe failed and is being retried (start). */
  private subscribing: Subscribing | undefined;
  /**
   * Each partition's last batch, performance.now() ms: `start`, when its handler was let go by `linger`
   * (or, without a linger before it, when its processing began), so that the bus's offset commit and
   * hand-over count too; `end`, when its processing (decode, align, attribute) ended.
   */
  private readonly processing = new Map<number, { start: number; end: number }>();
  /** Partitions whose batch is being processed (decoded, aligned, attributed) now. */
  private processingNow = 0;
  /** Partitions let go by `linger` whose next batch has not begun yet: performance.now() ms of the release. */
  private readonly released = new Map<number, number>();
  /** The store-write spacing the linger works to, ms; 0 when it is off (no spacing, or storeWrites.linger false). */
  private readonly lingerSpacingMs: number;
  /** Handlers held by `linger`, each woken by calling it. */
  private readonly lingering = new Set<() => void>();
  /** The live power-cap watch, when configured: fed each stored interval, evaluated after each batch. */
  readonly capWatch: CapWatch | undefined;
  readonly stats: PipelineStats = { framesAccepted: 0, framesRejected: 0, framesReplayed: 0, deadLetters: 0, intervalsStored: 0, storeFailures: 0, resumeLookups: 0 };

  constructor(
    @Inject(BUS) private readonly bus: Bus,
    @Inject(STORE) readonly store: Store,
    @Inject(METHODS) readonly methods: AttributionMethod[],
    @Inject(COLLECTOR_CONFIG) private readonly config: CollectorConfig,
    readonly metrics: CollectorMetrics,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.log = logger.child({ component: 'telemetry-pipeline' });
    metrics.initKnownLabels(methods.map((m) => m.name));
    this.aligner = new IntervalAligner(config.aligner ?? {});
    this.wallClock = new WallClockCheck({ maxAheadS: config.wallClock?.maxAheadS, maxBehindS: config.wallClock?.maxBehindS, logger: this.log });
    this.fallbackWatts = { ...ZERO_WATTS, ...config.staticPower?.fallbackWatts };
    this.learner =
      config.staticPower?.learn === false
        ? undefined
        : new StaticPowerLearner({
            fallback: this.fallbackWatts,
            ...(config.staticPower?.minSamples === undefined ? {} : { minSamples: config.staticPower.minSamples }),
            ...(config.staticPower?.refreshEvery === undefined ? {} : { refreshEvery: config.staticPower.refreshEvery }),
          });
    this.producer = bus.producer();
    this.capWatch = config.capWatch ? new CapWatch(config.capWatch.config, config.capWatch.advisor, { producer: this.producer, metrics, logger: this.log, methods: ['cpu_share', ...methods.map((m) => m.name)] }) : undefined;
    this.learnerState = new LearnerStatePersistence({
      models: new ModelStore(store),
      // What was stored after the saved state (a collector killed between two saves) is learned again from
      // the store, in seq order: the learners end where an uninterrupted collector would have.
      replay: async (hostId, afterSeq, limit) => {
        const ivs = await store.readHistory({ hostId, sinceUnixNs: 0, ...(afterSeq !== undefined ? { afterSeq } : {}), limit, newest: true });
        for (const iv of ivs.sort((a, b) => a.seq - b.seq)) this.observe(iv);
        return ivs.length;
      },
      learners: [...(this.learner ? [{ owner: 'pipeline', learner: this.learner }] : []), ...methods.map((m) => ({ owner: m.name, learner: m }))],
      logger: this.log,
      ...(config.learnerStateSaveIntervalS !== undefined ? { saveIntervalS: config.learnerStateSaveIntervalS } : {}),
    });
    const spacing = config.storeWrites?.minIntervalMs ?? 0;
    this.lingerSpacingMs = config.storeWrites?.linger !== false && spacing > 0 ? spacing : 0;
    this.writer = new GroupCommit(
      (es) => {
        this.metrics.inc('wattsplit_collector_store_writes_total', {});
        this.metrics.inc('wattsplit_collector_store_write_intervals_total', {}, es.length);
        return this.store.writeIntervals(es.map((e) => e.write));
      },
      {
        ...config.storeWrites,
        // With the linger the partitions' batches are processed just before a write may start: one still
        // processing then holds it a little (a quarter of the spacing at most) rather than miss it.
        ...(this.lingerSpacingMs > 0 ? { gather: { pending: () => this.batchesOnTheirWay(spacing / 4), maxMs: spacing / 4 } } : {}),
      },
    );
    this.intervals = new IntervalWriter({ store, groups: this.writer, logger: this.log });
    this.checkpointWriter = new GroupCommit((cps) => this.store.saveCheckpoints(cps), { maxInFlight: 1, maxItems: 100_000 });
    const every = config.checkpoints?.everyMs;
    if (bus.redelivers === true) this.checkpointEveryMs = every ?? DEFAULT_CHECKPOINT_EVERY_MS;
    else {
      this.checkpointEveryMs = 0;
      // the messages end with this process: a restart's bridge must be saved with every batch
      if (every) this.log.warn({ everyMs: every }, `checkpoints.everyMs=${every} ignored: this bus does not redeliver uncommitted messages after a restart (in-process), so checkpoints are saved and offsets committed with every batch`);
    }
    const lagOf = (bus as Partial<{ lag(topic: string, group: string): number | Promise<number> }>).lag;
    if (typeof lagOf === 'function') {
      // InProcessBus answers at once; Kafka buses ask the broker. Metrics render synchronously, so an
      // asynchronous answer is reported at the next scrape (each scrape starts the next query).
      let last: number | undefined;
      let asking = false;
      this.metrics.addBusLagProvider(() => {
        if (asking) return last;
        let v: number | Promise<number>;
        try {
          v = lagOf.call(bus, TOPICS.telemetry, this.groupId);
        } catch {
          return last;
        }
        if (typeof v === 'number') return (last = v);
        asking = true;
        void v.then(
          (n) => void (last = n),
          (e: unknown) => this.log.debug({ err: normaliseError(e).message }, 'bus lag query failed'),
        ).finally(() => void (asking = false));
        return last;
      });
    }
  }

  get groupId(): string {
    return this.config.groupId ?? DEFAULT_GROUP_ID;
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.start();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.stop();
    await this.learnerState.saveAll();
  }

  /**
   * Subscribes to TOPICS.telemetry (idempotent). When the bus cannot be reached (Kafka down or not up yet:
   * a retriable error), the collector does not exit or hang: it logs what failed and keeps trying in the
   * background (1 s, doubling to 30 s), its HTTP API and /metrics up meanwhile (`consuming` false, shown on
   * /healthz); the frames wait in Kafka and at the agents. A refusal for good (authentication, a bad
   * setting) at the first attempt rejects: the process exits with the reason.
   */
  async start(): Promise<void> {
    if (this.sub || this.subscribing) return;
    try {
      this.sub = await this.subscribeOnce();
    } catch (e) {
      const err = normaliseError(e, 'TRANSPORT_UNAVAILABLE');
      if (!err.retriable) throw err;
      const state: Subscribing = { timer: undefined, attempt: undefined, stopped: false, attempts: 1 };
      this.subscribing = state;
      this.retrySubscribe(state, err);
      return;
    }
    this.logConsuming();
  }

  /** Whether the pipeline is subscribed to the telemetry topic (false while a start retries, and after stop). */
  get consuming(): boolean {
    return this.sub !== undefined;
  }

  private subscribeOnce(): Promise<BusSubscription> {
    return this.bus.subscribe({
      topic: TOPICS.telemetry,
      groupId: this.groupId,
      fromBeginning: true,
      onAssigned: (partitions) => this.assigned(partitions),
      // The linger is outside `track`: a held handler has finished its frames (the ingest delay counts
      // frames from receipt until stored and published, not the wait for the next batch).
      handler: (messages, partition) =>
        this.serial(partition, async () => {
          let outcome: void | HandlerOutcome = undefined;
          await this.metrics.ingest.track(messages, async () => {
            outcome = await this.handle(messages, partition);
          });
          this.scheduleIdleCommit(partition, outcome);
          await this.linger(partition);
          return outcome;
        }),
    });
  }

  /** Runs `fn` after the partition's earlier handler calls and idle commits (the bus serialises only its own calls). */
  private serial<T>(partition: number, fn: () => Promise<T>): Promise<T> {
    const run = (this.partitionChains.get(partition) ?? Promise.resolve()).then(fn, fn);
    this.partitionChains.set(partition, run.catch(() => undefined));
    return run;
  }

  /**
   * A handler call that left checkpoints unsaved (`{ commit: false }`): if no further call of the partition comes
   * within checkpoints.everyMs, save them and commit what was handled (BusSubscription.commitHandled), so a
   * partition that goes quiet does not keep its last frames uncommitted (and counted as lag) until its next message.
   */
  private scheduleIdleCommit(partition: number, outcome: void | HandlerOutcome): void {
    const t = this.idleCommitTimers.get(partition);
    if (t) clearTimeout(t);
    this.idleCommitTimers.delete(partition);
    if (outcome?.commit !== false || !this.sub?.commitHandled) return;
    const timer = setTimeout(() => {
      if (this.idleCommitTimers.get(partition) !== timer) return;
      this.idleCommitTimers.delete(partition);
      void this.serial(partition, () => this.idleCommit(partition));
    }, this.checkpointEveryMs);
    this.idleCommitTimers.set(partition, timer);
  }

  private async idleCommit(partition: number): Promise<void> {
    const sub = this.sub;
    // a later handler call decided (it reset the timer), a failed batch waits for its redelivery, or stopping
    if (!sub?.commitHandled || this.idleCommitTimers.has(partition) || this.partitions.pending(partition)) return;
    const retry = await this.submitCheckpoints(partition);
    if (retry) {
      this.log.warn({ partition, code: retry.code }, `checkpoints of an idle partition not saved, retried in ${this.checkpointEveryMs} ms: ${retry.message}`);
      this.scheduleIdleCommit(partition, { commit: false });
      return;
    }
    try {
      await sub.commitHandled(partition);
    } catch (e) {
      // the partition moved to another member or the broker is away: its next owner reads the frames again
      this.log.debug({ partition, err: normaliseError(e).message }, 'offset commit of an idle partition failed; its frames since the last commit are delivered again to its next owner');
    }
  }

  /** The next subscribe attempt after `err`, with back-off; logged each time (a warning; an error if refused for good). */
  private retrySubscribe(state: Subscribing, err: WattsplitError): void {
    const wait = backoffMs(state.attempts - 1, 1000, 30_000);
    const fields = { topic: TOPICS.telemetry, groupId: this.groupId, code: err.code, attempts: state.attempts, retryInMs: Math.round(wait) };
    const what = `cannot consume ${TOPICS.telemetry} (${err.message}); retrying in ${(wait / 1000).toFixed(1)} s. The collector stays up (HTTP API, /metrics); frames wait in Kafka and at the agents`;
    if (err.retriable) this.log.warn(fields, what);
    else this.log.error(fields, `${what} (refused for good: fix the bus configuration)`);
    state.timer = setTimeout(() => {
      state.timer = undefined;
      if (state.stopped) return;
      state.attempt = this.subscribeOnce().then(
        async (sub) => {
          if (state.stopped) {
            await sub.stop();
            return;
          }
          this.sub = sub;
          this.subscribing = undefined;
          this.logConsuming(state.attempts + 1);
        },
        (e: unknown) => {
          if (state.stopped) return;
          state.attempts++;
          this.retrySubscribe(state, normaliseError(e, 'TRANSPORT_UNAVAILABLE'));
        },
      );
    }, wait);
  }

  private logConsuming(attempts = 1): void {
    this.log.info({ topic: TOPICS.telemetry, groupId: this.groupId, methods: this.methods.map((m) => m.name), ...(attempts > 1 ? { attempts } : {}) }, attempts > 1 ? `collector consuming telemetry (subscribed at attempt ${attempts})` : 'collector consuming telemetry');
  }

  /** Stops consuming once the in-flight batch settled (its offsets committed or not). */
  async stop(): Promise<void> {
    const retrying = this.subscribing;
    this.subscribing = undefined;
    if (retrying) {
      retrying.stopped = true;
      if (retrying.timer) clearTimeout(retrying.timer);
      await retrying.attempt?.catch(() => undefined);
    }
    const s = this.sub;
    this.sub = undefined;
    for (const t of this.idleCommitTimers.values()) clearTimeout(t);
    this.idleCommitTimers.clear();
    for (const wake of [...this.lingering]) wake();
    if (s) await s.stop();
    await Promise.all(this.partitionChains.values()); // an idle commit running
    if (s) await this.saveCheckpointsAtStop();
    await this.producer.close();
  }

  /**
   * A stop with checkpoints not yet due (checkpoints.everyMs): saves them now, so the next start resumes each
   * host from its last stored frame and skips the redelivered ones as replays instead of checking them
   * against the store. Only partitions whose last write succeeded: a pending batch's frames are not stored,
   * and a checkpoint past them would skip their intervals. The offsets stay uncommitted (the handler is
   * gone); that costs only the redelivery.
   */
  private async saveCheckpointsAtStop(): Promise<void> {
    const cps: Checkpoint[] = [];
    const parts = this.partitions.candidatePartitions().filter((p) => !this.partitions.pending(p));
    for (const p of parts) cps.push(...this.partitions.checkpoints(p));
    if (cps.length === 0) return;
    const r = await this.store.saveCheckpoints(cps);
    if (r.kind === 'ok') {
      for (const p of parts) this.partitions.checkpointsSaved(p);
      this.log.info({ hosts: cps.length, partitions: parts.length }, `saved ${cps.length} hosts' checkpoints at stop`);
    } else {
      this.log.warn({ hosts: cps.length, code: r.error.code }, `could not save checkpoints at stop (the next start checks the redelivered frames against the store instead): ${r.error.message}`);
    }
  }

  /**
   * The bus's onAssigned: a group join assigned these partitions. Those this collector kept hosts of may have
   * been handled by another member in between, which may have stored intervals without committing them, so
   * such a partition can come back at this collector's own next offset (partition-continuity.ts): its next
   * batch compares its hosts with the store first (verifyReassigned).
   */
  assigned(partitions: readonly number[]): void {
    this.continuity.assigned(partitions);
    // a partition taken away commits nothing more here (its next owner reads its uncommitted frames again)
    const mine = new Set(partitions);
    this.assignedNow = mine;
    for (const [p, t] of this.idleCommitTimers) {
      if (mine.has(p)) continue;
      clearTimeout(t);
      this.idleCommitTimers.delete(p);
    }
  }

  /**
   * A partition assigned again since its last batch and continuing at its next offset: if any of its hosts
   * has intervals stored past the frame this collector keeps for it, another collector handled the partition
   * in between and everything kept of its hosts is stale: they all resume from the store, as when a batch
   * starts past the next offset; the store's answer for them is returned, so that their resume (prefetchResume,
   * in the same handler call) does not ask again. A store failure rejects (the batch is redelivered and the
   * check repeated).
   */
  private async verifyReassigned(partition: number, offset: string): Promise<Map<string, HostResumeState> | undefined> {
    const hosts = this.continuity.toVerify(partition);
    if (hosts.length === 0) return undefined;
    const found = await this.store.resumeState(hosts);
    const ahead = hosts.filter((h) => {
      const floor = found.get(h)?.floor;
      if (!floor) return false;
      const kept = this.hosts.committed(h)?.seq ?? this.hosts.storedFloor(h)?.seq;
      return kept === undefined || floor.seq > kept;
    });
    this.continuity.verified(partition);
    if (ahead.length === 0) {
      this.log.debug({ partition, offset, hosts: hosts.length }, `partition ${partition} assigned again: nothing of its hosts stored past what this collector keeps, it continues`);
      return undefined;
    }
    this.releasePartition(partition, hosts);
    this.log.info(
      { partition, offset, hosts: hosts.length, storedAhead: ahead.length },
      `partition ${partition} came back at offset ${offset} with ${ahead.length} of its ${hosts.length} hosts stored further by another collector (which had not committed them): its hosts resume from the store`,
    );
    // every host asked about has its answer here, nothing stored included
    return new Map(hosts.map((h) => [h, found.get(h) ?? {}]));
  }

  /** Everything kept of the partition's hosts is stale: each resumes from the store at its next frame. */
  private releasePartition(partition: number, hosts: readonly string[]): void {
    this.partitions.settle(partition);
    this.partitions.checkpointsSaved(partition);
    for (const host of hosts) {
      this.aligner.forget(host);
      this.storedAhead.delete(host);
      this.hosts.release(host);
      this.learnerState.release(host);
    }
  }

  /**
   * The bus handler: messages of one partition, in offset order. Rejects to have them redelivered. Resolves
   * `{ commit: false }` while the partition has checkpoint candidates not saved yet (checkpoints.everyMs):
   * its offsets are committed together with the checkpoints of the frames before them.
   */
  async handle(messages: readonly BusMessage[], partition: number): Promise<void | HandlerOutcome> {
    // a batch after a linger: its handler's release is where this cycle's processing span starts
    const released = this.released.get(partition);
    this.released.delete(partition);
    const first = messages[0];
    const moved = first ? this.continuity.begin(partition, first.offset) : [];
    if (moved.length) {
      // Handled by another collector since our last batch of it: what we kept is stale (partition-continuity.ts).
      this.releasePartition(partition, moved);
      this.log.info({ partition, offset: first?.offset, hosts: moved.length }, `partition ${partition} was handled elsewhere before offset ${first?.offset ?? ''}: its ${moved.length} hosts resume from the store`);
    }
    const known = moved.length === 0 && first ? await this.verifyReassigned(partition, first.offset) : undefined;
    const pending = this.partitions.pending(partition);
    if (pending) await this.flush(partition, pending);
    const batch: BatchEntry[] = [];
    const lingering = this.lingerSpacingMs > 0;
    const start = released ?? performance.now();
    if (lingering) this.processingNow++;
    // partitions' handlers interleave: each drops only the lookups it made
    let looked: readonly string[] = [];
    try {
      looked = await this.prefetchResume(messages, known);
      for (const m of messages) {
        const entry = await this.handleOne(m, partition, batch);
        if (entry) batch.push(entry);
      }
    } finally {
      for (const h of looked) this.resumeLookups.delete(h);
      this.learnerState.clearPrefetched(looked);
      if (lingering) {
        this.processingNow--;
        this.processing.set(partition, { start, end: performance.now() });
        // The flush below submits the batch a few microtasks from now, which looks at the held write
        // again; a batch with nothing to store submits nothing, so look again after those microtasks.
        setImmediate(() => this.writer.poke());
      }
    }
    if (this.assignedNow && !this.assignedNow.has(partition)) return this.revokedMidBatch(partition, batch, messages);
    await this.flush(partition, batch);
    const last = messages[messages.length - 1];
    if (last) this.continuity.handled(partition, last.offset);
    // Commit only what the saved checkpoints cover: a restart from the committed offset then finds, for every
    // host, a checkpoint at or before its first redelivered frame (and checks what was stored after it).
    return this.partitions.checkpoints(partition).length > 0 ? { commit: false } : undefined;
  }

  /**
   * A group join took the partition away while this handler call processed its batch (a client can finish a
   * handler call after the join: @platformatic/kafka always may, kafkajs sometimes): the batch is not stored.
   * Its new owner reads the same frames from the committed offset and resumes their hosts from the store;
   * storing them here too could land after the new owner's lookup and count those intervals twice. Everything
   * kept of the partition's hosts is dropped, and nothing is committed. (A write already on its way when the
   * join comes is not recalled: that window is one store write long.)
   */
  private revokedMidBatch(partition: number, batch: readonly BatchEntry[], messages: readonly BusMessage[]): HandlerOutcome {
    const hosts = new Set(this.continuity.revoked(partition));
    for (const e of batch) hosts.add(e.hostId);
    this.releasePartition(partition, [...hosts]);
    this.log.info(
      { partition, offset: messages[0]?.offset, messages: messages.length, intervals: batch.length, hosts: hosts.size },
      `partition ${partition} was taken away by a group join while its batch was processed: ${batch.length} intervals not stored here (its new owner stores them)`,
    );
    return { commit: false };
  }

  /**
   * Holds a partition's handler, after its batch was stored and published, until shortly before the
   * next store write may start by the spacing (storeWrites.minIntervalMs > 0 and storeWrites.linger not
   * false). The bus queues the partition's messages meanwhile and hands them over when the handler
   * returns, so the frames that arrived during the hold are processed just before that write and go into
   * it. Without the hold the handler returns as soon as its batch is published, takes what arrived by
   * then, and that batch waits for the next write: a frame arriving just after it waits for the write
   * after that one, about two write cycles.
   *
   * "Shortly before": the next write's start less a margin for processing the partitions' batches, 1.5 ×
   * this cycle's processing span (earliest start to latest end of the batches processed in the last
   * spacing, which covers partitions processed one after another or interleaved) + 25 ms, at most the
   * spacing. When processing takes about the whole spacing (a loaded collector) there is nothing to wait
   * for and the handler returns at once. Stopping the pipeline ends every hold.
   */
  private async linger(partition: number): Promise<void> {
    const next = this.writer.nextStartAt();
    if (this.lingerSpacingMs === 0 || next === undefined || !this.sub) return;
    try {
      await this.hold(next);
    } finally {
      this.released.set(partition, performance.now());
    }
  }

  /**
   * Whether a partition's batch is on its way to the group commit: being processed, or its handler let
   * go by `linger` less than `withinMs` ago and its next batch not begun (the bus commits the offsets,
   * then hands the queued messages over). A partition whose queue was empty then is not called again
   * until a message comes: after `withinMs` it is no longer waited for.
   */
  private batchesOnTheirWay(withinMs: number): boolean {
    if (this.processingNow > 0) return true;
    const now = performance.now();
    for (const [p, t] of this.released) {
      if (now - t < withinMs) return true;
      this.released.delete(p);
    }
    return false;
  }

  private async hold(next: number): Promise<void> {
    const spacing = this.lingerSpacingMs;
    const now = performance.now();
    let first = Infinity;
    let last = -Infinity;
    for (const [p, r] of this.processing) {
      if (r.end < now - spacing) {
        this.processing.delete(p);
        continue;
      }
      if (r.start < first) first = r.start;
      if (r.end > last) last = r.end;
    }
    const span = last > first ? last - first : 0;
    const wait = next - Math.min(spacing, 1.5 * span + 25) - now;
    if (wait < 1) return;
    this.metrics.inc('wattsplit_collector_linger_seconds_total', {}, wait / 1000);
    await new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.lingering.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, wait);
      this.lingering.add(wake);
    });
  }

  /** Decodes and aligns one message; returns the interval to store, if any. */
  private async handleOne(m: BusMessage, partition: number, batch: readonly BatchEntry[]): Promise<BatchEntry | undefined> {
    const where = `${m.topic}/${partition}@${m.offset}`;
    let frame: TelemetryFrame;
    try {
      frame = decodeFrame(m.value, where);
    } catch (e) {
      await this.deadLetter(m, normaliseError(e, 'FRAME_DECODE_FAILED'));
      return undefined;
    }
    const host = frame.hostId || m.key;
    const seq = frame.seq ?? 0;
    this.continuity.saw(partition, host);
    const clockAnomaly = this.wallClock.dateByBusIfImplausible(frame, m);
    if (this.hosts.needsResume(host)) await this.resume(host);
    const last = this.hosts.committed(host);
    const bootId = frame.bootId ?? '';
    let alreadyStored = false;
    if (last && seq <= (last.seq ?? 0)) {
      // At or below the committed frame: a redelivery, unless a new boot is reusing the host's seqs.
      const stored = (last.bootId ?? '') === bootId ? undefined : (await this.store.storedIntervals(host, [seq]))[0];
      if ((last.bootId ?? '') !== bootId && stored?.bootId !== bootId) return this.refuseSeqReuse(m, frame, { where, previousBootId: last.bootId ?? '', lastSeq: last.seq ?? 0 });
      this.stats.framesReplayed++;
      this.log.debug({ host, seq, where }, 'skipping replayed frame');
      return undefined;
    }
    const floor = this.hosts.storedFloor(host);
    if (floor && seq <= floor.seq) {
      // Stored before this collector took the host over? Then write nothing of it again.
      const ahead = this.storedAhead.get(host);
      const stored = ahead && seq > ahead.afterSeq && seq <= ahead.toSeq ? ahead.bySeq.get(seq) : (await this.store.storedIntervals(host, [seq]))[0];
      if (stored && stored.bootId !== '' && stored.bootId !== bootId) return this.refuseSeqReuse(m, frame, { where, previousBootId: stored.bootId, lastSeq: floor.seq });
      alreadyStored = stored?.attributed === true;
    } else if (floor) {
      this.hosts.passedStoredFloor(host);
      this.storedAhead.delete(host);
      const ref = this.aligner.referenceSeq(host);
      if (ref !== undefined && ref < floor.seq) {
        // The reference (a stale checkpoint) is behind intervals already stored and the frames between
        // were not redelivered: an interval from it would count stored energy again. Start afresh.
        this.aligner.forget(host);
        this.hosts.uncommit(host);
        this.log.warn({ host, seq, referenceSeq: ref, storedSeq: floor.seq }, `${host}: the frames between stored seq ${floor.seq} and seq ${seq} were not redelivered; seq ${seq} starts afresh (interval ${floor.seq}→${seq} not attributed)`);
      }
    }
    if (this.hosts.takeDirty(host)) {
      this.aligner.forget(host);
      if (last) this.aligner.push(last);
    }
    const r = this.aligner.push(frame);
    if (clockAnomaly && !r.rejected) r.anomalies.unshift(clockAnomaly);
    for (const a of r.anomalies) this.metrics.inc('wattsplit_collector_anomalies_total', { code: a.code });
    if (r.rejected) {
      if (r.rejected.code === 'FRAME_INVALID_FIELD') {
        await this.deadLetter(m, r.rejected);
        return undefined;
      }
      if (r.rejected.code === 'FRAME_SEQ_REUSED') {
        const d = r.rejected.details as { previousBootId?: string; lastSeq?: number };
        return this.refuseSeqReuse(m, frame, { where, previousBootId: d.previousBootId ?? '', lastSeq: d.lastSeq ?? 0 });
      }
      if (r.rejected.code === 'FRAME_HOST_CONFLICT') return this.refuseConflict(m, frame, where, r.rejected);
      this.stats.framesRejected++;
      this.metrics.inc('wattsplit_collector_frames_total', { result: 'rejected' });
      this.metrics.inc('wattsplit_collector_anomalies_total', { code: r.rejected.code });
      this.log.warn({ host, seq, where, code: r.rejected.code }, r.rejected.message);
      const w = await this.store.writeAnomalies(host, seq, frame.wallUnixNs ?? 0, [{ code: r.rejected.code, message: r.rejected.message }]);
      if (w.kind !== 'ok') this.log.warn({ host, seq, code: w.error.code }, `could not store the anomaly: ${w.error.message}`);
      return undefined;
    }
    this.stats.framesAccepted++;
    this.metrics.inc('wattsplit_collector_frames_total', { result: 'accepted' });
    await this.learnerState.restoreOnce(host);
    // A held frame (a billed counter unreadable: the next good frame's interval will span it) must not
    // become the checkpoint a restarted collector resumes from; the aligner's reference frame must.
    const held = !r.interval && this.aligner.referenceSeq(host) !== seq;
    if (!held) this.partitions.offerCheckpoint(partition, { hostId: host, seq, bootId: frame.bootId ?? '', frame: m.value });
    if (!r.interval) {
      // First frame of a host (or after a boot_id change), or a held frame: nothing to attribute yet.
      if (r.anomalies.length > 0) {
        const w = await this.store.writeAnomalies(host, seq, frame.wallUnixNs ?? 0, r.anomalies);
        if (w.kind === 'retryable') {
          // Nothing of this frame is kept: re-align the host from its committed frame on redelivery.
          this.hosts.markDirty(host);
          this.reportRetry(undefined, { host, where, code: w.error.code }, `anomalies not stored, batch will be redelivered: ${w.error.message}`, w.error);
          throw markReported(w.error);
        }
      }
      // Seeds commit at once unless intervals of this host wait in the batch (commit order = frame order).
      if (!held && !batch.some((e) => e.hostId === host)) this.hosts.commit(host, frame);
      return undefined;
    }
    if (alreadyStored) {
      // Its interval is in the store (written before a restart or by the replica that had the host):
      // the aligner moved on with it; storing or publishing it again would count it twice.
      this.stats.framesReplayed++;
      this.log.debug({ host, seq, where }, 'interval already stored before this collector took the host over: not written again');
      if (!batch.some((e) => e.hostId === host)) this.hosts.commit(host, frame);
      return undefined;
    }
    let results: AttributionResult[];
    try {
      results = this.attribute(r.interval);
    } catch (e) {
      // Even the baseline could not split this interval: keep the evidence, move on.
      await this.deadLetter(m, normaliseError(e));
      return undefined;
    }
    this.observe(r.interval);
    return new BatchEntry({ interval: r.interval, results, raw: rawCounters(frame) }, frame, m);
  }

  /**
   * Stores, publishes and commits a batch; on a transient failure keeps it as pending and rejects.
   * IntervalWriter stores it (once, whatever failed before); a batch refused for good is written interval
   * by interval, the intervals refused again are dead-lettered and their hosts move past them.
   */
  /**
   * The learners see each interval once, right after it is attributed and before the host's next one:
   * what interval k is attributed with (static power, GPU signatures) depends only on the host's intervals
   * before k, never on how the bus batched the frames. Each learner ignores an interval at or below the
   * seq it last observed for the host, so a redelivery or a re-alignment is never learned twice.
   */
  private observe(iv: HostInterval): void {
    this.learner?.observe(iv);
    for (const method of this.methods) method.observe?.(iv);
    this.learnerState.touched(iv.hostId);
  }

  /** A store write failing transiently (any partition): since when, how many failed writes; cleared by the next stored one. */
  private storeDown: { sinceMs: number; failures: number; lastError: string } | undefined;
  /** While the store is down every partition's redelivery fails again: one warning per kind per 30 s (RepeatGate). */
  private readonly storeRetryLog = new RepeatGate(30_000);

  /**
   * A failure that makes the bus redeliver the batch: at warn (through the repeat gate when `gateKey` is given),
   * or at debug where the layer below already logged this error (the store's own line names the write).
   */
  private reportRetry(gateKey: string | undefined, fields: Record<string, unknown>, msg: string, error: unknown): void {
    if (gateKey !== undefined) this.storeRetryLog.warnUnlessReported(this.log, gateKey, fields, msg, error);
    else if (wasReported(error)) this.log.debug({ ...fields, reportedBelow: true }, msg);
    else this.log.warn(fields, msg);
  }

  /**
   * Whether the store takes this collector's writes (`/healthz`): while writes fail transiently, since when, how
   * many failed and the last error; ok again with the next stored write.
   */
  storeWriteState(): { ok: boolean; failingForS?: number; failedWrites?: number; lastError?: string } {
    const d = this.storeDown;
    return d ? { ok: false, failingForS: Math.round((Date.now() - d.sinceMs) / 1000), failedWrites: d.failures, lastError: d.lastError } : { ok: true };
  }

  private async flush(partition: number, batch: BatchEntry[]): Promise<void> {
    const w = await this.intervals.write(batch);
    if (w.kind === 'retryable') {
      this.stats.storeFailures++;
      this.metrics.inc('wattsplit_collector_store_failures_total', { kind: 'retryable' });
      this.partitions.keep(partition, batch);
      this.storeDown ??= { sinceMs: Date.now(), failures: 0, lastError: '' };
      this.storeDown.failures++;
      this.storeDown.lastError = `${w.error.code}: ${w.error.message}`.slice(0, 500);
      this.reportRetry(`intervals ${w.error.code}`, { partition, intervals: w.entries.length, code: w.error.code }, `intervals not stored, batch will be redelivered: ${w.error.message}`, w.error);
      throw markReported(w.error);
    }
    if (this.storeDown) {
      const s = Math.round((Date.now() - this.storeDown.sinceMs) / 1000);
      this.log.info({ partition, downS: s, failedWrites: this.storeDown.failures }, `store writes succeed again after ${s} s (${this.storeDown.failures} failed writes before, each batch redelivered until stored)`);
      this.storeDown = undefined;
    }
    if (w.kind === 'refused') {
      // Refused for good (bad values): find the culprits one by one, dead-letter them, keep the rest.
      this.stats.storeFailures++;
      this.metrics.inc('wattsplit_collector_store_failures_total', { kind: 'failed' });
      const hosts = [...new Set(w.entries.map((e) => e.hostId))];
      this.log.error(
        { partition, intervals: w.entries.length, hosts: hosts.slice(0, 20), code: w.error.code },
        `store refused a write of ${w.entries.length} intervals for good (${w.error.message}); writing them one by one, any refused again goes to ${TOPICS.deadLetter} with the reason`,
      );
      this.partitions.settle(partition);
      const one = await this.intervals.writeOneByOne(w.entries, async (e, error) => {
        await this.deadLetter(e.message, error);
        this.hosts.commit(e.hostId, e.frame);
      });
      if (one.kind === 'retryable') {
        // Down again half-way: nothing after this is stored; re-align those hosts on redelivery.
        for (const rest of one.unsettled) this.hosts.markDirty(rest.hostId);
        this.partitions.keep(partition, one.kept);
        throw one.error;
      }
      batch = one.kept;
    }
    await this.saveCheckpoints(partition, batch);
    if (this.config.publishAttributions !== false && batch.length > 0 && this.attributionReaders()) {
      const p = await this.producer.send(
        TOPICS.attribution,
        batch.map((e) => ({ key: e.write.interval.hostId, value: encodeAttributionBatch(e.write.results), headers: { 'x-wattsplit-seq': String(e.write.interval.seq) } })),
      );
      if (p.kind !== 'ok') {
        this.partitions.keep(partition, batch);
        this.reportRetry(`attributions ${p.error.code}`, { partition, code: p.error.code }, `attributions not published, batch will be redelivered: ${p.error.message}`, p.error);
        throw markReported(p.error);
      }
    }
    this.partitions.settle(partition);
    const stored = batch;
    for (const e of stored) {
      const iv = e.write.interval;
      this.hosts.commit(iv.hostId, e.frame);
      this.stats.intervalsStored++;
      this.metrics.recordMeasured(iv.hostId, iv.measured, iv.t1UnixNs);
      for (const res of e.write.results) this.metrics.recordResult(res);
      this.capWatch?.observe(iv, e.write.results);
    }
    if (stored.length > 0) await this.capWatch?.maybeEvaluate();
    if (stored.length > 0) await this.learnerState.saveDue();
  }

  /**
   * Whether attribution batches are published: always on Kafka (any process may read the topic, now or
   * later); on the in-process bus only while a consumer group in this process subscribes to it (Bus.hasReaders),
   * since nothing else can read it there. Skipping saves the batches' encoding (≈ 14 % of the embedded
   * collector's main thread, docs/benchmarks.md); the intervals are stored either way. Logged when it changes.
   */
  private attributionReaders(): boolean {
    const readers = this.bus.hasReaders?.(TOPICS.attribution) ?? true;
    if (readers !== this.publishingAttributions) {
      this.publishingAttributions = readers;
      this.log.info({ topic: TOPICS.attribution, publishing: readers }, readers ? `attribution batches published to ${TOPICS.attribution}` : `no consumer group reads ${TOPICS.attribution} on this in-process bus: attribution batches are not published (they are stored)`);
    }
    return readers;
  }

  /**
   * Saves the partition's checkpoint candidates (after the intervals they close are stored). A transient
   * failure keeps the batch pending and rejects, like a failed interval write.
   */
  private async saveCheckpoints(partition: number, batch: BatchEntry[]): Promise<void> {
    const last = this.checkpointSavedAt.get(partition);
    // not due yet (checkpoints.everyMs): the candidates wait, and so does the offset commit (handle)
    if (this.checkpointEveryMs > 0 && last !== undefined && performance.now() - last < this.checkpointEveryMs) return;
    const retry = await this.submitCheckpoints(partition);
    if (retry) {
      this.partitions.keep(partition, batch);
      this.reportRetry(`checkpoints ${retry.code}`, { partition, code: retry.code }, `checkpoints not saved, batch will be redelivered: ${retry.message}`, retry);
      throw markReported(retry);
    }
  }

  /**
   * Saves the partition's checkpoint candidates (none: nothing to do) and drops them once saved or refused for
   * good; returns the error when the store failed transiently (the candidates are kept, the caller retries).
   */
  private async submitCheckpoints(partition: number): Promise<WattsplitError | undefined> {
    const cps = this.partitions.checkpoints(partition);
    if (cps.length === 0) return undefined;
    const now = performance.now();
    const r = (await this.checkpointWriter.submit(cps)).result;
    if (r.kind === 'retryable') return r.error;
    if (r.kind === 'failed') {
      // The intervals are stored; only a restart's bridge is missing (the interval spanning it would be lost).
      this.metrics.inc('wattsplit_collector_store_failures_total', { kind: 'checkpoint_refused' });
      this.log.error({ partition, code: r.error.code }, `checkpoints refused (a restart now loses the interval across it): ${r.error.message}`);
    }
    this.partitions.checkpointsSaved(partition);
    this.checkpointSavedAt.set(partition, now);
    return undefined;
  }

  /**
   * The hosts of a batch this collector has not resumed yet (by message key, which the gateway sets to the
   * host id), looked up together: checkpoints and stored floors in two queries (Store.resumeState), the
   * learners' saved states in one (LearnerStatePersistence.prefetch), instead of four round trips per host
   * when a collector starts or takes a partition over with hundreds of hosts. `resume` and `restoreOnce` use
   * what was found; a host whose frame names another id than its key is looked up alone. What a
   * batch did not use is dropped at its end (the hosts returned; a partition's hosts are its own).
   */
  private async prefetchResume(messages: readonly BusMessage[], known?: ReadonlyMap<string, HostResumeState>): Promise<readonly string[]> {
    const hosts = new Set<string>();
    for (const m of messages) if (m.key && this.hosts.needsResume(m.key) && !this.resumeLookups.has(m.key)) hosts.add(m.key);
    if (hosts.size === 0) return [];
    const list = [...hosts];
    // hosts whose state verifyReassigned just read in this handler call are not asked for again
    const ask = known ? list.filter((h) => !known.has(h)) : list;
    const found = ask.length > 0 ? await this.store.resumeState(ask) : new Map<string, HostResumeState>();
    if (known) for (const h of list) if (known.has(h)) found.set(h, known.get(h)!);
    const storedSeq = new Map<string, number | undefined>();
    for (const h of list) storedSeq.set(h, found.get(h)?.floor?.seq);
    await this.learnerState.prefetch(list, storedSeq);
    // Hosts whose checkpoint is behind their stored floor (checkpoints saved less often than intervals, or a
    // crash between the two writes): their redelivered frames up to the floor are checked against the store;
    // ask for the range once here (at most STORED_AHEAD_MAX seqs; frames below it are checked one by one).
    const ranges: StoredRange[] = [];
    for (const h of list) {
      const { checkpoint: cp, floor } = found.get(h) ?? {};
      if (cp && floor && floor.seq > cp.seq) ranges.push({ hostId: h, afterSeq: Math.max(cp.seq, floor.seq - STORED_AHEAD_MAX), toSeq: floor.seq });
    }
    const ahead = ranges.length > 0 ? await this.store.storedIntervalRanges(ranges) : undefined;
    // kept only once every lookup answered (a store failure above keeps nothing: the batch is redelivered)
    for (const h of list) this.resumeLookups.set(h, found.get(h) ?? {});
    for (const r of ranges) this.storedAhead.set(r.hostId, { afterSeq: r.afterSeq, toSeq: r.toSeq, bySeq: new Map((ahead?.get(r.hostId) ?? []).map((x) => [x.seq, x])) });
    this.stats.resumeLookups++;
    return list;
  }

  /**
   * First frame of a host since this collector started (a restart, or a partition taken over): seed the
   * aligner with the host's checkpoint, so the interval spanning the restart is attributed, not lost.
   * A checkpoint older than what is already stored for that boot (a crash between the interval write and
   * the checkpoint save) is not used: it would attribute stored intervals a second time.
   */
  private async resume(host: string): Promise<void> {
    // looked up with its batch, or (a frame whose host id is not its message key) on its own, the same way
    const pre = this.resumeLookups.get(host) ?? (await this.store.resumeState([host])).get(host) ?? {};
    this.resumeLookups.delete(host);
    const cp = pre.checkpoint;
    const floor = pre.floor;
    this.hosts.resumed(host, floor);
    if (!cp) return;
    if (floor && floor.seq > cp.seq) {
      // A crash between the interval write and the checkpoint save: the intervals after the checkpoint
      // are stored; their frames, redelivered, are recognised by the stored floor and not written again.
      // (the usual case where checkpoints are saved less often than intervals: checkpoints.everyMs)
      this.log[this.checkpointEveryMs > 0 ? 'debug' : 'info']({ host, checkpointSeq: cp.seq, storedSeq: floor.seq }, `checkpoint of ${host} is older than its stored intervals; intervals up to seq ${floor.seq} are checked against the store before any write`);
    }
    let frame: TelemetryFrame;
    try {
      frame = decodeFrame(cp.frame, `checkpoint ${host}@${cp.seq}`);
    } catch (e) {
      this.log.warn({ host, code: normaliseError(e).code }, `checkpoint of ${host} unreadable: ${(e as Error).message}`);
      return;
    }
    const r = this.aligner.push(frame);
    if (r.rejected) {
      this.log.warn({ host, code: r.rejected.code }, `checkpoint of ${host} rejected: ${r.rejected.message}`);
      return;
    }
    this.hosts.commit(host, frame);
    this.log.info({ host, seq: cp.seq }, `resumed ${host} from its checkpoint at seq ${cp.seq}`);
  }

  /**
   * A frame of a new boot with a seq the host already used: storing it would overwrite billed rows (the
   * key is host+seq). It is kept on the dead-letter topic with the reason, counted and logged; the
   * anomaly is stored under the host's seq.
   */
  private async refuseSeqReuse(m: BusMessage, frame: TelemetryFrame, reused: { where: string; previousBootId: string; lastSeq: number }): Promise<undefined> {
    const { where, previousBootId, lastSeq } = reused;
    const host = frame.hostId || m.key;
    const seq = frame.seq ?? 0;
    const err = new WattsplitError('FRAME_SEQ_REUSED', `host ${host}: boot ${JSON.stringify(frame.bootId ?? '')} sent seq ${seq}, at or below seq ${lastSeq} of boot ${JSON.stringify(previousBootId)}; billed history is never rewritten (frame kept on ${TOPICS.deadLetter})`, {
      details: { host, seq, where, bootId: frame.bootId ?? '', previousBootId, lastSeq },
    });
    this.stats.framesRejected++;
    this.metrics.inc('wattsplit_collector_anomalies_total', { code: err.code });
    this.log.error({ host, seq, where, code: err.code, bootId: frame.bootId ?? '', previousBootId }, err.message);
    await this.deadLetter(m, err);
    const w = await this.store.writeAnomalies(host, seq, frame.wallUnixNs ?? 0, [{ code: err.code, message: err.message }]);
    if (w.kind !== 'ok') this.log.warn({ host, seq, code: w.error.code }, `could not store the anomaly: ${w.error.message}`);
    return undefined;
  }

  /**
   * A frame of a second agent claiming a host whose agent is still sending: not billed (the established
   * agent's counters are), kept on the dead-letter topic, counted, its anomaly stored; logged once per
   * (host, boot) so a misconfigured twin does not flood the log.
   */
  private async refuseConflict(m: BusMessage, frame: TelemetryFrame, where: string, err: WattsplitError): Promise<undefined> {
    const host = frame.hostId || m.key;
    const seq = frame.seq ?? 0;
    this.stats.framesRejected++;
    this.metrics.inc('wattsplit_collector_anomalies_total', { code: err.code });
    const key = `${host}\u0000${frame.bootId ?? ''}`;
    if (!this.conflictsLogged.has(key)) {
      this.conflictsLogged.add(key);
      this.log.error({ host, seq, where, code: err.code, bootId: frame.bootId ?? '' }, `${err.message} (frames kept on ${TOPICS.deadLetter}; fix the host id of one agent)`);
    }
    await this.deadLetter(m, err);
    const w = await this.store.writeAnomalies(host, seq, frame.wallUnixNs ?? 0, [{ code: err.code, message: err.message }]);
    if (w.kind !== 'ok') this.log.warn({ host, seq, code: w.error.code }, `could not store the anomaly: ${w.error.message}`);
    return undefined;
  }

  private readonly conflictsLogged = new Set<string>();

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
    if (bad.length > 0) {
      this.metrics.inc('wattsplit_collector_conservation_failures_total', { method: base.name });
      throw new WattsplitError('INTERNAL', `baseline ${base.name} broke conservation: ${bad.join('; ')}`, { details: { host: iv.hostId, seq: iv.seq } });
    }
    const out: AttributionResult[] = [baseline];
    for (const method of others) {
      try {
        const r = method.attribute(iv, ctx);
        if (r.method !== method.name) {
          this.log.debug({ method: method.name, reported: r.method }, 'method reported another name; stored under its own');
        }
        const res: AttributionResult = r.method === method.name ? r : { ...r, method: method.name, note: r.note || `reported as ${r.method}` };
        const problems = checkConservation(res);
        if (problems.length > 0) {
          this.metrics.inc('wattsplit_collector_conservation_failures_total', { method: method.name });
          throw new WattsplitError('INTERNAL', `broke conservation: ${problems.slice(0, 3).join('; ')}`);
        }
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

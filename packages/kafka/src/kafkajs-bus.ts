/**
 * wire's Bus over Apache Kafka with kafkajs 2.2 (the client the gateway and collector use by default).
 *
 * Producer: NOT idempotent, acks=-1 (all in-sync replicas), one request in flight per broker so
 * per-key order survives retries, batch compression (lz4 by default, through the codec that
 * kafkajs-lz4.ts registers; gzip built in; no snappy or zstd), Java-compatible murmur2 partitioner (the
 * same key lands on the same partition as with the Java client or the platformatic bus). send()
 * never throws: ok once the broker acked every message, retryable when the broker is unavailable,
 * slow (sendTimeoutMs) or too many messages are pending (maxPendingMessages: back-pressure), failed
 * when the broker refuses the messages for good.
 *
 * Why not idempotent: kafkajs 2.2.4's idempotent producer takes a partition's sequence numbers when it
 * builds a request and gives them back when the request fails, even when the broker had appended it
 * (a leader SIGKILLed after replicating, before answering), and concurrent send()s to one partition
 * interleave under its per-broker lock. The sequence then trails the broker's: a later batch with the
 * same first/last sequence as one the broker holds is answered "duplicate" (acked, never written) and
 * any other is refused with OUT_OF_ORDER_SEQUENCE_NUMBER (non-retriable: the gateway would reject the
 * batch and the agent dead-letter it), for every send to that partition from then on. Measured on the
 * 3-broker cluster (docs/fleet.md, "Cluster"): 3 acked frames missing from
 * the topic and 12 refused after one leader kill. Without idempotence a retried request can write a
 * message twice; every consumer here drops a frame at or below its host's handled seq (host + seq is
 * the idempotency key end to end), so a duplicate costs nothing and nothing acked is lost.
 *
 * Consumer: one kafkajs consumer (a group member) per subscription; eachBatch with auto-resolve and
 * auto-commit off; the handler gets up to maxBatch messages of one partition in offset order; only
 * after it resolved is the offset resolved and committed (OffsetCommit v2+, synchronously, before the
 * next chunk; a handler resolving `{ commit: false }` has its offset resolved, not committed: a later call
 * commits past it, a restart or rebalance delivers it again). When it rejects, the partition is paused, the consumer seeks back to the first
 * unhandled offset and resumes after an exponential back-off: the same messages are delivered again,
 * and the other partitions keep flowing. kafkajs is unmaintained since 2023: nothing outside this file
 * sees its types.
 */
import { Kafka, Partitioners, CompressionTypes, logLevel as KafkaLogLevel, type Consumer, type Producer, type Admin, type EachBatchPayload, type IHeaders, type SASLOptions } from 'kafkajs';
import {
  RepeatGate,
  backoffMs,
  normaliseError,
  WattsplitError,
  type BusMessage,
  type HandlerOutcome,
  type BusProducer,
  type BusSubscription,
  type SubscribeOptions,
} from '@wattsplit/wire';
import { type KafkaBusOptions } from './kafka-options.js';
import { KafkaBusBase } from './kafka-bus-base.js';
import './kafkajs-lz4.js';
import { kafkajsLogCreator } from './kafkajs-log.js';
import { kafkaError } from './kafka-errors.js';
import { boundedProducer } from './bounded-producer.js';

export { resolveKafkaOptions } from './kafka-bus-base.js';

function toHeaders(h: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!h) return out;
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue;
    const last = Array.isArray(v) ? v[v.length - 1] : v;
    if (last !== undefined) out[k] = typeof last === 'string' ? last : last.toString('utf8');
  }
  return out;
}

const EMPTY = new Uint8Array(0);

export class KafkaBus extends KafkaBusBase {
  readonly kind = 'kafkajs';
  /** Its fetch cycle batches by itself (1-2 writes/s), and a wait inside the cycle holds up the next fetch. */
  readonly storeWriteIntervalMs = 0;
  private readonly kafka: Kafka;
  private admin: Admin | undefined;
  private adminConnecting: Promise<Admin> | undefined;

  constructor(options: KafkaBusOptions) {
    super(options, 'KafkaBus', 'kafkajs');
    if (this.o.compression !== 'none' && this.o.compression !== 'gzip' && this.o.compression !== 'lz4') {
      throw new WattsplitError('CONFIG_INVALID', `compression=${JSON.stringify(this.o.compression)} is not available with kafkajs (lz4, gzip or none; use the platformatic client for snappy)`, { details: { field: 'compression', value: this.o.compression } });
    }
    this.kafka = new Kafka({
      clientId: this.o.clientId,
      brokers: [...this.o.brokers],
      logLevel: KafkaLogLevel.INFO,
      logCreator: kafkajsLogCreator(this.log),
      connectionTimeout: 3_000,
      requestTimeout: 30_000,
      retry: { initialRetryTime: 100, maxRetryTime: 2_000, retries: 6 },
      ...(this.o.ssl ? { ssl: true } : {}),
      ...(this.o.sasl ? { sasl: { mechanism: this.o.sasl.mechanism, username: this.o.sasl.username, password: this.o.sasl.password } as SASLOptions } : {}),
    });
  }

  private async getAdmin(): Promise<Admin> {
    if (this.admin) return this.admin;
    this.adminConnecting ??= (async () => {
      const a = this.kafka.admin();
      try {
        await a.connect();
      } catch (e) {
        this.adminConnecting = undefined;
        throw e;
      }
      this.admin = a;
      return a;
    })();
    return this.adminConnecting;
  }

  protected async createTopic(topic: string, partitions: number): Promise<void> {
    const admin = await this.getAdmin();
    // Check first: kafkajs logs TOPIC_ALREADY_EXISTS from createTopics at error level.
    if ((await admin.listTopics()).includes(topic)) return;
    const created = await admin.createTopics({
      waitForLeaders: true,
      topics: [{ topic, numPartitions: partitions, replicationFactor: this.o.replicationFactor }],
    });
    if (created) this.log.info({ topic, partitions }, 'created topic');
  }

  protected async removeTopic(topic: string): Promise<void> {
    const admin = await this.getAdmin();
    await admin.deleteTopics({ topics: [topic], timeout: 10_000 });
  }

  protected async closeAdmin(): Promise<void> {
    if (this.admin) await this.admin.disconnect();
  }

  async lag(topic: string, groupId: string): Promise<number> {
    const admin = await this.getAdmin();
    const [ends, committed] = await Promise.all([admin.fetchTopicOffsets(topic), admin.fetchOffsets({ groupId, topics: [topic] })]);
    const byPartition = new Map<number, number>();
    for (const t of committed) for (const p of t.partitions) byPartition.set(p.partition, Number(p.offset));
    let lag = 0;
    for (const e of ends) {
      const c = byPartition.get(e.partition) ?? -1;
      const start = c >= 0 ? c : Number(e.low);
      lag += Math.max(0, Number(e.high) - start);
    }
    return lag;
  }

  producer(): BusProducer {
    this.assertOpen();
    const kp: Producer = this.kafka.producer({
      // Not idempotent: see the file comment (kafkajs' sequence bookkeeping loses acked messages
      // after a leader crash); duplicates are dropped downstream by host + seq.
      idempotent: false,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: true,
      createPartitioner: Partitioners.DefaultPartitioner,
      // Bounded so send() can report "retryable" to the caller; resends are deduped downstream by host+seq.
      retry: { initialRetryTime: 100, maxRetryTime: 2_000, retries: 8 },
    });
    const compression = this.o.compression === 'gzip' ? CompressionTypes.GZIP : this.o.compression === 'lz4' ? CompressionTypes.LZ4 : CompressionTypes.None;
    let connecting: Promise<void> | undefined;
    const connect = (): Promise<void> => {
      connecting ??= kp.connect().catch((e: unknown) => {
        connecting = undefined;
        throw e;
      });
      return connecting;
    };
    const p: BusProducer = boundedProducer({
      send: async (topic, messages) => {
        await connect();
        await this.ensureTopicOrWarn(topic);
        await kp.send({
          topic,
          acks: -1,
          compression,
          messages: messages.map((m) => ({ key: m.key, value: Buffer.from(m.value.buffer, m.value.byteOffset, m.value.byteLength), ...(m.headers ? { headers: m.headers } : {}) })),
        });
      },
      close: () => kp.disconnect().catch((e: unknown) => this.log.warn({ err: normaliseError(e).message }, 'producer disconnect failed')),
      maxPendingMessages: this.o.maxPendingMessages,
      sendTimeoutMs: this.o.sendTimeoutMs,
      logger: this.log,
      onClose: () => this.untrackProducer(p),
    });
    return this.trackProducer(p);
  }

  async subscribe(opts: SubscribeOptions): Promise<BusSubscription> {
    this.assertOpen();
    const log = this.log.child({ topic: opts.topic, groupId: opts.groupId });
    await this.ensureTopicOrWarn(opts.topic, log);
    const consumer: Consumer = this.kafka.consumer({
      groupId: opts.groupId,
      sessionTimeout: this.o.sessionTimeoutMs,
      rebalanceTimeout: Math.max(this.o.sessionTimeoutMs, 30_000),
      heartbeatInterval: this.o.heartbeatIntervalMs,
      allowAutoTopicCreation: true,
      // Let the broker gather up to 512 KiB (≈ 90 frames of 50 VMs) or 500 ms per fetch: every handler call
      // is one store batch (one insert per table), so bigger batches are what makes the collector scale.
      minBytes: this.o.fetchMinBytes ?? 512 * 1024,
      maxWaitTimeInMs: this.o.fetchMaxWaitMs ?? 500,
      // The consumer's retrier also retries every offset commit (kafkajs's runner), whatever the error, while
      // the batch handler waits: 20 retries up to 5 s each held a collector ≈ 87 s after a broker SIGKILL moved
      // the group's coordinator (no heartbeats meanwhile, so the group dropped the member and every retry got
      // UNKNOWN_MEMBER_ID: the cluster suite's kafka_broker_killed waited up to 143 s to settle). Five retries
      // up to 1 s (≈ 3.4 s, inside the session timeout) give up early; a failed commit only means redelivery,
      // which the collector's store checks absorb, and a join that exhausts them crashes the consumer, which
      // kafkajs restarts (CRASH, restart: true, logged below).
      retry: { initialRetryTime: 200, maxRetryTime: 1_000, retries: 5 },
    });
    const attempts = new Map<number, number>();
    /** Per partition: the last offset handled with `{ commit: false }` and not committed since (commitHandled). */
    const uncommitted = new Map<number, string>();
    /** The partitions of the topic the last group join assigned (undefined before the first). */
    let current: Set<number> | undefined;
    const timers = new Set<NodeJS.Timeout>();
    let stopped = false;

    // a handler failing on every redelivery (its store down): one warning per partition and code per 30 s
    const handlerFailures = new RepeatGate(30_000);
    const eachBatch = async (payload: EachBatchPayload): Promise<void> => {
      const { batch } = payload;
      const { topic, partition } = batch;
      const isRunning = () => payload.isRunning();
      const isStale = () => payload.isStale();
      const pause = () => payload.pause();
      const heartbeat = () => payload.heartbeat();
      const resolveOffset = (o: string) => payload.resolveOffset(o);
      const all = batch.messages;
      for (let i = 0; i < all.length; i += this.o.maxBatch) {
        if (stopped || !isRunning() || isStale()) return;
        // a batch of a partition the last join took away (kafkajs can hand one over after the join: its issue
        // 1046) is left to the new owner, which reads it from the committed offset
        if (current && !current.has(partition)) return;
        const chunk = all.slice(i, i + this.o.maxBatch);
        const msgs: BusMessage[] = chunk.map((m) => ({
          topic,
          partition,
          offset: m.offset,
          key: m.key ? m.key.toString('utf8') : '',
          value: m.value ?? EMPTY,
          timestampMs: Number(m.timestamp),
          headers: toHeaders(m.headers),
        }));
        let outcome: void | HandlerOutcome;
        try {
          outcome = await opts.handler(msgs, partition);
        } catch (e) {
          const err = normaliseError(e);
          const n = attempts.get(partition) ?? 0;
          attempts.set(partition, n + 1);
          const wait = backoffMs(n, this.o.retryBaseMs, this.o.retryCapMs);
          const fields = { partition, offset: msgs[0]!.offset, messages: msgs.length, code: err.code, attempt: n + 1, retryInMs: wait };
          handlerFailures.warnUnlessReported(log, `${partition} ${err.code}`, fields, `bus handler failed, will redeliver: ${err.message}`, err);
          // Redeliver from the first unhandled message after the back-off; other partitions go on.
          const resume = pause();
          consumer.seek({ topic, partition, offset: msgs[0]!.offset });
          const t = setTimeout(() => {
            timers.delete(t);
            if (!stopped) resume();
          }, wait);
          timers.add(t);
          return;
        }
        attempts.set(partition, 0);
        const last = msgs[msgs.length - 1]!.offset;
        resolveOffset(last);
        if (outcome?.commit === false) {
          // handled, committed later (HandlerOutcome): the consumer goes on from the next message
          if (!current || current.has(partition)) uncommitted.set(partition, last);
          await heartbeat().catch(() => undefined);
          continue;
        }
        uncommitted.delete(partition);
        if (current && !current.has(partition)) return; // a join took it away meanwhile: its next owner commits
        try {
          await consumer.commitOffsets([{ topic, partition, offset: String(BigInt(last) + 1n) }]);
        } catch (e) {
          // Handled but not committed (a rebalance took the partition): whoever owns it next gets these
          // messages again; the store's (host, seq) dedupe makes that harmless.
          log.warn({ partition, offset: last, err: kafkaError(e, 'commitOffsets').message }, 'offset commit failed after handler; messages may be delivered again');
          return;
        }
        await heartbeat().catch(() => undefined);
      }
    };

    // Every join (a new generation, also after kafkajs restarted a crashed consumer) says what is assigned now,
    // before the batches of that assignment (SubscribeOptions.onAssigned). What was handled and not committed on
    // a partition the join took away is forgotten: kafkajs commits whatever partition it is asked to with the
    // current generation, and the broker does not check who owns it, so a later commitHandled would move the new
    // owner's committed offset (back, if it had committed past it: seen as a group lag that never went to 0 in
    // the cluster suite's kafka_broker_killed, 2026-12-07).
    consumer.on(consumer.events.GROUP_JOIN, (ev) => {
      const mine = ev.payload.memberAssignment[opts.topic] ?? [];
      current = new Set(mine);
      for (const p of [...uncommitted.keys()]) if (!current.has(p)) uncommitted.delete(p);
      if (!stopped) opts.onAssigned?.(mine);
    });
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: [opts.topic], fromBeginning: opts.fromBeginning ?? true });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: this.o.partitionsConcurrently,
        eachBatch,
      });
    } catch (e) {
      await consumer.disconnect().catch(() => undefined);
      throw kafkaError(e, `subscribe ${opts.topic} as ${opts.groupId}`);
    }
    // kafkajs restarts a crashed consumer by itself (restart: true): while a broker is down that is every few seconds,
    // so a warning once per kind per 30 s (the rest at debug, counted); a consumer that will not restart is an error.
    const crashes = new RepeatGate(30_000);
    consumer.on(consumer.events.CRASH, (ev) => {
      const err = normaliseError(ev.payload.error).message;
      if (!ev.payload.restart) {
        log.error({ restart: false, err }, 'kafka consumer crashed and will not restart: this subscription consumes nothing more until the process restarts');
        return;
      }
      crashes.write(log, 'warn', err.replace(/\d+/g, '#'), { restart: true, err }, 'kafka consumer crashed; kafkajs restarts it');
    });
    const sub: BusSubscription = {
      commitHandled: async (partition: number) => {
        const last = uncommitted.get(partition);
        if (last === undefined || stopped || (current && !current.has(partition))) return;
        try {
          await consumer.commitOffsets([{ topic: opts.topic, partition, offset: String(BigInt(last) + 1n) }]);
        } catch (e) {
          throw kafkaError(e, `commitOffsets ${opts.topic}/${partition}`);
        }
        if (uncommitted.get(partition) === last) uncommitted.delete(partition);
      },
      stop: async () => {
        if (stopped) return;
        stopped = true;
        for (const t of timers) clearTimeout(t);
        timers.clear();
        this.untrackSubscription(sub);
        // disconnect() waits for the running eachBatch (and its commit), then leaves the group.
        await consumer.disconnect().catch((e: unknown) => log.warn({ err: normaliseError(e).message }, 'consumer disconnect failed'));
      },
    };
    return this.trackSubscription(sub);
  }
}

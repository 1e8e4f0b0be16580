/**
 * wire's Bus over Apache Kafka with @platformatic/kafka 1.x, the alternative client (benchmarked
 * against kafkajs in benchmarks/fleet.mjs). 1.x runs on Node >= 20.19.4; 2.x needs Node >= 22.
 *
 * Producer: idempotent, acks=-1, compression none/gzip/snappy/lz4 (zstd needs Node >= 22.15's zlib),
 * Java-compatible murmur2 partitioner (same key → same partition as kafkajs and the Java client).
 * send() never throws; results as for KafkaBus.
 *
 * Consumer: the client hands out a stream of messages; this adapter queues them per partition and
 * runs one handler call at a time per partition (up to maxBatch messages, offset order). Offsets are
 * committed (OffsetCommit, next offset + leader epoch) only after the handler resolved, and not then when it
 * resolved `{ commit: false }` (a later call commits past it). When it
 * rejects, the same queued messages are handed to the handler again after an exponential back-off;
 * the other partitions keep flowing. There is no per-partition pause in this client: when the queued
 * messages of all partitions exceed 4 × maxBatch × partitionsConcurrently the whole stream is paused
 * until the handlers catch up. After a rebalance, queued messages of partitions this member lost are
 * dropped (their new owner reads them from the committed offset).
 */
import zlib from 'node:zlib';
import { Admin, Consumer, Producer, type Message, type MessagesStream } from '@platformatic/kafka';
import {
  backoffMs,
  normaliseError,
  RepeatGate,
  WattsplitError,
  type BusMessage,
  type HandlerOutcome,
  type BusProducer,
  type BusSubscription,
  type SubscribeOptions,
} from '@wattsplit/wire';
import { type KafkaBusOptions } from './kafka-options.js';
import { kafkaError } from './kafka-errors.js';
import { boundedProducer } from './bounded-producer.js';
import { KafkaBusBase, type ResolvedKafkaOptions } from './kafka-bus-base.js';
import { murmur2 } from './murmur2.js';


function saslOf(o: ResolvedKafkaOptions): Record<string, unknown> {
  if (!o.sasl) return {};
  const mechanism = o.sasl.mechanism === 'plain' ? 'PLAIN' : o.sasl.mechanism === 'scram-sha-256' ? 'SCRAM-SHA-256' : 'SCRAM-SHA-512';
  return { sasl: { mechanism, username: o.sasl.username, password: o.sasl.password } };
}

function javaPartitioner(_m: unknown, key: Buffer | undefined): number {
  return key ? murmur2(key) & 0x7fffffff : 0;
}

interface PartitionQueue {
  queue: Message[];
  running: boolean;
  attempts: number;
  timer: NodeJS.Timeout | undefined;
}

export class PlatformaticKafkaBus extends KafkaBusBase {
  readonly kind = 'platformatic';
  /**
   * It hands each partition's messages over as they arrive: without a spacing the collector makes many
   * small writes and a ClickHouse server spends most of its CPU merging parts.
   */
  readonly storeWriteIntervalMs = 1000;
  private readonly base: Record<string, unknown>;
  private adminClient: Admin | undefined;

  constructor(options: KafkaBusOptions) {
    super(options, 'PlatformaticKafkaBus', 'platformatic');
    if (this.o.compression === 'zstd' && typeof (zlib as { zstdCompressSync?: unknown }).zstdCompressSync !== 'function') {
      // Node 20's zlib has no zstd; the client would fail every send. Refuse at configuration time.
      throw new WattsplitError('CONFIG_INVALID', `compression="zstd" needs Node >= 22.15 (this is ${process.version}); use gzip, snappy or lz4`, { details: { field: 'compression', value: 'zstd' } });
    }
    this.base = {
      clientId: this.o.clientId,
      bootstrapBrokers: [...this.o.brokers],
      connectTimeout: 3_000,
      timeout: 30_000,
      retries: 6,
      retryDelay: 250,
      ...(this.o.ssl ? { tls: {} } : {}),
      ...saslOf(this.o),
    };
  }

  private admin(): Admin {
    this.adminClient ??= new Admin(this.base as unknown as ConstructorParameters<typeof Admin>[0]);
    return this.adminClient;
  }

  protected async createTopic(topic: string, partitions: number): Promise<void> {
    try {
      await this.admin().createTopics({ topics: [topic], partitions, replicas: this.o.replicationFactor });
      this.log.info({ topic, partitions }, 'created topic');
    } catch (e) {
      if (!/TOPIC_ALREADY_EXISTS|already exists/i.test(JSON.stringify(errorSummary(e)))) throw e;
    }
    // Wait until the topic's metadata lists leaders for every partition.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const md = await this.admin().metadata({ topics: [topic], forceUpdate: true }).catch(() => undefined);
      const t = md?.topics.get(topic);
      if (t && t.partitions.length > 0 && t.partitions.every((x) => x.leader >= 0)) return;
      if (Date.now() > deadline) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  protected async removeTopic(topic: string): Promise<void> {
    await this.admin().deleteTopics({ topics: [topic] });
  }

  protected async closeAdmin(): Promise<void> {
    if (this.adminClient) await this.adminClient.close();
  }

  async lag(topic: string, groupId: string): Promise<number> {
    const md = await this.admin().metadata({ topics: [topic], forceUpdate: true });
    const count = md.topics.get(topic)?.partitionsCount ?? 0;
    const parts = [...Array(count).keys()];
    const [ends, groups] = await Promise.all([
      this.admin().listOffsets({ topics: [{ name: topic, partitions: parts.map((p) => ({ partitionIndex: p, timestamp: -1n })) }] }),
      this.admin().listConsumerGroupOffsets({ groups: [{ groupId, topics: [{ name: topic, partitionIndexes: parts }] }] }),
    ]);
    const committed = new Map<number, bigint>();
    for (const g of groups) for (const t of g.topics) for (const p of t.partitions) committed.set(p.partitionIndex, p.committedOffset);
    let lag = 0n;
    for (const t of ends) for (const p of t.partitions) {
      const c = committed.get(p.partitionIndex) ?? -1n;
      const start = c >= 0n ? c : 0n;
      if (p.offset > start) lag += p.offset - start;
    }
    return Number(lag);
  }

  producer(): BusProducer {
    this.assertOpen();
    const kp = new Producer({
      ...this.base,
      idempotent: true,
      acks: -1,
      compression: this.o.compression,
      autocreateTopics: true,
      partitioner: javaPartitioner,
      retries: 8,
    } as unknown as ConstructorParameters<typeof Producer>[0]);
    // One produce request in flight per producer: with concurrent sends the 1.x idempotent producer
    // assigns sequence numbers the broker sees out of order (OUT_OF_ORDER_SEQUENCE_NUMBER, measured
    // here with 1.35.0). kafkajs does the same with maxInFlightRequests: 1.
    let tail: Promise<unknown> = Promise.resolve();
    const sendNow = async (topic: string, messages: Parameters<BusProducer['send']>[1]): Promise<void> => {
      await this.ensureTopicOrWarn(topic);
      await kp.send({
        messages: messages.map((m) => ({
          topic,
          key: Buffer.from(m.key, 'utf8'),
          value: Buffer.from(m.value.buffer, m.value.byteOffset, m.value.byteLength),
          ...(m.headers ? { headers: new Map(Object.entries(m.headers).map(([k, v]) => [Buffer.from(k), Buffer.from(v)])) } : {}),
        })),
      });
    };
    const p: BusProducer = boundedProducer({
      send: (topic, messages) => {
        const run = tail.then(() => sendNow(topic, messages));
        tail = run.catch(() => undefined);
        return run;
      },
      close: () => kp.close().catch((e: unknown) => this.log.warn({ err: normaliseError(e).message }, 'producer close failed')),
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
    const consumer = new Consumer<Buffer, Buffer, Buffer, Buffer>({
      ...this.base,
      groupId: opts.groupId,
      autocommit: false,
      sessionTimeout: this.o.sessionTimeoutMs,
      heartbeatInterval: this.o.heartbeatIntervalMs,
      rebalanceTimeout: Math.max(this.o.sessionTimeoutMs, 30_000),
      maxWaitTime: this.o.fetchMaxWaitMs ?? 250,
      minBytes: this.o.fetchMinBytes ?? 1,
    } as unknown as ConstructorParameters<typeof Consumer<Buffer, Buffer, Buffer, Buffer>>[0]);
    const queues = new Map<number, PartitionQueue>();
    const highWater = 4 * this.o.maxBatch * this.o.partitionsConcurrently;
    let queued = 0;
    let stopped = false;
    let stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined;
    const inflight = new Set<Promise<void>>();
    /** Per partition: the last message handled with `{ commit: false }` and not committed since (commitHandled). */
    const uncommitted = new Map<number, Message>();

    /**
     * The partitions the last join assigned (undefined before the first). The stream can still emit messages
     * of a partition revoked by that join (a fetch answered after it: seen in the bus contract suite, a
     * member handling partitions 0, 2 and 4 after a join gave them to the new member); those are dropped, not
     * handled, since their new owner reads them from the committed offset (handling them too would store
     * the same intervals twice, from two members).
     */
    let current: Set<number> | undefined;
    const assigned = (): Set<number> | undefined => {
      const a = consumer.assignments;
      if (!a) return undefined;
      const s = new Set<number>();
      for (const x of a) if (x.topic === opts.topic) for (const p of x.partitions) s.add(p);
      return s;
    };

    const toBus = (m: Message): BusMessage => {
      const headers: Record<string, string> = {};
      for (const [k, v] of m.headers) headers[k.toString('utf8')] = v ? v.toString('utf8') : '';
      return { topic: m.topic, partition: m.partition, offset: m.offset.toString(), key: m.key ? m.key.toString('utf8') : '', value: m.value ?? new Uint8Array(0), timestampMs: Number(m.timestamp), headers };
    };

    const release = (n: number) => {
      queued -= n;
      if (stream && stream.isPaused() && queued < highWater / 2 && !stopped) stream.resume();
    };

    // a handler failing on every redelivery (its store down): one warning per partition and code per 30 s
    const handlerFailures = new RepeatGate(30_000);
    const drain = async (partition: number, q: PartitionQueue): Promise<void> => {
      while (!stopped && q.queue.length > 0) {
        if (current && !current.has(partition)) {
          // revoked while this loop waited (the join dropped the queue; a redelivery timer may have fired since)
          release(q.queue.length);
          q.queue = [];
          return;
        }
        const chunk = q.queue.slice(0, this.o.maxBatch);
        const msgs = chunk.map(toBus);
        let outcome: void | HandlerOutcome;
        try {
          outcome = await opts.handler(msgs, partition);
        } catch (e) {
          const err = normaliseError(e);
          const wait = backoffMs(q.attempts++, this.o.retryBaseMs, this.o.retryCapMs);
          const fields = { partition, offset: msgs[0]!.offset, messages: msgs.length, code: err.code, attempt: q.attempts, retryInMs: wait };
          handlerFailures.warnUnlessReported(log, `${partition} ${err.code}`, fields, `bus handler failed, will redeliver: ${err.message}`, err);
          q.timer = setTimeout(() => {
            q.timer = undefined;
            kick(partition);
          }, wait);
          return;
        }
        q.attempts = 0;
        // The partition may have been revoked while the handler ran; the queue was reset then.
        if (q.queue[0] !== chunk[0]) continue;
        q.queue.splice(0, chunk.length);
        release(chunk.length);
        if (outcome?.commit === false) {
          uncommitted.set(partition, chunk[chunk.length - 1]!); // handled, committed later (HandlerOutcome, commitHandled)
          continue;
        }
        uncommitted.delete(partition);
        try {
          await chunk[chunk.length - 1]!.commit();
        } catch (e) {
          log.warn({ partition, offset: msgs[msgs.length - 1]!.offset, err: kafkaError(e, 'commit').message }, 'offset commit failed after handler; messages may be delivered again');
        }
      }
    };

    const kick = (partition: number) => {
      const q = queues.get(partition);
      if (!q || q.running || q.timer || stopped) return;
      q.running = true;
      const run = drain(partition, q).finally(() => {
        q.running = false;
        inflight.delete(run);
        if (q.queue.length > 0 && !q.timer && !stopped) kick(partition);
      });
      inflight.add(run);
    };

    consumer.on('consumer:group:join', () => {
      const mine = assigned();
      if (!mine) return;
      current = mine;
      if (!stopped) opts.onAssigned?.([...mine].sort((a, b) => a - b));
      for (const p of [...uncommitted.keys()]) if (!mine.has(p)) uncommitted.delete(p); // its next owner reads them again
      for (const [p, q] of queues) {
        if (mine.has(p) || q.queue.length === 0) continue;
        log.info({ partition: p, dropped: q.queue.length }, 'partition revoked; dropping queued messages (the new owner reads them from the committed offset)');
        release(q.queue.length);
        q.queue = [];
        if (q.timer) clearTimeout(q.timer);
        q.timer = undefined;
      }
    });

    const consumeOptions = {
      topics: [opts.topic],
      mode: 'committed',
      fallbackMode: opts.fromBeginning === false ? 'latest' : 'earliest',
      autocommit: false,
      maxWaitTime: this.o.fetchMaxWaitMs ?? 250,
      minBytes: this.o.fetchMinBytes ?? 1,
    } as unknown as Parameters<typeof consumer.consume>[0];
    let restarts = 0;
    let restartTimer: NodeJS.Timeout | undefined;
    // While a broker is away the stream fails and is reopened every few seconds (seen: ~25 lines in a 45 s outage),
    // each time with the client's latest reason (fetch, joinGroup, metadata failed …): one warning of each kind (the
    // stream failing, a reopen failing) per 30 s, with the reason of that moment; the rest at debug, counted in the
    // next one's `repeated` (as kafkajs's crash lines, kafkajs-bus.ts).
    const restartsLog = new RepeatGate(30_000);
    const attach = (st: MessagesStream<Buffer, Buffer, Buffer, Buffer>) => {
      st.on('data', (m: Message) => {
        if (st !== stream) return;
        if (current && !current.has(m.partition)) {
          log.debug({ partition: m.partition, offset: m.offset.toString() }, 'message of a partition no longer assigned dropped (its new owner reads it from the committed offset)');
          return;
        }
        let q = queues.get(m.partition);
        if (!q) queues.set(m.partition, (q = { queue: [], running: false, attempts: 0, timer: undefined }));
        q.queue.push(m);
        queued++;
        if (queued >= highWater && !st.isPaused()) st.pause();
        kick(m.partition);
      });
      st.on('error', (e: unknown) => {
        if (stopped || st !== stream) return;
        // The client gives up on a stream when the broker stays away longer than its retries; start a
        // new one from the committed offsets (queued, uncommitted messages are fetched again).
        const wait = backoffMs(restarts++, 500, 10_000);
        const err = kafkaError(e, 'consume').message;
        restartsLog.write(log, 'warn', 'stream', { err, retryInMs: wait }, 'kafka consumer stream failed; restarting it from the committed offsets');
        stream = undefined;
        for (const q of queues.values()) {
          release(q.queue.length);
          q.queue = [];
        }
        st.close().catch(() => undefined);
        restartTimer = setTimeout(() => void open().catch(() => undefined), wait);
      });
    };
    const open = async (): Promise<void> => {
      restartTimer = undefined;
      if (stopped) return;
      try {
        const st = await consumer.consume(consumeOptions);
        stream = st;
        restarts = 0;
        attach(st);
      } catch (e) {
        if (stream === undefined && restarts === 0 && !restartTimer && !started) throw e;
        const wait = backoffMs(restarts++, 500, 10_000);
        const err = kafkaError(e, 'consume').message;
        restartsLog.write(log, 'warn', 'consume', { err, retryInMs: wait }, 'kafka consume failed; retrying');
        restartTimer = setTimeout(() => void open().catch(() => undefined), wait);
      }
    };
    let started = false;
    try {
      await open();
      started = true;
    } catch (e) {
      await closeConsumer(consumer).catch(() => undefined);
      throw kafkaError(e, `subscribe ${opts.topic} as ${opts.groupId}`);
    }

    const sub: BusSubscription = {
      commitHandled: async (partition: number) => {
        const m = uncommitted.get(partition);
        if (!m || stopped) return;
        try {
          await m.commit();
        } catch (e) {
          throw kafkaError(e, `commit ${opts.topic}/${partition}`);
        }
        if (uncommitted.get(partition) === m) uncommitted.delete(partition);
      },
      stop: async () => {
        if (stopped) return;
        stopped = true;
        this.untrackSubscription(sub);
        for (const q of queues.values()) if (q.timer) clearTimeout(q.timer);
        if (restartTimer) clearTimeout(restartTimer);
        const st = stream;
        st?.pause();
        await Promise.allSettled([...inflight]);
        await st?.close().catch(() => undefined);
        await closeConsumer(consumer).catch((e: unknown) => log.warn({ err: normaliseError(e).message }, 'consumer close failed'));
      },
    };
    return this.trackSubscription(sub);
  }
}

function errorSummary(e: unknown): unknown {
  if (e instanceof Error) {
    const inner = (e as { errors?: unknown[] }).errors;
    return { message: e.message, cause: e.cause instanceof Error ? e.cause.message : undefined, errors: Array.isArray(inner) ? inner.map(errorSummary) : undefined, ...(e as unknown as Record<string, unknown>) };
  }
  return e;
}

function closeConsumer(c: Consumer<Buffer, Buffer, Buffer, Buffer>): Promise<void> {
  return new Promise((resolve, reject) => c.close(true, (err?: Error | null) => (err ? reject(err) : resolve())));
}

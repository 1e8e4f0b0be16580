/**
 * What the two Kafka buses (kafkajs-bus.ts, platformatic-bus.ts) share: resolved options and logger,
 * the cached "topic exists" promises, the producers and subscriptions to close, and the closed state.
 * Each client supplies how a topic is created, how its admin client closes, and its producer and
 * consumer.
 */
import { WattsplitError, silentLogger, type Bus, type BusProducer, type BusSubscription, type Logger, type SubscribeOptions } from '@wattsplit/wire';
import { KAFKA_DEFAULTS, validateKafkaOptions, type KafkaBusOptions } from './kafka-options.js';
import { kafkaError } from './kafka-errors.js';

/** The options with the shared defaults; the fetch sizes stay optional (each client has its own default). */
export type ResolvedKafkaOptions = Required<Omit<KafkaBusOptions, 'ssl' | 'sasl' | 'logger' | 'fetchMinBytes' | 'fetchMaxWaitMs'>> & Pick<KafkaBusOptions, 'ssl' | 'sasl' | 'fetchMinBytes' | 'fetchMaxWaitMs'> & { logger: Logger };

export function resolveKafkaOptions(o: KafkaBusOptions): ResolvedKafkaOptions {
  validateKafkaOptions(o);
  return { ...KAFKA_DEFAULTS, ...o, logger: o.logger ?? silentLogger };
}

export abstract class KafkaBusBase implements Bus {
  /**
   * The store-write spacing (collector `storeWrites.minIntervalMs`) that suits this client's consumer;
   * `wattsplit collector` and the fleet benchmark default to it (docs/fleet.md, runs E and F).
   */
  abstract readonly storeWriteIntervalMs: number;
  /** Bus.redelivers: a partition's uncommitted messages go to its next owner after a restart or rebalance. */
  readonly redelivers = true;
  protected readonly o: ResolvedKafkaOptions;
  protected readonly log: Logger;
  private readonly knownTopics = new Map<string, Promise<void>>();
  private readonly producers = new Set<BusProducer>();
  private readonly subs = new Set<BusSubscription>();
  private closed = false;

  protected constructor(
    options: KafkaBusOptions,
    private readonly busName: string,
    logName: string,
  ) {
    this.o = resolveKafkaOptions(options);
    this.log = this.o.logger.child({ bus: logName });
  }

  /** Creates the topic if it is missing; resolves once it can be used. */
  protected abstract createTopic(topic: string, partitions: number): Promise<void>;
  /** Closes the admin client, if one was made. */
  protected abstract closeAdmin(): Promise<void>;
  /** Deletes the topic (the cache forgets it first). */
  protected abstract removeTopic(topic: string): Promise<void>;
  abstract producer(): BusProducer;
  abstract subscribe(opts: SubscribeOptions): Promise<BusSubscription>;
  /** Messages on the topic not yet committed by the group (sum over partitions). */
  abstract lag(topic: string, groupId: string): Promise<number>;

  /** Creates the topic with the configured partitions if it does not exist (idempotent, cached). */
  ensureTopic(topic: string, partitions = this.o.partitions): Promise<void> {
    let p = this.knownTopics.get(topic);
    if (!p) {
      p = this.createTopic(topic, partitions);
      p.catch(() => this.knownTopics.delete(topic));
      this.knownTopics.set(topic, p);
    }
    return p;
  }

  async deleteTopic(topic: string): Promise<void> {
    this.knownTopics.delete(topic);
    await this.removeTopic(topic);
  }

  /** ensureTopic, but a failure is only logged: the broker may still create the topic on first use. */
  /** `log`, when given, already names the topic (a subscription's child logger); otherwise the topic is added. */
  protected async ensureTopicOrWarn(topic: string, log?: Logger): Promise<void> {
    await this.ensureTopic(topic).catch((e: unknown) => (log ?? this.log.child({ topic })).warn({ err: kafkaError(e, 'createTopics').message }, 'could not create topic; relying on broker auto-creation'));
  }

  protected assertOpen(): void {
    if (this.closed) throw new WattsplitError('TRANSPORT_UNAVAILABLE', `${this.busName} is closed`, { retriable: false });
  }

  /** Keeps a producer until it closes, so close() can close it. */
  protected trackProducer(p: BusProducer): BusProducer {
    this.producers.add(p);
    return p;
  }
  protected untrackProducer(p: BusProducer): void {
    this.producers.delete(p);
  }
  protected trackSubscription(s: BusSubscription): BusSubscription {
    this.subs.add(s);
    return s;
  }
  protected untrackSubscription(s: BusSubscription): void {
    this.subs.delete(s);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.subs].map((s) => s.stop()));
    await Promise.allSettled([...this.producers].map((p) => p.close()));
    await this.closeAdmin().catch(() => undefined);
  }
}

/**
 * A Bus decorator that prefixes every topic name and consumer group: "wattsplit.telemetry.v1" becomes
 * "<namespace>.wattsplit.telemetry.v1" on the broker and group "wattsplit-collector" becomes
 * "<namespace>.wattsplit-collector", while the code above it keeps using the versioned names from
 * TOPICS and its own group names. For several deployments (staging, prod, one per region) on one Kafka
 * cluster, and for tests sharing one broker (each test its own namespace). Groups are prefixed too: a
 * consumer group spans topics, so two deployments sharing a group id would rebalance each other (and a
 * kafkajs and a @platformatic/kafka member cannot even join one group: INCONSISTENT_GROUP_PROTOCOL).
 */
import { WattsplitError, type Bus, type BusProducer, type BusSubscription, type SubscribeOptions } from '@wattsplit/wire';

const NAMESPACE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/;

export class NamespacedBus implements Bus {
  constructor(
    private readonly inner: Bus,
    readonly namespace: string,
  ) {
    if (!NAMESPACE.test(namespace)) {
      throw new WattsplitError('CONFIG_INVALID', `bus namespace=${JSON.stringify(namespace)} must be 1-100 chars of [A-Za-z0-9_-], starting with a letter or digit`, { details: { field: 'namespace', value: namespace } });
    }
  }

  /** The inner bus's (Bus.redelivers). */
  get redelivers(): boolean {
    return this.inner.redelivers === true;
  }

  /** The topic name on the broker. */
  topic(logical: string): string {
    return `${this.namespace}.${logical}`;
  }

  /** The consumer group id on the broker. */
  group(logical: string): string {
    return `${this.namespace}.${logical}`;
  }

  /** The inner bus's lag for the namespaced topic and group (undefined-free: throws if it has no lag()). */
  lag(topic: string, groupId: string): Promise<number> | number {
    const inner = this.inner as Partial<{ lag(topic: string, groupId: string): Promise<number> | number }>;
    if (typeof inner.lag !== 'function') throw new WattsplitError('CONFIG_INVALID', 'the bus under this NamespacedBus has no lag()', { retriable: false });
    return inner.lag(this.topic(topic), this.group(groupId));
  }

  producer(): BusProducer {
    const p = this.inner.producer();
    return { send: (topic, messages) => p.send(this.topic(topic), messages), close: () => p.close() };
  }

  subscribe(opts: SubscribeOptions): Promise<BusSubscription> {
    return this.inner.subscribe({
      ...opts,
      topic: this.topic(opts.topic),
      groupId: this.group(opts.groupId),
      handler: (messages, partition) => opts.handler(messages.map((m) => ({ ...m, topic: opts.topic })), partition),
    });
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * A Bus decorator that prefixes every topic name: "wattsplit.telemetry.v1" becomes
 * "<namespace>.wattsplit.telemetry.v1" on the broker, while the code above it keeps using the
 * versioned names from TOPICS. For several deployments (staging, prod, one per region) on one Kafka
 * cluster, and for tests sharing one broker (each test its own namespace).
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

  /** The topic name on the broker. */
  topic(logical: string): string {
    return `${this.namespace}.${logical}`;
  }

  producer(): BusProducer {
    const p = this.inner.producer();
    return { send: (topic, messages) => p.send(this.topic(topic), messages), close: () => p.close() };
  }

  subscribe(opts: SubscribeOptions): Promise<BusSubscription> {
    return this.inner.subscribe({
      ...opts,
      topic: this.topic(opts.topic),
      handler: (messages, partition) => opts.handler(messages.map((m) => ({ ...m, topic: opts.topic })), partition),
    });
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

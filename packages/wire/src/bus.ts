/**
 * The message bus between gateway and collector, shaped like Kafka so the embedded in-process bus and
 * real Kafka are interchangeable by configuration: keyed messages, partitions by key hash, consumer
 * groups whose offsets advance only when the handler's promise resolves (commit after store write).
 */
import type { TransportResult } from './result.js';

export interface BusMessageIn {
  key: string;
  value: Uint8Array;
  headers?: Record<string, string>;
}

export interface BusMessage {
  topic: string;
  partition: number;
  offset: string;
  key: string;
  value: Uint8Array;
  timestampMs: number;
  headers: Record<string, string>;
}

export interface BusProducer {
  /** Resolves once every message is durable on the bus (Kafka acks=all) or says why not. */
  send(topic: string, messages: readonly BusMessageIn[]): Promise<TransportResult>;
  close(): Promise<void>;
}

export interface BusSubscription {
  /** Stops consuming; resolves once the in-flight handler call settled and its offsets were committed. */
  stop(): Promise<void>;
}

export interface SubscribeOptions {
  topic: string;
  groupId: string;
  /** Handles messages of one partition, in offset order. Offsets are committed only when it resolves;
   *  if it rejects the same messages are delivered again (after a back-off). */
  handler: (messages: readonly BusMessage[], partition: number) => Promise<void>;
  fromBeginning?: boolean;
}

export interface BusConsumer {
  subscribe(opts: SubscribeOptions): Promise<BusSubscription>;
}

export interface Bus extends BusConsumer {
  producer(): BusProducer;
  close(): Promise<void>;
  /**
   * False when nothing could read a message sent to `topic` now (the in-process bus: no consumer group has
   * subscribed to it in this process), so a producer may skip building messages for it. Absent (Kafka: any
   * process may read the topic, now or later) or true: send.
   */
  hasReaders?(topic: string): boolean;
}

/** Kafka's default partitioner is murmur2; the in-process bus uses a stable FNV-1a: only stability matters here. */
export function partitionForKey(key: string, partitions: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % partitions;
}

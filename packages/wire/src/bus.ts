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
  /**
   * Commits every message of `partition` its handler calls resolved (with or without `{ commit: false }`)
   * that is not committed yet; nothing when there is none. For a partition whose last call resolved
   * `{ commit: false }` and that gets no further message (a quiet partition would otherwise keep its last
   * messages uncommitted for ever). Call it only between two handler calls of that partition. Rejects when
   * the commit failed (the partition moved to another member, the broker is down): nothing is lost, the
   * messages are delivered again to the partition's next owner.
   */
  commitHandled?(partition: number): Promise<void>;
}

/**
 * What a handler may resolve with: `{ commit: false }` = handled (the next call gets the messages after
 * these), but leave the group's committed offset where it is, so that after a restart or a rebalance the
 * partition's next owner gets these messages again, from the last committed offset. A later call that
 * resolves without it commits everything up to its own last message. On a bus that does not redeliver
 * after a restart (`Bus.redelivers` not true: the in-process bus of one process) nothing survives the
 * process anyway, and a new subscription of the same bus object starts at the committed offset.
 */
export interface HandlerOutcome {
  commit: false;
}

export interface SubscribeOptions {
  topic: string;
  groupId: string;
  /** Handles messages of one partition, in offset order. Offsets are committed only when it resolves
   *  (and not then when it resolves `{ commit: false }`); if it rejects the same messages are delivered
   *  again (after a back-off). */
  handler: (messages: readonly BusMessage[], partition: number) => Promise<void | HandlerOutcome>;
  fromBeginning?: boolean;
  /**
   * Called on each join of the consumer group (Kafka: a rebalance, a member joining or leaving, this member
   * rejoining after it was expelled or its client restarted it) with the partitions of the topic assigned
   * to this subscription now, before any handler call of that assignment (a call of the previous one may
   * still run). Any of them may have been handled by another member since this subscription's last call
   * of it, even when it comes back at exactly the offset that call ended: the member that had it in
   * between may have stored what it handled without committing it (`HandlerOutcome`). A handler that keeps
   * state per partition checks it against what was stored before relying on it. The in-process bus never
   * calls it (a partition moves only when a subscription stops, and that one handles nothing more).
   */
  onAssigned?: (partitions: readonly number[]) => void;
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
  /**
   * True when messages survive this process and a partition's uncommitted messages are delivered again to
   * whichever subscription owns it after a restart or a rebalance (Kafka). A collector then commits (and
   * saves its restart checkpoints) less often than it stores (`HandlerOutcome`). Absent or false: the
   * in-process bus, whose messages end with the process; commit every handled batch.
   */
  readonly redelivers?: boolean;
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

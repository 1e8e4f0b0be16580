/**
 * The embedded bus: same contract as Kafka (keyed partitions, consumer groups, commit after handler),
 * inside one process. Messages are trimmed once every consumer group that subscribed committed them.
 *
 * A topic no consumer group has subscribed to (the attribution or capping topic of an embedded collector
 * that no in-process consumer reads) is kept like a Kafka topic with a size-based retention: its newest
 * `unreadRetentionBytes` per partition, so a group that subscribes later with fromBeginning still finds
 * them, and the process does not keep every message it ever sent (before 2026-12-07 it did: an embedded
 * collector's attribution topic grew by ≈ 17 kB per host-second of 50 VMs, forever). Dropping them is
 * a warning, once per topic (messages nobody read: dead letters, cap statuses, a library user's telemetry sent before
 * its collector subscribed). `hasReaders(topic)` says whether any group subscribed to a topic, so a producer
 * may skip encoding messages nothing in the process can read (the collector does, for attributions).
 */
import { partitionForKey, type Bus, type BusMessage, type BusMessageIn, type BusProducer, type BusSubscription, type SubscribeOptions } from './bus.js';
import { OK, backoffMs, type TransportResult } from './result.js';
import { RepeatGate, silentLogger, type Logger } from './logger.js';
import { normaliseError } from './errors.js';

interface PartitionLog {
  base: number; // offset of messages[0]
  messages: BusMessage[];
  /** Bytes of the retained messages' values. */
  bytes: number;
}

interface Group {
  committed: number[]; // the group's committed offset (where a new subscription starts), per partition
  subs: Set<Sub>;
}

interface Sub {
  opts: SubscribeOptions;
  stopped: boolean;
  running: Set<number>;
  inflight: Set<Promise<void>>;
  attempts: number[];
  /** Next offset to deliver to this subscription, per partition: the committed offset, or past it after a `{ commit: false }`. */
  position: number[];
}

export interface InProcessBusOptions {
  partitions?: number;
  maxBatch?: number;
  /**
   * Like Kafka's fetch.max.wait.ms: a handler call waits up to this long for `maxBatch` messages to gather
   * before it runs with fewer. Larger batches mean fewer store inserts (each one a new part in ClickHouse).
   * Default 0 (deliver at once).
   */
  lingerMs?: number;
  /**
   * Per partition of a topic that no consumer group has subscribed to: the newest messages kept, by the
   * bytes of their values (older ones dropped, a warning once per topic). Topics with a group keep everything
   * that group has not committed. Default 16 MiB.
   */
  unreadRetentionBytes?: number;
  /**
   * `Bus.redelivers`: claim Kafka's redelivery of uncommitted messages (default false). The messages live only
   * as long as this object, so only a test whose collectors share one bus object may set it (to exercise a
   * collector that commits less often than it stores, without a broker).
   */
  redelivers?: boolean;
  logger?: Logger;
}

/** InProcessBusOptions.unreadRetentionBytes's default. */
export const UNREAD_RETENTION_BYTES = 16 * 1024 * 1024;

export class InProcessBus implements Bus {
  readonly redelivers: boolean;
  private readonly topics = new Map<string, PartitionLog[]>();
  private readonly groups = new Map<string, Group>(); // key: topic \0 groupId
  private readonly partitions: number;
  private readonly maxBatch: number;
  private readonly lingerMs: number;
  /** A handler failing on every redelivery (its store down): one warning per partition and code per 30 s. */
  private readonly handlerFailures = new RepeatGate(30_000);
  private readonly unreadRetentionBytes: number;
  private readonly log: Logger;
  /** Per topic without a group: messages dropped by the retention so far (logged at the first). */
  private readonly unreadDropped = new Map<string, number>();
  private closed = false;

  constructor(opts: InProcessBusOptions = {}) {
    this.partitions = opts.partitions ?? 4;
    this.maxBatch = opts.maxBatch ?? 256;
    this.lingerMs = opts.lingerMs ?? 0;
    this.unreadRetentionBytes = opts.unreadRetentionBytes ?? UNREAD_RETENTION_BYTES;
    this.log = opts.logger ?? silentLogger;
    this.redelivers = opts.redelivers ?? false;
  }

  /** True when a consumer group has subscribed to `topic` (it may read what is sent now); false otherwise. */
  hasReaders(topic: string): boolean {
    const prefix = topic + '\0';
    for (const k of this.groups.keys()) if (k.startsWith(prefix)) return true;
    return false;
  }

  /** Messages dropped so far from `topic` by the retention of topics without a group. */
  unreadDroppedCount(topic: string): number {
    return this.unreadDropped.get(topic) ?? 0;
  }

  private topic(name: string): PartitionLog[] {
    let t = this.topics.get(name);
    if (!t) {
      t = Array.from({ length: this.partitions }, () => ({ base: 0, messages: [], bytes: 0 }));
      this.topics.set(name, t);
    }
    return t;
  }

  producer(): BusProducer {
    return {
      send: (topic, messages) => Promise.resolve(this.append(topic, messages)),
      close: () => Promise.resolve(),
    };
  }

  private append(topic: string, messages: readonly BusMessageIn[]): TransportResult {
    const t = this.topic(topic);
    const now = Date.now();
    const touched = new Set<number>();
    for (const m of messages) {
      const p = partitionForKey(m.key, this.partitions);
      const log = t[p]!;
      log.messages.push({
        topic,
        partition: p,
        offset: String(log.base + log.messages.length),
        key: m.key,
        value: m.value,
        timestampMs: now,
        headers: m.headers ?? {},
      });
      log.bytes += m.value.byteLength;
      touched.add(p);
    }
    let readers = false;
    for (const [k, g] of this.groups) {
      if (!k.startsWith(topic + '\0')) continue;
      readers = true;
      for (const s of g.subs) for (const p of touched) this.kick(s, g, p);
    }
    if (!readers) for (const p of touched) this.retainUnread(topic, t[p]!);
    return OK;
  }

  /** A partition of a topic no group reads: keeps its newest `unreadRetentionBytes` (at least one message). */
  private retainUnread(topic: string, log: PartitionLog): void {
    if (log.bytes <= this.unreadRetentionBytes) return;
    let drop = 0;
    let bytes = log.bytes;
    while (drop < log.messages.length - 1 && bytes > this.unreadRetentionBytes) bytes -= log.messages[drop++]!.value.byteLength;
    if (drop === 0) return;
    log.messages.splice(0, drop);
    log.base += drop;
    log.bytes = bytes;
    const before = this.unreadDropped.get(topic) ?? 0;
    this.unreadDropped.set(topic, before + drop);
    if (before === 0) {
      this.log.warn({ topic, retentionBytes: this.unreadRetentionBytes, partitions: this.partitions }, `in-process bus: no consumer group reads ${topic}; keeping its newest ${this.unreadRetentionBytes} bytes per partition, older messages dropped (a group that subscribes reads from the oldest kept)`);
    }
  }

  subscribe(opts: SubscribeOptions): Promise<BusSubscription> {
    const key = opts.topic + '\0' + opts.groupId;
    const t = this.topic(opts.topic);
    let g = this.groups.get(key);
    if (!g) {
      // A new group starts at the earliest retained offset when fromBeginning, else at the end.
      g = { committed: t.map((l) => (opts.fromBeginning === false ? l.base + l.messages.length : l.base)), subs: new Set() };
      this.groups.set(key, g);
    }
    const sub: Sub = { opts, stopped: false, running: new Set(), inflight: new Set(), attempts: t.map(() => 0), position: [...g.committed] };
    g.subs.add(sub);
    for (let p = 0; p < this.partitions; p++) this.kick(sub, g, p);
    const group = g;
    return Promise.resolve({
      stop: async () => {
        sub.stopped = true;
        group.subs.delete(sub);
        await Promise.allSettled([...sub.inflight]);
      },
      commitHandled: (p: number) => {
        if (!sub.stopped && sub.position[p]! > group.committed[p]!) {
          group.committed[p] = sub.position[p]!;
          this.trim(opts.topic, p);
        }
        return Promise.resolve();
      },
    });
  }

  private kick(sub: Sub, g: Group, p: number): void {
    if (sub.stopped || this.closed || sub.running.has(p)) return;
    // One subscription per group drains a partition at a time: the first one owns it.
    for (const other of g.subs) {
      if (other === sub) break;
      if (!other.stopped) return;
    }
    sub.running.add(p);
    const run = this.drain(sub, g, p).finally(() => {
      sub.running.delete(p);
      sub.inflight.delete(run);
    });
    sub.inflight.add(run);
  }

  private async drain(sub: Sub, g: Group, p: number): Promise<void> {
    const log = this.topic(sub.opts.topic)[p]!;
    for (;;) {
      await new Promise<void>((r) => setImmediate(r));
      if (sub.stopped || this.closed) return;
      let from = Math.max(sub.position[p]!, log.base) - log.base;
      if (from >= log.messages.length) return;
      if (this.lingerMs > 0 && log.messages.length - from < this.maxBatch) {
        const until = log.messages[from]!.timestampMs + this.lingerMs;
        while (!sub.stopped && !this.closed && log.messages.length - from < this.maxBatch && Date.now() < until) {
          await new Promise((r) => setTimeout(r, Math.min(5, Math.max(1, until - Date.now()))));
          from = Math.max(sub.position[p]!, log.base) - log.base; // a trim may have moved the base
        }
        if (sub.stopped || this.closed) return;
      }
      const batch = log.messages.slice(from, from + this.maxBatch);
      try {
        const outcome = await sub.opts.handler(batch, p);
        sub.position[p] = Number(batch[batch.length - 1]!.offset) + 1;
        if (outcome?.commit !== false) g.committed[p] = sub.position[p];
        sub.attempts[p] = 0;
        this.trim(sub.opts.topic, p);
      } catch (e) {
        const err = normaliseError(e);
        const wait = backoffMs(sub.attempts[p]!++, 50, 5_000);
        const fields = { topic: sub.opts.topic, partition: p, offset: batch[0]!.offset, code: err.code, retryInMs: wait };
        this.handlerFailures.warnUnlessReported(this.log, `${sub.opts.topic} ${sub.opts.groupId} ${p} ${err.code}`, fields, `bus handler failed, will redeliver: ${err.message}`, err);
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  private trim(topic: string, p: number): void {
    const log = this.topic(topic)[p]!;
    let min = Infinity;
    for (const [k, g] of this.groups) if (k.startsWith(topic + '\0')) min = Math.min(min, g.committed[p]!);
    const drop = min - log.base;
    if (drop > 1024) {
      for (let i = 0; i < drop; i++) log.bytes -= log.messages[i]!.value.byteLength;
      log.messages.splice(0, drop);
      log.base = min;
    }
  }

  /** Resolves when every subscription has consumed everything sent so far. */
  async idle(): Promise<void> {
    for (;;) {
      let busy = false;
      for (const [k, g] of this.groups) {
        const topic = k.slice(0, k.indexOf('\0'));
        const t = this.topic(topic);
        if (g.subs.size === 0) continue;
        const owner = [...g.subs].find((s) => !s.stopped);
        for (let p = 0; p < this.partitions; p++) {
          if (Math.max(owner?.position[p] ?? 0, g.committed[p]!) < t[p]!.base + t[p]!.messages.length) busy = true;
        }
      }
      if (!busy) return;
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Messages retained and lag per group (after the committed offsets), for metrics and tests. */
  lag(topic: string, groupId: string): number {
    const g = this.groups.get(topic + '\0' + groupId);
    const t = this.topic(topic);
    if (!g) return t.reduce((a, l) => a + l.messages.length, 0);
    return t.reduce((a, l, p) => a + (l.base + l.messages.length - g.committed[p]!), 0);
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

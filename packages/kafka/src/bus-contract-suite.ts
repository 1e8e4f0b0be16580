/**
 * The behaviour every Kafka-backed Bus must show against a real broker, as one node:test suite that
 * each client implementation runs (kafkajs-bus.int.test.ts, platformatic-bus.int.test.ts). Each test
 * uses its own topic and group, deleted in t.after.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Bus, BusMessage, BusMessageIn, BusProducer, BusSubscription, TransportResult } from '@wattsplit/wire';
import { KafkaBrokerProcess, canStartOwnBroker, kafkaUnavailableReason } from './broker-process.js';
import type { KafkaBusOptions } from './kafka-options.js';

export interface KafkaBackedBus extends Bus {
  readonly kind: string;
  ensureTopic(topic: string, partitions?: number): Promise<void>;
  deleteTopic(topic: string): Promise<void>;
  lag(topic: string, groupId: string): Promise<number>;
}

export type BusFactory = (opts: KafkaBusOptions) => KafkaBackedBus;

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

function messages(keys: number, perKey: number, from = 0): BusMessageIn[] {
  const out: BusMessageIn[] = [];
  for (let i = from; i < from + perKey; i++) for (let k = 0; k < keys; k++) out.push({ key: `host-${k}`, value: enc(`host-${k}:${i}`), headers: { seq: String(i) } });
  return out;
}

async function sendAll(p: BusProducer, topic: string, msgs: readonly BusMessageIn[], chunk = 100): Promise<void> {
  for (let i = 0; i < msgs.length; i += chunk) {
    const r = await p.send(topic, msgs.slice(i, i + chunk));
    assert.equal(r.kind, 'ok', `send ${i}: ${JSON.stringify(r)}`);
  }
}

/** Sends, retrying while the result is retryable (bounded). Returns how many attempts were retryable. */
async function sendRetrying(p: BusProducer, topic: string, msgs: readonly BusMessageIn[], deadlineMs: number): Promise<number> {
  let retries = 0;
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const r: TransportResult = await p.send(topic, msgs);
    if (r.kind === 'ok') return retries;
    assert.equal(r.kind, 'retryable', `expected retryable while the broker is down: ${JSON.stringify(r)}`);
    retries++;
    if (Date.now() > deadline) throw new Error(`send still retryable after ${deadlineMs} ms: ${r.error.message}`);
    await new Promise((res) => setTimeout(res, Math.min(r.afterMs, 500)));
  }
}

/** Per key, the sequence numbers seen, in delivery order. */
class Seen {
  readonly byKey = new Map<string, number[]>();
  deliveries = 0;
  add(batch: readonly BusMessage[]): void {
    for (const m of batch) {
      this.deliveries++;
      const [key, seq] = dec(m.value).split(':');
      assert.equal(key, m.key, 'value names the key it was sent with');
      let l = this.byKey.get(m.key);
      if (!l) this.byKey.set(m.key, (l = []));
      l.push(Number(seq));
    }
  }
  unique(): number {
    let n = 0;
    for (const l of this.byKey.values()) n += new Set(l).size;
    return n;
  }
}

export interface BusTraits {
  /** The client cannot hold a rebalance until in-flight handler calls finished, so messages handled
   *  but not yet committed when a partition moves are handed to the new owner again (at-least-once;
   *  the store's (host, seq) dedupe absorbs them). Both clients: @platformatic/kafka does not wait at all;
   *  kafkajs's batch in flight at the rebalance may commit after the new owner read the committed offset
   *  (kafkajs issues 1046, 1097; seen here 2026-12-08: one partition's 12 messages handled twice). */
  rebalanceMayRedeliver?: boolean;
}

/** A subscription whose handler records every batch and resolves `{ commit: false }`, once `n` messages were handed over. */
async function subscribeUncommitted(bus: KafkaBackedBus, topic: string, groupId: string, n: number): Promise<{ seen: Seen; sub: BusSubscription }> {
  const seen = new Seen();
  const sub = await bus.subscribe({
    topic,
    groupId,
    handler: async (b) => {
      seen.add(b);
      return { commit: false };
    },
  });
  await waitFor(() => seen.deliveries >= n, 30_000, `the first ${n} messages`);
  return { seen, sub };
}

export function busContractSuite(name: string, make: BusFactory, traits: BusTraits = {}): void {
  const brokers = process.env.WATTSPLIT_TEST_KAFKA;
  const skip = kafkaUnavailableReason();

  const setup = async (t: TestContext, partitions = 4, extra: Partial<KafkaBusOptions> = {}) => {
    const bus = make({ brokers: [brokers!], partitions, sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500, retryBaseMs: 50, retryCapMs: 500, ...extra });
    const topic = `test.${name}.${randomUUID().slice(0, 8)}`;
    const group = `g-${randomUUID().slice(0, 8)}`;
    await bus.ensureTopic(topic, partitions);
    t.after(async () => {
      await bus.deleteTopic(topic).catch(() => undefined);
      await bus.close();
    });
    return { bus, topic, group };
  };

  test(`${name}: messages of one key arrive in order, every one, and offsets end committed`, { skip: skip && `Kafka unavailable: ${skip}`, timeout: 60_000 }, async (t) => {
    const { bus, topic, group } = await setup(t);
    const p = bus.producer();
    await sendAll(p, topic, messages(6, 100));
    const seen = new Seen();
    const sub = await bus.subscribe({ topic, groupId: group, fromBeginning: true, handler: async (batch) => seen.add(batch) });
    await waitFor(() => seen.deliveries >= 600, 30_000, '600 messages');
    await waitFor(async () => (await bus.lag(topic, group)) === 0, 10_000, 'lag 0');
    await sub.stop();
    assert.equal(seen.deliveries, 600);
    for (const [key, seqs] of seen.byKey) assert.deepEqual(seqs, [...Array(100).keys()], `order of ${key}`);
  });

  test(`${name}: offsets are committed only after the handler resolved`, { skip: skip && `Kafka unavailable: ${skip}`, timeout: 60_000 }, async (t) => {
    const { bus, topic, group } = await setup(t, 1);
    const p = bus.producer();
    await sendAll(p, topic, messages(1, 20));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let calls = 0;
    const sub = await bus.subscribe({
      topic,
      groupId: group,
      handler: async () => {
        calls++;
        await gate;
      },
    });
    await waitFor(() => calls > 0, 20_000, 'first handler call');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await bus.lag(topic, group), 20, 'nothing committed while the handler is pending');
    release();
    await waitFor(async () => (await bus.lag(topic, group)) === 0, 20_000, 'lag 0 after the handler resolved');
    await sub.stop();
  });

  test(`${name}: a handler failure redelivers the same messages after a back-off, other partitions flow`, { skip: skip && `Kafka unavailable: ${skip}`, timeout: 60_000 }, async (t) => {
    const { bus, topic, group } = await setup(t, 4);
    const p = bus.producer();
    await sendAll(p, topic, messages(8, 30));
    const seen = new Seen();
    const failFor = 'host-3';
    let failures = 0;
    const sub = await bus.subscribe({
      topic,
      groupId: group,
      handler: async (batch) => {
        if (failures < 3 && batch.some((m) => m.key === failFor && dec(m.value).endsWith(':10'))) {
          failures++;
          throw new Error(`store down (attempt ${failures})`);
        }
        seen.add(batch);
      },
    });
    await waitFor(async () => seen.unique() >= 240 && (await bus.lag(topic, group)) === 0, 30_000, 'all 240 handled');
    await sub.stop();
    assert.equal(failures, 3);
    assert.equal(seen.unique(), 240);
    const seqs = seen.byKey.get(failFor)!;
    // The failing batch was not recorded; its redelivery starts at (or before) seq 10, in order, without gaps.
    assert.deepEqual([...new Set(seqs)].sort((a, b) => a - b), [...Array(30).keys()]);
    for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!, `order of ${failFor} after redelivery: ${seqs.join(',')}`);
    assert.equal(seen.deliveries, 240, 'handled once each: a failed batch is not committed and not partially recorded');
  });

  test(`${name}: a restarted consumer resumes from the committed offsets`, { skip: skip && `Kafka unavailable: ${skip}`, timeout: 60_000 }, async (t) => {
    const { bus, topic, group } = await setup(t, 2);
    const p = bus.producer();
    await sendAll(p, topic, messages(4, 25));
    const first = new Seen();
    const sub1 = await bus.subscribe({ topic, groupId: group, handler: async (b) => first.add(b) });
    await waitFor(async () => first.deliveries >= 100 && (await bus.lag(topic, group)) === 0, 30_000, 'first 100');
    await sub1.stop();
    await sendAll(p, topic, messages(4, 25, 25));
    const second = new Seen();
    const sub2 = await bus.subscribe({ topic, groupId: group, handler: async (b) => second.add(b) });
    await waitFor(async () => second.deliveries >= 100 && (await bus.lag(topic, group)) === 0, 30_000, 'next 100');
    await sub2.stop();
    assert.equal(first.deliveries, 100);
    assert.equal(second.deliveries, 100, 'nothing from before the restart is delivered again');
    for (const seqs of second.byKey.values()) assert.deepEqual(seqs, [...Array(25).keys()].map((i) => i + 25));
  });

  test(`${name}: a handler resolving { commit: false } is handled, not committed: a restarted consumer gets it again`, { skip: skip && `Kafka unavailable: ${skip}`, timeout: 60_000 }, async (t) => {
    const { bus, topic, group } = await setup(t, 1);
    assert.equal(bus.redelivers, true, 'a Kafka bus says it redelivers (Bus.redelivers)');
    const p = bus.producer();
    await sendAll(p, topic, messages(1, 20));
    const { seen: first, sub: sub1 } = await subscribeUncommitted(bus, topic, group, 20);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(first.deliveries, 20, 'the next calls go on after an uncommitted one (nothing handed over twice)');
    assert.equal(await bus.lag(topic, group), 20, 'nothing committed');
    await sub1.stop();
    const second = new Seen();
    const sub2 = await bus.subscribe({ topic, groupId: group, handler: async (b) => second.add(b) });
    await waitFor(async () => second.deliveries >= 20 && (await bus.lag(topic, group)) === 0, 30_000, 'the 20 again, then committed');
    await sub2.stop();
    assert.deepEqual(second.byKey.get('host-0'), [...Array(20).keys()], 'a restarted consumer gets the uncommitted messages again, in order');
    await sendAll(p, topic, messages(1, 5, 20));
    const third = new Seen();
    const sub3 = await bus.subscribe({ topic, groupId: group, handler: async (b) => third.add(b) });
    await waitFor(async () => third.deliveries >= 5 && (await bus.lag(topic, group)) === 0, 30_000, 'the next 5');
    await sub3.stop();
    assert.deepEqual(third.byKey.get('host-0'), [20, 21, 22, 23, 24], 'a committing call commits what was handled before it');
  });

  test(`${name}: commitHandled commits what was handled with { commit: false } on a partition that went quiet`, { skip: skip && `Kafka unavailable: ${skip}`, timeout: 60_000 }, async (t) => {
    const { bus, topic, group } = await setup(t, 1);
    const p = bus.producer();
    await sendAll(p, topic, messages(1, 10));
    const { sub: sub1 } = await subscribeUncommitted(bus, topic, group, 10);
    assert.equal(await bus.lag(topic, group), 10, 'nothing committed');
    assert.equal(typeof sub1.commitHandled, 'function');
    await sub1.commitHandled!(0);
    await waitFor(async () => (await bus.lag(topic, group)) === 0, 10_000, 'committed by commitHandled');
    await sub1.commitHandled!(0); // nothing left: a no-op
    await sub1.stop();
    await sendAll(p, topic, messages(1, 2, 10));
    const second = new Seen();
    const sub2 = await bus.subscribe({ topic, groupId: group, handler: async (b) => second.add(b) });
    await waitFor(async () => second.deliveries >= 2 && (await bus.lag(topic, group)) === 0, 30_000, 'the next 2');
    await sub2.stop();
    assert.deepEqual(second.byKey.get('host-0'), [10, 11], 'nothing committed by commitHandled is delivered again');
  });

  test(`${name}: commitHandled on a partition a rebalance took away commits nothing: the new owner's offsets stand`, { skip: skip && `Kafka unavailable: ${skip}`, timeout: 90_000 }, async (t) => {
    const { bus, topic, group } = await setup(t, 2);
    const bus2 = make({ brokers: [brokers!], partitions: 2, sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500 });
    t.after(() => bus2.close());
    const p = bus.producer();
    const keys = 8; // both partitions get some
    await sendAll(p, topic, messages(keys, 5));
    // member 1 handles everything without committing (a collector between checkpoint saves)
    const joins1: number[][] = [];
    const seen1 = new Seen();
    const byPartition1 = new Map<number, number>();
    const partitionOf = new Map<string, number>();
    const sub1 = await bus.subscribe({
      topic,
      groupId: group,
      onAssigned: (ps) => void joins1.push([...ps]),
      handler: async (b, partition) => {
        seen1.add(b);
        for (const m of b) partitionOf.set(m.key, partition);
        byPartition1.set(partition, (byPartition1.get(partition) ?? 0) + b.length);
        return { commit: false };
      },
    });
    await waitFor(() => seen1.deliveries >= keys * 5, 30_000, 'member 1 handled the first messages');
    // member 2 joins and takes a partition; it commits what it handles
    const handled2 = new Map<number, number>();
    const sub2 = await bus2.subscribe({
      topic,
      groupId: group,
      handler: async (b, partition) => void handled2.set(partition, (handled2.get(partition) ?? 0) + b.length),
    });
    await waitFor(() => joins1.length >= 2 && joins1.at(-1)!.length === 1, 30_000, 'a rebalance gives member 2 a partition');
    const kept = joins1.at(-1)![0]!;
    const lost = 1 - kept;
    // more messages: member 2 handles and commits its partition past what member 1 had handled there
    await sendAll(p, topic, messages(keys, 5, 5));
    await waitFor(async () => (await bus.lag(topic, group)) === sentTo(kept), 30_000, `member 2 committed partition ${lost}`);
    // member 1's late commit of the partition it lost (an idle-commit timer set before the rebalance)
    await sub1.commitHandled!(lost);
    await waitFor(() => (byPartition1.get(kept) ?? 0) >= sentTo(kept), 30_000, 'member 1 handled its partition');
    await sub1.commitHandled!(kept);
    await waitFor(async () => (await bus.lag(topic, group)) === 0, 10_000, 'everything committed');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await bus.lag(topic, group), 0, `member 1's commit of partition ${lost} after the rebalance moved nothing back`);
    await sub2.stop();
    await sub1.stop();

    /** The messages sent to `partition`: 10 per key of it. */
    function sentTo(partition: number): number {
      return 10 * [...partitionOf.values()].filter((x) => x === partition).length;
    }
  });

  test(`${name}: two consumers in one group share the partitions; rebalances lose nothing and repeat little`, { skip: skip && `Kafka unavailable: ${skip}`, timeout: 90_000 }, async (t) => {
    const { bus, topic, group } = await setup(t, 6);
    const bus2 = make({ brokers: [brokers!], partitions: 6, sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500 });
    t.after(() => bus2.close());
    const p = bus.producer();
    const seen = new Seen();
    const byConsumer = [0, 0];
    // what each member's joins assigned it (SubscribeOptions.onAssigned), and the partitions its handler got
    const joins: number[][][] = [[], []];
    const handled = [new Set<number>(), new Set<number>()];
    const unassigned: string[] = [];
    const handler = (i: number) => async (b: readonly BusMessage[], partition: number) => {
      byConsumer[i]! += b.length;
      handled[i]!.add(partition);
      if (!joins[i]!.at(-1)?.includes(partition)) unassigned.push(`member ${i + 1} handled partition ${partition}, assigned ${JSON.stringify(joins[i]!.at(-1))}`);
      seen.add(b);
      await new Promise((r) => setTimeout(r, 5));
    };
    const onAssigned = (i: number) => (ps: readonly number[]) => void joins[i]!.push([...ps]);
    const sub1 = await bus.subscribe({ topic, groupId: group, handler: handler(0), onAssigned: onAssigned(0) });
    const keys = 12;
    const rounds = 60;
    let sent = 0;
    // Produce steadily while a second member joins (rebalance) and the first one leaves (rebalance).
    const producing = (async () => {
      for (let r = 0; r < rounds; r++) {
        await sendAll(p, topic, messages(keys, 1, r));
        sent += keys;
        await new Promise((res) => setTimeout(res, 40));
      }
    })();
    await waitFor(() => seen.deliveries > 100, 30_000, 'first member consuming');
    const sub2 = await bus2.subscribe({ topic, groupId: group, handler: handler(1), onAssigned: onAssigned(1) });
    await waitFor(() => byConsumer[1]! > 0, 30_000, 'second member gets partitions');
    assert.ok(byConsumer[0]! > 0);
    // the first join gave member 1 every partition; the second member's join took some of them away
    assert.deepEqual(joins[0]![0], [0, 1, 2, 3, 4, 5], JSON.stringify(joins));
    assert.ok(joins[0]!.length >= 2 && joins[0]!.at(-1)!.length < 6, JSON.stringify(joins));
    assert.ok(joins[1]!.length >= 1 && joins[1]!.at(-1)!.length > 0, JSON.stringify(joins));
    await sub1.stop();
    await producing;
    await waitFor(async () => seen.unique() >= sent && (await bus2.lag(topic, group)) === 0, 40_000, 'everything consumed');
    await sub2.stop();
    assert.equal(sent, keys * rounds);
    // member 2 got every partition once member 1 left
    assert.deepEqual([...joins[1]!.at(-1)!].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5], JSON.stringify(joins));
    assert.equal(handled[1]!.size, 6);
    // no handler call for a partition its member's last join did not assign it
    assert.deepEqual(unassigned, []);
    for (let k = 0; k < keys; k++) {
      const seqs = seen.byKey.get(`host-${k}`) ?? [];
      assert.deepEqual([...new Set(seqs)].sort((a, b) => a - b), [...Array(rounds).keys()], `host-${k} lost nothing`);
      if (traits.rebalanceMayRedeliver) {
        // At-least-once across a rebalance: what was handled but not yet committed when its partition
        // was reassigned is handled again by whoever owns it next. Each rebalance can do that once per
        // message. The test makes two (join, leave), but the group may go through more generations than
        // that (a member that misses its session under load rejoins: a CI run at load ~6 saw one message
        // four times, 67 deliveries for 60), and the test cannot see how many there were; so the bound
        // is two rebalances beyond the planned ones, which still catches a redelivery loop (a batch
        // handled again and again without a rebalance), and the total stays at-least-once, not a flood.
        // How many are repeated at all depends on timing (0 to ~50 of 60 per key here).
        const times = new Map<number, number>();
        for (const q of seqs) times.set(q, (times.get(q) ?? 0) + 1);
        const worst = Math.max(...times.values());
        assert.ok(worst <= 5, `host-${k}: a message delivered ${worst} times (${seqs.length} deliveries for ${rounds})`);
        assert.ok(seqs.length <= 3 * rounds, `host-${k}: ${seqs.length} deliveries for ${rounds} messages`);
      }
      else assert.equal(seqs.length, rounds, `host-${k} delivered once each (got ${seqs.length})`);
    }
  });

  test(`${name}: broker restarted mid-stream: sends are retryable meanwhile, nothing is lost, consumption resumes`, { skip: skip ? `Kafka unavailable: ${skip}` : !canStartOwnBroker() && 'cannot start an own broker (java or .cache/kafka missing)', timeout: 150_000 }, async (t) => {
    const broker = new KafkaBrokerProcess(`restart-${name.replace(/[^a-z0-9]/g, '')}-${randomUUID().slice(0, 6)}`);
    t.after(() => broker.stop(false));
    const addr = await broker.start();
    const bus = make({ brokers: [addr], partitions: 3, sendTimeoutMs: 4_000, sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500, retryBaseMs: 100, retryCapMs: 1_000 });
    t.after(() => bus.close());
    const topic = `test.${name}.restart`;
    const group = 'g-restart';
    await bus.ensureTopic(topic, 3);
    const p = bus.producer();
    const seen = new Seen();
    const sub = await bus.subscribe({ topic, groupId: group, handler: async (b) => seen.add(b) });
    await sendAll(p, topic, messages(6, 10));
    await waitFor(() => seen.unique() >= 60, 30_000, 'first 60 before the restart');
    await broker.stop(true);
    const down = await p.send(topic, messages(6, 1, 10));
    assert.equal(down.kind, 'retryable', `send while the broker is down: ${JSON.stringify(down)}`);
    await broker.start();
    await sendRetrying(p, topic, messages(6, 1, 10), 40_000);
    await sendRetrying(p, topic, messages(6, 9, 11), 40_000);
    await waitFor(() => seen.unique() >= 120, 60_000, 'all 120 after the restart');
    await sub.stop();
    for (const [key, seqs] of seen.byKey) assert.deepEqual([...new Set(seqs)].sort((a, b) => a - b), [...Array(20).keys()], `${key} lost nothing`);
  });
}

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InProcessBus, memoryLogger, type BusMessage } from './index.js';

test('keyed messages stay ordered per key and are redelivered until the handler succeeds', async () => {
  const bus = new InProcessBus({ partitions: 3, maxBatch: 5 });
  const seen = new Map<string, number[]>();
  let failOnce = true;
  const sub = await bus.subscribe({
    topic: 't', groupId: 'g',
    handler: (msgs: readonly BusMessage[]) => {
      if (failOnce) { failOnce = false; return Promise.reject(new Error('store down')); }
      for (const m of msgs) {
        const l = seen.get(m.key) ?? [];
        l.push(Number(Buffer.from(m.value).toString()));
        seen.set(m.key, l);
      }
      return Promise.resolve();
    },
  });
  const prod = bus.producer();
  for (let i = 0; i < 40; i++) {
    const r = await prod.send('t', [{ key: `h${i % 4}`, value: Buffer.from(String(i)) }]);
    assert.equal(r.kind, 'ok');
  }
  await bus.idle();
  await sub.stop();
  assert.equal([...seen.values()].reduce((a, l) => a + l.length, 0), 40, 'every message delivered exactly once after the retry');
  for (const [k, l] of seen) assert.deepEqual(l, [...l].sort((a, b) => a - b), `order kept for ${k}`);
  assert.equal(bus.lag('t', 'g'), 0);
});

test('lingerMs gathers messages that trickle in into one handler call', async () => {
  const bus = new InProcessBus({ partitions: 1, maxBatch: 100, lingerMs: 200 });
  const calls: number[] = [];
  const sub = await bus.subscribe({ topic: 't', groupId: 'g', handler: (msgs) => { calls.push(msgs.length); return Promise.resolve(); } });
  const prod = bus.producer();
  for (let i = 0; i < 10; i++) {
    await prod.send('t', [{ key: 'h', value: Buffer.from(String(i)) }]);
    await new Promise((r) => setTimeout(r, 2));
  }
  await bus.idle();
  await sub.stop();
  assert.equal(calls.reduce((a, b) => a + b, 0), 10);
  assert.ok(calls.length < 10, `expected batching, got calls of ${JSON.stringify(calls)}`);
});

test('a topic no group reads keeps its newest unreadRetentionBytes per partition; a group that subscribes later reads those', async () => {
  const log = memoryLogger();
  const bus = new InProcessBus({ partitions: 1, unreadRetentionBytes: 1000, logger: log });
  const p = bus.producer();
  assert.equal(bus.hasReaders('t.unread'), false);
  for (let i = 0; i < 100; i++) await p.send('t.unread', [{ key: 'k', value: new Uint8Array(100).fill(i) }]);
  assert.equal(bus.unreadDroppedCount('t.unread'), 90);
  assert.equal(bus.lag('t.unread', 'none'), 10, 'ten messages of 100 bytes kept');
  const dropped = log.entries.filter((e) => e.fields.topic === 't.unread');
  assert.equal(dropped.length, 1, 'logged once');
  assert.equal(dropped[0]!.level, 'warn');
  const got: number[] = [];
  const offsets: string[] = [];
  await bus.subscribe({ topic: 't.unread', groupId: 'late', fromBeginning: true, handler: async (ms) => void ms.forEach((m) => (got.push(m.value[0]!), offsets.push(m.offset))) });
  assert.equal(bus.hasReaders('t.unread'), true);
  await bus.idle();
  assert.deepEqual(got, [90, 91, 92, 93, 94, 95, 96, 97, 98, 99]);
  assert.deepEqual(offsets, ['90', '91', '92', '93', '94', '95', '96', '97', '98', '99'], 'offsets keep counting');
  await bus.close();
});

test('a topic a group reads keeps every message the group has not committed, whatever unreadRetentionBytes says', async () => {
  const bus = new InProcessBus({ partitions: 1, unreadRetentionBytes: 100 });
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const got: number[] = [];
  await bus.subscribe({ topic: 't.read', groupId: 'slow', handler: async (ms) => { await gate; ms.forEach((m) => got.push(m.value[0]!)); } });
  const p = bus.producer();
  for (let i = 0; i < 50; i++) await p.send('t.read', [{ key: 'k', value: new Uint8Array(100).fill(i) }]);
  assert.equal(bus.unreadDroppedCount('t.read'), 0);
  release();
  await bus.idle();
  assert.deepEqual(got, [...Array(50).keys()]);
  await bus.close();
});

test('one message larger than unreadRetentionBytes is kept (the newest is never dropped)', async () => {
  const bus = new InProcessBus({ partitions: 1, unreadRetentionBytes: 10 });
  await bus.producer().send('t.big', [{ key: 'k', value: new Uint8Array(50) }]);
  await bus.producer().send('t.big', [{ key: 'k', value: new Uint8Array(60) }]);
  assert.equal(bus.lag('t.big', 'none'), 1);
  assert.equal(bus.unreadDroppedCount('t.big'), 1);
  await bus.close();
});

test('a handler resolving { commit: false }: the subscription goes on, the group stays committed where it was, a new subscription gets the messages again', async () => {
  const bus = new InProcessBus({ partitions: 1, maxBatch: 4 });
  assert.equal(bus.redelivers, false, 'the in-process bus does not claim redelivery after a restart unless told to');
  assert.equal(new InProcessBus({ redelivers: true }).redelivers, true);
  const p = bus.producer();
  const send = (from: number, n: number) => p.send('t', Array.from({ length: n }, (_, i) => ({ key: 'k', value: Buffer.from(String(from + i)) })));
  const num = (m: BusMessage) => Number(Buffer.from(m.value).toString());
  await send(0, 10);
  const first: number[] = [];
  let calls = 0;
  const sub1 = await bus.subscribe({
    topic: 't', groupId: 'g',
    handler: (msgs) => {
      first.push(...msgs.map(num));
      // the second call commits (everything up to its last message), the others do not
      return Promise.resolve(++calls === 2 ? undefined : { commit: false as const });
    },
  });
  await bus.idle();
  assert.deepEqual(first, [...Array(10).keys()], 'each message handed over once, in order');
  assert.equal(bus.lag('t', 'g'), 2, 'committed up to the second call (messages 0-7): 8 and 9 are not');
  await sub1.stop();
  const second: number[] = [];
  const sub2 = await bus.subscribe({ topic: 't', groupId: 'g', handler: (msgs) => { second.push(...msgs.map(num)); return Promise.resolve(); } });
  await bus.idle();
  await send(10, 1);
  await bus.idle();
  await sub2.stop();
  assert.deepEqual(second, [8, 9, 10], 'the uncommitted messages again, then the new one');
  assert.equal(bus.lag('t', 'g'), 0);
});

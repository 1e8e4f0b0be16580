import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InProcessBus, type BusMessage } from './index.js';

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

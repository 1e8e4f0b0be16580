import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InProcessBus, type BusMessage } from '@wattsplit/wire';
import { NamespacedBus } from './namespaced-bus.js';

test('NamespacedBus: topics and consumer groups are prefixed on the bus below; handlers and lag() use the logical names', async () => {
  const inner = new InProcessBus({ partitions: 2 });
  const a = new NamespacedBus(inner, 'staging');
  const b = new NamespacedBus(inner, 'prod');
  const seenA: BusMessage[] = [];
  const seenB: BusMessage[] = [];
  // The same logical topic and group in two namespaces: two topics and two groups underneath.
  await a.subscribe({ topic: 't', groupId: 'g', handler: async (ms) => void seenA.push(...ms) });
  await b.subscribe({ topic: 't', groupId: 'g', handler: async (ms) => void seenB.push(...ms) });
  assert.equal((await a.producer().send('t', [{ key: 'k', value: new Uint8Array([1]) }])).kind, 'ok');
  await inner.idle();
  assert.equal(seenA.length, 1);
  assert.equal(seenA[0]!.topic, 't', 'handlers see the logical topic');
  assert.equal(seenB.length, 0, 'the other namespace saw nothing');
  // The groups underneath are the namespaced ones: the inner bus knows the committed offsets there.
  assert.equal(inner.lag('staging.t', 'staging.g'), 0);
  assert.equal(await a.lag('t', 'g'), 0);
  assert.equal(a.topic('t'), 'staging.t');
  assert.equal(a.group('g'), 'staging.g');
  assert.throws(() => new NamespacedBus(inner, 'bad name'), /bus namespace="bad name" must be/);
  await inner.close();
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { murmur2, kafkaPartitionForKey } from './murmur2.js';

const require = createRequire(import.meta.url);

test('murmur2 matches the Java client (vectors from Kafka UtilsTest.testMurmur2)', () => {
  const vectors: [string, number][] = [
    ['21', -973932308],
    ['foobar', -790332482],
    ['a-little-bit-long-string', -985981536],
    ['a-little-bit-longer-string', -1486304829],
    ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
    ['abc', 479470107],
  ];
  for (const [s, want] of vectors) assert.equal(murmur2(Buffer.from(s)), want, s);
});

test('partition for a host id is the one kafkajs DefaultPartitioner picks', () => {
  const kafkajsMurmur = require('kafkajs/src/producer/partitioners/default/murmur2.js') as (k: Buffer | string) => number;
  for (let i = 0; i < 500; i++) {
    const host = `hv-${i.toString(36)}.rack${i % 7}.dc1`;
    for (const n of [1, 3, 8, 64]) assert.equal(kafkaPartitionForKey(host, n), (kafkajsMurmur(host) & 0x7fffffff) % n, `${host} / ${n}`);
  }
});

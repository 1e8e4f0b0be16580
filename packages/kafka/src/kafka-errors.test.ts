import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { createRequire } from 'node:module';
import { memoryLogger, WattsplitError } from '@wattsplit/wire';
import { isFatalKafkaError, sendFailure } from './kafka-errors.js';
import { KafkaBus } from './kafkajs-bus.js';
import { PlatformaticKafkaBus } from './platformatic-bus.js';

const require = createRequire(import.meta.url);
// The clients' own error classes, constructed the way they throw them (no mocks of internals).
const kjs = require('kafkajs') as { KafkaJSProtocolError: new (e: unknown) => Error; KafkaJSConnectionError: new (m: string) => Error; KafkaJSNumberOfRetriesExceeded: new (e: Error, o: unknown) => Error };

test('a broker that went away is retryable; a message too large is rejected for good', () => {
  const conn = new kjs.KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:9');
  const r1 = sendFailure(new kjs.KafkaJSNumberOfRetriesExceeded(conn, { retryCount: 8, retryTime: 2000 }), 'kafka send to t (3 messages)');
  assert.equal(r1.kind, 'retryable');
  assert.ok(r1.kind === 'retryable' && r1.error.code === 'TRANSPORT_UNAVAILABLE' && /ECONNREFUSED/.test(r1.error.message) && r1.error.message.startsWith('kafka send to t (3 messages)'));
  const tooLarge = new kjs.KafkaJSProtocolError({ type: 'MESSAGE_TOO_LARGE', code: 10, retriable: false, message: 'The request included a message larger than the max message size the server will accept' });
  assert.equal(isFatalKafkaError(tooLarge), true);
  const r2 = sendFailure(tooLarge, 'kafka send to t (1 messages)');
  assert.equal(r2.kind, 'failed');
  assert.ok(r2.kind === 'failed' && r2.error.code === 'TRANSPORT_REJECTED' && !r2.error.retriable);
  const leader = new kjs.KafkaJSProtocolError({ type: 'LEADER_NOT_AVAILABLE', code: 5, retriable: true, message: 'There is no leader for this topic-partition' });
  assert.equal(sendFailure(leader, 'x').kind, 'retryable');
});

for (const [name, make] of [
  ['kafkajs', (port: number) => new KafkaBus({ brokers: [`127.0.0.1:${port}`], sendTimeoutMs: 3_000, logger: memoryLogger() })],
  ['platformatic', (port: number) => new PlatformaticKafkaBus({ brokers: [`127.0.0.1:${port}`], sendTimeoutMs: 3_000, logger: memoryLogger() })],
] as const) {
  test(`${name}: send() to a port where no broker listens answers retryable, never throws`, { timeout: 30_000 }, async () => {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as { port: number }).port;
    await new Promise<void>((r) => srv.close(() => r()));
    const bus = make(port);
    try {
      const r = await bus.producer().send('wattsplit.telemetry.v1', [{ key: 'hv-1', value: new Uint8Array([1]) }]);
      assert.equal(r.kind, 'retryable', JSON.stringify(r));
      assert.ok(r.kind === 'retryable' && r.error instanceof WattsplitError && r.error.retriable);
    } finally {
      await bus.close();
    }
  });
}

test('kafkajs bus refuses codecs it does not have, naming the field; lz4 it has (kafkajs-lz4.ts)', async () => {
  assert.throws(() => new KafkaBus({ brokers: ['k:1'], compression: 'snappy' }), /compression="snappy" is not available with kafkajs/);
  assert.throws(() => new KafkaBus({ brokers: ['k:1'], compression: 'zstd' }), /compression="zstd" is not available with kafkajs/);
  await new KafkaBus({ brokers: ['k:1'], compression: 'lz4' }).close();
});

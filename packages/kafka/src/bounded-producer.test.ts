// The producer wrapper's log while a broker is down: every send fails (about one a second from a busy gateway);
// one warning per topic and error code per window, the rest at debug and counted in the next warning. A send
// refused for good (a message too large) is always a warning. The clients' own error classes, as they throw them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { memoryLogger, wasReported } from '@wattsplit/wire';
import { boundedProducer } from './bounded-producer.js';

const require = createRequire(import.meta.url);
const kjs = require('kafkajs') as { KafkaJSProtocolError: new (e: unknown) => Error; KafkaJSConnectionError: new (m: string) => Error; KafkaJSNumberOfRetriesExceeded: new (e: Error, o: unknown) => Error };

test('send failures while a broker is down: one warning per topic and code per window, the repeats counted', async () => {
  const log = memoryLogger();
  let fail: () => Error = () => new kjs.KafkaJSNumberOfRetriesExceeded(new kjs.KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:9'), { retryCount: 5, retryTime: 1000 });
  const p = boundedProducer({ send: () => Promise.reject(fail()), close: () => Promise.resolve(), maxPendingMessages: 1000, sendTimeoutMs: 5000, logger: log, repeatWindowMs: 300 });
  const msg = [{ key: 'h', value: new Uint8Array([1]) }];
  for (let i = 0; i < 10; i++) assert.equal((await p.send('wattsplit.telemetry.v1', msg)).kind, 'retryable', 'every send still answers retryable');
  const r = await p.send('wattsplit.attribution.v1', msg);
  assert.equal(r.kind, 'retryable');
  // logged here, so the collector's "attributions not published" and the bus's redelivery line are at debug
  assert.ok(r.kind === 'retryable' && wasReported(r.error));
  const warns = () => log.entries.filter((e) => e.level === 'warn');
  assert.deepEqual(warns().map((e) => [e.fields.topic, e.fields.repeated]), [['wattsplit.telemetry.v1', undefined], ['wattsplit.attribution.v1', undefined]], 'one per topic');
  assert.equal(log.entries.filter((e) => e.level === 'debug' && e.fields.heldBack === true).length, 9);
  assert.match(warns()[0]!.msg, /^kafka send to wattsplit\.telemetry\.v1 \(1 messages\): .*ECONNREFUSED/);
  await new Promise((r) => setTimeout(r, 350));
  await p.send('wattsplit.telemetry.v1', msg);
  assert.equal(warns().length, 3);
  assert.equal(warns()[2]!.fields.repeated, 9, 'the next warning after the window counts the ones held back');
  // refused for good: every one is a warning
  fail = () => new kjs.KafkaJSProtocolError({ type: 'MESSAGE_TOO_LARGE', code: 10, retriable: false, message: 'The request included a message larger than the max message size the server will accept' });
  for (let i = 0; i < 3; i++) {
    const f = await p.send('wattsplit.telemetry.v1', msg);
    assert.ok(f.kind === 'failed' && wasReported(f.error));
  }
  assert.equal(warns().filter((e) => e.fields.code === 'TRANSPORT_REJECTED').length, 3);
  await p.close();
});

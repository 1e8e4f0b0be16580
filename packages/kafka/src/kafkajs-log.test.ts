/**
 * kafkajs's log lines at the level an operator should see them (kafkajs-log.ts): a broker's retriable
 * error response, which kafkajs retries by itself, is debug; anything else it logs at ERROR stays an error.
 * The unit part feeds the log creator entries shaped as kafkajs's connection writes them, with messages
 * from kafkajs's own protocol error table; the broker part starts a fresh broker (whose group coordinator is
 * not elected yet when the first client asks: the case the gateway hit at every first start) and runs the
 * gateway's producer and a consumer group against it through the real client.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { randomUUID } from 'node:crypto';
import { memoryLogger } from '@wattsplit/wire';
import { logLevel } from 'kafkajs';
import { KafkaBrokerProcess, canStartOwnBroker } from './broker-process.js';
import { waitFor } from './bus-contract-suite.js';
import { kafkajsLogCreator, REJOIN_PROTOCOL_MESSAGES, RETRIABLE_PROTOCOL_MESSAGES } from './kafkajs-log.js';
import { KafkaBus } from './kafkajs-bus.js';

const require = createRequire(import.meta.url);
const table = (require('kafkajs/src/protocol/error.js') as { errorCodes: { type: string; message: string; retriable: boolean }[] }).errorCodes;
const byType = (t: string) => table.find((e) => e.type === t)!;

function entry(level: logLevel, message: string, fields: Record<string, unknown>) {
  return { namespace: 'Connection', level, label: level === logLevel.ERROR ? 'ERROR' : 'WARN', log: { timestamp: new Date().toISOString(), logger: 'kafkajs', message, ...fields } };
}

test('kafkajs log lines: a retriable error response is debug, a non-retriable one and other errors stay errors', () => {
  // the table is kafkajs's own: the coordinator and leader elections are retriable there, authorisation is not
  assert.ok(RETRIABLE_PROTOCOL_MESSAGES.has(byType('GROUP_COORDINATOR_NOT_AVAILABLE').message));
  assert.ok(RETRIABLE_PROTOCOL_MESSAGES.has(byType('LEADER_NOT_AVAILABLE').message));
  assert.ok(!RETRIABLE_PROTOCOL_MESSAGES.has(byType('TOPIC_AUTHORIZATION_FAILED').message));
  assert.ok(RETRIABLE_PROTOCOL_MESSAGES.size >= 10, `${RETRIABLE_PROTOCOL_MESSAGES.size} retriable messages loaded`);

  const log = memoryLogger();
  const write = kafkajsLogCreator(log)();
  const common = { broker: '127.0.0.1:9092', clientId: 'wattsplit', correlationId: 6, size: 55 };
  write(entry(logLevel.ERROR, 'Response GroupCoordinator(key: 10, version: 2)', { ...common, error: byType('GROUP_COORDINATOR_NOT_AVAILABLE').message }));
  write(entry(logLevel.ERROR, 'Response Produce(key: 0, version: 7)', { ...common, error: byType('TOPIC_AUTHORIZATION_FAILED').message }));
  write(entry(logLevel.ERROR, 'Connection error: connect ECONNREFUSED 127.0.0.1:9092', { broker: common.broker }));
  write(entry(logLevel.ERROR, 'Crash: KafkaJSNumberOfRetriesExceeded', { error: byType('GROUP_COORDINATOR_NOT_AVAILABLE').message }));
  assert.deepEqual(log.entries.map((e) => [e.level, e.msg]), [
    ['debug', 'kafkajs: Response GroupCoordinator(key: 10, version: 2)'],
    ['error', 'kafkajs: Response Produce(key: 0, version: 7)'],
    ['error', 'kafkajs: Connection error: connect ECONNREFUSED 127.0.0.1:9092'],
    ['error', 'kafkajs: Crash: KafkaJSNumberOfRetriesExceeded'],
  ]);
  // the debug line keeps what kafkajs said, and says why it is not an error
  assert.equal(log.entries[0]!.fields.error, byType('GROUP_COORDINATOR_NOT_AVAILABLE').message);
  assert.equal(log.entries[0]!.fields.retriable, true);
  assert.equal(log.entries[0]!.fields.broker, common.broker);
  assert.equal(log.entries[0]!.fields.timestamp, undefined);
});

test('kafkajs log lines: a rebalance and a concurrent topic creation, which kafkajs handles itself, are not errors', () => {
  assert.ok(REJOIN_PROTOCOL_MESSAGES.has(byType('REBALANCE_IN_PROGRESS').message));
  assert.ok(REJOIN_PROTOCOL_MESSAGES.has(byType('UNKNOWN_MEMBER_ID').message));
  assert.equal(REJOIN_PROTOCOL_MESSAGES.size, 3);
  const log = memoryLogger();
  const write = kafkajsLogCreator(log)();
  const common = { broker: '127.0.0.1:9092', clientId: 'wattsplit', correlationId: 10, size: 10 };
  const group = { groupId: 'wattsplit-collector', memberId: 'wattsplit-f3ad' };
  // as collector-1 logged them when collector-2 joined the group (npm run fleet-demo, 2026-12-07)
  write(entry(logLevel.ERROR, 'Response Heartbeat(key: 12, version: 3)', { ...common, error: byType('REBALANCE_IN_PROGRESS').message }));
  write(entry(logLevel.WARN, 'The group is rebalancing, re-joining', { ...group, error: byType('REBALANCE_IN_PROGRESS').message }));
  write(entry(logLevel.ERROR, 'Response CreateTopics(key: 19, version: 3)', { ...common, error: 'Topic creation errors' }));
  write(entry(logLevel.ERROR, 'The coordinator is not aware of this member, re-joining the group', { ...group, error: byType('UNKNOWN_MEMBER_ID').message }));
  write(entry(logLevel.ERROR, 'Response JoinGroup(key: 11, version: 5)', { ...common, error: byType('GROUP_AUTHORIZATION_FAILED').message }));
  assert.deepEqual(log.entries.map((e) => [e.level, e.msg]), [
    ['debug', 'kafkajs: Response Heartbeat(key: 12, version: 3)'],
    ['info', 'kafkajs: The group is rebalancing, re-joining'],
    ['debug', 'kafkajs: Response CreateTopics(key: 19, version: 3)'],
    ['warn', 'kafkajs: The coordinator is not aware of this member, re-joining the group'],
    ['error', 'kafkajs: Response JoinGroup(key: 11, version: 5)'],
  ]);
  assert.equal(log.entries[0]!.fields.handledBy, 'group rejoin');
  assert.equal(log.entries[0]!.fields.error, byType('REBALANCE_IN_PROGRESS').message);
  assert.equal(log.entries[2]!.fields.handledBy, 'admin client or bus');
});

test('kafkajs log lines: one kind of warn or error line at most once per window while a broker is down, the repeats counted', () => {
  const log = memoryLogger();
  let t = 1_000_000;
  const write = kafkajsLogCreator(log, { repeatWindowMs: 30_000, now: () => t })();
  const refused = (port: number) => entry(logLevel.ERROR, `Connection error: connect ECONNREFUSED 127.0.0.1:${port}`, { broker: `127.0.0.1:${port}`, clientId: 'wattsplit' });
  const seed = (n: number) => entry(logLevel.ERROR, 'Failed to connect to seed broker, trying another broker from the list: Connection error: connect ECONNREFUSED 127.0.0.1:9092', { retryCount: n, retryTime: 300 * n });
  // 45 s of a broker down, as a gateway's client logs it: every attempt twice (about nine lines a second)
  for (let i = 0; i < 200; i++) {
    write(refused(9092));
    write(seed(i % 7));
    t += 225;
  }
  write(refused(9093)); // another broker: its own kind
  const at = (lvl: string) => log.entries.filter((e) => e.level === lvl);
  assert.deepEqual(at('error').map((e) => [e.msg, e.fields.repeated]), [
    ['kafkajs: Connection error: connect ECONNREFUSED 127.0.0.1:9092', undefined],
    ['kafkajs: Failed to connect to seed broker, trying another broker from the list: Connection error: connect ECONNREFUSED 127.0.0.1:9092', undefined],
    ['kafkajs: Connection error: connect ECONNREFUSED 127.0.0.1:9092', 133],
    ['kafkajs: Failed to connect to seed broker, trying another broker from the list: Connection error: connect ECONNREFUSED 127.0.0.1:9092', 133],
    ['kafkajs: Connection error: connect ECONNREFUSED 127.0.0.1:9093', undefined],
  ]);
  assert.equal(at('debug').length, 401 - 5, 'every line held back is still written, at debug');
  assert.ok(at('debug').every((e) => e.fields.heldBack === true));
  // a quiet window later the same kind is written at once again, with nothing held back
  t += 60_000;
  write(refused(9092));
  assert.equal(at('error').length, 6);
  assert.equal(at('error')[5]!.fields.repeated, 65, 'the repeats held back since the last line written (seconds 30-45 of the outage)');
  // warn lines are gated the same way; a rebalance (info) is never held back
  for (let i = 0; i < 3; i++) write(entry(logLevel.WARN, 'The group is rebalancing, re-joining', { groupId: 'g' }));
  assert.equal(at('info').length, 3);
});

test('kafkajs on a freshly started broker: the gateway\'s producer and a consumer group log no error, nor when a second member joins', { skip: !canStartOwnBroker() && 'cannot start an own broker (java or .cache/kafka missing)', timeout: 150_000 }, async (t) => {
  const broker = new KafkaBrokerProcess(`fresh-log-${randomUUID().slice(0, 6)}`);
  t.after(() => broker.stop(false));
  const addr = await broker.start();
  const log = memoryLogger();
  const bus = new KafkaBus({ brokers: [addr], partitions: 2, sendTimeoutMs: 10_000, logger: log });
  t.after(() => bus.close());
  const topic = 'test.fresh.log';
  await bus.ensureTopic(topic, 2);
  const got: string[] = [];
  const sub = await bus.subscribe({ topic, groupId: 'g-fresh', handler: async (b) => void got.push(...b.map((m) => m.key)) });
  const p = bus.producer();
  let sent = false;
  for (let i = 0; i < 20 && !sent; i++) {
    const r = await p.send(topic, [{ key: 'host-1', value: new Uint8Array([1, 2, 3]) }]);
    sent = r.kind === 'ok';
    if (!sent) await new Promise((res) => setTimeout(res, 500));
  }
  assert.ok(sent, 'the message was acked');
  await waitFor(() => got.includes('host-1'), 60_000, 'the message consumed');
  // A second member joins the group (a second collector): the first one's heartbeat is told the group is
  // rebalancing and it re-joins. And two processes create one new topic at once: one is told it exists.
  const log2 = memoryLogger();
  const bus2 = new KafkaBus({ brokers: [addr], partitions: 2, sendTimeoutMs: 10_000, logger: log2 });
  t.after(() => bus2.close());
  await Promise.all([bus.ensureTopic('test.fresh.log.both', 2), bus2.ensureTopic('test.fresh.log.both', 2)]);
  const got2: string[] = [];
  const sub2 = await bus2.subscribe({ topic, groupId: 'g-fresh', handler: async (b) => void got2.push(...b.map((m) => m.key)) });
  // the group rebalanced once the second member is handed messages (keys over both partitions, sent until it is)
  for (let i = 0; got2.length === 0 && i < 120; i++) {
    for (let k = 0; k < 4; k++) assert.equal((await p.send(topic, [{ key: `host-${i}-${k}`, value: new Uint8Array([k]) }])).kind, 'ok');
    await new Promise((res) => setTimeout(res, 500));
  }
  assert.ok(got2.length > 0, 'the second member was given a partition and consumed from it');
  await sub2.stop();
  await sub.stop();
  const errors = [...log.entries, ...log2.entries].filter((e) => e.level === 'error');
  assert.deepEqual(errors.map((e) => `${e.msg} ${JSON.stringify(e.fields.error ?? '')}`), [], 'no error-level line on a fresh broker, through a rebalance and a concurrent topic creation');
  const rejoined = log.entries.filter((e) => /rebalancing, re-joining/.test(e.msg));
  assert.ok(rejoined.every((e) => e.level === 'info'), 'a re-join after a rebalance is info');
  t.diagnostic(`first member's re-join lines: ${rejoined.length}; kafkajs responses handled by a rejoin: ${log.entries.filter((e) => e.fields.handledBy === 'group rejoin').length}`);
  const retried = log.entries.filter((e) => e.fields.retriable === true).map((e) => e.fields.error);
  t.diagnostic(`retriable responses logged at debug: ${retried.length} (${[...new Set(retried)].join('; ') || 'none this time'})`);
});

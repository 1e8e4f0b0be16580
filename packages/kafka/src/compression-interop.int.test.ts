// Batches compressed by one Kafka client are read by the other, through a real broker: lz4 (the default,
// kafkajs through the codec kafkajs-lz4.ts registers, platformatic through its own), gzip and none. A
// gateway on one client and a collector on the other must agree on every batch, and a kafkajs consumer
// must read what a platformatic or a Java producer wrote with lz4 (and Java read what kafkajs wrote).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { silentLogger, type BusMessage, type BusMessageIn } from '@wattsplit/wire';
import { canStartOwnBroker, kafkaUnavailableReason, repoRoot } from './broker-process.js';
import { waitFor, type KafkaBackedBus } from './bus-contract-suite.js';
import type { KafkaBusOptions, KafkaCompression } from './kafka-options.js';
import { KafkaBus } from './kafkajs-bus.js';
import { kafkajsLz4Codec } from './kafkajs-lz4.js';
import { PlatformaticKafkaBus } from './platformatic-bus.js';

const brokers = process.env.WATTSPLIT_TEST_KAFKA;
const skip = kafkaUnavailableReason();

const clients: Record<'kafkajs' | 'platformatic', (o: KafkaBusOptions) => KafkaBackedBus> = {
  kafkajs: (o) => new KafkaBus(o),
  platformatic: (o) => new PlatformaticKafkaBus(o),
};

/** Compressible (repeated text, like frames' names and counters) and incompressible (random) payloads. */
function payloads(n: number): BusMessageIn[] {
  const out: BusMessageIn[] = [];
  for (let i = 0; i < n; i++) {
    const value = i % 2 === 0 ? new TextEncoder().encode(`host-${i % 7} vm-${i} `.repeat(40 + (i % 13))) : new Uint8Array(randomBytes(200 + ((i * 37) % 900)));
    out.push({ key: `host-${i % 7}`, value, headers: { i: String(i) } });
  }
  return out;
}

test('the kafkajs LZ4 codec round-trips and writes the LZ4 frame format Kafka uses (magic 0x184D2204)', async () => {
  for (const data of [Buffer.alloc(0), Buffer.from('wattsplit '.repeat(500)), randomBytes(70_000)]) {
    const c = await kafkajsLz4Codec.compress({ buffer: data });
    assert.equal(c.readUInt32LE(0), 0x184d2204, 'LZ4 frame magic');
    assert.deepEqual(await kafkajsLz4Codec.decompress(c), data);
  }
  const text = Buffer.from('wattsplit '.repeat(500));
  assert.ok((await kafkajsLz4Codec.compress({ buffer: text })).length < text.length / 10, 'repeated text compresses');
});

const pairs: [keyof typeof clients, keyof typeof clients, KafkaCompression][] = [
  ['kafkajs', 'platformatic', 'lz4'],
  ['platformatic', 'kafkajs', 'lz4'],
  ['kafkajs', 'kafkajs', 'lz4'],
  ['platformatic', 'platformatic', 'lz4'],
  ['platformatic', 'kafkajs', 'gzip'],
  ['kafkajs', 'platformatic', 'none'],
];

for (const [from, to, compression] of pairs) {
  test(`${compression}: what ${from} produces, ${to} consumes, byte for byte`, { skip: skip && `Kafka unavailable: ${skip}`, timeout: 60_000 }, async (t) => {
    const producerBus = clients[from]({ brokers: [brokers!], partitions: 2, compression, logger: silentLogger });
    const consumerBus = clients[to]({ brokers: [brokers!], partitions: 2, sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500, logger: silentLogger });
    const topic = `test.interop.${randomUUID().slice(0, 8)}`;
    t.after(async () => {
      await producerBus.deleteTopic(topic).catch(() => undefined);
      await producerBus.close();
      await consumerBus.close();
    });
    await producerBus.ensureTopic(topic, 2);
    const sent = payloads(300);
    const p = producerBus.producer();
    for (let i = 0; i < sent.length; i += 100) {
      const r = await p.send(topic, sent.slice(i, i + 100));
      assert.equal(r.kind, 'ok', JSON.stringify(r));
    }
    const got: BusMessage[] = [];
    const sub = await consumerBus.subscribe({ topic, groupId: `g-${randomUUID().slice(0, 8)}`, fromBeginning: true, handler: (batch) => {
      got.push(...batch);
      return Promise.resolve();
    } });
    await waitFor(() => got.length >= sent.length, 30_000, `${sent.length} messages`);
    await sub.stop();
    assert.equal(got.length, sent.length);
    const byIndex = new Map(got.map((m) => [m.headers.i, m]));
    for (const [i, m] of sent.entries()) {
      const g = byIndex.get(String(i));
      assert.ok(g, `message ${i} arrived`);
      assert.equal(g.key, m.key);
      assert.deepEqual(Buffer.from(g.value), Buffer.from(m.value), `message ${i}'s bytes`);
    }
  });
}

/** Kafka's own Java clients: the jars the broker runs from (`scripts/kafka.sh jars`), or why they cannot run here. */
function javaTools(): { classpath: string } | { why: string } {
  if (!canStartOwnBroker()) return { why: 'java or the Kafka jars missing (scripts/kafka.sh fetch)' };
  const jars = spawnSync('bash', [join(repoRoot(), 'scripts/kafka.sh'), 'jars'], { encoding: 'utf8' });
  if (jars.status !== 0) return { why: `scripts/kafka.sh jars: ${jars.stderr.trim()}` };
  return { classpath: join(jars.stdout.trim(), '*') };
}
const java = javaTools();
const javaSkip = skip ? `Kafka unavailable: ${skip}` : 'why' in java ? java.why : false;

test('lz4: Kafka\'s Java console consumer reads what kafkajs wrote, and kafkajs reads what the Java console producer wrote', { skip: javaSkip, timeout: 90_000 }, async (t) => {
  const cp = (java as { classpath: string }).classpath;
  const bus = new KafkaBus({ brokers: [brokers!], partitions: 1, compression: 'lz4', sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500, logger: silentLogger });
  const toJava = `test.interop.java-in.${randomUUID().slice(0, 8)}`;
  const fromJava = `test.interop.java-out.${randomUUID().slice(0, 8)}`;
  t.after(async () => {
    await bus.deleteTopic(toJava).catch(() => undefined);
    await bus.deleteTopic(fromJava).catch(() => undefined);
    await bus.close();
  });
  await bus.ensureTopic(toJava, 1);
  await bus.ensureTopic(fromJava, 1);
  // Count the codec's calls: the batches really were lz4 both ways (kafkajs compressed, then decompressed Java's).
  const calls = { compress: 0, decompress: 0 };
  const { compress, decompress } = kafkajsLz4Codec;
  kafkajsLz4Codec.compress = (e) => (calls.compress++, compress(e));
  kafkajsLz4Codec.decompress = (b) => (calls.decompress++, decompress(b));
  t.after(() => Object.assign(kafkajsLz4Codec, { compress, decompress }));
  const lines = Array.from({ length: 50 }, (_, i) => `host-${i % 5}:frame ${i} ${'counters '.repeat(i % 9)}`.trimEnd());
  const r = await bus.producer().send(toJava, lines.map((l) => ({ key: l.slice(0, l.indexOf(':')), value: new TextEncoder().encode(l.slice(l.indexOf(':') + 1)) })));
  assert.equal(r.kind, 'ok', JSON.stringify(r));
  const printed = execFileSync('java', ['-cp', cp, 'org.apache.kafka.tools.consumer.ConsoleConsumer', '--bootstrap-server', brokers!, '--topic', toJava, '--from-beginning', '--max-messages', String(lines.length), '--timeout-ms', '30000', '--property', 'print.key=true', '--property', 'key.separator=:'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 60_000 });
  assert.deepEqual(printed.trimEnd().split('\n'), lines, 'the Java consumer printed every message, in order');
  assert.ok(calls.compress > 0, 'kafkajs compressed with the lz4 codec');

  execFileSync('java', ['-cp', cp, 'kafka.tools.ConsoleProducer', '--bootstrap-server', brokers!, '--topic', fromJava, '--compression-codec', 'lz4', '--property', 'parse.key=true', '--property', 'key.separator=:'], { input: lines.join('\n') + '\n', stdio: ['pipe', 'ignore', 'ignore'], timeout: 60_000 });
  const got: BusMessage[] = [];
  const sub = await bus.subscribe({ topic: fromJava, groupId: `g-${randomUUID().slice(0, 8)}`, fromBeginning: true, handler: (batch) => {
    got.push(...batch);
    return Promise.resolve();
  } });
  await waitFor(() => got.length >= lines.length, 30_000, `${lines.length} messages from Java`);
  await sub.stop();
  assert.deepEqual(got.map((m) => `${m.key}:${new TextDecoder().decode(m.value)}`), lines, 'kafkajs read every lz4 message the Java producer wrote, in order');
  assert.ok(calls.decompress > 0, 'kafkajs decoded the Java producer\'s batches with the lz4 codec');
});

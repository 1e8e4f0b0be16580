#!/usr/bin/env node
// Live per-tenant power from the attribution stream: subscribes to wattsplit.attribution.v1 (the
// collector publishes one AttributionBatch per host interval, after the store write) and prints, every
// few seconds, each tenant's mean power over the last window, split into dynamic and static watts.
//
//   WATTSPLIT_KAFKA_BROKERS=127.0.0.1:9092 node examples/stream-consumer.mjs [--window 10] [--method cpu_share]
//        [--group my-dashboard] [--namespace NS] [--client kafkajs|platformatic]
//
// Uses the same Bus as the collector (@wattsplit/kafka), so it gets per-host ordering and commits
// after each printed batch; a new --group starts at the end of the topic (live only).
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setInterval, clearInterval } from 'node:timers';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const imp = (p) => import(pathToFileURL(join(root, p)).href);
const { AttributionBatch, TOPICS, EntityKind } = await imp('packages/wire/dist/index.js');
const { KafkaBus, PlatformaticKafkaBus, NamespacedBus, kafkaOptionsFromEnv } = await imp('packages/kafka/dist/index.js');

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] ? argv[i + 1] : dflt;
};
const windowS = Number(opt('window', '10'));
const method = opt('method', 'cpu_share');
const group = opt('group', `stream-consumer-${process.pid}`);
const namespace = opt('namespace', '');

let options;
try {
  options = kafkaOptionsFromEnv({ WATTSPLIT_KAFKA_CLIENT: opt('client', 'kafkajs'), ...process.env });
} catch (e) {
  console.error(`stream-consumer: ${e.message}`);
  process.exit(2);
}
const inner = options.client === 'platformatic' ? new PlatformaticKafkaBus(options) : new KafkaBus(options);
const bus = namespace ? new NamespacedBus(inner, namespace) : inner;

// tenant → { dyn, stat } joules received in the current window
let acc = new Map();
let batches = 0;
// The topic is at-least-once: a collector that retries a publish (or a consumer redelivering after a
// rebalance) can hand over a host interval twice. A host's batches come in seq order on one partition
// and an agent never reuses a seq (it persists it), so a consumer that sums remembers the newest seq per
// host and skips anything at or below it; a seq far below it (an hour of frames) means the agent's
// state was reset by hand and starts a new sequence.
const newestSeq = new Map();
let duplicates = 0;
const sub = await bus.subscribe({
  topic: TOPICS.attribution,
  groupId: group,
  fromBeginning: false,
  handler: async (messages) => {
    for (const m of messages) {
      const b = AttributionBatch.decode(m.value);
      const seq = Number(b.seq);
      const seen = newestSeq.get(b.hostId);
      if (seen !== undefined && seq <= seen && seen - seq < 3600) {
        duplicates++;
        continue;
      }
      newestSeq.set(b.hostId, seq);
      batches++;
      for (const r of b.records) {
        if (r.method !== method) continue;
        const tenant = r.kind === EntityKind.ENTITY_KIND_VM ? r.tenant || '(no tenant)' : r.kind === EntityKind.ENTITY_KIND_HOST_OVERHEAD ? '(host overhead)' : '(unallocated)';
        const a = acc.get(tenant) ?? { dyn: 0, stat: 0 };
        a.dyn += r.dynamicJoules;
        a.stat += r.staticJoules;
        acc.set(tenant, a);
      }
    }
  },
});

console.log(`stream-consumer: ${options.brokers.join(',')} topic ${namespace ? `${namespace}.` : ''}${TOPICS.attribution}, method ${method}, ${windowS} s windows (Ctrl-C to stop)`);
const timer = setInterval(() => {
  const rows = [...acc.entries()].sort((a, b) => b[1].dyn + b[1].stat - (a[1].dyn + a[1].stat));
  const total = rows.reduce((s, [, a]) => s + a.dyn + a.stat, 0);
  console.log(`\n${new Date().toISOString()}  ${batches} host intervals${duplicates ? ` (${duplicates} repeated, skipped)` : ''}, ${(total / windowS).toFixed(1)} W in total`);
  console.log('tenant'.padEnd(24) + 'power W'.padStart(10) + 'dynamic W'.padStart(12) + 'static W'.padStart(11));
  for (const [tenant, a] of rows) {
    console.log(tenant.padEnd(24) + ((a.dyn + a.stat) / windowS).toFixed(1).padStart(10) + (a.dyn / windowS).toFixed(1).padStart(12) + (a.stat / windowS).toFixed(1).padStart(11));
  }
  acc = new Map();
  batches = 0;
  duplicates = 0;
}, windowS * 1000);

const stop = async () => {
  clearInterval(timer);
  await sub.stop();
  await bus.close();
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());

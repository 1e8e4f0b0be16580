/**
 * A fleet-mode collector as its own process, for the end-to-end tests that kill it (SIGKILL) and start
 * it again: KafkaBus (namespaced) → CollectorModule → ClickHouseServerStore. Configured by env:
 *   FLEET_BROKERS, FLEET_NAMESPACE, FLEET_CLICKHOUSE_URL, FLEET_DATABASE, FLEET_GROUP; optional
 *   FLEET_CLIENT (kafkajs | platformatic, default kafkajs), FLEET_STORE_MIN_INTERVAL_MS (default 0).
 * Prints "ready" on stdout once consuming; warnings and errors as JSON lines on stderr; SIGTERM = a
 * graceful stop (in-flight batch finishes and commits).
 */
import { createCollectorApp } from '@wattsplit/collector';
import { ClickHouseServerStore } from '@wattsplit/store';
import type { Logger, LogFn } from '@wattsplit/wire';
import { KafkaBus } from './kafkajs-bus.js';
import { PlatformaticKafkaBus } from './platformatic-bus.js';
import { NamespacedBus } from './namespaced-bus.js';

function stderrLogger(bindings: Record<string, unknown> = {}): Logger {
  const at =
    (level: string, on: boolean): LogFn =>
    ((a: Record<string, unknown> | string, b?: string) => {
      if (!on) return;
      const rec = typeof a === 'string' ? { level, msg: a, ...bindings } : { level, msg: b ?? '', ...bindings, ...a };
      process.stderr.write(JSON.stringify(rec) + '\n');
    });
  return { debug: at('debug', false), info: at('info', false), warn: at('warn', true), error: at('error', true), child: (more) => stderrLogger({ ...bindings, ...more }) };
}

function need(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} must be set`);
  return v;
}

const log = stderrLogger({ proc: 'collector' });
const busOptions = { brokers: need('FLEET_BROKERS').split(','), partitions: 4, sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500, retryBaseMs: 100, retryCapMs: 1_000, logger: log };
const inner = process.env.FLEET_CLIENT === 'platformatic' ? new PlatformaticKafkaBus(busOptions) : new KafkaBus(busOptions);
const bus = new NamespacedBus(inner, need('FLEET_NAMESPACE'));
const store = new ClickHouseServerStore({ url: need('FLEET_CLICKHOUSE_URL'), database: need('FLEET_DATABASE'), requestTimeoutMs: 5_000, logger: log });
const app = await createCollectorApp({
  bus,
  store,
  logger: log,
  groupId: need('FLEET_GROUP'),
  policy: 'reserved',
  staticPower: { fallbackWatts: { rapl: 50, gpu: 30, bmc_rest: 100 }, learn: false },
  storeWrites: { minIntervalMs: Number(process.env.FLEET_STORE_MIN_INTERVAL_MS ?? 0) },
});
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  void (async () => {
    await app.close();
    await store.close();
    await bus.close();
    process.exit(0);
  })();
});

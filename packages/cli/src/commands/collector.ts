/**
 * wattsplit collector [--brokers HOST:PORT] [--url http://clickhouse:8123 | --data-dir DIR] [--http-port 8080]
 * The NestJS collector in fleet mode: Kafka consumer group → attribution → ClickHouse; REST + /metrics.
 */
import { createCollectorApp } from '@wattsplit/collector';
import { intFlag, parse, strFlag } from '../args.js';
import { buildMethods } from '../demo-methods.js';
import { kafkaBusFromEnv, untilSignal } from '../fleet-bus.js';
import { makeLogger } from '../logging.js';
import { openStore, STORE_FLAGS } from '../store-open.js';

const HELP = `usage: wattsplit collector [--brokers HOST:PORT,...] [--url http://host:8123 --database wattsplit | --data-dir DIR]
  [--http-port 8080] [--policy reserved|equal|unallocated] [--models-dir /var/lib/wattsplit] [--log-level info]
  [--store-in-flight 1]   store writes running at once (group commit; see docs/collector.md)
  [--store-min-interval-ms N]  least time between two store writes (fewer, larger ClickHouse parts);
                          default 1000 with WATTSPLIT_KAFKA_CLIENT=platformatic, 0 with kafkajs (docs/fleet.md)
Kafka settings come from WATTSPLIT_KAFKA_*; ClickHouse from --url or WATTSPLIT_CLICKHOUSE_URL (embedded chDB otherwise).`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, { ...STORE_FLAGS, brokers: { type: 'string' }, 'http-port': { type: 'string' }, policy: { type: 'string' }, 'models-dir': { type: 'string' }, 'log-level': { type: 'string' }, 'store-in-flight': { type: 'string' }, 'store-min-interval-ms': { type: 'string' } });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const logger = makeLogger(strFlag(values, 'log-level', 'info'));
  const bus = kafkaBusFromEnv(strFlag(values, 'brokers', ''), logger);
  const storeWrites = { maxInFlight: intFlag(values, 'store-in-flight', 1, 1, 16), minIntervalMs: intFlag(values, 'store-min-interval-ms', bus.storeWriteIntervalMs, 0, 60_000) };
  const store = await openStore(values);
  const methods = await buildMethods(strFlag(values, 'models-dir', '/var/lib/wattsplit'), logger);
  const policy = strFlag(values, 'policy', 'reserved') as 'reserved' | 'equal' | 'unallocated';
  const app = await createCollectorApp({ bus, store, methods: methods.all, policy, storeWrites, logger, http: { port: intFlag(values, 'http-port', 8080, 0, 65535), host: '0.0.0.0' } });
  logger.info({ url: app.url, methods: methods.names }, 'collector running');
  await untilSignal();
  await app.close();
  await store.close();
  await bus.close();
  await methods.close();
  return 0;
}

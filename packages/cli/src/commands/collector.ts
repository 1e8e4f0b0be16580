/**
 * wattsplit collector [--brokers HOST:PORT] [--url http://clickhouse:8123 | --data-dir DIR] [--http-port 8080]
 * The NestJS collector in fleet mode: Kafka consumer group → attribution → ClickHouse; REST + /metrics.
 * The HTTP side binds 127.0.0.1 unless --http-host says otherwise; a network address needs
 * --api-tokens-file (or an explicit --allow-unauthenticated). Configuration is checked before anything
 * connects: a bad flag is one CONFIG_INVALID line and exit status 2.
 */
import { readFileSync } from 'node:fs';
import { ApiTokens, createCollectorApp, validateCollectorHttpConfig, type CollectorHttpConfig, type CollectorTrainingConfig } from '@wattsplit/collector';
import { WattsplitError, isWattsplitError, type Logger } from '@wattsplit/wire';
import type { Store } from '@wattsplit/store';
import { intFlag, numFlag, parse, strFlag, timeFlagNs, type Values } from '../args.js';
import { capWatchFromFile } from '../cap-watch-config.js';
import { kafkaBusFromEnv, untilSignal } from '../fleet-bus.js';
import { makeLogger } from '../logging.js';
import { openStoreWhenReady, STORE_FLAGS } from '../store-open.js';

const HELP = `usage: wattsplit collector [--brokers HOST:PORT,...] [--url http://host:8123 --database wattsplit | --data-dir DIR]
  [--http-port 8080] [--http-host 127.0.0.1] [--api-tokens-file FILE] [--allow-unauthenticated]
  [--tls-cert FILE --tls-key FILE] [--group wattsplit-collector]
  [--policy reserved|equal|unallocated] [--log-level info] [--caps caps.json]
  --caps FILE             the live power-cap watch: caps of hosts and groups (racks, PDUs); statuses on
                          wattsplit.capping.v1 and /metrics, a warning when a cap is predicted to cross (docs/capping.md)
  [--store-in-flight 1]   store writes running at once (group commit; see docs/collector.md)
  [--store-min-interval-ms N]  least time between two store writes (fewer, larger ClickHouse parts);
                          default 1000 with WATTSPLIT_KAFKA_CLIENT=platformatic, 0 with kafkajs (docs/fleet.md)
  [--no-store-linger]     with spaced writes, hand a partition its next batch as soon as the last is
                          published instead of shortly before the next write (more latency; docs/collector.md)
  [--checkpoint-every-ms 5000]  restart checkpoints saved and Kafka offsets committed at most this often per
                          partition (0: with every store write); a restart re-reads and checks the frames since (docs/collector.md)
Models (additive_model, per hardware class; stored in ClickHouse, the same version on every replica):
  --no-train              apply the versions other replicas train, never train here
  --train-check-s 60      how often the scheduler checks every class (first model, drift, period)
  --train-min-intervals 300  stored intervals a class needs before its first model
  --train-lookback-s 86400   history one training reads
  --drift-ratio 1.5       retrain when the recent residual exceeds this × the training residual
  --retrain-period-s 604800  retrain a model older than this
  --train-lease-ttl-s 600    how long a class's training lease holds (a trainer that dies keeps it this long)
  --train-nice 19         the training worker thread's nice value, 0-19 (19: training takes only the CPU that
                          ingest leaves; 0: the collector's own priority)
  --train-yield-above-s 2    training pauses while ingest is behind by more than this (the age of the oldest
                          frame not yet stored) and resumes after 5 s below it; 0: never pause (docs/collector.md)
  --train-max-pause-s 900    a training paused this long in total runs on without pausing again
  --train-effective-from T   activate what this collector trains from this interval end time (ISO 8601 or
                          unix seconds) instead of the commit + 2 s: a fixed switch-over (tests, replays)
HTTP (REST API, dashboard, /metrics, /healthz): binds --http-host (default 127.0.0.1, this machine only).
  --api-tokens-file FILE  bearer tokens, one "SCOPE TOKEN [NAME]" per line (or JSON); SCOPE is admin,
                          metrics (GET /metrics, /api/models) or tenant:<name> (that tenant's bills only)
  --allow-unauthenticated serve a non-loopback --http-host without tokens (anyone reaching it reads every bill)
  --tls-cert/--tls-key    HTTPS (PEM files), TLS 1.2+ with ECDHE AEAD suites only
  docs/collector.md "Access" has the scopes and what each endpoint needs.
Kafka settings come from WATTSPLIT_KAFKA_*; ClickHouse from --url or WATTSPLIT_CLICKHOUSE_URL (embedded chDB otherwise);
  --user U, --password P  ClickHouse credentials (or WATTSPLIT_CLICKHOUSE_USER, default "default", and
                          WATTSPLIT_CLICKHOUSE_PASSWORD, default empty; the variable keeps it out of ps);
  --cluster NAME (or WATTSPLIT_CLICKHOUSE_CLUSTER): a ClickHouse cluster of that name in the servers' remote_servers
                          (replicated tables ON CLUSTER behind Distributed tables; docs/fleet.md "Cluster").`;

const FLAGS = {
  ...STORE_FLAGS,
  caps: { type: 'string' },
  brokers: { type: 'string' },
  'http-port': { type: 'string' },
  'http-host': { type: 'string' },
  'api-tokens-file': { type: 'string' },
  'allow-unauthenticated': { type: 'boolean' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  group: { type: 'string' },
  policy: { type: 'string' },
  'no-train': { type: 'boolean' },
  'train-check-s': { type: 'string' },
  'train-min-intervals': { type: 'string' },
  'train-lookback-s': { type: 'string' },
  'drift-ratio': { type: 'string' },
  'retrain-period-s': { type: 'string' },
  'train-lease-ttl-s': { type: 'string' },
  'train-nice': { type: 'string' },
  'train-yield-above-s': { type: 'string' },
  'train-max-pause-s': { type: 'string' },
  'train-effective-from': { type: 'string' },
  'log-level': { type: 'string' },
  'store-in-flight': { type: 'string' },
  'store-min-interval-ms': { type: 'string' },
  'checkpoint-every-ms': { type: 'string' },
  'no-store-linger': { type: 'boolean' },
} as const;

const POLICIES = ['reserved', 'equal', 'unallocated'] as const;

function readPem(values: Values, flag: string): string {
  const path = strFlag(values, flag, '');
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new WattsplitError('CONFIG_INVALID', `--${flag}=${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { details: { field: flag, value: path } });
  }
}

/** The HTTP settings from the flags, checked (tokens file read, an open network bind refused). */
function httpConfig(values: Values): CollectorHttpConfig {
  const tokensFile = strFlag(values, 'api-tokens-file', '');
  const cert = values['tls-cert'] !== undefined;
  const key = values['tls-key'] !== undefined;
  if (cert !== key) throw new WattsplitError('CONFIG_INVALID', `--tls-cert and --tls-key go together (got only --${cert ? 'tls-cert' : 'tls-key'})`, { details: { field: cert ? 'tls-key' : 'tls-cert' } });
  const http: CollectorHttpConfig = {
    port: intFlag(values, 'http-port', 8080, 0, 65535),
    host: strFlag(values, 'http-host', '127.0.0.1'),
    ...(tokensFile ? { tokens: ApiTokens.load(tokensFile) } : {}),
    ...(values['allow-unauthenticated'] === true ? { allowUnauthenticated: true } : {}),
    ...(cert && key ? { tls: { cert: readPem(values, 'tls-cert'), key: readPem(values, 'tls-key') } } : {}),
  };
  try {
    validateCollectorHttpConfig(http);
  } catch (e) {
    // Say it in flags, not in config field names.
    if (isWattsplitError(e, 'CONFIG_INVALID') && e.details.field === 'http.host') {
      throw new WattsplitError('CONFIG_INVALID', `--http-host=${http.host ?? ''} is reachable from the network and no --api-tokens-file is given (pass --allow-unauthenticated to serve every bill to anyone who reaches it)`, {
        details: e.details,
      });
    }
    throw e;
  }
  return http;
}

export interface Settings {
  logger: Logger;
  http: CollectorHttpConfig;
  training: CollectorTrainingConfig;
  values: Values;
  policy: (typeof POLICIES)[number];
  group: string | undefined;
  capWatch: ReturnType<typeof capWatchFromFile> | undefined;
}

/** Everything that can be wrong with the command line, before anything connects (tokens and caps files read). */
export function settings(argv: string[]): Settings | 'help' {
  const { values } = parse(argv, FLAGS);
  if (values.help) return 'help';
  const logger = makeLogger(strFlag(values, 'log-level', 'info'));
  const policy = strFlag(values, 'policy', 'reserved');
  if (!POLICIES.some((p) => p === policy)) throw new WattsplitError('CONFIG_INVALID', `--policy=${policy}: expected one of ${POLICIES.join(', ')}`, { details: { field: 'policy', value: policy } });
  const group = strFlag(values, 'group', '');
  const effectiveFromNs = timeFlagNs(values, 'train-effective-from');
  const training: CollectorTrainingConfig = {
    enabled: values['no-train'] !== true,
    checkIntervalS: intFlag(values, 'train-check-s', 60, 1, 86_400),
    minIntervals: intFlag(values, 'train-min-intervals', 300, 30, 100_000_000),
    lookbackS: intFlag(values, 'train-lookback-s', 86_400, 60, 365 * 86_400),
    driftRatio: numFlag(values, 'drift-ratio', 1.5, { min: 1, max: 100, minExclusive: true }),
    periodS: intFlag(values, 'retrain-period-s', 7 * 86_400, 60, 10 * 365 * 86_400),
    leaseTtlS: intFlag(values, 'train-lease-ttl-s', 600, 10, 86_400),
    workerNice: intFlag(values, 'train-nice', 19, 0, 19),
    yieldToIngest: { pauseAboveS: numFlag(values, 'train-yield-above-s', 2, { min: 0, max: 3600 }), maxPauseS: intFlag(values, 'train-max-pause-s', 900, 0, 7 * 86_400) },
    ...(effectiveFromNs !== undefined ? { effectiveFromNs } : {}),
  };
  const caps = strFlag(values, 'caps', '');
  return { logger, http: httpConfig(values), training, values, policy: policy as Settings['policy'], group: group || undefined, capWatch: caps ? capWatchFromFile(caps) : undefined };
}

export async function run(argv: string[]): Promise<number> {
  let s: Settings | 'help';
  try {
    s = settings(argv);
  } catch (e) {
    if (!isWattsplitError(e, 'CONFIG_INVALID')) throw e;
    console.error(`wattsplit: ${e.code}: ${e.message}`);
    return 2;
  }
  if (s === 'help') {
    console.log(HELP);
    return 0;
  }
  const { logger, http, training, values, policy, group, capWatch } = s;
  const bus = kafkaBusFromEnv(strFlag(values, 'brokers', ''), logger);
  const storeWrites = { maxInFlight: intFlag(values, 'store-in-flight', 1, 1, 16), minIntervalMs: intFlag(values, 'store-min-interval-ms', bus.storeWriteIntervalMs, 0, 60_000), linger: values['no-store-linger'] !== true };
  // given: the pipeline's default otherwise (5 s on Kafka, every write where the bus does not redeliver)
  const checkpoints = values['checkpoint-every-ms'] === undefined ? undefined : { everyMs: intFlag(values, 'checkpoint-every-ms', 0, 0, 600_000) };
  const stopped = untilSignal(); // from here on SIGINT/SIGTERM end the command (also while waiting for the store)
  let store: Store | undefined;
  try {
    store = await openStoreWhenReady(values, { logger }, stopped);
  } catch (e) {
    await bus.close().catch(() => undefined);
    throw e;
  }
  if (!store) {
    await bus.close();
    return 0;
  }
  let app: Awaited<ReturnType<typeof createCollectorApp>>;
  try {
    app = await createCollectorApp({ bus, store, policy, storeWrites, ...(checkpoints ? { checkpoints } : {}), logger, http, models: { training }, ...(group ? { groupId: group } : {}), ...(capWatch ? { capWatch } : {}) });
  } catch (e) {
    // a start that failed exits with its reason: nothing it opened may keep the process alive
    await store.close().catch(() => undefined);
    await bus.close().catch(() => undefined);
    throw e;
  }
  logger.info({ url: app.url, methods: app.pipeline.methods.map((m) => m.name), training: training.enabled ? `every ${training.checkIntervalS} s` : 'off (apply only)' }, 'collector running');
  const signal = await stopped;
  logger.info({ signal }, 'collector stopping: the batches in hand are stored and committed, checkpoints saved, then the group is left');
  await app.close();
  await store.close();
  await bus.close();
  logger.info('collector stopped');
  return 0;
}

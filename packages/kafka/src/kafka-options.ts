/**
 * Configuration of the Kafka buses, shared by both client implementations, and its parsing from the
 * environment (WATTSPLIT_KAFKA_*; documented in docs/configuration.md). Bad values are CONFIG_INVALID
 * errors that name the variable and the value.
 */
import { WattsplitError, type Logger } from '@wattsplit/wire';

export type KafkaCompression = 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd';
export type KafkaClientKind = 'kafkajs' | 'platformatic';

export interface KafkaSasl {
  mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512';
  username: string;
  password: string;
}

export interface KafkaBusOptions {
  /** host:port of one or more brokers. */
  brokers: readonly string[];
  clientId?: string;
  /** Partitions of topics this bus creates (telemetry, attribution, dead letter). Default 8. */
  partitions?: number;
  /** Replication factor of topics this bus creates; -1 = the broker's default.replication.factor. */
  replicationFactor?: number;
  /**
   * Producer batch compression. Default 'lz4': a quarter to a fifth of gzip's CPU per message on the fleet's
   * frames and attribution batches, for 20-55 % more bytes (benchmarks/compression.mjs, docs/fleet.md
   * "Compression"). Both clients do lz4 and gzip (kafkajs's lz4 through kafkajs-lz4.ts); the platformatic client
   * also snappy; zstd needs Node >= 22.15. Consumers decode whatever each batch says, so producers may differ.
   */
  compression?: KafkaCompression;
  /** Most messages handed to one handler call. Default 500. */
  maxBatch?: number;
  /** A send() not acknowledged by the broker within this is reported retryable. Default 30 000. */
  sendTimeoutMs?: number;
  /** Messages accepted by send() but not yet acked, per producer; beyond it send() answers retryable TRANSPORT_BACKPRESSURE at once. Default 200 000. */
  maxPendingMessages?: number;
  /** Back-off after a handler failure, before the same messages are delivered again: exponential from base to cap, with jitter. */
  retryBaseMs?: number;
  retryCapMs?: number;
  /** Consumer group session timeout; a collector that died is replaced after at most this. Default 10 000. */
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  /** Partitions handled at the same time per subscription (each partition stays in order). Default 4. */
  partitionsConcurrently?: number;
  /**
   * A consumer's fetch waits at the broker until this many bytes are there or `fetchMaxWaitMs` passed (Kafka's
   * fetch.min.bytes / fetch.max.wait.ms). Larger means fewer fetch requests, each with more messages (fewer
   * handler calls and store writes). Defaults per client: kafkajs 512 KiB / 500 ms, platformatic 1 byte / 250 ms.
   */
  fetchMinBytes?: number;
  fetchMaxWaitMs?: number;
  ssl?: boolean;
  sasl?: KafkaSasl;
  logger?: Logger;
}

export const KAFKA_DEFAULTS = {
  clientId: 'wattsplit',
  partitions: 8,
  replicationFactor: -1,
  compression: 'lz4',
  maxBatch: 500,
  sendTimeoutMs: 30_000,
  maxPendingMessages: 200_000,
  retryBaseMs: 100,
  retryCapMs: 10_000,
  sessionTimeoutMs: 10_000,
  heartbeatIntervalMs: 1_000,
  partitionsConcurrently: 4,
} as const satisfies Partial<KafkaBusOptions>;

const BROKER = /^[A-Za-z0-9.[\]:_-]+:\d{1,5}$/;
const COMPRESSIONS: readonly KafkaCompression[] = ['none', 'gzip', 'snappy', 'lz4', 'zstd'];
const MECHANISMS: readonly KafkaSasl['mechanism'][] = ['plain', 'scram-sha-256', 'scram-sha-512'];

function invalid(name: string, value: unknown, why: string): WattsplitError {
  return new WattsplitError('CONFIG_INVALID', `${name}=${JSON.stringify(value)} ${why}`, { details: { field: name, value } });
}

/** Parses a comma-separated broker list ("10.0.0.1:9092,10.0.0.2:9092"). */
export function parseBrokers(value: string, name = 'brokers'): string[] {
  const list = value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (list.length === 0) throw invalid(name, value, 'must list at least one host:port');
  for (const b of list) if (!BROKER.test(b) || Number(b.slice(b.lastIndexOf(':') + 1)) > 65535) throw invalid(name, b, 'is not host:port');
  return list;
}

function int(env: Record<string, string | undefined>, name: string, min: number, max: number): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw invalid(name, raw, `must be an integer in [${min}, ${max}]`);
  return n;
}

/** Checks options given in code; throws CONFIG_INVALID naming the first bad field. */
export function validateKafkaOptions(o: KafkaBusOptions): KafkaBusOptions {
  if (o.brokers.length === 0) throw invalid('brokers', o.brokers, 'must list at least one host:port');
  for (const b of o.brokers) parseBrokers(b, 'brokers');
  const positive: (keyof KafkaBusOptions)[] = ['partitions', 'maxBatch', 'sendTimeoutMs', 'maxPendingMessages', 'retryBaseMs', 'retryCapMs', 'sessionTimeoutMs', 'heartbeatIntervalMs', 'partitionsConcurrently', 'fetchMinBytes', 'fetchMaxWaitMs'];
  for (const k of positive) {
    const v = o[k];
    if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 1)) throw invalid(k, v, 'must be a positive integer');
  }
  if (o.replicationFactor !== undefined && (!Number.isInteger(o.replicationFactor) || o.replicationFactor === 0 || o.replicationFactor < -1)) {
    throw invalid('replicationFactor', o.replicationFactor, 'must be -1 (broker default) or a positive integer');
  }
  if (o.compression !== undefined && !COMPRESSIONS.includes(o.compression)) throw invalid('compression', o.compression, `must be one of ${COMPRESSIONS.join(', ')}`);
  if (o.sasl && !MECHANISMS.includes(o.sasl.mechanism)) throw invalid('sasl.mechanism', o.sasl.mechanism, `must be one of ${MECHANISMS.join(', ')}`);
  return o;
}

/**
 * Reads the bus configuration from the environment:
 *   WATTSPLIT_KAFKA_BROKERS (required), WATTSPLIT_KAFKA_CLIENT (kafkajs|platformatic), WATTSPLIT_KAFKA_CLIENT_ID,
 *   WATTSPLIT_KAFKA_PARTITIONS, WATTSPLIT_KAFKA_REPLICATION_FACTOR, WATTSPLIT_KAFKA_COMPRESSION,
 *   WATTSPLIT_KAFKA_MAX_BATCH, WATTSPLIT_KAFKA_SEND_TIMEOUT_MS, WATTSPLIT_KAFKA_MAX_PENDING,
 *   WATTSPLIT_KAFKA_SESSION_TIMEOUT_MS, WATTSPLIT_KAFKA_CONCURRENCY, WATTSPLIT_KAFKA_FETCH_MIN_BYTES,
 *   WATTSPLIT_KAFKA_FETCH_MAX_WAIT_MS, WATTSPLIT_KAFKA_SSL (0|1),
 *   WATTSPLIT_KAFKA_SASL_MECHANISM, WATTSPLIT_KAFKA_SASL_USERNAME, WATTSPLIT_KAFKA_SASL_PASSWORD.
 */
export function kafkaOptionsFromEnv(env: Record<string, string | undefined> = process.env): KafkaBusOptions & { client: KafkaClientKind } {
  const brokersRaw = env.WATTSPLIT_KAFKA_BROKERS;
  if (brokersRaw === undefined || brokersRaw.trim() === '') throw invalid('WATTSPLIT_KAFKA_BROKERS', brokersRaw ?? '', 'must be set to host:port[,host:port...]');
  const client = env.WATTSPLIT_KAFKA_CLIENT ?? 'kafkajs';
  if (client !== 'kafkajs' && client !== 'platformatic') throw invalid('WATTSPLIT_KAFKA_CLIENT', client, 'must be kafkajs or platformatic');
  const o: KafkaBusOptions & { client: KafkaClientKind } = { client, brokers: parseBrokers(brokersRaw, 'WATTSPLIT_KAFKA_BROKERS') };
  if (env.WATTSPLIT_KAFKA_CLIENT_ID) o.clientId = env.WATTSPLIT_KAFKA_CLIENT_ID;
  const set = (k: 'partitions' | 'replicationFactor' | 'maxBatch' | 'sendTimeoutMs' | 'maxPendingMessages' | 'sessionTimeoutMs' | 'partitionsConcurrently' | 'fetchMinBytes' | 'fetchMaxWaitMs', v: number | undefined) => {
    if (v !== undefined) o[k] = v;
  };
  set('partitions', int(env, 'WATTSPLIT_KAFKA_PARTITIONS', 1, 10_000));
  set('replicationFactor', int(env, 'WATTSPLIT_KAFKA_REPLICATION_FACTOR', -1, 100));
  if (o.replicationFactor === 0) throw invalid('WATTSPLIT_KAFKA_REPLICATION_FACTOR', '0', 'must be -1 (broker default) or a positive integer');
  set('maxBatch', int(env, 'WATTSPLIT_KAFKA_MAX_BATCH', 1, 100_000));
  set('sendTimeoutMs', int(env, 'WATTSPLIT_KAFKA_SEND_TIMEOUT_MS', 100, 600_000));
  set('maxPendingMessages', int(env, 'WATTSPLIT_KAFKA_MAX_PENDING', 1, 100_000_000));
  set('sessionTimeoutMs', int(env, 'WATTSPLIT_KAFKA_SESSION_TIMEOUT_MS', 1_000, 600_000));
  set('partitionsConcurrently', int(env, 'WATTSPLIT_KAFKA_CONCURRENCY', 1, 1_000));
  set('fetchMinBytes', int(env, 'WATTSPLIT_KAFKA_FETCH_MIN_BYTES', 1, 64 * 1024 * 1024));
  set('fetchMaxWaitMs', int(env, 'WATTSPLIT_KAFKA_FETCH_MAX_WAIT_MS', 1, 30_000));
  const c = env.WATTSPLIT_KAFKA_COMPRESSION;
  if (c !== undefined && c !== '') {
    if (!(COMPRESSIONS as readonly string[]).includes(c)) throw invalid('WATTSPLIT_KAFKA_COMPRESSION', c, `must be one of ${COMPRESSIONS.join(', ')}`);
    o.compression = c as KafkaCompression;
  }
  const ssl = env.WATTSPLIT_KAFKA_SSL;
  if (ssl !== undefined && ssl !== '') {
    if (ssl !== '0' && ssl !== '1') throw invalid('WATTSPLIT_KAFKA_SSL', ssl, 'must be 0 or 1');
    o.ssl = ssl === '1';
  }
  const mech = env.WATTSPLIT_KAFKA_SASL_MECHANISM;
  if (mech !== undefined && mech !== '') {
    if (!(MECHANISMS as readonly string[]).includes(mech)) throw invalid('WATTSPLIT_KAFKA_SASL_MECHANISM', mech, `must be one of ${MECHANISMS.join(', ')}`);
    const username = env.WATTSPLIT_KAFKA_SASL_USERNAME ?? '';
    if (username === '') throw invalid('WATTSPLIT_KAFKA_SASL_USERNAME', username, 'must be set when WATTSPLIT_KAFKA_SASL_MECHANISM is');
    o.sasl = { mechanism: mech as KafkaSasl['mechanism'], username, password: env.WATTSPLIT_KAFKA_SASL_PASSWORD ?? '' };
  }
  return o;
}

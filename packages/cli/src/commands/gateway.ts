/**
 * wattsplit gateway: gRPC ingest → Kafka (fleet mode). Secure by default: binds 127.0.0.1, refuses
 * `--auth none` on any other address unless `--allow-unauthenticated`, TLS 1.2+ with forward-secret AEAD
 * suites only; metrics and health on a separate loopback HTTP port. A bad flag or file is one line
 * `wattsplit: CONFIG_INVALID: ...` on stderr and exit code 2.
 */
import { isIP } from 'node:net';
import { readFileSync } from 'node:fs';
import { TELEMETRY_TOPIC, serveGatewayHttp, startGateway, type HostAuthConfig } from '@wattsplit/gateway';
import { WattsplitError, isWattsplitError, type Logger } from '@wattsplit/wire';
import { intFlag, parse, strFlag, type Values } from '../args.js';
import { kafkaBusFromEnv, untilSignal } from '../fleet-bus.js';
import { makeLogger } from '../logging.js';

const HELP = `usage: wattsplit gateway [--brokers HOST:PORT,...] [--host 127.0.0.1] [--port 7443] [--topic ${TELEMETRY_TOPIC}]
  [--tls-cert FILE --tls-key FILE [--tls-ca FILE]] [--auth none|shared|per-host|client-cert]
  [--token-file FILE | --tokens-file hosts.json] [--allow-unauthenticated]
  [--metrics-host 127.0.0.1] [--metrics-port 9464]
  [--max-connections 4096] [--max-streams-per-connection 100] [--max-pre-auth-bytes 65536]
  [--auth-timeout-ms 10000] [--idle-timeout-ms 300000] [--tls-handshake-timeout-ms 5000]
  [--max-batch-bytes 8388608] [--log-level info]
--auth none is refused on a non-loopback --host unless --allow-unauthenticated is given.
Kafka settings come from WATTSPLIT_KAFKA_* (docs/configuration.md); --brokers overrides WATTSPLIT_KAFKA_BROKERS.`;

const isLoopback = (host: string): boolean => host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));

/** `--tokens-file`: a JSON object `{"<host id>": "<token>", ...}`; anything else names the file and the problem. */
export function parseTokensFile(path: string, text: string): Record<string, string> {
  const bad = (what: string): WattsplitError => new WattsplitError('CONFIG_INVALID', `--tokens-file=${path}: ${what}`, { details: { field: 'tokens-file', value: path } });
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw bad(`not valid JSON (${(e as Error).message}); expected {"<host id>": "<token>", ...}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad(`expected a JSON object {"<host id>": "<token>", ...}, got ${Array.isArray(v) ? 'an array' : v === null ? 'null' : typeof v}`);
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length === 0) throw bad('no hosts: the object is empty');
  for (const [host, token] of entries) {
    if (!host) throw bad('a host id is empty');
    if (typeof token !== 'string' || !token) throw bad(`the token of host ${JSON.stringify(host)} must be a non-empty string, got ${token === null ? 'null' : typeof token === 'string' ? 'an empty string' : typeof token}`);
  }
  return v as Record<string, string>;
}

function readFlagFile(values: Values, flag: string): string {
  const p = strFlag(values, flag, '');
  if (!p) throw new WattsplitError('CONFIG_INVALID', `--${flag} is required with --auth=${strFlag(values, 'auth', 'none')}`);
  try {
    return readFileSync(p, 'utf8').trim();
  } catch (e) {
    throw new WattsplitError('CONFIG_INVALID', `--${flag}=${p}: ${(e as Error).message}`);
  }
}

function authConfig(values: Values): HostAuthConfig {
  const mode = strFlag(values, 'auth', 'none');
  switch (mode) {
    case 'none': return { mode: 'none' };
    case 'shared': return { mode: 'shared', token: readFlagFile(values, 'token-file') };
    case 'per-host': {
      const p = strFlag(values, 'tokens-file', '');
      return { mode: 'per-host', tokens: parseTokensFile(p, readFlagFile(values, 'tokens-file')) };
    }
    case 'client-cert': return { mode: 'client-cert' };
    default: throw new WattsplitError('CONFIG_INVALID', `--auth=${mode}: expected none, shared, per-host or client-cert`);
  }
}

export async function run(argv: string[]): Promise<number> {
  try {
    return await serve(argv);
  } catch (e) {
    // Bad flags and files: one line, no stack, exit code 2 (usage error), like an unknown command.
    if (isWattsplitError(e, 'CONFIG_INVALID')) {
      console.error(`wattsplit: ${e.code}: ${e.message}`);
      return 2;
    }
    throw e;
  }
}

/** The gateway's settings from its command line, checked as at start (nothing read or opened yet); 'help' for --help. */
export function gatewaySettings(argv: string[]) {
  const { values } = parse(argv, {
    brokers: { type: 'string' }, host: { type: 'string' }, port: { type: 'string' }, topic: { type: 'string' },
    'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' }, 'tls-ca': { type: 'string' },
    auth: { type: 'string' }, 'token-file': { type: 'string' }, 'tokens-file': { type: 'string' }, 'allow-unauthenticated': { type: 'boolean' },
    'metrics-host': { type: 'string' }, 'metrics-port': { type: 'string' },
    'max-connections': { type: 'string' }, 'max-streams-per-connection': { type: 'string' }, 'max-pre-auth-bytes': { type: 'string' },
    'auth-timeout-ms': { type: 'string' }, 'idle-timeout-ms': { type: 'string' }, 'tls-handshake-timeout-ms': { type: 'string' },
    'max-batch-bytes': { type: 'string' }, 'log-level': { type: 'string' },
  });
  if (values.help) return 'help' as const;
  const logger: Logger = makeLogger(strFlag(values, 'log-level', 'info'));
  const host = strFlag(values, 'host', '127.0.0.1');
  const auth = authConfig(values);
  if (auth.mode === 'none' && !isLoopback(host)) {
    if (!values['allow-unauthenticated']) {
      throw new WattsplitError('CONFIG_INVALID', `--auth none on --host ${host} would let anyone on the network write telemetry; use --auth shared|per-host|client-cert, bind a loopback address, or pass --allow-unauthenticated`, { details: { field: 'auth', value: 'none' } });
    }
    logger.warn({ host, auth: 'none' }, `gateway accepts UNAUTHENTICATED agents on ${host} (--allow-unauthenticated): anyone who can reach it can write telemetry for any host`);
  }
  const cert = strFlag(values, 'tls-cert', '');
  const key = strFlag(values, 'tls-key', '');
  if (Boolean(cert) !== Boolean(key)) throw new WattsplitError('CONFIG_INVALID', '--tls-cert and --tls-key go together');
  if (values['tls-ca'] && !cert) throw new WattsplitError('CONFIG_INVALID', '--tls-ca needs --tls-cert and --tls-key');
  const limits = {
    maxConnections: intFlag(values, 'max-connections', 4096, 1, 1_000_000),
    maxStreamsPerConnection: intFlag(values, 'max-streams-per-connection', 100, 1, 10_000),
    maxPreAuthBytes: intFlag(values, 'max-pre-auth-bytes', 64 * 1024, 1024, 64 * 1024 * 1024),
    authTimeoutMs: intFlag(values, 'auth-timeout-ms', 10_000, 100, 3_600_000),
    idleTimeoutMs: intFlag(values, 'idle-timeout-ms', 300_000, 100, 86_400_000),
    tlsHandshakeTimeoutMs: intFlag(values, 'tls-handshake-timeout-ms', 5_000, 100, 600_000),
    maxBatchBytes: intFlag(values, 'max-batch-bytes', 8 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
  };
  const port = intFlag(values, 'port', 7443, 0, 65535);
  const metricsPort = intFlag(values, 'metrics-port', 9464, 0, 65535);
  const metricsHost = strFlag(values, 'metrics-host', '127.0.0.1');
  const topic = strFlag(values, 'topic', TELEMETRY_TOPIC);
  return { values, logger, host, auth, cert, key, limits, port, metricsPort, metricsHost, topic };
}

async function serve(argv: string[]): Promise<number> {
  const st = gatewaySettings(argv);
  if (st === 'help') {
    console.log(HELP);
    return 0;
  }
  const { values, logger, host, auth, cert, key, limits, port, metricsPort, metricsHost, topic } = st;
  const bus = kafkaBusFromEnv(strFlag(values, 'brokers', ''), logger);
  const producer = bus.producer();
  const gw = await startGateway({
    producer, logger, auth, host, port, topic, ...limits,
    ...(cert ? { tls: { certFile: cert, keyFile: key, ...(values['tls-ca'] ? { caFile: strFlag(values, 'tls-ca', '') } : {}) } } : {}),
    // Ready once the broker answers a metadata request for the topic (created if missing).
    readinessProbe: async () => {
      await bus.ensureTopic(topic).catch(() => undefined);
      await bus.lag(topic, 'wattsplit-gateway-readiness');
    },
  });
  const http = await serveGatewayHttp(gw, { host: metricsHost, port: metricsPort, logger });
  logger.info({ address: gw.address, port: gw.port, metricsPort: http.port, topic, auth: auth.mode, tls: cert ? (values['tls-ca'] ? 'mTLS' : 'TLS') : 'none' }, 'gateway listening');
  const signal = await untilSignal();
  logger.info({ signal }, 'gateway stopping: no new streams; in-flight batches finished and acked (2 s at most), the agents resend the rest');
  await http.close();
  await gw.close();
  await producer.close();
  await bus.close();
  logger.info('gateway stopped');
  return 0;
}

/** wattsplit gateway --brokers HOST:PORT [--port 7443] [TLS, auth flags]: gRPC ingest → Kafka (fleet mode). */
import { readFileSync } from 'node:fs';
import { startGateway, type HostAuthConfig } from '@wattsplit/gateway';
import { WattsplitError } from '@wattsplit/wire';
import { intFlag, parse, strFlag } from '../args.js';
import { kafkaBusFromEnv, untilSignal } from '../fleet-bus.js';
import { makeLogger } from '../logging.js';

const HELP = `usage: wattsplit gateway [--brokers HOST:PORT,...] [--host 0.0.0.0] [--port 7443]
  [--tls-cert FILE --tls-key FILE [--tls-ca FILE]] [--auth none|shared|per-host|client-cert]
  [--token-file FILE | --tokens-file hosts.json] [--log-level info]
Kafka settings come from WATTSPLIT_KAFKA_* (docs/configuration.md); --brokers overrides WATTSPLIT_KAFKA_BROKERS.`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    brokers: { type: 'string' }, host: { type: 'string' }, port: { type: 'string' },
    'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' }, 'tls-ca': { type: 'string' },
    auth: { type: 'string' }, 'token-file': { type: 'string' }, 'tokens-file': { type: 'string' }, 'log-level': { type: 'string' },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const logger = makeLogger(strFlag(values, 'log-level', 'info'));
  const read = (flag: string): string => {
    const p = strFlag(values, flag, '');
    try {
      return readFileSync(p, 'utf8').trim();
    } catch (e) {
      throw new WattsplitError('CONFIG_INVALID', `--${flag}=${p}: ${(e as Error).message}`);
    }
  };
  const mode = strFlag(values, 'auth', 'none');
  let auth: HostAuthConfig;
  switch (mode) {
    case 'none': auth = { mode: 'none' }; break;
    case 'shared': auth = { mode: 'shared', token: read('token-file') }; break;
    case 'per-host': auth = { mode: 'per-host', tokens: JSON.parse(read('tokens-file')) as Record<string, string> }; break;
    case 'client-cert': auth = { mode: 'client-cert' }; break;
    default: throw new WattsplitError('CONFIG_INVALID', `--auth=${mode}: expected none, shared, per-host or client-cert`);
  }
  const cert = strFlag(values, 'tls-cert', '');
  const bus = kafkaBusFromEnv(strFlag(values, 'brokers', ''), logger);
  const producer = bus.producer();
  const gw = await startGateway({
    producer, logger, auth,
    host: strFlag(values, 'host', '0.0.0.0'),
    port: intFlag(values, 'port', 7443, 0, 65535),
    ...(cert ? { tls: { certFile: cert, keyFile: strFlag(values, 'tls-key', ''), ...(values['tls-ca'] ? { caFile: strFlag(values, 'tls-ca', '') } : {}) } } : {}),
  });
  logger.info({ address: gw.address }, 'gateway listening');
  await untilSignal();
  await gw.close();
  await producer.close();
  await bus.close();
  return 0;
}

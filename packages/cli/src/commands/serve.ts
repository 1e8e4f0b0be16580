/**
 * wattsplit serve --data-dir DIR | --url URL [--database D] [--port P] [--host H] [--api-tokens-file F]
 *
 * The collector's REST API, dashboard and /metrics over a store, with no bus: nothing is consumed, the
 * store is only read (and migrated, so an older data directory opens). For a demo's data directory, an
 * analyst's copy, or a ClickHouse server the collectors write to.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiTokens, createApiServer, validateCollectorHttpConfig, type ApiServer, type CapStatusSource, type CollectorHttpConfig } from '@wattsplit/collector';
import type { Store } from '@wattsplit/store';
import { isWattsplitError, WattsplitError, type Logger } from '@wattsplit/wire';
import { intFlag, parse, strFlag, type Values } from '../args.js';
import { makeLogger } from '../logging.js';
import { openStoreWhenReady, STORE_FLAGS } from '../store-open.js';
import { untilSignal } from '../signals.js';
import { PRICING_FLAGS, pricing } from './bill.js';

const HELP = `usage: wattsplit serve (--data-dir DIR | --url URL [--database D]) [options]

Serves the REST API, the dashboard (/dashboard) and /metrics over a store; consumes no telemetry.

  --port P                  port (default 8080; 0 = any free port)
  --host H                  address to bind (default 127.0.0.1)
  --api-tokens-file F       bearer tokens with scopes (admin, metrics, tenant:<name>); see docs/collector.md
  --allow-unauthenticated   serve without tokens on a non-loopback address
  --price-per-kwh X | --tariff FILE, --pue X|FILE, --intensity FILE [--intensity-repeat-weekly],
  --regions FILE | --region R   what bills, carbon and the fairness view use (as wattsplit bill)
  --log-level L             silent|error|warn|info|debug (default info)`;

export const SERVE_HTTP_FLAGS = {
  port: { type: 'string' },
  host: { type: 'string' },
  'api-tokens-file': { type: 'string' },
  'allow-unauthenticated': { type: 'boolean' },
} as const;

/** The HTTP settings of serve / demo --serve, checked before anything opens. */
export function serveHttpConfig(values: Values, defaultPort = 8080): CollectorHttpConfig {
  const tokensFile = strFlag(values, 'api-tokens-file', '');
  const http: CollectorHttpConfig = {
    port: intFlag(values, 'port', defaultPort, 0, 65535),
    host: strFlag(values, 'host', '127.0.0.1'),
    ...(tokensFile ? { tokens: ApiTokens.load(tokensFile) } : {}),
    ...(values['allow-unauthenticated'] === true ? { allowUnauthenticated: true } : {}),
    billing: pricing(values),
  };
  try {
    validateCollectorHttpConfig(http);
  } catch (e) {
    if (isWattsplitError(e, 'CONFIG_INVALID') && e.details.field === 'http.host') {
      throw new WattsplitError('CONFIG_INVALID', `--host=${http.host ?? ''} is reachable from the network and no --api-tokens-file is given (pass --allow-unauthenticated to serve every bill to anyone who reaches it)`, { details: e.details });
    }
    throw e;
  }
  return http;
}

/**
 * What `demo --serve` bills with when no pricing flag is given: the shipped synthetic samples
 * (docs/data: a typical week of grid intensity for invented zones, repeated weekly; the demo hosts'
 * regions; a time-of-use tariff; PUE 1.3). Absent files (an installed CLI without docs): energy only.
 */
export function demoBilling(values: Values): NonNullable<CollectorHttpConfig['billing']> {
  const given = Object.keys(PRICING_FLAGS).some((k) => values[k] !== undefined);
  if (given) return pricing(values);
  const dir = fileURLToPath(new URL('../../../../docs/data/', import.meta.url));
  const f = (name: string) => join(dir, name);
  if (!existsSync(f('grid-intensity-synthetic.csv')) || !existsSync(f('regions.txt')) || !existsSync(f('tariff-tou.json'))) return {};
  return pricing({ intensity: f('grid-intensity-synthetic.csv'), 'intensity-repeat-weekly': true, regions: f('regions.txt'), tariff: f('tariff-tou.json'), pue: '1.3' });
}

/** Serves `store` until SIGINT/SIGTERM; prints the dashboard URL on stdout. */
export async function serveUntilSignal(store: Store, http: CollectorHttpConfig, logger: Logger, say: (line: string) => void, opts: { storeReady?: boolean; capWatch?: CapStatusSource } = {}): Promise<void> {
  let server: ApiServer | undefined;
  try {
    server = await createApiServer({ store, http, logger, ...(opts.storeReady ? { storeReady: true } : {}), ...(opts.capWatch ? { capWatch: opts.capWatch } : {}) });
    say(`wattsplit: serving the dashboard at ${server.url}/dashboard (REST API ${server.url}/api/openapi.json); Ctrl-C stops`);
    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolve();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
  } finally {
    await server?.close();
  }
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, { ...STORE_FLAGS, ...SERVE_HTTP_FLAGS, ...PRICING_FLAGS, 'log-level': { type: 'string' } });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const logger = makeLogger(strFlag(values, 'log-level', 'info'));
  const http = serveHttpConfig(values);
  const store = await openStoreWhenReady(values, { mustExist: true, logger }, untilSignal());
  if (!store) return 0; // stopped before the store answered
  try {
    await serveUntilSignal(store, http, logger, (l) => console.log(l));
  } finally {
    await store.close();
  }
  return 0;
}

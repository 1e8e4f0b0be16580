/**
 * Opens the store a command points at: embedded chDB on --data-dir (default), or a server with --url
 * (with --cluster NAME, a ClickHouse cluster: tables ON CLUSTER behind Distributed tables).
 * Read-only commands (query, bill, cap-plan) open with `mustExist`: a data directory that holds no store
 * is refused (CONFIG_INVALID, exit 2) rather than created empty, so a typo in --data-dir is not an empty answer.
 */
import { existsSync } from 'node:fs';
import { ChdbStore, ClickHouseServerStore, chdbDirOf, type Store } from '@wattsplit/store';
import { WattsplitError, backoffMs, isWattsplitError, silentLogger, type Logger } from '@wattsplit/wire';
import { strFlag } from './args.js';
import type { Values } from './args.js';

import { basename, resolve } from 'node:path';

export const DEFAULT_DATA_DIR = '.wattsplit/demo';

/** Where a wattsplit data directory keeps its embedded ClickHouse (the store's rule, shared with the library). */
export function chdbDir(dataDir: string): string {
  return chdbDirOf(dataDir);
}

export const STORE_FLAGS = {
  'data-dir': { type: 'string' },
  url: { type: 'string' },
  database: { type: 'string' },
  user: { type: 'string' },
  password: { type: 'string' },
  cluster: { type: 'string' },
} as const;

export interface OpenStoreOptions {
  /** Refuse a data directory without a store instead of creating one (read-only commands). */
  mustExist?: boolean;
  /**
   * Where the store logs (migrations, refused and retried writes). Long-running commands (collector)
   * pass theirs, so a write the store refuses is in the process's log; default silent (one-shot reads).
   */
  logger?: Logger;
}

export async function openStore(values: Values, opts: OpenStoreOptions = {}): Promise<Store> {
  const url = strFlag(values, 'url', process.env.WATTSPLIT_CLICKHOUSE_URL ?? '');
  const store: Store = url
    ? new ClickHouseServerStore({
        url,
        database: strFlag(values, 'database', 'wattsplit'),
        username: strFlag(values, 'user', process.env.WATTSPLIT_CLICKHOUSE_USER ?? 'default'),
        password: strFlag(values, 'password', process.env.WATTSPLIT_CLICKHOUSE_PASSWORD ?? ''),
        logger: opts.logger ?? silentLogger,
        ...clusterOf(values),
      })
    : new ChdbStore({ dataDir: existingChdbDir(strFlag(values, 'data-dir', DEFAULT_DATA_DIR), opts), logger: opts.logger ?? silentLogger });
  try {
    await store.init();
  } catch (e) {
    await store.close().catch(() => undefined);
    throw e;
  }
  return store;
}

/** --cluster NAME (or WATTSPLIT_CLICKHOUSE_CLUSTER): the schema ON CLUSTER NAME, Distributed tables (docs/fleet.md "Cluster"). */
function clusterOf(values: Values): { cluster: string } | Record<string, never> {
  const cluster = strFlag(values, 'cluster', process.env.WATTSPLIT_CLICKHOUSE_CLUSTER ?? '');
  return cluster ? { cluster } : {};
}

function existingChdbDir(dataDir: string, opts: OpenStoreOptions): string {
  const dir = chdbDir(dataDir);
  if (opts.mustExist && !existsSync(dir)) {
    const what = existsSync(dataDir) ? `${resolve(dataDir)} holds no wattsplit store (no ${basename(dir)}/ in it)` : `${resolve(dataDir)} does not exist`;
    throw new WattsplitError('CONFIG_INVALID', `--data-dir=${dataDir}: ${what}; run \`wattsplit demo --data-dir ${dataDir}\` or a collector with that --data-dir first, or pass --url for a ClickHouse server`, {
      details: { field: 'data-dir', value: dataDir },
    });
  }
  return dir;
}

/**
 * The store, once it answers (long-running commands: collector, serve). A ClickHouse server that cannot be reached
 * when the command starts (down, or not up yet: STORE_UNAVAILABLE, retriable) is tried again, 1 s doubling to 30 s,
 * with a warning each time, as the collector's bus is (TelemetryPipeline.start); nothing is consumed or served
 * meanwhile. Anything else (a refused login, a bad setting, a locked data directory) fails the start with its
 * reason. Undefined when `stopped` (a signal) came first.
 */
export async function openStoreWhenReady(values: Values, opts: OpenStoreOptions & { logger: Logger }, stopped: Promise<string>): Promise<Store | undefined> {
  const logger = opts.logger;
  let got: string | undefined;
  void stopped.then((s) => void (got = s));
  const signal = (): string | undefined => got; // read through a call: the signal arrives during the awaits
  for (let attempt = 1; ; attempt++) {
    try {
      const store = await openStore(values, opts);
      if (attempt > 1) logger.info({ attempts: attempt }, `store answered at attempt ${attempt}`);
      if (signal() !== undefined) {
        await store.close();
        return undefined;
      }
      return store;
    } catch (e) {
      if (!isWattsplitError(e, 'STORE_UNAVAILABLE') || !e.retriable || signal() !== undefined) throw e;
      const wait = backoffMs(attempt - 1, 1000, 30_000);
      logger.warn({ code: e.code, attempts: attempt, retryInMs: Math.round(wait) }, `cannot open the store (${e.message}); retrying in ${(wait / 1000).toFixed(1)} s. Nothing is served or consumed until it answers`);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([new Promise<void>((r) => (timer = setTimeout(r, wait))), stopped]);
      clearTimeout(timer);
      if (signal() !== undefined) {
        logger.info({ signal: signal() }, `stopped (${signal() ?? ''}) before the store answered`);
        return undefined;
      }
    }
  }
}

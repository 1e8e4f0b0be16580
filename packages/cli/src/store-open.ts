/** Opens the store a command points at: embedded chDB on --data-dir (default), or a server with --url. */
import { ChdbStore, ClickHouseServerStore, type Store } from '@wattsplit/store';
import { silentLogger } from '@wattsplit/wire';
import { strFlag } from './args.js';
import type { Values } from './args.js';

import { join } from 'node:path';

export const DEFAULT_DATA_DIR = '.wattsplit/demo';

/** Where a wattsplit data directory keeps its embedded ClickHouse. */
export function chdbDir(dataDir: string): string {
  return join(dataDir, 'clickhouse');
}

export const STORE_FLAGS = {
  'data-dir': { type: 'string' },
  url: { type: 'string' },
  database: { type: 'string' },
  user: { type: 'string' },
  password: { type: 'string' },
} as const;

export async function openStore(values: Values): Promise<Store> {
  const url = strFlag(values, 'url', process.env.WATTSPLIT_CLICKHOUSE_URL ?? '');
  const store: Store = url
    ? new ClickHouseServerStore({
        url,
        database: strFlag(values, 'database', 'wattsplit'),
        username: strFlag(values, 'user', process.env.WATTSPLIT_CLICKHOUSE_USER ?? 'default'),
        password: strFlag(values, 'password', process.env.WATTSPLIT_CLICKHOUSE_PASSWORD ?? ''),
        logger: silentLogger,
      })
    : new ChdbStore({ dataDir: chdbDir(strFlag(values, 'data-dir', DEFAULT_DATA_DIR)), logger: silentLogger });
  await store.init();
  return store;
}

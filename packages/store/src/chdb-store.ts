/** The embedded backend: chDB (the ClickHouse engine in-process) on a local data directory. */
import { join, resolve } from 'node:path';
import { WattsplitError } from '@wattsplit/wire';
import { ChdbTransport } from './chdb-transport.js';
import { SqlStore, type SqlStoreOptions } from './sql-store.js';

export interface ChdbStoreOptions extends SqlStoreOptions {
  /** Data directory; created if missing. chDB binds one data directory per process. */
  dataDir: string;
}

/**
 * Where a wattsplit data directory keeps its embedded ClickHouse: `<dataDir>/clickhouse`. The CLI's
 * `--data-dir` and the library's `dataDir` (startEmbeddedCollector, createApiServer) both mean the
 * wattsplit data directory; only ChdbStore takes the chDB directory itself.
 */
export function chdbDirOf(dataDir: string): string {
  return join(dataDir, 'clickhouse');
}

let openDir: string | undefined;

export class ChdbStore extends SqlStore {
  private readonly dir: string;
  private owns = false;

  constructor(opts: ChdbStoreOptions) {
    if (!opts.dataDir) throw new WattsplitError('CONFIG_INVALID', 'ChdbStore dataDir must be set', { details: { field: 'dataDir' } });
    const dir = resolve(opts.dataDir);
    super(new ChdbTransport(dir, opts.logger), opts);
    this.dir = dir;
  }

  get dataDir(): string {
    return this.dir;
  }

  protected override async connect(): Promise<void> {
    if (!this.owns) {
      if (openDir !== undefined) {
        throw new WattsplitError('CONFIG_INVALID', `ChdbStore dataDir=${this.dir}: a ChdbStore on ${openDir} is already open in this process (chDB binds one data directory per process; share that instance or close it first)`, {
          details: { dataDir: this.dir, open: openDir },
        });
      }
      openDir = this.dir;
      this.owns = true;
    }
    try {
      await (this.t as ChdbTransport).open();
    } catch (e) {
      openDir = undefined;
      this.owns = false;
      throw e;
    }
  }

  override async close(): Promise<void> {
    await super.close();
    if (this.owns) {
      openDir = undefined;
      this.owns = false;
    }
  }
}

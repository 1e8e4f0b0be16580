/** The fleet backend: a ClickHouse server over HTTP (22.8+ recommended; see docs/store.md for 18.16). */
import { HttpTransport, type ClickHouseServerOptions } from './http-transport.js';
import { SqlStore, type SqlStoreOptions } from './sql-store.js';

export interface ClickHouseServerStoreOptions extends SqlStoreOptions, ClickHouseServerOptions {}

export class ClickHouseServerStore extends SqlStore {
  constructor(opts: ClickHouseServerStoreOptions) {
    super(new HttpTransport(opts), opts);
  }

  protected override async connect(): Promise<void> {
    await (this.t as HttpTransport).ensureDatabase();
  }
}

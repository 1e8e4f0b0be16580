/** The fleet backend: a ClickHouse server over HTTP (22.8+ recommended; see docs/store.md for 18.16). */
import { CLUSTER_SETTINGS, checkClusterSchema } from './cluster-schema.js';
import { HttpTransport, type ClickHouseServerOptions } from './http-transport.js';
import { SqlStore, type SqlStoreOptions } from './sql-store.js';

export interface ClickHouseServerStoreOptions extends SqlStoreOptions, ClickHouseServerOptions {
  /**
   * A cluster in the servers' remote_servers: the schema is migrated ON CLUSTER (replicated tables behind
   * Distributed tables of the same names) and every query carries CLUSTER_SETTINGS (docs/fleet.md "Cluster").
   */
  cluster?: string;
}

export class ClickHouseServerStore extends SqlStore {
  constructor(opts: ClickHouseServerStoreOptions) {
    const cluster = opts.cluster === undefined ? undefined : checkClusterSchema({ cluster: opts.cluster, database: opts.database });
    super(
      new HttpTransport(cluster ? { ...opts, settings: { ...CLUSTER_SETTINGS, ...opts.settings } } : opts),
      cluster ? { ...opts, clusterSchema: cluster } : opts,
    );
  }

  protected override async connect(): Promise<void> {
    await (this.t as HttpTransport).ensureDatabase();
  }
}

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger, WattsplitError } from '@wattsplit/wire';
import { applyOnCluster, checkClusterSchema, clusterCreateStatements, type ClusterDdlRunner } from './cluster-schema.js';
import { DEFAULT_RETENTION, adaptToVersion, loadMigrations, migrate, renderTemplate, splitStatements } from './migrations.js';
import { capabilitiesOf, type ClickHouseTransport } from './transport.js';

const C = { cluster: 'wattsplit', database: 'db1' };

/** A transport that records statements; SHOW CREATE TABLE answers from `tables`, schema_migrations is empty. */
class Recorder implements ClickHouseTransport, ClusterDdlRunner {
  readonly backend = 'clickhouse-server' as const;
  readonly sent: string[] = [];
  constructor(private readonly tables: Record<string, string> = {}) {}
  async command(sql: string): Promise<void> {
    this.sent.push(sql);
  }
  async query(sql: string): Promise<string> {
    const m = /^SHOW CREATE TABLE (\S+)/.exec(sql);
    if (m) return `${this.tables[m[1]!] ?? ''}\n`;
    return '';
  }
  async queryBytes(): Promise<Uint8Array> {
    return new Uint8Array();
  }
  async insert(): Promise<void> {}
  async close(): Promise<void> {}
}

function statements(version: string): string[] {
  const caps = capabilitiesOf(version);
  return loadMigrations().flatMap((m) => splitStatements(adaptToVersion(renderTemplate(m.sql, DEFAULT_RETENTION, m.file), caps)));
}

test('every shipped CREATE TABLE becomes a replicated local table and a Distributed table of the same name, sharded by its first key column', () => {
  for (const version of ['18.16.1', '23.8.1']) {
    const creates = statements(version).filter((s) => s.startsWith('CREATE TABLE'));
    assert.ok(creates.length >= 10, version);
    for (const s of creates) {
      const name = /^CREATE TABLE IF NOT EXISTS (\w+)/.exec(s)![1]!;
      const firstKey = /ORDER BY \(?(\w+)/.exec(s)![1]!;
      const [local, dist, ...more] = clusterCreateStatements(s, C);
      assert.equal(more.length, 0);
      assert.match(local!, new RegExp(`^CREATE TABLE IF NOT EXISTS db1\\.${name}_local ON CLUSTER wattsplit\\n`));
      assert.match(local!, new RegExp(`ENGINE = Replicated\\w*MergeTree\\('/clickhouse/tables/\\{shard\\}/db1/${name}_local', '\\{replica\\}'`));
      // the local table keeps the statement's columns and clauses as written
      assert.ok(local!.includes(s.slice(s.indexOf('('), s.indexOf('ENGINE')).trim().slice(1, -1)), `${name}: columns changed`);
      const clauses = s.replace(/^[\s\S]*?ENGINE = \w+(\((?:[^()]|\([^()]*\))*\))?/, '');
      assert.match(clauses, /ORDER BY/);
      assert.ok(local!.endsWith(clauses), `${name}: clauses after the engine changed`);
      assert.match(dist!, new RegExp(`^CREATE TABLE IF NOT EXISTS db1\\.${name} ON CLUSTER wattsplit\\n`));
      assert.ok(dist!.endsWith(`ENGINE = Distributed(wattsplit, db1, ${name}_local, cityHash64(${firstKey}))`), dist);
      assert.doesNotMatch(dist!, /MATERIALIZED|CODEC|now\(\)/, name);
      if (/\bts DateTime\('UTC'\) MATERIALIZED/.test(s)) assert.match(dist!, /ts DateTime\('UTC'\) ALIAS toDateTime\(intDiv\(t1_ns, 1000000000\), 'UTC'\)/);
    }
  }
  // engine arguments follow the replication path
  const summing = clusterCreateStatements(statements('18.16.1').find((s) => s.includes('vm_energy_hourly\n'))!, C)[0]!;
  assert.match(summing, /ReplicatedSummingMergeTree\('\/clickhouse\/tables\/\{shard\}\/db1\/vm_energy_hourly_local', '\{replica\}', \(dynamic_j, static_j, low_j, high_j, shares\)\)/);
  const checkpoints = clusterCreateStatements(statements('18.16.1').find((s) => s.includes('collector_checkpoints'))!, C);
  assert.match(checkpoints[0]!, /ReplicatedReplacingMergeTree\('[^']+', '\{replica\}', seq\)/);
  assert.doesNotMatch(checkpoints[1]!, /saved_at/); // MATERIALIZED now() lives in the local table only
});

test('materialized views read and write the local tables; ALTER changes the local table and rebuilds the Distributed one', async () => {
  const r = new Recorder({
    'db1.host_samples': "CREATE TABLE db1.host_samples ( host String,  seq UInt64,  t1_ns Int64,  ts DateTime('UTC') ALIAS toDateTime(intDiv(t1_ns, 1000000000), 'UTC')) ENGINE = Distributed(wattsplit, db1, host_samples_local, cityHash64(host))",
    'db1.host_samples_local':
      "CREATE TABLE db1.host_samples_local ( host String,  seq UInt64,  t1_ns Int64,  unusable_sources Array(String),  ts DateTime('UTC') MATERIALIZED toDateTime(intDiv(t1_ns, 1000000000), 'UTC')) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db1/host_samples_local', '{replica}') PARTITION BY toYYYYMMDD(ts) ORDER BY (host, seq) SETTINGS index_granularity = 8192",
  });
  const mv = statements('18.16.1').find((s) => s.startsWith('CREATE MATERIALIZED VIEW IF NOT EXISTS vm_energy_hourly_mv'))!;
  await applyOnCluster(r, mv, C);
  assert.equal(r.sent.length, 1);
  assert.match(r.sent[0]!, /^CREATE MATERIALIZED VIEW IF NOT EXISTS db1\.vm_energy_hourly_mv ON CLUSTER wattsplit TO db1\.vm_energy_hourly_local AS\n/);
  assert.match(r.sent[0]!, /FROM db1\.attributions_local\b/);
  assert.doesNotMatch(r.sent[0]!, /FROM attributions\b/);

  r.sent.length = 0;
  await applyOnCluster(r, 'ALTER TABLE host_samples ADD COLUMN unusable_sources Array(String) AFTER anomaly_count', C);
  assert.deepEqual(r.sent.slice(0, 2), [
    'ALTER TABLE db1.host_samples_local ON CLUSTER wattsplit ADD COLUMN unusable_sources Array(String) AFTER anomaly_count',
    'DROP TABLE IF EXISTS db1.host_samples ON CLUSTER wattsplit',
  ]);
  assert.equal(r.sent.length, 3);
  assert.match(r.sent[2]!, /^CREATE TABLE IF NOT EXISTS db1\.host_samples ON CLUSTER wattsplit\n/);
  assert.match(r.sent[2]!, /unusable_sources Array\(String\)/);
  assert.match(r.sent[2]!, /ts DateTime\('UTC'\) ALIAS toDateTime/);
  assert.ok(r.sent[2]!.endsWith('ENGINE = Distributed(wattsplit, db1, host_samples_local, cityHash64(host))'));
});

test('statements that cannot be clustered, and bad names, are refused with what and why', async () => {
  const r = new Recorder();
  await assert.rejects(applyOnCluster(r, 'CREATE TABLE x (a UInt8) ENGINE = Log', C), (e: unknown) => e instanceof WattsplitError && e.code === 'CONFIG_INVALID' && /without IF NOT EXISTS/.test(e.message));
  await assert.rejects(applyOnCluster(r, 'CREATE TABLE IF NOT EXISTS x (a UInt8) ENGINE = Log', C), /only MergeTree-family tables can be replicated/);
  await assert.rejects(applyOnCluster(r, 'INSERT INTO x VALUES (1)', C), /cannot run on a cluster: not a CREATE TABLE/);
  await assert.rejects(applyOnCluster(new Recorder({ 'db1.x': 'CREATE TABLE db1.x ( a UInt8) ENGINE = MergeTree ORDER BY a' }), 'ALTER TABLE x ADD COLUMN b UInt8', C), /db1\.x is a MergeTree table, not the Distributed table over x_local/);
  assert.equal(r.sent.length, 0);
  assert.throws(() => checkClusterSchema({ cluster: 'my-cluster', database: 'db' }), /store cluster="my-cluster" must be an identifier/);
});

test('migrate: without a cluster every statement is sent as written; with one, the database and every table ON CLUSTER', async () => {
  const caps = capabilitiesOf('18.16.1');
  const plain = new Recorder();
  await migrate(plain, caps, DEFAULT_RETENTION, silentLogger);
  const expected = statements('18.16.1');
  const sentDdl = plain.sent.filter((s) => !s.startsWith('INSERT INTO schema_migrations'));
  assert.deepEqual(sentDdl.slice(1), expected); // after schema_migrations itself
  assert.doesNotMatch(plain.sent.join('\n'), /ON CLUSTER|Distributed|Replicated/);

  const dist = "CREATE TABLE db1.host_samples ( host String,  seq UInt64) ENGINE = Distributed(wattsplit, db1, host_samples_local, cityHash64(host))";
  const clustered = new Recorder({ 'db1.host_samples': dist, 'db1.host_samples_local': "CREATE TABLE db1.host_samples_local ( host String,  seq UInt64,  unusable_sources Array(String)) ENGINE = ReplicatedReplacingMergeTree('/p', '{replica}') ORDER BY (host, seq)" });
  await migrate(clustered, caps, DEFAULT_RETENTION, silentLogger, { cluster: C });
  assert.equal(clustered.sent[0], 'CREATE DATABASE IF NOT EXISTS db1 ON CLUSTER wattsplit');
  for (const s of clustered.sent.slice(1).filter((x) => !x.startsWith('INSERT INTO'))) assert.match(s, /^\w+ (TABLE|MATERIALIZED VIEW)( IF (NOT )?EXISTS)? db1\.\w+ ON CLUSTER wattsplit/, s.slice(0, 80));
  assert.ok(clustered.sent.some((s) => s.startsWith('CREATE TABLE IF NOT EXISTS db1.schema_migrations_local ON CLUSTER wattsplit')));
});

/**
 * The same migrations on a ClickHouse cluster. Every table a migration creates becomes two, `ON CLUSTER`:
 *   - `<name>_local`: the table as written, its engine made Replicated
 *     (`ReplacingMergeTree(seq)` → `ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/<db>/<name>_local',
 *     '{replica}', seq)`), one per server; the `{shard}` and `{replica}` macros come from each server's config;
 *   - `<name>`: a Distributed table over them, sharded by cityHash64 of the first ORDER BY column (host for
 *     every sample and attribution table), so every row of one key (one host's intervals, one model class)
 *     lives on one shard and ReplacingMergeTree's FINAL collapses replays there as on a single server.
 * SQL users and the store keep querying `<name>`. A MATERIALIZED column is an ALIAS in the Distributed table
 * (the local table computes it; an insert through the Distributed table must not send it); one that is not
 * a function of the row (`now()`) is only in the local table. Materialized views read and write the local
 * tables on each shard. `ALTER TABLE` changes the local tables and rebuilds the Distributed one. Any other statement is refused (CONFIG_INVALID) rather
 * than run half-clustered.
 * The store's reads and writes then need CLUSTER_SETTINGS (synchronous Distributed inserts, IN subqueries
 * on the co-located local tables, the first live replica of each shard).
 * Checked on ClickHouse 18.16 with ZooKeeper (scripts/cluster.mjs); ON CLUSTER needs `distributed_ddl`
 * in the servers' config.
 */
import { WattsplitError } from '@wattsplit/wire';
import type { Settings } from './transport.js';

export interface ClusterSchema {
  /** The cluster's name in the servers' remote_servers. */
  cluster: string;
  /** The database (part of each replicated table's ZooKeeper path). */
  database: string;
}

/**
 * Settings every store query needs on a cluster:
 * - insert_distributed_sync: an insert returns after every shard has it (a write the collector counts as
 *   stored is readable, and a failure is the collector's to retry; a retried block is dropped by the
 *   replicated tables' block deduplication);
 * - distributed_product_mode=local: `x IN (SELECT … FROM <distributed>)` reads the local table on each
 *   shard, correct because every table is sharded by the same key;
 * - load_balancing=in_order: reads and writes go to the first live replica of a shard, so a write is read
 *   back from where it was written while that replica lives.
 */
export const CLUSTER_SETTINGS: Settings = { insert_distributed_sync: 1, distributed_product_mode: 'local', load_balancing: 'in_order' };

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function checkClusterSchema(c: ClusterSchema): ClusterSchema {
  for (const [field, v] of [['cluster', c.cluster], ['database', c.database]] as const) {
    if (!IDENT.test(v)) throw new WattsplitError('CONFIG_INVALID', `store ${field}=${JSON.stringify(v)} must be an identifier [A-Za-z_][A-Za-z0-9_]*`, { details: { field, value: v } });
  }
  return c;
}

/** Index of the parenthesis closing the one at `open`. */
function closing(s: string, open: number): number {
  let depth = 0;
  let quote = false;
  for (let i = open; i < s.length; i++) {
    const ch = s[i];
    if (ch === "'" && s[i - 1] !== '\\') quote = !quote;
    if (quote) continue;
    if (ch === '(') depth++;
    else if (ch === ')' && --depth === 0) return i;
  }
  return -1;
}

/** Splits at commas outside parentheses and quotes. */
function topLevel(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quote = false;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch === "'" && s[i - 1] !== '\\') quote = !quote;
    if (quote) continue;
    if (ch === '(') depth++;
    else if (ch === ')') depth--;
    else if (ch === ',' && depth === 0) {
      out.push(s.slice(start, i).trim());
      start = i + 1;
    }
  }
  const last = s.slice(start).trim();
  if (last) out.push(last);
  return out;
}

function refuse(stmt: string, why: string): WattsplitError {
  const head = stmt.replace(/\s+/g, ' ').slice(0, 80);
  return new WattsplitError('CONFIG_INVALID', `cannot run on a cluster: ${why}: ${head}…`, { details: { statement: head } });
}

interface ParsedCreate {
  name: string;
  columns: string;
  engine: string;
  args: string;
  rest: string;
}

/** `CREATE TABLE [IF NOT EXISTS] [db.]name (columns) ENGINE = Engine[(args)] rest` (also SHOW CREATE TABLE's text). */
function parseCreate(stmt: string): ParsedCreate {
  const head = /^CREATE TABLE (?:IF NOT EXISTS )?(?:\w+\.)?(\w+)\s*\(/.exec(stmt);
  if (!head) throw refuse(stmt, 'CREATE TABLE without a column list');
  const open = head[0].length - 1;
  const close = closing(stmt, open);
  if (close < 0) throw refuse(stmt, 'unbalanced column list');
  const after = stmt.slice(close + 1);
  const eng = /^\s*ENGINE\s*=\s*(\w+)/.exec(after);
  if (!eng) throw refuse(stmt, 'no ENGINE');
  let rest = after.slice(eng[0].length);
  let args = '';
  if (rest.startsWith('(')) {
    const end = closing(rest, 0);
    args = rest.slice(1, end).trim();
    rest = rest.slice(end + 1);
  }
  return { name: head[1]!, columns: stmt.slice(open + 1, close), engine: eng[1]!, args, rest };
}

/** The Distributed table's columns from the local table's: MATERIALIZED → ALIAS, now() ones and codecs dropped. */
function distributedColumns(columns: string): string {
  return topLevel(columns)
    .filter((col) => !/\bMATERIALIZED\b[\s\S]*\bnow\(\)/.test(col))
    .map((col) => col.replace(/\s+CODEC\([^()]*\)/g, '').replace(/\bMATERIALIZED\b/, 'ALIAS'))
    .join(',\n    ');
}

const REPLICABLE = new Set(['MergeTree', 'ReplacingMergeTree', 'SummingMergeTree', 'AggregatingMergeTree', 'CollapsingMergeTree']);

function createTable(stmt: string, c: ClusterSchema): string[] {
  if (!/^CREATE TABLE IF NOT EXISTS \w+\s*\(/.test(stmt)) throw refuse(stmt, 'CREATE TABLE without IF NOT EXISTS and a column list');
  const p = parseCreate(stmt);
  if (!REPLICABLE.has(p.engine)) throw refuse(stmt, 'only MergeTree-family tables can be replicated');
  const order = /\bORDER BY\s+(\(\s*)?([A-Za-z_][A-Za-z0-9_]*)/.exec(p.rest);
  if (!order) throw refuse(stmt, 'no ORDER BY to shard by');
  const local = `${p.name}_local`;
  const path = `'/clickhouse/tables/{shard}/${c.database}/${local}', '{replica}'`;
  return [
    `CREATE TABLE IF NOT EXISTS ${c.database}.${local} ON CLUSTER ${c.cluster}\n(${p.columns})\nENGINE = Replicated${p.engine}(${path}${p.args ? `, ${p.args}` : ''})${p.rest}`,
    `CREATE TABLE IF NOT EXISTS ${c.database}.${p.name} ON CLUSTER ${c.cluster}\n(\n    ${distributedColumns(p.columns)}\n)\nENGINE = Distributed(${c.cluster}, ${c.database}, ${local}, cityHash64(${order[2]!}))`,
  ];
}

/** What runs a statement and reads a one-value answer (the store's transport). */
export interface ClusterDdlRunner {
  command(sql: string): Promise<void>;
  query(sql: string, format: string): Promise<string>;
}

/**
 * Applies one migration statement on cluster `c` (see the file comment). An ALTER runs ON CLUSTER on the
 * replicated local table; the Distributed table over it (which holds no data: inserts are synchronous) is
 * then dropped and created again from the local table's new columns, because 18.16 refuses ALTER ON
 * CLUSTER for a table that is not replicated on a replicated shard.
 */
export async function applyOnCluster(t: ClusterDdlRunner, stmt: string, c: ClusterSchema): Promise<void> {
  const s = stmt.trim();
  if (/^CREATE TABLE\b/i.test(s)) {
    for (const x of createTable(s, c)) await t.command(x);
    return;
  }
  const mv = /^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+) TO (\w+) AS\s+([\s\S]*)$/.exec(s);
  if (mv) {
    const select = mv[3]!.replace(/\bFROM\s+([A-Za-z_]\w*)\b/g, (_, t: string) => `FROM ${c.database}.${t}_local`);
    await t.command(`CREATE MATERIALIZED VIEW IF NOT EXISTS ${c.database}.${mv[1]!} ON CLUSTER ${c.cluster} TO ${c.database}.${mv[2]!}_local AS\n${select}`);
    return;
  }
  if (/^CREATE MATERIALIZED VIEW\b/i.test(s)) throw refuse(s, 'a materialized view needs IF NOT EXISTS and TO <table>');
  const alter = /^ALTER TABLE (\w+)\s+([\s\S]*)$/.exec(s);
  if (alter) {
    const name = alter[1]!;
    const showCreate = async (table: string) => (await t.query(`SHOW CREATE TABLE ${c.database}.${table}`, 'TSVRaw')).trim();
    const dist = parseCreate(await showCreate(name));
    if (dist.engine !== 'Distributed') throw refuse(s, `${c.database}.${name} is a ${dist.engine} table, not the Distributed table over ${name}_local`);
    await t.command(`ALTER TABLE ${c.database}.${name}_local ON CLUSTER ${c.cluster} ${alter[2]!}`);
    const local = parseCreate(await showCreate(`${name}_local`));
    await t.command(`DROP TABLE IF EXISTS ${c.database}.${name} ON CLUSTER ${c.cluster}`);
    await t.command(`CREATE TABLE IF NOT EXISTS ${c.database}.${name} ON CLUSTER ${c.cluster}\n(\n    ${distributedColumns(local.columns)}\n)\nENGINE = Distributed(${dist.args})`);
    return;
  }
  throw refuse(s, 'not a CREATE TABLE, CREATE MATERIALIZED VIEW … TO, or ALTER TABLE');
}

/** The statements `applyOnCluster` runs for a CREATE statement (no reads needed); for tests and docs. */
export function clusterCreateStatements(stmt: string, c: ClusterSchema): string[] {
  return createTable(stmt.trim(), c);
}

/** Run before the migrations: the database on every server. */
export function clusterDatabaseStatement(c: ClusterSchema): string {
  return `CREATE DATABASE IF NOT EXISTS ${c.database} ON CLUSTER ${c.cluster}`;
}

/**
 * Versioned schema migrations: packages/store/sql/NNNN_name.sql, applied in order, each recorded in
 * `schema_migrations` (version, name, checksum). Files are templates: {{raw_retention_days}},
 * {{attribution_retention_days}}, {{rollup_retention_days}}, {{dedup_window}}. The SQL is written once
 * for ClickHouse 22.8+ and chDB; on an older server the clauses it does not know (CODEC, TTL,
 * LowCardinality, the dedup-window setting) are removed by `adaptToVersion`, nothing else changes.
 * With `cluster`, each statement runs as its ON CLUSTER form (replicated local tables + Distributed tables
 * under the names SQL users query; see cluster-schema.ts); without it, exactly as written.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { WattsplitError, type Logger } from '@wattsplit/wire';
import { applyOnCluster, clusterDatabaseStatement, type ClusterSchema } from './cluster-schema.js';
import { str, type Capabilities, type ClickHouseTransport } from './transport.js';

export interface Retention {
  rawRetentionDays: number;
  attributionRetentionDays: number;
  rollupRetentionDays: number;
  /** Inserts remembered per table for deduplication (non_replicated_deduplication_window). */
  dedupWindow: number;
}

export const DEFAULT_RETENTION: Retention = { rawRetentionDays: 30, attributionRetentionDays: 400, rollupRetentionDays: 1825, dedupWindow: 100_000 };

export interface Migration {
  version: number;
  name: string;
  file: string;
  sql: string;
}

export const DEFAULT_SQL_DIR = fileURLToPath(new URL('../sql/', import.meta.url));

/** Reads NNNN_name.sql files; rejects names that do not match and duplicate versions. */
export function loadMigrations(dir = DEFAULT_SQL_DIR): Migration[] {
  const out: Migration[] = [];
  for (const file of readdirSync(dir).sort()) {
    if (!file.endsWith('.sql')) continue;
    const m = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(file);
    if (!m) throw new WattsplitError('CONFIG_INVALID', `migration file ${dir}${file}: name must be NNNN_snake_case.sql`, { details: { file } });
    const version = Number(m[1]);
    if (out.some((x) => x.version === version)) throw new WattsplitError('CONFIG_INVALID', `migration file ${dir}${file}: version ${version} is used twice`, { details: { file, version } });
    out.push({ version, name: m[2]!, file, sql: readFileSync(dir + file, 'utf8') });
  }
  return out;
}

export function renderTemplate(sql: string, retention: Retention, file: string): string {
  const vars: Record<string, number> = {
    raw_retention_days: retention.rawRetentionDays,
    attribution_retention_days: retention.attributionRetentionDays,
    rollup_retention_days: retention.rollupRetentionDays,
    dedup_window: retention.dedupWindow,
  };
  for (const [k, v] of Object.entries(vars)) {
    if (!Number.isSafeInteger(v) || v < 1) throw new WattsplitError('CONFIG_INVALID', `store retention ${k}=${String(v)} must be a positive integer`, { details: { field: k, value: v } });
  }
  return sql.replace(/\{\{(\w+)\}\}/g, (_, k: string) => {
    const v = vars[k];
    if (v === undefined) throw new WattsplitError('CONFIG_INVALID', `migration ${file}: unknown template variable {{${k}}}`, { details: { file, variable: k } });
    return String(v);
  });
}

/** Removes the clauses an older ClickHouse does not parse (see the file comment). */
export function adaptToVersion(sql: string, caps: Capabilities): string {
  let s = sql;
  if (!caps.codecs) s = s.replace(/\s+CODEC\([^()]*\)/g, '');
  // A TTL line that ends its statement keeps the `;`, so the statement split stays the same.
  if (!caps.ttl) s = s.replace(/^TTL .*?(;?)[ \t]*$\n?/gm, (_, semi: string) => (semi ? ';\n' : ''));
  if (!caps.lowCardinality) s = s.replace(/LowCardinality\(String\)/g, 'String');
  if (!caps.nonReplicatedDedup) s = s.replace(/,\s*non_replicated_deduplication_window\s*=\s*\d+/g, '');
  return s;
}

/** Splits a file into statements at `;` ending a line; drops comment-only chunks. */
export function splitStatements(sql: string): string[] {
  return sql
    .split(/;\s*$/m)
    .map((s) => s.replace(/^\s*--.*$/gm, '').trim())
    .filter((s) => s.length > 0);
}

const checksum = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 16);

export interface MigrateOptions {
  /** Directory of NNNN_name.sql files (default: the package's sql/). */
  sqlDir?: string;
  /** Apply every statement ON CLUSTER (replicated + Distributed tables) instead of as written. */
  cluster?: ClusterSchema;
}

/** Applies pending migrations; returns the versions applied now. `opts` may be the sql dir alone. */
export async function migrate(t: ClickHouseTransport, caps: Capabilities, retention: Retention, log: Logger, opts: string | MigrateOptions = DEFAULT_SQL_DIR): Promise<number[]> {
  const { sqlDir: dir = DEFAULT_SQL_DIR, cluster } = typeof opts === 'string' ? { sqlDir: opts } : opts;
  const run = async (stmt: string) => {
    if (cluster) await applyOnCluster(t, stmt, cluster);
    else await t.command(stmt);
  };
  if (cluster) await t.command(clusterDatabaseStatement(cluster));
  await run(
    adaptToVersion(
      `CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, checksum String, applied_at DateTime('UTC')) ENGINE = ReplacingMergeTree ORDER BY version`,
      caps,
    ),
  );
  const done = new Map<number, string>();
  const text = await t.query('SELECT version, checksum FROM schema_migrations FINAL', 'JSONEachRow');
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const r = JSON.parse(line) as { version: number | string; checksum: string };
    done.set(Number(r.version), r.checksum);
  }
  const applied: number[] = [];
  for (const m of loadMigrations(dir)) {
    const sum = checksum(m.sql);
    const prev = done.get(m.version);
    if (prev !== undefined) {
      if (prev !== sum) log.warn({ file: m.file, version: m.version }, `migration ${m.file} changed after it was applied; not re-applied (add a new migration instead)`);
      continue;
    }
    const sql = adaptToVersion(renderTemplate(m.sql, retention, m.file), caps);
    for (const [i, stmt] of splitStatements(sql).entries()) {
      try {
        await run(stmt);
      } catch (e) {
        const err = e instanceof WattsplitError ? e : new WattsplitError('STORE_QUERY_FAILED', String(e));
        throw new WattsplitError(err.code, `migration ${m.file} statement ${i + 1}: ${err.message}`, { cause: err, retriable: err.retriable, details: { file: m.file, statement: i + 1 } });
      }
    }
    await t.command(`INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (${m.version}, ${str(m.name)}, ${str(sum)}, now())`);
    log.info({ version: m.version, file: m.file }, `applied migration ${m.file}`);
    applied.push(m.version);
  }
  return applied;
}

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WattsplitError } from '@wattsplit/wire';
import { DEFAULT_RETENTION, adaptToVersion, loadMigrations, renderTemplate, splitStatements } from './migrations.js';
import { capabilitiesOf, int, str } from './transport.js';

test('the shipped migrations load in order and render without leftover template variables', () => {
  const ms = loadMigrations();
  assert.deepEqual(ms.map((m) => m.version), [1, 2, 3, 4, 5, 6, 7]);
  for (const m of ms) {
    const sql = renderTemplate(m.sql, DEFAULT_RETENTION, m.file);
    assert.doesNotMatch(sql, /\{\{/);
    assert.ok(splitStatements(sql).length >= 1);
  }
});

test('capabilities by version: 18.16 lacks codecs, TTL, dedup; 22.8 and chDB 26 have all', () => {
  assert.deepEqual(capabilitiesOf('18.16.1'), { version: '18.16.1', codecs: false, ttl: false, lowCardinality: false, nonReplicatedDedup: false, dedupToken: false });
  const c22 = capabilitiesOf('22.8.5.29');
  assert.ok(c22.codecs && c22.ttl && c22.lowCardinality && c22.nonReplicatedDedup && c22.dedupToken);
  assert.ok(capabilitiesOf('26.7.2.1').dedupToken);
  assert.equal(capabilitiesOf('19.5.1').ttl, false);
});

test('for ClickHouse 18.16 the schema loses only the clauses that version cannot parse', () => {
  const caps = capabilitiesOf('18.16.1');
  for (const m of loadMigrations()) {
    const sql = adaptToVersion(renderTemplate(m.sql, DEFAULT_RETENTION, m.file), caps);
    assert.doesNotMatch(sql, /CODEC|LowCardinality|^TTL|non_replicated_deduplication_window/m, m.file);
    if (/CREATE TABLE/.test(sql)) assert.match(sql, /ENGINE = (Replacing|Summing)MergeTree/);
    // Dropping a clause never merges two statements (0006's model_leases ends with its TTL line).
    assert.equal(splitStatements(sql).length, splitStatements(renderTemplate(m.sql, DEFAULT_RETENTION, m.file)).length, m.file);
  }
  const modern = adaptToVersion(renderTemplate(loadMigrations()[1]!.sql, DEFAULT_RETENTION, 'x'), capabilitiesOf('23.3.1'));
  assert.match(modern, /CODEC\(Gorilla, ZSTD\)/);
  assert.match(modern, /TTL ts \+ INTERVAL 400 DAY/);
});

test('splitStatements splits at line-ending semicolons and drops comments', () => {
  assert.deepEqual(splitStatements('-- c\nCREATE TABLE a (x UInt8) ENGINE = Log;\n\n-- only a comment;\nSELECT 1;'), ['CREATE TABLE a (x UInt8) ENGINE = Log', 'SELECT 1']);
});

test('bad migration files and bad retention name the file, field and value', () => {
  const d = mkdtempSync(join(tmpdir(), 'wattsplit-mig-'));
  try {
    writeFileSync(join(d, '0001_ok.sql'), 'SELECT 1;');
    writeFileSync(join(d, 'v2-bad.sql'), 'SELECT 2;');
    assert.throws(() => loadMigrations(d + '/'), (e: unknown) => e instanceof WattsplitError && e.code === 'CONFIG_INVALID' && /v2-bad\.sql: name must be NNNN_snake_case\.sql/.test(e.message));
    rmSync(join(d, 'v2-bad.sql'));
    writeFileSync(join(d, '0001_again.sql'), 'SELECT 2;');
    assert.throws(() => loadMigrations(d + '/'), /version 1 is used twice/);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
  assert.throws(() => renderTemplate('TTL ts + INTERVAL {{raw_retention_days}} DAY', { ...DEFAULT_RETENTION, rawRetentionDays: 0 }, 'f.sql'), /raw_retention_days=0 must be a positive integer/);
  assert.throws(() => renderTemplate('{{nope}}', DEFAULT_RETENTION, 'f.sql'), /migration f\.sql: unknown template variable \{\{nope\}\}/);
});

test('literals: strings are escaped, Int64 ns values keep every digit, NaN is refused', () => {
  assert.equal(str("it's a \\ test"), "'it\\'s a \\\\ test'");
  assert.equal(int(1795430883000000000, 'ts'), '1795430883000000000');
  assert.throws(() => int(Number.NaN, 'from'), /from=NaN is not a finite number/);
});

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memoryLogger } from '@wattsplit/wire';
import { ChdbStore } from './chdb-store.js';
import { EMBEDDED_INSERT_SETTINGS } from './chdb-transport.js';
import { rowBinaryCodec } from './row-binary.js';
import { ATTRIBUTION_ROW_PROJECTION, VM_ROW_PROJECTION, attributionRows, shareItems, vmItems, vmRows } from './rows.js';
import { sampleInterval, sampleResult, sampleVm } from './test-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'wattsplit-chdb-insert-test-'));
const log = memoryLogger();
const store = new ChdbStore({ dataDir: join(dir, 'db'), logger: log });
after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const spoolDirs = () => readdirSync(tmpdir()).filter((d) => d.startsWith('wattsplit-chdb-insert-') && !d.startsWith('wattsplit-chdb-insert-test-'));

test('inserts go as RowBinary through file(): strings with quotes, backslashes, newlines and non-ASCII, arrays, 64-bit and DateTime values come back as written', async () => {
  await store.init();
  await store.query(
    "CREATE TABLE rb_roundtrip (k UInt32, s String, lc LowCardinality(String), a Array(String), f Array(Float64), big Int64, at DateTime('UTC'), n Nullable(Float64)) ENGINE = MergeTree ORDER BY k",
    'CSV',
  );
  const rows = [
    { k: 1, s: "it's a \\ back'slash\nnew line", lc: 'héllo ✓', a: ["q'uote", ''], f: [1.5, -0, 1e-300], big: '-9007199254740993', at: 1_700_000_000, n: null },
    { k: 2, s: '', lc: 'x', a: [], f: [], big: 9_007_199_254_740_000, at: 0, n: 2.25 },
  ];
  const r = await store.insertRows('rb_roundtrip', rows);
  assert.equal(r.kind, 'ok', JSON.stringify(r));
  const back = (await store.query("SELECT k, s, lc, a, f, toString(big) AS big, toUnixTimestamp(at) AS at, n FROM rb_roundtrip ORDER BY k")).rows;
  assert.deepEqual(back, [
    { k: 1, s: "it's a \\ back'slash\nnew line", lc: 'héllo ✓', a: ["q'uote", ''], f: [1.5, -0, 1e-300], big: '-9007199254740993', at: 1_700_000_000, n: null },
    { k: 2, s: '', lc: 'x', a: [], f: [], big: '9007199254740000', at: 0, n: 2.25 },
  ]);
  assert.equal(log.entries.filter((x) => /does not cover/.test(x.msg)).length, 0, 'no JSON fallback for covered types');
});

test('a table with a column type RowBinary does not cover here (Decimal) is inserted as JSON instead, logged once', async () => {
  await store.query('CREATE TABLE rb_fallback (k UInt32, d Decimal(10, 2)) ENGINE = MergeTree ORDER BY k', 'CSV');
  assert.equal((await store.insertRows('rb_fallback', [{ k: 1, d: 12.34 }])).kind, 'ok');
  assert.equal((await store.insertRows('rb_fallback', [{ k: 2, d: 0.5 }])).kind, 'ok');
  const back = (await store.query('SELECT k, toString(d) AS d FROM rb_fallback ORDER BY k')).rows;
  assert.deepEqual(back, [{ k: 1, d: '12.34' }, { k: 2, d: '0.5' }]);
  assert.equal(log.entries.filter((x) => /rb_fallback: a column type RowBinary does not cover/.test(x.msg)).length, 1);
});

test('a value that does not fit its column is refused naming the row, column and value; the store goes on', async () => {
  const r = await store.insertRows('rb_roundtrip', [{ k: 3, s: 's', lc: 'l', a: [], f: [], big: 1, at: 1, n: 1 }, { k: 4, s: 's', lc: 'l', a: [], f: [Number.NaN], big: 1, at: 1, n: 1 }]);
  assert.equal(r.kind, 'failed');
  assert.match(r.kind === 'failed' ? r.error.message : '', /rb_roundtrip row 1 f=\[null\] is not a valid Array\(Float64\)/);
  assert.equal((await store.insertRows('rb_roundtrip', [{ k: 5, s: 's', lc: 'l', a: [], f: [], big: 1, at: 1, n: 1 }])).kind, 'ok');
  assert.equal((await store.query('SELECT count() AS c FROM rb_roundtrip')).rows[0]?.c, 3);
});

test('vm_samples and attributions rows projected straight from the intervals are the bytes of the row objects, with the table\'s own types; a bad value is refused the same way', async () => {
  const typesOf = async (table: string) => new Map((await store.query(`SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = '${table}'`)).rows.map((r) => [String(r.name), String(r.type)]));
  const vmCodec = rowBinaryCodec('vm_samples', await typesOf('vm_samples'), VM_ROW_PROJECTION.columns)!;
  const atCodec = rowBinaryCodec('attributions', await typesOf('attributions'), ATTRIBUTION_ROW_PROJECTION.columns)!;
  assert.ok(vmCodec && atCodec, 'every column of the projections is a column of its table');
  const a = sampleInterval('h-a', 7, 1_700_000_000_000_000_000);
  const b = sampleInterval('h-b', 8, 1_700_000_001_500_000_000.4);
  // no GPUs, no perf, an empty vCPU list, fractional byte counts (rounded), a 64-bit protobuf Long (checked path), a name with quotes
  const noGpu = { ...sampleVm('cccc', "o'brien \\ co", 0.25), gpus: [], vcpuSeconds: [] };
  delete (noGpu as { perf?: unknown }).perf;
  const longy = { ...sampleVm('dddd', 'acme', 1), memoryBytes: { toNumber: () => 2 ** 40 } as unknown as number, blockReadBytes: 12.6 };
  b.vms.push(noGpu, longy);
  const results = [sampleResult(a), sampleResult(b), { ...sampleResult(b, 'learned'), note: 'fell back: "x"' }];
  const intervals = [a, b];
  assert.deepEqual(vmCodec.encodeProjected(vmItems(intervals), VM_ROW_PROJECTION), vmCodec.encode(intervals.flatMap(vmRows)));
  assert.deepEqual(atCodec.encodeProjected(shareItems(results), ATTRIBUTION_ROW_PROJECTION), atCodec.encode(results.flatMap(attributionRows)));
  const bad = { ...sampleVm('eeee', 'acme', 1), netTxBytes: Number.POSITIVE_INFINITY };
  const c = { ...sampleInterval('h-c', 9, 1_700_000_002_000_000_000), vms: [bad] };
  assert.throws(() => vmCodec.encodeProjected(vmItems([c]), VM_ROW_PROJECTION), /interval host=h-c seq=9 vms\[0\] uuid=eeee: netTxBytes=Infinity is not a finite number/);
  const nanShare = sampleResult(c);
  nanShare.shares[0]!.lowJoules = Number.NaN;
  assert.throws(() => atCodec.encodeProjected(shareItems([nanShare]), ATTRIBUTION_ROW_PROJECTION), /attribution host=h-c seq=9 method=cpu_share shares\[0\] .*lowJoules=NaN is not a finite number/);
});

test('embedded inserts skip the insert-time merge (optimize_on_insert = 0): rows with one key inserted together stay apart until a merge, as on the server; FINAL, sum() and the merged table are unchanged', async () => {
  assert.deepEqual(EMBEDDED_INSERT_SETTINGS, { optimize_on_insert: 0 });
  await store.query('CREATE TABLE oi_replacing (k UInt32, v String) ENGINE = ReplacingMergeTree ORDER BY k', 'CSV');
  await store.query('CREATE TABLE oi_summing (k UInt32, j Float64, n UInt64) ENGINE = SummingMergeTree((j, n)) ORDER BY k', 'CSV');
  // the JSON path (a Decimal column) carries the setting too
  await store.query('CREATE TABLE oi_json (k UInt32, d Decimal(10, 2)) ENGINE = ReplacingMergeTree ORDER BY k', 'CSV');
  assert.equal((await store.insertRows('oi_replacing', [{ k: 1, v: 'first' }, { k: 2, v: 'only' }, { k: 1, v: 'last' }])).kind, 'ok');
  assert.equal((await store.insertRows('oi_summing', [{ k: 1, j: 0.1, n: 1 }, { k: 1, j: 0.2, n: 1 }, { k: 2, j: 5, n: 1 }])).kind, 'ok');
  assert.equal((await store.insertRows('oi_json', [{ k: 1, d: 1.25 }, { k: 1, d: 2.5 }])).kind, 'ok');
  const count = async (t: string) => Number((await store.query(`SELECT count() AS c FROM ${t}`)).rows[0]?.c);
  assert.equal(await count('oi_replacing'), 3, 'not collapsed at insert');
  assert.equal(await count('oi_summing'), 3, 'not summed at insert');
  assert.equal(await count('oi_json'), 2, 'not collapsed at insert (JSON path)');
  const replacing = async (mod: string) => (await store.query(`SELECT k, v FROM oi_replacing ${mod} ORDER BY k`)).rows;
  const summed = async () => (await store.query('SELECT k, sum(j) AS j, sum(n) AS n FROM oi_summing GROUP BY k ORDER BY k')).rows;
  assert.deepEqual(await replacing('FINAL'), [{ k: 1, v: 'last' }, { k: 2, v: 'only' }]);
  const sums = await summed();
  assert.deepEqual(sums, [{ k: 1, j: 0.1 + 0.2, n: 2 }, { k: 2, j: 5, n: 1 }]);
  for (const t of ['oi_replacing', 'oi_summing', 'oi_json']) await store.query(`OPTIMIZE TABLE ${t} FINAL`, 'CSV');
  assert.deepEqual(await replacing(''), [{ k: 1, v: 'last' }, { k: 2, v: 'only' }], 'the merge keeps the last row, as the insert-time pass did');
  assert.deepEqual(await summed(), sums);
  assert.deepEqual((await store.query('SELECT k, toString(d) AS d FROM oi_json')).rows, [{ k: 1, d: '2.5' }]);
});

test('the insert file lives in a directory of its own, removed when the store closes', async () => {
  assert.ok(spoolDirs().length >= 1, 'an insert directory while open');
  const before = spoolDirs();
  await store.close();
  const left = spoolDirs().filter((d) => before.includes(d));
  assert.ok(left.length < before.length, `removed on close: ${before.join(', ')} → ${left.join(', ')}`);
});

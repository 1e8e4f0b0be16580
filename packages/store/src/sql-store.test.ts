import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WattsplitError, memoryLogger } from '@wattsplit/wire';
import { ChdbStore } from './chdb-store.js';
import type { ChdbTransport } from './chdb-transport.js';
import { SqlStore } from './sql-store.js';
import type { ClickHouseTransport, Settings } from './transport.js';
import { HOUR_NS, resumeStateMatchesSingleCalls, sampleInterval, sampleResult, storedRangesMatchSingleCalls } from './test-fixtures.js';
import { hostRow } from './rows.js';

const dir = mkdtempSync(join(tmpdir(), 'wattsplit-store-'));
const log = memoryLogger();
const store = new ChdbStore({ dataDir: join(dir, 'db'), logger: log });
after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

// Whole seconds so ns timestamps are exact doubles; recent so TTL keeps them.
const NOW_NS = Math.floor(Date.now() / 3600_000) * HOUR_NS;
const num = (v: unknown) => Number(v);

test('init migrates the full schema and records every migration', async () => {
  await store.init();
  const tables = (await store.query(`SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name`)).rows.map((r) => r.name);
  for (const t of ['anomalies', 'attributions', 'collector_checkpoints', 'host_samples', 'learner_state', 'model_activations', 'model_leases', 'model_versions', 'schema_migrations', 'tenant_energy_hourly', 'tenant_energy_hourly_mv', 'vm_energy_hourly', 'vm_energy_hourly_mv', 'vm_samples']) {
    assert.ok(tables.includes(t), `table ${t} missing from ${tables.join(',')}`);
  }
  const migrations = (await store.query('SELECT version, name FROM schema_migrations FINAL ORDER BY version')).rows;
  assert.deepEqual(migrations.map((m) => num(m.version)), [1, 2, 3, 4, 5, 6, 7]);
  assert.equal(store.billingSource, 'rollups');
  assert.match(store.capabilities!.version, /^2\d\./);
  const ddl = (await store.query(`SELECT create_table_query AS q FROM system.tables WHERE database = currentDatabase() AND name = 'attributions'`)).rows[0]!.q as string;
  assert.match(ddl, /ReplacingMergeTree/);
  assert.match(ddl, /PARTITION BY toYYYYMMDD\(ts\)/);
  assert.match(ddl, /CODEC\(Gorilla\(8\), ZSTD/);
  assert.match(ddl, /TTL ts \+ toIntervalDay\(400\)/);
});

test('a second init on the same data applies nothing and keeps the data', async () => {
  await store.init();
  assert.equal(log.entries.filter((e) => e.msg.startsWith('applied migration')).length, 7);
  // the same store asked again (the CLI opens it, then the collector's module): nothing done, one "store ready" line
  assert.equal(log.entries.filter((e) => e.msg.startsWith('store ready')).length, 1);
});

test('writeInterval then readHistory gives the same intervals back', async () => {
  const a = sampleInterval('host-a', 1, NOW_NS + 1e9);
  const b = sampleInterval('host-a', 2, NOW_NS + 2e9);
  b.unusableSources = ['bmc_rest'];
  b.measured.bmc_rest = 0;
  const c = sampleInterval('host-b', 1, NOW_NS + 1e9);
  for (const i of [a, b, c]) {
    const r = await store.writeInterval({ interval: i, results: [sampleResult(i)], raw: { bootId: 'boot-1', counters: [{ id: 'intel-rapl:0', source: 'rapl', unit: 'uj', value: 123456789 }] } });
    assert.equal(r.kind, 'ok', JSON.stringify(r));
  }
  const hist = await store.readHistory({ hostId: 'host-a', sinceUnixNs: NOW_NS, limit: 10 });
  assert.deepEqual(hist, [a, b]);
  const byClass = await store.readHistory({ hardwareClass: 'xeon-test+h100x1', sinceUnixNs: NOW_NS, untilUnixNs: NOW_NS + 1.5e9, limit: 10 });
  assert.deepEqual(byClass.map((i) => `${i.hostId}/${i.seq}`).sort(), ['host-a/1', 'host-b/1']);
  // The models' HistoryProvider shape: fromUnixNs/toUnixNs, limit optional.
  assert.deepEqual(await store.readHistory({ hardwareClass: 'xeon-test+h100x1', fromUnixNs: NOW_NS, toUnixNs: NOW_NS + 1.5e9 }).then((h) => h.length), 2);
  // More intervals than the limit: a sample, never more than asked.
  const sampled = await store.readHistory({ sinceUnixNs: NOW_NS, limit: 2 });
  assert.ok(sampled.length >= 1 && sampled.length <= 2, String(sampled.length));
  // A write still on its way (host and VM rows in, attributions not yet) is not read half-written.
  const partial = sampleInterval('host-a', 3, NOW_NS + 3e9);
  const t = (store as unknown as { t: ClickHouseTransport }).t;
  await t.insert('host_samples', [hostRow(partial, undefined)]);
  assert.deepEqual((await store.readHistory({ hostId: 'host-a', sinceUnixNs: NOW_NS, limit: 10 })).map((i) => i.seq), [1, 2]);
  const raw = (await store.query(`SELECT boot_id, counter_ids, counter_values FROM host_samples WHERE host = 'host-a' AND seq = 1`)).rows[0]!;
  assert.deepEqual(raw, { boot_id: 'boot-1', counter_ids: ['intel-rapl:0'], counter_values: [123456789] });
  const an = (await store.query(`SELECT code, counter_id FROM anomalies WHERE host = 'host-a' ORDER BY seq`)).rows;
  assert.deepEqual(an, [{ code: 'COUNTER_RESET', counter_id: 'intel-rapl:1' }, { code: 'COUNTER_RESET', counter_id: 'intel-rapl:1' }]);
});

test('attributions conserve measured energy and the hourly rollups equal the sum of raw rows', async () => {
  const cons = (await store.query(`SELECT host, seq, source, sum(dynamic_j + static_j) AS parts, any(measured_j) AS measured FROM attributions FINAL GROUP BY host, seq, source`)).rows;
  assert.equal(cons.length, 9);
  for (const r of cons) assert.ok(Math.abs(num(r.parts) - num(r.measured)) <= 1e-9 * Math.max(1, num(r.measured)), JSON.stringify(r));
  const raw = (await store.query(`SELECT vm_uuid, source, sum(dynamic_j) AS d, sum(static_j) AS s FROM attributions FINAL WHERE kind = 'vm' GROUP BY vm_uuid, source ORDER BY vm_uuid, source`)).rows;
  const roll = (await store.query(`SELECT vm_uuid, source, sum(dynamic_j) AS d, sum(static_j) AS s FROM vm_energy_hourly WHERE kind = 'vm' GROUP BY vm_uuid, source ORDER BY vm_uuid, source`)).rows;
  assert.equal(raw.length, 12);
  assert.deepEqual(roll.map((r) => [r.vm_uuid, r.source]), raw.map((r) => [r.vm_uuid, r.source]));
  for (const [k, r] of raw.entries()) assert.ok(Math.abs(num(r.d) - num(roll[k]!.d)) < 1e-9, `${JSON.stringify(r)} vs ${JSON.stringify(roll[k])}`);
  const tenantRaw = (await store.query(`SELECT tenant, sum(dynamic_j + static_j) AS j FROM attributions FINAL GROUP BY tenant ORDER BY tenant`)).rows;
  const totals = await store.tenantTotals({ fromUnixNs: NOW_NS, toUnixNs: NOW_NS + HOUR_NS });
  for (const t of tenantRaw) {
    const got = totals.filter((x) => x.tenant === t.tenant).reduce((a, x) => a + x.dynamicJoules + x.staticJoules, 0);
    assert.ok(Math.abs(got - num(t.j)) < 1e-9, `tenant ${String(t.tenant)}: ${got} vs ${String(t.j)}`);
  }
  const bill = await store.tenantBill('acme', { fromUnixNs: NOW_NS, toUnixNs: NOW_NS + HOUR_NS });
  assert.deepEqual(bill.map((l) => `${l.vmUuid}/${l.source}`), ['aaaa-host-a/bmc_rest', 'aaaa-host-a/gpu', 'aaaa-host-a/rapl', 'aaaa-host-b/bmc_rest', 'aaaa-host-b/gpu', 'aaaa-host-b/rapl']);
  // host-a rapl: (201 + 202) * 0.9 * 0.75
  assert.ok(Math.abs(bill[2]!.dynamicJoules - (201 + 202) * 0.9 * 0.75) < 1e-9);
  const energy = await store.vmEnergy('aaaa-host-a', { fromUnixNs: NOW_NS, toUnixNs: NOW_NS + HOUR_NS });
  assert.equal(energy.length, 3);
  assert.equal(energy[0]!.tenant, 'acme');
  assert.deepEqual(await store.vmEnergy('aaaa-host-a', { fromUnixNs: NOW_NS + HOUR_NS, toUnixNs: NOW_NS + 2 * HOUR_NS }), []);
  assert.deepEqual(await store.vmEnergy('aaaa-host-a', { fromUnixNs: NOW_NS, toUnixNs: NOW_NS + HOUR_NS, method: 'additive_model' }), []);
});

async function totals(): Promise<{ raw: number; rawRows: number; roll: number; hosts: number; vms: number }> {
  const r = (await store.query(`SELECT sum(dynamic_j + static_j) AS j, count() AS n FROM attributions`)).rows[0]!;
  const o = (await store.query(`SELECT sum(dynamic_j + static_j) AS j FROM vm_energy_hourly`)).rows[0]!;
  const h = (await store.query(`SELECT count() AS n FROM host_samples`)).rows[0]!;
  const v = (await store.query(`SELECT count() AS n FROM vm_samples`)).rows[0]!;
  return { raw: num(r.j), rawRows: num(r.n), roll: num(o.j), hosts: num(h.n), vms: num(v.n) };
}

test('a replayed batch does not double count: raw rows, rollups and samples stay the same', async () => {
  const before = await totals();
  const a = sampleInterval('host-a', 2, NOW_NS + 2e9);
  assert.equal((await store.writeInterval({ interval: a, results: [sampleResult(a)] })).kind, 'ok');
  assert.equal((await store.writeInterval({ interval: a, results: [sampleResult(a)] })).kind, 'ok');
  assert.deepEqual(await totals(), before);
  // Even without FINAL and before any merge: the dedup token dropped the replayed inserts.
  assert.ok(Math.abs(before.raw - before.roll) < 1e-6, `raw ${before.raw} vs rollup ${before.roll}`);
});

test('writeIntervals: one insert per table for a batch; the same batch retried verbatim adds nothing', async () => {
  const before = await totals();
  const batch = [1, 2, 3].map((k) => {
    const i = sampleInterval('host-batch', k, NOW_NS + k * 1e9);
    return { interval: i, results: [sampleResult(i), sampleResult(i, 'additive_model')] };
  });
  assert.equal((await store.writeIntervals(batch)).kind, 'ok');
  const mid = await totals();
  assert.equal(mid.hosts, before.hosts + 3);
  assert.equal(mid.rawRows, before.rawRows + 3 * 2 * 9);
  assert.equal((await store.writeIntervals(batch)).kind, 'ok');
  assert.deepEqual(await totals(), mid);
  const dup = await store.writeIntervals([batch[0]!, batch[0]!]);
  assert.match(dup.kind === 'failed' ? dup.error.message : '', /host=host-batch seq=1 appears twice in the batch/);
});

/** Fails the insert into `failTable` `times` times, then passes everything through. */
class FailingTransport implements ClickHouseTransport {
  readonly backend = 'chdb' as const;
  failures = 0;
  constructor(private readonly inner: ClickHouseTransport, private readonly failTable: string, private times: number) {}
  command(sql: string, settings?: Settings) { return this.inner.command(sql, settings); }
  query(sql: string, format: string) { return this.inner.query(sql, format); }
  queryBytes(sql: string, format: string) { return this.inner.queryBytes(sql, format); }
  async insert(table: string, rows: readonly Record<string, unknown>[], settings?: Settings) {
    if (table === this.failTable && this.times > 0) {
      this.times--;
      this.failures++;
      throw new WattsplitError('STORE_UNAVAILABLE', `injected outage on ${table}`, { retriable: true });
    }
    return this.inner.insert(table, rows, settings);
  }
  close() { return Promise.resolve(); }
}

test('a batch that failed half-way is retried without duplicating what was written first', async () => {
  const inner = (store as unknown as { t: ChdbTransport }).t;
  const flaky = new FailingTransport(inner, 'attributions', 2);
  const s2 = new SqlStore(flaky);
  await s2.init();
  const before = await totals();
  const i = sampleInterval('host-c', 7, NOW_NS + 7e9);
  const r1 = await s2.writeInterval({ interval: i, results: [sampleResult(i)] });
  assert.equal(r1.kind, 'retryable');
  assert.equal(r1.kind === 'retryable' && r1.error.code, 'STORE_UNAVAILABLE');
  assert.equal((await s2.writeInterval({ interval: i, results: [sampleResult(i)] })).kind, 'retryable');
  assert.equal((await s2.writeInterval({ interval: i, results: [sampleResult(i)] })).kind, 'ok');
  assert.equal(flaky.failures, 2);
  const after = await totals();
  assert.equal(after.hosts, before.hosts + 1);
  assert.equal(after.vms, before.vms + 2);
  assert.equal(after.rawRows, before.rawRows + 9);
  assert.ok(Math.abs(after.raw - before.raw - (i.measured.rapl + i.measured.gpu + i.measured.bmc_rest)) < 1e-6);
});

test('bad SQL rejects with STORE_QUERY_FAILED carrying ClickHouse\'s message', async () => {
  await assert.rejects(store.query('SELEC 1'), (e: unknown) => {
    assert.ok(e instanceof WattsplitError);
    assert.equal(e.code, 'STORE_QUERY_FAILED');
    assert.match(e.message, /Syntax error/);
    assert.equal(e.retriable, false);
    return true;
  });
  await assert.rejects(store.query('SELECT * FROM no_such_table'), /STORE_QUERY_FAILED|no_such_table/);
  await assert.rejects(store.query('SELECT 1', 'XML' as never), (e: unknown) => e instanceof WattsplitError && e.code === 'STORE_INVALID_INPUT' && /format="XML"/.test(e.message));
  // The store keeps working after errors.
  assert.equal((await store.query('SELECT 1 AS one')).rows[0]!.one, 1);
  assert.equal((await store.query('SELECT 1 AS one', 'CSV')).text, '1\n');
  assert.match((await store.query('SELECT 1 AS one', 'Pretty')).text, /one/);
});

test('malformed intervals fail (not retryable) naming the field and value', async () => {
  const i = sampleInterval('host-d', 1, NOW_NS + 1e9);
  i.vms[1]!.cpuSeconds = Number.NaN;
  const r = await store.writeInterval({ interval: i, results: [] });
  assert.equal(r.kind, 'failed');
  assert.equal(r.kind === 'failed' && r.error.code, 'STORE_INVALID_INPUT');
  assert.match(r.kind === 'failed' ? r.error.message : '', /host=host-d seq=1 vms\[1\] uuid=bbbb-host-d: cpuSeconds=NaN/);
  const j = sampleInterval('host-d', 2, NOW_NS + 2e9);
  const other = sampleResult(sampleInterval('host-e', 2, NOW_NS + 2e9));
  const r2 = await store.writeInterval({ interval: j, results: [other] });
  assert.match(r2.kind === 'failed' ? r2.error.message : '', /results\[0\] \(method cpu_share\) is for host=host-e seq=2/);
  const k = sampleInterval('host-d', 3, NOW_NS + 3e9);
  const res = sampleResult(k);
  res.shares[0]!.dynamicJoules = Infinity;
  const r3 = await store.writeInterval({ interval: k, results: [res] });
  assert.match(r3.kind === 'failed' ? r3.error.message : '', /shares\[0\].*dynamicJoules=Infinity/);
  assert.equal(num((await store.query(`SELECT count() AS n FROM host_samples WHERE host = 'host-d'`)).rows[0]!.n), 0);
  await assert.rejects(store.readHistory({ sinceUnixNs: 0, limit: 0 }), /limit=0 must be an integer/);
  await assert.rejects(store.readHistory({ hostId: 'x' }), /readHistory needs sinceUnixNs/);
  await assert.rejects(store.tenantBill('acme', { fromUnixNs: 10, toUnixNs: 5 }), /to=5 must be after from=10/);
});

test('writeAnomalies stores anomalies outside intervals, idempotently', async () => {
  const a = [{ code: 'FRAME_DECODE_FAILED', message: 'offset 3: bad bytes' }];
  assert.equal((await store.writeAnomalies('host-z', 3, NOW_NS, a)).kind, 'ok');
  assert.equal((await store.writeAnomalies('host-z', 3, NOW_NS, a)).kind, 'ok');
  const rows = (await store.query(`SELECT code, message FROM anomalies WHERE host = 'host-z'`)).rows;
  assert.deepEqual(rows, [{ code: 'FRAME_DECODE_FAILED', message: 'offset 3: bad bytes' }]);
});

test('a second ChdbStore on another directory in the same process is refused clearly', async () => {
  const other = new ChdbStore({ dataDir: join(dir, 'other') });
  await assert.rejects(other.init(), (e: unknown) => e instanceof WattsplitError && e.code === 'CONFIG_INVALID' && /already open in this process/.test(e.message));
  await other.close();
});

test('checkpoints: the newest frame per host wins, an older one saved later does not regress it', async () => {
  assert.equal(await store.loadCheckpoint('hv-x'), undefined);
  const f = (seq: number) => new Uint8Array([seq, 0, 255, 10, 13]);
  assert.equal((await store.saveCheckpoints([{ hostId: 'hv-x', seq: 5, bootId: 'b1', frame: f(5) }, { hostId: 'hv-y', seq: 2, bootId: 'b1', frame: f(2) }])).kind, 'ok');
  assert.equal((await store.saveCheckpoints([{ hostId: 'hv-x', seq: 4, bootId: 'b1', frame: f(4) }])).kind, 'ok');
  assert.deepEqual(await store.loadCheckpoint('hv-x'), { hostId: 'hv-x', seq: 5, bootId: 'b1', frame: f(5) });
  assert.equal((await store.saveCheckpoints([{ hostId: 'hv-x', seq: 6, bootId: 'b2', frame: f(6) }])).kind, 'ok');
  assert.deepEqual((await store.loadCheckpoint('hv-x'))?.seq, 6);
  // all hosts at once, as a collector resumes a batch: what the single-host calls give, a host with nothing at all too
  const all = await resumeStateMatchesSingleCalls(store, ['hv-x', 'hv-y', 'hv-none', "hv-'q", 'hv-x']);
  assert.equal(all.length, 4);
  for (const { host, want, got } of all) assert.deepEqual(got, want, host);
  assert.equal(all.find((x) => x.host === 'hv-x')!.got?.checkpoint?.seq, 6);
  assert.deepEqual(all.find((x) => x.host === 'hv-none')!.got, {});
  assert.deepEqual([...(await store.resumeState([])).keys()], []);
});

test('storedIntervalRanges: every host of a resume in one lookup, the answers of storedIntervals seq by seq', async () => {
  const writes = [];
  for (const h of ['hv-r1', 'hv-r2']) {
    for (let q = 1; q <= 6; q++) {
      const i = sampleInterval(h, q, NOW_NS + q * 1e9);
      // hv-r2's seq 4 has its host row but no attribution rows (a write cut between the two), seq 5 is not stored
      if (h === 'hv-r2' && q === 5) continue;
      writes.push({ interval: i, results: h === 'hv-r2' && q === 4 ? [] : [sampleResult(i)] });
    }
  }
  assert.equal((await store.writeIntervals(writes)).kind, 'ok');
  const ranges = [
    { hostId: 'hv-r1', afterSeq: 2, toSeq: 6 },
    { hostId: 'hv-r2', afterSeq: 0, toSeq: 6 },
    { hostId: 'hv-none', afterSeq: 0, toSeq: 3 },
    { hostId: "hv-'q", afterSeq: 5, toSeq: 9 },
  ];
  const all = await storedRangesMatchSingleCalls(store, ranges);
  for (const { host, want, got } of all) assert.deepEqual(got, want, host);
  assert.deepEqual(all[0]!.got!.map((x) => x.seq), [3, 4, 5, 6]);
  assert.deepEqual(all[1]!.got!.map((x) => `${x.seq}:${x.attributed}`), ['1:true', '2:true', '3:true', '4:false', '6:true']);
  assert.deepEqual(all[2]!.got, []);
  assert.deepEqual([...(await store.storedIntervalRanges([])).keys()], []);
});

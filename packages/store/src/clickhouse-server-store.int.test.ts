// The server path against a real ClickHouse server (Debian's 18.16 in CI, started by scripts/test.mjs):
// the same schema and SQL as chDB, rows sent as RowBinary, read back unchanged.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { WattsplitError, memoryLogger } from '@wattsplit/wire';
import type { HostInterval } from '@wattsplit/attribution';
import { ClickHouseServerStore } from './clickhouse-server-store.js';
import { HOUR_NS, resumeStateMatchesSingleCalls, sampleInterval, sampleResult, storedRangesMatchSingleCalls } from './test-fixtures.js';

const url = process.env.WATTSPLIT_TEST_CLICKHOUSE_URL;
const skip = url ? false : 'ClickHouse server unavailable: WATTSPLIT_TEST_CLICKHOUSE_URL is not set (run through scripts/test.mjs)';
const NOW_NS = Math.floor(Date.now() / 3600_000) * HOUR_NS;
const stores: ClickHouseServerStore[] = [];
after(async () => {
  for (const s of stores) {
    await s.query(`DROP DATABASE IF EXISTS ${(s as unknown as { t: { opts: { database: string } } }).t.opts.database}`).catch(() => undefined);
    await s.close();
  }
});

async function open(insertFormat: 'RowBinary' | 'JSONEachRow'): Promise<ClickHouseServerStore> {
  const s = new ClickHouseServerStore({ url: url!, database: `wattsplit_it_${randomUUID().slice(0, 8)}`, insertFormat, logger: memoryLogger() });
  stores.push(s);
  await s.init();
  return s;
}

/** Intervals with every column kind: arrays of strings and numbers, GPU rows, odd strings, big counters. */
function intervals(): HostInterval[] {
  const a = sampleInterval('host-a', 1, NOW_NS + 1e9);
  const b = sampleInterval('host-a', 2, NOW_NS + 2e9);
  b.unusableSources = ['bmc_rest'];
  b.measured.bmc_rest = 0;
  b.vms[0]!.tenant = "ac'me\tß\nnew \\ line";
  delete b.vms[0]!.perf;
  const c = sampleInterval('host-b', 1, NOW_NS + 1e9);
  c.vms[1]!.gpus = [];
  return [a, b, c];
}

test('server store: intervals written as RowBinary read back unchanged; bills add up to what was measured', { skip }, async () => {
  const store = await open('RowBinary');
  for (const i of intervals()) {
    const r = await store.writeInterval({ interval: i, results: [sampleResult(i)], raw: { bootId: 'boot-1', counters: [{ id: 'intel-rapl:0', source: 'rapl', unit: 'uJ', value: 2 ** 53 - 1 }] } });
    assert.equal(r.kind, 'ok', JSON.stringify(r));
  }
  const hist = await store.readHistory({ sinceUnixNs: NOW_NS, limit: 10 });
  const want = intervals();
  assert.deepEqual(hist.map((i) => `${i.hostId}/${i.seq}`), ['host-a/1', 'host-b/1', 'host-a/2']);
  assert.deepEqual(hist.find((i) => i.hostId === 'host-a' && i.seq === 2), want[1]);
  assert.deepEqual(hist.find((i) => i.hostId === 'host-b'), want[2]);
  const raw = (await store.query(`SELECT boot_id, counter_ids, counter_values FROM host_samples WHERE host = 'host-a' AND seq = 1`)).rows[0]!;
  assert.deepEqual(raw, { boot_id: 'boot-1', counter_ids: ['intel-rapl:0'], counter_values: [String(2 ** 53 - 1)] });
  // Checkpoints (seq goes out as an Int64 literal string) round trip too.
  const frame = new Uint8Array([0, 1, 2, 250, 255]);
  assert.equal((await store.saveCheckpoints([{ hostId: 'host-a', seq: 2, bootId: 'boot-1', frame }, { hostId: 'host-b', seq: 1, bootId: 'boot-1', frame }])).kind, 'ok');
  assert.deepEqual(await store.loadCheckpoint('host-a'), { hostId: 'host-a', seq: 2, bootId: 'boot-1', frame });
  // every host at once (Store.resumeState): the single-host calls' answers, on this server's SQL too
  assert.equal((await store.saveCheckpoints([{ hostId: 'host-c', seq: 9, bootId: 'boot-2', frame }])).kind, 'ok');
  const resumed = await resumeStateMatchesSingleCalls(store, ['host-a', 'host-b', 'host-c', 'host-none']);
  for (const { host, want, got } of resumed) assert.deepEqual(got, want, host);
  assert.deepEqual(resumed.find((x) => x.host === 'host-a')!.got?.floor, { seq: 2, bootId: 'boot-1' });
  assert.equal(resumed.find((x) => x.host === 'host-c')!.got?.floor, undefined);
  assert.equal(resumed.find((x) => x.host === 'host-c')!.got?.checkpoint?.seq, 9);
  // the stored seqs of many hosts' ranges at once (Store.storedIntervalRanges), as seq-by-seq checks give them
  const ranged = await storedRangesMatchSingleCalls(store, [{ hostId: 'host-a', afterSeq: 0, toSeq: 3 }, { hostId: 'host-b', afterSeq: 1, toSeq: 2 }, { hostId: 'host-none', afterSeq: 0, toSeq: 2 }]);
  for (const { host, want, got } of ranged) assert.deepEqual(got, want, host);
  assert.deepEqual(ranged[0]!.got!.map((x) => x.seq), [1, 2]);
  const totals = await store.tenantTotals({ fromUnixNs: NOW_NS, toUnixNs: NOW_NS + HOUR_NS });
  const measured = want.reduce((a, i) => a + i.measured.rapl + i.measured.gpu + i.measured.bmc_rest, 0);
  const attributed = totals.reduce((a, t) => a + t.dynamicJoules + t.staticJoules, 0);
  assert.ok(Math.abs(attributed - measured) < 1e-6, `${attributed} vs ${measured}`);
});

test('server store: RowBinary and JSONEachRow inserts store identical rows', { skip }, async () => {
  const [rb, js] = [await open('RowBinary'), await open('JSONEachRow')];
  for (const s of [rb, js]) {
    const ws = intervals().map((i) => ({ interval: i, results: [sampleResult(i), sampleResult(i, 'additive_model')] }));
    assert.equal((await s.writeIntervals(ws)).kind, 'ok');
  }
  for (const table of ['host_samples', 'vm_samples', 'anomalies', 'attributions']) {
    const dump = async (s: ClickHouseServerStore) => (await s.query(`SELECT * FROM ${table} ORDER BY tuple(*)`, 'TabSeparated')).text;
    const a = await dump(rb);
    assert.ok(a.length > 0, table);
    assert.equal(a, await dump(js), table);
  }
});

test('server store: a value the column cannot hold is refused for good, naming the column; nothing half-written', { skip }, async () => {
  const store = await open('RowBinary');
  const i = sampleInterval('host-c', 1, NOW_NS + 1e9);
  const r = sampleResult(i);
  r.modelVersion = 7 as unknown as string; // not a String
  const w = await store.writeInterval({ interval: i, results: [r] });
  assert.equal(w.kind, 'failed');
  assert.ok(w.kind === 'failed' && w.error instanceof WattsplitError && w.error.code === 'STORE_INVALID_INPUT' && /attributions row 0 model_version=7 is not a valid/.test(w.error.message), JSON.stringify(w));
  assert.deepEqual(await store.readHistory({ hostId: 'host-c', sinceUnixNs: NOW_NS }), []);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AttributionBatch, EntityKind, InProcessBus, WattsplitError } from '@wattsplit/wire';
import type { AttributionResult } from '@wattsplit/attribution';
import type { Store } from '@wattsplit/store';
import { parseInstantNs, parseRange } from './time-range.js';
import { validateCollectorConfig } from './config.js';
import { CollectorMetrics } from './collector-metrics.js';
import { encodeAttributionBatch } from './attribution-batch.js';
import { renderDashboard } from './dashboard.js';
import { startEmbeddedCollector } from './embedded.js';
import { memoryLogger } from '@wattsplit/wire';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

test('time parameters: unix s/ms/ns by magnitude, ISO 8601; bad values name the parameter', () => {
  assert.equal(parseInstantNs('1795430400', 'from'), 1795430400e9);
  assert.equal(parseInstantNs('1795430400000', 'from'), 1795430400e9);
  assert.equal(parseInstantNs('2026-11-23T10:00:00Z', 'to'), Date.parse('2026-11-23T10:00:00Z') * 1e6);
  assert.throws(() => parseInstantNs('soon', 'to'), (e: unknown) => e instanceof WattsplitError && e.code === 'STORE_INVALID_INPUT' && /to="soon"/.test(e.message));
  const r = parseRange(undefined, undefined, 1_000_000_000);
  assert.equal(r.toUnixNs - r.fromUnixNs, 86_400e9);
  assert.throws(() => parseRange('20', '10'), /to must be after from/);
});

test('collector config errors name the field and value', () => {
  const store = { writeInterval: () => undefined } as unknown as Store;
  const bus = new InProcessBus();
  assert.throws(() => validateCollectorConfig({ bus, store, policy: 'fair' as never }), /policy="fair" must be one of reserved, equal, unallocated/);
  assert.throws(() => validateCollectorConfig({ bus, store, methods: [{ name: 'cpu_share', attribute: () => ({}) as AttributionResult }] }), /methods\[0\]\.name="cpu_share" is used twice/);
  assert.throws(() => validateCollectorConfig({ bus, store, http: { port: 70000 } }), /http\.port=70000/);
  assert.throws(() => validateCollectorConfig({ bus, store, staticPower: { fallbackWatts: { rapl: -1 } } }), /staticPower\.fallbackWatts\.rapl=-1/);
  assert.throws(() => validateCollectorConfig({ bus, store, staticPower: { refreshEvery: 0 } }), /staticPower\.refreshEvery=0 must be an integer 1-900/);
  validateCollectorConfig({ bus, store, staticPower: { refreshEvery: 1 } });
  assert.throws(() => validateCollectorConfig({ bus: {} as never, store }), /collector config bus="object" must be a Bus/);
  assert.throws(() => validateCollectorConfig({ bus, store, storeWrites: { minIntervalMs: -5 } }), /storeWrites\.minIntervalMs=-5 must be an integer 0-60000/);
  assert.throws(() => validateCollectorConfig({ bus, store, storeWrites: { maxInFlight: 0 } }), /storeWrites\.maxInFlight=0/);
  validateCollectorConfig({ bus, store, policy: 'equal', http: { port: 0 }, storeWrites: { minIntervalMs: 500 } });
  assert.throws(() => validateCollectorConfig({ bus, store, storeWrites: { linger: 'yes' as never } }), /storeWrites\.linger="yes" must be true or false/);
  validateCollectorConfig({ bus, store, storeWrites: { minIntervalMs: 500, linger: false } });
});

const result: AttributionResult = {
  hostId: 'hv-1',
  seq: 9,
  t0UnixNs: 1e18,
  t1UnixNs: 1e18 + 1e9,
  method: 'cpu_share',
  modelVersion: '1',
  hardwareClass: 'x',
  note: '',
  measured: { rapl: 10, gpu: 0, bmc_rest: 0 },
  shares: [
    { kind: 'vm', vmUuid: 'u"1', vmName: 'web', tenant: 'a\\b', source: 'rapl', dynamicJoules: 6, staticJoules: 1, lowJoules: 6, highJoules: 8 },
    { kind: 'unallocated', vmUuid: '', vmName: '', tenant: '', source: 'rapl', dynamicJoules: 0, staticJoules: 3, lowJoules: 3, highJoules: 3 },
  ],
};

test('metrics: counters accumulate, label values are escaped, families have HELP and TYPE', () => {
  const m = new CollectorMetrics();
  m.recordResult(result);
  m.recordResult(result);
  const text = m.render();
  assert.match(text, /^wattsplit_vm_energy_joules_total\{host="hv-1",vm="u\\"1",vm_name="web",tenant="a\\\\b",source="rapl",part="dynamic",method="cpu_share"\} 12$/m);
  assert.match(text, /^wattsplit_vm_energy_joules_total\{[^}]*part="static"[^}]*\} 2$/m);
  assert.match(text, /^wattsplit_host_share_energy_joules_total\{host="hv-1",kind="unallocated",source="rapl",part="static",method="cpu_share"\} 6$/m);
  assert.match(text, /^# TYPE wattsplit_collector_lag_seconds gauge$/m);
  assert.equal(m.value('wattsplit_collector_intervals_total', { method: 'cpu_share' }), 2);
  // The hot path's prebuilt keys are the keys value() and inc() use for the same labels.
  assert.equal(m.value('wattsplit_vm_energy_joules_total', { host: 'hv-1', vm: 'u"1', vm_name: 'web', tenant: 'a\\b', source: 'rapl', part: 'dynamic', method: 'cpu_share' }), 12);
  m.inc('wattsplit_host_share_energy_joules_total', { host: 'hv-1', kind: 'unallocated', source: 'rapl', part: 'static', method: 'cpu_share' }, 1);
  assert.equal(m.value('wattsplit_host_share_energy_joules_total', { host: 'hv-1', kind: 'unallocated', source: 'rapl', part: 'static', method: 'cpu_share' }), 7);
  assert.equal(m.render().match(/^wattsplit_host_share_energy_joules_total\{/gm)?.length, 1);
  // Another VM at the same position of the host's shares gets its own series.
  m.recordResult({ ...result, shares: [{ ...result.shares[0]!, vmUuid: 'u2', dynamicJoules: 5, staticJoules: 0 }] });
  assert.equal(m.value('wattsplit_vm_energy_joules_total', { host: 'hv-1', vm: 'u2', vm_name: 'web', tenant: 'a\\b', source: 'rapl', part: 'dynamic', method: 'cpu_share' }), 5);
  assert.equal(m.value('wattsplit_vm_energy_joules_total', { host: 'hv-1', vm: 'u"1', vm_name: 'web', tenant: 'a\\b', source: 'rapl', part: 'dynamic', method: 'cpu_share' }), 12);
  assert.equal(m.render().match(/vm="u2"/g)?.length, 1, 'no zero-valued static series for u2');
});

test('metrics: shares dropping out, coming back, reordered or relabelled still add to their own series; a share that drops out costs one series lookup, not one per share after it', () => {
  const m = new CollectorMetrics();
  let lookups = 0;
  const inner = m as unknown as { seriesOf: (...a: unknown[]) => unknown };
  const seriesOf = inner.seriesOf.bind(m);
  inner.seriesOf = (...a: unknown[]) => {
    lookups++;
    return seriesOf(...a);
  };
  const vmShare = (i: number, source: 'rapl' | 'bmc_rest', j: number) => ({ kind: 'vm' as const, vmUuid: `u${i}`, vmName: `vm${i}`, tenant: `t${i % 3}`, source, dynamicJoules: j, staticJoules: j / 2, lowJoules: 0, highJoules: 0 });
  const overhead = (j: number) => ({ kind: 'host_overhead' as const, vmUuid: '', vmName: '', tenant: '', source: 'rapl' as const, dynamicJoules: j, staticJoules: 0, lowJoules: 0, highJoules: 0 });
  const expected = new Map<string, number>();
  let x = 7;
  const rnd = () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648);
  const record = (shares: AttributionResult['shares']) => {
    m.recordResult({ ...result, shares });
    for (const s of shares) {
      for (const [part, j] of [['dynamic', s.dynamicJoules], ['static', s.staticJoules]] as const) {
        if (!(j > 0)) continue;
        const k = s.kind === 'vm' ? `vm ${s.vmUuid} ${s.vmName} ${s.tenant} ${s.source} ${part}` : `${s.kind} ${s.source} ${part}`;
        expected.set(k, (expected.get(k) ?? 0) + j);
      }
    }
  };
  const steady = () => [...Array.from({ length: 50 }, (_, i) => vmShare(i, 'rapl', 1 + i)), overhead(3), ...Array.from({ length: 50 }, (_, i) => vmShare(i, 'bmc_rest', 2))];
  record(steady());
  const first = lookups;
  assert.equal(first, 2 * 100 + 1);
  // host overhead drops out (no CPU time outside the VMs) and comes back: one lookup when it returns
  record(steady().filter((s) => s.kind !== 'host_overhead'));
  assert.equal(lookups, first, 'nothing new when a share dropped out');
  record(steady());
  assert.equal(lookups, first + 1, 'one lookup for the share that came back');
  // then anything: shares dropped at random, reordered, a VM renamed
  for (let k = 0; k < 200; k++) {
    let shares = steady().filter(() => rnd() > 0.05);
    if (rnd() < 0.1) shares = shares.reverse();
    if (rnd() < 0.1) shares = shares.map((s) => (s.vmUuid === 'u7' ? { ...s, vmName: 'renamed' } : s));
    record(shares);
  }
  for (const [k, j] of expected) {
    const [kind, ...rest] = k.split(' ');
    const v =
      kind === 'vm'
        ? m.value('wattsplit_vm_energy_joules_total', { host: 'hv-1', vm: rest[0]!, vm_name: rest[1]!, tenant: rest[2]!, source: rest[3]!, part: rest[4]!, method: 'cpu_share' })
        : m.value('wattsplit_host_share_energy_joules_total', { host: 'hv-1', kind: kind!, source: rest[0]!, part: rest[1]!, method: 'cpu_share' });
    assert.ok(Math.abs(v - j) <= 1e-9 * j, `${k}: ${v} vs ${j}`);
  }
  assert.equal(m.seriesCount('wattsplit_vm_energy_joules_total') + m.seriesCount('wattsplit_host_share_energy_joules_total'), expected.size);
});

test('metrics: known label values start at 0; per-VM series idle past the TTL are dropped, and a returning VM counts again', () => {
  const m = new CollectorMetrics();
  m.initKnownLabels(['cpu_share', 'additive_model']);
  const text = m.render();
  for (const l of ['wattsplit_collector_frames_total{result="poison"} 0', 'wattsplit_collector_dead_letters_total 0', 'wattsplit_collector_intervals_total{method="additive_model"} 0', 'wattsplit_collector_cold_start_records_total{method="additive_model"} 0', 'wattsplit_collector_conservation_failures_total{method="cpu_share"} 0', 'wattsplit_collector_method_fallbacks_total{method="additive_model"} 0', 'wattsplit_collector_store_failures_total{kind="failed"} 0']) {
    assert.ok(text.split('\n').includes(l), l);
  }
  assert.doesNotMatch(text, /method_fallbacks_total\{method="cpu_share"\}/, 'the baseline never falls back');
  m.recordResult(result);
  assert.equal(m.seriesCount('wattsplit_vm_energy_joules_total'), 2);
  assert.equal(m.expireIdleSeries(Date.now() + m.seriesIdleTtlMs - 1000), 0);
  assert.equal(m.expireIdleSeries(Date.now() + m.seriesIdleTtlMs + 1000), 3, 'two VM series and the unallocated one');
  assert.equal(m.seriesCount('wattsplit_vm_energy_joules_total'), 0);
  m.recordResult(result);
  assert.equal(m.value('wattsplit_vm_energy_joules_total', { host: 'hv-1', vm: 'u"1', vm_name: 'web', tenant: 'a\\b', source: 'rapl', part: 'dynamic', method: 'cpu_share' }), 6, 'a new series, not the dropped one');
});

test('AttributionBatch round trip keeps every share and the measured energy', () => {
  const b = AttributionBatch.decode(encodeAttributionBatch([result]));
  assert.equal(b.hostId, 'hv-1');
  assert.equal(b.seq, 9);
  assert.equal(b.records.length, 2);
  assert.equal(b.records[0]!.kind, EntityKind.ENTITY_KIND_VM);
  assert.equal(b.records[1]!.kind, EntityKind.ENTITY_KIND_UNALLOCATED);
  assert.equal(b.records[0]!.joulesHigh, 8);
  assert.equal(b.measuredJoules.rapl, 10);
  assert.throws(() => encodeAttributionBatch([]), /at least one result/);
});

test('dashboard escapes tenant names', () => {
  const html = renderDashboard([{ tenant: '<script>x</script>', kind: 'vm', dynamicJoules: 5, staticJoules: 1 }], { method: 'cpu_share', fromUnixNs: 0, toUnixNs: 3.6e12 });
  assert.ok(html.includes('&lt;script&gt;x&lt;/script&gt;'));
  assert.doesNotMatch(html, /<script>/);
});

test('startEmbeddedCollector on a data directory that cannot be created fails clearly and cleans up', async () => {
  const d = mkdtempSync(join(tmpdir(), 'wattsplit-baddir-'));
  try {
    writeFileSync(join(d, 'file'), 'not a directory');
    await assert.rejects(startEmbeddedCollector({ dataDir: join(d, 'file', 'db'), logger: memoryLogger() }), (e: unknown) => e instanceof WattsplitError && e.code === 'CONFIG_INVALID' && /chDB dataDir .*file\/db/.test(e.message));
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

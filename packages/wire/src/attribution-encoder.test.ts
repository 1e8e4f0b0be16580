import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AttributionBatch, EntityKind, type IAttributionBatch } from './telemetry.js';
import { encodeAttributionResults, type ResultToEncode, type ShareToEncode } from './attribution-encoder.js';

type Share = Omit<ShareToEncode, 'kind'> & { kind: 'vm' | 'host_overhead' | 'unallocated' | 'odd' };
const KINDS: Record<Share['kind'], number> = { vm: EntityKind.ENTITY_KIND_VM, host_overhead: EntityKind.ENTITY_KIND_HOST_OVERHEAD, unallocated: EntityKind.ENTITY_KIND_UNALLOCATED, odd: -2 };

/** What the collector did before: an object per record, through the generated encoder. */
function reference(results: readonly ResultToEncode<Share>[], measured: Record<string, number>): Uint8Array {
  const f = results[0]!;
  return AttributionBatch.encode({
    hostId: f.hostId,
    seq: f.seq,
    t0UnixNs: f.t0UnixNs,
    t1UnixNs: f.t1UnixNs,
    records: results.flatMap((r) =>
      r.shares.map((s) => ({
        hostId: r.hostId,
        seq: r.seq,
        t0UnixNs: r.t0UnixNs,
        t1UnixNs: r.t1UnixNs,
        kind: KINDS[s.kind],
        vmUuid: s.vmUuid,
        vmName: s.vmName,
        tenant: s.tenant,
        source: s.source,
        dynamicJoules: s.dynamicJoules,
        staticJoules: s.staticJoules,
        joulesLow: s.lowJoules,
        joulesHigh: s.highJoules,
        method: r.method,
        modelVersion: r.modelVersion,
        hardwareClass: r.hardwareClass,
        note: r.note,
      })),
    ),
    measuredJoules: measured,
  } as IAttributionBatch).finish();
}

/** Deterministic pseudo-random numbers (xorshift32). */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

test('attribution encoder: byte for byte what the generated encoder writes, over varied results', () => {
  const r = rng(7);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const strings = ['', 'a', 'tenant-42', 'vm-é中文-😀', 'x'.repeat(130), 'y'.repeat(20_000), 'bmc_rest'];
  for (let round = 0; round < 200; round++) {
    const hostId = pick(['hv-1', 'rack7-hv-0042', 'hôte-ü', '']);
    const seq = pick([0, 1, 300, 2 ** 31 + 5, 2 ** 40 + 3, Number.MAX_SAFE_INTEGER]);
    const t0 = pick([0, 1.7e18, 1_795_430_400_123_456_789, -5e9]);
    const results: ResultToEncode<Share>[] = Array.from({ length: 1 + Math.floor(r() * 3) }, (_, k) => ({
      hostId,
      seq,
      t0UnixNs: t0,
      t1UnixNs: t0 + 1e9,
      method: pick(['cpu_share', 'additive_model', '']),
      modelVersion: pick(['1', 'fallback:cpu_share/1', '']),
      hardwareClass: pick(['xeon-8480', '']),
      note: k === 0 ? '' : pick(strings),
      shares: Array.from({ length: Math.floor(r() * 60) }, () => ({
        kind: pick(['vm', 'vm', 'host_overhead', 'unallocated', 'odd'] as const),
        vmUuid: pick([...strings, undefined]),
        vmName: pick(strings),
        tenant: pick(strings),
        source: pick(['rapl', 'gpu', 'bmc_rest']),
        dynamicJoules: pick([0, -0, 1.5, 123.456789, 1e-300, Number.NaN, Infinity]),
        staticJoules: r() * 100,
        lowJoules: pick([r() * 10, undefined]),
        highJoules: r() * 1000,
      })),
    }));
    const measured = pick([{ rapl: 250.5, gpu: 0, bmc_rest: 120 }, {}, { rapl: 1 }]);
    const fast = encodeAttributionResults(results, measured, (s) => KINDS[s.kind]);
    assert.deepEqual(Buffer.from(fast), Buffer.from(reference(results, measured)), `round ${round}`);
  }
});

test('attribution encoder: what it writes decodes to the results it was given', () => {
  const results: ResultToEncode<Share>[] = [
    {
      hostId: 'hv-9',
      seq: 12,
      t0UnixNs: 1e18,
      t1UnixNs: 1e18 + 1e9,
      method: 'cpu_share',
      modelVersion: '1',
      hardwareClass: 'epyc',
      note: '',
      shares: [
        { kind: 'vm', vmUuid: 'u1', vmName: 'web', tenant: 'acme', source: 'rapl', dynamicJoules: 10, staticJoules: 2, lowJoules: 11, highJoules: 13 },
        { kind: 'host_overhead', vmUuid: '', vmName: '', tenant: '', source: 'rapl', dynamicJoules: 1, staticJoules: 0, lowJoules: 1, highJoules: 1 },
      ],
    },
  ];
  const b = AttributionBatch.decode(encodeAttributionResults(results, { rapl: 13 }, (s) => KINDS[s.kind]));
  assert.equal(b.hostId, 'hv-9');
  assert.equal(Number(b.seq), 12);
  assert.equal(b.records.length, 2);
  assert.equal(b.records[0]!.tenant, 'acme');
  assert.equal(b.records[0]!.joulesHigh, 13);
  assert.equal(b.records[1]!.kind, EntityKind.ENTITY_KIND_HOST_OVERHEAD);
  assert.deepEqual({ ...b.measuredJoules }, { rapl: 13 });
  assert.throws(() => encodeAttributionResults([], {}, () => 0), /at least one result/);
});

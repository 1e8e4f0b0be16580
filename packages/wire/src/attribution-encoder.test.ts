import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AttributionBatch, AttributionRecord, EntityKind } from './telemetry.js';
import { encodeAttributionResults, type ResultToEncode, type ShareToEncode } from './attribution-encoder.js';

type Share = Omit<ShareToEncode, 'kind'> & { kind: 'vm' | 'host_overhead' | 'unallocated' | 'odd' };
const KINDS: Record<Share['kind'], number> = { vm: EntityKind.ENTITY_KIND_VM, host_overhead: EntityKind.ENTITY_KIND_HOST_OVERHEAD, unallocated: EntityKind.ENTITY_KIND_UNALLOCATED, odd: -2 };

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

test('attribution encoder: field presence and a negative enum value as the generated encoder writes them', () => {
  const one = (share: Share, r: Partial<ResultToEncode<Share>> = {}) => encodeAttributionResults([{ shares: [share], ...r }], undefined, (s) => KINDS[s.kind]);
  // Only the fields that are set, in field order; a negative int32 enum takes ten bytes.
  const share: Share = { kind: 'odd', tenant: 't', dynamicJoules: 0 };
  const expectedRecord = AttributionRecord.encode({ kind: -2 as EntityKind, tenant: 't', dynamicJoules: 0 }).finish();
  const expected = Buffer.concat([Buffer.from([42, expectedRecord.length]), expectedRecord]);
  assert.equal(Buffer.from(one(share)).toString('hex'), expected.toString('hex'));
  assert.equal(expectedRecord.length, 1 + 10 + 3 + 9);
  // Header fields come once, from the first result, and again in every record.
  const withHeader = AttributionBatch.decode(one({ kind: 'vm', vmUuid: 'u' }, { hostId: 'h', seq: 2 ** 40 + 1, t0UnixNs: -5e9, note: 'n' }));
  assert.equal(Number(withHeader.seq), 2 ** 40 + 1);
  assert.equal(Number(withHeader.records[0]!.t0UnixNs), -5e9);
  assert.equal(withHeader.records[0]!.note, 'n');
  assert.equal(withHeader.records[0]!.hostId, 'h');
});

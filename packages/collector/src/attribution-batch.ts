/** AttributionResult → wattsplit.telemetry.v1.AttributionBatch (what streaming users read on TOPICS.attribution). */
import type { AttributionResult, EntityKind as Kind } from '@wattsplit/attribution';
import { EntityKind, encodeAttributionResults, type IAttributionBatch, type IAttributionRecord } from '@wattsplit/wire';

function kindOf(k: Kind): EntityKind {
  switch (k) {
    case 'vm':
      return EntityKind.ENTITY_KIND_VM;
    case 'host_overhead':
      return EntityKind.ENTITY_KIND_HOST_OVERHEAD;
    case 'unallocated':
      return EntityKind.ENTITY_KIND_UNALLOCATED;
  }
}

/** One batch per host interval with every method's records (they sum to measured per source and method). */
export function toAttributionBatch(results: readonly AttributionResult[]): IAttributionBatch {
  const first = results[0];
  if (!first) throw new Error('toAttributionBatch needs at least one result');
  const records: IAttributionRecord[] = [];
  for (const r of results) {
    for (const s of r.shares) {
      records.push({
        hostId: r.hostId,
        seq: r.seq,
        t0UnixNs: r.t0UnixNs,
        t1UnixNs: r.t1UnixNs,
        kind: kindOf(s.kind),
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
      });
    }
  }
  return { hostId: first.hostId, seq: first.seq, t0UnixNs: first.t0UnixNs, t1UnixNs: first.t1UnixNs, records, measuredJoules: { ...first.measured } };
}

/** The encoded toAttributionBatch(results), byte for byte, without the intermediate objects (see wire's attribution-encoder.ts). */
export function encodeAttributionBatch(results: readonly AttributionResult[]): Uint8Array {
  const first = results[0];
  if (!first) throw new Error('encodeAttributionBatch needs at least one result');
  return encodeAttributionResults(results, first.measured, kindOfShare);
}

const kindOfShare = (s: { kind: Kind }): EntityKind => kindOf(s.kind);

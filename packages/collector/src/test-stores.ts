/** Test helper: a Store that forwards everything to a real one; tests override the calls they fault. */
import type { Anomaly } from '@wattsplit/attribution';
import type { Checkpoint, EnergyRangeQuery, EnergyRollupQuery, HistoryQuery, IntervalWrite, QueryFormat, Store, StoredRange } from '@wattsplit/store';
import type { TransportResult } from '@wattsplit/wire';

export class DelegatingStore implements Store {
  readonly backend: Store['backend'];
  constructor(protected readonly inner: Store) {
    this.backend = inner.backend;
  }
  init() { return this.inner.init(); }
  writeInterval(w: IntervalWrite): Promise<TransportResult> { return this.writeIntervals([w]); }
  writeIntervals(ws: readonly IntervalWrite[]): Promise<TransportResult> { return this.inner.writeIntervals(ws); }
  writeAnomalies(h: string, s: number, t: number, a: readonly Anomaly[]) { return this.inner.writeAnomalies(h, s, t, a); }
  saveCheckpoints(c: readonly Checkpoint[]) { return this.inner.saveCheckpoints(c); }
  loadCheckpoint(h: string) { return this.inner.loadCheckpoint(h); }
  highestStoredSeq(h: string) { return this.inner.highestStoredSeq(h); }
  resumeState(hs: readonly string[]) { return this.inner.resumeState(hs); }
  storedIntervals(h: string, seqs: readonly number[]) { return this.inner.storedIntervals(h, seqs); }
  storedIntervalRanges(r: readonly StoredRange[]) { return this.inner.storedIntervalRanges(r); }
  query(sql: string, f?: QueryFormat) { return this.inner.query(sql, f); }
  insertRows(table: string, rows: readonly Record<string, unknown>[]) { return this.inner.insertRows(table, rows); }
  readHistory(q: HistoryQuery) { return this.inner.readHistory(q); }
  vmEnergy(u: string, q: EnergyRangeQuery) { return this.inner.vmEnergy(u, q); }
  tenantBill(t: string, q: EnergyRangeQuery) { return this.inner.tenantBill(t, q); }
  tenantTotals(q: EnergyRangeQuery) { return this.inner.tenantTotals(q); }
  energyRollup(q: EnergyRollupQuery) { return this.inner.energyRollup(q); }
  close() { return this.inner.close(); }
}

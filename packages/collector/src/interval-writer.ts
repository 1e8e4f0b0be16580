/**
 * IntervalWriter: writes a partition's batch of intervals to the store so that each interval's rows land
 * once, whatever failed before.
 *
 * Contract, per call of `write`:
 * - entries already stored are not written; entries whose earlier write may have landed (`attempted`) are
 *   looked up in the store first, and those found are marked stored, not written again;
 * - a batch whose group write (group-commit.ts) failed transiently is retried with its whole group, verbatim
 *   (the group's entries not yet stored), so the retry carries the same insert_deduplication_token as the
 *   write that may have landed; otherwise the batch goes through the group commit;
 * - a shared write refused for good is retried with this batch alone (another partition's interval may be
 *   the one refused);
 * - 'stored': every entry of the batch is stored. 'retryable': the entries written are marked as possibly
 *   landed (and the failed group recorded on them when the write was shared). 'refused': the store refused
 *   the batch for good; `writeOneByOne` then finds the culprits.
 */
import type { Store } from '@wattsplit/store';
import { OK, type Logger, type TransportResult, type WattsplitError } from '@wattsplit/wire';
import type { BatchEntry } from './batch-entry.js';
import type { GroupCommit } from './group-commit.js';

export type IntervalStore = Pick<Store, 'writeIntervals' | 'writeInterval' | 'storedIntervals'>;

export type BatchWrite =
  | { kind: 'stored' }
  /** `entries`: the batch's entries that were to be written. */
  | { kind: 'retryable'; error: WattsplitError; entries: readonly BatchEntry[] }
  | { kind: 'refused'; error: WattsplitError; entries: readonly BatchEntry[] };

export type OneByOneWrite =
  /** `kept`: the entries stored; every entry is stored or was handed to `refused`. */
  | { kind: 'stored'; kept: BatchEntry[] }
  /** The store went down half-way: `kept` are stored, `unsettled` (from the failed one on) are not. */
  | { kind: 'retryable'; error: WattsplitError; kept: BatchEntry[]; unsettled: readonly BatchEntry[] };

export interface IntervalWriterOptions {
  store: IntervalStore;
  /** The group commit shared by every partition's batches. */
  groups: GroupCommit<BatchEntry>;
  logger: Logger;
}

export class IntervalWriter {
  private readonly store: IntervalStore;
  private readonly groups: GroupCommit<BatchEntry>;
  private readonly log: Logger;

  constructor(o: IntervalWriterOptions) {
    this.store = o.store;
    this.groups = o.groups;
    this.log = o.logger;
  }

  /** Writes the batch's entries not yet stored (see the contract above). */
  async write(batch: readonly BatchEntry[]): Promise<BatchWrite> {
    await this.markLanded(batch.filter((e) => e.needsLandedCheck));
    const toStore = batch.filter((e) => !e.stored);
    if (toStore.length === 0) return { kind: 'stored' };
    const failedGroup = toStore[0]!.failedGroup;
    let w: TransportResult = OK;
    let shared = false;
    if (failedGroup) {
      // Every partition of the group is redelivered and may come here at the same time: one retry of a
      // group at a time, so the second finds what the first stored instead of writing it again (a server
      // without insert deduplication would count it twice).
      w = await this.serialised(failedGroup, () => this.retryGroup(failedGroup));
      shared = failedGroup.length > toStore.length;
    } else {
      const o = await this.groups.submit(toStore);
      w = o.result;
      shared = o.callers > 1;
      if (w.kind === 'retryable' && shared) for (const e of o.group) e.joinFailedGroup(o.group);
    }
    if (w.kind === 'failed' && shared) {
      // Another partition's interval may be the one refused: try this batch on its own first (what of it
      // landed meanwhile is not written again).
      await this.markLanded(toStore.filter((e) => !e.stored));
      const mine = toStore.filter((e) => !e.stored);
      w = mine.length > 0 ? await this.store.writeIntervals(mine.map((e) => e.write)) : OK;
    }
    if (w.kind === 'retryable') {
      // The write may have landed (an unanswered insert, or some of its inserts): check before the retry.
      for (const e of toStore) e.markAttempted();
      for (const e of failedGroup ?? []) e.markAttempted();
      return { kind: 'retryable', error: w.error, entries: toStore };
    }
    if (w.kind === 'failed') return { kind: 'refused', error: w.error, entries: toStore };
    for (const e of toStore) e.markStored();
    return { kind: 'stored' };
  }

  /**
   * Writes the entries of a refused batch one at a time: each refused again is handed to `refused` (in
   * order, awaited; if it throws, nothing after it is written); stops at the first transient failure.
   */
  async writeOneByOne(entries: readonly BatchEntry[], refused: (e: BatchEntry, error: WattsplitError) => Promise<void>): Promise<OneByOneWrite> {
    const kept: BatchEntry[] = [];
    for (const [i, e] of entries.entries()) {
      const one = await this.store.writeInterval(e.write);
      if (one.kind === 'ok') {
        e.markStored();
        kept.push(e);
      } else if (one.kind === 'failed') {
        await refused(e, one.error);
      } else {
        e.markAttempted();
        return { kind: 'retryable', error: one.error, kept, unsettled: entries.slice(i) };
      }
    }
    for (const e of entries) e.markStored();
    return { kind: 'stored', kept };
  }

  /** Retries a failed group: what landed meanwhile is marked stored, the rest written in one call. */
  private async retryGroup(group: readonly BatchEntry[]): Promise<TransportResult> {
    await this.markLanded(group.filter((e) => !e.stored));
    const rest = group.filter((e) => !e.stored);
    const w = rest.length > 0 ? await this.store.writeIntervals(rest.map((e) => e.write)) : OK;
    if (w.kind === 'ok') for (const e of group) e.markStored();
    else if (w.kind === 'failed') for (const e of group) e.leaveFailedGroup();
    else for (const e of rest) e.markAttempted();
    return w;
  }

  private readonly groupRetries = new WeakMap<readonly BatchEntry[], Promise<unknown>>();

  /** Runs `f` after any earlier call for the same group has settled. */
  private async serialised<T>(group: readonly BatchEntry[], f: () => Promise<T>): Promise<T> {
    const before = this.groupRetries.get(group) ?? Promise.resolve();
    const mine = before.then(f, f);
    this.groupRetries.set(group, mine.catch(() => undefined));
    return mine;
  }

  /** Marks the entries whose attribution rows are already in the store as stored (an earlier write landed). */
  private async markLanded(entries: readonly BatchEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const byHost = new Map<string, BatchEntry[]>();
    for (const e of entries) {
      const list = byHost.get(e.hostId);
      if (list) list.push(e);
      else byHost.set(e.hostId, [e]);
    }
    let landed = 0;
    for (const [host, es] of byHost) {
      const stored = new Set((await this.store.storedIntervals(host, es.map((e) => e.write.interval.seq))).filter((x) => x.attributed).map((x) => x.seq));
      for (const e of es) {
        e.landedCheckDone();
        if (stored.has(e.write.interval.seq)) {
          e.markStored();
          landed++;
        }
      }
    }
    if (landed > 0) this.log.info({ intervals: entries.length, landed }, `${landed} of ${entries.length} intervals of an unanswered write had landed: not written again`);
  }
}

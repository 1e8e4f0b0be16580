/**
 * LearnerStatePersistence: the online learners' per-host state (static power, GPU signatures) in the
 * store's `learner_state` table, so a restarted collector, or one that takes a partition over, carries on
 * from what was learned instead of starting every host at the configured fallback (0 W).
 *
 * Contract: a host's state is restored once, the first time this collector sees the host (before its
 * first interval is attributed), and the host's intervals stored after it (a collector killed between two
 * saves) are then learned from the store, so the learners end as an uninterrupted collector's would; it is saved at most every `saveIntervalS` per host after new intervals
 * were observed, and for every host at shutdown. A learner ignores intervals at or below the seq it last
 * observed for the host, and that seq travels with the state: a redelivered interval is never learned
 * twice. A save that fails is logged and retried at the next due save (the intervals stay stored; only
 * what was learned since the last save would be missing after a crash).
 */
import type { LearnerHostState } from '@wattsplit/attribution';
import type { LearnerStateRow, ModelStore } from '@wattsplit/store';
import { normaliseError, type Logger } from '@wattsplit/wire';

/** Anything with per-host state (StaticPowerLearner, methods with exportState/importState). */
export interface PersistedLearner {
  exportState?(hostId: string): LearnerHostState | undefined;
  /** Several learners in one owner (one row each); used instead of `exportState` where present. */
  exportStates?(hostId: string): LearnerHostState[];
  importState?(hostId: string, state: unknown): void;
}

/** Every state a learner holds for a host. */
function statesOf(learner: PersistedLearner, hostId: string): LearnerHostState[] {
  if (learner.exportStates) return learner.exportStates(hostId);
  const st = learner.exportState?.(hostId);
  return st ? [st] : [];
}

/**
 * A learner and the name of its owner (the pipeline's static power learner, or a method by its name):
 * rows are stored under `<owner>/<learner>` (e.g. `additive_model/gpu_signature`), so two methods that
 * each keep a GPU learner never read each other's state.
 */
export interface OwnedLearner {
  owner: string;
  learner: PersistedLearner;
}

export interface LearnerStatePersistenceOptions {
  models: ModelStore;
  learners: readonly OwnedLearner[];
  /**
   * Feeds the learners the host's stored intervals with seq above `afterSeq` (all when undefined), at
   * most the newest `limit`, oldest first; returns how many. Called once per host after its state is
   * restored, so what was stored but not yet saved (a kill between two saves) is learned too.
   */
  replay?: (hostId: string, afterSeq: number | undefined, limit: number) => Promise<number>;
  /** At most this many intervals replayed per host. Default 3600 (the GPU learners' half-life). */
  replayLimit?: number;
  logger: Logger;
  /** Default 30 s. */
  saveIntervalS?: number;
  now?: () => number;
}

export class LearnerStatePersistence {
  private readonly restored = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly savedAt = new Map<string, number>();
  private readonly saveMs: number;
  private readonly now: () => number;
  private lastError: string | undefined;
  readonly stats = { restored: 0, replayed: 0, saved: 0, saveFailures: 0, refused: 0, replaysSkipped: 0 };
  /** Looked up by `prefetch` for hosts about to be restored: their rows, and the highest seq stored for them (null: none). */
  private readonly prefetched = new Map<string, { rows: readonly LearnerStateRow[]; storedSeq: number | null }>();

  constructor(private readonly o: LearnerStatePersistenceOptions) {
    this.saveMs = (o.saveIntervalS ?? 30) * 1000;
    this.now = o.now ?? Date.now;
  }

  /**
   * Looks up the saved states of the hosts not restored yet in one query (a collector taking over a partition
   * sees hundreds of new hosts in its first batch; one query each was a round trip per host), for the
   * `restoreOnce` of each that follows. `storedSeq` is the highest seq each host has stored (undefined: none),
   * from the same lookup as its checkpoint: a host with nothing stored after its saved state skips the replay's
   * query. Throws when the store is down, as restoreOnce does.
   */
  async prefetch(hosts: readonly string[], storedSeq: ReadonlyMap<string, number | undefined>): Promise<void> {
    const todo = [...new Set(hosts)].filter((h) => !this.restored.has(h) && !this.prefetched.has(h));
    if (todo.length === 0) return;
    const rows = this.o.learners.some((x) => 'importState' in x.learner) ? await this.o.models.loadLearnerStatesOf(todo) : undefined;
    for (const h of todo) this.prefetched.set(h, { rows: rows?.get(h) ?? [], storedSeq: storedSeq.get(h) ?? null });
  }

  /** Drops what `prefetch` looked up for these hosts and no `restoreOnce` used (a batch's end: the next lookup is fresh). */
  clearPrefetched(hosts: readonly string[]): void {
    for (const h of hosts) this.prefetched.delete(h);
  }

  /** Restores every learner's state for a host the first time it is seen. Throws when the store is down (the batch is redelivered). */
  async restoreOnce(hostId: string): Promise<void> {
    if (this.restored.has(hostId)) return;
    const pre = this.prefetched.get(hostId);
    this.prefetched.delete(hostId);
    if (this.o.learners.some((x) => 'importState' in x.learner)) {
      const rows = pre ? pre.rows : await this.o.models.loadLearnerStates(hostId);
      for (const { owner, learner } of this.o.learners) {
        if (!learner.importState) continue;
        for (const row of rows.filter((r) => r.learner.startsWith(`${owner}/`))) {
          try {
            learner.importState(hostId, row.stateJson);
            this.stats.restored++;
            this.o.logger.info({ host: hostId, learner: row.learner, seq: row.seq }, `restored ${row.learner} state of ${hostId} (learned up to seq ${row.seq})`);
          } catch (e) {
            this.stats.refused++;
            this.o.logger.error({ host: hostId, learner: row.learner, code: normaliseError(e).code }, `stored ${row.learner} state of ${hostId} refused, the learner starts afresh: ${normaliseError(e).message}`);
          }
        }
      }
    }
    if (this.o.replay) {
      // The least advanced learner with a saved state decides where to start (the others skip what they
      // already saw; a learner with nothing for the host, e.g. GPU signatures on a host without a
      // time-sliced GPU, has nothing to learn from the earlier intervals either). No state: the newest.
      let from: number | undefined;
      for (const { learner } of this.o.learners) {
        for (const { lastSeq: seq } of statesOf(learner, hostId)) from = from === undefined ? seq : Math.min(from, seq);
      }
      // nothing stored after the saved state (or nothing stored at all): no replay query
      const nothingAfter = pre !== undefined && (pre.storedSeq === null || (from !== undefined && pre.storedSeq <= from));
      if (nothingAfter) this.stats.replaysSkipped++;
      const n = nothingAfter ? 0 : await this.o.replay(hostId, from, this.o.replayLimit ?? 3600);
      if (n > 0) {
        this.stats.replayed += n;
        this.dirty.add(hostId);
        this.o.logger.info({ host: hostId, intervals: n, afterSeq: from }, `learners of ${hostId} caught up on ${n} stored intervals after their saved state`);
      }
    }
    this.restored.add(hostId);
    this.savedAt.set(hostId, this.now());
  }

  /**
   * Another collector handled the host since (its partition came back): what the learners hold of it is stale.
   * The next `restoreOnce` loads the state that collector saved and replays what was stored after it; nothing
   * of the stale state is saved over it meanwhile.
   */
  release(hostId: string): void {
    this.restored.delete(hostId);
    this.dirty.delete(hostId);
  }

  /** A host's learners observed new intervals. */
  touched(hostId: string): void {
    this.dirty.add(hostId);
  }

  /** Saves the hosts whose state changed and whose last save is older than the interval. */
  async saveDue(): Promise<void> {
    const now = this.now();
    const due = [...this.dirty].filter((h) => now - (this.savedAt.get(h) ?? 0) >= this.saveMs);
    if (due.length > 0) await this.save(due);
  }

  /** Saves every host whose state changed (shutdown). */
  async saveAll(): Promise<void> {
    if (this.dirty.size > 0) await this.save([...this.dirty]);
  }

  private async save(hosts: readonly string[]): Promise<void> {
    const rows: { learner: string; key: string; seq: number; stateJson: string }[] = [];
    for (const h of hosts) {
      for (const { owner, learner } of this.o.learners) {
        for (const st of statesOf(learner, h)) rows.push({ learner: `${owner}/${st.learner}`, key: h, seq: st.lastSeq, stateJson: JSON.stringify(st) });
      }
    }
    const r = await this.o.models.saveLearnerStates(rows);
    if (r.kind !== 'ok') {
      this.stats.saveFailures++;
      if (r.error.message !== this.lastError) this.o.logger.warn({ hosts: hosts.length, code: r.error.code }, `learner state not saved (retried at the next save; a crash before then relearns from later intervals): ${r.error.message}`);
      this.lastError = r.error.message;
      return;
    }
    this.lastError = undefined;
    const now = this.now();
    for (const h of hosts) {
      this.dirty.delete(h);
      this.savedAt.set(h, now);
    }
    this.stats.saved += rows.length;
  }
}

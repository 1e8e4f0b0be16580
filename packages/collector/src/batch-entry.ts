/**
 * BatchEntry: one interval waiting to be stored, with the frame and bus message it came from, and what is
 * known of its store write.
 *
 * Write state, and its invariants:
 * - stored: its attribution rows are in the store. Final: a stored entry is never written again, and has
 *   neither of the two marks below.
 * - attempted: a write of it was left unanswered or failed part-way, so it may have landed: the store is
 *   asked before it is written again (and the mark is cleared by that check).
 * - failedGroup: the group write (group-commit.ts) it went into failed transiently; the retry writes that
 *   whole group again, verbatim, so it carries the same deduplication token as the write that may have
 *   landed. Cleared when the group is stored, or refused for good.
 */
import type { IntervalWrite } from '@wattsplit/store';
import type { BusMessage, TelemetryFrame } from '@wattsplit/wire';

export class BatchEntry {
  private isStored = false;
  private wasAttempted = false;
  private group: readonly BatchEntry[] | undefined;

  constructor(
    readonly write: IntervalWrite,
    readonly frame: TelemetryFrame,
    readonly message: BusMessage,
  ) {}

  get hostId(): string {
    return this.write.interval.hostId;
  }

  get stored(): boolean {
    return this.isStored;
  }

  /** Not stored, and a write of it may have landed: ask the store first. */
  get needsLandedCheck(): boolean {
    return !this.isStored && this.wasAttempted;
  }

  /** The group to write again verbatim, while its transiently failed write is unresolved. */
  get failedGroup(): readonly BatchEntry[] | undefined {
    return this.group;
  }

  markStored(): void {
    this.isStored = true;
    this.wasAttempted = false;
    this.group = undefined;
  }

  /** A write of it went unanswered or failed part-way (no-op once stored). */
  markAttempted(): void {
    if (!this.isStored) this.wasAttempted = true;
  }

  /** The store was asked whether an earlier write landed: no longer in doubt. */
  landedCheckDone(): void {
    this.wasAttempted = false;
  }

  /** Its group write failed transiently (no-op once stored). */
  joinFailedGroup(group: readonly BatchEntry[]): void {
    if (!this.isStored) this.group = group;
  }

  /** Its group was refused for good: it is written on its own from now on. */
  leaveFailedGroup(): void {
    this.group = undefined;
  }
}

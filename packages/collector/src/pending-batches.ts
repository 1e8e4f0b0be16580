/**
 * PendingBatches: per bus partition, what a failed handler call leaves for the redelivery, and the
 * checkpoints waiting for the intervals they close to be stored.
 *
 * - pending batch: the batch whose write, checkpoint save or publish failed transiently. A partition has one
 *   from the failed flush until a flush of that partition succeeds or gives the batch up (`settle`); the
 *   redelivery retries it verbatim, before anything newer, so its group keeps its deduplication token.
 * - checkpoint candidates: per host, the newest frame the aligner accepted and did not hold (the frame a
 *   restarted collector resumes from). A newer frame of the host replaces its candidate; candidates survive
 *   failed flushes and are dropped only once saved (or refused for good), after the intervals they close are
 *   stored.
 */
import type { Checkpoint } from '@wattsplit/store';
import type { BatchEntry } from './batch-entry.js';

export class PendingBatches {
  private readonly batches = new Map<number, BatchEntry[]>();
  private readonly candidates = new Map<number, Map<string, Checkpoint>>();

  /** The partition's batch to retry first, if its last flush failed. */
  pending(partition: number): BatchEntry[] | undefined {
    return this.batches.get(partition);
  }

  /** Keeps `batch` as the partition's pending batch (replacing any earlier one). */
  keep(partition: number, batch: BatchEntry[]): void {
    this.batches.set(partition, batch);
  }

  /** The partition has nothing left to retry. */
  settle(partition: number): void {
    this.batches.delete(partition);
  }

  /** Records `cp` as its host's checkpoint candidate on the partition. */
  offerCheckpoint(partition: number, cp: Checkpoint): void {
    let cps = this.candidates.get(partition);
    if (!cps) this.candidates.set(partition, (cps = new Map<string, Checkpoint>()));
    cps.set(cp.hostId, cp);
  }

  /** The partition's checkpoint candidates, one per host. */
  checkpoints(partition: number): Checkpoint[] {
    return [...(this.candidates.get(partition)?.values() ?? [])];
  }

  /** The partitions with checkpoint candidates. */
  candidatePartitions(): number[] {
    return [...this.candidates.keys()];
  }

  /** The candidates are saved (or refused for good): drop them. */
  checkpointsSaved(partition: number): void {
    this.candidates.delete(partition);
  }
}

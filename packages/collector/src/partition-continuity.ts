/**
 * PartitionContinuity: per bus partition, the offset after the last batch this collector handled and the
 * hosts it saw there. A batch that starts past that offset means the partition was handled by another
 * collector in between (a rebalance took it away and gave it back): what this collector still keeps about
 * those hosts (the aligner's reference frame, the committed frame, the looked-up checkpoint) is older than
 * what was stored meanwhile, and an interval from it would count the other collector's intervals again.
 * Those hosts must resume from the store (checkpoint + stored floor) as on a first take-over.
 *
 * A batch that starts *before* that offset is a rewind to the group's committed offset: a restart of the
 * consumer or a rebalance that gave the partition back, where the collector committed less often than it
 * stored (Bus.redelivers, checkpoints.everyMs), or an offset commit that failed. Another collector may have
 * stored intervals of those hosts past what this one kept in between, so they resume from the store too
 * (their redelivered frames up to the stored floor are checked against it, never written twice).
 *
 * A batch that starts exactly there continues, unless a group join assigned the partition since its last
 * batch (`assigned`, from the bus's SubscribeOptions.onAssigned): the member that had the partition in
 * between may have stored intervals without committing their offsets, so the partition comes back at this
 * collector's own next offset with intervals stored past what it keeps. Such a partition is `suspect`
 * until the collector has compared its hosts with the store (`verified`): the hosts stored past what it
 * keeps resume from the store, the others continue (a join that changed nothing costs one lookup).
 *
 * Invariant: `next(p)` is the offset after the last message of the last batch of partition p whose handler
 * call completed; a failed call changes nothing (its messages are redelivered from its first offset, which is
 * `next(p)`: neither a gap nor a rewind). Only a batch starting exactly at `next(p)` continues.
 */
export class PartitionContinuity {
  private readonly nextOffset = new Map<number, bigint>();
  private readonly hostsOf = new Map<number, Set<string>>();
  private readonly suspects = new Set<number>();

  /**
   * A batch of `partition` starts at `firstOffset`: the hosts to release when the partition may have been
   * handled elsewhere since this collector's last batch of it, a gap or a rewind (the partition then starts
   * with no hosts), else [].
   */
  begin(partition: number, firstOffset: string): string[] {
    const next = this.nextOffset.get(partition);
    if (next === undefined || BigInt(firstOffset) === next) return [];
    return this.revoked(partition);
  }

  /** A group join assigned these partitions: those this collector keeps hosts of are suspect until verified. */
  assigned(partitions: readonly number[]): void {
    for (const p of partitions) if (this.hostsOf.get(p)?.size) this.suspects.add(p);
  }

  /** The hosts to compare with the store before the partition's next batch continues from what is kept
   *  ([] when it is not suspect). The partition stays suspect until `verified`. */
  toVerify(partition: number): string[] {
    return this.suspects.has(partition) ? [...(this.hostsOf.get(partition) ?? [])] : [];
  }

  /** The partition's hosts were compared with the store (those stored past what is kept are released). */
  verified(partition: number): void {
    this.suspects.delete(partition);
  }

  /**
   * Forgets the partition: its hosts (returned, to resume from the store), next offset and suspicion. `begin`
   * calls it on a gap or rewind; the collector calls it for a partition a group join took away while a batch of
   * it was being handled, before the batch was stored.
   */
  revoked(partition: number): string[] {
    const hosts = [...(this.hostsOf.get(partition) ?? [])];
    this.hostsOf.delete(partition);
    this.nextOffset.delete(partition);
    this.suspects.delete(partition);
    return hosts;
  }

  /** A message of `host` was handled on `partition`. */
  saw(partition: number, host: string): void {
    let s = this.hostsOf.get(partition);
    if (!s) this.hostsOf.set(partition, (s = new Set<string>()));
    s.add(host);
  }

  /** The handler call for `partition` ending at `lastOffset` completed. */
  handled(partition: number, lastOffset: string): void {
    this.nextOffset.set(partition, BigInt(lastOffset) + 1n);
  }
}

/**
 * PartitionContinuity: per bus partition, the offset after the last batch this collector handled and the
 * hosts it saw there. A batch that starts past that offset means the partition was handled by another
 * collector in between (a rebalance took it away and gave it back): what this collector still keeps about
 * those hosts (the aligner's reference frame, the committed frame, the looked-up checkpoint) is older than
 * what was stored meanwhile, and an interval from it would count the other collector's intervals again.
 * Those hosts must resume from the store (checkpoint + stored floor) as on a first take-over.
 *
 * Invariant: `next(p)` is the offset after the last message of the last batch of partition p whose handler
 * call completed; a failed call changes nothing (its messages are redelivered from its first offset, which is
 * not a gap). A batch starting at or before `next(p)` is the continuation or a redelivery (replays are
 * recognised by seq), never a gap.
 */
export class PartitionContinuity {
  private readonly nextOffset = new Map<number, bigint>();
  private readonly hostsOf = new Map<number, Set<string>>();

  /**
   * A batch of `partition` starts at `firstOffset`: the hosts to release when the partition was handled
   * elsewhere since this collector's last batch of it (the partition then starts with no hosts), else [].
   */
  begin(partition: number, firstOffset: string): string[] {
    const next = this.nextOffset.get(partition);
    if (next === undefined || BigInt(firstOffset) <= next) return [];
    const hosts = [...(this.hostsOf.get(partition) ?? [])];
    this.hostsOf.delete(partition);
    this.nextOffset.delete(partition);
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

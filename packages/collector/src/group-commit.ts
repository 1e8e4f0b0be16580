/**
 * Group commit: concurrent callers' items (one bus partition's batch each) are written as ONE store call.
 *
 * Every store write makes a new part per table, and a ClickHouse server spends tens of milliseconds per
 * part whatever its size; the bus hands each partition's messages to its own handler, so without this a
 * collector consuming 8 partitions makes 8 small writes where one large one would do. A submission starts
 * a write at once when fewer than `maxInFlight` writes are running and the last write started at least
 * `minIntervalMs` ago; otherwise it waits, and every submission that arrived meanwhile goes into the next
 * write (up to `maxItems`). With the default minIntervalMs 0 there is no timer: under light load nothing
 * waits, under heavy load writes grow until they keep up. A ClickHouse server also merges every part it
 * made in the background, and the merges of many small parts cost it more than the inserts themselves
 * (docs/fleet.md): minIntervalMs caps the writes per second (at most 1000 / minIntervalMs), so each
 * write, and each part, is larger; it adds at most minIntervalMs of latency, and only when writes are
 * that frequent.
 *
 * Every caller of one write gets the same result and the full list of items written together (the
 * group), so a caller whose write must be retried can retry the group verbatim: the store's
 * insert_deduplication_token is derived from the items, and only the same items make the same token.
 */
import { normaliseError, retryable, type TransportResult } from '@wattsplit/wire';

export interface GroupCommitOptions {
  /** Writes running at once. Default 1. */
  maxInFlight?: number;
  /** Most items in one write; one caller's items are never split. Default 5000. */
  maxItems?: number;
  /**
   * Least time between the starts of two writes, in ms; submissions arriving sooner wait and share the
   * next write (a write starts anyway once maxItems are waiting). Default 0.
   */
  minIntervalMs?: number;
  /**
   * With spacing: once the next write may start, hold it while `pending()` says more submissions are on
   * their way (callers still preparing their items), at most `maxMs` past the time it could have started;
   * `poke()` when `pending()` may have changed. A caller that finishes a moment after a write started
   * otherwise waits a whole spacing for the next one.
   */
  gather?: { pending: () => boolean; maxMs: number };
}

export interface GroupOutcome<T> {
  result: TransportResult;
  /** Every item of the write this caller's items went into, in submission order. */
  group: readonly T[];
  /** How many callers shared the write. */
  callers: number;
}

interface Waiting<T> {
  items: readonly T[];
  resolve: (o: GroupOutcome<T>) => void;
}

export class GroupCommit<T> {
  private readonly queue: Waiting<T>[] = [];
  private inFlight = 0;
  private readonly maxInFlight: number;
  private readonly maxItems: number;
  private readonly minIntervalMs: number;
  private readonly gather: GroupCommitOptions['gather'];
  private lastStart = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  /** Writes made and callers served, for metrics and tests. */
  readonly stats = { writes: 0, callers: 0, items: 0 };

  constructor(
    private readonly write: (items: readonly T[]) => Promise<TransportResult>,
    opts: GroupCommitOptions = {},
  ) {
    this.maxInFlight = Math.max(1, Math.floor(opts.maxInFlight ?? 1));
    this.maxItems = Math.max(1, Math.floor(opts.maxItems ?? 5000));
    this.minIntervalMs = Math.max(0, opts.minIntervalMs ?? 0);
    this.gather = opts.gather;
  }

  /** Writes `items` together with whatever else is waiting; never rejects (a thrown error is `retryable`). */
  submit(items: readonly T[]): Promise<GroupOutcome<T>> {
    return new Promise((resolve) => {
      this.queue.push({ items, resolve });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      if (this.minIntervalMs > 0) {
        const wait = this.lastStart + this.minIntervalMs - performance.now();
        if (wait > 0 && this.waitingItems() < this.maxItems) {
          this.timer ??= setTimeout(() => {
            this.timer = undefined;
            this.pump();
          }, Math.ceil(wait));
          return;
        }
        const held = this.gather ? wait + this.gather.maxMs : 0;
        if (this.gather && held > 0 && this.gather.pending() && this.waitingItems() < this.maxItems) {
          // a poke() when the last caller is ready, or the cap
          this.timer ??= setTimeout(() => {
            this.timer = undefined;
            this.pump();
          }, Math.ceil(held));
          return;
        }
        this.lastStart = performance.now();
        if (this.timer) {
          clearTimeout(this.timer);
          this.timer = undefined;
        }
      }
      const take: Waiting<T>[] = [this.queue.shift()!];
      let n = take[0]!.items.length;
      while (this.queue.length > 0 && n + this.queue[0]!.items.length <= this.maxItems) {
        const w = this.queue.shift()!;
        take.push(w);
        n += w.items.length;
      }
      const group = take.flatMap((w) => w.items);
      this.inFlight++;
      this.stats.writes++;
      this.stats.callers += take.length;
      this.stats.items += group.length;
      void this.write(group)
        .catch((e: unknown) => retryable(normaliseError(e, 'STORE_UNAVAILABLE', true), 1000))
        .then((result) => {
          for (const w of take) w.resolve({ result, group, callers: take.length });
        })
        .finally(() => {
          this.inFlight--;
          this.pump();
        });
    }
  }

  /** Looks again at the waiting submissions (after gather.pending() may have changed). */
  poke(): void {
    this.pump();
  }

  /**
   * The earliest moment (performance.now() ms) the next write may start by the spacing: the last write's
   * start + minIntervalMs; undefined without spacing (a write may start at any time).
   */
  nextStartAt(): number | undefined {
    if (this.minIntervalMs <= 0) return undefined;
    return Number.isFinite(this.lastStart) ? this.lastStart + this.minIntervalMs : performance.now();
  }

  private waitingItems(): number {
    let n = 0;
    for (const w of this.queue) n += w.items.length;
    return n;
  }
}

/**
 * IngestDelay: how far behind the collector's ingest is, in seconds — the signal training yields to
 * (training-gate.ts) and `wattsplit_collector_ingest_delay_seconds` on /metrics.
 *
 * Measured on the bus handler calls (TelemetryPipeline wraps each in `track`): a call holds one
 * partition's messages from receipt until they are stored, published and their offsets may be
 * committed. The delay at a moment is the larger of
 * - for every call in flight: now − the bus timestamp of its oldest message (the age of the oldest frame
 *   received and not finished: it grows while a call is stuck), and
 * - for every call that ended in the last `holdMs`: its end − its oldest message's bus timestamp (how old
 *   the oldest frame was when it was done: a collector that handles old frames quickly is still behind).
 * With no frames in `holdMs` the delay is 0: an idle collector is not behind. The bus timestamp is the
 * time the gateway produced the frame (Kafka CreateTime) or the log append time, so the delay is the
 * frame's time in Kafka plus the collector's work on it: consumer lag in seconds, not in messages, and
 * the same figure on every fleet size. Messages without a usable timestamp (≤ 0, not finite) are left out.
 */

/** What training yields to: the ingest delay now, and whether ingest has nothing in hand at all. */
export interface IngestSignal {
  delayS(): number;
  /** No handler call in flight and none ended in the hold window: nothing to protect. */
  idle(): boolean;
}

export class IngestDelay implements IngestSignal {
  private readonly inFlight = new Map<number, number>();
  private nextToken = 0;
  /** Ended calls of the last `holdMs`: [end ms, delay ms], oldest first. */
  private recent: [number, number][] = [];

  constructor(
    /** How long an ended call's delay counts, ms. Default 2000 (two store-write cycles of a spaced collector). */
    readonly holdMs = 2000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Runs `handle` for `messages` (one bus handler call), counting their age while it runs and after. */
  async track<T>(messages: readonly { timestampMs: number }[], handle: () => Promise<T>): Promise<T> {
    let oldest = Infinity;
    for (const m of messages) if (Number.isFinite(m.timestampMs) && m.timestampMs > 0 && m.timestampMs < oldest) oldest = m.timestampMs;
    if (oldest === Infinity) return handle();
    const token = this.nextToken++;
    this.inFlight.set(token, oldest);
    try {
      return await handle();
    } finally {
      this.inFlight.delete(token);
      const end = this.now();
      this.trim(end);
      this.recent.push([end, Math.max(0, end - oldest)]);
    }
  }

  /** The delay now, seconds (see the header). */
  delayS(): number {
    const now = this.now();
    this.trim(now);
    let ms = 0;
    for (const oldest of this.inFlight.values()) ms = Math.max(ms, now - oldest);
    for (const [, d] of this.recent) ms = Math.max(ms, d);
    return ms / 1000;
  }

  idle(): boolean {
    this.trim(this.now());
    return this.inFlight.size === 0 && this.recent.length === 0;
  }

  /** Handler calls in flight now (tests, diagnostics). */
  get callsInFlight(): number {
    return this.inFlight.size;
  }

  private trim(now: number): void {
    let k = 0;
    while (k < this.recent.length && now - this.recent[k]![0] > this.holdMs) k++;
    if (k > 0) this.recent = this.recent.slice(k);
  }
}

/**
 * WallClockCheck: a frame's wall clock far from when the gateway produced it (the bus timestamp, fixed per
 * message, so a redelivery is dated the same way) is a host clock that is wrong, not energy from 1970 or
 * 2100: the frame is dated by the bus timestamp, with a FRAME_CLOCK_IMPLAUSIBLE anomaly.
 *
 * Invariant: the warning is logged once per episode: on the first implausible frame of a host, and again
 * only after a plausible frame of that host ended the episode. Every implausible frame gets the anomaly.
 * A message without a bus timestamp is left as it is.
 */
import type { Anomaly } from '@wattsplit/attribution';
import type { BusMessage, Logger, TelemetryFrame } from '@wattsplit/wire';

export interface WallClockCheckOptions {
  /** Most seconds a frame's wall clock may be ahead of the bus timestamp. Default 300. */
  maxAheadS?: number | undefined;
  /** Most seconds a frame's wall clock may be behind the bus timestamp. Default 30 days. */
  maxBehindS?: number | undefined;
  logger: Logger;
}

export class WallClockCheck {
  /** Hosts in an episode: their last frame's wall clock was implausible. */
  private readonly badClockHosts = new Set<string>();
  private readonly maxAheadS: number;
  private readonly maxBehindS: number;
  private readonly log: Logger;

  constructor(o: WallClockCheckOptions) {
    this.maxAheadS = o.maxAheadS ?? 300;
    this.maxBehindS = o.maxBehindS ?? 30 * 86400;
    this.log = o.logger;
  }

  /** Dates `frame` by the bus timestamp when its wall clock is implausible, and returns the anomaly. */
  dateByBusIfImplausible(frame: TelemetryFrame, m: BusMessage): Anomaly | undefined {
    const busMs = m.timestampMs;
    if (!(busMs > 0)) return undefined;
    const wallMs = Number(frame.wallUnixNs ?? 0) / 1e6;
    const aheadS = (wallMs - busMs) / 1000;
    const maxAhead = this.maxAheadS;
    const maxBehind = this.maxBehindS;
    const host = frame.hostId || m.key;
    if (aheadS <= maxAhead && -aheadS <= maxBehind) {
      this.badClockHosts.delete(host);
      return undefined;
    }
    const message = `host ${host} seq ${String(frame.seq ?? 0)}: wall clock ${new Date(wallMs).toISOString()} is ${aheadS > 0 ? `${Math.round(aheadS)} s ahead of` : `${Math.round(-aheadS)} s behind`} the gateway's ${new Date(busMs).toISOString()} (tolerated: ${maxAhead} s ahead, ${maxBehind} s behind); dated by the gateway's time`;
    if (!this.badClockHosts.has(host)) {
      this.badClockHosts.add(host);
      this.log.warn({ host, seq: frame.seq ?? 0, code: 'FRAME_CLOCK_IMPLAUSIBLE', wallMs, busMs }, message);
    }
    frame.wallUnixNs = busMs * 1e6;
    return { code: 'FRAME_CLOCK_IMPLAUSIBLE', message };
  }
}

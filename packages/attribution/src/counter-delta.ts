/**
 * Delta of one cumulative energy counter between two reads, with wraparound and reset detection.
 *
 * Linux powercap ABI (Documentation/power/powercap/powercap.rst): `energy_uj` is the current energy
 * counter in µJ; it wraps to 0 after reaching `max_energy_range_uj` ("range of the above energy
 * counter in micro-joules"). NVML `nvmlDeviceGetTotalEnergyConsumption`: mJ since the driver was last
 * reloaded, 64-bit, never wraps in practice (max_range 0 on the wire) but restarts on driver reload.
 *
 * Rules:
 * - cur ≥ prev: delta = cur − prev.
 * - cur < prev and the counter has a range: delta = (max − prev) + cur, *if* that is plausible; a
 *   plausible wrap is one whose implied mean power is ≤ maxWatts (or, when no power bound is given,
 *   one that spans at most half the range: sampling far more often than the wrap period is the only
 *   way wraps can be told apart at all).
 * - cur < prev otherwise (no range, or a wrap would be implausible): the counter was reset (driver
 *   reload, reboot, agent restart without a boot id change). There is no usable delta: the caller marks
 *   the interval's source unusable and records an anomaly, never a negative or huge delta.
 * - A forward delta implying more than maxWatts is 'implausible' (bit flip, wrong unit, two counters
 *   swapped): same treatment as a reset.
 */

export interface CounterDeltaOptions {
  /** Seconds between the two reads (monotonic). Needed, with maxWatts, for the plausibility check. */
  durationS?: number;
  /** Joules per counter unit (1e-6 for µJ, 1e-3 for mJ). Default 1. */
  joulesPerUnit?: number;
  /** Highest plausible mean power of this counter, watts (e.g. 1500 for one RAPL package). */
  maxWatts?: number;
}

export type CounterDelta =
  | { readonly kind: 'ok'; readonly delta: number }
  | { readonly kind: 'wrapped'; readonly delta: number }
  | { readonly kind: 'reset'; readonly reason: string }
  | { readonly kind: 'implausible'; readonly delta: number; readonly reason: string };

/** True when the delta is usable for billing ('ok' or 'wrapped'). */
export function isUsableDelta(d: CounterDelta): d is { readonly kind: 'ok' | 'wrapped'; readonly delta: number } {
  return d.kind === 'ok' || d.kind === 'wrapped';
}

/**
 * Delta between two reads of a cumulative counter, in the counter's unit.
 * @param maxRange value at which the counter wraps to 0; 0 = never wraps (64-bit counters).
 */
export function counterDelta(prev: number, cur: number, maxRange: number, opts: CounterDeltaOptions = {}): CounterDelta {
  if (!Number.isFinite(prev) || !Number.isFinite(cur) || prev < 0 || cur < 0) {
    return { kind: 'reset', reason: `counter values must be finite and ≥ 0 (prev=${prev}, cur=${cur})` };
  }
  const jpu = opts.joulesPerUnit ?? 1;
  const { durationS, maxWatts } = opts;
  const powerOf = (d: number): number | undefined =>
    durationS !== undefined && durationS > 0 && maxWatts !== undefined && Number.isFinite(maxWatts) ? (d * jpu) / durationS : undefined;

  if (cur >= prev) {
    const d = cur - prev;
    const w = powerOf(d);
    if (w !== undefined && maxWatts !== undefined && w > maxWatts) {
      return { kind: 'implausible', delta: d, reason: `delta ${d} over ${fmt(durationS)} s implies ${fmt(w)} W > max ${maxWatts} W` };
    }
    return { kind: 'ok', delta: d };
  }
  if (maxRange > 0 && prev <= maxRange) {
    const wrapped = maxRange - prev + cur;
    const w = powerOf(wrapped);
    const plausible = w !== undefined && maxWatts !== undefined ? w <= maxWatts : wrapped <= maxRange / 2;
    if (plausible) return { kind: 'wrapped', delta: wrapped };
    return {
      kind: 'reset',
      reason:
        w !== undefined
          ? `counter went from ${prev} to ${cur}; a wrap at ${maxRange} would imply ${fmt(w)} W > max ${String(maxWatts)} W`
          : `counter went from ${prev} to ${cur}; a wrap at ${maxRange} would span more than half the range`,
    };
  }
  return {
    kind: 'reset',
    reason: maxRange > 0 ? `counter went from ${prev} to ${cur}, above its max_range ${maxRange} before` : `counter went from ${prev} to ${cur} and never wraps`,
  };
}

function fmt(x: number | undefined): string {
  return x === undefined ? '?' : Number(x.toPrecision(6)).toString();
}

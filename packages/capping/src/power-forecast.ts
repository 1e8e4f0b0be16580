/**
 * A short power forecast with an upper bound, from stored history, so the advisor can plan against the
 * load that arrives during a 20 s transfer instead of today's power held flat.
 *
 * Per series (a VM's attributed power, in buckets such as one minute):
 *   level   = mean of the last `recentS` seconds of samples;
 *   trend   = least-squares slope over those samples, W/s (only a rise is extrapolated: a fall is not
 *             banked on), damped to at most `maxTrendS` seconds ahead; none from fewer than
 *             `minTrendSamples` samples or samples spanning less than `minTrendSpanS` seconds (a
 *             VM's first minutes are a ramp, not a trend);
 *   season  = hour-of-day profile from samples older than the recent window: the mean in the hour of
 *             now + t minus the mean in the hour of now (0 where either hour has fewer than
 *             `minSamplesPerHour` samples: then the forecast says its basis is the trend alone);
 *   spread  = √(residual variance around the trend line + variance of the profile's hour of now);
 *   expected(t) = level + trend·min(t, maxTrendS) + season(t);  upper(t) = expected(t) + z · spread.
 * Pure: the caller reads the history (the CLI from the store). Causal: only samples at or before
 * `nowUnixS` are used.
 */
import { WattsplitError } from '@wattsplit/wire';

export interface PowerSample {
  /** Series key: a VM uuid (or a host id). */
  key: string;
  /** Middle of the sample's bucket, unix seconds. */
  tUnixS: number;
  powerW: number;
}

export interface PowerForecastOptions {
  nowUnixS: number;
  horizonS: number;
  /** Seconds of the most recent samples that make the level and trend. Default 900. */
  recentS?: number;
  /** Standard deviations above the expectation for the bound. Default 2. */
  z?: number;
  /** Samples an hour of the profile needs to count. Default 3. */
  minSamplesPerHour?: number;
  /** Extrapolate the trend at most this far ahead, s. Default 120. */
  maxTrendS?: number;
  /** Samples in the recent window a trend needs. Default 5. */
  minTrendSamples?: number;
  /**
   * Seconds the recent samples must span for a trend, default 120: a series younger than that (a VM
   * that just started, a GPU warming up) is a ramp, and a ramp extrapolated over the horizon is not a
   * forecast (a one-minute ramp of 600 W read as 10 W/s predicts kilowatts). Its spread still counts.
   */
  minTrendSpanS?: number;
  /** Offset of local time from UTC, s, for the hour of day. Default 0. */
  utcOffsetS?: number;
}

export interface PowerForecast {
  key: string;
  /** The recent level, W. */
  levelW: number;
  trendWPerS: number;
  spreadW: number;
  basis: 'hour-of-day+trend' | 'trend';
  /** Per second of the horizon, W. */
  expectedW: number[];
  upperW: number[];
  /** max(upperW). */
  upperMaxW: number;
}

export function forecastPower(samples: readonly PowerSample[], o: PowerForecastOptions): Map<string, PowerForecast> {
  const recentS = o.recentS ?? 900;
  const z = o.z ?? 2;
  const minPerHour = o.minSamplesPerHour ?? 3;
  const maxTrendS = o.maxTrendS ?? 120;
  const minTrend = o.minTrendSamples ?? 5;
  const minSpan = o.minTrendSpanS ?? 120;
  const offset = o.utcOffsetS ?? 0;
  const bad = (field: string, value: unknown, why: string): never => {
    throw new WattsplitError('CAP_INPUT_INVALID', `forecastPower: ${field}=${JSON.stringify(value)} ${why}`, { details: { field, value } });
  };
  if (!Number.isInteger(o.horizonS) || o.horizonS < 1) bad('horizonS', o.horizonS, 'must be an integer ≥ 1');
  if (!(recentS > 0)) bad('recentS', recentS, 'must be > 0');
  if (!(z >= 0)) bad('z', z, 'must be ≥ 0');
  const hourOf = (t: number): number => Math.floor((((t + offset) % 86_400) + 86_400) % 86_400 / 3600);
  const byKey = new Map<string, PowerSample[]>();
  for (const s of samples) {
    if (s.tUnixS > o.nowUnixS || !Number.isFinite(s.powerW)) continue;
    byKey.set(s.key, [...(byKey.get(s.key) ?? []), s]);
  }
  const out = new Map<string, PowerForecast>();
  for (const [key, all] of byKey) {
    const recent = all.filter((s) => s.tUnixS > o.nowUnixS - recentS);
    const basisSamples = recent.length > 0 ? recent : [all.reduce((a, b) => (b.tUnixS > a.tUnixS ? b : a))];
    const n = basisSamples.length;
    const mt = basisSamples.reduce((a, s) => a + s.tUnixS, 0) / n;
    const mw = basisSamples.reduce((a, s) => a + s.powerW, 0) / n;
    let sxx = 0;
    let sxy = 0;
    for (const s of basisSamples) {
      sxx += (s.tUnixS - mt) ** 2;
      sxy += (s.tUnixS - mt) * (s.powerW - mw);
    }
    let t0 = Infinity;
    let t1 = -Infinity;
    for (const s of basisSamples) {
      t0 = Math.min(t0, s.tUnixS);
      t1 = Math.max(t1, s.tUnixS);
    }
    const slope = sxx > 0 && n >= minTrend && t1 - t0 >= minSpan ? sxy / sxx : 0;
    // The level at now on the trend line (not the window mean, which lags a rising series).
    const levelW = Math.max(0, mw + slope * (o.nowUnixS - mt));
    let resid = 0;
    for (const s of basisSamples) resid += (s.powerW - (mw + slope * (s.tUnixS - mt))) ** 2;
    const residVar = n > 2 ? resid / (n - 2) : 0;
    // Hour-of-day profile from the older samples.
    const hours = Array.from({ length: 24 }, () => ({ n: 0, sum: 0, sq: 0 }));
    for (const s of all) {
      if (s.tUnixS > o.nowUnixS - recentS) continue;
      const h = hours[hourOf(s.tUnixS)]!;
      h.n++;
      h.sum += s.powerW;
      h.sq += s.powerW ** 2;
    }
    const mean = (h: number): number | undefined => (hours[h]!.n >= minPerHour ? hours[h]!.sum / hours[h]!.n : undefined);
    const nowHour = hourOf(o.nowUnixS);
    const nowMean = mean(nowHour);
    const hourVar = nowMean !== undefined ? Math.max(0, hours[nowHour]!.sq / hours[nowHour]!.n - nowMean ** 2) : 0;
    const spreadW = Math.sqrt(residVar + hourVar);
    const rise = Math.max(0, slope);
    const expectedW: number[] = [];
    const upperW: number[] = [];
    let seasonal = false;
    for (let t = 0; t < o.horizonS; t++) {
      const m = mean(hourOf(o.nowUnixS + t));
      const season = nowMean !== undefined && m !== undefined ? m - nowMean : 0;
      if (season !== 0) seasonal = true;
      const e = Math.max(0, levelW + rise * Math.min(t, maxTrendS) + season);
      expectedW.push(e);
      upperW.push(e + z * spreadW);
    }
    out.set(key, { key, levelW, trendWPerS: slope, spreadW, basis: nowMean !== undefined || seasonal ? 'hour-of-day+trend' : 'trend', expectedW, upperW, upperMaxW: Math.max(...upperW) });
  }
  return out;
}

/**
 * A host's forecast bound per second: its measured power now, plus for each of its VMs how far the
 * VM's bound rises above the VM's power now (never below: a VM forecast to fall is not banked on).
 */
export function hostForecastW(host: { powerW: number; vms: readonly { uuid: string; powerW: number }[] }, forecasts: ReadonlyMap<string, PowerForecast>, horizonS: number): number[] {
  const tl = new Array<number>(horizonS).fill(host.powerW);
  for (const v of host.vms) {
    const f = forecasts.get(v.uuid);
    if (!f) continue;
    for (let t = 0; t < horizonS; t++) tl[t] = tl[t]! + Math.max(0, (f.upperW[t] ?? f.upperMaxW) - v.powerW);
  }
  return tl;
}

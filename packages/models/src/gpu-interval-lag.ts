/**
 * How far a device's reported utilisation lags its energy counter, on the collector's host intervals.
 *
 * NVML (nvml.h, nvmlDeviceGetSamples / nvmlDeviceGetUtilizationRates): a utilisation sample is the "percent of
 * time over the past sample period during which one or more kernels was executing", the period "between 1 second
 * and 1/6 second depending on the product". A sample stamped t describes time before t, so the mean of the
 * samples the agent collects over an interval (t0, t1] (`gpu_util_mean_pct`) describes about (t0 − τ, t1 − τ]
 * while the energy delta describes (t0, t1]. τ is a property of the device and driver, not of a workload; it is
 * estimated from the intervals themselves, as the replay does from reads (`gpuUtilLagReads`):
 *
 *   busy over (t0, t1] ≈ (1 − f)·m_i + f·m_{i+1},  f = τ / dt_i
 *
 * (m_i the interval's reported busy fraction, m_{i+1} the next contiguous interval's), and τ is the shift in
 * [0, min(1 s, the shortest interval seen)] that maximises the correlation between the intervals' power
 * E_i / dt_i and that aligned busy fraction. The correlation is a ratio of quadratics in τ, so ten running sums
 * hold everything; they are the estimator's whole state (`exportState` / `fromState`). τ = 0 until the sums
 * vary (a device that never reports utilisation, or one that never changes load).
 */
import type { LearnerStateReader } from '@wattsplit/attribution';

/** The estimator's sums as plain JSON: n pairs of contiguous intervals; x = power, a = m_i, d = (m_{i+1} − m_i)/dt_i. */
export interface GpuIntervalLagState {
  n: number;
  sx: number;
  sxx: number;
  sa: number;
  saa: number;
  sxa: number;
  sd: number;
  sdd: number;
  sad: number;
  sxd: number;
  /** Shortest interval of the pairs, s (τ is looked for up to it and up to 1 s); 0 before the first pair. */
  minDtS: number;
}

/** Steps of the search over τ in [0, τmax] (a resolution, not a property of any trace). */
const STEPS = 200;

export class GpuIntervalLagEstimator {
  private s: GpuIntervalLagState = { n: 0, sx: 0, sxx: 0, sa: 0, saa: 0, sxa: 0, sd: 0, sdd: 0, sad: 0, sxd: 0, minDtS: 0 };
  private cached: number | undefined;

  /**
   * One pair of contiguous intervals: `powerW` = E_i / dt_i of the first, `busy` / `nextBusy` their reported busy
   * fractions (0..1), `dtS` the first one's length. Non-finite values are ignored.
   */
  add(powerW: number, busy: number, nextBusy: number, dtS: number): void {
    if (![powerW, busy, nextBusy].every(Number.isFinite) || !(dtS > 0 && Number.isFinite(dtS))) return;
    const s = this.s;
    const d = (nextBusy - busy) / dtS;
    s.n++;
    s.sx += powerW;
    s.sxx += powerW * powerW;
    s.sa += busy;
    s.saa += busy * busy;
    s.sxa += powerW * busy;
    s.sd += d;
    s.sdd += d * d;
    s.sad += busy * d;
    s.sxd += powerW * d;
    s.minDtS = s.minDtS > 0 ? Math.min(s.minDtS, dtS) : dtS;
    this.cached = undefined;
  }

  /** The lag τ, seconds, that maximises corr(E_i/dt_i, m_i + τ·(m_{i+1} − m_i)/dt_i) over the pairs so far. */
  lagS(): number {
    if (this.cached !== undefined) return this.cached;
    const s = this.s;
    let best = 0;
    if (s.n > 2) {
      const vx = s.sxx - (s.sx * s.sx) / s.n;
      const tmax = Math.min(1, s.minDtS);
      let bestCorr = -Infinity;
      for (let k = 0; k <= STEPS && vx > 0; k++) {
        const t = (tmax * k) / STEPS;
        const sy = s.sa + t * s.sd;
        const syy = s.saa + 2 * t * s.sad + t * t * s.sdd;
        const sxy = s.sxa + t * s.sxd;
        const vy = syy - (sy * sy) / s.n;
        if (!(vy > 0)) continue;
        const c = (sxy - (s.sx * sy) / s.n) / Math.sqrt(vx * vy);
        if (c > bestCorr + 1e-12) {
          bestCorr = c;
          best = t;
        }
      }
    }
    this.cached = best;
    return best;
  }

  exportState(): GpuIntervalLagState {
    return { ...this.s };
  }

  /** An estimator holding exported sums; a bad field throws LEARNER_STATE_INVALID through `r` naming `path`. */
  static fromState(state: unknown, r: LearnerStateReader, path: string): GpuIntervalLagEstimator {
    const o = r.object(state, path);
    const num = (k: keyof GpuIntervalLagState, min?: number): number => r.number(o[k], `${path}.${k}`, min === undefined ? {} : { min });
    const e = new GpuIntervalLagEstimator();
    e.s = {
      n: r.number(o.n, `${path}.n`, { integer: true, min: 0 }),
      sx: num('sx'),
      sxx: num('sxx', 0),
      sa: num('sa'),
      saa: num('saa', 0),
      sxa: num('sxa'),
      sd: num('sd'),
      sdd: num('sdd', 0),
      sad: num('sad'),
      sxd: num('sxd'),
      minDtS: num('minDtS', 0),
    };
    return e;
  }
}

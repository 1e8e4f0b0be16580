/**
 * Learns each host's static (idle) power per source from its own intervals, so the idle split does not
 * depend on a hand-configured number.
 *
 * For every interval it keeps (x, P): P = measured / duration (W) and x = the load that drives that source
 * (host CPU busy fraction for rapl and bmc_rest, mean device utilisation for gpu). Over the last `window`
 * usable intervals it fits P ≈ a + b·x + c·x² by least squares (linear when x barely varies) and takes
 * the intercept a — the power at zero load — bounded to [0, q-quantile of P] (static power cannot exceed
 * the lowest powers actually seen). With fewer than `minSamples` intervals, or a degenerate fit, the
 * configured fallback is used. Memory: window × 3 sources × 2 numbers per host.
 */
import { WattsplitError } from '@wattsplit/wire';
import { SOURCES } from './conservation.js';
import type { HostInterval, SourceName, StaticPowerEstimate } from './types.js';

export interface StaticPowerLearnerOptions {
  /** Configured static watts per source, used until enough data is seen. */
  fallback: Record<SourceName, number>;
  /** Intervals kept per host. Default 900. */
  window?: number;
  /** Intervals needed before learning replaces the fallback. Default 60. */
  minSamples?: number;
  /** Upper bound quantile of observed power. Default 0.05. */
  quantile?: number;
}

class Ring {
  readonly x: Float64Array;
  readonly y: Float64Array;
  size = 0;
  next = 0;
  constructor(cap: number) {
    this.x = new Float64Array(cap);
    this.y = new Float64Array(cap);
  }
  push(x: number, y: number): void {
    this.x[this.next] = x;
    this.y[this.next] = y;
    this.next = (this.next + 1) % this.x.length;
    if (this.size < this.x.length) this.size++;
  }
}

export class StaticPowerLearner {
  private readonly hosts = new Map<string, Record<SourceName, Ring>>();
  private readonly fallback: Record<SourceName, number>;
  private readonly window: number;
  private readonly minSamples: number;
  private readonly q: number;

  constructor(opts: StaticPowerLearnerOptions) {
    for (const s of SOURCES) {
      const w = opts.fallback[s];
      if (!(Number.isFinite(w) && w >= 0)) {
        throw new WattsplitError('CONFIG_INVALID', `static power fallback.${s}=${w} must be a finite number of watts ≥ 0`, { details: { field: `fallback.${s}`, value: w } });
      }
    }
    this.fallback = { ...opts.fallback };
    this.window = opts.window ?? 900;
    this.minSamples = Math.min(opts.minSamples ?? 60, this.window);
    this.q = opts.quantile ?? 0.05;
    if (!(this.window >= 3)) throw new WattsplitError('CONFIG_INVALID', `static power window=${this.window} must be ≥ 3`, { details: { field: 'window', value: this.window } });
  }

  observe(iv: HostInterval): void {
    if (!(iv.durationS > 0)) return;
    let rings = this.hosts.get(iv.hostId);
    if (!rings) {
      rings = { rapl: new Ring(this.window), gpu: new Ring(this.window), bmc_rest: new Ring(this.window) };
      this.hosts.set(iv.hostId, rings);
    }
    const unusable = new Set(iv.unusableSources ?? []);
    const cpuTotal = iv.hostCpu.busySeconds + iv.hostCpu.idleSeconds;
    const busy = cpuTotal > 0 ? iv.hostCpu.busySeconds / cpuTotal : 0;
    let util = 0;
    for (const g of iv.gpus) util += g.gpuUtilPct / 100;
    util = iv.gpus.length > 0 ? util / iv.gpus.length : 0;
    for (const s of SOURCES) {
      if (unusable.has(s)) continue;
      if (s === 'gpu' && iv.gpus.length === 0) continue;
      rings[s].push(s === 'gpu' ? util : busy, iv.measured[s] / iv.durationS);
    }
  }

  /** The current estimate for a host (the fallback for a host never seen). */
  estimate(hostId: string): StaticPowerEstimate {
    const rings = this.hosts.get(hostId);
    const watts: Record<SourceName, number> = { ...this.fallback };
    const learned: string[] = [];
    if (rings) {
      for (const s of SOURCES) {
        const r = rings[s];
        if (r.size < this.minSamples) continue;
        const w = fitIntercept(r.x.subarray(0, r.size), r.y.subarray(0, r.size), this.q);
        if (w !== undefined) {
          watts[s] = w;
          learned.push(s);
        }
      }
    }
    const configured = SOURCES.filter((s) => !learned.includes(s));
    const origin = learned.length === 0 ? 'configured' : configured.length === 0 ? `learned:${learned.join(',')}` : `learned:${learned.join(',')};configured:${configured.join(',')}`;
    return { watts, origin };
  }
}

/** Intercept of a least-squares quadratic (or linear) fit, bounded to [0, q-quantile of y]; undefined when degenerate. */
export function fitIntercept(x: ArrayLike<number>, y: ArrayLike<number>, q = 0.05): number | undefined {
  const n = x.length;
  if (n < 3) return undefined;
  const ys = Float64Array.from(y).sort();
  const cap = ys[Math.min(n - 1, Math.max(0, Math.floor(q * (n - 1))))]!;
  let xmin = Infinity;
  let xmax = -Infinity;
  for (let i = 0; i < n; i++) {
    xmin = Math.min(xmin, x[i]!);
    xmax = Math.max(xmax, x[i]!);
  }
  let a: number | undefined;
  if (xmax - xmin < 0.02) {
    a = cap; // no load variation: the low quantile is the best we know
  } else {
    // normal equations for y = a + b x + c x² (quadratic only with enough spread)
    const deg = xmax - xmin >= 0.1 && n >= 10 ? 2 : 1;
    const k = deg + 1;
    const m: number[][] = Array.from({ length: k }, () => new Array<number>(k + 1).fill(0));
    for (let i = 0; i < n; i++) {
      const xi = x[i]!;
      const pw = [1, xi, xi * xi];
      for (let r = 0; r < k; r++) {
        for (let c = 0; c < k; c++) m[r]![c]! += pw[r]! * pw[c]!;
        m[r]![k]! += pw[r]! * y[i]!;
      }
    }
    const sol = solve(m);
    a = sol?.[0];
  }
  if (a === undefined || !Number.isFinite(a)) return undefined;
  return Math.min(Math.max(0, a), cap);
}

/** Gaussian elimination with partial pivoting on an augmented k×(k+1) matrix. */
function solve(m: number[][]): number[] | undefined {
  const k = m.length;
  for (let col = 0; col < k; col++) {
    let piv = col;
    for (let r = col + 1; r < k; r++) if (Math.abs(m[r]![col]!) > Math.abs(m[piv]![col]!)) piv = r;
    if (Math.abs(m[piv]![col]!) < 1e-12) return undefined;
    [m[col], m[piv]] = [m[piv]!, m[col]!];
    for (let r = 0; r < k; r++) {
      if (r === col) continue;
      const f = m[r]![col]! / m[col]![col]!;
      for (let c = col; c <= k; c++) m[r]![c]! -= f * m[col]![c]!;
    }
  }
  return m.map((row, i) => row[k]! / row[i]!);
}

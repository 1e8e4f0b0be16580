/**
 * Each host's static power re-estimated from its own lowest-load intervals (issue 12: "host static first").
 *
 * Why: the class fit's per-host intercept is where the fit puts whatever its shape cannot express. Hosts are
 * never idle, so the intercept is an extrapolation from loads of 5–80 %, and where real per-core power is
 * concave in load (turbo bins by active cores, SMT siblings, uncore power that grows sub-linearly with memory
 * traffic, neighbours slowing each other) the fitted curve, averaged over all loads, is too flat near zero and
 * its intercept too high. It also trades off against terms that barely move (the hypervisor's CPU time, memory
 * traffic): on development fleets, fixing the static at the true idle moved the hypervisor's fitted W per core
 * from 3.4 to 13.6 at almost the same residual. Measured on development fleets (`benchmarks/accuracy-filter.mjs
 * --static`, seeds 1, 101–103 and development-only family mixes): the intercept was +6.2 W high on average
 * (|error| 6.6 W, up to +20 W).
 *
 * How: for each host, order its training intervals by the model's predicted dynamic power D (everything but
 * the intercept) and take the lowest `lowFraction`; there, fit P = S + k·D by least squares. That is a local
 * linear extrapolation to zero from the loads closest to zero, with the model's per-VM weighting of CPU time
 * (host CPU busy alone mixes VMs that differ several-fold in W per core), and k free so the local slope may
 * differ from the class curve's. The local intercept is noisy (a few dozen points, a short lever), so it is
 * combined with the class fit's by inverse variance: the local one's variance from the regression, the class
 * fit's a structural `structuralSdW`² (how wrong an extrapolated intercept typically is, not its sampling
 * error, which is tiny). A host with little low-load history keeps the class fit's value; one with a long
 * clean low-load history moves to its own. The result is bounded to [0, the host's lowest measured power].
 * Development fleets: |error| 6.6 → 4.1 W on average; the bias (+6.2 W) is not removed (+3.4 W): the lowest
 * loads seen are still 5–10 % of the host, and per-core power keeps rising below them.
 */
import type { VmFeatures, AdditiveModelJson, ModelSource } from './additive-model.js';
import { staticPowerW, termPowers } from './additive-model.js';

export interface StaticAnchorOptions {
  /** Share of a host's training intervals, lowest predicted dynamic power first, the local fit uses. Default 0.25. */
  lowFraction?: number;
  /** Structural sd of the class fit's intercept, W. Default 4. */
  structuralSdW?: number;
  /** Fewest intervals for a local fit. Default 20. */
  minIntervals?: number;
}

export interface StaticAnchorResult {
  hostId: string;
  /** The class fit's intercept, the local low-load intercept (± sd) and the combination, W. */
  fitW: number;
  localW: number | undefined;
  localSdW: number | undefined;
  staticW: number;
  intervals: number;
}

/**
 * Re-estimates `model.sources[source].hostStaticW` in place (and the class's `staticW`, the interval-weighted
 * mean of the hosts' own). `rows[r]` is one training interval: its host, terms (as fitted) and measured power (W).
 */
export function anchorStaticToLowLoad(model: AdditiveModelJson, source: ModelSource, rows: readonly { hostId: string; terms: readonly VmFeatures[]; powerW: number }[], opts: StaticAnchorOptions = {}): StaticAnchorResult[] {
  const w = model.sources[source];
  const own = w.hostStaticW;
  if (!own) return [];
  const q = opts.lowFraction ?? 0.25;
  const sg = opts.structuralSdW ?? 4;
  const minN = opts.minIntervals ?? 20;
  const byHost = new Map<string, { d: number; p: number }[]>();
  for (const r of rows) {
    if (!(r.powerW > 0) || !Number.isFinite(r.powerW)) continue;
    let d = 0;
    for (const g of termPowers(model, source, r.terms)) d += g;
    let l = byHost.get(r.hostId);
    if (!l) byHost.set(r.hostId, (l = []));
    l.push({ d, p: r.powerW });
  }
  const out: StaticAnchorResult[] = [];
  let sum = 0;
  let cnt = 0;
  for (const [hostId, pts] of byHost) {
    const fitW = staticPowerW(model, source, hostId);
    let staticW = fitW;
    let localW: number | undefined;
    let localSdW: number | undefined;
    pts.sort((a, b) => a.d - b.d);
    const low = pts.slice(0, Math.floor(q * pts.length));
    if (own[hostId] !== undefined && low.length >= minN) {
      const n = low.length;
      let mx = 0;
      let my = 0;
      for (const x of low) {
        mx += x.d;
        my += x.p;
      }
      mx /= n;
      my /= n;
      let sxx = 0;
      let sxy = 0;
      for (const x of low) {
        sxx += (x.d - mx) ** 2;
        sxy += (x.d - mx) * (x.p - my);
      }
      if (sxx > 1e-9) {
        const k = sxy / sxx;
        const s = my - k * mx;
        let sse = 0;
        for (const x of low) sse += (x.p - s - k * x.d) ** 2;
        const v = (sse / (n - 2)) * (1 / n + (mx * mx) / sxx);
        if (Number.isFinite(s) && v > 0 && Number.isFinite(v)) {
          localW = s;
          localSdW = Math.sqrt(v);
          const vg = sg * sg;
          staticW = (fitW / vg + s / v) / (1 / vg + 1 / v);
        }
      }
      const pMin = pts.reduce((m, x) => Math.min(m, x.p), Infinity);
      staticW = Math.min(Math.max(0, staticW), pMin);
      own[hostId] = staticW;
    }
    sum += staticW * pts.length;
    cnt += pts.length;
    out.push({ hostId, fitW, localW, localSdW, staticW, intervals: low.length });
  }
  if (cnt > 0) w.staticW = sum / cnt;
  return out;
}

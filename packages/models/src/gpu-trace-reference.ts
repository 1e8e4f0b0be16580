/**
 * SCORING ONLY — reads ground truth. A port of ../shared/data/gpu/reference.py: each tenant's reference
 * dynamic energy over the trace's `mix` segments, from its solo calibration phases (energy per unit of
 * work above the idle-with-contexts power) and its completed work in each segment, scaled so that a
 * segment's references sum to its measured energy minus idle. Attribution code never imports this: it
 * is reachable only through the `@wattsplit/models/scoring` entry point (benchmarks and tests).
 */
import { parseNvmlTrace, parseNvmlTraceGroundTruth } from '@wattsplit/wire';
import type { GpuReplayResult } from './gpu-replay.js';

export interface GpuReferenceSegment {
  t0: number;
  t1: number;
  dynamicJoules: number;
  ref: Record<string, number>;
  /** NVML per-process sample count per tenant in the segment (for the time-share baseline). */
  sampleCounts: Record<string, number>;
}

export interface GpuReference {
  tenants: string[];
  idleWithContextsW: number;
  joulesPerWork: Record<string, number>;
  segments: GpuReferenceSegment[];
  /** Σ over mix segments. */
  totals: Record<string, number>;
  /** NVML sample-share baseline over the same segments (reference.py's A1). */
  sampleShareBaseline: Record<string, number>;
}

interface Row {
  t: number;
  energyMj: number;
  phase: string;
  active: string[];
  work: Record<string, number>;
  procPids: number[];
}

export interface GpuReferenceOptions {
  /**
   * Idle power and energy per unit of work from another trace (e.g. the full trace when this one had a
   * kernel's solo phases cut out for leave-one-kernel-out); default: this trace's own calibration phases.
   */
  calibration?: { idleWithContextsW: number; joulesPerWork: Record<string, number> };
}

export function gpuTraceReference(text: string, opts: GpuReferenceOptions = {}): GpuReference {
  const tr = parseNvmlTrace(text);
  const gt = parseNvmlTraceGroundTruth(text);
  const ten = tr.header.tenants;
  const rows: Row[] = tr.samples.map((s, i) => ({ ...gt.samples[i]!, t: s.t, energyMj: s.energyMj, procPids: s.procUtil.map((p) => p.pid) }));
  const segs: Array<{ key: string; phase: string; rows: Row[] }> = [];
  for (const r of rows) {
    const key = `${r.phase}|${r.active.join(',')}`;
    const cur = segs[segs.length - 1];
    if (cur?.key === key) cur.rows.push(r);
    else segs.push({ key, phase: r.phase, rows: [r] });
  }
  let E = 0;
  let T = 0;
  for (const s of segs) {
    if (s.phase !== 'idle' || s.rows.length <= 5) continue;
    E += (s.rows[s.rows.length - 1]!.energyMj - s.rows[0]!.energyMj) / 1000;
    T += s.rows[s.rows.length - 1]!.t - s.rows[0]!.t;
  }
  const pIdle = opts.calibration?.idleWithContextsW ?? E / T;
  const e: Record<string, number> = { ...opts.calibration?.joulesPerWork };
  for (const k of opts.calibration ? [] : ten) {
    let Ek = 0;
    let Wk = 0;
    for (const s of segs) {
      if (s.phase !== `solo:${k}`) continue;
      const a = s.rows[0]!;
      const b = s.rows[s.rows.length - 1]!;
      Ek += (b.energyMj - a.energyMj) / 1000 - pIdle * (b.t - a.t);
      Wk += (b.work[k] ?? 0) - (a.work[k] ?? 0);
    }
    e[k] = Ek / Wk;
  }
  const out: GpuReferenceSegment[] = [];
  const totals: Record<string, number> = Object.fromEntries(ten.map((k) => [k, 0]));
  const base: Record<string, number> = Object.fromEntries(ten.map((k) => [k, 0]));
  segs.forEach((s, i) => {
    if (s.phase !== 'mix' || s.rows.length < 2) return;
    const a = s.rows[0]!;
    const end = segs[i + 1]?.rows[0] ?? s.rows[s.rows.length - 1]!;
    const dyn = (end.energyMj - a.energyMj) / 1000 - pIdle * (end.t - a.t);
    let tot = 0;
    const raw: Record<string, number> = {};
    for (const k of ten) tot += raw[k] = ((end.work[k] ?? 0) - (a.work[k] ?? 0)) * e[k]!;
    const ref: Record<string, number> = {};
    const cnt: Record<string, number> = Object.fromEntries(ten.map((k) => [k, 0]));
    for (const r of s.rows) for (const pid of r.procPids) { const k = tr.header.pids[pid]; if (k !== undefined) cnt[k] = (cnt[k] ?? 0) + 1; }
    const ctot = Object.values(cnt).reduce((x, y) => x + y, 0);
    for (const k of ten) {
      ref[k] = tot > 0 ? (raw[k]! / tot) * dyn : 0;
      totals[k] = totals[k]! + ref[k];
      if (ctot > 0) base[k] = base[k]! + (dyn * cnt[k]!) / ctot;
    }
    out.push({ t0: a.t, t1: end.t, dynamicJoules: dyn, ref, sampleCounts: cnt });
  });
  return { tenants: ten, idleWithContextsW: pIdle, joulesPerWork: e, segments: out, totals, sampleShareBaseline: base };
}

/** Σ of a replay's per-tenant dynamic energy over the reference's mix span [first mix t0, last mix t1], windows prorated by overlap. */
export function replayDynamicOverMix(replay: GpuReplayResult, ref: GpuReference): Record<string, number> {
  const out: Record<string, number> = Object.fromEntries(ref.tenants.map((k) => [k, 0]));
  if (ref.segments.length === 0) return out;
  const ms = ref.segments[0]!.t0;
  const me = ref.segments[ref.segments.length - 1]!.t1;
  for (const w of replay.windows) {
    const dt = w.t1 - w.t0;
    const ov = dt > 0 ? Math.max(0, Math.min(w.t1, me) - Math.max(w.t0, ms)) / dt : 0;
    if (ov <= 0) continue;
    for (const [k, v] of Object.entries(w.tenants)) out[k] = (out[k] ?? 0) + ov * v.dynamic_joules;
  }
  return out;
}

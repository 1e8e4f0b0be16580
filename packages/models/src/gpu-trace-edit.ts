/**
 * SCORING ONLY — edits recorded NVML traces, ground truth included, to make held-out variants of a trace
 * for robustness checks (benchmarks/accuracy-gpu.mjs, tests). Reachable only through
 * `@wattsplit/models/scoring`: nothing on the attribution path imports it.
 *
 * Every edit re-sequences real reads: a read is kept as its deltas from the read before it in the source
 * trace (seconds, mJ, work units) and the output rebuilds the cumulative counters, timestamps and NVML
 * process-sample timestamps from those deltas, so every counter stays monotonic and every read's energy
 * is the energy that was really measured. Variants:
 * - `resequenceNvmlTrace`: reads in any order (pieces of the source, repeated or left out);
 * - `resampleMixSchedule`: the `mix` part cut into segments of another length (0.5 s … 20 s) and shuffled,
 *   the calibration phases (idle, solo) kept where they were;
 * - `withoutPhases`: phases removed (e.g. a kernel's solo calibration, for leave-one-kernel-out);
 * - `dropReads`: missed NVML reads (their samples arrive with the next read, as
 *   nvmlDeviceGetProcessUtilization returns every sample since the last seen timestamp) and lost samples;
 * - `rescaleTenant`: one kernel made `factor` times as power-hungry, using the reference's per-segment
 *   energy of that kernel (a synthetic kernel: its truth is the scaled reference, by construction).
 */
import { mulberry32, type HostInterval } from '@wattsplit/attribution';
import { WattsplitError, type NvmlTrace } from '@wattsplit/wire';
import { gpuTraceReference } from './gpu-trace-reference.js';

/** One raw trace line (observable and ground-truth fields). */
export interface RawNvmlRead {
  t: number;
  energy_mj: number;
  phase: string;
  active: string[];
  work: Record<string, number>;
  proc_util: Array<{ pid: number; ts: number; [k: string]: unknown }>;
  [k: string]: unknown;
}

export interface RawNvmlTrace {
  header: Record<string, unknown> & { tenants: string[] };
  reads: RawNvmlRead[];
}

export function parseRawNvmlTrace(text: string): RawNvmlTrace {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const header = JSON.parse(lines[0] ?? '{}') as RawNvmlTrace['header'];
  if (!Array.isArray(header.tenants)) throw new WattsplitError('TRACE_INVALID', 'trace edit: line 1 is not a trace header with "tenants"');
  return { header, reads: lines.slice(1).map((l) => JSON.parse(l) as RawNvmlRead) };
}

export function formatRawNvmlTrace(tr: RawNvmlTrace): string {
  return [JSON.stringify(tr.header), ...tr.reads.map((r) => JSON.stringify(r))].join('\n') + '\n';
}

/**
 * The reads of `src` at `order` (indices into src.reads, any order, repeats allowed), each carrying its
 * deltas from its own predecessor in `src`; the first output read keeps its absolute values. Read 0 of the
 * source has no predecessor: it contributes a 0.1 s, 0 J step when it is not first.
 */
export function resequenceNvmlTrace(src: RawNvmlTrace, order: number[]): RawNvmlTrace {
  const out: RawNvmlRead[] = [];
  let prev: RawNvmlRead | undefined;
  for (const i of order) {
    const r = src.reads[i];
    if (!r) throw new WattsplitError('CONFIG_INVALID', `trace edit: read ${i} out of range`);
    const before = src.reads[i - 1];
    if (!prev) {
      prev = structuredClone(r);
      out.push(prev);
      continue;
    }
    const dt = before ? r.t - before.t : 0.1;
    const t = prev.t + dt;
    const shiftUs = Math.round((t - r.t) * 1e6);
    const work: Record<string, number> = {};
    for (const k of Object.keys(r.work)) work[k] = (prev.work[k] ?? 0) + (before ? (r.work[k] ?? 0) - (before.work[k] ?? 0) : 0);
    const next: RawNvmlRead = {
      ...structuredClone(r),
      t,
      energy_mj: prev.energy_mj + (before ? r.energy_mj - before.energy_mj : 0),
      work,
      proc_util: r.proc_util.map((p) => ({ ...p, ts: p.ts + shiftUs })),
    };
    out.push(next);
    prev = next;
  }
  return { header: src.header, reads: out };
}

interface Run {
  key: string;
  phase: string;
  from: number;
  to: number;
}

function runs(src: RawNvmlTrace): Run[] {
  const out: Run[] = [];
  src.reads.forEach((r, i) => {
    const key = `${r.phase}|${r.active.join(',')}`;
    const cur = out[out.length - 1];
    if (cur?.key === key) cur.to = i + 1;
    else out.push({ key, phase: r.phase, from: i, to: i + 1 });
  });
  return out;
}

function range(a: number, b: number): number[] {
  return Array.from({ length: Math.max(0, b - a) }, (_, k) => a + k);
}

function shuffle<T>(xs: T[], rnd: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

/**
 * The mix part re-cut into segments of `segmentS` seconds and shuffled (seeded): shorter segments are
 * pieces of the source's segments; longer ones join the source segments that ran the same tenant set, in
 * their order (a set with less time gives fewer or shorter segments). Reads before the first and after
 * the last mix read stay where they were.
 */
export function resampleMixSchedule(src: RawNvmlTrace, opts: { segmentS: number; seed: number }): RawNvmlTrace {
  const rs = runs(src);
  const mix = rs.filter((r) => r.phase === 'mix');
  if (mix.length === 0) return resequenceNvmlTrace(src, range(0, src.reads.length));
  const first = mix[0]!.from;
  const last = mix[mix.length - 1]!.to;
  const readS = (src.reads[src.reads.length - 1]!.t - src.reads[0]!.t) / Math.max(1, src.reads.length - 1);
  const per = Math.max(1, Math.round(opts.segmentS / readS));
  const bySet = new Map<string, number[]>();
  for (const r of mix) {
    const l = bySet.get(r.key) ?? [];
    l.push(...range(r.from, r.to));
    bySet.set(r.key, l);
  }
  const pieces: number[][] = [];
  for (const reads of bySet.values()) for (let k = 0; k < reads.length; k += per) pieces.push(reads.slice(k, k + per));
  const order = [...range(0, first), ...shuffle(pieces, mulberry32(opts.seed)).flat(), ...range(last, src.reads.length)];
  return resequenceNvmlTrace(src, order);
}

/** The trace without the reads of the phases `drop` names (e.g. `solo:axpy_hbm`), stitched. */
export function withoutPhases(src: RawNvmlTrace, drop: string[]): RawNvmlTrace {
  const gone = new Set(drop);
  return resequenceNvmlTrace(src, range(0, src.reads.length).filter((i) => !gone.has(src.reads[i]!.phase)));
}

/**
 * Missed reads: each read is dropped with probability `readFraction` (its energy lands in the next read's
 * delta; its process samples arrive with the next read), and each process sample is lost with probability
 * `sampleFraction`.
 */
export function dropReads(src: RawNvmlTrace, opts: { readFraction: number; sampleFraction: number; seed: number }): RawNvmlTrace {
  const rnd = mulberry32(opts.seed);
  const out: RawNvmlRead[] = [];
  let carried: RawNvmlRead['proc_util'] = [];
  src.reads.forEach((r, i) => {
    const samples = [...carried, ...r.proc_util].filter(() => rnd() >= opts.sampleFraction);
    if (i > 0 && i < src.reads.length - 1 && rnd() < opts.readFraction) {
      carried = samples;
      return;
    }
    carried = [];
    out.push({ ...structuredClone(r), proc_util: samples });
  });
  return { header: src.header, reads: out };
}

/**
 * Tenant `tenant` made `factor` times as power-hungry: every read of a mix segment gains (factor − 1) × the
 * reference's energy of that tenant in the segment, prorated by the read's duration, and every read of its
 * solo phases (factor − 1) × its energy above the idle-with-contexts power. The reference of the result
 * gives that tenant factor × its old reference and leaves the others' unchanged.
 */
export function rescaleTenant(src: RawNvmlTrace, tenant: string, factor: number): RawNvmlTrace {
  const ref = gpuTraceReference(formatRawNvmlTrace(src));
  const addJ = new Array<number>(src.reads.length).fill(0);
  const rs = runs(src);
  rs.forEach((run, ri) => {
    const endIdx = rs[ri + 1]?.from ?? run.to - 1;
    const t0 = src.reads[run.from]!.t;
    const t1 = src.reads[endIdx]!.t;
    if (run.phase === `solo:${tenant}`) {
      for (let i = run.from + 1; i <= endIdx; i++) {
        const a = src.reads[i - 1]!;
        const b = src.reads[i]!;
        addJ[i] = (factor - 1) * Math.max(0, (b.energy_mj - a.energy_mj) / 1000 - ref.idleWithContextsW * (b.t - a.t));
      }
    } else if (run.phase === 'mix') {
      const seg = ref.segments.find((s) => Math.abs(s.t0 - t0) < 1e-6);
      const J = seg?.ref[tenant] ?? 0;
      if (!(J > 0) || !(t1 > t0)) return;
      for (let i = run.from + 1; i <= endIdx; i++) addJ[i] = ((factor - 1) * J * (src.reads[i]!.t - src.reads[i - 1]!.t)) / (t1 - t0);
    }
  });
  let extra = 0;
  const reads = src.reads.map((r, i) => {
    extra += addJ[i]!;
    return { ...structuredClone(r), energy_mj: Math.round(r.energy_mj + extra * 1000) };
  });
  return { header: src.header, reads };
}

/** Tenants renamed (header, pid map and per-read labels): attribution must not depend on names. */
export function renameTenants(src: RawNvmlTrace, rename: Record<string, string>): RawNvmlTrace {
  const n = (t: string): string => rename[t] ?? t;
  const pids = Object.fromEntries(Object.entries(src.header.pids as Record<string, string>).map(([p, t]) => [p, n(t)]));
  const header = { ...src.header, tenants: src.header.tenants.map(n), pids };
  const reads = src.reads.map((r) => ({
    ...structuredClone(r),
    phase: r.phase.startsWith('solo:') ? `solo:${n(r.phase.slice(5))}` : r.phase,
    active: r.active.map(n),
    work: Object.fromEntries(Object.entries(r.work).map(([k, v]) => [n(k), v])),
    proc_util: r.proc_util.map((p) => (typeof p.tenant === 'string' ? { ...p, tenant: n(p.tenant) } : p)),
  }));
  return { header, reads };
}

/**
 * The trace as the collector sees it live: host intervals of `intervalS` built the way the agent's GPU
 * sampler (packages/agent/src/gpu-sampler.ts) aggregates NVML reads into a frame — per VM (tenant): mean SM
 * and memory utilisation over its process samples, their count, used memory, whether it holds a context;
 * per device: the energy counter's delta, the utilisation of the read closing the interval (one NVML
 * read per frame) and, unless `deviceUtilSamples` is false, the mean of the utilisation reads inside the
 * interval with their count — what the agent reports from nvmlDeviceGetSamples(NVML_GPU_UTILIZATION_SAMPLES),
 * the trace's 10 Hz `gpu_util` reads standing in for the driver's samples (a plain mean, as the agent takes
 * it). Observable fields only. For checking GpuTimeSliceMethod on real hardware data.
 */
export function nvmlTraceHostIntervals(trace: NvmlTrace, intervalS = 1, hostId = 'h100-trace', opts: { deviceUtilSamples?: boolean } = {}): HostInterval[] {
  const withSamples = opts.deviceUtilSamples ?? true;
  const S = trace.samples;
  const out: HostInterval[] = [];
  const device = '0000:17:00.0';
  let start = 0;
  let seq = 0;
  for (let i = 1; i < S.length; i++) {
    const a = S[start]!;
    const b = S[i]!;
    if (b.t - a.t < intervalS - 1e-6 && i < S.length - 1) continue;
    const acc = new Map<string, { sm: number; mem: number; n: number; used: number; ctx: boolean }>();
    const get = (pid: number): { sm: number; mem: number; n: number; used: number; ctx: boolean } => {
      const t = trace.header.pids[pid] ?? `pid:${pid}`;
      let x = acc.get(t);
      if (!x) acc.set(t, (x = { sm: 0, mem: 0, n: 0, used: 0, ctx: false }));
      return x;
    };
    let utilSum = 0;
    for (let k = start + 1; k <= i; k++) {
      utilSum += S[k]!.gpuUtil;
      for (const p of S[k]!.procUtil) {
        const x = get(p.pid);
        x.sm += p.sm;
        x.mem += p.mem;
        x.n++;
      }
    }
    for (const r of b.running) {
      const x = get(r.pid);
      x.used += r.usedMem;
      x.ctx = true;
    }
    const joules = Math.max(0, (b.energyMj - a.energyMj) / 1000);
    const dt = b.t - a.t;
    seq++;
    out.push({
      hostId, hardwareClass: trace.header.gpu, seq, prevSeq: seq - 1, t0UnixNs: a.t * 1e9, t1UnixNs: b.t * 1e9, durationS: dt,
      measured: { rapl: 0, gpu: joules, bmc_rest: 0 }, raplZones: {},
      gpus: [{ device, joules, contexts: b.running.length, meanPowerW: dt > 0 ? joules / dt : 0, gpuUtilPct: b.gpuUtil, ...(withSamples ? { gpuUtilMeanPct: utilSum / (i - start), gpuUtilSamples: i - start } : {}), memUtilPct: b.memUtil, smClockMhz: b.smClockMhz }],
      hostCpu: { busySeconds: 0, idleSeconds: 0, onlineCpus: 1, avgFreqMhz: 0 },
      vms: [...acc].map(([t, x]) => ({
        uuid: t, name: t, tenant: t, vcpus: 1, memoryBytes: 0, cpuSeconds: 0, vcpuSeconds: [0], memoryUsedBytes: 0, blockReadBytes: 0, blockWriteBytes: 0, netRxBytes: 0, netTxBytes: 0,
        gpus: [{ device, smUtilPct: x.n ? x.sm / x.n : 0, memUtilPct: x.n ? x.mem / x.n : 0, utilSamples: x.n, usedMemoryBytes: x.used, holdsContext: x.ctx, passthrough: false }],
        presence: 1, state: 'running' as const,
      })),
      anomalies: [],
    });
    start = i;
  }
  return out;
}

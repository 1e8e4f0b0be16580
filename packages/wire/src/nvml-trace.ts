/**
 * Parser of recorded NVML traces (../shared/data/gpu/README.md): JSON lines, line 1 a header
 * (`gpu`, `driver`, `tenants`, `pids` pid → tenant, `sample_hz`, `schedule`), every other line one
 * read of one GPU:
 *
 *   t              wall-clock seconds
 *   energy_mj      nvmlDeviceGetTotalEnergyConsumption, mJ since driver load
 *   power_mw       nvmlDeviceGetPowerUsage (1 s average on Hopper)
 *   gpu_util, mem_util                    nvmlDeviceGetUtilizationRates
 *   sm_clock_mhz, mem_clock_mhz, temp_c   clocks and temperature
 *   proc_util      nvmlDeviceGetProcessUtilization samples since the last read (pid, sm, mem, enc, dec, ts µs)
 *   running        nvmlDeviceGetComputeRunningProcesses (pid, used_mem bytes)
 *   phase, active, work, header schedule  GROUND TRUTH ONLY, never observable by an agent
 *
 * `parseNvmlTrace` returns only what an agent can observe: the `tenant` labels the recorder wrote
 * next to each pid are dropped too, because an agent sees pids only and maps them through the
 * process → VM map (the header's `pids`). `parseNvmlTraceGroundTruth` exposes the ground-truth
 * fields, for scoring only.
 */
import { WattsplitError } from './errors.js';

/** One nvmlProcessUtilizationSample_t as recorded. */
export interface NvmlTraceProcUtil {
  pid: number;
  sm: number;
  mem: number;
  enc: number;
  dec: number;
  /** Sample timestamp, µs (NVML's own clock, unix µs in recorded traces). */
  tsUs: number;
}

export interface NvmlTraceRunning {
  pid: number;
  /** Used GPU memory, bytes. */
  usedMem: number;
}

/** One observable NVML read of the GPU. */
export interface NvmlTraceSample {
  t: number;
  energyMj: number;
  powerMw: number;
  gpuUtil: number;
  memUtil: number;
  smClockMhz: number;
  memClockMhz: number;
  tempC: number;
  procUtil: NvmlTraceProcUtil[];
  running: NvmlTraceRunning[];
}

export interface NvmlTraceHeader {
  gpu: string;
  driver: string;
  tenants: string[];
  /** pid → tenant: the process → VM map an agent has. */
  pids: Record<number, string>;
  sampleHz: number;
}

export interface NvmlTrace {
  header: NvmlTraceHeader;
  samples: NvmlTraceSample[];
}

/** Ground truth of one sample: what was scheduled and each tenant's cumulative completed work units. */
export interface NvmlTraceTruthSample {
  t: number;
  phase: string;
  active: string[];
  work: Record<string, number>;
}

export interface NvmlTraceGroundTruth {
  /** [phase name, seconds, active tenants] as planned by the recorder. */
  schedule: Array<[string, number, string[]]>;
  samples: NvmlTraceTruthSample[];
}

type Json = Record<string, unknown>;

function fail(source: string, line: number, msg: string, details: Record<string, unknown> = {}): never {
  throw new WattsplitError('TRACE_INVALID', `${source}:${line}: ${msg}`, { details: { file: source, line, ...details } });
}

function lines(text: string): Array<{ n: number; s: string }> {
  const out: Array<{ n: number; s: string }> = [];
  const raw = text.split('\n');
  for (let i = 0; i < raw.length; i++) {
    const s = raw[i]!.trim();
    if (s !== '') out.push({ n: i + 1, s });
  }
  return out;
}

function parseLine(source: string, n: number, s: string): Json {
  let v: unknown;
  try {
    v = JSON.parse(s);
  } catch (e) {
    fail(source, n, `not valid JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(source, n, `expected a JSON object, got ${Array.isArray(v) ? 'an array' : JSON.stringify(v)}`);
  return v as Json;
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? 'undefined' : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function num(source: string, n: number, obj: Json, key: string, where = ''): number {
  const v = obj[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    fail(source, n, v === undefined ? `field "${where}${key}" is missing` : `field "${where}${key}" must be a finite number, got ${show(v)}`, { field: `${where}${key}`, value: v });
  }
  return v;
}

function str(source: string, n: number, obj: Json, key: string): string {
  const v = obj[key];
  if (typeof v !== 'string') fail(source, n, v === undefined ? `field "${key}" is missing` : `field "${key}" must be a string, got ${show(v)}`, { field: key, value: v });
  return v;
}

function arr(source: string, n: number, obj: Json, key: string): unknown[] {
  const v = obj[key];
  if (!Array.isArray(v)) fail(source, n, v === undefined ? `field "${key}" is missing` : `field "${key}" must be an array, got ${show(v)}`, { field: key, value: v });
  return v;
}

function objAt(source: string, n: number, v: unknown, where: string): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(source, n, `${where} must be an object, got ${show(v)}`, { field: where, value: v });
  return v as Json;
}

function parseHeader(source: string, n: number, h: Json): NvmlTraceHeader {
  const tenantsRaw = arr(source, n, h, 'tenants');
  const tenants = tenantsRaw.map((t, i) => {
    if (typeof t !== 'string' || t === '') fail(source, n, `field "tenants[${i}]" must be a non-empty string, got ${show(t)}`, { field: `tenants[${i}]`, value: t });
    return t;
  });
  const pidsRaw = objAt(source, n, h.pids, 'field "pids"');
  const pids: Record<number, string> = {};
  for (const [k, v] of Object.entries(pidsRaw)) {
    const pid = Number(k);
    if (!Number.isInteger(pid) || pid < 0) fail(source, n, `field "pids" has key ${show(k)} that is not a pid`, { field: 'pids', value: k });
    if (typeof v !== 'string') fail(source, n, `field "pids.${k}" must be a tenant name, got ${show(v)}`, { field: `pids.${k}`, value: v });
    pids[pid] = v;
  }
  const sampleHz = num(source, n, h, 'sample_hz');
  if (sampleHz <= 0) fail(source, n, `field "sample_hz" must be > 0, got ${sampleHz}`, { field: 'sample_hz', value: sampleHz });
  return { gpu: str(source, n, h, 'gpu'), driver: str(source, n, h, 'driver'), tenants, pids, sampleHz };
}

function parseSample(source: string, n: number, r: Json): NvmlTraceSample {
  const procUtil = arr(source, n, r, 'proc_util').map((p, i): NvmlTraceProcUtil => {
    const o = objAt(source, n, p, `field "proc_util[${i}]"`);
    const w = `proc_util[${i}].`;
    return { pid: num(source, n, o, 'pid', w), sm: num(source, n, o, 'sm', w), mem: num(source, n, o, 'mem', w), enc: num(source, n, o, 'enc', w), dec: num(source, n, o, 'dec', w), tsUs: num(source, n, o, 'ts', w) };
  });
  const running = arr(source, n, r, 'running').map((p, i): NvmlTraceRunning => {
    const o = objAt(source, n, p, `field "running[${i}]"`);
    const w = `running[${i}].`;
    return { pid: num(source, n, o, 'pid', w), usedMem: num(source, n, o, 'used_mem', w) };
  });
  return {
    t: num(source, n, r, 't'),
    energyMj: num(source, n, r, 'energy_mj'),
    powerMw: num(source, n, r, 'power_mw'),
    gpuUtil: num(source, n, r, 'gpu_util'),
    memUtil: num(source, n, r, 'mem_util'),
    smClockMhz: num(source, n, r, 'sm_clock_mhz'),
    memClockMhz: num(source, n, r, 'mem_clock_mhz'),
    tempC: num(source, n, r, 'temp_c'),
    procUtil,
    running,
  };
}

/**
 * Parses a recorded NVML trace, keeping only observable fields. `source` names the file in errors.
 * Throws WattsplitError TRACE_INVALID naming the line, field and value on malformed input, and when
 * time goes backwards between samples.
 */
export function parseNvmlTrace(text: string, source = 'trace'): NvmlTrace {
  const ls = lines(text);
  const first = ls[0];
  if (first === undefined) fail(source, 1, 'empty trace: expected a header line');
  const header = parseHeader(source, first.n, parseLine(source, first.n, first.s));
  const samples: NvmlTraceSample[] = [];
  for (let i = 1; i < ls.length; i++) {
    const { n, s } = ls[i]!;
    const sample = parseSample(source, n, parseLine(source, n, s));
    const prev = samples[samples.length - 1];
    if (prev !== undefined && sample.t < prev.t) fail(source, n, `field "t" went backwards: ${sample.t} < ${prev.t}`, { field: 't', value: sample.t });
    samples.push(sample);
  }
  return { header, samples };
}

/** The ground-truth fields of a trace (schedule, phase, active, work), for scoring only: attribution never reads them. */
export function parseNvmlTraceGroundTruth(text: string, source = 'trace'): NvmlTraceGroundTruth {
  const ls = lines(text);
  const first = ls[0];
  if (first === undefined) fail(source, 1, 'empty trace: expected a header line');
  const h = parseLine(source, first.n, first.s);
  const schedule = arr(source, first.n, h, 'schedule').map((e, i): [string, number, string[]] => {
    if (!Array.isArray(e) || e.length !== 3 || typeof e[0] !== 'string' || typeof e[1] !== 'number' || !Array.isArray(e[2])) {
      fail(source, first.n, `field "schedule[${i}]" must be [name, seconds, [tenants]], got ${show(e)}`, { field: `schedule[${i}]`, value: e });
    }
    return [e[0], e[1], (e[2] as unknown[]).map(String)];
  });
  const samples: NvmlTraceTruthSample[] = [];
  for (let i = 1; i < ls.length; i++) {
    const { n, s } = ls[i]!;
    const r = parseLine(source, n, s);
    const active = arr(source, n, r, 'active').map(String);
    const workRaw = objAt(source, n, r.work, 'field "work"');
    const work: Record<string, number> = {};
    for (const k of Object.keys(workRaw)) work[k] = num(source, n, workRaw, k, 'work.');
    samples.push({ t: num(source, n, r, 't'), phase: str(source, n, r, 'phase'), active, work });
  }
  return { schedule, samples };
}

/** Ground-truth keys of a trace line, for tools that strip them (`stripNvmlTraceGroundTruth`). */
export const NVML_TRACE_GROUND_TRUTH_FIELDS = ['phase', 'active', 'work'] as const;

/**
 * Removes every ground-truth field (header `schedule` and `seed`, per-sample `phase`/`active`/`work`) and the
 * recorder's per-pid tenant labels, returning a trace that holds only what an agent could observe.
 */
export function stripNvmlTraceGroundTruth(text: string, source = 'trace'): string {
  const ls = lines(text);
  return ls
    .map(({ n, s }, i) => {
      const o = parseLine(source, n, s);
      if (i === 0) {
        delete o.schedule;
        delete o.seed;
      } else {
        for (const k of NVML_TRACE_GROUND_TRUTH_FIELDS) delete o[k];
        for (const key of ['proc_util', 'running']) {
          const a = o[key];
          if (Array.isArray(a)) for (const p of a) if (typeof p === 'object' && p !== null) delete (p as Json).tenant;
        }
      }
      return JSON.stringify(o);
    })
    .join('\n') + '\n';
}

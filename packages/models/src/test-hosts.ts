/** Synthetic host intervals with known per-VM truth, for this package's tests (not exported from the index). */
import type { HostInterval, VmInterval } from '@wattsplit/attribution';
import { mulberry32 } from '@wattsplit/attribution';

export const prng = mulberry32;

/** Watts per busy core and observable signature per class (differ, so CPU share is unfair). */
export const TEST_CLASSES = {
  batch: { coreW: 9, ipc: 2.6, mpki: 0.4 },
  web: { coreW: 3.2, ipc: 1.0, mpki: 2 },
  db: { coreW: 5, ipc: 0.6, mpki: 14 },
  ai: { coreW: 4.5, ipc: 1.4, mpki: 3 },
} as const;

export interface SynthHostOptions {
  seed?: number;
  vms?: number;
  seconds?: number;
  perf?: boolean;
  staticW?: number;
  /** Multiplies every class's coreW (to simulate drift). */
  powerScale?: number;
  hardwareClass?: string;
  /** Adds one time-sliced GPU shared by the first two VMs (dynamic W at full SM use) and one passed through to the third. */
  gpu?: { dynW: [number, number]; idleW: number; passthroughW?: number };
}

export interface SynthHost {
  intervals: HostInterval[];
  /** True dynamic joules per tenant (rapl) and per VM on the GPU. */
  truthRapl: Record<string, number>;
  truthGpu: Record<string, number>;
}

export function synthHost(o: SynthHostOptions = {}): SynthHost {
  const r = prng(o.seed ?? 1);
  const names = Object.keys(TEST_CLASSES) as (keyof typeof TEST_CLASSES)[];
  const n = o.vms ?? 8;
  const staticW = o.staticW ?? 120;
  const vms = Array.from({ length: n }, (_, i) => ({ uuid: `vm-${i}`, cls: names[i % names.length]!, tenant: `t${i % 4}`, vcpus: 4 + 4 * (i % 3), on: r() < 0.5, level: r() }));
  const intervals: HostInterval[] = [];
  const truthRapl: Record<string, number> = {};
  const truthGpu: Record<string, number> = {};
  for (let s = 0; s < (o.seconds ?? 1200); s++) {
    let P = staticW;
    const list: VmInterval[] = [];
    for (const v of vms) {
      if (r() < 0.02) v.on = !v.on;
      if (r() < 0.05) v.level = r();
      const util = v.on ? 0.2 + 0.8 * v.level : 0.02 * r();
      const cpu = util * v.vcpus;
      const c = TEST_CLASSES[v.cls];
      const p = cpu * c.coreW * (o.powerScale ?? 1);
      P += p;
      truthRapl[v.tenant] = (truthRapl[v.tenant] ?? 0) + p;
      const cycles = cpu * 2.4e9;
      list.push({
        uuid: v.uuid, name: v.uuid, tenant: v.tenant, vcpus: v.vcpus, memoryBytes: 8 * 2 ** 30, cpuSeconds: cpu, vcpuSeconds: Array.from({ length: v.vcpus }, () => util),
        memoryUsedBytes: 4 * 2 ** 30, blockReadBytes: 0, blockWriteBytes: 0, netRxBytes: 0, netTxBytes: 0,
        ...(o.perf === false ? {} : { perf: { cycles, instructions: cycles * c.ipc, llcMisses: (cycles * c.ipc * c.mpki) / 1000, llcReferences: (cycles * c.ipc * c.mpki) / 100 } }),
        gpus: [], presence: 1, state: 'running',
      });
    }
    const overhead = 0.5;
    P += overhead * 6;
    const busy = list.reduce((a, v) => a + v.cpuSeconds, 0) + overhead;
    const iv: HostInterval = {
      hostId: 'h1', hardwareClass: o.hardwareClass ?? 'synth', seq: s + 1, prevSeq: s, t0UnixNs: s * 1e9, t1UnixNs: (s + 1) * 1e9, durationS: 1,
      measured: { rapl: P * (1 + 0.01 * (r() - 0.5)), gpu: 0, bmc_rest: 30 + 0.1 * P }, raplZones: {}, gpus: [],
      hostCpu: { busySeconds: busy, idleSeconds: 64 - busy, onlineCpus: 64, avgFreqMhz: 2400 }, vms: list, anomalies: [],
    };
    if (o.gpu) {
      // device A: time-sliced between vm-0 and vm-1, each active about half the time
      const a = list[0]!;
      const b = list[1]!;
      const onA = vms[0]!.on;
      const onB = vms[1]!.on;
      const shareA = onA && onB ? 0.5 : onA ? 1 : 0;
      const shareB = onA && onB ? 0.5 : onB ? 1 : 0;
      const jitter = onA && onB ? 0.1 * (r() - 0.5) : 0;
      const sa = shareA + jitter;
      const sb = shareB - jitter;
      const dynA = o.gpu.dynW[0] * sa;
      const dynB = o.gpu.dynW[1] * sb;
      truthGpu[a.uuid] = (truthGpu[a.uuid] ?? 0) + dynA;
      truthGpu[b.uuid] = (truthGpu[b.uuid] ?? 0) + dynB;
      const jA = o.gpu.idleW + dynA + dynB;
      a.gpus.push({ device: '0000:17:00.0', smUtilPct: 99 * sa, memUtilPct: 20, utilSamples: 5, usedMemoryBytes: 1e9, holdsContext: true, passthrough: false });
      b.gpus.push({ device: '0000:17:00.0', smUtilPct: 99 * sb, memUtilPct: 20, utilSamples: 5, usedMemoryBytes: 2e9, holdsContext: true, passthrough: false });
      iv.gpus.push({ device: '0000:17:00.0', joules: jA, contexts: 2, meanPowerW: jA, gpuUtilPct: 99 * (sa + sb), memUtilPct: 20, smClockMhz: 1980 });
      let total = jA;
      if (o.gpu.passthroughW !== undefined) {
        const c = list[2]!;
        c.gpus.push({ device: '0000:65:00.0', smUtilPct: 50, memUtilPct: 10, utilSamples: 5, usedMemoryBytes: 1e9, holdsContext: true, passthrough: true });
        iv.gpus.push({ device: '0000:65:00.0', joules: o.gpu.passthroughW, contexts: 1, meanPowerW: o.gpu.passthroughW, gpuUtilPct: 50, memUtilPct: 10, smClockMhz: 1980 });
        total += o.gpu.passthroughW;
      }
      iv.measured.gpu = total;
    }
    intervals.push(iv);
  }
  return { intervals, truthRapl, truthGpu };
}

/**
 * A time-sliced GPU on a 10 ms timeline: slots of 0.3–2.5 s, each owned by nobody or by one of three VMs
 * (random owner; busy 100 % of the slot, or 8 % for the light VM), power 130 W static + the owner's signature ×
 * busy. Agent-like 1 s intervals: the energy counter's delta over (t0, t1]; the device's mean utilisation
 * over (t0 − lag, t1 − lag] (NVML's samples describe the period before their timestamp); per VM, one process
 * sample per 0.1 s mark it owned (time-slicing: a sample names the process that held the GPU), reading 99 % SM ×
 * its duty. The closing read is the utilisation over the last driver period (0.1 s), lagged like the mean.
 * `midSwitch`: slots of 1–3 whole seconds whose switches all fall half-way through an interval.
 */
export function laggedSlicedIntervals(seed: number, n: number, lagS: number, opts: { midSwitch?: boolean } = {}): { ivs: HostInterval[]; truth: Record<string, number> } {
  let x = seed;
  const r = (): number => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648;
  const sig: Record<string, number> = { a: 560, b: 380, c: 520 };
  const duty: Record<string, number> = { a: 1, b: 1, c: 0.08 };
  const steps = Math.round((n + 2) * 100);
  const owner: Array<string | undefined> = [];
  if (opts.midSwitch) for (let k = 0; k < 50; k++) owner.push(undefined);
  while (owner.length < steps + 100) {
    const len = opts.midSwitch ? 100 * (1 + Math.floor(3 * r())) : Math.round((0.3 + 2.2 * r()) * 100);
    const u = r();
    const o = u < 0.2 ? undefined : u < 0.45 ? 'a' : u < 0.7 ? 'b' : 'c';
    for (let k = 0; k < len; k++) owner.push(o);
  }
  // busy at step k (10 ms): the light VM c runs 8 % of its slot, in bursts at the start of each 0.1 s
  const busyAt = (k: number): number => {
    const o = owner[k];
    if (o === undefined) return 0;
    return duty[o]! >= 1 ? 1 : k % 10 === 0 ? Math.min(1, duty[o]! * 10) : 0;
  };
  const lagSteps = Math.round(lagS * 100);
  const truth: Record<string, number> = { a: 0, b: 0, c: 0 };
  const ivs: HostInterval[] = [];
  for (let i = 0; i < n; i++) {
    const k0 = 100 + i * 100;
    let joules = 0;
    let busy = 0;
    const counts: Record<string, number> = {};
    // the closing read: the utilisation over the last driver period (0.1 s: ten samples per interval), lagged too
    let closing = 0;
    for (let k = k0 + 90; k < k0 + 100; k++) closing += busyAt(k - lagSteps) / 10;
    for (let k = k0; k < k0 + 100; k++) {
      const o = owner[k];
      const b = busyAt(k);
      joules += 0.01 * (130 + (o ? sig[o]! * b : 0));
      if (o) truth[o] = truth[o]! + 0.01 * sig[o]! * b;
      busy += busyAt(k - lagSteps) / 100;
      if (o && (k - k0) % 10 === 9) counts[o] = (counts[o] ?? 0) + 1;
    }
    const vm = (uuid: string): HostInterval['vms'][number] => ({
      uuid, name: uuid, tenant: uuid, vcpus: 1, memoryBytes: 0, cpuSeconds: 0, vcpuSeconds: [0], memoryUsedBytes: 0, blockReadBytes: 0, blockWriteBytes: 0, netRxBytes: 0, netTxBytes: 0,
      gpus: [{ device: 'g', smUtilPct: counts[uuid] ? 99 * duty[uuid]! : 0, memUtilPct: 0, utilSamples: counts[uuid] ?? 0, usedMemoryBytes: 1e9, holdsContext: true, passthrough: false }],
      presence: 1, state: 'running',
    });
    ivs.push({
      hostId: 'h', hardwareClass: 'c', seq: i + 1, prevSeq: i, t0UnixNs: i * 1e9, t1UnixNs: (i + 1) * 1e9, durationS: 1,
      measured: { rapl: 0, gpu: joules, bmc_rest: 0 }, raplZones: {},
      gpus: [{ device: 'g', joules, contexts: 3, meanPowerW: joules, gpuUtilPct: 100 * closing, gpuUtilMeanPct: 100 * busy, gpuUtilSamples: 10, memUtilPct: 0, smClockMhz: 1980 }],
      hostCpu: { busySeconds: 0, idleSeconds: 0, onlineCpus: 1, avgFreqMhz: 0 },
      vms: ['a', 'b', 'c'].map(vm),
      anomalies: [],
    });
  }
  return { ivs, truth };
}

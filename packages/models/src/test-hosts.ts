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

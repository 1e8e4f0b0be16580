/**
 * GPU energy and per-VM GPU activity from a GpuSource (NVML through FFI, a recorded trace, or the
 * simulator).
 *
 * NVML (nvml.h): nvmlDeviceGetTotalEnergyConsumption — "total energy consumption for this GPU in
 * millijoules (mJ) since the driver was last reloaded" (Volta+), a 64-bit counter: max_range 0.
 * nvmlDeviceGetProcessUtilization — per-process samples (pid, timeStamp µs, smUtil, memUtil, encUtil,
 * decUtil) newer than lastSeenTimeStamp. nvmlDeviceGetComputeRunningProcesses — processes holding a
 * context, with used GPU memory. nvmlDeviceGetSamples(NVML_GPU_UTILIZATION_SAMPLES) — the device's
 * utilisation per driver sample period since the previous read: sent as their mean and count
 * (`gpuUtilMeanPct`, `gpuUtilSamples`), the device's busy fraction over the interval; left out when the
 * source has none (old driver, NOT_SUPPORTED, idle GPU), and the collector uses the point read `gpuUtilPct`.
 *
 * Mapping to VMs: a GPU whose PCI address is in a domain's <hostdev> list is passed through whole to
 * that VM; otherwise (time-sliced vGPU, MIG) each process is mapped to its VM with the
 * ProcessOwnerMap (qemu pid or vGPU host pid → domain uuid).
 */
import { EnergySource, EnergyUnit, type GpuReading, type GpuSource, type IGpuActivity, type Logger } from '@wattsplit/wire';
import type { FrameUnderConstruction, RoundContext, Sampler, SamplerStatus } from './sampler.js';

/** "17:00.0" / "00000000:17:00.0" / "0000:17:00.0" → "0000:17:00.0" (lower case, 4-digit domain). */
export function normalisePciAddress(a: string): string {
  const s = a.trim().toLowerCase();
  const m = /^(?:([0-9a-f]{1,8}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})\.([0-7])$/.exec(s);
  if (!m) return s;
  const dom = (m[1] ?? '0').slice(-4).padStart(4, '0');
  return `${dom}:${(m[2] ?? '').padStart(2, '0')}:${(m[3] ?? '').padStart(2, '0')}.${m[4] ?? '0'}`;
}

interface Acc {
  sm: number;
  mem: number;
  enc: number;
  dec: number;
  n: number;
  usedMem: number;
  ctx: boolean;
}

export class GpuSampler implements Sampler {
  readonly name = 'gpu';
  private lastError: string | undefined;
  private lastCount = 0;
  private unowned = new Set<number>();

  constructor(
    private readonly source: GpuSource,
    private readonly log: Logger,
  ) {}

  sample(frame: FrameUnderConstruction, ctx: RoundContext): void {
    let readings: GpuReading[];
    try {
      readings = this.source.read();
      this.lastError = undefined;
    } catch (e) {
      const msg = `GPU read failed: ${(e as Error).message}`;
      if (this.lastError !== msg) this.log.warn({ code: 'SENSOR_READ_FAILED' }, msg);
      this.lastError = msg;
      return;
    }
    this.lastCount = readings.length;
    const passthrough = new Map<string, string>();
    for (const d of ctx.domains) for (const a of d.gpuPciAddresses) passthrough.set(normalisePciAddress(a), d.uuid);
    const readMonoNs = ctx.monoNs();
    for (const g of readings) {
      const bus = normalisePciAddress(g.pciBusId);
      let utilSum = 0;
      const utilN = g.utilSamples?.length ?? 0;
      for (const u of g.utilSamples ?? []) utilSum += u.utilPct;
      frame.counters.push({
        id: `gpu:${bus}`,
        source: EnergySource.ENERGY_SOURCE_GPU,
        domain: 'gpu',
        index: g.index,
        value: Math.round(g.energyMj),
        unit: EnergyUnit.ENERGY_UNIT_MILLIJOULE,
        maxRange: 0,
        readMonoNs,
        device: bus,
      });
      frame.gpus.push({
        device: bus,
        index: g.index,
        name: g.name,
        powerMw: g.powerMw,
        gpuUtilPct: g.gpuUtilPct,
        memUtilPct: g.memUtilPct,
        smClockMhz: g.smClockMhz,
        memClockMhz: g.memClockMhz,
        tempC: g.tempC,
        contexts: g.running.length,
        migProfile: g.migProfile,
        ...(utilN > 0 ? { gpuUtilMeanPct: utilSum / utilN, gpuUtilSamples: utilN } : {}),
      });
      const owner = passthrough.get(bus);
      if (owner !== undefined) {
        const vm = ctx.vmsByUuid.get(owner);
        if (vm) {
          (vm.gpus ??= []).push({
            device: bus,
            smUtilPct: g.gpuUtilPct,
            memUtilPct: g.memUtilPct,
            utilSamples: 1,
            usedMemoryBytes: g.running.reduce((s, p) => s + p.usedGpuMemoryBytes, 0),
            holdsContext: g.running.length > 0,
            passthrough: true,
          });
        }
        continue;
      }
      this.attributeProcesses(g, bus, ctx);
    }
  }

  private attributeProcesses(g: GpuReading, bus: string, ctx: RoundContext): void {
    const owners = ctx.processOwners;
    const acc = new Map<string, Acc>();
    const get = (pid: number): Acc | undefined => {
      const uuid = owners?.ownerOf(pid);
      if (uuid === undefined) {
        if (!this.unowned.has(pid)) {
          this.unowned.add(pid);
          this.log.info({ pid, gpu: bus }, 'GPU process not owned by any VM (host process): its activity is left to the host');
        }
        return undefined;
      }
      let a = acc.get(uuid);
      if (!a) acc.set(uuid, (a = { sm: 0, mem: 0, enc: 0, dec: 0, n: 0, usedMem: 0, ctx: false }));
      return a;
    };
    for (const s of g.processUtil) {
      const a = get(s.pid);
      if (!a) continue;
      a.sm += s.smUtil;
      a.mem += s.memUtil;
      a.enc += s.encUtil;
      a.dec += s.decUtil;
      a.n++;
    }
    for (const p of g.running) {
      const a = get(p.pid);
      if (!a) continue;
      a.usedMem += p.usedGpuMemoryBytes;
      a.ctx = true;
    }
    for (const [uuid, a] of acc) {
      const vm = ctx.vmsByUuid.get(uuid);
      if (!vm) continue;
      const act: IGpuActivity = {
        device: bus,
        smUtilPct: a.n ? a.sm / a.n : 0,
        memUtilPct: a.n ? a.mem / a.n : 0,
        utilSamples: a.n,
        usedMemoryBytes: a.usedMem,
        holdsContext: a.ctx,
        passthrough: false,
        migInstance: '',
        encUtilPct: a.n ? Math.round(a.enc / a.n) : 0,
        decUtilPct: a.n ? Math.round(a.dec / a.n) : 0,
      };
      (vm.gpus ??= []).push(act);
    }
  }

  status(): SamplerStatus {
    if (this.lastError) return { name: this.name, state: 'unavailable', detail: this.lastError };
    return { name: this.name, state: 'ok', detail: `${this.lastCount} GPUs` };
  }

  close(): void {
    this.source.close?.();
  }
}

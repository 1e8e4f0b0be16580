/**
 * NvmlTraceGpuSource: replays a recorded NVML trace (../shared/data/gpu format, parsed by wire's
 * parseNvmlTrace: observable fields only) as a GpuSource, one recorded read per `read()`.
 * The trace header's pid → tenant map becomes the ProcessOwnerMap through `nvmlTraceProcessOwners`.
 * Each recorded read's `gpu_util` is also its one device-utilisation sample (`utilSamples`, as
 * nvmlDeviceGetSamples would give it), so a frame's mean is that read's utilisation.
 */
import { readFileSync } from 'node:fs';
import { WattsplitError, parseNvmlTrace, type GpuReading, type GpuSource, type NvmlTrace, type ProcessOwnerMap } from '@wattsplit/wire';

export interface NvmlTraceGpuSourceOptions {
  /** PCI bus id the replayed GPU gets. Default "0000:17:00.0". */
  pciBusId?: string;
  index?: number;
  /** Start again from the first sample after the last (energy keeps rising across loops). Default false. */
  loop?: boolean;
}

export class NvmlTraceGpuSource implements GpuSource {
  private pos = 0;
  private energyBase = 0;
  private readonly pci: string;
  private readonly index: number;

  constructor(
    readonly trace: NvmlTrace,
    private readonly opts: NvmlTraceGpuSourceOptions = {},
  ) {
    if (trace.samples.length === 0) throw new WattsplitError('CONFIG_INVALID', 'NVML trace has no samples', { details: { field: 'samples' } });
    this.pci = opts.pciBusId ?? '0000:17:00.0';
    this.index = opts.index ?? 0;
  }

  static fromFile(file: string, opts: NvmlTraceGpuSourceOptions = {}): NvmlTraceGpuSource {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new WattsplitError('CONFIG_INVALID', `NVML trace ${file} unreadable: ${(e as Error).message}`, { cause: e, details: { file } });
    }
    return new NvmlTraceGpuSource(parseNvmlTrace(text, file), opts);
  }

  /** Samples replayed so far. */
  get position(): number {
    return this.pos;
  }

  get done(): boolean {
    return !this.opts.loop && this.pos >= this.trace.samples.length;
  }

  read(): GpuReading[] {
    const n = this.trace.samples.length;
    if (this.pos >= n) {
      if (!this.opts.loop) throw new WattsplitError('SENSOR_UNAVAILABLE', `NVML trace exhausted after ${n} samples`, { details: { samples: n } });
      const first = this.trace.samples[0];
      const last = this.trace.samples[n - 1];
      this.energyBase += (last?.energyMj ?? 0) - (first?.energyMj ?? 0);
      this.pos = 0;
    }
    const s = this.trace.samples[this.pos++];
    if (!s) return [];
    return [
      {
        index: this.index,
        pciBusId: this.pci,
        name: this.trace.header.gpu,
        uuid: `GPU-trace-${this.pci}`,
        energyMj: s.energyMj + this.energyBase,
        powerMw: s.powerMw,
        gpuUtilPct: s.gpuUtil,
        memUtilPct: s.memUtil,
        smClockMhz: s.smClockMhz,
        memClockMhz: s.memClockMhz,
        tempC: s.tempC,
        processUtil: s.procUtil.map((p) => ({ pid: p.pid, timeStampUs: p.tsUs, smUtil: p.sm, memUtil: p.mem, encUtil: p.enc, decUtil: p.dec })),
        utilSamples: [{ timeStampUs: Math.round(s.t * 1e6), utilPct: s.gpuUtil }],
        running: s.running.map((r) => ({ pid: r.pid, usedGpuMemoryBytes: r.usedMem })),
        migProfile: '',
      },
    ];
  }
}

/** The trace's pid → tenant map as a ProcessOwnerMap; `vmOf` turns a tenant name into the VM uuid. */
export function nvmlTraceProcessOwners(trace: NvmlTrace, vmOf: (tenant: string) => string = (t) => t): ProcessOwnerMap {
  const m = new Map<number, string>();
  for (const [pid, tenant] of Object.entries(trace.header.pids)) m.set(Number(pid), vmOf(tenant));
  return { ownerOf: (pid) => m.get(pid) };
}

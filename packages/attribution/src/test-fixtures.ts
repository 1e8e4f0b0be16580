/** Frame builders and a seeded PRNG shared by this package's tests (not exported from the index). */
import { EnergySource, EnergyUnit, VmState, type IEnergyCounter, type ITelemetryFrame, type IVmSample } from '@wattsplit/wire';
import { mulberry32 } from './prng.js';

export const prng = mulberry32;

export const RAPL_RANGE = 262_143_328_850;

export function raplCounter(id: string, domain: string, valueUj: number, maxRange = RAPL_RANGE): IEnergyCounter {
  return { id, source: EnergySource.ENERGY_SOURCE_RAPL, domain, index: 0, value: valueUj, unit: EnergyUnit.ENERGY_UNIT_MICROJOULE, maxRange };
}

export function gpuCounter(device: string, valueMj: number): IEnergyCounter {
  return { id: `gpu:${device}`, source: EnergySource.ENERGY_SOURCE_GPU, domain: 'gpu', index: 0, value: valueMj, unit: EnergyUnit.ENERGY_UNIT_MILLIJOULE, maxRange: 0, device };
}

export function bmcCounter(valueJ: number): IEnergyCounter {
  return { id: 'bmc', source: EnergySource.ENERGY_SOURCE_BMC, domain: 'chassis', index: -1, value: valueJ, unit: EnergyUnit.ENERGY_UNIT_JOULE, maxRange: 0 };
}

export function vm(uuid: string, cpuS: number, extra: Partial<IVmSample> = {}): IVmSample {
  return {
    uuid,
    name: `vm-${uuid}`,
    tenant: `t-${uuid}`,
    vcpus: 4,
    memoryBytes: 8 * 2 ** 30,
    state: VmState.VM_STATE_RUNNING,
    cpuTimeNs: Math.round(cpuS * 1e9),
    vcpuTimeNs: [Math.round(cpuS * 0.5e9), Math.round(cpuS * 0.5e9)],
    ...extra,
  };
}

export interface FrameSpec {
  seq: number;
  t: number; // seconds since start (monotonic)
  raplJ?: number; // cumulative package joules
  dramJ?: number;
  bmcJ?: number;
  busyS?: number;
  idleS?: number;
  vms?: IVmSample[];
  boot?: string;
  wallOffsetS?: number;
  /** Seconds added to the monotonic clock only (a reboot restarts it: a large negative offset). */
  monoOffsetS?: number;
  counters?: IEnergyCounter[];
}

export const WALL0_NS = 1_763_900_000_000_000_000;

export function frame(s: FrameSpec): ITelemetryFrame {
  const counters: IEnergyCounter[] = s.counters ?? [
    raplCounter('intel-rapl:0', 'package', Math.round((s.raplJ ?? s.t * 100) * 1e6)),
    raplCounter('intel-rapl:0:0', 'dram', Math.round((s.dramJ ?? s.t * 10) * 1e6)),
    bmcCounter(s.bmcJ ?? s.t * 200),
  ];
  return {
    hostId: 'hv-01',
    hardwareClass: 'xeon-test',
    seq: s.seq,
    bootId: s.boot ?? 'boot-1',
    monoNs: Math.round((1000 + s.t + (s.monoOffsetS ?? 0)) * 1e9),
    wallUnixNs: WALL0_NS + Math.round((s.t + (s.wallOffsetS ?? 0)) * 1e9),
    intervalMs: 1000,
    counters,
    vms: s.vms ?? [],
    hostCpu: { busyNs: Math.round((s.busyS ?? s.t * 2) * 1e9), idleNs: Math.round((s.idleS ?? s.t * 62) * 1e9), onlineCpus: 64, avgFreqMhz: 2400 },
  };
}

/** Hand-built telemetry frames for the collector's tests: hosts with RAPL, BMC and a GPU, VMs with CPU time. */
import { EnergySource, EnergyUnit, VmState, encodeFrame, type ITelemetryFrame, type IVmSample } from '@wattsplit/wire';

/** Recent, whole-second wall clock (inside the store's TTL; exact as doubles). */
export const WALL0_NS = Math.floor(Date.now() / 1000 - 3600) * 1e9;

export interface HostSpec {
  hostId: string;
  /** package watts, dram watts, GPU watts, wall watts; a host without dramW / gpuW has no such counter */
  raplW: number;
  dramW?: number;
  gpuW?: number;
  bmcW: number;
  /** VM uuid → [tenant, CPU cores busy] */
  vms: Record<string, [string, number]>;
  /** default 'xeon-test+h100x1' */
  hardwareClass?: string;
  /** default 64 */
  onlineCpus?: number;
}

export function frameAt(h: HostSpec, seq: number, bootId = 'boot-1'): ITelemetryFrame {
  const t = seq; // one frame per second, seq 1 at t = 1 s
  const vms: IVmSample[] = Object.entries(h.vms).map(([uuid, [tenant, cores]]) => ({
    uuid,
    name: `vm-${uuid}`,
    tenant,
    vcpus: 4,
    memoryBytes: 8 * 2 ** 30,
    state: VmState.VM_STATE_RUNNING,
    cpuTimeNs: Math.round(t * cores * 1e9),
    vcpuTimeNs: [Math.round(t * cores * 0.5e9), Math.round(t * cores * 0.5e9)],
  }));
  const busyCores = Object.values(h.vms).reduce((a, [, c]) => a + c, 0) + 0.2;
  const cpus = h.onlineCpus ?? 64;
  return {
    hostId: h.hostId,
    hardwareClass: h.hardwareClass ?? 'xeon-test+h100x1',
    seq,
    bootId,
    monoNs: Math.round((1000 + t) * 1e9),
    wallUnixNs: WALL0_NS + t * 1e9,
    intervalMs: 1000,
    counters: [
      { id: 'intel-rapl:0', source: EnergySource.ENERGY_SOURCE_RAPL, domain: 'package', index: 0, value: Math.round(t * h.raplW * 1e6), unit: EnergyUnit.ENERGY_UNIT_MICROJOULE, maxRange: 262_143_328_850 },
      ...(h.dramW === undefined ? [] : [{ id: 'intel-rapl:0:0', source: EnergySource.ENERGY_SOURCE_RAPL, domain: 'dram', index: 0, value: Math.round(t * h.dramW * 1e6), unit: EnergyUnit.ENERGY_UNIT_MICROJOULE, maxRange: 65_712_999_613, parentId: 'intel-rapl:0' }]),
      ...(h.gpuW === undefined ? [] : [{ id: 'gpu:0000:17:00.0', source: EnergySource.ENERGY_SOURCE_GPU, domain: 'gpu', index: 0, value: Math.round(t * h.gpuW * 1e3), unit: EnergyUnit.ENERGY_UNIT_MILLIJOULE, maxRange: 0, device: '0000:17:00.0' }]),
      { id: 'bmc', source: EnergySource.ENERGY_SOURCE_BMC, domain: 'chassis', index: -1, value: Math.round(t * h.bmcW), unit: EnergyUnit.ENERGY_UNIT_JOULE, maxRange: 0 },
    ],
    ...(h.gpuW === undefined ? {} : { gpus: [{ device: '0000:17:00.0', index: 0, name: 'NVIDIA H100', powerMw: h.gpuW * 1000, gpuUtilPct: 0, memUtilPct: 0, smClockMhz: 1755, contexts: 0 }] }),
    vms,
    hostCpu: { busyNs: Math.round(t * busyCores * 1e9), idleNs: Math.round(t * (cpus - busyCores) * 1e9), onlineCpus: cpus, avgFreqMhz: 2400 },
  };
}

export const HOST_A = { hostId: 'hv-a', raplW: 300, dramW: 40, gpuW: 70, bmcW: 600, vms: { 'a-web': ['acme', 1], 'a-db': ['globex', 3] } } satisfies HostSpec;
export const HOST_B = { hostId: 'hv-b', raplW: 200, dramW: 30, gpuW: 60, bmcW: 450, vms: { 'b-batch': ['acme', 6] } } satisfies HostSpec;

export function encoded(h: HostSpec, seq: number): { key: string; value: Uint8Array } {
  return { key: h.hostId, value: encodeFrame(frameAt(h, seq)) };
}

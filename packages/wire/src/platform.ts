/**
 * Platform I/O contracts shared by the agent (which reads real hosts) and the simulator (which
 * provides real-shaped hosts in memory). Every sensor is read through one of these, so the same
 * sampler code runs on /sys of a real hypervisor, on a fixture tree, and on a simulated host.
 */

/**
 * Read-only view of a host's file system (sysfs, procfs, cgroupfs). Paths are absolute as on the host
 * ("/sys/class/powercap/intel-rapl:0/energy_uj"); an implementation may prefix a configurable root.
 * Synchronous on purpose: sysfs reads are µs-cheap and the agent budget is 50 µs per VM per round.
 * Errors are thrown as Node system errors (code ENOENT, EACCES, ...).
 */
export interface HostFs {
  readText(path: string): string;
  readDir(path: string): string[];
  exists(path: string): boolean;
}

export type DomainState = 'running' | 'paused' | 'shutoff' | 'migrating_out' | 'migrating_in' | 'other';

/** What the hypervisor (libvirt) says about one VM. */
export interface DomainInfo {
  uuid: string;
  name: string;
  /** libvirt domain id, or -1 when not running; used to form the qemu cgroup name "qemu-<id>-<name>". */
  id: number;
  state: DomainState;
  vcpus: number;
  memoryBytes: number;
  /** From the domain's <metadata> (wattsplit:tenant), empty when none. */
  tenant: string;
  /** PCI addresses of GPUs passed through (<hostdev>), "0000:17:00.0". */
  gpuPciAddresses: string[];
  /** Host-side tap interface names of the VM's NICs. */
  taps: string[];
  /** Flavour / hardware class label from metadata, empty when none. */
  flavor: string;
}

/** VM discovery (libvirt in production, the simulator's inventory in the demo). */
export interface DomainSource {
  listDomains(): Promise<DomainInfo[]>;
  close?(): Promise<void>;
}

/** One NVML per-process utilisation sample (nvmlProcessUtilizationSample_t). */
export interface GpuProcessUtilSample {
  pid: number;
  timeStampUs: number;
  smUtil: number;
  memUtil: number;
  encUtil: number;
  decUtil: number;
}

/**
 * One NVML device-utilisation sample (nvmlSample_t from nvmlDeviceGetSamples with
 * NVML_GPU_UTILIZATION_SAMPLES): the percent of the driver's sample period during which a kernel ran.
 */
export interface GpuUtilSample {
  timeStampUs: number;
  utilPct: number;
}

export interface GpuRunningProcess {
  pid: number;
  usedGpuMemoryBytes: number;
}

/** One read of one GPU through NVML (or a recorded trace, or the simulator). */
export interface GpuReading {
  index: number;
  pciBusId: string;
  name: string;
  uuid: string;
  /** nvmlDeviceGetTotalEnergyConsumption: mJ since driver load. */
  energyMj: number;
  powerMw: number;
  gpuUtilPct: number;
  memUtilPct: number;
  smClockMhz: number;
  memClockMhz: number;
  tempC: number;
  /** nvmlDeviceGetProcessUtilization samples newer than the previous read. */
  processUtil: GpuProcessUtilSample[];
  /**
   * nvmlDeviceGetSamples(NVML_GPU_UTILIZATION_SAMPLES) samples newer than the previous read: the device's
   * busy fraction over the interval. Absent where the driver does not offer them (the agent then sends only
   * `gpuUtilPct`, the point read).
   */
  utilSamples?: GpuUtilSample[];
  running: GpuRunningProcess[];
  migProfile: string;
}

/** NVML-shaped source of GPU readings. */
export interface GpuSource {
  read(): GpuReading[];
  close?(): void;
}

/** Maps a host process to the VM (domain uuid) that owns it: qemu pid, or a GPU-using process inside a container-VM. */
export interface ProcessOwnerMap {
  ownerOf(pid: number): string | undefined;
}

/** Cumulative hardware counters of one cgroup (perf_event_open with PERF_FLAG_PID_CGROUP, or the simulator). */
export interface PerfReading {
  cycles: number;
  instructions: number;
  llcMisses: number;
  llcReferences: number;
}

/** Per-cgroup perf counters. `supported()` is false where the PMU is not exposed (most VMs, CI machines). */
export interface PerfSource {
  supported(): boolean;
  /** Cumulative counters of the cgroup at `cgroupPath` (relative to the cgroup root, e.g. "/machine.slice/machine-qemu\\x2d1\\x2dweb.scope"). */
  read(cgroupPath: string): PerfReading | undefined;
  close?(): void;
}

/** One whole-host (wall) reading from the BMC. */
export interface BmcReading {
  /** Cumulative energy in joules when the BMC exposes a counter (Redfish EnergykWh, newer PowerSubsystem); undefined otherwise. */
  energyJoules: number | undefined;
  /** Instantaneous / averaged input power, watts (Redfish PowerControl.PowerConsumedWatts, IPMI DCMI). */
  powerWatts: number;
}

/** Whole-host power from the BMC (Redfish over HTTPS, IPMI DCMI, or the simulator). */
export interface BmcSource {
  read(): Promise<BmcReading>;
  close?(): Promise<void>;
}

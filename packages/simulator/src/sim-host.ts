/**
 * One simulated hypervisor: power physics, ground truth, and the platform interfaces an agent reads
 * (HostFs tree following the real Linux ABI, DomainSource, GpuSource, PerfSource, BmcSource,
 * ProcessOwnerMap). The physics and the truth definition are documented in docs/simulator.md.
 *
 * Power of one step (all W; u_s = busy cores / cores of socket s, clamped to 1):
 *   f_s = f_max · (1 − 0.12 u_s²)                              (all-core turbo drops with load)
 *   g_s = (f_s / f_max)² · (1 + 0.8 u_s)                        (non-linear package scaling)
 *   pkg_s = pkgIdle + g_s · Σ_{e on s} a_e,  a_e = coreW_class · vcpuCores_e + EMU_W · emuCores_e
 *   dram_s = dramIdle + DRAM_W_PER_GBS · Σ_{e on s} bw_e (GB/s of LLC-miss traffic)
 *   gpu_d  = 73 + ctx(n) + Σ_v GPU_W_PER_SM · sm_v · intensity_v, ctx(n) = n>0 ? 47 + 4(n−1) : 0
 *   rest_dc = restBase + FAN_FRACTION · dyn(pkg+dram+gpu) + disk + nic
 *   wall = DC / eff(DC), eff = 0.90 + 0.045 · min(1, DC / 2000)
 * (The law above is the 'legacy' physics; a host with a physics family (./physics/) replaces the package and
 * DRAM law and its truth through the `physics` hook.)
 * Truth: entity e's dynamic pkg power is g_s · a_e — the non-linear multiplier of its socket shared in
 * proportion to each entity's linear (marginal) contribution a_e, so Σ_e = pkg_s − pkgIdle exactly.
 * DRAM, GPU activity, disks, NICs and fans are linear per entity; GPU context power is split equally
 * among context holders; the rise of PSU losses above their static level is split in proportion to each
 * entity's DC contribution. Static = the host at zero activity (idle package and DRAM, 73 W per GPU,
 * restBase and static PSU losses), split by the 'reserved' policy among the VMs present.
 */
import { EnergySource, EnergyUnit, VmState, type ITelemetryFrame, type IVmSample } from '@wattsplit/wire';
import type {
  BmcReading,
  BmcSource,
  DomainInfo,
  DomainSource,
  GpuProcessUtilSample,
  GpuUtilSample,
  GpuReading,
  GpuSource,
  HostFs,
  PerfReading,
  PerfSource,
  ProcessOwnerMap,
} from '@wattsplit/wire';
import { MemHostFs } from './mem-host-fs.js';
import type { HostPhysics } from './physics/host-physics.js';
import type { Prng } from './prng.js';
import type { SimVm } from './sim-vm.js';

export const GPU_IDLE_W = 73;
export const GPU_CTX_FIRST_W = 47;
export const GPU_CTX_EXTRA_W = 4;
export const GPU_W_PER_SM_PCT = 5.8;
export const EMU_W_PER_CORE = 2.5;
export const OVERHEAD_W_PER_CORE = 3;
export const DRAM_W_PER_GBS = 0.9;
export const DISK_W_PER_BS = 2 / 100e6;
export const NIC_W_PER_BS = 0.5 / 100e6;
export const FAN_FRACTION = 0.06;
export const MIGRATION_TRANSIENT = Object.freeze({ pkgW: 8, dramW: 2, nicW: 2, cores: 0.3 });

export type SourceName = 'rapl' | 'gpu' | 'bmc_rest';

export interface HostSpec {
  vendor: 'intel' | 'amd';
  hardwareClass: string;
  sockets: number;
  coresPerSocket: number;
  cgroupVersion: 1 | 2;
  /** RAPL max_energy_range_uj of every zone. */
  raplMaxRangeUj: number;
  /** Static (idle) package power per socket, W. */
  pkgIdleW: number;
  /** Static DRAM power per socket, W. */
  dramIdleW: number;
  /** RAPL exposes DRAM zones (Intel servers); without them DRAM energy is only in the wall (bmc_rest). */
  dramZones: boolean;
  coreZones: boolean;
  psys: boolean;
  gpuCount: number;
  gpuMode: 'passthrough' | 'time_sliced';
  perfSupported: boolean;
  /** The BMC exposes a cumulative energy counter (else power only). */
  bmcEnergyCounter: boolean;
  cpufreq: boolean;
  /** Fans, disks, NICs, BMC, VRs at idle (DC), W. */
  restBaseW: number;
  fmaxMhz: number;
}

export interface SimClock {
  /** CLOCK_MONOTONIC of the host, ns. */
  monoNs(): number;
  /** CLOCK_REALTIME of the host, unix ns (with the host's own skew and jitter). */
  wallUnixNs(): number;
}

export interface SimHost {
  readonly hostId: string;
  readonly hardwareClass: string;
  readonly spec: Readonly<HostSpec>;
  readonly fs: HostFs;
  readonly domains: DomainSource;
  readonly gpus: GpuSource;
  readonly perf: PerfSource;
  readonly bmc: BmcSource;
  readonly processOwners: ProcessOwnerMap;
  readonly clock: SimClock;
  /** Cgroup path (relative to the cgroup root, as PerfSource takes it) of a VM on this host, or undefined. */
  vmCgroupPath(uuid: string): string | undefined;
  /**
   * A telemetry frame read straight from the simulator's state (a perfect agent: no file parsing, no
   * noise). For attribution tests and benchmarks that should not depend on the agent.
   */
  oracleFrame(seq: number, bootId?: string): ITelemetryFrame;
}

export interface EnergyBySource {
  rapl: number;
  gpu: number;
  bmc_rest: number;
}

export interface VmTruthAcc {
  uuid: string;
  name: string;
  tenant: string;
  cls: string;
  dyn: EnergyBySource;
  stat: EnergyBySource;
  cpuSeconds: number;
}

export interface HostNoise {
  eioProbability: number;
  cgroupAbsentProbability: number;
  clockJitterFraction: number;
}

interface SimGpu {
  index: number;
  pci: string;
  uuid: string;
  energyMj: number;
  powerW: number;
  utilPct: number;
  memUtilPct: number;
  contexts: number;
  samples: GpuProcessUtilSample[];
  /** Device-utilisation samples since the last read (nvmlDeviceGetSamples), one per step. */
  utilSamples: GpuUtilSample[];
}

const zero = (): EnergyBySource => ({ rapl: 0, gpu: 0, bmc_rest: 0 });

/** systemd unit-name escaping of one name component (what machined does to "qemu-<id>-<name>"): '-' → \x2d. */
export function systemdEscape(s: string): string {
  return s.replace(/[^A-Za-z0-9:_.]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

export class SimHostImpl implements SimHost {
  readonly hostId: string;
  readonly hardwareClass: string;
  readonly spec: Readonly<HostSpec>;
  readonly fs: MemHostFs;
  readonly domains: DomainSource;
  readonly gpus: GpuSource;
  readonly perf: PerfSource;
  readonly bmc: BmcSource;
  readonly processOwners: ProcessOwnerMap;
  readonly clock: SimClock;

  private readonly rng: Prng;
  private readonly noise: HostNoise;
  readonly vms: SimVm[] = [];
  /** Truth accumulators of `vms`, same order. */
  private readonly accs: VmTruthAcc[] = [];
  private nextDomainId = 1;
  private nextTap = 0;
  private readonly pids = new Map<number, string>();
  private readonly byCgroup = new Map<string, SimVm>();

  // time
  private elapsedS = 0;
  private readonly mono0Ns: number;
  private readonly wall0Ns: number;
  private wallJitterNs = 0;

  // counters (float accumulators; files floor them)
  private readonly pkgUj: Float64Array;
  private readonly dramUj: Float64Array;
  private readonly coreUj: Float64Array;
  private psysUj = 0;
  private readonly busyNs: Float64Array; // per socket
  private readonly guestNs: Float64Array;
  private readonly freqMhz: Float64Array;
  private readonly gpuList: SimGpu[] = [];
  private bmcJ = 0;
  private lastWallW = 0;
  private ctxtSwitches = 0;

  // truth
  readonly truthVms = new Map<string, VmTruthAcc>();
  readonly measured = zero();
  readonly staticTotal = zero();
  readonly overheadDyn = zero();
  readonly unallocatedStatic = zero();
  wallJ = 0;
  migrationJ = 0;
  overheadCpuSeconds = 0;

  /** Set while a VM of this host is in live-migration pre-copy. */
  migratingOut = 0;

  /**
   * A power-physics family (packages/simulator/src/physics) replacing the package and DRAM law above
   * for this host; undefined = the legacy law. Set by the fleet before the first step.
   */
  physics: HostPhysics | undefined;

  constructor(hostId: string, spec: HostSpec, rng: Prng, startUnixMs: number, noise: HostNoise, index: number) {
    this.hostId = hostId;
    this.hardwareClass = spec.hardwareClass;
    this.spec = spec;
    this.rng = rng;
    this.noise = noise;
    this.mono0Ns = Math.round((3600 * (index + 1) + rng.uniform(0, 600)) * 1e9);
    // host wall clock: a few ms of constant skew (NTP-disciplined)
    this.wall0Ns = startUnixMs * 1e6 + Math.round(rng.uniform(-5e6, 5e6));
    const S = spec.sockets;
    this.pkgUj = new Float64Array(S);
    this.dramUj = new Float64Array(S);
    this.coreUj = new Float64Array(S);
    this.busyNs = new Float64Array(S);
    this.guestNs = new Float64Array(S);
    this.freqMhz = new Float64Array(S).fill(spec.fmaxMhz);
    const range = spec.raplMaxRangeUj;
    // counters run since boot: start anywhere in the range (near the top on small-range hosts so wraps come early)
    const startFrac = (): number => (range < 1e11 ? rng.uniform(0.7, 0.97) : rng.uniform(0, 0.97));
    for (let s = 0; s < S; s++) {
      this.pkgUj[s] = startFrac() * range;
      this.dramUj[s] = startFrac() * range;
      this.coreUj[s] = startFrac() * range;
    }
    this.psysUj = startFrac() * range;
    for (let g = 0; g < spec.gpuCount; g++) {
      const pci = `0000:${(0x17 + 0x20 * g).toString(16).padStart(2, '0')}:00.0`;
      this.gpuList.push({ index: g, pci, uuid: `GPU-${hashHex(hostId + pci)}`, energyMj: Math.floor(rng.uniform(1e8, 5e9)), powerW: GPU_IDLE_W, utilPct: 0, memUtilPct: 0, contexts: 0, samples: [], utilSamples: [] });
    }
    this.bmcJ = rng.uniform(1e6, 1e8);
    this.fs = new MemHostFs();
    this.buildStaticTree();
    this.clock = {
      monoNs: () => this.mono0Ns + Math.round(this.elapsedS * 1e9),
      wallUnixNs: () => this.wall0Ns + Math.round(this.elapsedS * 1e9) + this.wallJitterNs,
    };
    this.domains = { listDomains: async () => this.listDomains() };
    this.gpus = { read: () => this.readGpus() };
    this.perf = { supported: () => spec.perfSupported, read: (p) => this.readPerf(p) };
    this.bmc = {
      read: async (): Promise<BmcReading> => ({ energyJoules: spec.bmcEnergyCounter ? Math.floor(this.bmcJ) : undefined, powerWatts: Math.round(this.lastWallW) }),
    };
    this.processOwners = { ownerOf: (pid) => this.pids.get(pid) };
  }

  get gpuPciAddresses(): string[] {
    return this.gpuList.map((g) => g.pci);
  }

  // ------------------------------------------------------------------ inventory

  /** Places a VM on this host: new domain id, qemu pid, taps, cgroup (counters from 0). */
  addVm(vm: SimVm, gpuDevice: number | undefined): void {
    vm.domainId = this.nextDomainId++;
    vm.qemuPid = 10_000 + vm.domainId * 7;
    vm.socket = this.vms.length % this.spec.sockets;
    vm.taps = [`vnet${this.nextTap++}`];
    vm.state = 'running';
    vm.absentSteps = 0;
    vm.extraLlcMissesPerS = 0;
    vm.startedMonoNs = this.clock.monoNs();
    vm.resetCounters();
    if (gpuDevice !== undefined && gpuDevice < this.gpuList.length) {
      const passthrough = this.spec.gpuMode === 'passthrough';
      vm.gpu = { device: gpuDevice, passthrough, pids: passthrough ? [vm.qemuPid] : [50_000 + vm.domainId * 11, 50_001 + vm.domainId * 11] };
    } else vm.gpu = undefined;
    this.vms.push(vm);
    this.pids.set(vm.qemuPid, vm.uuid);
    if (vm.gpu) for (const p of vm.gpu.pids) this.pids.set(p, vm.uuid);
    let acc = this.truthVms.get(vm.uuid);
    if (!acc) {
      acc = { uuid: vm.uuid, name: vm.name, tenant: vm.tenant, cls: vm.cls, dyn: zero(), stat: zero(), cpuSeconds: 0 };
      this.truthVms.set(vm.uuid, acc);
    }
    this.accs.push(acc);
    this.addVmTree(vm);
  }

  /** Removes a VM (stopped, or migrated away): its domain, cgroup and taps vanish; its truth stays. */
  removeVm(uuid: string): SimVm | undefined {
    const i = this.vms.findIndex((v) => v.uuid === uuid);
    if (i < 0) return undefined;
    const vm = this.vms[i]!;
    this.vms.splice(i, 1);
    this.accs.splice(i, 1);
    this.pids.delete(vm.qemuPid);
    if (vm.gpu) for (const p of vm.gpu.pids) this.pids.delete(p);
    this.removeVmTree(vm);
    return vm;
  }

  private listDomains(): DomainInfo[] {
    return this.vms.map((v) => ({
      uuid: v.uuid,
      name: v.name,
      id: v.domainId,
      state: v.state,
      vcpus: v.vcpus,
      memoryBytes: v.memoryBytes,
      tenant: v.tenant,
      gpuPciAddresses: v.gpu?.passthrough ? [this.gpuList[v.gpu.device]!.pci] : [],
      taps: [...v.taps],
      flavor: v.cls,
    }));
  }

  vmCgroupPath(uuid: string): string | undefined {
    const vm = this.vms.find((v) => v.uuid === uuid);
    return vm ? this.cgroupRel(vm) : undefined;
  }

  private cgroupRel(vm: SimVm): string {
    return this.spec.cgroupVersion === 2
      ? `/machine.slice/machine-${systemdEscape(`qemu-${vm.domainId}-${vm.name}`)}.scope`
      : `/machine/qemu-${vm.domainId}-${vm.name}.libvirt-qemu`;
  }

  // ------------------------------------------------------------------ physics

  /** Advances this host by dt seconds of fleet time (its own clock advances dt with a little jitter). */
  step(dtFleet: number, t: number): void {
    const spec = this.spec;
    const S = spec.sockets;
    const jit = this.noise.clockJitterFraction;
    const dt = jit > 0 ? dtFleet * (1 + jit * this.rng.tri()) : dtFleet;
    // noise of this step: a failing RAPL read, a cgroup briefly absent
    this.fs.failing.clear();
    if (this.noise.eioProbability > 0 && this.rng.chance(this.noise.eioProbability)) {
      const s = this.rng.int(0, S - 1);
      this.fs.failing.add(`/sys/class/powercap/${this.raplPrefix()}:${s}/energy_uj`);
    }
    for (const vm of this.vms) {
      if (vm.absentSteps > 0) vm.absentSteps--;
      else if (this.noise.cgroupAbsentProbability > 0 && this.rng.chance(this.noise.cgroupAbsentProbability)) vm.absentSteps = this.rng.int(1, 3);
    }

    // activity
    const n = this.vms.length;
    this.ensureScratch(n);
    const { demand, g, pkgW, dramW, gpuW, restW } = this;
    demand.fill(0);
    let vmCores = 0;
    let ioBs = 0;
    for (const vm of this.vms) {
      vm.updateActivity(t, dt);
      demand[vm.socket]! += vm.busyCores + vm.emuCores;
      vmCores += vm.busyCores + vm.emuCores;
      ioBs += vm.readBs + vm.writeBs + vm.rxBs + vm.txBs;
    }
    const ovhCores = 0.3 + 0.015 * vmCores + 0.25 * (ioBs / 1e9) + (this.migratingOut > 0 ? MIGRATION_TRANSIENT.cores : 0);
    const ovhPerSocket = ovhCores / S;
    for (let s = 0; s < S; s++) {
      const cap = spec.coresPerSocket - ovhPerSocket;
      if (demand[s]! > cap) {
        const f = cap / demand[s]!;
        for (const vm of this.vms) if (vm.socket === s) vm.throttle(f);
        demand[s] = cap;
      }
      const u = Math.min(1, (demand[s]! + ovhPerSocket) / spec.coresPerSocket);
      const fr = 1 - 0.12 * u * u;
      this.freqMhz[s] = spec.fmaxMhz * fr;
      g[s] = fr * fr * (1 + 0.8 * u);
    }
    // a physics family may set the sockets' frequency and the VMs' observable modifiers (IPC, hidden LLC misses)
    this.physics?.prepare({ t, dt, spec, vms: this.vms, socketThreads: demand, ovhPerSocket, freqMhz: this.freqMhz });

    // per-entity dynamic power (W): VMs then overhead (index n)
    // restW: disk + nic (+ fans, added below)
    gpuW.fill(0, 0, n + 1);
    for (let i = 0; i < n; i++) {
      const vm = this.vms[i]!;
      const s = vm.socket;
      const missesPerS = vm.accumulate(dt, this.freqMhz[s]! * 1e6);
      pkgW[i] = g[s]! * (vm.profile.coreW * vm.busyCores + EMU_W_PER_CORE * vm.emuCores);
      this.bwGBs[i] = (missesPerS * 64) / 1e9;
      dramW[i] = DRAM_W_PER_GBS * this.bwGBs[i]!;
      restW[i] = DISK_W_PER_BS * (vm.readBs + vm.writeBs) + NIC_W_PER_BS * (vm.rxBs + vm.txBs);
    }
    let ovhPkg = 0;
    for (let s = 0; s < S; s++) ovhPkg += g[s]! * OVERHEAD_W_PER_CORE * ovhPerSocket;
    pkgW[n] = ovhPkg;
    dramW[n] = 0.3 * ovhCores;
    restW[n] = 0;
    // a physics family rewrites pkgW/dramW of every entity (VMs and overhead) and the overhead's per-socket split
    if (this.physics) this.physics.power({ spec, vms: this.vms, pkgW, dramW, bwGBs: this.bwGBs, ovhCores, ovhPerSocket, ovhPkgBySocket: this.ovhPkgS, ovhDramBySocket: this.ovhDramS });
    let migW = 0;
    if (this.migratingOut > 0) {
      pkgW[n] += MIGRATION_TRANSIENT.pkgW;
      dramW[n] += MIGRATION_TRANSIENT.dramW;
      restW[n] += MIGRATION_TRANSIENT.nicW;
      migW = MIGRATION_TRANSIENT.pkgW + MIGRATION_TRANSIENT.dramW + MIGRATION_TRANSIENT.nicW;
    }
    for (let s = 0; s < S; s++) {
      if (this.physics) {
        this.ovhPkgS[s]! += migW > 0 ? MIGRATION_TRANSIENT.pkgW / S : 0;
        this.ovhDramS[s]! += migW > 0 ? MIGRATION_TRANSIENT.dramW / S : 0;
      } else {
        this.ovhPkgS[s] = pkgW[n] / S;
        this.ovhDramS[s] = dramW[n] / S;
      }
    }

    // GPUs
    let gpuStaticW = 0;
    const gpuStaticOwners: number[][] = this.gpuList.map(() => []);
    for (const gd of this.gpuList) {
      let demandPct = 0;
      let holders = 0;
      for (const vm of this.vms) {
        if (vm.gpu?.device !== gd.index) continue;
        demandPct += vm.gpuDemandPct;
        if (vm.holdsGpuContext) holders++;
      }
      const scale = demandPct > 100 ? 100 / demandPct : 1;
      const ctxW = holders > 0 ? GPU_CTX_FIRST_W + GPU_CTX_EXTRA_W * (holders - 1) : 0;
      let p = GPU_IDLE_W + ctxW;
      let util = 0;
      let memUtil = 0;
      const tsUs = Math.round(this.clock.monoNs() / 1e3 + dt * 1e6);
      for (let i = 0; i < n; i++) {
        const vm = this.vms[i]!;
        if (vm.gpu?.device !== gd.index) continue;
        const sm = vm.gpuDemandPct * scale;
        const w = GPU_W_PER_SM_PCT * sm * vm.gpuWorkIntensity + (vm.holdsGpuContext ? ctxW / holders : 0);
        gpuW[i] = w;
        p += GPU_W_PER_SM_PCT * sm * vm.gpuWorkIntensity;
        util += sm;
        memUtil += vm.gpuMemUtilPct * scale;
        if (vm.gpu.passthrough || vm.holdsGpuContext) gpuStaticOwners[gd.index]!.push(i);
        if (vm.holdsGpuContext) {
          const per = vm.gpu.pids.length;
          for (const pid of vm.gpu.pids) {
            gd.samples.push({ pid, timeStampUs: tsUs, smUtil: Math.round(sm / per), memUtil: Math.round((vm.gpuMemUtilPct * scale) / per), encUtil: 0, decUtil: 0 });
          }
        }
      }
      if (gd.samples.length > 64) gd.samples.splice(0, gd.samples.length - 64);
      gd.powerW = p;
      gd.utilPct = Math.min(100, util);
      gd.utilSamples.push({ timeStampUs: tsUs, utilPct: gd.utilPct });
      if (gd.utilSamples.length > 64) gd.utilSamples.splice(0, gd.utilSamples.length - 64);
      gd.memUtilPct = Math.min(100, memUtil);
      gd.contexts = holders;
      gd.energyMj += p * dt * 1e3;
      gpuStaticW += GPU_IDLE_W;
    }

    // fans follow the heat; hosts without DRAM zones see DRAM only at the wall
    let dynDc = 0;
    for (let i = 0; i <= n; i++) {
      restW[i]! += FAN_FRACTION * (pkgW[i]! + dramW[i]! + gpuW[i]!);
      dynDc += pkgW[i]! + dramW[i]! + gpuW[i]! + restW[i]!;
    }
    const pkgStaticW = spec.pkgIdleW * S;
    const dramStaticW = spec.dramIdleW * S;
    const dc0 = pkgStaticW + dramStaticW + gpuStaticW + spec.restBaseW;
    const dc = dc0 + dynDc;
    const wall0 = dc0 / psuEff(dc0);
    const wall = dc / psuEff(dc);
    const dLoss = wall - dc - (wall0 - dc0);
    const raplStaticW = pkgStaticW + (spec.dramZones ? dramStaticW : 0);
    const bmcStaticW = wall0 - raplStaticW - gpuStaticW;

    // truth: dynamic per entity, static split among VMs present
    let raplDynTotal = 0;
    let gpuDynTotal = 0;
    const tv = this.accs;
    for (let i = 0; i <= n; i++) {
      const raplDyn = pkgW[i]! + (spec.dramZones ? dramW[i]! : 0);
      const rest = restW[i]! + (spec.dramZones ? 0 : dramW[i]!);
      const x = pkgW[i]! + dramW[i]! + gpuW[i]! + restW[i]!;
      const bmcDyn = rest + (dynDc > 0 ? (dLoss * x) / dynDc : 0);
      raplDynTotal += raplDyn;
      gpuDynTotal += gpuW[i]!;
      const acc = i < n ? tv[i] : undefined;
      if (acc) {
        acc.dyn.rapl += raplDyn * dt;
        acc.dyn.gpu += gpuW[i]! * dt;
        acc.dyn.bmc_rest += bmcDyn * dt;
        acc.cpuSeconds += (this.vms[i]!.busyCores + this.vms[i]!.emuCores) * dt;
      } else {
        this.overheadDyn.rapl += raplDyn * dt;
        this.overheadDyn.gpu += gpuW[i]! * dt;
        this.overheadDyn.bmc_rest += bmcDyn * dt;
      }
    }
    if (this.migratingOut > 0) this.migrationJ += migW * dt;
    this.overheadCpuSeconds += ovhCores * dt;
    // static: 'reserved' policy, default weights 0.5 vCPU / 0.5 memory
    const w = reservedWeights(this.vms, undefined, this.weights);
    if (n === 0) {
      this.unallocatedStatic.rapl += raplStaticW * dt;
      this.unallocatedStatic.bmc_rest += bmcStaticW * dt;
    } else {
      for (let i = 0; i < n; i++) {
        tv[i]!.stat.rapl += raplStaticW * dt * w[i]!;
        tv[i]!.stat.bmc_rest += bmcStaticW * dt * w[i]!;
      }
    }
    for (const gd of this.gpuList) {
      const owners = gpuStaticOwners[gd.index]!;
      if (owners.length === 0) this.unallocatedStatic.gpu += GPU_IDLE_W * dt;
      else {
        const wg = reservedWeights(this.vms, owners, this.weights);
        owners.forEach((i, k) => (tv[i]!.stat.gpu += GPU_IDLE_W * dt * wg[k]!));
      }
    }
    this.staticTotal.rapl += raplStaticW * dt;
    this.staticTotal.gpu += gpuStaticW * dt;
    this.staticTotal.bmc_rest += bmcStaticW * dt;

    // measured = what the counters see
    const raplW = raplStaticW + raplDynTotal;
    const gpuWTotal = gpuStaticW + gpuDynTotal;
    this.measured.rapl += raplW * dt;
    this.measured.gpu += gpuWTotal * dt;
    this.measured.bmc_rest += (wall - raplW - gpuWTotal) * dt;
    this.wallJ += wall * dt;

    // counters
    for (let s = 0; s < S; s++) {
      let p = spec.pkgIdleW + this.ovhPkgS[s]!;
      let d = spec.dramIdleW + this.ovhDramS[s]!;
      for (let i = 0; i < n; i++) {
        if (this.vms[i]!.socket !== s) continue;
        p += pkgW[i]!;
        d += dramW[i]!;
      }
      this.pkgUj[s]! += p * dt * 1e6;
      this.dramUj[s]! += d * dt * 1e6;
      this.coreUj[s]! += (0.35 * spec.pkgIdleW + 0.8 * (p - spec.pkgIdleW)) * dt * 1e6;
      let busy = demand[s]! + ovhPerSocket;
      let guest = 0;
      for (const vm of this.vms) if (vm.socket === s) guest += vm.busyCores;
      busy = Math.min(busy, spec.coresPerSocket);
      this.busyNs[s]! += busy * dt * 1e9;
      this.guestNs[s]! += guest * dt * 1e9;
    }
    this.psysUj += (raplW + (spec.dramZones ? 0 : dramStaticW) + 20) * dt * 1e6;
    this.bmcJ += wall * dt;
    this.lastWallW = wall;
    this.ctxtSwitches += (5000 + 2000 * vmCores) * dt;
    this.elapsedS += dt;
    this.wallJitterNs = jit > 0 ? Math.round(this.rng.tri() * 5e5) : 0;
  }

  oracleFrame(seq: number, bootId = 'sim-boot'): ITelemetryFrame {
    const spec = this.spec;
    const range = spec.raplMaxRangeUj;
    const rp = this.raplPrefix();
    const uj = EnergyUnit.ENERGY_UNIT_MICROJOULE;
    const rapl = EnergySource.ENERGY_SOURCE_RAPL;
    const counters: NonNullable<ITelemetryFrame['counters']> = [];
    for (let s = 0; s < spec.sockets; s++) {
      counters.push({ id: `${rp}:${s}`, source: rapl, domain: 'package', index: s, value: Math.floor(this.pkgUj[s]! % range), unit: uj, maxRange: range });
      if (spec.dramZones) counters.push({ id: `${rp}:${s}:${spec.coreZones ? 1 : 0}`, source: rapl, domain: 'dram', index: s, value: Math.floor(this.dramUj[s]! % range), unit: uj, maxRange: range, parentId: `${rp}:${s}` });
    }
    for (const gd of this.gpuList) {
      counters.push({ id: `gpu:${gd.pci}`, source: EnergySource.ENERGY_SOURCE_GPU, domain: 'gpu', index: gd.index, value: Math.floor(gd.energyMj), unit: EnergyUnit.ENERGY_UNIT_MILLIJOULE, maxRange: 0, device: gd.pci });
    }
    counters.push({ id: 'bmc', source: EnergySource.ENERGY_SOURCE_BMC, domain: 'chassis', index: -1, value: Math.floor(this.bmcJ), unit: EnergyUnit.ENERGY_UNIT_JOULE, maxRange: 0 });
    const vms: IVmSample[] = this.vms.map((v) => {
      const gpus: NonNullable<IVmSample['gpus']> = [];
      if (v.gpu && (v.gpu.passthrough || v.holdsGpuContext)) {
        const gd = this.gpuList[v.gpu.device]!;
        gpus.push({ device: gd.pci, smUtilPct: v.gpu.passthrough ? gd.utilPct : v.gpuDemandPct, memUtilPct: v.gpuMemUtilPct, utilSamples: 1, usedMemoryBytes: v.holdsGpuContext ? v.gpuUsedMemBytes : 0, holdsContext: v.holdsGpuContext, passthrough: v.gpu.passthrough });
      }
      return {
        uuid: v.uuid,
        name: v.name,
        tenant: v.tenant,
        vcpus: v.vcpus,
        memoryBytes: v.memoryBytes,
        state: v.state === 'migrating_out' ? VmState.VM_STATE_MIGRATING_OUT : VmState.VM_STATE_RUNNING,
        cpuTimeNs: Math.floor(v.cpuNs),
        vcpuTimeNs: Array.from(v.vcpuNs, (x) => Math.floor(x)),
        memoryUsedBytes: Math.floor(v.memUsed),
        blockReadBytes: Math.floor(v.blkRead),
        blockWriteBytes: Math.floor(v.blkWrite),
        netRxBytes: Math.floor(v.netRx),
        netTxBytes: Math.floor(v.netTx),
        perf: spec.perfSupported ? { supported: true, cycles: Math.floor(v.cycles), instructions: Math.floor(v.instructions), llcMisses: Math.floor(v.llcMisses), llcReferences: Math.floor(v.llcRefs) } : { supported: false },
        gpus,
        startedMonoNs: v.startedMonoNs,
        hardwareClass: v.cls,
      };
    });
    let busy = 0;
    for (let s = 0; s < spec.sockets; s++) busy += this.busyNs[s]!;
    const ncpu = spec.sockets * spec.coresPerSocket;
    const mono = this.clock.monoNs();
    let freq = 0;
    for (let s = 0; s < spec.sockets; s++) freq += this.freqMhz[s]! / spec.sockets;
    return {
      hostId: this.hostId,
      hardwareClass: this.hardwareClass,
      seq,
      bootId,
      monoNs: mono,
      wallUnixNs: this.clock.wallUnixNs(),
      intervalMs: 1000,
      counters,
      vms,
      hostCpu: { busyNs: Math.floor(busy), idleNs: Math.max(0, Math.floor(mono * ncpu - busy)), onlineCpus: ncpu, avgFreqMhz: Math.round(freq) },
      gpus: this.gpuList.map((gd) => ({ device: gd.pci, index: gd.index, name: 'NVIDIA H100 80GB HBM3', powerMw: Math.round(gd.powerW * 1000), gpuUtilPct: Math.round(gd.utilPct), memUtilPct: Math.round(gd.memUtilPct), smClockMhz: gd.contexts > 0 && gd.utilPct > 1 ? 1980 : 345, memClockMhz: 2619, tempC: Math.round(30 + gd.powerW / 14), contexts: gd.contexts })),
      agentVersion: 'simulator-oracle',
    };
  }

  // per-step scratch (no allocation on the hot path)
  private demand = new Float64Array(0);
  private g = new Float64Array(0);
  private pkgW = new Float64Array(0);
  private dramW = new Float64Array(0);
  private gpuW = new Float64Array(0);
  private restW = new Float64Array(0);
  private weights = new Float64Array(0);
  private bwGBs = new Float64Array(0);
  private ovhPkgS = new Float64Array(0);
  private ovhDramS = new Float64Array(0);

  private ensureScratch(n: number): void {
    if (this.demand.length !== this.spec.sockets) {
      this.demand = new Float64Array(this.spec.sockets);
      this.g = new Float64Array(this.spec.sockets);
      this.ovhPkgS = new Float64Array(this.spec.sockets);
      this.ovhDramS = new Float64Array(this.spec.sockets);
    }
    if (this.pkgW.length < n + 1) {
      const cap = Math.max(16, 2 * (n + 1));
      this.pkgW = new Float64Array(cap);
      this.dramW = new Float64Array(cap);
      this.gpuW = new Float64Array(cap);
      this.restW = new Float64Array(cap);
      this.weights = new Float64Array(cap);
      this.bwGBs = new Float64Array(cap);
    }
  }

  // ------------------------------------------------------------------ sources

  private readGpus(): GpuReading[] {
    return this.gpuList.map((gd) => {
      const samples = gd.samples;
      gd.samples = [];
      const utilSamples = gd.utilSamples;
      gd.utilSamples = [];
      const running: GpuReading['running'] = [];
      for (const vm of this.vms) {
        if (vm.gpu?.device !== gd.index || !vm.holdsGpuContext) continue;
        for (const pid of vm.gpu.pids) running.push({ pid, usedGpuMemoryBytes: Math.round(vm.gpuUsedMemBytes / vm.gpu.pids.length) });
      }
      return {
        index: gd.index,
        pciBusId: gd.pci,
        name: 'NVIDIA H100 80GB HBM3',
        uuid: gd.uuid,
        energyMj: Math.floor(gd.energyMj),
        powerMw: Math.round(gd.powerW * 1000),
        gpuUtilPct: Math.round(gd.utilPct),
        memUtilPct: Math.round(gd.memUtilPct),
        smClockMhz: gd.contexts > 0 && gd.utilPct > 1 ? 1980 : 345,
        memClockMhz: 2619,
        tempC: Math.round(30 + gd.powerW / 14),
        processUtil: samples,
        utilSamples,
        running,
        migProfile: '',
      };
    });
  }

  private readPerf(cgroupPath: string): PerfReading | undefined {
    if (!this.spec.perfSupported) return undefined;
    const vm = this.byCgroup.get(cgroupPath.endsWith('/') ? cgroupPath.slice(0, -1) : cgroupPath);
    if (!vm || vm.absentSteps > 0) return undefined;
    return { cycles: Math.floor(vm.cycles), instructions: Math.floor(vm.instructions), llcMisses: Math.floor(vm.llcMisses), llcReferences: Math.floor(vm.llcRefs) };
  }

  // ------------------------------------------------------------------ file tree

  private raplPrefix(): string {
    return this.spec.vendor === 'amd' ? 'amd-rapl' : 'intel-rapl';
  }

  private buildStaticTree(): void {
    const fs = this.fs;
    const spec = this.spec;
    const range = spec.raplMaxRangeUj;
    const rp = this.raplPrefix();
    const zone = (dir: string, name: string, read: () => number): void => {
      fs.addFile(`${dir}/name`, () => `${name}\n`);
      fs.addFile(`${dir}/energy_uj`, () => `${Math.floor(read() % range)}\n`);
      fs.addFile(`${dir}/max_energy_range_uj`, () => `${range}\n`);
      fs.addFile(`${dir}/enabled`, () => '1\n');
    };
    for (let s = 0; s < spec.sockets; s++) {
      const dir = `/sys/class/powercap/${rp}:${s}`;
      zone(dir, `package-${s}`, () => this.pkgUj[s]!);
      let k = 0;
      if (spec.coreZones) zone(`/sys/class/powercap/${rp}:${s}:${k++}`, 'core', () => this.coreUj[s]!);
      if (spec.dramZones) zone(`/sys/class/powercap/${rp}:${s}:${k++}`, 'dram', () => this.dramUj[s]!);
    }
    if (spec.psys) zone(`/sys/class/powercap/${rp}:${spec.sockets}`, 'psys', () => this.psysUj);

    const ncpu = spec.sockets * spec.coresPerSocket;
    fs.addFile('/sys/devices/system/cpu/online', () => `0-${ncpu - 1}\n`);
    if (spec.cpufreq) {
      for (let c = 0; c < ncpu; c++) {
        const s = Math.floor(c / spec.coresPerSocket);
        fs.addFile(`/sys/devices/system/cpu/cpu${c}/cpufreq/scaling_cur_freq`, () => `${Math.round(this.freqMhz[s]! * 1000)}\n`);
      }
    }
    fs.addFile('/proc/stat', () => this.procStat());
    fs.addFile('/proc/uptime', () => `${(this.clock.monoNs() / 1e9).toFixed(2)} ${((this.clock.monoNs() / 1e9) * ncpu * 0.8).toFixed(2)}\n`);
    for (const nic of ['lo', 'eno1']) {
      fs.addFile(`/sys/class/net/${nic}/statistics/rx_bytes`, () => '0\n');
      fs.addFile(`/sys/class/net/${nic}/statistics/tx_bytes`, () => '0\n');
    }
    if (spec.cgroupVersion === 2) {
      fs.addFile('/sys/fs/cgroup/cgroup.controllers', () => 'cpuset cpu io memory hugetlb pids rdma misc\n');
      fs.addDir('/sys/fs/cgroup/machine.slice');
      fs.addDir('/sys/fs/cgroup/system.slice');
    } else {
      for (const c of ['cpuacct', 'memory', 'blkio', 'perf_event']) fs.addDir(`/sys/fs/cgroup/${c}/machine`);
    }
  }

  private procStat(): string {
    const spec = this.spec;
    const ncpu = spec.sockets * spec.coresPerSocket;
    const uptimeS = this.clock.monoNs() / 1e9;
    const tick = (ns: number): number => Math.floor(ns / 1e7); // USER_HZ = 100
    // guest time is part of user time (as Linux accounts it); the rest of busy splits user/system/irq/softirq
    const line = (label: string, busyNs: number, guestNs: number, totalNs: number): string => {
      const host = Math.max(0, busyNs - guestNs);
      const user = tick(guestNs + host * 0.5);
      const system = tick(host * 0.4);
      const irq = tick(host * 0.04);
      const softirq = tick(host * 0.06);
      const total = tick(totalNs);
      const idleAll = Math.max(0, total - user - system - irq - softirq);
      const iowait = Math.floor(idleAll * 0.01);
      return `${label} ${user} 0 ${system} ${idleAll - iowait} ${iowait} ${irq} ${softirq} 0 ${tick(guestNs)} 0`;
    };
    let busy = 0;
    let guest = 0;
    for (let s = 0; s < spec.sockets; s++) {
      busy += this.busyNs[s]!;
      guest += this.guestNs[s]!;
    }
    const lines = [line('cpu ', busy, guest, uptimeS * 1e9 * ncpu)];
    for (let c = 0; c < ncpu; c++) {
      const s = Math.floor(c / spec.coresPerSocket);
      lines.push(line(`cpu${c}`, this.busyNs[s]! / spec.coresPerSocket, this.guestNs[s]! / spec.coresPerSocket, uptimeS * 1e9));
    }
    lines.push(`intr ${Math.floor(this.ctxtSwitches / 2)}`, `ctxt ${Math.floor(this.ctxtSwitches)}`, `btime ${Math.floor((this.clock.wallUnixNs() / 1e9 - uptimeS))}`, `processes ${10000 + this.nextDomainId * 50}`, `procs_running ${1 + Math.round(busy > 0 ? this.vms.length : 0)}`, 'procs_blocked 0');
    return `${lines.join('\n')}\n`;
  }

  private addVmTree(vm: SimVm): void {
    const fs = this.fs;
    const visible = (): boolean => vm.absentSteps === 0;
    const rel = this.cgroupRel(vm);
    this.byCgroup.set(rel, vm);
    const usage = (ns: number): string => `usage_usec ${Math.floor(ns / 1e3)}\nuser_usec ${Math.floor(ns * 0.9e-3)}\nsystem_usec ${Math.floor(ns / 1e3) - Math.floor(ns * 0.9e-3)}\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n`;
    if (this.spec.cgroupVersion === 2) {
      const dir = `/sys/fs/cgroup${rel}`;
      fs.addDir(dir, visible);
      fs.addFile(`${dir}/cpu.stat`, () => usage(vm.cpuNs));
      fs.addFile(`${dir}/memory.current`, () => `${Math.floor(vm.memUsed)}\n`);
      fs.addFile(`${dir}/io.stat`, () => `253:0 rbytes=${Math.floor(vm.blkRead)} wbytes=${Math.floor(vm.blkWrite)} rios=${Math.floor(vm.blkRead / 65536)} wios=${Math.floor(vm.blkWrite / 65536)} dbytes=0 dios=0\n`);
      fs.addFile(`${dir}/cgroup.procs`, () => `${vm.qemuPid}\n`);
      for (let k = 0; k < vm.vcpus; k++) fs.addFile(`${dir}/libvirt/vcpu${k}/cpu.stat`, () => usage(vm.vcpuNs[k]!));
      fs.addFile(`${dir}/libvirt/emulator/cpu.stat`, () => usage(vm.emuNs));
    } else {
      const leaf = `qemu-${vm.domainId}-${vm.name}.libvirt-qemu`;
      const cpu = `/sys/fs/cgroup/cpuacct/machine/${leaf}`;
      fs.addDir(cpu, visible);
      fs.addFile(`${cpu}/cpuacct.usage`, () => `${Math.floor(vm.cpuNs)}\n`);
      fs.addFile(`${cpu}/cgroup.procs`, () => `${vm.qemuPid}\n`);
      for (let k = 0; k < vm.vcpus; k++) fs.addFile(`${cpu}/vcpu${k}/cpuacct.usage`, () => `${Math.floor(vm.vcpuNs[k]!)}\n`);
      fs.addFile(`${cpu}/emulator/cpuacct.usage`, () => `${Math.floor(vm.emuNs)}\n`);
      const mem = `/sys/fs/cgroup/memory/machine/${leaf}`;
      fs.addDir(mem, visible);
      fs.addFile(`${mem}/memory.usage_in_bytes`, () => `${Math.floor(vm.memUsed)}\n`);
      const blk = `/sys/fs/cgroup/blkio/machine/${leaf}`;
      fs.addDir(blk, visible);
      fs.addFile(`${blk}/blkio.throttle.io_service_bytes`, () => {
        const r = Math.floor(vm.blkRead);
        const w = Math.floor(vm.blkWrite);
        return `253:0 Read ${r}\n253:0 Write ${w}\n253:0 Sync ${w}\n253:0 Async ${r}\n253:0 Discard 0\n253:0 Total ${r + w}\nTotal ${r + w}\n`;
      });
      fs.addDir(`/sys/fs/cgroup/perf_event/machine/${leaf}`, visible);
    }
    // host-side taps: the tap's rx is what the guest transmitted (as on real hosts)
    for (const tap of vm.taps) {
      fs.addFile(`/sys/class/net/${tap}/statistics/rx_bytes`, () => `${Math.floor(vm.netTx)}\n`);
      fs.addFile(`/sys/class/net/${tap}/statistics/tx_bytes`, () => `${Math.floor(vm.netRx)}\n`);
    }
  }

  private removeVmTree(vm: SimVm): void {
    const rel = this.cgroupRel(vm);
    this.byCgroup.delete(rel);
    if (this.spec.cgroupVersion === 2) this.fs.remove(`/sys/fs/cgroup${rel}`);
    else {
      const leaf = `qemu-${vm.domainId}-${vm.name}.libvirt-qemu`;
      for (const c of ['cpuacct', 'memory', 'blkio', 'perf_event']) this.fs.remove(`/sys/fs/cgroup/${c}/machine/${leaf}`);
    }
    for (const tap of vm.taps) this.fs.remove(`/sys/class/net/${tap}`);
  }
}

/** PSU efficiency at DC load (W): 90 % near idle rising to 94.5 % at 2 kW. */
export function psuEff(dcW: number): number {
  return 0.9 + 0.045 * Math.min(1, dcW / 2000);
}

/**
 * 'reserved' static weights (0.5 vCPU share + 0.5 memory share) over `vms` (or the subset `only`),
 * written into `out` (index k = k-th VM of the set) and returned.
 */
export function reservedWeights(vms: readonly SimVm[], only: readonly number[] | undefined, out: Float64Array): Float64Array {
  const len = only ? only.length : vms.length;
  let c = 0;
  let m = 0;
  for (let k = 0; k < len; k++) {
    const v = vms[only ? only[k]! : k]!;
    c += v.vcpus;
    m += v.memoryBytes;
  }
  for (let k = 0; k < len; k++) {
    const v = vms[only ? only[k]! : k]!;
    out[k] = 0.5 * (c > 0 ? v.vcpus / c : 0) + 0.5 * (m > 0 ? v.memoryBytes / m : 0);
  }
  return out;
}

function hashHex(s: string): string {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193;
  for (let i = 0; i < s.length; i++) {
    h1 = Math.imul(h1 ^ s.charCodeAt(i), 16777619) >>> 0;
    h2 = Math.imul(h2 ^ s.charCodeAt(i), 2246822519) >>> 0;
  }
  const hex = (h1.toString(16).padStart(8, '0') + h2.toString(16).padStart(8, '0')).repeat(2);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

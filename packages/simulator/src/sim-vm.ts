/**
 * One simulated VM: an activity process (phases, bursts) per class, and the cumulative counters an
 * agent reads (cgroup CPU, per-vCPU, memory, block and network bytes, perf events).
 */
import type { DomainState } from '@wattsplit/wire';
import type { Prng } from './prng.js';
import { CLASS_PROFILES, type VmClass, type VmClassProfile } from './vm-classes.js';

/** Where a VM's GPU work runs. */
export interface VmGpuBinding {
  /** Index of the device on its host. */
  device: number;
  passthrough: boolean;
  /** Host pids of the VM's GPU processes (the qemu pid for passthrough). */
  pids: number[];
}

export interface VmSpec {
  uuid: string;
  name: string;
  tenant: string;
  cls: VmClass;
  vcpus: number;
  memoryBytes: number;
  /** GPU work intensity per SM-% (1.0 tensor-core bound, ~0.66 memory-bound). */
  gpuIntensity: number;
  startAtS: number;
  stopAtS: number;
}

// ai_training phases: 0 train, 1 eval, 2 data load, 3 checkpoint, 4 idle holding the GPU context
const AI_PHASE_MIN_S = [20, 5, 5, 5, 10];
const AI_PHASE_MEAN_S = [120, 30, 20, 15, 40];
const AI_SM_LO = [85, 15, 3, 0, 0];
const AI_SM_HI = [99, 30, 8, 0, 0];
const AI_CPU = [0.15, 0.3, 0.6, 0.25, 0.03];

export class SimVm {
  readonly uuid: string;
  readonly name: string;
  readonly tenant: string;
  readonly cls: VmClass;
  readonly profile: VmClassProfile;
  readonly vcpus: number;
  readonly memoryBytes: number;
  readonly gpuIntensity: number;
  readonly startAtS: number;
  stopAtS: number;
  private readonly rng: Prng;
  private readonly vcpuWeights: Float64Array;

  // placement on its current host (reassigned on migration)
  domainId = -1;
  qemuPid = 0;
  socket = 0;
  taps: string[] = [];
  gpu: VmGpuBinding | undefined;
  state: DomainState = 'running';
  startedMonoNs = 0;
  /** Steps left during which the VM's cgroup is absent (noise). */
  absentSteps = 0;

  // activity state
  private phase = 0;
  private phaseLeftS = 0;
  private level = 0;
  private burstLeftS = 0;
  private burstAmp = 0;
  private readonly periodS: number;
  private readonly phaseOffset: number;
  private readonly baseLevel: number;

  // per-step observables (rates over the last step)
  private vcpuU = 0;
  private throttleF = 1;
  busyCores = 0; // vCPU threads
  emuCores = 0; // qemu emulator / iothreads, same cgroup
  ipc = 0;
  readBs = 0;
  writeBs = 0;
  rxBs = 0; // guest receive
  txBs = 0; // guest transmit
  gpuDemandPct = 0;
  gpuMemUtilPct = 0;
  gpuWorkIntensity = 0;
  holdsGpuContext = false;
  gpuUsedMemBytes = 0;
  /** LLC misses/s on top of the class's misses per instruction (hidden memory traffic set by a physics family; 0 otherwise). */
  extraLlcMissesPerS = 0;

  // cumulative counters of the current cgroup (reset when the VM moves host)
  readonly vcpuNs: Float64Array;
  emuNs = 0;
  blkRead = 0;
  blkWrite = 0;
  netRx = 0;
  netTx = 0;
  cycles = 0;
  instructions = 0;
  llcRefs = 0;
  llcMisses = 0;
  memUsed = 0;

  constructor(spec: VmSpec, rng: Prng) {
    this.uuid = spec.uuid;
    this.name = spec.name;
    this.tenant = spec.tenant;
    this.cls = spec.cls;
    this.profile = CLASS_PROFILES[spec.cls];
    this.vcpus = spec.vcpus;
    this.memoryBytes = spec.memoryBytes;
    this.gpuIntensity = spec.gpuIntensity;
    this.startAtS = spec.startAtS;
    this.stopAtS = spec.stopAtS;
    this.rng = rng;
    this.vcpuWeights = new Float64Array(spec.vcpus);
    for (let k = 0; k < spec.vcpus; k++) this.vcpuWeights[k] = rng.uniform(0.75, 1.25);
    this.vcpuNs = new Float64Array(spec.vcpus);
    this.periodS = rng.uniform(240, 720);
    this.phaseOffset = rng.uniform(0, 2 * Math.PI);
    this.baseLevel = spec.cls === 'web' ? rng.uniform(0.06, 0.18) : spec.cls === 'database' ? rng.uniform(0.15, 0.3) : 0;
    this.phase = rng.int(0, 1);
    this.phaseLeftS = rng.uniform(0, 60);
    this.memUsed = spec.memoryBytes * this.profile.memFrac * 0.9;
  }

  /** Starts a fresh cgroup (VM start or arrival by migration): counters from 0. */
  resetCounters(): void {
    this.vcpuNs.fill(0);
    this.emuNs = this.blkRead = this.blkWrite = this.netRx = this.netTx = 0;
    this.cycles = this.instructions = this.llcRefs = this.llcMisses = 0;
  }

  get cpuNs(): number {
    let s = this.emuNs;
    for (let k = 0; k < this.vcpuNs.length; k++) s += this.vcpuNs[k]!;
    return s;
  }

  /** Advances the activity process by dt seconds at time t: sets the per-step rates (not yet the counters). */
  updateActivity(t: number, dt: number): void {
    const r = this.rng;
    const p = this.profile;
    let u = 0;
    let io = 0;
    this.gpuDemandPct = 0;
    this.gpuMemUtilPct = 0;
    this.gpuWorkIntensity = 0;
    this.holdsGpuContext = false;
    let readBoost = 1;
    let writeBs = -1;
    switch (this.cls) {
      case 'batch': {
        this.phaseLeftS -= dt;
        if (this.phaseLeftS <= 0) {
          this.phase = this.phase === 1 ? 0 : 1;
          this.phaseLeftS = this.phase === 1 ? 10 + r.exp(90) : 5 + r.exp(40);
          this.level = this.phase === 1 ? r.uniform(0.85, 1) : r.uniform(0.01, 0.05);
        }
        u = this.level + 0.03 * r.tri();
        io = this.phase === 1 ? 1 : 0.05;
        break;
      }
      case 'database': {
        if (this.burstLeftS > 0) this.burstLeftS -= dt;
        else if (r.chance(0.04 * dt)) {
          this.burstLeftS = r.uniform(5, 20);
          this.burstAmp = r.uniform(0.3, 0.6);
        }
        u = this.baseLevel + 0.12 * Math.sin((2 * Math.PI * t) / this.periodS + this.phaseOffset) + (this.burstLeftS > 0 ? this.burstAmp : 0) + 0.04 * r.tri();
        io = Math.min(1, u / 0.6);
        break;
      }
      case 'web': {
        if (this.burstLeftS > 0) this.burstLeftS -= dt;
        else if (r.chance(0.06 * dt)) {
          this.burstLeftS = r.uniform(2, 10);
          this.burstAmp = r.uniform(0.3, 0.7);
        }
        u = this.baseLevel + (this.burstLeftS > 0 ? this.burstAmp : 0) + 0.03 * r.tri();
        io = Math.min(1, u / 0.5);
        break;
      }
      case 'ai_training': {
        // phases: 0 train, 1 eval, 2 data load, 3 checkpoint, 4 idle holding the GPU context
        this.phaseLeftS -= dt;
        if (this.phaseLeftS <= 0) {
          const x = r.next();
          switch (this.phase) {
            case 0:
              this.phase = x < 0.5 ? 1 : x < 0.8 ? 3 : 4;
              break;
            case 1:
              this.phase = x < 0.7 ? 0 : 2;
              break;
            case 3:
              this.phase = x < 0.7 ? 0 : 4;
              break;
            default:
              this.phase = this.phase === 2 ? 0 : 2;
          }
          this.phaseLeftS = AI_PHASE_MIN_S[this.phase]! + r.exp(AI_PHASE_MEAN_S[this.phase]!);
          this.level = AI_SM_LO[this.phase]! + (AI_SM_HI[this.phase]! - AI_SM_LO[this.phase]!) * r.next();
        }
        u = AI_CPU[this.phase]! + 0.03 * r.tri();
        io = this.phase === 2 ? 1 : 0.05;
        readBoost = this.phase === 2 ? 2.5 : 1;
        if (this.phase === 3) writeBs = r.uniform(250e6, 350e6);
        if (this.gpu) {
          this.holdsGpuContext = true;
          const share = this.gpu.passthrough ? 1 : 0.55;
          this.gpuDemandPct = this.level > 0 ? Math.max(0, Math.min(100, (this.level + 2 * r.tri()) * share)) : 0;
          this.gpuWorkIntensity = this.phase === 0 ? this.gpuIntensity : 0.5;
          this.gpuMemUtilPct = this.gpuDemandPct * (this.gpuIntensity < 0.8 ? 0.85 : 0.4);
          this.gpuUsedMemBytes = (this.gpu.passthrough ? 60 : 18) * 2 ** 30;
        }
        break;
      }
      case 'idle': {
        if (this.burstLeftS > 0) this.burstLeftS -= dt;
        else if (r.chance(0.005 * dt)) this.burstLeftS = 3;
        u = (this.burstLeftS > 0 ? 0.5 : 0.015) + 0.01 * r.tri();
        io = 0.05;
        break;
      }
    }
    u = Math.min(1, Math.max(0.002, u));
    this.vcpuU = u;
    this.throttleF = 1;
    let busy = 0;
    for (let k = 0; k < this.vcpus; k++) busy += Math.min(1, u * this.vcpuWeights[k]!);
    this.busyCores = busy;
    this.ipc = p.ipc * (1 + 0.08 * r.tri()) * (this.cls === 'batch' && this.phase === 0 ? 0.5 : 1);
    const n = 1 + 0.1 * r.tri();
    this.readBs = p.readMBs * 1e6 * io * readBoost * n;
    this.writeBs = writeBs >= 0 ? writeBs : p.writeMBs * 1e6 * io * n;
    this.rxBs = p.rxMBs * 1e6 * io * n;
    this.txBs = p.txMBs * 1e6 * io * n;
    this.emuCores = 0.01 + 0.02 * this.busyCores + ((this.readBs + this.writeBs + this.rxBs + this.txBs) / 1e9) * 0.4;
    const target = this.memoryBytes * p.memFrac * (0.9 + 0.1 * io);
    this.memUsed += (target - this.memUsed) * Math.min(1, dt / 30);
  }

  /** Scales this step's vCPU demand down when the socket is over-committed (steal time). */
  throttle(f: number): void {
    this.throttleF *= f;
    this.busyCores *= f;
    this.emuCores *= f;
  }

  /** Accumulates this step's counters: dt seconds at `freqHz` on its socket. Returns LLC misses/s. */
  accumulate(dt: number, freqHz: number): number {
    const u = this.vcpuU;
    const f = this.throttleF * dt * 1e9;
    for (let k = 0; k < this.vcpus; k++) this.vcpuNs[k]! += Math.min(1, u * this.vcpuWeights[k]!) * f;
    this.emuNs += this.emuCores * dt * 1e9;
    const cyc = (this.busyCores + this.emuCores) * freqHz * dt;
    const ins = cyc * this.ipc;
    const extra = this.extraLlcMissesPerS * dt;
    const misses = (ins * this.profile.llcMissPki) / 1000 + extra;
    this.cycles += cyc;
    this.instructions += ins;
    this.llcRefs += (ins * this.profile.llcRefPki) / 1000 + extra;
    this.llcMisses += misses;
    this.blkRead += this.readBs * dt;
    this.blkWrite += this.writeBs * dt;
    this.netRx += this.rxBs * dt;
    this.netTx += this.txBs * dt;
    return misses / dt;
  }
}

/**
 * One host's physics family: replaces the legacy package/DRAM law of `SimHostImpl.step` (the hook calls
 * `prepare` after the VMs' activity is known and before the counters accumulate, then `power` after the
 * legacy per-entity power is computed) and defines the ground truth of non-additive power.
 *
 * Base law of every family host (no g(u)): entity e's package activity a_e = coreW_class · s_e · k_e(t) ·
 * busy_e + EMU_W · emu_e, with s_e ∈ [0.85, 1.15] a per-VM constant and k_e(t) = 1 unless a family below
 * changes it. Package dynamic power of socket s with the set E of entities on it:
 *
 *   P_pkg(E) = h(E) · m(E) · Σ_{e∈E} a_e · i_e(E) + [memory_bound] uncoreW(Σ_{e∈E} B_e)
 *   h = corePowerFactor(turboFr(active physical cores))  [turbo_bins], else 1 (fixed 0.85 f_max)
 *   m = smtPacking(threads, logical CPUs).powerFactor     [smt], else 1
 *   i_e = 1 − κ_e · min(1, others' threads / (L/2))       [interference], else 1
 *   k_e(t) = the VM's current phase level                 [phases]
 *   B_e = LLC-miss traffic (GB/s), incl. hidden traffic busy_e · β_e(t) [memory_bound]
 *   P_dram(E) = DRAM_W_PER_GBS · Σ B_e (+ 0.3 W per hypervisor core)
 *
 * Truth (non-additive): each entity's stand-alone marginal power m_e = P_pkg({e}) − P_pkg(∅) (the socket
 * with only e's activity: its own turbo bin, no SMT sibling of another entity, no neighbours), scaled by
 * P_pkg(E) / Σ m_e so the entities sum to the measured dynamic package power exactly. DRAM is linear in
 * traffic, so each entity's DRAM power is its own. The hypervisor is an entity like a VM.
 */
import { DRAM_W_PER_GBS, EMU_W_PER_CORE, OVERHEAD_W_PER_CORE, type HostSpec } from '../sim-host.js';
import type { Prng } from '../prng.js';
import type { SimVm } from '../sim-vm.js';
import type { FamilyName } from './families.js';
import { FIXED_FR, corePowerFactor, smtPacking, turboFr, uncoreW } from './laws.js';

export interface PhysicsPrepareStep {
  t: number;
  dt: number;
  spec: Readonly<HostSpec>;
  vms: readonly SimVm[];
  /** Busy VM threads (vCPU + emulator cores) per socket after throttling. */
  socketThreads: Float64Array;
  /** Hypervisor cores per socket. */
  ovhPerSocket: number;
  /** Out: each socket's frequency, MHz (cpufreq files and perf cycles follow it). */
  freqMhz: Float64Array;
}

export interface PhysicsPowerStep {
  spec: Readonly<HostSpec>;
  vms: readonly SimVm[];
  /** In: legacy per-entity power (VMs 0..n−1, hypervisor n); out: this family's truth, W. */
  pkgW: Float64Array;
  dramW: Float64Array;
  /** LLC-miss memory traffic of each VM this step, GB/s. */
  bwGBs: Float64Array;
  ovhCores: number;
  ovhPerSocket: number;
  /** Out: the hypervisor's package / DRAM power on each socket, W. */
  ovhPkgBySocket: Float64Array;
  ovhDramBySocket: Float64Array;
}

export interface HostPhysics {
  readonly families: ReadonlySet<FamilyName>;
  prepare(step: PhysicsPrepareStep): void;
  power(step: PhysicsPowerStep): void;
}

export interface FamilyPhysicsOptions {
  families: ReadonlySet<FamilyName>;
  rng: Prng;
  /** phases: simulated second at which each VM's phase mix changes (training vs billing half). */
  shiftAtS: number;
}

/** Per-VM hidden state of a family host (keyed by VM uuid; a VM arriving by migration starts fresh). */
interface VmPhys {
  scale: number;
  // phases
  levels: [number, number, number];
  before: [number, number, number];
  after: [number, number, number];
  level: number;
  phaseLeftS: number;
  // memory_bound
  memBound: boolean;
  betaMax: number;
  beta: number;
  betaLeftS: number;
  // interference
  kappa: number;
  /** This step's interference factor i_e (full socket). */
  inter: number;
  rng: Prng;
}

/** Hypervisor DRAM power per core (as the legacy law), W. */
const OVH_DRAM_W_PER_CORE = 0.3;
const PHASE_MIN_S = 60;
const PHASE_MEAN_S = 240;
const BETA_MIN_S = 60;
const BETA_MEAN_S = 300;

export class FamilyPhysics implements HostPhysics {
  readonly families: ReadonlySet<FamilyName>;
  private readonly rng: Prng;
  private readonly shiftAtS: number;
  private readonly state = new Map<string, VmPhys>();
  private t = 0;
  private readonly turbo: boolean;
  private readonly smt: boolean;
  private readonly phases: boolean;
  private readonly mem: boolean;
  private readonly inter: boolean;

  constructor(opts: FamilyPhysicsOptions) {
    this.families = opts.families;
    this.rng = opts.rng;
    this.shiftAtS = opts.shiftAtS;
    this.turbo = opts.families.has('turbo_bins');
    this.smt = opts.families.has('smt');
    this.phases = opts.families.has('phases');
    this.mem = opts.families.has('memory_bound');
    this.inter = opts.families.has('interference');
  }

  /** The hidden state of a VM (for tests: its current phase level, β and κ). */
  hidden(uuid: string): { scale: number; level: number; memBound: boolean; beta: number; kappa: number } | undefined {
    const s = this.state.get(uuid);
    return s ? { scale: s.scale, level: s.level, memBound: s.memBound, beta: s.beta, kappa: s.kappa } : undefined;
  }

  private vmState(vm: SimVm): VmPhys {
    let s = this.state.get(vm.uuid);
    if (s) return s;
    const r = this.rng.fork(saltOf(vm.uuid));
    const levels: [number, number, number] = [r.uniform(0.5, 0.8), r.uniform(0.9, 1.1), r.uniform(1.3, 1.8)];
    // the phase mix: one dominant level before the shift and another one after it
    const a = r.int(0, 2);
    const b = (a + r.int(1, 2)) % 3;
    const mix = (k: number): [number, number, number] => [0, 1, 2].map((j) => (j === k ? 0.7 : 0.15)) as [number, number, number];
    const memBound = this.mem && (vm.cls === 'database' || r.chance(0.35));
    const betaMax = r.uniform(1, 4);
    s = {
      scale: r.uniform(0.85, 1.15),
      levels,
      before: mix(a),
      after: mix(b),
      level: 1,
      phaseLeftS: 0,
      memBound,
      betaMax,
      beta: memBound ? betaMax * r.uniform(0.3, 1) : 0,
      betaLeftS: BETA_MIN_S + r.exp(BETA_MEAN_S),
      kappa: r.chance(0.6) ? r.uniform(0.1, 0.35) : 0,
      inter: 1,
      rng: r,
    };
    if (this.phases) s.level = levels[pick(r, this.t < this.shiftAtS ? s.before : s.after)]!;
    s.phaseLeftS = PHASE_MIN_S + r.exp(PHASE_MEAN_S);
    this.state.set(vm.uuid, s);
    return s;
  }

  prepare(step: PhysicsPrepareStep): void {
    const { spec, vms, dt } = step;
    this.t = step.t;
    const L = spec.coresPerSocket;
    for (const vm of vms) {
      const s = this.vmState(vm);
      if (this.phases) {
        s.phaseLeftS -= dt;
        if (s.phaseLeftS <= 0) {
          s.level = s.levels[pick(s.rng, step.t < this.shiftAtS ? s.before : s.after)]!;
          s.phaseLeftS = PHASE_MIN_S + s.rng.exp(PHASE_MEAN_S);
        }
      }
      if (s.memBound) {
        s.betaLeftS -= dt;
        if (s.betaLeftS <= 0) {
          s.beta = s.betaMax * s.rng.uniform(0.3, 1);
          s.betaLeftS = BETA_MIN_S + s.rng.exp(BETA_MEAN_S);
        }
      }
      const threads = vm.busyCores + vm.emuCores;
      const others = step.socketThreads[vm.socket]! + step.ovhPerSocket - threads;
      s.inter = this.inter ? 1 - s.kappa * Math.min(1, Math.max(0, others) / (0.5 * L)) : 1;
      // what perf sees: IPC follows the phase (partly) and drops with stalls; hidden traffic shows as LLC misses
      vm.ipc *= (this.phases ? 0.55 + 0.45 * s.level : 1) * s.inter;
      vm.extraLlcMissesPerS = s.memBound ? (vm.busyCores * s.beta * 1e9) / 64 : 0;
    }
    for (let k = 0; k < spec.sockets; k++) {
      const threads = step.socketThreads[k]! + step.ovhPerSocket;
      step.freqMhz[k] = spec.fmaxMhz * (this.turbo ? turboFr(this.activeCores(threads, L)) : FIXED_FR);
    }
  }

  private activeCores(threads: number, logical: number): number {
    return this.smt ? smtPacking(threads, logical).physicalCores : threads;
  }

  /** Package dynamic power of a socket running `threads` busy threads with activity Σa and memory traffic B. */
  private pkgPower(threads: number, activity: number, trafficGBs: number, logical: number): number {
    const h = this.turbo ? corePowerFactor(turboFr(this.activeCores(threads, logical))) : 1;
    const m = this.smt ? smtPacking(threads, logical).powerFactor : 1;
    return h * m * activity + (this.mem ? uncoreW(trafficGBs) : 0);
  }

  power(step: PhysicsPowerStep): void {
    const { spec, vms, pkgW, dramW, bwGBs } = step;
    const n = vms.length;
    const L = spec.coresPerSocket;
    const ovhA = OVERHEAD_W_PER_CORE * step.ovhPerSocket;
    const ovhAlone = this.pkgPower(step.ovhPerSocket, ovhA, 0, L);
    let ovhPkg = 0;
    for (let k = 0; k < spec.sockets; k++) {
      let threads = step.ovhPerSocket;
      let activity = ovhA;
      let traffic = 0;
      let aloneSum = ovhAlone;
      for (let i = 0; i < n; i++) {
        const vm = vms[i]!;
        if (vm.socket !== k) continue;
        const s = this.vmState(vm);
        const vcpuA = vm.profile.coreW * s.scale * s.level * vm.busyCores;
        const emuA = EMU_W_PER_CORE * vm.emuCores;
        const th = vm.busyCores + vm.emuCores;
        threads += th;
        activity += vcpuA * s.inter + emuA;
        traffic += bwGBs[i]!;
        const alone = this.pkgPower(th, vcpuA + emuA, bwGBs[i]!, L);
        pkgW[i] = alone; // scaled below
        aloneSum += alone;
        dramW[i] = DRAM_W_PER_GBS * bwGBs[i]!;
      }
      const total = this.pkgPower(threads, activity, traffic, L);
      const f = aloneSum > 0 ? total / aloneSum : 0;
      for (let i = 0; i < n; i++) if (vms[i]!.socket === k) pkgW[i]! *= f;
      step.ovhPkgBySocket[k] = ovhAlone * f;
      step.ovhDramBySocket[k] = OVH_DRAM_W_PER_CORE * step.ovhPerSocket;
      ovhPkg += ovhAlone * f;
    }
    pkgW[n] = ovhPkg;
    dramW[n] = OVH_DRAM_W_PER_CORE * step.ovhCores;
  }
}

function pick(r: Prng, w: readonly number[]): number {
  let x = r.next() * w.reduce((a, b) => a + b, 0);
  for (let j = 0; j < w.length; j++) {
    x -= w[j]!;
    if (x < 0) return j;
  }
  return w.length - 1;
}

function saltOf(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h;
}

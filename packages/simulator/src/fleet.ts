/**
 * A fleet of simulated hypervisors with known per-VM ground truth. Deterministic per seed.
 *
 * Default fleet (4 host kinds, cycled): hv-00 Intel, cgroup v1, small RAPL range (wraps within a minute
 * or two); hv-01 Intel + 2 passthrough H100s; hv-02 AMD (amd-rapl, no DRAM zone, BMC power only, no
 * PMU); hv-03 Intel + 1 time-sliced H100 and a psys zone. Tenants own VMs of mostly one class across
 * hosts. Events: one VM starts late, one stops mid-run, one live-migrates hv-01 → hv-03.
 */
import { WattsplitError } from '@wattsplit/wire';
import { familiesForHost, type FamilyName, type PhysicsChoice } from './physics/families.js';
import { FamilyPhysics } from './physics/host-physics.js';
import { Prng, hash32 } from './prng.js';
import { SimHostImpl, type EnergyBySource, type HostNoise, type HostSpec, type SimHost } from './sim-host.js';
import { SimVm } from './sim-vm.js';
import { CLASS_PROFILES, VM_CLASSES, type VmClass } from './vm-classes.js';

export interface FleetEvent {
  /** restart: the VM reboots in place — new domain id and qemu cgroup, counters from 0. */
  kind: 'start' | 'stop' | 'migrate' | 'restart';
  vmUuid: string;
  atS: number;
  /** migrate only */
  toHost?: string;
  /** migrate only: pre-copy duration, s (8–20 typical). */
  precopyS?: number;
}

export interface FleetOptions {
  hosts: number;
  vmsPerHost: number;
  seed: number;
  /** Class weights for drawing VM classes; default: a fixed heterogeneous template per host kind. */
  mix?: Partial<Record<VmClass, number>>;
  startUnixMs?: number;
  /** 'default' (late start, mid-run stop, one migration when ≥ 2 hosts), 'none', or an explicit list. */
  events?: 'default' | 'none' | FleetEvent[];
  /** Real-shaped noise (EIO reads, cgroups briefly absent, clock jitter); false turns it all off. */
  noise?: false | Partial<HostNoise>;
  /** Override host specs (cycled over hosts). */
  hostSpecs?: HostSpec[];
  /**
   * Power physics of the hosts (docs/simulator.md, "Physics families"): 'legacy' (default) for the original
   * law, 'families' for 2–4 families drawn per host by seed, or a list every host runs.
   */
  physics?: PhysicsChoice;
  /** phases family: simulated second at which each VM's phase mix changes (default 1800). */
  physicsShiftAtS?: number;
}

export interface VmTruth {
  uuid: string;
  name: string;
  tenant: string;
  class: VmClass;
  /** Host these joules were spent on (a migrated VM has one row per host). */
  hostId: string;
  dynamicJoules: EnergyBySource;
  /** Its share of host static energy under the 'reserved' policy (0.5 vCPU / 0.5 memory), all sources. */
  staticJoulesReserved: number;
  staticJoulesBySource: EnergyBySource;
  totalJoules: number;
  cpuSeconds: number;
}

export interface HostTruth {
  hostId: string;
  hardwareClass: string;
  /** What the sensors measured (rapl = packages + DRAM zones; gpu = all GPUs; bmc_rest = wall − rapl − gpu). */
  measuredJoules: EnergyBySource;
  wallJoules: number;
  staticJoules: EnergyBySource;
  /** Dynamic energy of the hypervisor itself (CPU outside VMs, live-migration work). */
  overheadJoules: EnergyBySource;
  /** Of which live-migration pre-copy transients. */
  migrationJoules: number;
  /** Static energy no VM pays under 'reserved' (no VMs present; GPUs nobody holds). */
  unallocatedStaticJoules: EnergyBySource;
  overheadCpuSeconds: number;
}

export interface FleetTruth {
  elapsedS: number;
  vms: VmTruth[];
  hosts: HostTruth[];
  /** Σ totalJoules per tenant. */
  tenants: Record<string, number>;
}

export interface Fleet {
  readonly hosts: SimHost[];
  readonly seed: number;
  readonly events: readonly FleetEvent[];
  /** Simulated seconds since creation. */
  readonly elapsedS: number;
  readonly clock: { monoNs(hostId: string): number; wallUnixNs(hostId: string): number };
  /** Advances every host by dtS seconds (in steps of at most 1 s). */
  step(dtS: number): void;
  /** Cumulative ground truth since creation. */
  truth(): FleetTruth;
  host(hostId: string): SimHost;
  /** The physics families a host runs ('legacy' for the original law). For reports and tests; agents never see it. */
  physicsOf(hostId: string): 'legacy' | readonly FamilyName[];
}

const GiB = 2 ** 30;

/** The four host kinds of the default fleet. */
export const DEFAULT_HOST_SPECS: readonly HostSpec[] = Object.freeze([
  { vendor: 'intel', hardwareClass: 'xeon-8468', sockets: 2, coresPerSocket: 48, cgroupVersion: 1, raplMaxRangeUj: 16_383_999_877, pkgIdleW: 48, dramIdleW: 7, dramZones: true, coreZones: true, psys: false, gpuCount: 0, gpuMode: 'passthrough', perfSupported: true, bmcEnergyCounter: true, cpufreq: true, restBaseW: 70, fmaxMhz: 3100 },
  { vendor: 'intel', hardwareClass: 'xeon-8468+h100x2', sockets: 2, coresPerSocket: 48, cgroupVersion: 2, raplMaxRangeUj: 262_143_328_850, pkgIdleW: 52, dramIdleW: 8, dramZones: true, coreZones: false, psys: false, gpuCount: 2, gpuMode: 'passthrough', perfSupported: true, bmcEnergyCounter: true, cpufreq: true, restBaseW: 110, fmaxMhz: 3100 },
  { vendor: 'amd', hardwareClass: 'epyc-9554', sockets: 2, coresPerSocket: 64, cgroupVersion: 2, raplMaxRangeUj: 65_712_999_613, pkgIdleW: 62, dramIdleW: 9, dramZones: false, coreZones: true, psys: false, gpuCount: 0, gpuMode: 'passthrough', perfSupported: false, bmcEnergyCounter: false, cpufreq: false, restBaseW: 65, fmaxMhz: 3750 },
  { vendor: 'intel', hardwareClass: 'xeon-6448y+h100x1-ts', sockets: 2, coresPerSocket: 32, cgroupVersion: 2, raplMaxRangeUj: 262_143_328_850, pkgIdleW: 45, dramIdleW: 6, dramZones: true, coreZones: false, psys: true, gpuCount: 1, gpuMode: 'time_sliced', perfSupported: true, bmcEnergyCounter: true, cpufreq: true, restBaseW: 90, fmaxMhz: 3000 },
] satisfies HostSpec[]);

/** Class templates of the four default host kinds (12 VMs each; cycled for other sizes). */
const TEMPLATES: readonly (readonly VmClass[])[] = [
  ['batch', 'database', 'web', 'batch', 'web', 'database', 'web', 'batch', 'database', 'web', 'idle', 'batch'],
  ['ai_training', 'ai_training', 'database', 'web', 'batch', 'web', 'web', 'batch', 'database', 'web', 'idle', 'batch'],
  ['database', 'batch', 'web', 'database', 'web', 'batch', 'database', 'web', 'idle', 'database', 'batch', 'web'],
  ['ai_training', 'ai_training', 'web', 'batch', 'web', 'database', 'batch', 'web', 'database', 'idle', 'batch', 'web'],
];

/** Tenants per class; a tenant owns VMs of mostly one class, across hosts. */
const TENANTS: Readonly<Record<VmClass, readonly string[]>> = {
  ai_training: ['acme-ai', 'tyrell-ml'],
  database: ['globex-db', 'wayne-data'],
  web: ['initech-web', 'hooli-shop', 'piedpiper-web'],
  batch: ['umbrella-batch', 'stark-render'],
  idle: ['hooli-shop', 'initech-web', 'wayne-data', 'stark-render'],
};

const DEFAULT_NOISE: HostNoise = { eioProbability: 0.003, cgroupAbsentProbability: 0.0005, clockJitterFraction: 0.002 };

export function createFleet(opts: FleetOptions): Fleet {
  const bad = (field: string, value: unknown, why: string): never => {
    throw new WattsplitError('CONFIG_INVALID', `fleet ${field}=${JSON.stringify(value)} ${why}`, { details: { field, value } });
  };
  if (!Number.isInteger(opts.hosts) || opts.hosts < 1 || opts.hosts > 1000) bad('hosts', opts.hosts, 'must be an integer 1..1000');
  if (!Number.isInteger(opts.vmsPerHost) || opts.vmsPerHost < 0 || opts.vmsPerHost > 500) bad('vmsPerHost', opts.vmsPerHost, 'must be an integer 0..500');
  if (!Number.isFinite(opts.seed)) bad('seed', opts.seed, 'must be a number');
  const specs = opts.hostSpecs ?? DEFAULT_HOST_SPECS;
  if (specs.length === 0) bad('hostSpecs', specs, 'must not be empty');
  for (const [i, sp] of specs.entries()) {
    const int = (k: 'sockets' | 'coresPerSocket' | 'gpuCount', min: number) => {
      if (!(Number.isInteger(sp[k]) && sp[k] >= min && sp[k] <= 4096)) bad(`hostSpecs[${i}].${k}`, sp[k], `must be an integer ≥ ${min}`);
    };
    int('sockets', 1);
    int('coresPerSocket', 1);
    int('gpuCount', 0);
    for (const k of ['pkgIdleW', 'dramIdleW', 'restBaseW'] as const) if (!(Number.isFinite(sp[k]) && sp[k] >= 0)) bad(`hostSpecs[${i}].${k}`, sp[k], 'must be watts ≥ 0');
    if (!(sp.raplMaxRangeUj > 0 && Number.isSafeInteger(sp.raplMaxRangeUj))) bad(`hostSpecs[${i}].raplMaxRangeUj`, sp.raplMaxRangeUj, 'must be a positive integer (µJ)');
    if (!(sp.fmaxMhz > 0)) bad(`hostSpecs[${i}].fmaxMhz`, sp.fmaxMhz, 'must be > 0');
    if (sp.cgroupVersion !== 1 && sp.cgroupVersion !== 2) bad(`hostSpecs[${i}].cgroupVersion`, sp.cgroupVersion, 'must be 1 or 2');
  }
  if (opts.mix) {
    for (const [k, w] of Object.entries(opts.mix)) {
      if (!VM_CLASSES.includes(k as VmClass)) bad(`mix.${k}`, w, `is not a VM class (${VM_CLASSES.join(', ')})`);
      if (!(typeof w === 'number' && w >= 0 && Number.isFinite(w))) bad(`mix.${k}`, w, 'must be a weight ≥ 0');
    }
    if (Object.values(opts.mix).reduce((a, b) => a + (b ?? 0), 0) <= 0) bad('mix', opts.mix, 'needs at least one positive weight');
  }
  const noise: HostNoise = opts.noise === false ? { eioProbability: 0, cgroupAbsentProbability: 0, clockJitterFraction: 0 } : { ...DEFAULT_NOISE, ...opts.noise };
  const root = new Prng(hash32(Math.floor(opts.seed) ^ 0x5eed));
  const startUnixMs = opts.startUnixMs ?? 1_763_900_000_000;

  const hosts: SimHostImpl[] = [];
  const pending: { vm: SimVm; host: SimHostImpl; gpu: number | undefined }[] = [];
  const tenantCounter = new Map<VmClass, number>();
  const physicsChoice = opts.physics ?? 'legacy';
  const shiftAtS = opts.physicsShiftAtS ?? 1800;
  if (!(Number.isFinite(shiftAtS) && shiftAtS >= 0)) bad('physicsShiftAtS', shiftAtS, 'must be seconds ≥ 0');
  for (let h = 0; h < opts.hosts; h++) {
    const hostId = `hv-${String(h).padStart(2, '0')}`;
    // physics streams are forks of their own (salt 3000+): a legacy fleet's streams are unchanged
    const pr = root.fork(3000 + h);
    const families = familiesForHost(physicsChoice, pr);
    const spec = families ? familySpec(specs[h % specs.length]!, families, pr) : specs[h % specs.length]!;
    const host = new SimHostImpl(hostId, spec, root.fork(1000 + h), startUnixMs, noise, h);
    if (families) host.physics = new FamilyPhysics({ families, rng: pr.fork(1), shiftAtS });
    hosts.push(host);
    const template = TEMPLATES[h % TEMPLATES.length]!;
    const hr = root.fork(2000 + h);
    let gpuNext = 0;
    for (let k = 0; k < opts.vmsPerHost; k++) {
      let cls: VmClass = opts.mix ? drawClass(hr, opts.mix) : template[k % template.length]!;
      if (cls === 'ai_training' && spec.gpuCount === 0 && opts.mix) cls = drawClass(hr, { ...opts.mix, ai_training: 0 }, 'batch');
      let gpu: number | undefined;
      if (cls === 'ai_training' && spec.gpuCount > 0) {
        if (spec.gpuMode === 'time_sliced') gpu = 0;
        else if (gpuNext < spec.gpuCount) gpu = gpuNext++;
      }
      if (cls === 'ai_training' && gpu === undefined) cls = 'batch'; // no GPU free here: a CPU job
      const prof = CLASS_PROFILES[cls];
      const tn = tenantCounter.get(cls) ?? 0;
      tenantCounter.set(cls, tn + 1);
      const tenants = TENANTS[cls];
      const vr = root.fork(10_000 + h * 1000 + k);
      const spec2 = {
        uuid: uuidFrom(vr),
        name: `${cls.replace('_training', '')}-${h}-${k}`,
        tenant: tenants[tn % tenants.length]!,
        cls,
        vcpus: prof.vcpus[vr.int(0, prof.vcpus.length - 1)]!,
        memoryBytes: prof.memoryGiB[vr.int(0, prof.memoryGiB.length - 1)]! * GiB,
        gpuIntensity: tn % 2 === 0 ? 1.0 : 0.66,
        startAtS: 0,
        stopAtS: Infinity,
      };
      pending.push({ vm: new SimVm(spec2, vr.fork(7)), host, gpu });
    }
  }

  // events
  let events: FleetEvent[] = [];
  if (Array.isArray(opts.events)) events = opts.events.map((e) => ({ ...e }));
  else if ((opts.events ?? 'default') === 'default' && opts.vmsPerHost >= 2) {
    const first = pending.filter((p) => p.host === hosts[0]);
    const late = first[first.length - 1];
    if (late) events.push({ kind: 'start', vmUuid: late.vm.uuid, atS: 45 });
    const stopHost = hosts[Math.min(2, hosts.length - 1)]!;
    const onStop = pending.filter((p) => p.host === stopHost && p.vm.cls === 'web');
    const stopping = onStop[onStop.length - 1] ?? pending.filter((p) => p.host === stopHost)[0];
    if (stopping && stopping !== late) events.push({ kind: 'stop', vmUuid: stopping.vm.uuid, atS: 150 });
    if (hosts.length >= 2) {
      const from = hosts[Math.min(1, hosts.length - 1)]!;
      const to = hosts[hosts.length >= 4 ? 3 : 0]!;
      const mover = pending.find((p) => p.host === from && p.vm.cls === 'web' && p !== stopping && p !== late);
      if (mover && from !== to) events.push({ kind: 'migrate', vmUuid: mover.vm.uuid, atS: 100, toHost: to.hostId, precopyS: Math.round(root.uniform(8, 20)) });
    }
    const rh = hosts[hosts.length - 1]!;
    const rebooter = pending.find((p) => p.host === rh && p.vm.cls === 'database' && p !== stopping && p !== late);
    if (rebooter) events.push({ kind: 'restart', vmUuid: rebooter.vm.uuid, atS: 240 });
  }
  const byUuid = new Map(pending.map((p) => [p.vm.uuid, p]));
  for (const [i, e] of events.entries()) {
    if (!byUuid.has(e.vmUuid)) bad(`events[${i}].vmUuid`, e.vmUuid, 'is not a VM of this fleet');
    if (!(e.atS >= 0)) bad(`events[${i}].atS`, e.atS, 'must be ≥ 0');
    if (e.kind === 'migrate') {
      if (!hosts.some((h) => h.hostId === e.toHost)) bad(`events[${i}].toHost`, e.toHost, 'is not a host of this fleet');
      if (!(e.precopyS === undefined || e.precopyS >= 0)) bad(`events[${i}].precopyS`, e.precopyS, 'must be ≥ 0');
    }
  }
  const startAt = new Map<string, number>();
  for (const e of events) if (e.kind === 'start') startAt.set(e.vmUuid, e.atS);
  for (const p of pending) if (!startAt.has(p.vm.uuid)) p.host.addVm(p.vm, p.gpu);

  interface Migration { vm: SimVm; from: SimHostImpl; to: SimHostImpl; switchAtS: number }
  const migrations: Migration[] = [];
  const todo = [...events].sort((a, b) => a.atS - b.atS);
  let t = 0;
  const hostById = new Map(hosts.map((h) => [h.hostId, h]));
  const where = new Map<string, SimHostImpl>(pending.map((p) => [p.vm.uuid, p.host]));

  const applyEvents = (): void => {
    while (todo.length > 0 && todo[0]!.atS <= t + 1e-9) {
      const e = todo.shift()!;
      const p = byUuid.get(e.vmUuid)!;
      const host = where.get(e.vmUuid)!;
      switch (e.kind) {
        case 'start':
          if (!host.vms.includes(p.vm)) host.addVm(p.vm, p.gpu);
          break;
        case 'stop':
          host.removeVm(e.vmUuid);
          break;
        case 'restart': {
          const vm = host.removeVm(e.vmUuid);
          if (vm) host.addVm(vm, p.gpu);
          break;
        }
        case 'migrate': {
          const to = hostById.get(e.toHost!)!;
          if (to === host || !host.vms.includes(p.vm)) break;
          p.vm.state = 'migrating_out';
          host.migratingOut++;
          migrations.push({ vm: p.vm, from: host, to, switchAtS: e.atS + (e.precopyS ?? 12) });
          break;
        }
      }
    }
    for (let i = migrations.length - 1; i >= 0; i--) {
      const m = migrations[i]!;
      if (t + 1e-9 < m.switchAtS) continue;
      migrations.splice(i, 1);
      m.from.migratingOut--;
      const vm = m.from.removeVm(m.vm.uuid);
      if (vm) {
        m.to.addVm(vm, undefined);
        where.set(vm.uuid, m.to);
      }
    }
  };
  applyEvents();

  const fleet: Fleet = {
    hosts,
    seed: opts.seed,
    events,
    get elapsedS() {
      return t;
    },
    clock: {
      monoNs: (id) => fleet.host(id).clock.monoNs(),
      wallUnixNs: (id) => fleet.host(id).clock.wallUnixNs(),
    },
    physicsOf(id: string): 'legacy' | readonly FamilyName[] {
      const h = hostById.get(id);
      if (!h) fleet.host(id); // throws CONFIG_INVALID naming the hosts
      return h?.physics ? [...h.physics.families] : 'legacy';
    },
    host(id: string): SimHost {
      const h = hostById.get(id);
      if (!h) throw new WattsplitError('CONFIG_INVALID', `fleet has no host ${JSON.stringify(id)} (hosts: ${hosts.map((x) => x.hostId).join(', ')})`, { details: { field: 'hostId', value: id } });
      return h;
    },
    step(dtS: number): void {
      if (!(Number.isFinite(dtS) && dtS > 0 && dtS <= 86_400)) bad('step dtS', dtS, 'must be a number of seconds in (0, 86400]');
      let left = dtS;
      while (left > 1e-12) {
        const dt = Math.min(1, left);
        for (const h of hosts) h.step(dt, t);
        t += dt;
        left -= dt;
        applyEvents();
      }
    },
    truth(): FleetTruth {
      const vms: VmTruth[] = [];
      const tenants: Record<string, number> = {};
      for (const h of hosts) {
        for (const a of h.truthVms.values()) {
          const stat = a.stat.rapl + a.stat.gpu + a.stat.bmc_rest;
          const total = a.dyn.rapl + a.dyn.gpu + a.dyn.bmc_rest + stat;
          vms.push({
            uuid: a.uuid,
            name: a.name,
            tenant: a.tenant,
            class: a.cls as VmClass,
            hostId: h.hostId,
            dynamicJoules: { ...a.dyn },
            staticJoulesReserved: stat,
            staticJoulesBySource: { ...a.stat },
            totalJoules: total,
            cpuSeconds: a.cpuSeconds,
          });
          tenants[a.tenant] = (tenants[a.tenant] ?? 0) + total;
        }
      }
      return {
        elapsedS: t,
        vms,
        tenants,
        hosts: hosts.map((h) => ({
          hostId: h.hostId,
          hardwareClass: h.hardwareClass,
          measuredJoules: { ...h.measured },
          wallJoules: h.wallJ,
          staticJoules: { ...h.staticTotal },
          overheadJoules: { ...h.overheadDyn },
          migrationJoules: h.migrationJ,
          unallocatedStaticJoules: { ...h.unallocatedStatic },
          overheadCpuSeconds: h.overheadCpuSeconds,
        })),
      };
    },
  };
  return fleet;
}

/**
 * The spec a family host runs: idle_spread scales its idle package, DRAM and rest-of-box power by one factor
 * in [0.9, 1.1] (± 2 % each); bmc_power_only drops the BMC's energy counter. The hardware class is unchanged
 * (identical servers differ; the model is not told).
 */
function familySpec(spec: HostSpec, families: ReadonlySet<FamilyName>, r: Prng): HostSpec {
  const out = { ...spec };
  if (families.has('idle_spread')) {
    const f = r.uniform(0.9, 1.1);
    out.pkgIdleW = spec.pkgIdleW * f * r.uniform(0.98, 1.02);
    out.dramIdleW = spec.dramIdleW * f * r.uniform(0.98, 1.02);
    out.restBaseW = spec.restBaseW * f * r.uniform(0.98, 1.02);
  }
  if (families.has('bmc_power_only')) out.bmcEnergyCounter = false;
  return out;
}

function drawClass(r: Prng, mix: Partial<Record<VmClass, number>>, fallback: VmClass = 'web'): VmClass {
  let total = 0;
  for (const c of VM_CLASSES) total += mix[c] ?? 0;
  if (total <= 0) return fallback;
  let x = r.next() * total;
  for (const c of VM_CLASSES) {
    x -= mix[c] ?? 0;
    if (x < 0) return c;
  }
  return fallback;
}

function uuidFrom(r: Prng): string {
  const hex = (n: number): string => Array.from({ length: n }, () => Math.floor(r.next() * 16).toString(16)).join('');
  return `${hex(8)}-${hex(4)}-4${hex(3)}-${(8 + Math.floor(r.next() * 4)).toString(16)}${hex(3)}-${hex(12)}`;
}

/** Truth accumulated between two `truth()` snapshots of the same fleet (later − earlier), e.g. a billing window. */
export function truthBetween(earlier: FleetTruth, later: FleetTruth): FleetTruth {
  const key = (v: { uuid: string; hostId: string }): string => `${v.hostId}|${v.uuid}`;
  const e = new Map(earlier.vms.map((v) => [key(v), v]));
  const sub = (a: EnergyBySource, b: EnergyBySource | undefined): EnergyBySource => ({ rapl: a.rapl - (b?.rapl ?? 0), gpu: a.gpu - (b?.gpu ?? 0), bmc_rest: a.bmc_rest - (b?.bmc_rest ?? 0) });
  const tenants: Record<string, number> = {};
  const vms = later.vms.map((v) => {
    const p = e.get(key(v));
    const row: VmTruth = {
      ...v,
      dynamicJoules: sub(v.dynamicJoules, p?.dynamicJoules),
      staticJoulesBySource: sub(v.staticJoulesBySource, p?.staticJoulesBySource),
      staticJoulesReserved: v.staticJoulesReserved - (p?.staticJoulesReserved ?? 0),
      totalJoules: v.totalJoules - (p?.totalJoules ?? 0),
      cpuSeconds: v.cpuSeconds - (p?.cpuSeconds ?? 0),
    };
    tenants[v.tenant] = (tenants[v.tenant] ?? 0) + row.totalJoules;
    return row;
  });
  const eh = new Map(earlier.hosts.map((h) => [h.hostId, h]));
  const hosts = later.hosts.map((h) => {
    const p = eh.get(h.hostId);
    return {
      ...h,
      measuredJoules: sub(h.measuredJoules, p?.measuredJoules),
      wallJoules: h.wallJoules - (p?.wallJoules ?? 0),
      staticJoules: sub(h.staticJoules, p?.staticJoules),
      overheadJoules: sub(h.overheadJoules, p?.overheadJoules),
      migrationJoules: h.migrationJoules - (p?.migrationJoules ?? 0),
      unallocatedStaticJoules: sub(h.unallocatedStaticJoules, p?.unallocatedStaticJoules),
      overheadCpuSeconds: h.overheadCpuSeconds - (p?.overheadCpuSeconds ?? 0),
    };
  });
  return { elapsedS: later.elapsedS - earlier.elapsedS, vms, hosts, tenants };
}

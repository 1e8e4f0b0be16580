import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createFleet, type FleetTruth } from '../fleet.js';
import type { SimHostImpl } from '../sim-host.js';
import { PROTOCOL_HOST_SPEC } from '../evaluation-sets.js';
import { FAMILY_NAMES, type FamilyName } from './families.js';
import { FamilyPhysics } from './host-physics.js';
import { FIXED_FR, TURBO_BINS, corePowerFactor, smtPacking, turboFr, uncoreW } from './laws.js';

const SOURCES = ['rapl', 'gpu', 'bmc_rest'] as const;

function conservationProblems(tr: FleetTruth): string[] {
  const out: string[] = [];
  for (const h of tr.hosts) {
    const vms = tr.vms.filter((v) => v.hostId === h.hostId);
    for (const s of SOURCES) {
      const parts = vms.reduce((a, v) => a + v.dynamicJoules[s] + v.staticJoulesBySource[s], 0) + h.overheadJoules[s] + h.unallocatedStaticJoules[s];
      const m = h.measuredJoules[s];
      if (Math.abs(parts - m) > 1e-9 * Math.max(1, m)) out.push(`${h.hostId} ${s}: parts ${parts} ≠ measured ${m}`);
    }
    if (Math.abs(h.measuredJoules.rapl + h.measuredJoules.gpu + h.measuredJoules.bmc_rest - h.wallJoules) > 1e-9 * h.wallJoules) out.push(`${h.hostId}: rapl+gpu+bmc_rest ≠ wall`);
  }
  return out;
}

const fleetOf = (physics: 'legacy' | 'families' | readonly FamilyName[], seed = 11, extra: { vmsPerHost?: number; hosts?: number } = {}) =>
  createFleet({ hosts: extra.hosts ?? 3, vmsPerHost: extra.vmsPerHost ?? 10, seed, hostSpecs: [PROTOCOL_HOST_SPEC], physics, physicsShiftAtS: 600, noise: false, events: 'none' });

const physicsOf = (h: unknown): FamilyPhysics => {
  const p = (h as SimHostImpl).physics;
  assert.ok(p instanceof FamilyPhysics);
  return p;
};

test('turbo bins: frequency falls by active cores and so does power per core (P ∝ f·V²)', () => {
  let prev = Infinity;
  for (const n of [1, 2, 3, 5, 9, 13, 17, 21, 25, 33, 40]) {
    const w = corePowerFactor(turboFr(n));
    assert.ok(w <= prev, `per-core power at ${n} cores (${w}) ≤ at fewer`);
    prev = w;
  }
  assert.equal(turboFr(1), 1);
  assert.equal(turboFr(2.0), 1);
  assert.equal(turboFr(2.01), 0.97, 'a partly busy third core is an active core');
  assert.equal(turboFr(1000), TURBO_BINS[TURBO_BINS.length - 1]!.fr);
  assert.ok(Math.abs(corePowerFactor(FIXED_FR) - 1) < 1e-12);
  // single-core turbo costs ~30 % more per core than the fixed point, all-core ~25 % less
  assert.ok(corePowerFactor(1) > 1.25 && corePowerFactor(0.75) < 0.82);

  // on a host: the frequency the agent reads drops as the host gets busy, and the package's power per busy core falls
  const f = fleetOf(['turbo_bins'], 5, { hosts: 1 });
  const h = f.hosts[0]!;
  const readings: { busy: number; perCoreW: number; mhz: number }[] = [];
  let last = f.truth().hosts[0]!;
  let lastCpu = f.truth().vms.reduce((a, v) => a + v.cpuSeconds, 0);
  for (let i = 0; i < 600; i++) {
    f.step(1);
    const tr = f.truth();
    const now = tr.hosts[0]!;
    const cpu = tr.vms.reduce((a, v) => a + v.cpuSeconds, 0);
    const dyn = now.measuredJoules.rapl - last.measuredJoules.rapl - (now.staticJoules.rapl - last.staticJoules.rapl) - (now.overheadJoules.rapl - last.overheadJoules.rapl);
    const mhz = Number(h.fs.readText('/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq')) / 1000;
    if (cpu - lastCpu > 0.5) readings.push({ busy: cpu - lastCpu, perCoreW: dyn / (cpu - lastCpu), mhz });
    last = now;
    lastCpu = cpu;
  }
  readings.sort((a, b) => a.busy - b.busy);
  const q = Math.floor(readings.length / 4);
  const low = readings.slice(0, q);
  const high = readings.slice(-q);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  assert.ok(mean(high.map((r) => r.mhz)) < mean(low.map((r) => r.mhz)), 'busier host, lower frequency');
  assert.ok(mean(high.map((r) => r.perCoreW)) < mean(low.map((r) => r.perCoreW)), `per-core power at high load ${mean(high.map((r) => r.perCoreW))} < at low load ${mean(low.map((r) => r.perCoreW))}`);
});

test('SMT: two busy siblings cost 1.25 × one; a lone thread costs a whole core', () => {
  const L = 40;
  const full = smtPacking(L, L);
  assert.ok(Math.abs(full.physicalCores - L / 2) < 1e-12);
  assert.ok(Math.abs(L * full.powerFactor - 1.25 * (L / 2)) < 1e-12, 'all siblings busy: 1.25 × the physical cores');
  assert.equal(smtPacking(1, L).powerFactor, 1);
  assert.equal(smtPacking(0.3, L).powerFactor, 1);
  // power grows sub-linearly with threads
  let prevPerThread = Infinity;
  for (const t of [1, 5, 10, 20, 30, 40]) {
    const per = smtPacking(t, L).powerFactor;
    assert.ok(per <= prevPerThread);
    prevPerThread = per;
  }
});

test('memory-bound: hidden traffic shows in perf LLC misses and DRAM power, not in CPU time', () => {
  const withMem = fleetOf(['memory_bound'], 9, { hosts: 1 });
  const without = fleetOf([], 9, { hosts: 1 });
  withMem.step(300);
  without.step(300);
  const a = withMem.truth();
  const b = without.truth();
  // same activity (same VM streams): CPU time equal, DRAM energy and package energy higher with hidden traffic
  const cpu = (t: FleetTruth) => t.vms.reduce((s, v) => s + v.cpuSeconds, 0);
  assert.ok(Math.abs(cpu(a) - cpu(b)) < 1e-6 * cpu(b), 'CPU time does not reveal the traffic');
  const dram = (f: typeof withMem) => Number(f.hosts[0]!.fs.readText('/sys/class/powercap/intel-rapl:0:0/energy_uj')) + Number(f.hosts[0]!.fs.readText('/sys/class/powercap/intel-rapl:1:0/energy_uj'));
  assert.ok(a.hosts[0]!.measuredJoules.rapl > b.hosts[0]!.measuredJoules.rapl * 1.05, 'hidden traffic draws DRAM and uncore power');
  assert.ok(Number.isFinite(dram(withMem)));
  const p = physicsOf(withMem.hosts[0]);
  const hm = withMem.hosts[0] as unknown as SimHostImpl;
  const hw = without.hosts[0] as unknown as SimHostImpl;
  let seen = 0;
  for (const vm of hm.vms) {
    const other = hw.vms.find((v) => v.uuid === vm.uuid)!;
    const hidden = p.hidden(vm.uuid)!;
    if (hidden.memBound) {
      seen++;
      assert.ok(vm.llcMisses > other.llcMisses * 1.5, `${vm.name}: perf shows the traffic`);
    } else assert.ok(Math.abs(vm.llcMisses - other.llcMisses) <= 1e-6 * other.llcMisses + 1);
    if (vm.cls === 'database') assert.ok(hidden.memBound, 'database VMs are memory-bound in this family');
  }
  assert.ok(seen >= 1);
  assert.ok(uncoreW(10) > 0 && uncoreW(20) < 2 * uncoreW(10), 'uncore power is sub-linear in traffic');
});

test('phases: a VM\'s energy per CPU-second changes over minutes, with a different mix after the shift', () => {
  const f = fleetOf(['phases'], 21, { hosts: 1 });
  const p = physicsOf(f.hosts[0]);
  const vms = (f.hosts[0] as unknown as SimHostImpl).vms;
  const before = new Map<string, number[]>();
  const after = new Map<string, number[]>();
  for (let t = 0; t < 1200; t++) {
    f.step(1);
    for (const vm of vms) {
      const m = t < 600 ? before : after;
      m.set(vm.uuid, [...(m.get(vm.uuid) ?? []), p.hidden(vm.uuid)!.level]);
    }
  }
  let changed = 0;
  let shifted = 0;
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  for (const vm of vms) {
    const all = [...before.get(vm.uuid)!, ...after.get(vm.uuid)!];
    if (new Set(all).size > 1) changed++;
    if (Math.abs(mean(before.get(vm.uuid)!) - mean(after.get(vm.uuid)!)) > 0.15) shifted++;
  }
  assert.ok(changed >= vms.length * 0.8, `${changed}/${vms.length} VMs changed phase in 20 min`);
  assert.ok(shifted >= vms.length * 0.4, `${shifted}/${vms.length} VMs have a different mean level after the shift`);
});

test('idle spread: identical hosts (one hardware class) idle ±10 % apart; BMC power only drops the energy counter', async () => {
  const f = fleetOf(['idle_spread', 'bmc_power_only'], 33, { hosts: 6, vmsPerHost: 2 });
  const specs = f.hosts.map((h) => h.spec);
  assert.equal(new Set(f.hosts.map((h) => h.hardwareClass)).size, 1, 'one hardware class');
  const idle = specs.map((s) => s.pkgIdleW * s.sockets + s.dramIdleW * s.sockets + s.restBaseW);
  const base = PROTOCOL_HOST_SPEC.pkgIdleW * 2 + PROTOCOL_HOST_SPEC.dramIdleW * 2 + PROTOCOL_HOST_SPEC.restBaseW;
  for (const w of idle) assert.ok(w >= base * 0.9 * 0.98 && w <= base * 1.1 * 1.02, `idle ${w} W within ±10 % of ${base}`);
  assert.ok(Math.max(...idle) - Math.min(...idle) > 0.04 * base, 'identical servers differ');
  for (const h of f.hosts) assert.equal((await h.bmc.read()).energyJoules, undefined);
  // legacy hosts keep the class's idle and the BMC counter
  const legacy = fleetOf('legacy', 33, { hosts: 2, vmsPerHost: 2 });
  for (const h of legacy.hosts) assert.equal(h.spec.pkgIdleW, PROTOCOL_HOST_SPEC.pkgIdleW);
});

test('interference: busy neighbours lower a sensitive VM\'s power and IPC; truth is the stand-alone marginal scaled to the total', () => {
  const a = fleetOf(['interference'], 44, { hosts: 1 });
  const b = fleetOf([], 44, { hosts: 1 });
  a.step(300);
  b.step(300);
  const ta = a.truth();
  const tb = b.truth();
  const dyn = (t: FleetTruth) => t.hosts[0]!.measuredJoules.rapl - t.hosts[0]!.staticJoules.rapl;
  assert.ok(dyn(ta) < dyn(tb), 'stalls lower the package power');
  const p = physicsOf(a.hosts[0]);
  const va = (a.hosts[0] as unknown as SimHostImpl).vms;
  const vb = (b.hosts[0] as unknown as SimHostImpl).vms;
  const sensitive = va.filter((v) => p.hidden(v.uuid)!.kappa > 0.2 && v.cpuNs > 1e10);
  assert.ok(sensitive.length > 0);
  for (const v of sensitive) {
    const o = vb.find((x) => x.uuid === v.uuid)!;
    assert.ok(v.instructions / v.cycles < o.instructions / o.cycles, `${v.name}: perf sees the stalls (lower IPC)`);
  }
  // with one VM alone on a host its truth is the host's whole dynamic package power less the hypervisor's
  const solo = createFleet({ hosts: 1, vmsPerHost: 1, seed: 3, hostSpecs: [PROTOCOL_HOST_SPEC], physics: ['turbo_bins', 'smt', 'interference', 'memory_bound'], noise: false, events: 'none' });
  solo.step(120);
  const ts = solo.truth();
  const h = ts.hosts[0]!;
  assert.ok(Math.abs(ts.vms[0]!.dynamicJoules.rapl + h.overheadJoules.rapl - (h.measuredJoules.rapl - h.staticJoules.rapl)) < 1e-6 * h.measuredJoules.rapl);
});

test('conservation holds on every family, drawn per host by seed, with events, noise and odd steps', () => {
  for (const physics of ['families', FAMILY_NAMES] as const) {
    for (const seed of [1, 2, 3]) {
      const f = createFleet({ hosts: 4, vmsPerHost: 10, seed, hostSpecs: [PROTOCOL_HOST_SPEC], physics, physicsShiftAtS: 100 });
      for (const dt of [0.5, 1, 1.7, 3, 60, 200]) f.step(dt);
      const tr = f.truth();
      assert.deepEqual(conservationProblems(tr), [], `${JSON.stringify(physics)} seed ${seed}`);
      for (const v of tr.vms) for (const s of SOURCES) assert.ok(v.dynamicJoules[s] >= 0, `${v.name} ${s} ≥ 0`);
    }
  }
  // 'families' draws 2–4 families per host, and not the same combination everywhere
  const f = createFleet({ hosts: 8, vmsPerHost: 1, seed: 5, physics: 'families' });
  const combos = f.hosts.map((h) => f.physicsOf(h.hostId));
  for (const c of combos) assert.ok(Array.isArray(c) && c.length >= 2 && c.length <= 4);
  assert.ok(new Set(combos.map((c) => [...c].sort().join('+'))).size > 1);
});

test('the model is not told the family: frames and files look the same; legacy fleets are unchanged', () => {
  const fam = fleetOf(FAMILY_NAMES, 8);
  const leg = fleetOf('legacy', 8);
  fam.step(30);
  leg.step(30);
  for (const [i, h] of fam.hosts.entries()) {
    const frame = JSON.stringify(h.oracleFrame(1));
    for (const name of FAMILY_NAMES) assert.ok(!frame.includes(name), `frame names ${name}`);
    assert.equal(h.hardwareClass, leg.hosts[i]!.hardwareClass);
    assert.deepEqual(h.fs.readDir('/sys/class/powercap').sort(), leg.hosts[i]!.fs.readDir('/sys/class/powercap').sort());
  }
  assert.equal(leg.physicsOf('hv-00'), 'legacy');
  // 'legacy' is the default and draws nothing from the fleet's streams
  const dflt = createFleet({ hosts: 3, vmsPerHost: 10, seed: 8, hostSpecs: [PROTOCOL_HOST_SPEC], physicsShiftAtS: 600, noise: false, events: 'none' });
  dflt.step(30);
  assert.deepEqual(dflt.truth(), leg.truth());
  const bogus = JSON.parse('["warp_drive"]') as FamilyName[];
  assert.throws(() => createFleet({ hosts: 1, vmsPerHost: 1, seed: 1, physics: bogus }), /physics family "warp_drive"/);
});

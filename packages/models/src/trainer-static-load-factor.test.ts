import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32, type HostInterval, type VmInterval } from '@wattsplit/attribution';
import { memoryLogger } from '@wattsplit/wire';
import { checkModelJson, trainAdditiveModel } from './index.js';

/**
 * Two 20-core packages with SMT-like per-core power that falls with the package's load (concave in load,
 * steep near idle: 1 − 0.375·u) and per-VM phases: every `phaseS` seconds each VM's energy per CPU-second
 * takes one of `levels`, and its IPC follows the level by `ipcFollow` (1 − f + f·level), as in the simulator's
 * phases family. Idle 40 W per package, known exactly.
 */
const IDLE_PER_PACKAGE_W = 40;

interface Phases {
  /** a VM's phase lasts this many seconds */
  phaseS: number;
  /** energy per CPU-second multipliers a phase draws from */
  levels: readonly number[];
  /** how much of the level the VM's IPC follows: 1 − f + f·level */
  ipcFollow: number;
  /** each VM's IPC at level 1 */
  ipc0: readonly number[];
}
/** The first case's phases: one minute, IPC following the level partly, VMs of different base IPC. */
const MINUTE_PHASES: Phases = { phaseS: 60, levels: [0.6, 1, 1.5], ipcFollow: 0.45, ipc0: [2.4, 1.0, 0.7, 2.4, 1.0, 0.7, 1.4, 1.8] };

function phasedTwoSocketHost(hostId: string, seed: number, seconds: number, ph: Phases = MINUTE_PHASES): HostInterval[] {
  const r = mulberry32(seed);
  const coreW = [7, 3, 5, 7, 3, 5, 4, 6];
  const { ipc0, levels } = ph;
  const vcpus = [8, 4, 6, 8, 4, 6, 4, 8];
  const on = vcpus.map(() => r() < 0.6);
  const level = vcpus.map(() => 1);
  const out: HostInterval[] = [];
  for (let t = 0; t < seconds; t++) {
    const cpu = vcpus.map((v, i) => {
      if (r() < 0.03) on[i] = !on[i];
      if (t % ph.phaseS === i) level[i] = levels[Math.floor(r() * levels.length)]!;
      return (on[i] ? 0.3 + 0.7 * r() : 0.05 * r()) * v;
    });
    const us = [0.5, 0.5];
    cpu.forEach((c, i) => (us[i % 2]! += c));
    const pkg = [IDLE_PER_PACKAGE_W, IDLE_PER_PACKAGE_W];
    for (let s = 0; s < 2; s++) {
      const u = Math.min(1, us[s]! / 40);
      let a = 3 * 0.5; // the hypervisor's half core on each package
      cpu.forEach((c, i) => {
        if (i % 2 === s) a += coreW[i]! * level[i]! * c;
      });
      pkg[s]! += (1 - 0.375 * u) * a;
    }
    const vms: VmInterval[] = cpu.map((c, i) => {
      const cycles = c * 2.4e9;
      const instructions = cycles * ipc0[i]! * (1 - ph.ipcFollow + ph.ipcFollow * level[i]!);
      return {
        uuid: `vm-${i}`, name: `vm-${i}`, tenant: `t${i}`, vcpus: vcpus[i]!, memoryBytes: 8 * 2 ** 30, cpuSeconds: c, vcpuSeconds: Array.from({ length: vcpus[i]! }, () => c / vcpus[i]!),
        memoryUsedBytes: 4 * 2 ** 30, blockReadBytes: 0, blockWriteBytes: 0, netRxBytes: 0, netTxBytes: 0, gpus: [], presence: 1, state: 'running',
        perf: { cycles, instructions, llcMisses: instructions * 0.002, llcReferences: instructions * 0.02 },
      };
    });
    const busy = cpu.reduce((x, y) => x + y, 0) + 1;
    const noise = 1 + 0.005 * (r() - 0.5);
    out.push({
      hostId, hardwareClass: 'two-socket-phases', seq: t + 1, prevSeq: t, t0UnixNs: t * 1e9, t1UnixNs: (t + 1) * 1e9, durationS: 1,
      measured: { rapl: (pkg[0]! + pkg[1]!) * noise, gpu: 0, bmc_rest: 30 + 0.15 * (pkg[0]! + pkg[1]!) },
      raplZones: { 'intel-rapl:0': pkg[0]! * noise, 'intel-rapl:1': pkg[1]! * noise }, gpus: [],
      hostCpu: { busySeconds: busy, idleSeconds: 80 - busy, onlineCpus: 80, avgFreqMhz: 2400 }, vms, anomalies: [],
    });
  }
  return out;
}

test('host static power under concave per-core power and per-VM phases: idle within 4 W; the load factor refitted with the IPC gain is kept only where the totals fit better', async () => {
  const ivs = [...phasedTwoSocketHost('hA', 3, 1500), ...phasedTwoSocketHost('hB', 4, 1500)];
  const opts = { steps: 300, maxIntervals: 3000 };
  const m = await trainAdditiveModel(ivs, opts);
  const before = await trainAdditiveModel(ivs, { ...opts, ipcLoadFactor: false });
  checkModelJson(JSON.parse(JSON.stringify(m)), 'model.json');
  assert.ok(m.sources.rapl.ipcGain !== undefined, 'an IPC gain was learned');
  const trueW = 2 * IDLE_PER_PACKAGE_W;
  const err = (x: typeof m, h: string): number => x.sources.rapl.hostStaticW![h]! - trueW;
  for (const h of ['hA', 'hB']) {
    // the bound: 4 W of an 80 W idle (5 %), extrapolated from loads that never go below ~10 % of the host
    assert.ok(Math.abs(err(m, h)) <= 4, `${h}: static ${m.sources.rapl.hostStaticW![h]!.toFixed(1)} W vs true ${trueW} W (without the refit ${before.sources.rapl.hostStaticW![h]!.toFixed(1)} W)`);
  }
  // the refit is kept only if the host totals fit better (here its curve fits worse, so it is rejected and the
  // models agree: this case passes with or without the refit; the next one exercises the kept branch)
  assert.ok(m.sources.rapl.residualRmsW <= before.sources.rapl.residualRmsW + 1e-9, `residual ${m.sources.rapl.residualRmsW.toFixed(3)} vs ${before.sources.rapl.residualRmsW.toFixed(3)} W`);
  // per-core power falls with the package's load: the load factor at full load is below 1
  const [b1, b2] = m.sources.rapl.load;
  assert.ok(1 + b1 + b2 < 1, `load factor at u = 1: ${(1 + b1 + b2).toFixed(2)}`);
});

/**
 * The kept branch, on a host like development fleet 107 (SMT + per-VM phases): phases of four minutes, each
 * VM's IPC tracking its power fully (IPC ∝ level) from one base IPC. Fitted before the IPC gain is known, the
 * load factor bends to the phases (here to 1 + 1.3u − 1.15u², against the truth 1 − 0.375u) and the hosts'
 * static comes out +5.3 and +3.8 W high; refitted with the gain (to 1 + 0.36u − 0.55u²) the totals fit better,
 * the refit is kept, and the static comes closer to the true idle on both hosts (+3.5 and +2.4 W; values seen
 * when this case was written, 2026-12-06; the assertions are the relations, not the numbers). Found by trying a
 * few such hosts: with one-minute phases, or IPC following the level only partly, the refit fitted worse and
 * was rejected.
 */
test('the load factor refitted with the IPC gain is kept where the host totals fit better, and brings host static closer to the true idle (SMT + per-VM phases)', async () => {
  const ph: Phases = { phaseS: 240, levels: [0.5, 1, 1.8], ipcFollow: 1, ipc0: Array.from({ length: 8 }, () => 1.5) };
  const ivs = [...phasedTwoSocketHost('hA', 3, 1500, ph), ...phasedTwoSocketHost('hB', 4, 1500, ph)];
  const opts = { steps: 300, maxIntervals: 3000 };
  const log = memoryLogger();
  const m = await trainAdditiveModel(ivs, { ...opts, logger: log });
  const off = await trainAdditiveModel(ivs, { ...opts, ipcLoadFactor: false });
  assert.ok(m.sources.rapl.ipcGain !== undefined, 'an IPC gain was learned');
  const refit = log.entries.find((e) => e.msg.includes('package load factor refitted with the IPC gain'));
  assert.ok(refit, 'the refit ran');
  const { before, after, mseBefore, mseAfter } = refit.fields as { before: number[]; after: number[]; mseBefore: number; mseAfter: number };
  // kept: the totals fit better, and the model carries the refitted load factor, not the first fit's
  assert.ok(mseAfter < mseBefore, `refit mse ${mseAfter} vs ${mseBefore}`);
  assert.deepEqual(off.sources.rapl.load, before, 'without the refit the model keeps the first fit');
  assert.deepEqual(m.sources.rapl.load, after, 'the model carries the refitted load factor');
  assert.notDeepEqual(m.sources.rapl.load, off.sources.rapl.load, 'the load factor differs from the first fit');
  assert.ok(m.sources.rapl.residualRmsW < off.sources.rapl.residualRmsW, `residual ${m.sources.rapl.residualRmsW.toFixed(3)} vs ${off.sources.rapl.residualRmsW.toFixed(3)} W`);
  const trueW = 2 * IDLE_PER_PACKAGE_W;
  for (const h of ['hA', 'hB']) {
    const kept = m.sources.rapl.hostStaticW![h]! - trueW;
    const first = off.sources.rapl.hostStaticW![h]! - trueW;
    assert.ok(Math.abs(kept) < Math.abs(first), `${h}: static error ${kept.toFixed(2)} W with the refit vs ${first.toFixed(2)} W without`);
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32, type HostInterval, type VmInterval } from '@wattsplit/attribution';
import { checkModelJson, trainAdditiveModel } from './index.js';

/**
 * Two 20-core packages with SMT-like per-core power that falls with the package's load (concave in load,
 * steep near idle: 1 − 0.375·u) and per-VM phases: every minute each VM's energy per CPU-second takes one of
 * three levels, and its IPC follows the level partly (0.55 + 0.45·level), as in the simulator's phases family.
 * Idle 40 W per package, known exactly.
 */
const IDLE_PER_PACKAGE_W = 40;
const LEVELS = [0.6, 1, 1.5];

function phasedTwoSocketHost(hostId: string, seed: number, seconds: number): HostInterval[] {
  const r = mulberry32(seed);
  const coreW = [7, 3, 5, 7, 3, 5, 4, 6];
  const ipc0 = [2.4, 1.0, 0.7, 2.4, 1.0, 0.7, 1.4, 1.8];
  const vcpus = [8, 4, 6, 8, 4, 6, 4, 8];
  const on = vcpus.map(() => r() < 0.6);
  const level = vcpus.map(() => 1);
  const out: HostInterval[] = [];
  for (let t = 0; t < seconds; t++) {
    const cpu = vcpus.map((v, i) => {
      if (r() < 0.03) on[i] = !on[i];
      if (t % 60 === i) level[i] = LEVELS[Math.floor(r() * LEVELS.length)]!;
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
      const instructions = cycles * ipc0[i]! * (0.55 + 0.45 * level[i]!);
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
  // the refit is kept only if the host totals fit better (here its curve fits worse, so the models agree)
  assert.ok(m.sources.rapl.residualRmsW <= before.sources.rapl.residualRmsW + 1e-9, `residual ${m.sources.rapl.residualRmsW.toFixed(3)} vs ${before.sources.rapl.residualRmsW.toFixed(3)} W`);
  // per-core power falls with the package's load: the load factor at full load is below 1
  const [b1, b2] = m.sources.rapl.load;
  assert.ok(1 + b1 + b2 < 1, `load factor at u = 1: ${(1 + b1 + b2).toFixed(2)}`);
});

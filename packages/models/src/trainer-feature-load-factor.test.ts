import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32, type HostInterval, type VmInterval } from '@wattsplit/attribution';
import { intervalFeatures, termPowers, trainAdditiveModel, type AdditiveModelJson } from './index.js';

/**
 * Two 20-core packages whose per-core power falls with the package's load (1 − 0.4·u: turbo bins, SMT
 * siblings), idle 40 W per package, VMs of their own W per busy core at load 0 with an IPC that says which.
 * The truth of a VM's W per core at load 0 is `CORE_W`.
 */
const CORE_W = [7, 3, 5, 7, 3, 5, 4, 6];
const IPC = [2.4, 1.0, 1.6, 2.4, 1.0, 1.6, 1.3, 2.0];
const VCPUS = [8, 4, 6, 8, 4, 6, 4, 8];

function twoSocketHost(hostId: string, seed: number, seconds: number): HostInterval[] {
  const r = mulberry32(seed);
  const on = VCPUS.map(() => r() < 0.6);
  const out: HostInterval[] = [];
  for (let t = 0; t < seconds; t++) {
    const cpu = VCPUS.map((v, i) => {
      if (r() < 0.03) on[i] = !on[i];
      return (on[i] ? 0.3 + 0.7 * r() : 0.05 * r()) * v;
    });
    const us = [0.5, 0.5];
    cpu.forEach((c, i) => (us[i % 2]! += c));
    const pkg = [40, 40];
    for (let s = 0; s < 2; s++) {
      let a = 3 * 0.5; // the hypervisor's half core on each package
      cpu.forEach((c, i) => {
        if (i % 2 === s) a += CORE_W[i]! * c;
      });
      pkg[s]! += (1 - 0.4 * Math.min(1, us[s]! / 40)) * a;
    }
    const vms: VmInterval[] = cpu.map((c, i) => {
      const cycles = c * 2.4e9;
      return {
        uuid: `vm-${i}`, name: `vm-${i}`, tenant: `t${i}`, vcpus: VCPUS[i]!, memoryBytes: 8 * 2 ** 30, cpuSeconds: c, vcpuSeconds: Array.from({ length: VCPUS[i]! }, () => c / VCPUS[i]!),
        memoryUsedBytes: 4 * 2 ** 30, blockReadBytes: 0, blockWriteBytes: 0, netRxBytes: 0, netTxBytes: 0, gpus: [], presence: 1, state: 'running',
        perf: { cycles, instructions: cycles * IPC[i]!, llcMisses: cycles * 0.002, llcReferences: cycles * 0.02 },
      };
    });
    const busy = cpu.reduce((x, y) => x + y, 0) + 1;
    const noise = 1 + 0.005 * (r() - 0.5);
    out.push({
      hostId, hardwareClass: 'two-socket-turbo', seq: t + 1, prevSeq: t, t0UnixNs: t * 1e9, t1UnixNs: (t + 1) * 1e9, durationS: 1,
      measured: { rapl: (pkg[0]! + pkg[1]!) * noise, gpu: 0, bmc_rest: 30 + 0.15 * (pkg[0]! + pkg[1]!) },
      raplZones: { 'intel-rapl:0': pkg[0]! * noise, 'intel-rapl:1': pkg[1]! * noise }, gpus: [],
      hostCpu: { busySeconds: busy, idleSeconds: 80 - busy, onlineCpus: 80, avgFreqMhz: 2400 }, vms, anomalies: [],
    });
  }
  return out;
}

/** The feature model's W per busy core at load 0 (no own signatures, no load factor, no I/O), CPU-weighted over the VMs' intervals. */
function featureCoreW(model: AdditiveModelJson, ivs: readonly HostInterval[]): number {
  const { vmCoreW: _own, ...w } = model.sources.rapl;
  const bare: AdditiveModelJson = { ...model, sources: { ...model.sources, rapl: { ...w, vm: {}, load: [0, 0], io: w.io.map(() => 0) } } };
  let num = 0;
  let den = 0;
  for (const iv of ivs) {
    const ts = intervalFeatures(iv);
    termPowers(bare, 'rapl', ts).forEach((g, t) => {
      if (ts[t]!.id.startsWith('vm-') && ts[t]!.cpu > 0) {
        num += g;
        den += ts[t]!.cpu;
      }
    });
  }
  return num / den;
}

test('featureLoadFactor: the feature model (the prior of unseen VMs and the filter\'s class estimate) is in W per busy core at load 0, the unit of the per-VM signatures', async () => {
  const ivs = [...twoSocketHost('hA', 3, 1200), ...twoSocketHost('hB', 4, 1200)];
  const opts = { steps: 300, maxIntervals: 2400, seed: 5 };
  const on = await trainAdditiveModel(ivs, opts);
  const off = await trainAdditiveModel(ivs, { ...opts, featureLoadFactor: false });
  // per-core power falls with load, so the truth's CPU-weighted W per core at load 0 is above what the VMs drew
  let num = 0;
  let den = 0;
  for (const iv of ivs) iv.vms.forEach((v, i) => ((num += CORE_W[i]! * v.cpuSeconds), (den += v.cpuSeconds)));
  const truth = num / den;
  const a = featureCoreW(on, ivs);
  const b = featureCoreW(off, ivs);
  // fitted to host totals without the load factor the feature model is at the VMs' load (here ≈ 0.8 × load 0)
  assert.ok(Math.abs(a / truth - 1) < 0.08, `feature model at load 0 ${a.toFixed(2)} W per core vs true ${truth.toFixed(2)} (without featureLoadFactor ${b.toFixed(2)})`);
  assert.ok(Math.abs(a / truth - 1) < Math.abs(b / truth - 1) - 0.05, `with ${a.toFixed(2)}, without ${b.toFixed(2)}, true ${truth.toFixed(2)} W per core`);
  // the per-VM signatures are not touched by the refit (their shrinkage target stays the first fit)
  assert.deepEqual(on.sources.rapl.vmCoreW, off.sources.rapl.vmCoreW);
  assert.deepEqual(on.sources.rapl.load, off.sources.rapl.load);
});

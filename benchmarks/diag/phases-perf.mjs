#!/usr/bin/env node
// Issue 12 diagnosis, sixth pass (docs/accuracy-method.md), development fleets only: per-VM phases WITH per-VM
// perf counters. Re-simulates one development fleet (the oracle frames accuracy-filter.mjs caches: same seed, physics,
// phase shift at the warm-up's end), recording the truth every --step seconds of the billed period; trains the
// additive model on the warm-up and runs it offline and online (learners cold at the billed period), both splitting
// with the true static power. Prints per VM over the billed period: true, offline and online RAPL dynamic J per
// CPU-second, their errors, the mean IPC factor and filter multiplier, the VM's IPC gain, IPC reference and W per
// core; for the --worst VMs per step: busy cores, true / offline / online J per CPU-second, the multiplier, the IPC
// factor, IPC and LLC misses per kilo-instruction; last, the error split into a level and a tracking part.
//
//   node benchmarks/diag/phases-perf.mjs --seed 107 [--len 1800] [--step 60] [--worst 4] [--train '{}'] [--online '{}']
//        [--host-option perfSupported=false]
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { hostOptions } from '../host-options.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..') + '/';
const imp = (p) => import(pathToFileURL(root + p).href);
const { oracleFleet } = await imp('benchmarks/oracle-fleet.mjs');
const sim = await imp('packages/simulator/dist/index.js');
const models = await imp('packages/models/dist/index.js');
const argv = process.argv.slice(2);
const arg = (k, d) => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : d);
const P = sim.EVALUATION_PROTOCOL;
const seed = Number(arg('--seed', '107'));
const len = Number(arg('--len', '1800'));
const step = Number(arg('--step', '60'));
const nWorst = Number(arg('--worst', '4'));
const f = P.dev.find((x) => x.seed === seed);
if (!f) throw new Error(`--seed ${seed}: not a development fleet`);
const s = oracleFleet({ hosts: P.hosts, vmsPerHost: P.vmsPerHost, seed, hostSpecs: [{ ...P.hostSpec, ...hostOptions(argv) }], physics: f.physics, physicsShiftAtS: len });
const warm = s.advance(len);
const snaps = [s.fleet.truth()];
const bill = [];
for (let t = 0; t < len; t += step) {
  bill.push(...s.advance(step));
  snaps.push(s.fleet.truth());
}
const model = await models.trainAdditiveModel(warm, { hardwareClass: warm[0].hardwareClass, ...JSON.parse(arg('--train', '{}')) });
const r = model.sources.rapl;
console.log(`seed ${seed} ${JSON.stringify(f.physics)} len ${len} class ipcGain ${r.ipcGain?.toFixed(2)} load ${JSON.stringify(r.load)} rapl residual ${r.residualRmsW?.toFixed(2)} W`);
const on = new models.AdditiveModelMethod({ models: { get: () => model }, online: JSON.parse(arg('--online', 'true')) });
const off = new models.AdditiveModelMethod({ models: { get: () => model }, online: false });
const trueStatic = {};
const whole = sim.truthBetween(snaps[0], snaps.at(-1));
for (const h of whole.hosts) trueStatic[h.hostId] = { rapl: h.staticJoules.rapl / len, gpu: 0, bmc_rest: h.staticJoules.bmc_rest / len };
const t0 = bill[0].t0UnixNs / 1e9;
// per VM, per step: billed J (online, offline), cpu-s, instructions, cycles, misses, factor·cpu, multiplier·cpu
const rows = new Map();
const row = (id, k) => {
  let x = rows.get(id);
  if (!x) rows.set(id, (x = []));
  return (x[k] ??= { on: 0, off: 0, cpu: 0, ins: 0, cyc: 0, mis: 0, fac: 0, mul: 0, n: 0 });
};
for (const iv of bill) {
  const k = Math.min(snaps.length - 2, Math.floor((iv.t0UnixNs / 1e9 - t0 + 0.5) / step));
  const ctx = { policy: 'reserved', staticPower: { watts: trueStatic[iv.hostId], origin: 'truth' } };
  const a = on.attribute(iv, ctx);
  const b = off.attribute(iv, ctx);
  for (const x of a.shares) if (x.kind === 'vm' && x.source === 'rapl') row(`${iv.hostId}|${x.vmUuid}`, k).on += x.dynamicJoules;
  for (const x of b.shares) if (x.kind === 'vm' && x.source === 'rapl') row(`${iv.hostId}|${x.vmUuid}`, k).off += x.dynamicJoules;
  for (const v of iv.vms) {
    const q = row(`${iv.hostId}|${v.uuid}`, k);
    const feat = models.vmFeatures(v, iv);
    q.cpu += v.cpuSeconds;
    q.ins += v.perf?.instructions ?? 0;
    q.cyc += v.perf?.cycles ?? 0;
    q.mis += v.perf?.llcMisses ?? 0;
    q.fac += models.ipcFactor(r, feat) * v.cpuSeconds;
    q.mul += (on.filter?.multiplier(iv.hostId, 'rapl', v.uuid) ?? 1) * v.cpuSeconds;
  }
  on.observe(iv);
}
// truth per step and the hidden phase level at the end (from the fleet's physics, where it exposes it)
const steps = snaps.slice(1).map((sn, k) => new Map(sim.truthBetween(snaps[k], sn).vms.map((v) => [`${v.hostId}|${v.uuid}`, v])));
const vms = whole.vms.map((v) => {
  const R = rows.get(`${v.hostId}|${v.uuid}`) ?? [];
  const sum = (key) => R.reduce((a, q) => a + (q?.[key] ?? 0), 0);
  return { v, err: sum('on') / v.dynamicJoules.rapl - 1, errOff: sum('off') / v.dynamicJoules.rapl - 1, R };
});
vms.sort((a, b) => Math.abs(b.err) - Math.abs(a.err));
const fmt = (x, d = 2, w = 6) => (Number.isFinite(x) ? x.toFixed(d) : '-').padStart(w);
console.log('per VM (billed period): host name class | true J/cpu-s | offline J/cpu-s | online | err offline % | err online % | mean IPC factor | mean multiplier | gain ref coreW');
for (const { v, err, errOff, R } of vms) {
  const sum = (key) => R.reduce((a, q) => a + (q?.[key] ?? 0), 0);
  const cpu = sum('cpu');
  console.log(
    `  ${v.hostId} ${v.name.padEnd(14)} ${v.class.padEnd(9)} | ${fmt(v.dynamicJoules.rapl / cpu)} | ${fmt(sum('off') / cpu)} | ${fmt(sum('on') / cpu)} | ${fmt(100 * errOff, 1)} | ${fmt(100 * err, 1)} | ${fmt(sum('fac') / cpu)} | ${fmt(sum('mul') / cpu)} | ${fmt(r.vmIpcGain?.[v.uuid])} ${fmt(r.vmIpcRef?.[v.uuid])} ${fmt(r.vmCoreW?.[v.uuid])}`,
  );
}
for (const { v, R } of vms.slice(0, nWorst)) {
  console.log(`\n${v.hostId} ${v.name} (${v.class}): t(s) | cpu/s | true J/cpu-s | offline | online | multiplier | IPC factor | IPC | LLC MPKI`);
  R.forEach((q, k) => {
    if (!q) return;
    const tv = steps[k].get(`${v.hostId}|${v.uuid}`);
    console.log(`  ${String(k * step).padStart(5)} | ${fmt(q.cpu / step)} | ${fmt((tv?.dynamicJoules.rapl ?? NaN) / q.cpu)} | ${fmt(q.off / q.cpu)} | ${fmt(q.on / q.cpu)} | ${fmt(q.mul / q.cpu)} | ${fmt(q.fac / q.cpu)} | ${fmt(q.cyc > 0 ? q.ins / q.cyc : NaN)} | ${fmt(q.ins > 0 ? (1000 * q.mis) / q.ins : NaN)}`);
  });
}

// Where the error sits: per VM, the level error (log of billed / true energy over the billed period) and the
// tracking error (the energy-weighted mean |log(billed_k / true_k) − level| over the steps k: what a lag or a wrong
// mapping from IPC to power would leave). Energy-weighted means over the VMs, small VMs (web, idle) apart.
const decomp = (key) => {
  const out = {};
  for (const { v, R } of vms) {
    const grp = v.class === 'web' || v.class === 'idle' ? 'small' : 'large';
    const E = v.dynamicJoules.rapl;
    const b = R.reduce((a, q) => a + (q?.[key] ?? 0), 0);
    if (!(E > 0) || !(b > 0)) continue;
    const level = Math.log(b / E);
    let tr = 0, w = 0;
    R.forEach((q, k) => {
      const t = steps[k].get(`${v.hostId}|${v.uuid}`)?.dynamicJoules.rapl ?? 0;
      if (!(t > 0) || !(q?.[key] > 0)) return;
      tr += t * Math.abs(Math.log(q[key] / t) - level);
      w += t;
    });
    const o = (out[grp] ??= { E: 0, lev: 0, tr: 0 });
    o.E += E;
    o.lev += E * Math.abs(level);
    o.tr += w > 0 ? (E * tr) / w : 0;
  }
  return Object.entries(out).map(([g, o]) => `${g} level ${(100 * o.lev / o.E).toFixed(1)} % tracking ${(100 * o.tr / o.E).toFixed(1)} %`).join(', ');
};
console.log(`\nerror decomposition (energy-weighted mean |log ratio|, ${step} s steps): offline: ${decomp('off')}; online: ${decomp('on')}`);

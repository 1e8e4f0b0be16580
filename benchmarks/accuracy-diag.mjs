#!/usr/bin/env node
// Diagnostic for the additive model: per VM and source, true vs attributed energy over the billing period,
// split into static and dynamic, for one simulator fleet (oracle frames, as benchmarks/accuracy.mjs).
// Ground truth is used only to print the comparison.
//
//   node benchmarks/accuracy-diag.mjs [--fleet demo|seed7|mix|<seed>] [--top 12] [--cache /tmp/x.json]
//
// --cache stores the simulated intervals and truth so the next run only trains and attributes.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const imp = (p) => import(pathToFileURL(join(root, p)).href);
const { truthBetween } = await imp('packages/simulator/dist/index.js');
const { oracleFleet } = await import('./oracle-fleet.mjs');
const { CpuShareMethod, StaticPowerLearner } = await imp('packages/attribution/dist/index.js');
const models = await imp('packages/models/dist/index.js');

const argv = process.argv.slice(2);
const arg = (k, d) => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : d);
const fleetName = arg('--fleet', 'demo');
const top = Number(arg('--top', '14'));
const cache = arg('--cache', undefined);
const FLEETS = {
  demo: { hosts: 4, vmsPerHost: 12, seed: 1 },
  seed7: { hosts: 4, vmsPerHost: 12, seed: 7 },
  mix: { hosts: 4, vmsPerHost: 16, seed: 3, mix: { web: 4, database: 3, batch: 1, ai_training: 1, idle: 1 } },
};
const fopts = FLEETS[fleetName] ?? { hosts: 4, vmsPerHost: 12, seed: Number(fleetName) };
const warmS = Number(arg('--warm', '600'));
const billS = Number(arg('--bill', '600'));

let data;
if (cache && existsSync(cache)) data = JSON.parse(readFileSync(cache, 'utf8'));
else {
  const sim = oracleFleet(fopts);
  const fleet = sim.fleet;
  const warm = sim.advance(warmS);
  const t0 = fleet.truth();
  const bill = sim.advance(billS);
  const t1 = fleet.truth();
  const truth = truthBetween(t0, t1);
  const sockets = {};
  for (const h of fleet.hosts) for (const v of h.vms) sockets[v.uuid] = v.socket;
  data = { warm, bill, truth, sockets };
  if (cache) writeFileSync(cache, JSON.stringify(data));
}
const { warm, bill, truth, sockets } = data;

const byClass = new Map();
for (const iv of warm) byClass.set(iv.hardwareClass, [...(byClass.get(iv.hardwareClass) ?? []), iv]);
const trained = new Map();
const extra = arg('--opts', '{}');
const trueStatic = {};
for (const h of truth.hosts) trueStatic[h.hardwareClass] = { rapl: h.staticJoules.rapl / billS, bmc_rest: h.staticJoules.bmc_rest / billS };
for (const [hc, ivs] of byClass) trained.set(hc, await models.trainAdditiveModel(ivs, { hardwareClass: hc, ...JSON.parse(extra), ...(argv.includes('--true-static') ? { fixedStaticW: trueStatic[hc] } : {}) }));
const spl = new StaticPowerLearner({ fallback: { rapl: 100, gpu: 73, bmc_rest: 100 } });
for (const iv of warm) spl.observe(iv);
const cpu = new CpuShareMethod();
const gpu = new models.GpuTimeSliceMethod({ base: cpu, minWindows: 60 });
const additive = new models.AdditiveModelMethod({ models: { get: (hc) => trained.get(hc) }, gpu });
for (const iv of warm) additive.observe(iv);
const att = {}; // key host|uuid → {src: {dyn, sta}}
const hostClass = {};
const pred = {}; // host|uuid → Σ predicted rapl W·s
for (const iv of bill) {
  const m = trained.get(iv.hardwareClass);
  const ts = models.intervalFeatures(iv);
  const g = models.termPowers(m, 'rapl', ts);
  ts.forEach((f, i) => (pred[`${iv.hostId}|${f.id}`] = (pred[`${iv.hostId}|${f.id}`] ?? 0) + g[i] * iv.durationS));
  spl.observe(iv);
  hostClass[iv.hostId] = iv.hardwareClass;
  const r = additive.attribute(iv, { policy: 'reserved', staticPower: spl.estimate(iv.hostId) });
  additive.observe(iv);
  for (const s of r.shares) {
    const k = `${r.hostId}|${s.kind === 'vm' ? s.vmUuid : s.kind}`;
    att[k] ??= {};
    att[k][s.source] ??= { dyn: 0, sta: 0 };
    att[k][s.source].dyn += s.dynamicJoules;
    att[k][s.source].sta += s.staticJoules;
  }
}
for (const [hc, m] of trained) {
  const r = m.sources.rapl;
  const b = m.sources.bmc_rest;
  console.log(`${hc}: rapl io ${r.io.map((x) => x.toFixed(3)).join(",")} static ${r.staticW.toFixed(1)} W beta ${r.load.map((x) => x.toFixed(2)).join('/')} rms ${r.residualRmsW.toFixed(2)}; bmc static ${b.staticW.toFixed(1)} W scale ${b.cpuScaleW.toFixed(3)} beta ${b.load[0].toFixed(2)} io ${b.io.map((x) => x.toFixed(2)).join(',')} rms ${b.residualRmsW.toFixed(2)}`);
}
for (const h of truth.hosts) {
  const el = billS;
  console.log(`${h.hostId} ${h.hardwareClass}: true static rapl ${(h.staticJoules.rapl / el).toFixed(1)} W bmc_rest ${(h.staticJoules.bmc_rest / el).toFixed(1)} W; measured rapl ${(h.measuredJoules.rapl / el).toFixed(1)} W bmc_rest ${(h.measuredJoules.bmc_rest / el).toFixed(1)} W; overhead true rapl ${(h.overheadJoules.rapl / el).toFixed(1)} W, attributed ${((att[`${h.hostId}|host_overhead`]?.rapl?.dyn ?? 0) / el).toFixed(1)} W`);
}
// placement inferred vs the simulator's (final) socket
for (const [hc, m] of trained) {
  const bad = [];
  for (const [k, w] of Object.entries(m.placement?.vm ?? {})) {
    const uuid = k.split('/')[1];
    const s = sockets[uuid];
    if (s === undefined) continue;
    if (!(w[s] > 0.8)) bad.push(`${k.split('/')[0]} ${uuid.slice(0, 8)} true s${s} inferred [${w.map((x) => x.toFixed(2)).join(',')}]`);
  }
  console.log(`${hc}: placement ${m.placement ? Object.keys(m.placement.vm).length + ' VMs' : 'none'}; mismatches: ${bad.join('; ') || 'none'}`);
}
// per tenant
const ten = {};
for (const v of truth.vms) {
  const a = att[`${v.hostId}|${v.uuid}`] ?? {};
  const t = (ten[v.tenant] ??= { truth: 0, att: 0 });
  t.truth += v.totalJoules;
  for (const s of Object.values(a)) t.att += s.dyn + s.sta;
}
console.log('\ntenant errors:');
for (const [k, t] of Object.entries(ten).sort()) console.log(`  ${k.padEnd(16)} ${(t.truth / 1e3).toFixed(1).padStart(7)} kJ  ${(100 * (t.att / t.truth - 1)).toFixed(2).padStart(6)} %`);
// per VM, by source, worst absolute error
const rows = truth.vms.map((v) => {
  const a = att[`${v.hostId}|${v.uuid}`] ?? {};
  const src = {};
  let attT = 0;
  for (const s of ['rapl', 'gpu', 'bmc_rest']) {
    const x = a[s] ?? { dyn: 0, sta: 0 };
    src[s] = { tDyn: v.dynamicJoules[s], tSta: v.staticJoulesBySource[s], aDyn: x.dyn, aSta: x.sta };
    attT += x.dyn + x.sta;
  }
  return { v, src, err: attT - v.totalJoules };
});
rows.sort((a, b) => Math.abs(b.err) - Math.abs(a.err));
console.log(`\nVMs by |error| (J over ${billS} s): name tenant host socket cpuS | per source: dyn true→att, static true→att`);
for (const r of rows.slice(0, top)) {
  const s = (k) => `${k} dyn ${r.src[k].tDyn.toFixed(0)}→${r.src[k].aDyn.toFixed(0)} st ${r.src[k].tSta.toFixed(0)}→${r.src[k].aSta.toFixed(0)}`;
  const pw = pred[`${r.v.hostId}|${r.v.uuid}`] ?? 0;
  console.log(`   model rapl W/core ${(pw / r.v.cpuSeconds).toFixed(2)} true ${(r.src.rapl.tDyn / r.v.cpuSeconds).toFixed(2)}`);
  console.log(`${r.v.name.padEnd(14)} ${r.v.tenant.padEnd(14)} ${r.v.hostId} s${sockets[r.v.uuid] ?? '?'} cpu ${(r.v.cpuSeconds / billS).toFixed(2)} tot ${r.v.totalJoules.toFixed(0)} err ${r.err.toFixed(0)} (${((100 * r.err) / r.v.totalJoules).toFixed(1)} %) | ${s('rapl')} | ${s('bmc_rest')}`);
}
const worst = Object.entries(ten).reduce((a, [k, t]) => (Math.abs(t.att / t.truth - 1) > Math.abs(a[1]) ? [k, t.att / t.truth - 1] : a), ['', 0]);
console.log(`WORST ${fleetName} ${worst[0]} ${(100 * worst[1]).toFixed(2)} %`);

#!/usr/bin/env node
// Issue 12, the 90 % intervals (development fleets only; evaluation seeds are refused): where the width of a
// tenant's stored interval comes from and how the tenants' actual errors compare with it.
//
//   node benchmarks/diag/interval-width.mjs [--seeds 1,101,...] [--extra 108:smt+idle_spread,...] [--warm 600] [--bill 600]
//        [--cache-dir DIR] [--host-option perfSupported=false] [--variants '{"shipped":true,"k0.5":{"sdScale":0.5}}'] [--detail]
//
// Each fleet's oracle frames go through the real IntervalAligner (benchmarks/oracle-fleet.mjs, cached as
// benchmarks/accuracy-filter.mjs caches them); the collector's order per interval: attribute, then observe. Per
// variant (AdditiveModelMethod's `online` options) and tenant, over the billed period:
//   err      billed total − true total (J), as a share of the true total;
//   H        Σ (high_j − billed_j) over the tenant's rows: the stored half-width (linear in rows, as the rollups sum);
//   H_ns     the same with the host's static power held at the filter's own estimate (no static variance): what the
//            multipliers and I/O weights alone give;
//   H_hostI  sqrt(Σ over hosts (Σ of the host's rows' half-widths)²): the band if the hosts' errors were independent
//            (each host has its own filter) while the rows of one host stay fully correlated;
//   H_rssT   Σ over the tenant's VM rows of sqrt(Σ over intervals band²): the band if each interval's error were
//            independent of the others' (the opposite extreme to H's full correlation over time);
// and the ratio |err| / H, its quantiles, and the coverage H would give scaled by 1, 0.75, 0.5, 0.35, 0.25.
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { hostOptions } from '../host-options.mjs';
import { devExtras } from '../dev-extras.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..') + '/';
const imp = (p) => import(pathToFileURL(root + p).href);
const { oracleFleet } = await import(pathToFileURL(root + 'benchmarks/oracle-fleet.mjs').href);
const sim = await imp('packages/simulator/dist/index.js');
const models = await imp('packages/models/dist/index.js');
const argv = process.argv.slice(2);
const arg = (k, d) => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : d);
const P = sim.EVALUATION_PROTOCOL;
const warmS = Number(arg('--warm', '600'));
const billS = Number(arg('--bill', '600'));
const seeds = arg('--seeds', '1,101,102,103') === 'none' ? [] : arg('--seeds', '1,101,102,103').split(',').map(Number);
const extra = devExtras(arg('--extra', ''), P);
for (const seedN of extra.keys()) if (!seeds.includes(seedN)) seeds.push(seedN);
const hostOpts = hostOptions(argv);
const hostTag = Object.entries(hostOpts).map(([k, v]) => `-${k}=${v}`).join('');
const variants = JSON.parse(arg('--variants', '{"shipped":true}'));
console.log(`command: node benchmarks/diag/interval-width.mjs ${argv.join(' ')}; date ${new Date().toISOString()}; load ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);

const allVm = {}; // variant -> [{ rel, H }] per VM with > 1 kJ
const all = {}; // variant -> [{ fleet, tenant, rel, H, Hns, HrssT }]
for (const seed of seeds) {
  const f = extra.get(seed) ?? P.dev.find((x) => x.seed === seed);
  if (!f) throw new Error(`not a development seed: ${seed}`);
  const cacheDir = arg('--cache-dir', undefined);
  const cache = cacheDir ? join(cacheDir, `fleet-${seed}-${warmS}-${billS}${hostTag}.json`) : undefined;
  let data;
  if (cache && existsSync(cache)) data = JSON.parse(readFileSync(cache, 'utf8'));
  else {
    const s = oracleFleet({ hosts: P.hosts, vmsPerHost: P.vmsPerHost, seed, hostSpecs: [{ ...P.hostSpec, ...hostOpts }], physics: f.physics, physicsShiftAtS: warmS });
    const warm = s.advance(warmS);
    const t0 = s.fleet.truth();
    const bill = s.advance(billS);
    data = { warm, bill, truth: sim.truthBetween(t0, s.fleet.truth()), physics: s.fleet.hosts.map((h) => s.fleet.physicsOf(h.hostId)) };
    if (cache) writeFileSync(cache, JSON.stringify(data));
  }
  const { warm, bill, truth } = data;
  const tt = {};
  for (const v of truth.vms) tt[v.tenant] = (tt[v.tenant] ?? 0) + v.totalJoules;
  const model = await models.trainAdditiveModel(warm, { hardwareClass: warm[0].hardwareClass });
  const ctx = { policy: 'reserved', staticPower: { watts: { rapl: 0, gpu: 0, bmc_rest: 0 }, origin: 'configured' } };
  for (const [name, v] of Object.entries(variants)) {
    // a variant: the method's `online` value, or { online, sdScale }
    const opts = typeof v === 'object' && v !== null && ('sdScale' in v || 'online' in v) ? v : { online: v };
    const m = new models.AdditiveModelMethod({ models: { get: () => model }, ...opts });
    // the same filter state, split with the host's static power fixed at the filter's estimate: no static variance
    const ns = new models.AdditiveModelMethod({ models: { get: () => model }, ...opts, staticFrom: 'context' });
    for (const iv of warm) {
      m.observe(iv);
      ns.observe(iv);
    }
    const acc = {};
    const vmBand2 = new Map();
    const hostBand = new Map();
    const vmAcc = new Map();
    for (const iv of bill) {
      const r = m.attribute(iv, ctx);
      const w = {};
      for (const s of models.MODEL_SOURCES) w[s] = m.filter.staticPower(iv.hostId, s, model).w;
      const rn = ns.attribute(iv, { ...ctx, staticPower: { watts: { ...w, gpu: 0 }, origin: 'configured' } });
      for (const s of r.shares) {
        if (s.kind !== 'vm') continue;
        const a = (acc[s.tenant] ??= { e: 0, H: 0, Hns: 0 });
        const band = s.highJoules - s.dynamicJoules - s.staticJoules;
        a.e += s.dynamicJoules + s.staticJoules;
        a.H += band;
        const k = `${s.tenant}|${s.vmUuid}`;
        vmBand2.set(k, (vmBand2.get(k) ?? 0) + band * band);
        const kh = `${s.tenant}|${iv.hostId}`;
        hostBand.set(kh, (hostBand.get(kh) ?? 0) + band);
        const va = vmAcc.get(s.vmUuid) ?? { e: 0, H: 0 };
        va.e += s.dynamicJoules + s.staticJoules;
        va.H += band;
        vmAcc.set(s.vmUuid, va);
      }
      for (const s of rn.shares) if (s.kind === 'vm') acc[s.tenant].Hns += s.highJoules - s.dynamicJoules - s.staticJoules;
      m.observe(iv);
      ns.observe(iv);
    }
    const hostI = {};
    for (const [k, v] of hostBand) hostI[k.split('|')[0]] = (hostI[k.split('|')[0]] ?? 0) + v * v;
    const vmTrue = new Map();
    for (const v of truth.vms) vmTrue.set(v.uuid, (vmTrue.get(v.uuid) ?? 0) + v.totalJoules);
    const vmRows = (allVm[name] ??= []);
    for (const [u, va] of vmAcc) {
      const tr = vmTrue.get(u);
      if (tr > 1000) vmRows.push({ rel: (va.e - tr) / tr, H: va.H / tr });
    }
    const rssT = {};
    for (const [k, v] of vmBand2) rssT[k.split('|')[0]] = (rssT[k.split('|')[0]] ?? 0) + Math.sqrt(v);
    const rows = (all[name] ??= []);
    const lines = [];
    for (const t of Object.keys(tt).filter((x) => tt[x] > 0).sort()) {
      const a = acc[t] ?? { e: 0, H: 0, Hns: 0 };
      const row = { fleet: seed, tenant: t, rel: (a.e - tt[t]) / tt[t], H: a.H / tt[t], Hns: a.Hns / tt[t], HrssT: (rssT[t] ?? 0) / tt[t], HhostI: Math.sqrt(hostI[t] ?? 0) / tt[t] };
      rows.push(row);
      lines.push(`${t}: err ${(100 * row.rel).toFixed(1)} H ${(100 * row.H).toFixed(1)} (no static ${(100 * row.Hns).toFixed(1)}, indep. in time ${(100 * row.HrssT).toFixed(2)}) |err|/H ${(Math.abs(row.rel) / row.H).toFixed(2)}`);
    }
    console.log(`seed ${seed} ${JSON.stringify(f.physics)} ${name}${argv.includes('--detail') ? '\n  ' + lines.join('\n  ') : ''}`);
  }
}
const q = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * (s.length - 1) + 0.5))];
};
const mean = (xs) => xs.reduce((a, x) => a + x, 0) / xs.length;
for (const [name, rows] of Object.entries(all)) {
  const r = rows.map((x) => Math.abs(x.rel) / x.H);
  const cov = (k) => rows.filter((x) => Math.abs(x.rel) <= k * x.H).length;
  console.log(`\n${name}: ${rows.length} tenants; mean |err| ${(100 * mean(rows.map((x) => Math.abs(x.rel)))).toFixed(2)} %, worst ${(100 * Math.max(...rows.map((x) => Math.abs(x.rel)))).toFixed(1)} %; mean H ${(100 * mean(rows.map((x) => x.H))).toFixed(2)} % (without the static variance ${(100 * mean(rows.map((x) => x.Hns))).toFixed(2)} %, independent in time ${(100 * mean(rows.map((x) => x.HrssT))).toFixed(2)} %)`);
  console.log(`  |err|/H quantiles: 50 % ${q(r, 0.5).toFixed(2)}, 75 % ${q(r, 0.75).toFixed(2)}, 90 % ${q(r, 0.9).toFixed(2)}, 95 % ${q(r, 0.95).toFixed(2)}, max ${Math.max(...r).toFixed(2)}`);
  console.log(`  with the hosts independent: mean half-width ${(100 * mean(rows.map((x) => x.HhostI))).toFixed(2)} %, coverage ${rows.filter((x) => Math.abs(x.rel) <= x.HhostI).length}/${rows.length}`);
  const vr = allVm[name];
  console.log(`  VMs (> 1 kJ): ${vr.length}; mean |err| ${(100 * mean(vr.map((x) => Math.abs(x.rel)))).toFixed(2)} %, mean H ${(100 * mean(vr.map((x) => x.H))).toFixed(2)} %; coverage with H scaled by 1 / 0.75 / 0.5 / 0.35 / 0.25: ${[1, 0.75, 0.5, 0.35, 0.25].map((k) => `${vr.filter((x) => Math.abs(x.rel) <= k * x.H).length}/${vr.length}`).join(' / ')}`);
  console.log(`  coverage with H scaled by 1 / 0.75 / 0.5 / 0.35 / 0.25: ${[1, 0.75, 0.5, 0.35, 0.25].map((k) => `${cov(k)}/${rows.length}`).join(' / ')}`);
}

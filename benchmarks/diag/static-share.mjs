#!/usr/bin/env node
// Issue 12, seventh pass (docs/accuracy-method.md), development fleets only: how much of each tenant's TOTAL energy
// error is its hosts' static-power error. On a fleet cached by accuracy-filter.mjs, the online split is run three
// times side by side (each with its own filter, fed the same intervals, so the three filters' states are equal):
//   online  the shipped split (the filter's static power, RAPL and wall-side rest)
//   trueS   the same dynamic split with the simulator's true static power on both sources
//   trueR   the true static power on RAPL only, the filter's on the wall-side rest
// Per tenant: the true total (kJ), the online total error, the part of it that is static power (online − trueS, in
// points of the tenant's true total) and the dynamic split's (trueS), and the RAPL-only static part (online − trueR).
// Per host: its physics, each source's true static W, the trained model's, and what the filter billed on average
// (time-mean over the billed period) and at its end, all minus the truth; and the trainer's static anchor's two RAPL
// intercepts (the class fit's and the local low-load one, ± its regression sd), minus the truth. The fleet line gives
// the worst tenant by |online total|. Evaluation seeds are refused.
//
//   node benchmarks/accuracy-filter.mjs --seeds 104 --cold --cache-dir DIR [--warm 1800 --bill 1800] [--host-option perfSupported=false]   # makes the cache
//   node benchmarks/diag/static-share.mjs --cache-dir DIR --seeds 1,101,104 [--len 600|1800] [--host-option perfSupported=false] [--train '{}']
import { loadavg } from 'node:os';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { arg, models } from './fleet-cache.mjs';
import { hostOptions } from '../host-options.mjs';

const { EVALUATION_PROTOCOL: P } = await import(new URL('../../packages/simulator/dist/index.js', import.meta.url).href);

const LEN = Number(arg('--len', '600'));
const hostTag = Object.entries(hostOptions(process.argv.slice(2))).map(([k, v]) => `-${k}=${v}`).join('');
const train = JSON.parse(arg('--train', '{}'));
const sgn = (x) => `${x >= 0 ? '+' : ''}${x.toFixed(1)}`;
const pct = (x) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}`;
console.log(`command: node benchmarks/diag/static-share.mjs ${process.argv.slice(2).join(' ')}; date ${new Date().toISOString()}; load ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
const SOURCES = ['rapl', 'bmc_rest'];
for (const seed of arg('--seeds', '101').split(',')) {
  if ([...P.eval, ...P.fresh, ...P.fresh2, ...P.fresh3].some((f) => f.seed === Number(seed))) throw new Error(`seed ${seed}: an evaluation seed (development fleets only)`);
  const data = JSON.parse(readFileSync(join(arg('--cache-dir'), `fleet-${seed}-${LEN}-${LEN}${hostTag}.json`), 'utf8'));
  const { warm, bill, truth } = data;
  // the trainer's static anchor (static-anchor.ts) per host, read from its debug log: the class fit's intercept and the
  // local low-load intercept (± its regression sd) that it combines
  let anchored = [];
  const logger = { debug: (o, msg) => void (/anchored/.test(msg ?? '') && (anchored = o.hosts)), info() {}, warn() {}, error() {}, trace() {}, fatal() {}, child: () => logger, level: 'debug', isLevelEnabled: () => true };
  const model = await models.trainAdditiveModel(warm, { hardwareClass: warm[0].hardwareClass, logger, ...train });
  const lookup = { get: () => model };
  const meth = {
    online: new models.AdditiveModelMethod({ models: lookup }),
    trueS: new models.AdditiveModelMethod({ models: lookup, staticFrom: 'context' }),
    trueR: new models.AdditiveModelMethod({ models: lookup, staticFrom: 'context' }),
  };
  const trueW = {};
  for (const h of truth.hosts) trueW[h.hostId] = { rapl: h.staticJoules.rapl / LEN, gpu: 0, bmc_rest: h.staticJoules.bmc_rest / LEN };
  const acc = {};
  const billedStatic = {};
  for (const iv of bill) {
    for (const [k, m] of Object.entries(meth)) {
      const watts = k === 'trueR' ? { ...trueW[iv.hostId], bmc_rest: m.filter.staticPower(iv.hostId, 'bmc_rest', model).w } : trueW[iv.hostId];
      const r = m.attribute(iv, { policy: 'reserved', staticPower: { watts, origin: 'truth' } });
      m.observe(iv);
      const a = (acc[k] ??= { t: {}, d: {} });
      for (const s of r.shares) {
        if (k === 'online') {
          const b = (billedStatic[iv.hostId] ??= { rapl: 0, bmc_rest: 0, gpu: 0 });
          b[s.source] += s.staticJoules;
        }
        if (s.kind !== 'vm') continue;
        a.t[s.tenant] = (a.t[s.tenant] ?? 0) + s.dynamicJoules + s.staticJoules;
        a.d[s.tenant] = (a.d[s.tenant] ?? 0) + s.dynamicJoules;
      }
    }
  }
  const tt = {}, td = {}, ts = {};
  for (const v of truth.vms) {
    tt[v.tenant] = (tt[v.tenant] ?? 0) + v.totalJoules;
    td[v.tenant] = (td[v.tenant] ?? 0) + v.dynamicJoules.rapl + v.dynamicJoules.gpu + v.dynamicJoules.bmc_rest;
  }
  for (const x of Object.keys(tt)) ts[x] = tt[x] - td[x];
  const tenants = Object.keys(tt).filter((x) => tt[x] > 0).sort();
  const rows = tenants.map((x) => {
    const on = acc.online.t[x] / tt[x] - 1, tS = acc.trueS.t[x] / tt[x] - 1, tR = acc.trueR.t[x] / tt[x] - 1;
    return { x, on, tS, tR, stat: on - tS, raplStat: on - tR, dynOn: acc.online.d[x] / td[x] - 1, dynT: acc.trueS.d[x] / td[x] - 1, kJ: tt[x] / 1000, staticFrac: ts[x] / tt[x] };
  });
  const worst = rows.reduce((a, b) => (Math.abs(b.on) > Math.abs(a.on) ? b : a));
  const worstT = Math.max(...rows.map((r) => Math.abs(r.tS)));
  const mean = (f) => rows.reduce((s, r) => s + Math.abs(f(r)), 0) / rows.length;
  console.log(`seed ${seed}${hostTag} ${JSON.stringify(data.physics)} | worst tenant ${worst.x} total ${pct(worst.on)} % = static ${pct(worst.stat)} (RAPL ${pct(worst.raplStat)}) + dynamic split ${pct(worst.tS)} | fleet worst total online ${(100 * Math.abs(worst.on)).toFixed(1)} % trueS ${(100 * worstT).toFixed(1)} %, mean ${(100 * mean((r) => r.on)).toFixed(2)} / ${(100 * mean((r) => r.tS)).toFixed(2)} %, mean |static part| ${(100 * mean((r) => r.stat)).toFixed(2)} points`);
  for (const r of rows) console.log(`    ${r.x.padEnd(16)} ${r.kJ.toFixed(0).padStart(6)} kJ (static ${(100 * r.staticFrac).toFixed(0)} %) total ${pct(r.on)} = static ${pct(r.stat)} (RAPL ${pct(r.raplStat)}) + split ${pct(r.tS)} | dynamic ${pct(r.dynOn)} -> trueS ${pct(r.dynT)}`);
  truth.hosts.forEach((h, i) => {
    const src = SOURCES.map((s) => {
      const tw = trueW[h.hostId][s];
      const trained = models.staticPowerW(model, s, h.hostId);
      const billed = billedStatic[h.hostId][s] / LEN;
      const end = meth.online.filter.staticPower(h.hostId, s, model).w;
      return `${s} true ${tw.toFixed(1)} trained ${sgn(trained - tw)} billed ${sgn(billed - tw)} end ${sgn(end - tw)} W`;
    });
    const a = anchored.find((x) => x.hostId === h.hostId);
    const anchor = a ? ` | RAPL anchor: fit ${sgn(a.fitW - trueW[h.hostId].rapl)}, local ${a.localW === undefined ? 'none' : `${sgn(a.localW - trueW[h.hostId].rapl)} ± ${a.localSdW.toFixed(1)}`} W` : '';
    console.log(`  ${h.hostId} ${JSON.stringify(data.physics?.[i])}: ${src.join(' | ')}${anchor}`);
  });
}

#!/usr/bin/env node
// Issue 12, fifth pass (docs/accuracy-method.md): per VM of a development fleet cached by accuracy-filter.mjs,
// the priors the online filter starts from against the truth, for two trainer options side by side (default:
// featureLoadFactor off / on). Per VM: host, name, class, busy cores, the true RAPL dynamic energy per busy
// core-second of the billed period (at the load it ran at), and per trainer variant: the trained signature
// (vmCoreW, W per core at load 0), the feature model's prior for the VM as if unseen (its mean W per busy core
// over the billed period, load factor applied, as the apply path bills an unseen VM), the trained VM's prior
// (vmCoreW × load factor × IPC factor, same period), and the offline / online errors of its RAPL dynamic energy.
// Every method splits with the true static power. The fifth pass's diagnosis (docs/accuracy-method.md) ran it with
// feature-load-factor.diff's refit before the per-VM fit, where the signatures differ between the columns; on the
// shipped trainer (the refit after it) only the feature model's column does.
//
//   node benchmarks/accuracy-filter.mjs --seeds 107 --cold --cache-dir DIR [--host-option perfSupported=false]
//   node benchmarks/diag/feature-prior.mjs --cache-dir DIR --seeds 103,107 [--len 600] [--tag -perfSupported=false]
//        [--train '{"off":{"featureLoadFactor":false},"on":{}}']
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { arg, models, trueStaticWatts } from './fleet-cache.mjs';

const LEN = Number(arg('--len', '600'));
const tag = arg('--tag', '');
const trains = JSON.parse(arg('--train', '{"off":{"featureLoadFactor":false},"on":{}}'));
const perSec = (model, ivs, strip) => {
  // mean RAPL CPU W per busy core of each VM over `ivs` under `model` (without its own signatures if `strip`)
  const w = model.sources.rapl;
  const m = strip ? { ...model, sources: { ...model.sources, rapl: { ...w, vmCoreW: undefined, io: w.io.map(() => 0) } } } : { ...model, sources: { ...model.sources, rapl: { ...w, io: w.io.map(() => 0) } } };
  const num = {}, den = {};
  for (const iv of ivs) {
    const ts = models.intervalFeatures(iv);
    const g = models.termPowers(m, 'rapl', ts);
    ts.forEach((f, t) => {
      if (!(f.cpu > 0)) return;
      num[f.id] = (num[f.id] ?? 0) + g[t];
      den[f.id] = (den[f.id] ?? 0) + f.cpu;
    });
  }
  return Object.fromEntries(Object.keys(den).map((k) => [k, num[k] / den[k]]));
};
for (const seed of arg('--seeds', '107').split(',')) {
  const data = JSON.parse(readFileSync(join(arg('--cache-dir'), `fleet-${seed}-${LEN}-${LEN}${tag}.json`), 'utf8'));
  const { warm, bill, truth } = data;
  const trueStatic = trueStaticWatts(truth, LEN);
  const cols = {};
  for (const [name, opts] of Object.entries(trains)) {
    const model = await models.trainAdditiveModel(warm, { hardwareClass: warm[0].hardwareClass, ...opts });
    const acc = { offline: {}, online: {} };
    const methods = { offline: new models.AdditiveModelMethod({ models: { get: () => model }, online: false }), online: new models.AdditiveModelMethod({ models: { get: () => model }, online: true }) };
    for (const iv of bill) {
      for (const [k, m] of Object.entries(methods)) {
        const r = m.attribute(iv, { policy: 'reserved', staticPower: { watts: trueStatic[iv.hostId], origin: 'truth' } });
        m.observe?.(iv);
        for (const s of r.shares) if (s.kind === 'vm' && s.source === 'rapl') acc[k][s.vmUuid] = (acc[k][s.vmUuid] ?? 0) + s.dynamicJoules;
      }
    }
    cols[name] = { model, acc, feature: perSec(model, bill, true), own: perSec(model, bill, false) };
    console.log(`seed ${seed}${tag} ${name} ${JSON.stringify(opts)}: rapl load ${model.sources.rapl.load.map((x) => x.toFixed(3))} static ${JSON.stringify(model.sources.rapl.hostStaticW)} ipcGain ${model.sources.rapl.ipcGain ?? '-'}`);
  }
  console.log(`seed ${seed} ${JSON.stringify(data.physics)}   columns per variant: coreW(load 0) | own prior W/core | feature prior W/core | offline err | online err`);
  const cpu = {};
  for (const iv of bill) for (const v of iv.vms) cpu[v.uuid] = (cpu[v.uuid] ?? 0) + v.cpuSeconds;
  for (const v of truth.vms) {
    const t = v.dynamicJoules.rapl;
    const e = (j) => (100 * ((j ?? 0) / t - 1)).toFixed(1).padStart(6);
    const parts = Object.entries(cols).map(([k, c]) => `${k} ${(c.model.sources.rapl.vmCoreW?.[v.uuid] ?? NaN).toFixed(2)} ${(c.own[v.uuid] ?? NaN).toFixed(2)} ${(c.feature[v.uuid] ?? NaN).toFixed(2)} ${e(c.acc.offline[v.uuid])} ${e(c.acc.online[v.uuid])}`);
    console.log(`  ${v.hostId} ${v.name.padEnd(14)} ${v.class.padEnd(9)} cpu/s ${(cpu[v.uuid] / LEN).toFixed(2).padStart(5)} trueJ ${t.toFixed(0).padStart(6)} W/core ${(t / cpu[v.uuid]).toFixed(2)} | ${parts.join(' | ')}`);
  }
}

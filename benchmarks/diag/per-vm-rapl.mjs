#!/usr/bin/env node
// Issue 12 diagnosis (docs/accuracy-method.md, "It is the small VMs' per-VM rates"), development fleets only:
// per VM of a fleet cached by accuracy-filter.mjs, the billed period's true RAPL dynamic energy against what
// additive_model bills it, one column per online variant. Prints, per VM: host, name, class, mean busy cores
// (cpu/s), true RAPL dynamic joules, true W per busy core, the trained model's own W per core (vmCoreW), the
// online filter's multiplier (variant "on"), LLC-miss traffic B (GB/s), and each variant's error (%).
// Every method is given the true static power in its context (variants named true* split with it).
//
//   node benchmarks/accuracy-filter.mjs --seeds 106 --warm 1800 --bill 1800 --cold --cache-dir DIR   # makes the cache
//   node benchmarks/diag/per-vm-rapl.mjs --cache-dir DIR --seeds 106 --len 1800 [--variants '{"off":false,"on":true}']
import { arg, loadFleet, models, trueStaticWatts } from './fleet-cache.mjs';

const LEN = Number(arg('--len', '600'));
const variants = JSON.parse(arg('--variants', '{"off":false,"on":true}'));
for (const seed of arg('--seeds', '106').split(',')) {
  const data = await loadFleet(seed, LEN);
  const { bill, truth, model } = data;
  const methods = {};
  for (const [k, v] of Object.entries(variants)) methods[k] = new models.AdditiveModelMethod({ models: { get: () => model }, online: v, ...(k.startsWith('true') ? { staticFrom: 'context' } : {}) });
  const trueStatic = trueStaticWatts(truth, LEN);
  const acc = {};
  const cpu = {};
  const bw = {};
  for (const iv of bill) {
    for (const v of iv.vms) {
      cpu[v.uuid] = (cpu[v.uuid] ?? 0) + v.cpuSeconds;
      bw[v.uuid] = (bw[v.uuid] ?? 0) + ((v.perf?.llcMisses ?? 0) * 64) / 1e9;
    }
    for (const [k, m] of Object.entries(methods)) {
      const r = m.attribute(iv, { policy: 'reserved', staticPower: { watts: trueStatic[iv.hostId], origin: 'truth' } });
      m.observe?.(iv);
      const a = (acc[k] ??= {});
      for (const s of r.shares) if (s.kind === 'vm' && s.source === 'rapl') a[s.vmUuid] = (a[s.vmUuid] ?? 0) + s.dynamicJoules;
    }
  }
  console.log(`seed ${seed} ${JSON.stringify(data.physics)}`);
  for (const v of truth.vms) {
    const t = v.dynamicJoules.rapl;
    const errs = Object.keys(methods).map((k) => `${k} ${(100 * ((acc[k][v.uuid] ?? 0) / t - 1)).toFixed(1).padStart(6)}`);
    const mult = methods.on?.filter ? methods.on.filter.multiplier(v.hostId, 'rapl', v.uuid) : undefined;
    console.log(
      `  ${v.hostId} ${v.name.padEnd(14)} ${v.class.padEnd(9)} cpu/s ${(cpu[v.uuid] / LEN).toFixed(2).padStart(5)} trueJ ${t.toFixed(0).padStart(6)} W/core ${(t / cpu[v.uuid]).toFixed(2)} coreW ${(model.sources.rapl.vmCoreW?.[v.uuid] ?? NaN).toFixed(2)} m ${mult?.toFixed(2)} B ${(bw[v.uuid] / LEN).toFixed(2)} | ${errs.join(' ')}`,
    );
  }
}

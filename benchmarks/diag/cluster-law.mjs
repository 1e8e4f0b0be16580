// Issue 12, ninth pass (docs/accuracy-method.md), development fleets only: does one linear IPC law per workload
// fingerprint (VMs grouped by their training mean LLC misses per kilo-instruction, log2 bins of --bin), fitted on the
// host totals pooled over all VMs of a group, pin the small VMs' level better than each VM's own signature? Trains the
// shipped model on the warm-up, fits the pooled laws (host static + a, b per group: W per busy core = a·(1 + b·(ipc /
// group mean − 1)) × the model's load factor), replaces each trained VM's signature and IPC gain by its group's law
// (--blend 1: wholly; 0.5: a geometric mean with its own), and bills the billed period offline and online with both
// models, the true static power given to both. Prints per VM and per tenant the RAPL dynamic error.
//
//   node benchmarks/diag/cluster-law.mjs --seed 106 [--len 600] [--bin 0.5] [--blend 1] [--host-option perfSupported=false]
import { pathToFileURL } from 'node:url';
const root = new URL('../../', import.meta.url).pathname;
const imp = (p) => import(pathToFileURL(root + p).href);
const { oracleFleet } = await imp('benchmarks/oracle-fleet.mjs');
const { hostOptions } = await imp('benchmarks/host-options.mjs');
const sim = await imp('packages/simulator/dist/index.js');
const models = await imp('packages/models/dist/index.js');
const argv = process.argv.slice(2);
const arg = (k, d) => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : d);
const P = sim.EVALUATION_PROTOCOL;
const seed = Number(arg('--seed', '106'));
const len = Number(arg('--len', '600'));
const f = P.dev.find((x) => x.seed === seed) ?? { physics: arg('--physics', 'families').split('+') };
const s = oracleFleet({ hosts: P.hosts, vmsPerHost: P.vmsPerHost, seed, hostSpecs: [{ ...P.hostSpec, ...hostOptions(argv) }], physics: f.physics, physicsShiftAtS: len });
const warm = s.advance(len);
const snap0 = s.fleet.truth();
const bill = s.advance(len);
const snap1 = s.fleet.truth();
const model = await models.trainAdditiveModel(warm, { hardwareClass: warm[0].hardwareClass });
const r = model.sources.rapl;
const IPC = models.SHAPE_FEATURES.indexOf('ipc');
const MPKI = models.SHAPE_FEATURES.indexOf('llc_mpki');
// fingerprint: the VM's CPU-weighted mean LLC MPKI over training, log2 bins of width w
const binW = Number(arg('--bin', '0.5'));
const acc = new Map();
for (const iv of warm) for (const t of models.intervalFeatures(iv)) {
  if (!(t.cpu > 0)) continue;
  const a = acc.get(t.id) ?? { cpu: 0, mpki: 0, ipc: 0 };
  a.cpu += t.cpu; a.mpki += t.cpu * (t.shape[MPKI] ?? 0); a.ipc += t.cpu * (t.shape[IPC] ?? 0);
  acc.set(t.id, a);
}
const cluster = new Map();
for (const [id, a] of acc) cluster.set(id, id === models.OVERHEAD_ID ? 'hv' : `m${Math.round(Math.log2(Math.max(1e-3, a.mpki / a.cpu)) / binW)}`);
const clusters = [...new Set(cluster.values())].sort();
const cIpc = new Map(); // cluster mean ipc
for (const c of clusters) { let n = 0, d = 0; for (const [id, a] of acc) if (cluster.get(id) === c) { n += a.ipc; d += a.cpu; } cIpc.set(c, d > 0 ? n / d : 1); }
const hosts = [...new Set(warm.map((iv) => iv.hostId))].sort();
// unknowns: S_h per host, a_c, b_c per cluster (b only where perf)
const idx = new Map(); let K = 0;
for (const h of hosts) idx.set(`S|${h}`, K++);
for (const c of clusters) { idx.set(`a|${c}`, K++); if (c !== 'hv') idx.set(`b|${c}`, K++); }
const A = Array.from({ length: K }, () => new Float64Array(K)); const B = new Float64Array(K);
const dramW = r.io[models.IO_FEATURES.indexOf('dram_gbs')] ?? 0;
const DR = models.IO_FEATURES.indexOf('dram_gbs');
for (const iv of warm) {
  const terms = models.intervalFeatures(iv);
  const loads = models.termLoads(model, terms);
  const x = new Float64Array(K);
  x[idx.get(`S|${iv.hostId}`)] = 1;
  let y = Math.max(0, iv.measured.rapl) / iv.durationS;
  terms.forEach((t, i) => {
    y -= (t.io[DR] ?? 0) * dramW;
    if (!(t.cpu > 0)) return;
    const c = cluster.get(t.id); if (!c) return;
    const lf = models.loadFactor(r.load, loads[i]);
    x[idx.get(`a|${c}`)] += t.cpu * lf;
    if (c !== 'hv' && t.shape[IPC] > 0) x[idx.get(`b|${c}`)] += t.cpu * lf * (t.shape[IPC] / cIpc.get(c) - 1);
  });
  for (let i = 0; i < K; i++) { B[i] += x[i] * y; for (let j = 0; j < K; j++) A[i][j] += x[i] * x[j]; }
}
for (let i = 0; i < K; i++) A[i][i] += 1e-6;
// solve
const M = A.map((row, i) => [...row, B[i]]);
for (let i = 0; i < K; i++) { let p = i; for (let j = i + 1; j < K; j++) if (Math.abs(M[j][i]) > Math.abs(M[p][i])) p = j; [M[i], M[p]] = [M[p], M[i]]; for (let j = i + 1; j < K; j++) { const q = M[j][i] / M[i][i]; for (let k = i; k <= K; k++) M[j][k] -= q * M[i][k]; } }
const sol = new Float64Array(K); for (let i = K - 1; i >= 0; i--) { let v = M[i][K]; for (let j = i + 1; j < K; j++) v -= M[i][j] * sol[j]; sol[i] = v / M[i][i]; }
const get = (k) => sol[idx.get(k)];
console.log(`seed ${seed} ${f.physics.join('+')} clusters: ${clusters.map((c) => `${c} a=${get(`a|${c}`).toFixed(2)} b=${c === 'hv' ? '-' : get(`b|${c}`).toFixed(2)} ipc=${cIpc.get(c).toFixed(2)} n=${[...cluster.values()].filter((x) => x === c).length}`).join('; ')}; S ${hosts.map((h) => get(`S|${h}`).toFixed(1)).join(' ')} vs model ${hosts.map((h) => (r.hostStaticW?.[h] ?? r.staticW).toFixed(1)).join(' ')}`);
// alternative model: each trained VM's signature from its cluster's law
const alt = JSON.parse(JSON.stringify(model));
const ar = alt.sources.rapl;
const blend = Number(arg('--blend', '1')); // weight of the cluster law in log space vs the VM's own
for (const [id] of acc) {
  const c = cluster.get(id); if (c === 'hv' || !ar.vmCoreW?.[id]) continue;
  const a = get(`a|${c}`), b = get(`b|${c}`), ref = ar.vmIpcRef?.[id] ?? cIpc.get(c);
  const cw = a * (1 + b * (ref / cIpc.get(c) - 1));
  if (!(cw > 0)) continue;
  const own = ar.vmCoreW[id];
  ar.vmCoreW[id] = Math.exp(blend * Math.log(cw) + (1 - blend) * Math.log(own));
  const g = (a * b * ref / cIpc.get(c)) / cw;
  ar.vmIpcGain ??= {}; ar.vmIpcRef ??= {};
  ar.vmIpcGain[id] = Math.max(0, Math.min(4, g)); ar.vmIpcRef[id] = ref;
}
const truth = sim.truthBetween(snap0, snap1);
const trueStatic = {};
for (const h of truth.hosts) trueStatic[h.hostId] = { rapl: h.staticJoules.rapl / len, gpu: 0, bmc_rest: h.staticJoules.bmc_rest / len };
const variants = { shipped: model, cluster: alt };
const res = {};
for (const [name, m] of Object.entries(variants)) {
  for (const online of [false, true]) {
    const meth = new models.AdditiveModelMethod({ models: { get: () => m }, online });
    const byVm = new Map();
    for (const iv of bill) {
      const a = meth.attribute(iv, { policy: 'reserved', staticPower: { watts: trueStatic[iv.hostId], origin: 'truth' } });
      for (const x of a.shares) if (x.kind === 'vm' && x.source === 'rapl') byVm.set(`${iv.hostId}|${x.vmUuid}`, (byVm.get(`${iv.hostId}|${x.vmUuid}`) ?? 0) + x.dynamicJoules);
      if (online) meth.observe(iv);
    }
    res[`${name}${online ? '-online' : '-offline'}`] = byVm;
  }
}
const keys = Object.keys(res);
console.log(`VM | class | cluster | truth J | ${keys.join(' | ')}`);
const ten = {};
for (const v of truth.vms) {
  const k = `${v.hostId}|${v.uuid}`; const E = v.dynamicJoules.rapl;
  console.log(`${v.hostId} ${v.name.padEnd(13)} ${v.class.padEnd(9)} ${String(cluster.get(v.uuid)).padEnd(4)} ${E.toFixed(0).padStart(7)} ${keys.map((q) => (100 * ((res[q].get(k) ?? 0) / E - 1)).toFixed(1).padStart(7)).join(' ')}`);
  const t = (ten[v.tenant] ??= { E: 0 }); t.E += E; for (const q of keys) t[q] = (t[q] ?? 0) + (res[q].get(k) ?? 0);
}
console.log('tenant RAPL dynamic error %:');
const worst = {}; const mean = {};
for (const [tn, t] of Object.entries(ten)) { console.log(`  ${tn.padEnd(12)} ${t.E.toFixed(0).padStart(7)} ${keys.map((q) => (100 * (t[q] / t.E - 1)).toFixed(1).padStart(7)).join(' ')}`); for (const q of keys) { const e = Math.abs(t[q] / t.E - 1); worst[q] = Math.max(worst[q] ?? 0, e); mean[q] = (mean[q] ?? 0) + e / Object.keys(ten).length; } }
console.log(`SUMMARY seed ${seed} ${keys.map((q) => `${q} worst ${(100 * worst[q]).toFixed(1)} mean ${(100 * mean[q]).toFixed(1)}`).join(' | ')}`);

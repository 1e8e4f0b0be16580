#!/usr/bin/env node
// Issue 12 diagnosis (docs/accuracy-method.md, "Host static power is not what makes the worst tenants"),
// development fleets only: per host of a fleet cached by accuracy-filter.mjs, the billed period's measured RAPL
// dynamic power with the true static, the VMs' true dynamic power and the hypervisor's (the rest), against what
// additive_model (online) gives the VMs and the hypervisor (host_overhead) with the filter's static ("online")
// and with the true static ("trueS"), in W.
//
//   node benchmarks/accuracy-filter.mjs --seeds 104,106,107 --warm 1800 --bill 1800 --cold --cache-dir DIR   # makes the cache
//   node benchmarks/diag/hypervisor-share.mjs --cache-dir DIR --seeds 104,106,107 --len 1800
import { arg, loadFleet, models, trueStaticWatts } from './fleet-cache.mjs';

const LEN = Number(arg('--len', '600'));
for (const seed of arg('--seeds', '106').split(',')) {
  const { bill, truth, model } = await loadFleet(seed, LEN);
  const m = new models.AdditiveModelMethod({ models: { get: () => model } });
  const mt = new models.AdditiveModelMethod({ models: { get: () => model }, staticFrom: 'context' });
  const trueStatic = trueStaticWatts(truth, LEN);
  const vmOn = {};
  const hvOn = {};
  const vmT = {};
  const hvT = {};
  const meas = {};
  for (const iv of bill) {
    meas[iv.hostId] = (meas[iv.hostId] ?? 0) + iv.measured.rapl;
    for (const [meth, vm, hv, origin] of [[m, vmOn, hvOn, 'x'], [mt, vmT, hvT, 'truth']]) {
      const r = meth.attribute(iv, { policy: 'reserved', staticPower: { watts: trueStatic[iv.hostId], origin } });
      meth.observe(iv);
      for (const s of r.shares) {
        if (s.source !== 'rapl') continue;
        const into = s.kind === 'vm' ? vm : hv;
        into[iv.hostId] = (into[iv.hostId] ?? 0) + s.dynamicJoules;
      }
    }
  }
  for (const h of truth.hosts) {
    const tv = truth.vms.filter((v) => v.hostId === h.hostId).reduce((a, v) => a + v.dynamicJoules.rapl, 0);
    const tdyn = meas[h.hostId] - h.staticJoules.rapl;
    const w = (j) => (j / LEN).toFixed(1);
    console.log(seed, h.hostId, `measured dyn(true static) ${w(tdyn)} W; VMs true ${w(tv)} W -> hypervisor true ~${w(tdyn - tv)} W | online: VMs ${w(vmOn[h.hostId])} hv ${w(hvOn[h.hostId])} | trueS: VMs ${w(vmT[h.hostId])} hv ${w(hvT[h.hostId])}`);
  }
}

#!/usr/bin/env node
// What the static-power learner's refresh cadence (collector config `staticPower.refreshEvery`, default 10 since
// 2026-12-06; 1 = the estimate recomputed after every interval, as before) does to the bills, through the shipped
// path: the same agents' frames through two embedded collectors (in-process bus, chDB), one per cadence, then
// per VM and per tenant the joules each stored (cpu_share, the method every collector runs, dynamic + static),
// their difference, and both against the simulator's truth (total energy, the 'reserved' static split).
//
//   node benchmarks/diag/static-refresh-bills.mjs [--hosts 4] [--vms 20] [--seconds 1200] [--every 10]
//
// In-sample by construction (the legacy simulator, seed 7): it measures a change of cadence, not accuracy.
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { InProcessBus, TOPICS, silentLogger, encodeFrame } from '@wattsplit/wire';
import { Agent, SHIPPED_SCHEDULE } from '@wattsplit/agent';
import { createFleet } from '@wattsplit/simulator';
import { startEmbeddedCollector } from '@wattsplit/collector';

const opt = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const HOSTS = opt('hosts', 4);
const VMS = opt('vms', 20);
const SECONDS = opt('seconds', 1200);
const EVERY = opt('every', 10);

const fleet = createFleet({ hosts: HOSTS, vmsPerHost: VMS, seed: 7, events: 'none', noise: true, startUnixMs: Date.now() - SECONDS * 1000 });
const agents = fleet.hosts.map((h) => new Agent({ hostId: h.hostId, hardwareClass: h.hardwareClass, fs: h.fs, domains: h.domains, gpus: h.gpus, perf: h.perf, bmc: h.bmc, processOwners: h.processOwners, clock: h.clock, logger: silentLogger, bootId: 'bills', ...SHIPPED_SCHEDULE }));
const frames = [];
// the first frame opens the first interval: the truth is taken from there on
for (const a of agents) {
  const f = await a.sampleOnce();
  frames.push({ key: f.hostId, value: encodeFrame(f) });
}
const truth0 = fleet.truth();
for (let t = 1; t <= SECONDS; t++) {
  fleet.step(1);
  for (const a of agents) {
    const f = await a.sampleOnce();
    frames.push({ key: f.hostId, value: encodeFrame(f) });
  }
}
const truth1 = fleet.truth();

/** Per-VM joules (dynamic + static, cpu_share) stored by a collector with the given cadence. */
async function billsWith(every) {
  const dir = mkdtempSync(join(tmpdir(), 'ws-bills-'));
  const bus = new InProcessBus({ logger: silentLogger, lingerMs: 50 });
  const c = await startEmbeddedCollector({ dataDir: join(dir, 'db'), bus, logger: silentLogger, staticPower: { refreshEvery: every } });
  try {
    for (let i = 0; i < frames.length; i += 512) await bus.producer().send(TOPICS.telemetry, frames.slice(i, i + 512));
    await bus.idle();
    const r = await c.store.query(
      "SELECT vm_uuid, any(tenant) AS tenant, sum(dynamic_j + static_j) AS j, sum(static_j) AS s FROM attributions FINAL WHERE kind = 'vm' AND method = 'cpu_share' GROUP BY vm_uuid",
      'JSONEachRow',
    );
    return { rows: new Map(r.rows.map((x) => [String(x.vm_uuid), { tenant: String(x.tenant), j: Number(x.j), s: Number(x.s) }])), intervals: c.pipeline.stats.intervalsStored };
  } finally {
    await c.close();
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const t0 = Date.now();
const a = await billsWith(1);
const b = await billsWith(EVERY);
// truth per VM over the billed period: dynamic (all sources) + its 'reserved' static share
const truthVm = new Map();
const prev = new Map(truth0.vms.map((v) => [`${v.uuid}@${v.hostId}`, v]));
for (const v of truth1.vms) {
  const p = prev.get(`${v.uuid}@${v.hostId}`);
  const dyn = (x) => (x ? x.dynamicJoules.rapl + x.dynamicJoules.gpu + x.dynamicJoules.bmc_rest + x.staticJoulesReserved : 0);
  truthVm.set(v.uuid, (truthVm.get(v.uuid) ?? 0) + dyn(v) - dyn(p));
}
const rel = (x, y) => Math.abs(x - y) / Math.max(1e-9, Math.abs(y));
let vmMax = 0;
let staticMax = 0;
const tenants = new Map();
const errs = { a: [], b: [] };
for (const [uuid, x] of a.rows) {
  const y = b.rows.get(uuid);
  if (!y) throw new Error(`VM ${uuid} billed with refreshEvery 1 and not with ${EVERY}`);
  vmMax = Math.max(vmMax, rel(y.j, x.j));
  staticMax = Math.max(staticMax, rel(y.s, x.s));
  const t = tenants.get(x.tenant) ?? { a: 0, b: 0, truth: 0 };
  t.a += x.j;
  t.b += y.j;
  t.truth += truthVm.get(uuid) ?? 0;
  tenants.set(x.tenant, t);
  const tv = truthVm.get(uuid);
  if (tv) {
    errs.a.push(rel(x.j, tv));
    errs.b.push(rel(y.j, tv));
  }
}
if (b.rows.size !== a.rows.size) throw new Error(`${a.rows.size} VMs billed with refreshEvery 1, ${b.rows.size} with ${EVERY}`);
let tenantMax = 0;
const tErr = { a: [], b: [] };
for (const t of tenants.values()) {
  tenantMax = Math.max(tenantMax, rel(t.b, t.a));
  tErr.a.push(rel(t.a, t.truth));
  tErr.b.push(rel(t.b, t.truth));
}
const max = (xs) => Math.max(...xs);
const mean = (xs) => xs.reduce((s, x) => s + x, 0) / xs.length;
const pct = (x) => `${(100 * x).toFixed(4)} %`;
const out = {
  bench: 'static-refresh-bills', hosts: HOSTS, vms_per_host: VMS, seconds: SECONDS, every: EVERY, intervals: [a.intervals, b.intervals],
  vm_total_max_rel_diff: vmMax, vm_static_max_rel_diff: staticMax, tenant_total_max_rel_diff: tenantMax,
  vm_vs_truth: { every1: { worst: max(errs.a), mean: mean(errs.a) }, everyN: { worst: max(errs.b), mean: mean(errs.b) } },
  tenant_vs_truth: { every1: { worst: max(tErr.a), mean: mean(tErr.a) }, everyN: { worst: max(tErr.b), mean: mean(tErr.b) } },
  wall_s: (Date.now() - t0) / 1000, loadavg_1m_end: loadavg()[0], machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`, node: process.version, date: new Date().toISOString(),
};
console.log(JSON.stringify(out));
console.log(`\n| cpu_share, ${HOSTS} hosts × ${VMS} VMs, ${SECONDS} s | refreshEvery 1 | refreshEvery ${EVERY} |\n|---|---|---|`);
console.log(`| VM total vs truth, worst / mean | ${pct(max(errs.a))} / ${pct(mean(errs.a))} | ${pct(max(errs.b))} / ${pct(mean(errs.b))} |`);
console.log(`| tenant total vs truth, worst / mean | ${pct(max(tErr.a))} / ${pct(mean(tErr.a))} | ${pct(max(tErr.b))} / ${pct(mean(tErr.b))} |`);
console.log(`\nbetween the two: VM total ≤ ${pct(vmMax)}, VM static ≤ ${pct(staticMax)}, tenant total ≤ ${pct(tenantMax)}; ${a.intervals} / ${b.intervals} intervals stored; ${out.machine}; node ${process.version}; ${out.date}`);

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWattsplitError } from '@wattsplit/wire';
import { DEFAULT_HOST_SPECS, createFleet, truthBetween, type FleetTruth } from './fleet.js';

const SOURCES = ['rapl', 'gpu', 'bmc_rest'] as const;

function conservationProblems(tr: FleetTruth): string[] {
  const out: string[] = [];
  for (const h of tr.hosts) {
    const vms = tr.vms.filter((v) => v.hostId === h.hostId);
    for (const s of SOURCES) {
      const parts = vms.reduce((a, v) => a + v.dynamicJoules[s] + v.staticJoulesBySource[s], 0) + h.overheadJoules[s] + h.unallocatedStaticJoules[s];
      const m = h.measuredJoules[s];
      if (Math.abs(parts - m) > 1e-9 * Math.max(1, m)) out.push(`${h.hostId} ${s}: parts ${parts} ≠ measured ${m}`);
    }
    const wallParts = h.measuredJoules.rapl + h.measuredJoules.gpu + h.measuredJoules.bmc_rest;
    if (Math.abs(wallParts - h.wallJoules) > 1e-9 * h.wallJoules) out.push(`${h.hostId}: rapl+gpu+bmc_rest ≠ wall`);
  }
  return out;
}

test('same seed → identical fleet, truth and file contents; another seed differs', () => {
  const a = createFleet({ hosts: 4, vmsPerHost: 12, seed: 7 });
  const b = createFleet({ hosts: 4, vmsPerHost: 12, seed: 7 });
  const c = createFleet({ hosts: 4, vmsPerHost: 12, seed: 8 });
  for (let i = 0; i < 120; i++) {
    a.step(1);
    b.step(1);
    c.step(1);
  }
  assert.deepEqual(a.truth(), b.truth());
  for (const [i, h] of a.hosts.entries()) {
    assert.equal(h.fs.readText('/proc/stat'), b.hosts[i]!.fs.readText('/proc/stat'));
    assert.deepEqual(h.gpus.read(), b.hosts[i]!.gpus.read());
    assert.equal(h.clock.wallUnixNs(), b.hosts[i]!.clock.wallUnixNs());
  }
  assert.notDeepEqual(a.truth().tenants, c.truth().tenants);
});

test('truth conserves: Σ VM dynamic + static + overhead + unallocated == measured, per host and source', () => {
  const f = createFleet({ hosts: 4, vmsPerHost: 12, seed: 1 });
  for (let i = 0; i < 300; i++) f.step(1);
  const tr = f.truth();
  assert.deepEqual(conservationProblems(tr), []);
  assert.ok(Math.abs(tr.elapsedS - 300) < 1e-9);
  for (const v of tr.vms) {
    assert.ok(Math.abs(v.totalJoules - (v.dynamicJoules.rapl + v.dynamicJoules.gpu + v.dynamicJoules.bmc_rest + v.staticJoulesReserved)) < 1e-6);
    for (const s of SOURCES) assert.ok(v.dynamicJoules[s] >= 0 && v.staticJoulesBySource[s] >= 0, `${v.name} ${s}`);
  }
  // hosts are in a realistic power range: RAPL static 90–140 W, wall a few hundred W to ~2 kW
  for (const h of tr.hosts) {
    const staticW = h.staticJoules.rapl / 300;
    assert.ok(staticW >= 90 && staticW <= 140, `${h.hostId} RAPL static ${staticW} W`);
    const wallW = h.wallJoules / 300;
    assert.ok(wallW > 250 && wallW < 2500, `${h.hostId} wall ${wallW} W`);
  }
});

test('conservation also holds with odd step sizes, another seed and a random mix', () => {
  const f = createFleet({ hosts: 3, vmsPerHost: 7, seed: 99, mix: { web: 2, batch: 1, database: 1, ai_training: 1, idle: 0.5 } });
  for (const dt of [0.25, 1.7, 3, 0.01, 10]) f.step(dt);
  assert.deepEqual(conservationProblems(f.truth()), []);
});

test('the default fleet is heterogeneous: per-tenant CPU-share billing is off by tens of %', () => {
  // CPU-share over the whole run (static by the same 'reserved' policy, dynamic by CPU seconds, GPU by owner)
  const f = createFleet({ hosts: 4, vmsPerHost: 12, seed: 1 });
  for (let i = 0; i < 600; i++) f.step(1);
  const tr = f.truth();
  const billed: Record<string, number> = {};
  for (const h of tr.hosts) {
    const vms = tr.vms.filter((v) => v.hostId === h.hostId);
    const cpu = vms.reduce((a, v) => a + v.cpuSeconds, 0) + h.overheadCpuSeconds;
    for (const v of vms) {
      let b = v.staticJoulesReserved + v.dynamicJoules.gpu;
      for (const s of ['rapl', 'bmc_rest'] as const) b += ((h.measuredJoules[s] - h.staticJoules[s]) * v.cpuSeconds) / cpu;
      billed[v.tenant] = (billed[v.tenant] ?? 0) + b;
    }
  }
  const errs = Object.entries(tr.tenants).map(([t, truth]) => Math.abs(billed[t]! - truth) / truth);
  const worst = Math.max(...errs);
  assert.ok(Object.keys(tr.tenants).length >= 6 && Object.keys(tr.tenants).length <= 10);
  assert.ok(worst > 0.2, `worst tenant error ${worst}`);
});

test('default events: a late start, a mid-run stop and a live migration with a ~12 W pre-copy transient', async () => {
  const f = createFleet({ hosts: 4, vmsPerHost: 12, seed: 3 });
  const start = f.events.find((e) => e.kind === 'start')!;
  const stop = f.events.find((e) => e.kind === 'stop')!;
  const mig = f.events.find((e) => e.kind === 'migrate')!;
  assert.ok(start && stop && mig);
  const uuids = async (h: string) => (await f.host(h).domains.listDomains()).map((d) => d.uuid);
  assert.ok(!(await uuids('hv-00')).includes(start.vmUuid));
  assert.ok((await uuids('hv-02')).includes(stop.vmUuid));
  f.step(start.atS);
  assert.ok((await uuids('hv-00')).includes(start.vmUuid));
  f.step(mig.atS - start.atS + 1);
  const out = (await f.host('hv-01').domains.listDomains()).find((d) => d.uuid === mig.vmUuid)!;
  assert.equal(out.state, 'migrating_out');
  assert.ok(!(await uuids('hv-03')).includes(mig.vmUuid));
  f.step(mig.precopyS!);
  assert.ok(!(await uuids('hv-01')).includes(mig.vmUuid));
  const arrived = (await f.host('hv-03').domains.listDomains()).find((d) => d.uuid === mig.vmUuid)!;
  assert.equal(arrived.state, 'running');
  f.step(200);
  assert.ok(!(await uuids('hv-02')).includes(stop.vmUuid));
  const tr = f.truth();
  const rows = tr.vms.filter((v) => v.uuid === mig.vmUuid);
  assert.deepEqual(rows.map((r) => r.hostId).sort(), ['hv-01', 'hv-03']);
  const h1 = tr.hosts.find((h) => h.hostId === 'hv-01')!;
  const transientW = h1.migrationJoules / mig.precopyS!;
  assert.ok(Math.abs(transientW - 12) < 1.5, `transient ${transientW} W`);
  assert.deepEqual(conservationProblems(tr), []);
});

test('explicit events and no events', async () => {
  const f0 = createFleet({ hosts: 2, vmsPerHost: 3, seed: 1, events: 'none' });
  assert.deepEqual(f0.events, []);
  const vmId = (await f0.hosts[0]!.domains.listDomains())[0]!.uuid;
  const f = createFleet({ hosts: 2, vmsPerHost: 3, seed: 1, events: [{ kind: 'stop', vmUuid: vmId, atS: 5 }] });
  f.step(4);
  assert.equal((await f.hosts[0]!.domains.listDomains()).length, 3);
  f.step(2);
  assert.equal((await f.hosts[0]!.domains.listDomains()).length, 2);
});

test('bad options are CONFIG_INVALID naming the field and value', () => {
  const bad = (fn: () => unknown, re: RegExp) => assert.throws(fn, (e) => isWattsplitError(e, 'CONFIG_INVALID') && re.test(e.message));
  bad(() => createFleet({ hosts: 0, vmsPerHost: 1, seed: 1 }), /hosts=0 must be an integer/);
  bad(() => createFleet({ hosts: 1, vmsPerHost: -1, seed: 1 }), /vmsPerHost=-1/);
  bad(() => createFleet({ hosts: 1, vmsPerHost: 1, seed: 1, mix: { gpu_miner: 1 } as never }), /mix\.gpu_miner=1 is not a VM class/);
  bad(() => createFleet({ hosts: 1, vmsPerHost: 1, seed: 1, events: [{ kind: 'stop', vmUuid: 'nope', atS: 1 }] }), /events\[0\]\.vmUuid="nope" is not a VM/);
  bad(() => createFleet({ hosts: 1, vmsPerHost: 1, seed: 1, hostSpecs: [{ ...DEFAULT_HOST_SPECS[0]!, sockets: 0 }] }), /hostSpecs\[0\]\.sockets=0 must be an integer ≥ 1/);
  bad(() => createFleet({ hosts: 1, vmsPerHost: 1, seed: 1, hostSpecs: [{ ...DEFAULT_HOST_SPECS[0]!, raplMaxRangeUj: -5 }] }), /raplMaxRangeUj=-5/);
  const f = createFleet({ hosts: 1, vmsPerHost: 1, seed: 1 });
  bad(() => f.step(-1), /step dtS=-1/);
  bad(() => f.host('hv-99'), /no host "hv-99"/);
});

test('truthBetween gives the truth of a window, and it conserves too', () => {
  const f = createFleet({ hosts: 4, vmsPerHost: 12, seed: 4 });
  f.step(60);
  const a = f.truth();
  f.step(120);
  const w = truthBetween(a, f.truth());
  assert.ok(Math.abs(w.elapsedS - 120) < 1e-9);
  assert.deepEqual(conservationProblems(w), []);
  const late = w.vms.filter((v) => v.totalJoules > 0);
  assert.ok(late.length >= 48);
  const total = Object.values(w.tenants).reduce((x, y) => x + y, 0);
  const full = Object.values(f.truth().tenants).reduce((x, y) => x + y, 0) - Object.values(a.tenants).reduce((x, y) => x + y, 0);
  assert.ok(Math.abs(total - full) < 1e-6 * full);
});

test('a restart event: same VM, new domain id and cgroup, CPU counter back near 0', async () => {
  const f = createFleet({ hosts: 4, vmsPerHost: 12, seed: 1, noise: false });
  const ev = f.events.find((e) => e.kind === 'restart')!;
  assert.ok(ev);
  f.step(ev.atS - 1);
  const h = f.host('hv-03');
  const before = (await h.domains.listDomains()).find((d) => d.uuid === ev.vmUuid)!;
  const cpu0 = h.oracleFrame(1).vms!.find((v) => v.uuid === ev.vmUuid)!.cpuTimeNs!;
  f.step(2);
  const after = (await h.domains.listDomains()).find((d) => d.uuid === ev.vmUuid)!;
  assert.notEqual(after.id, before.id);
  assert.notEqual(h.vmCgroupPath(ev.vmUuid), undefined);
  const cpu1 = h.oracleFrame(2).vms!.find((v) => v.uuid === ev.vmUuid)!.cpuTimeNs!;
  assert.ok(cpu1 < cpu0, `cpu ${cpu0} → ${cpu1}`);
  assert.equal(f.truth().vms.filter((v) => v.uuid === ev.vmUuid).length, 1, 'one truth row: same host');
  assert.deepEqual(conservationProblems(f.truth()), []);
});

test('step(10) is the same as ten step(1): the fleet sub-steps at 1 s', () => {
  const a = createFleet({ hosts: 2, vmsPerHost: 6, seed: 11 });
  const b = createFleet({ hosts: 2, vmsPerHost: 6, seed: 11 });
  a.step(10);
  for (let i = 0; i < 10; i++) b.step(1);
  assert.deepEqual(a.truth(), b.truth());
  assert.equal(a.hosts[0]!.fs.readText('/proc/stat'), b.hosts[0]!.fs.readText('/proc/stat'));
});

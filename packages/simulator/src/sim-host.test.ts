import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFleet } from './fleet.js';
import { systemdEscape } from './sim-host.js';
import { writeHostTree } from './write-host-tree.js';

const quiet = { noise: false } as const;

test('cgroup v1 host (hv-00): cpuacct/memory/blkio trees, no cgroup.controllers, values that parse', async () => {
  const f = createFleet({ hosts: 4, vmsPerHost: 12, seed: 1, ...quiet });
  f.step(5);
  const h = f.host('hv-00');
  assert.equal(h.fs.exists('/sys/fs/cgroup/cgroup.controllers'), false);
  const d = (await h.domains.listDomains())[0]!;
  const leaf = `qemu-${d.id}-${d.name}.libvirt-qemu`;
  assert.ok(h.fs.readDir('/sys/fs/cgroup/cpuacct/machine').includes(leaf));
  const usage = Number(h.fs.readText(`/sys/fs/cgroup/cpuacct/machine/${leaf}/cpuacct.usage`));
  assert.ok(usage > 0);
  let vcpus = 0;
  for (let k = 0; k < d.vcpus; k++) vcpus += Number(h.fs.readText(`/sys/fs/cgroup/cpuacct/machine/${leaf}/vcpu${k}/cpuacct.usage`));
  const emu = Number(h.fs.readText(`/sys/fs/cgroup/cpuacct/machine/${leaf}/emulator/cpuacct.usage`));
  assert.ok(Math.abs(vcpus + emu - usage) <= d.vcpus + 1, 'vCPU + emulator threads add up to the cgroup');
  assert.ok(Number(h.fs.readText(`/sys/fs/cgroup/memory/machine/${leaf}/memory.usage_in_bytes`)) > 0);
  const blk = h.fs.readText(`/sys/fs/cgroup/blkio/machine/${leaf}/blkio.throttle.io_service_bytes`);
  assert.match(blk, /^253:0 Read \d+\n253:0 Write \d+\n/);
  assert.ok(h.perf.supported());
  const perf = h.perf.read(`/machine/${leaf}`)!;
  assert.ok(perf.instructions > 0 && perf.cycles > 0 && perf.llcReferences >= perf.llcMisses);
  assert.equal(h.vmCgroupPath(d.uuid), `/machine/${leaf}`);
});

test('cgroup v2 host: systemd-escaped scope names, cpu.stat, io.stat, per-vCPU and emulator cgroups', async () => {
  const f = createFleet({ hosts: 4, vmsPerHost: 12, seed: 1, ...quiet });
  f.step(5);
  const h = f.host('hv-01');
  assert.ok(h.fs.exists('/sys/fs/cgroup/cgroup.controllers'));
  const d = (await h.domains.listDomains()).find((x) => x.name.includes('-'))!;
  const scope = `machine-qemu\\x2d${d.id}\\x2d${d.name.replace(/-/g, '\\x2d')}.scope`;
  assert.equal(`machine-${systemdEscape(`qemu-${d.id}-${d.name}`)}.scope`, scope);
  assert.ok(h.fs.readDir('/sys/fs/cgroup/machine.slice').includes(scope));
  const dir = `/sys/fs/cgroup/machine.slice/${scope}`;
  const stat = h.fs.readText(`${dir}/cpu.stat`);
  assert.match(stat, /^usage_usec \d+\nuser_usec \d+\nsystem_usec \d+\n/);
  assert.match(h.fs.readText(`${dir}/io.stat`), /^253:0 rbytes=\d+ wbytes=\d+ rios=\d+ wios=\d+ dbytes=0 dios=0\n$/);
  assert.match(h.fs.readText(`${dir}/libvirt/vcpu0/cpu.stat`), /^usage_usec \d+/);
  assert.match(h.fs.readText(`${dir}/libvirt/emulator/cpu.stat`), /^usage_usec \d+/);
  assert.ok(Number(h.fs.readText(`${dir}/memory.current`)) > 0);
  assert.ok(h.perf.read(`/machine.slice/${scope}`));
  assert.equal(h.perf.read('/machine.slice/nope.scope'), undefined);
  // the AMD host has no PMU exposed
  assert.equal(f.host('hv-02').perf.supported(), false);
  // taps
  const tap = d.taps[0]!;
  assert.ok(Number(h.fs.readText(`/sys/class/net/${tap}/statistics/rx_bytes`)) >= 0);
  // errors look like Node fs errors
  assert.throws(() => h.fs.readText('/sys/nope'), (e: NodeJS.ErrnoException) => e.code === 'ENOENT' && /\/sys\/nope/.test(e.message));
  assert.throws(() => h.fs.readDir(`${dir}/cpu.stat`), (e: NodeJS.ErrnoException) => e.code === 'ENOTDIR');
});

test('RAPL powercap zones follow the ABI; intel-rapl vs amd-rapl; psys only at top level', () => {
  const f = createFleet({ hosts: 4, vmsPerHost: 12, seed: 1, ...quiet });
  const pc = '/sys/class/powercap';
  assert.deepEqual(f.host('hv-00').fs.readDir(pc), ['intel-rapl:0', 'intel-rapl:0:0', 'intel-rapl:0:1', 'intel-rapl:1', 'intel-rapl:1:0', 'intel-rapl:1:1']);
  const h0 = f.host('hv-00').fs;
  assert.equal(h0.readText(`${pc}/intel-rapl:0/name`), 'package-0\n');
  assert.equal(h0.readText(`${pc}/intel-rapl:0:0/name`), 'core\n');
  assert.equal(h0.readText(`${pc}/intel-rapl:0:1/name`), 'dram\n');
  assert.deepEqual(f.host('hv-02').fs.readDir(pc), ['amd-rapl:0', 'amd-rapl:0:0', 'amd-rapl:1', 'amd-rapl:1:0']);
  const h3 = f.host('hv-03').fs;
  assert.equal(h3.readText(`${pc}/intel-rapl:2/name`), 'psys\n');
  for (const z of h3.readDir(pc)) {
    const v = Number(h3.readText(`${pc}/${z}/energy_uj`));
    const max = Number(h3.readText(`${pc}/${z}/max_energy_range_uj`));
    assert.ok(Number.isInteger(v) && v >= 0 && v < max);
  }
});

test('RAPL counters wrap at max_energy_range_uj on the small-range host within a few minutes', () => {
  const f = createFleet({ hosts: 1, vmsPerHost: 12, seed: 1, ...quiet });
  const fs = f.hosts[0]!.fs;
  const path = '/sys/class/powercap/intel-rapl:0/energy_uj';
  const max = Number(fs.readText('/sys/class/powercap/intel-rapl:0/max_energy_range_uj'));
  let prev = Number(fs.readText(path));
  let wraps = 0;
  let total = 0;
  for (let i = 0; i < 240; i++) {
    f.step(1);
    const cur = Number(fs.readText(path));
    const d = cur >= prev ? cur - prev : max - prev + cur;
    if (cur < prev) wraps++;
    total += d;
    prev = cur;
  }
  assert.ok(wraps >= 1, `wraps=${wraps}`);
  const w = total / 1e6 / 240;
  assert.ok(w > 50 && w < 400, `package-0 mean ${w} W`);
});

test('/proc/stat: aggregate and per-CPU lines in USER_HZ ticks; busy covers VM CPU', () => {
  const f = createFleet({ hosts: 2, vmsPerHost: 12, seed: 1, ...quiet });
  const h = f.host('hv-01');
  const read = () => h.fs.readText('/proc/stat').split('\n')[0]!.split(/\s+/).slice(1).map(Number);
  const a = read();
  f.step(10);
  const b = read();
  assert.equal(a.length, 10);
  const busy = [0, 1, 2, 5, 6, 7].reduce((s, i) => s + b[i]! - a[i]!, 0) / 100;
  const idle = (b[3]! - a[3]! + b[4]! - a[4]!) / 100;
  const ncpu = h.fs.readText('/proc/stat').split('\n').filter((l) => /^cpu\d+ /.test(l)).length;
  assert.equal(ncpu, 96);
  assert.ok(Math.abs(busy + idle - 10 * ncpu) < 0.05 * 10 * ncpu, `busy ${busy} + idle ${idle} ≈ ${10 * ncpu}`);
  const tr = f.truth();
  const vmCpu = tr.vms.filter((v) => v.hostId === 'hv-01').reduce((s, v) => s + v.cpuSeconds, 0);
  assert.ok(busy >= vmCpu * 0.97, `busy ${busy} ≥ VM cpu ${vmCpu}`);
  assert.match(h.fs.readText('/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq'), /^\d+\n$/);
  assert.equal(f.host('hv-00').fs.readText('/sys/devices/system/cpu/online'), '0-95\n');
});

test('GPUs: passthrough owner is the qemu pid, time-sliced processes map to their VMs; context raises idle power', async () => {
  const f = createFleet({ hosts: 4, vmsPerHost: 12, seed: 2, ...quiet });
  f.step(3);
  const h1 = f.host('hv-01');
  const gpus = h1.gpus.read();
  assert.equal(gpus.length, 2);
  const doms = await h1.domains.listDomains();
  for (const g of gpus) {
    const owner = doms.find((d) => d.gpuPciAddresses.includes(g.pciBusId))!;
    assert.ok(owner, `passthrough owner of ${g.pciBusId}`);
    for (const p of g.running) assert.equal(h1.processOwners.ownerOf(p.pid), owner.uuid);
    assert.ok(g.powerMw >= 73_000 + 47_000 - 1, 'a held context raises idle power to ≥ 120 W');
    assert.ok(g.processUtil.length > 0);
  }
  const h3 = f.host('hv-03');
  const [ts] = h3.gpus.read();
  const owners = new Set(ts!.running.map((p) => h3.processOwners.ownerOf(p.pid)));
  assert.equal(owners.size, 2, 'two VMs share the time-sliced GPU');
  assert.ok([...owners].every((u) => u !== undefined && !u.startsWith('qemu')));
  assert.ok((await h3.domains.listDomains()).every((d) => d.gpuPciAddresses.length === 0), 'time-sliced GPUs are not hostdevs');
  // cumulative mJ counter only grows; samples are drained per read
  const e0 = ts!.energyMj;
  f.step(2);
  const [ts2] = h3.gpus.read();
  assert.ok(ts2!.energyMj > e0);
  assert.ok(ts2!.processUtil.every((s) => s.timeStampUs > 0));
  assert.equal(h3.gpus.read()[0]!.processUtil.length, 0);
});

test('BMC: cumulative energy where the BMC has a counter, power only on hv-02', async () => {
  const f = createFleet({ hosts: 4, vmsPerHost: 4, seed: 1, ...quiet });
  const a = await f.host('hv-00').bmc.read();
  f.step(10);
  const b = await f.host('hv-00').bmc.read();
  assert.ok(b.energyJoules! - a.energyJoules! > 10 * 150);
  assert.ok(b.powerWatts > 150);
  const c = await f.host('hv-02').bmc.read();
  assert.equal(c.energyJoules, undefined);
  assert.ok(c.powerWatts > 100);
});

test('noise: EIO reads and briefly absent cgroups happen (deterministically); none with noise off', async () => {
  const count = async (noise: boolean) => {
    const f = createFleet({ hosts: 4, vmsPerHost: 12, seed: 5, ...(noise ? {} : quiet) });
    let eio = 0;
    let absent = 0;
    for (let i = 0; i < 600; i++) {
      f.step(1);
      for (const h of f.hosts) {
        for (const z of h.fs.readDir('/sys/class/powercap')) {
          try {
            h.fs.readText(`/sys/class/powercap/${z}/energy_uj`);
          } catch (e) {
            assert.equal((e as NodeJS.ErrnoException).code, 'EIO');
            assert.match((e as Error).message, /energy_uj/);
            eio++;
          }
        }
        const root = h.fs.exists('/sys/fs/cgroup/cgroup.controllers') ? '/sys/fs/cgroup' : '/sys/fs/cgroup/cpuacct';
        for (const d of await h.domains.listDomains()) if (!h.fs.exists(`${root}${h.vmCgroupPath(d.uuid)!}`)) absent++;
      }
    }
    return { eio, absent };
  };
  const on = await count(true);
  assert.ok(on.eio > 0, `eio ${on.eio}`);
  assert.ok(on.absent > 0, `absent ${on.absent}`);
  assert.deepEqual(await count(true), on);
  assert.deepEqual(await count(false), { eio: 0, absent: 0 });
});

test('host clocks: monotonic advances with the steps, wall clocks differ per host by a few ms', () => {
  const f = createFleet({ hosts: 4, vmsPerHost: 1, seed: 1 });
  const m0 = f.hosts.map((h) => h.clock.monoNs());
  f.step(10);
  for (const [i, h] of f.hosts.entries()) {
    const d = (h.clock.monoNs() - m0[i]!) / 1e9;
    assert.ok(Math.abs(d - 10) < 0.05, `${h.hostId} mono advanced ${d}`);
  }
  const walls = f.hosts.map((h) => h.clock.wallUnixNs());
  const spread = (Math.max(...walls) - Math.min(...walls)) / 1e6;
  assert.ok(spread > 0 && spread < 100, `wall spread ${spread} ms`);
  assert.equal(f.clock.monoNs('hv-00'), f.hosts[0]!.clock.monoNs());
});

test('writeHostTree materialises the tree; the real files hold what HostFs returns', () => {
  const f = createFleet({ hosts: 2, vmsPerHost: 3, seed: 1, ...quiet });
  f.step(2);
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-sim-'));
  try {
    const h = f.host('hv-01');
    const r = writeHostTree(h, dir);
    assert.ok(r.files > 50 && r.dirs > 10);
    assert.deepEqual(r.skipped, []);
    assert.equal(readFileSync(join(dir, 'sys/class/powercap/intel-rapl:0/energy_uj'), 'utf8'), h.fs.readText('/sys/class/powercap/intel-rapl:0/energy_uj'));
    const scopes = readdirSync(join(dir, 'sys/fs/cgroup/machine.slice'));
    assert.deepEqual(scopes.sort(), h.fs.readDir('/sys/fs/cgroup/machine.slice'));
    assert.ok(scopes.every((s) => s.includes('\\x2d')), 'literal backslash-x2d in real directory names');
    assert.ok(existsSync(join(dir, 'proc/stat')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('oracle frames carry every counter the aligner needs', () => {
  const f = createFleet({ hosts: 4, vmsPerHost: 12, seed: 1, ...quiet });
  f.step(1);
  const fr = f.host('hv-01').oracleFrame(1);
  assert.equal(fr.hostId, 'hv-01');
  assert.equal(fr.counters!.filter((c) => c.domain === 'package').length, 2);
  assert.equal(fr.counters!.filter((c) => c.domain === 'gpu').length, 2);
  assert.equal(fr.vms!.length, 12);
  assert.ok(fr.vms!.every((v) => (v.cpuTimeNs ?? 0) > 0));
  assert.equal(f.host('hv-02').oracleFrame(1).counters!.filter((c) => c.domain === 'dram').length, 0);
});

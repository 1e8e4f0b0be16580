// Locating a VM's cgroup when a stale sibling "qemu-<same id>-*" exists: libvirt reuses domain ids
// after a libvirtd restart, and a cgroup of the earlier VM can be left behind. Fake v1 and v2 trees.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { memoryLogger } from '@wattsplit/wire';
import { CgroupReader } from './cgroup-reader.js';
import { RootedHostFs } from './host-fs.js';
import { domainInfo } from './static-domain-source.js';
import type { FrameUnderConstruction, RoundContext } from './sampler.js';
import { tempDir } from './test-helpers.js';
import { VmSampler } from './vm-sampler.js';

function put(root: string, path: string, text: string): void {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), text);
}

const CG = '/sys/fs/cgroup';
const V2_OLD = '/machine.slice/machine-qemu\\x2d4\\x2dold\\x2dvm.scope';
const V2_WEB = '/machine.slice/machine-qemu\\x2d4\\x2dweb\\x2d1.scope';

/** cgroup v2: a VM cgroup with cpu.stat usage `usec` µs. */
function v2Vm(root: string, path: string, usec: number, procs: string): void {
  put(root, `${CG}${path}/cpu.stat`, `usage_usec ${usec}\nuser_usec 1\nsystem_usec 1\n`);
  put(root, `${CG}${path}/memory.current`, '4096\n');
  put(root, `${CG}${path}/cgroup.procs`, procs);
}

function v2Tree(root: string): void {
  put(root, `${CG}/cgroup.controllers`, 'cpu memory io\n');
  v2Vm(root, V2_OLD, 111, ''); // left behind by the previous libvirtd's domain 4: empty
}

function cpuTimeOf(fs: RootedHostFs, d: ReturnType<typeof domainInfo>): number | null | undefined {
  const s = new VmSampler(fs, memoryLogger());
  const frame: FrameUnderConstruction = { monoNs: 1, counters: [], vms: [], gpus: [], hostCpu: undefined };
  const ctx: RoundContext = { domains: [d], domainsAvailable: true, vmsByUuid: new Map(), cgroupPathByUuid: new Map(), processOwners: undefined, monoNs: () => 1 };
  s.sample(frame, ctx);
  return frame.vms[0]?.cpuTimeNs;
}

test('cgroup v2, stale sibling: the exact name wins; the qemu pid\'s /proc/<pid>/cgroup wins over any name', (t) => {
  const { dir: root, cleanup } = tempDir('cgroup-v2-stale');
  t.after(cleanup);
  v2Tree(root);
  const fs = new RootedHostFs(root);
  const r = new CgroupReader(fs);
  assert.equal(r.version, 2);
  // no cgroup of its own yet: the stale, empty, differently named sibling is not taken for it
  assert.equal(r.locate(4, 'web-1'), undefined);
  v2Vm(root, V2_WEB, 5000, '4242\n');
  assert.equal(r.locate(4, 'web-1'), V2_WEB);

  // A custom resource partition (<partition>/machine/tenant-a</partition>): the name is not where it
  // is computed, and only the stale sibling matches "qemu-4-*" in machine.slice. The pidfile knows.
  const custom = '/machine.slice/machine-tenant\\x2da.slice/machine-qemu\\x2d4\\x2dapi.scope';
  v2Vm(root, custom, 9000, '777\n');
  assert.equal(r.locate(4, 'api'), undefined, 'without the pid: not found, rather than the stale sibling');
  put(root, CgroupReader.pidFile('api'), '777\n');
  put(root, '/proc/777/cgroup', `0::${custom}/libvirt/emulator\n`);
  assert.equal(r.locate(4, 'api'), custom);
  assert.equal(cpuTimeOf(fs, domainInfo({ uuid: 'u-api', name: 'api', id: 4, vcpus: 1 })), 9_000_000);
  // a pidfile whose pid now sits in another domain's cgroup (stale pidfile, pid reused) is not believed
  put(root, CgroupReader.pidFile('web-1'), '777\n');
  assert.equal(r.locate(5, 'web-1'), undefined);
});

test('cgroup v2: a shortened name picks the name-compatible candidate, not a stale sibling', (t) => {
  const { dir: root, cleanup } = tempDir('cgroup-v2-short');
  t.after(cleanup);
  v2Tree(root);
  v2Vm(root, V2_WEB, 5000, '4242\n');
  const r = new CgroupReader(new RootedHostFs(root));
  assert.equal(r.locate(4, 'web-1-with-a-name-libvirt-would-shorten'), V2_WEB);
});

const V1_OLD = '/machine/qemu-4-old-vm.libvirt-qemu';
const V1_HYB = '/machine/qemu-4-hyb.libvirt-qemu';

/** cgroup v1, hybrid: libvirt left cpuacct at the root, so the VM is in unified/memory only; the stale sibling is in cpuacct. */
function v1Tree(root: string): void {
  put(root, `${CG}/cpuacct${V1_OLD}/cpuacct.usage`, '111\n');
  put(root, `${CG}/cpuacct${V1_OLD}/tasks`, '');
  put(root, `${CG}/unified${V1_HYB}/cpu.stat`, 'usage_usec 3000000\n');
  put(root, `${CG}/unified${V1_HYB}/cgroup.procs`, '555\n');
  put(root, `${CG}/memory${V1_HYB}/memory.usage_in_bytes`, '268435456\n');
}

test('cgroup v1 hybrid, stale sibling in an earlier controller: an exact match in a later controller wins', (t) => {
  const { dir: root, cleanup } = tempDir('cgroup-v1-stale');
  t.after(cleanup);
  v1Tree(root);
  const fs = new RootedHostFs(root);
  const r = new CgroupReader(fs);
  assert.equal(r.version, 1);
  assert.equal(r.locate(4, 'hyb'), V1_HYB);
  assert.equal(cpuTimeOf(fs, domainInfo({ uuid: 'u-h', name: 'hyb', id: 4, vcpus: 1 })), 3_000_000_000);
});

test('cgroup v1: the qemu pid\'s cgroup line (cpuacct, else the unified "0::" line) is the truth', (t) => {
  const { dir: root, cleanup } = tempDir('cgroup-v1-pid');
  t.after(cleanup);
  v1Tree(root);
  // the domain "hyb" was renamed in libvirt since it started: its computed name is gone, its pid is not
  put(root, CgroupReader.pidFile('hyb-renamed'), '555');
  put(root, '/proc/555/cgroup', `12:memory:${V1_HYB}\n4:cpu,cpuacct:/\n1:name=systemd:/system.slice/libvirtd.service\n0::${V1_HYB}/emulator\n`);
  const r = new CgroupReader(new RootedHostFs(root));
  assert.equal(r.locate(4, 'hyb-renamed'), V1_HYB);
  // and without the pidfile, the stale sibling (empty, incompatible name) is still not taken
  assert.equal(r.locate(4, 'other'), undefined);
});

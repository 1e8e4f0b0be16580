import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { memoryLogger, type GpuSource } from '@wattsplit/wire';
import { Agent } from './agent.js';
import { CgroupProcessOwnerMap } from './cgroup-process-owners.js';
import { RootedHostFs } from './host-fs.js';
import { StaticDomainSource, domainInfo } from './static-domain-source.js';
import { copyFixture } from './test-helpers.js';

test('GPU processes map to VMs by /proc/<pid>/cgroup (v2 single line, v1 per controller, sub-cgroups)', (t) => {
  const fx = copyFixture('single-socket-v2');
  t.after(fx.cleanup);
  const put = (pid: number, text: string) => {
    mkdirSync(join(fx.root, 'proc', String(pid)), { recursive: true });
    writeFileSync(join(fx.root, 'proc', String(pid), 'cgroup'), text);
  };
  put(100, '0::/machine.slice/machine-qemu\\x2d1\\x2dweb\\x2d1.scope/libvirt/emulator\n');
  put(101, '12:cpu,cpuacct:/machine/qemu-2-db.libvirt-qemu/vcpu0\n1:name=systemd:/\n');
  put(102, '0::/system.slice/sshd.service\n');
  const m = new CgroupProcessOwnerMap(new RootedHostFs(fx.root));
  m.update(new Map([['u-web', '/machine.slice/machine-qemu\\x2d1\\x2dweb\\x2d1.scope'], ['u-db', '/machine/qemu-2-db.libvirt-qemu']]));
  assert.equal(m.ownerOf(100), 'u-web');
  assert.equal(m.ownerOf(101), 'u-db');
  assert.equal(m.ownerOf(102), undefined, 'a host process');
  assert.equal(m.ownerOf(999), undefined, 'an exited process');
});

test('the Agent attaches a GPU context held by a qemu process to its VM without a configured ProcessOwnerMap', async (t) => {
  const fx = copyFixture('single-socket-v2');
  t.after(fx.cleanup);
  mkdirSync(join(fx.root, 'proc', '4242'), { recursive: true });
  writeFileSync(join(fx.root, 'proc', '4242', 'cgroup'), '0::/machine.slice/machine-qemu\\x2d1\\x2dweb\\x2d1.scope/libvirt/emulator\n');
  const gpus: GpuSource = {
    read: () => [{ index: 0, pciBusId: '0000:17:00.0', name: 'G', uuid: 'x', energyMj: 1, powerMw: 1, gpuUtilPct: 50, memUtilPct: 5, smClockMhz: 0, memClockMhz: 0, tempC: 0, processUtil: [{ pid: 4242, timeStampUs: 1, smUtil: 60, memUtil: 10, encUtil: 0, decUtil: 0 }], running: [{ pid: 4242, usedGpuMemoryBytes: 1024 }], migProfile: '' }],
  };
  const agent = new Agent({ hostId: 'h', fs: new RootedHostFs(fx.root), domains: new StaticDomainSource([domainInfo({ uuid: 'u-web', name: 'web-1', id: 1, vcpus: 2 })]), gpus, logger: memoryLogger() });
  const f = await agent.sampleOnce();
  assert.deepEqual(f.vms?.[0]?.gpus?.map((g) => [g.device, g.smUtilPct, g.usedMemoryBytes, g.holdsContext, g.passthrough]), [['0000:17:00.0', 60, 1024, true, false]]);
});

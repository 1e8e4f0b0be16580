#!/usr/bin/env node
// Regenerates the fixture host trees in this folder (real Linux ABI layouts). Run: node packages/agent/test-fixtures/make-fixtures.mjs
import { mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
function put(root, path, text) {
  const full = join(root, path);
  mkdirSync(dirname(full), { recursive: true });
  writeFileSync(full, text);
}
function zone(root, vendor, id, name, energy, max) {
  const d = `/sys/class/powercap/${vendor}:${id}`;
  put(root, `${d}/name`, `${name}\n`);
  put(root, `${d}/energy_uj`, `${energy}\n`);
  put(root, `${d}/max_energy_range_uj`, `${max}\n`);
  put(root, `${d}/enabled`, '1\n');
}
function proc(root, cpus, cpuModel, sockets) {
  let stat = 'cpu  4705 356 584 3699176 23 0 18 0 0 0\n';
  for (let i = 0; i < cpus; i++) stat += `cpu${i} 1000 50 100 900000 5 0 4 0 0 0\n`;
  stat += 'intr 1 2 3\nctxt 123\nbtime 1700000000\nprocesses 10\n';
  put(root, '/proc/stat', stat);
  let info = '';
  for (let i = 0; i < cpus; i++) info += `processor\t: ${i}\nvendor_id\t: x\nmodel name\t: ${cpuModel}\nphysical id\t: ${i % sockets}\n\n`;
  put(root, '/proc/cpuinfo', info);
  for (let i = 0; i < cpus; i++) put(root, `/sys/devices/system/cpu/cpu${i}/cpufreq/scaling_cur_freq`, `${2000000 + i * 100000}\n`);
}
function net(root, tap, rx, tx) {
  put(root, `/sys/class/net/${tap}/statistics/rx_bytes`, `${rx}\n`);
  put(root, `/sys/class/net/${tap}/statistics/tx_bytes`, `${tx}\n`);
}
const esc = (s) => s.replace(/-/g, '\\x2d');
function vmV2(root, id, name, usageUsec, vcpus) {
  const d = `/sys/fs/cgroup/machine.slice/machine-${esc(`qemu-${id}-${name}`)}.scope`;
  put(root, `${d}/cpu.stat`, `usage_usec ${usageUsec}\nuser_usec ${Math.floor(usageUsec * 0.8)}\nsystem_usec ${Math.floor(usageUsec * 0.2)}\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n`);
  put(root, `${d}/memory.current`, `${1073741824 + id}\n`);
  put(root, `${d}/io.stat`, `253:0 rbytes=1000 wbytes=2000 rios=1 wios=2 dbytes=0 dios=0\n8:0 rbytes=10 wbytes=20 rios=1 wios=1 dbytes=0 dios=0\n`);
  for (let k = 0; k < vcpus; k++) put(root, `${d}/libvirt/vcpu${k}/cpu.stat`, `usage_usec ${Math.floor(usageUsec / (vcpus + 1))}\nuser_usec 0\nsystem_usec 0\n`);
  put(root, `${d}/libvirt/emulator/cpu.stat`, `usage_usec ${Math.floor(usageUsec / (vcpus + 1))}\nuser_usec 0\nsystem_usec 0\n`);
}
function vmV1(root, id, name, usageNs, vcpus) {
  const m = `/machine/qemu-${id}-${name}.libvirt-qemu`;
  put(root, `/sys/fs/cgroup/cpuacct${m}/cpuacct.usage`, `${usageNs}\n`);
  for (let k = 0; k < vcpus; k++) put(root, `/sys/fs/cgroup/cpuacct${m}/vcpu${k}/cpuacct.usage`, `${Math.floor(usageNs / (vcpus + 1))}\n`);
  put(root, `/sys/fs/cgroup/memory${m}/memory.usage_in_bytes`, `${536870912 + id}\n`);
  put(root, `/sys/fs/cgroup/blkio${m}/blkio.throttle.io_service_bytes`, `253:0 Read 4096\n253:0 Write 8192\n253:0 Sync 0\n253:0 Async 12288\n253:0 Total 12288\nTotal 12288\n`);
}

// 1. single socket Intel, cgroup v2 (systemd), psys, 2 VMs.
{
  const r = join(here, 'single-socket-v2');
  rmSync(r, { recursive: true, force: true });
  zone(r, 'intel-rapl', '0', 'package-0', 123456789, 262143328850);
  zone(r, 'intel-rapl', '0:0', 'core', 60000000, 262143328850);
  zone(r, 'intel-rapl', '0:1', 'uncore', 1000000, 262143328850);
  zone(r, 'intel-rapl', '0:2', 'dram', 20000000, 65712999613);
  zone(r, 'intel-rapl', '1', 'psys', 300000000, 262143328850);
  mkdirSync(join(r, 'sys/class/powercap/intel-rapl'), { recursive: true }); // the control-type dir, not a zone
  put(r, '/sys/fs/cgroup/cgroup.controllers', 'cpuset cpu io memory pids\n');
  vmV2(r, 1, 'web-1', 5000000, 2);
  vmV2(r, 2, 'db', 9000000, 4);
  net(r, 'vnet0', 1000, 2000);
  net(r, 'vnet1', 3000, 4000);
  proc(r, 4, 'Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz', 1);
}
// 2. dual socket AMD, cgroup v1 without systemd.
{
  const r = join(here, 'dual-socket-v1');
  rmSync(r, { recursive: true, force: true });
  zone(r, 'amd-rapl', '0', 'package-0', 500000000, 65712999613);
  zone(r, 'amd-rapl', '0:0', 'core', 400000000, 65712999613);
  zone(r, 'amd-rapl', '1', 'package-1', 600000000, 65712999613);
  zone(r, 'amd-rapl', '1:0', 'core', 450000000, 65712999613);
  zone(r, 'amd-rapl', '0:1', 'dram', 70000000, 65712999613);
  zone(r, 'amd-rapl', '1:1', 'dram', 80000000, 65712999613);
  mkdirSync(join(r, 'sys/fs/cgroup/cpuacct'), { recursive: true });
  vmV1(r, 3, 'batch-a', 7000000000, 2);
  // hybrid layout as libvirt makes it when cpuacct is not co-mounted with cpu: CPU time from the unified (v2) hierarchy
  {
    const m = '/machine/qemu-4-hyb.libvirt-qemu';
    put(r, `/sys/fs/cgroup/unified${m}/cpu.stat`, 'usage_usec 3000000\nuser_usec 2000000\nsystem_usec 1000000\n');
    put(r, `/sys/fs/cgroup/unified${m}/vcpu0/cpu.stat`, 'usage_usec 2500000\nuser_usec 0\nsystem_usec 0\n');
    put(r, `/sys/fs/cgroup/unified${m}/emulator/cpu.stat`, 'usage_usec 500000\nuser_usec 0\nsystem_usec 0\n');
    put(r, `/sys/fs/cgroup/memory${m}/memory.usage_in_bytes`, '268435456\n');
    put(r, `/sys/fs/cgroup/blkio${m}/blkio.throttle.io_service_bytes`, 'Total 0\n');
  }
  net(r, 'vnet5', 10, 20);
  proc(r, 8, 'AMD EPYC 9654 96-Core Processor', 2);
}
// 3. wraparound: energy_uj just below a deliberately small max range (tests bump it past the range).
{
  const r = join(here, 'wraparound');
  rmSync(r, { recursive: true, force: true });
  zone(r, 'intel-rapl', '0', 'package-0', 999990000, 1000000000);
  put(r, '/sys/fs/cgroup/cgroup.controllers', 'cpu memory io\n');
  proc(r, 2, 'Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz', 1);
}
process.stdout.write('fixtures written\n');

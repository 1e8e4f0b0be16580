// The fake hypervisor host the agent benchmarks read (benchmarks/agent-process.mjs, agent-round-v1.mjs): dual-socket
// RAPL (6 zones), 64 CPUs with cpufreq, /proc/stat, boot id, cgroup v1 (cpuacct with 4 vcpu<K> children, memory,
// blkio under machine/qemu-<id>-<name>.libvirt-qemu) with N qemu-like VMs of 4 vCPUs and one tap each (in
// /sys/class/net and /proc/1/net/dev). Returns the static VM list for the agent's config. Also the agent config those
// benchmarks run the agent with against such a tree (benchAgentConfig).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export function writeHostTree(dir, n) {
  const put = (p, t) => {
    mkdirSync(dirname(join(dir, p)), { recursive: true });
    writeFileSync(join(dir, p), t);
  };
  for (const [id, name] of [['0', 'package-0'], ['0:0', 'core'], ['0:1', 'dram'], ['1', 'package-1'], ['1:0', 'core'], ['1:1', 'dram']]) {
    put(`/sys/class/powercap/intel-rapl:${id}/name`, `${name}\n`);
    put(`/sys/class/powercap/intel-rapl:${id}/energy_uj`, '123456789012\n');
    put(`/sys/class/powercap/intel-rapl:${id}/max_energy_range_uj`, '262143328850\n');
  }
  let stat = 'cpu  4705 356 584 3699176 23 0 18 0 0 0\n';
  let info = '';
  for (let c = 0; c < 64; c++) {
    stat += `cpu${c} 100 5 10 90000 1 0 1 0 0 0\n`;
    info += `processor\t: ${c}\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz\nphysical id\t: ${c % 2}\n\n`;
    put(`/sys/devices/system/cpu/cpu${c}/cpufreq/scaling_cur_freq`, '2400000\n');
  }
  put('/proc/stat', `${stat}intr 1 2 3\nctxt 123\nbtime 1700000000\nprocesses 10\n`);
  put('/proc/cpuinfo', info);
  put('/proc/sys/kernel/random/boot_id', '6a1f7c3e-0d52-4b8e-9a57-2f7b0c1d9e44\n');
  const vms = [];
  // the host's interfaces as /proc/1/net/dev lists them (the agent reads the taps' counters from it)
  let netDev = 'Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n';
  netDev += '    lo:  123456     100    0    0    0     0          0         0   123456     100    0    0    0     0       0          0\n';
  for (let i = 1; i <= n; i++) netDev += `${`vnet${i}`.padStart(6)}:    1000      10    0    0    0     0          0         0     2000      20    0    0    0     0       0          0\n`;
  put('/proc/1/net/dev', netDev);
  for (let i = 1; i <= n; i++) {
    const name = `vm-${i}`;
    const m = `/machine/qemu-${i}-${name}.libvirt-qemu`;
    put(`/sys/fs/cgroup/cpuacct${m}/cpuacct.usage`, `${i * 1_000_000_000}\n`);
    for (let k = 0; k < 4; k++) put(`/sys/fs/cgroup/cpuacct${m}/vcpu${k}/cpuacct.usage`, `${i * 200_000_000}\n`);
    put(`/sys/fs/cgroup/memory${m}/memory.usage_in_bytes`, `${(1 << 30) + i}\n`);
    put(`/sys/fs/cgroup/blkio${m}/blkio.throttle.io_service_bytes`, '253:0 Read 4096\n253:0 Write 8192\n253:0 Sync 0\n253:0 Async 12288\n253:0 Total 12288\nTotal 12288\n');
    put(`/sys/class/net/vnet${i}/statistics/rx_bytes`, '1000\n');
    put(`/sys/class/net/vnet${i}/statistics/tx_bytes`, '2000\n');
    vms.push({ uuid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, name, id: i, vcpus: 4, memoryBytes: 8 << 30, tenant: `t${i % 7}`, flavor: 'm1.large', taps: [`vnet${i}`] });
  }
  return vms;
}

/**
 * The agent config of the whole-process benchmarks (agent-process.mjs, agent-start.mjs): the tree at `host` read with
 * --sysfs-root and files kept open (as the agent reads kernfs), a 1 s interval, gRPC without TLS to `gatewayAddress`,
 * the spool in `spoolDir`, the static VM list `vms` (libvirt off), NVML and perf off; `extra` overrides.
 */
export function benchAgentConfig({ hostId, host, gatewayAddress, spoolDir, vms, extra = {} }) {
  return {
    hostId, intervalMs: 1000, sysfsRoot: host, sysfsKeepOpen: true, gateway: { address: gatewayAddress, tls: false }, spool: { dir: spoolDir },
    libvirt: false, vms, nvml: { enabled: false }, perf: { enabled: false }, ...extra,
  };
}

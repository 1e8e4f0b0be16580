/**
 * Per-VM counters from the qemu domain's cgroup, v1 and v2.
 *
 * cgroup v2 (Documentation/admin-guide/cgroup-v2.rst), VM dir /sys/fs/cgroup/machine.slice/machine-qemu\x2d<ID>\x2d<NAME>.scope:
 *   cpu.stat        "usage_usec N\nuser_usec N\nsystem_usec N\n..." (µs, cumulative)
 *   memory.current  bytes in use
 *   io.stat         "MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N" per device
 *   libvirt/vcpu<K>/cpu.stat, libvirt/emulator/cpu.stat   per vCPU thread / emulator threads
 * cgroup v1 (Documentation/admin-guide/cgroup-v1/), VM dir machine/qemu-<ID>-<NAME>.libvirt-qemu under each controller:
 *   cpuacct/.../cpuacct.usage                 ns, cumulative; vcpu<K>/cpuacct.usage per vCPU
 *   (hybrid hosts where libvirt leaves cpuacct at the root: unified/.../cpu.stat usage_usec, the v2
 *   hierarchy's core CPU stat, and unified/.../vcpu<K>/cpu.stat)
 *   memory/.../memory.usage_in_bytes          bytes
 *   blkio/.../blkio.throttle.io_service_bytes "MAJ:MIN Read N", "MAJ:MIN Write N", ..., "Total N"
 * The version is v2 when /sys/fs/cgroup/cgroup.controllers exists.
 */
import { WattsplitError, type HostFs } from '@wattsplit/wire';
import { cgroupV1Path, cgroupV2Path, libvirtMachineName, systemdEscape } from './machine-name.js';

export const CGROUP_ROOT = '/sys/fs/cgroup';
const V1_LOCATE_CONTROLLERS = ['cpuacct', 'unified', 'cpu', 'memory'];

export type CgroupVersion = 1 | 2;

/** A HostFs that caches open files (RootedHostFs with keepOpen) and can let go of a subtree. */
export interface ReleasableHostFs extends HostFs {
  release(prefix: string): void;
}

export function detectCgroupVersion(fs: HostFs): CgroupVersion {
  return fs.exists(`${CGROUP_ROOT}/cgroup.controllers`) ? 2 : 1;
}

export interface VmCgroupStats {
  cpuTimeNs: number;
  vcpuTimeNs: number[];
  memoryUsedBytes: number;
  blockReadBytes: number;
  blockWriteBytes: number;
}

function num(text: string, file: string, field: string): number {
  const v = Number(text);
  if (!Number.isFinite(v) || v < 0 || text === '') {
    throw new WattsplitError('SENSOR_READ_FAILED', `${file}: ${field} is ${JSON.stringify(text)}, not a non-negative number`, { details: { file, field, value: text } });
  }
  return v;
}

/** usage_usec of a v2 cpu.stat, in ns. */
export function parseCpuStatUsageNs(text: string, file: string): number {
  const i = text.indexOf('usage_usec ');
  if (i < 0) throw new WattsplitError('SENSOR_READ_FAILED', `${file}: no "usage_usec" line`, { details: { file, field: 'usage_usec' } });
  const end = text.indexOf('\n', i);
  return num(text.slice(i + 11, end < 0 ? undefined : end).trim(), file, 'usage_usec') * 1000;
}

/** Σ rbytes and Σ wbytes over the devices of a v2 io.stat. */
export function parseIoStat(text: string, file: string): { read: number; write: number } {
  let read = 0;
  let write = 0;
  for (const line of text.split('\n')) {
    if (!line) continue;
    for (const kv of line.split(' ')) {
      if (kv.startsWith('rbytes=')) read += num(kv.slice(7), file, 'rbytes');
      else if (kv.startsWith('wbytes=')) write += num(kv.slice(7), file, 'wbytes');
    }
  }
  return { read, write };
}

/** Σ Read and Σ Write over the devices of a v1 blkio.throttle.io_service_bytes (the "Total" line is skipped). */
export function parseBlkioServiceBytes(text: string, file: string): { read: number; write: number } {
  let read = 0;
  let write = 0;
  for (const line of text.split('\n')) {
    const p = line.trim().split(/\s+/);
    if (p.length !== 3) continue;
    if (p[1] === 'Read') read += num(p[2] ?? '', file, `${p[0]} Read`);
    else if (p[1] === 'Write') write += num(p[2] ?? '', file, `${p[0]} Write`);
  }
  return { read, write };
}

/** Reads one VM's cgroup; locates it from the libvirt domain id and name. */
export class CgroupReader {
  readonly version: CgroupVersion;
  private readonly vcpuDirs = new Map<string, string[]>();
  private readonly v1CpuSource = new Map<string, 'cpuacct' | 'unified'>();

  constructor(private readonly fs: HostFs, version?: CgroupVersion) {
    this.version = version ?? detectCgroupVersion(fs);
  }

  /**
   * The VM's cgroup path relative to the cgroup (v2) or cpuacct (v1) root, or undefined when no cgroup
   * exists for it. Tries the computed name first, then scans for "qemu-<id>-*" (names libvirt shortened).
   */
  locate(id: number, name: string): string | undefined {
    if (id < 0) return undefined;
    if (this.version === 2) {
      const p = cgroupV2Path(id, name);
      if (this.fs.exists(`${CGROUP_ROOT}${p}`)) return p;
      return this.scan(`${CGROUP_ROOT}`, '/machine.slice', `machine-${systemdEscape(`qemu-${id}-`)}`, '.scope');
    }
    // v1: libvirt places the VM in every controller it manages; which ones vary (cpuacct may be left at
    // the root when not co-mounted with cpu), and hybrid hosts also have the v2 "unified" hierarchy.
    const p1 = cgroupV1Path(id, name);
    const p2 = `/machine.slice/machine-${systemdEscape(libvirtMachineName(id, name))}.scope`;
    for (const c of V1_LOCATE_CONTROLLERS) {
      const base = `${CGROUP_ROOT}/${c}`;
      if (!this.fs.exists(base)) continue;
      if (this.fs.exists(`${base}${p1}`)) return p1;
      if (this.fs.exists(`${base}${p2}`)) return p2;
      const found = this.scan(base, '/machine', `qemu-${id}-`, '.libvirt-qemu') ?? this.scan(base, '/machine.slice', `machine-${systemdEscape(`qemu-${id}-`)}`, '.scope');
      if (found) return found;
    }
    return undefined;
  }

  private scan(root: string, parent: string, prefix: string, suffix: string): string | undefined {
    if (!this.fs.exists(`${root}${parent}`)) return undefined;
    const hit = this.fs.readDir(`${root}${parent}`).find((e) => e.startsWith(prefix) && e.endsWith(suffix));
    return hit === undefined ? undefined : `${parent}/${hit}`;
  }

  /** Reads the VM's counters; throws Node's ENOENT/ENODEV when the cgroup vanished. */
  read(path: string, vcpus: number): VmCgroupStats {
    return this.version === 2 ? this.readV2(path, vcpus) : this.readV1(path, vcpus);
  }

  private vcpuList(dir: string, vcpus: number, sub: string): string[] {
    let list = this.vcpuDirs.get(dir);
    if (!list) {
      list = [];
      for (let k = 0; k < vcpus; k++) list.push(`${dir}${sub}/vcpu${k}`);
      this.vcpuDirs.set(dir, list);
    }
    return list;
  }

  private readV2(path: string, vcpus: number): VmCgroupStats {
    const dir = `${CGROUP_ROOT}${path}`;
    const cpuFile = `${dir}/cpu.stat`;
    const cpuTimeNs = parseCpuStatUsageNs(this.fs.readText(cpuFile), cpuFile);
    const vcpuTimeNs: number[] = [];
    for (const v of this.vcpuList(dir, vcpus, '/libvirt')) {
      const f = `${v}/cpu.stat`;
      try {
        vcpuTimeNs.push(parseCpuStatUsageNs(this.fs.readText(f), f));
      } catch (e) {
        if (e instanceof WattsplitError) throw e;
        break; // fewer vCPU threads than reserved (hot-unplugged, or libvirt without per-vCPU cgroups)
      }
    }
    const memFile = `${dir}/memory.current`;
    const memoryUsedBytes = num(this.fs.readText(memFile).trim(), memFile, 'memory.current');
    const ioFile = `${dir}/io.stat`;
    let io = { read: 0, write: 0 };
    try {
      io = parseIoStat(this.fs.readText(ioFile), ioFile);
    } catch (e) {
      if (e instanceof WattsplitError) throw e; // io controller not enabled for the slice: no block stats
    }
    return { cpuTimeNs, vcpuTimeNs, memoryUsedBytes, blockReadBytes: io.read, blockWriteBytes: io.write };
  }

  private readV1(path: string, vcpus: number): VmCgroupStats {
    let src = this.v1CpuSource.get(path);
    if (src === undefined) {
      src = this.fs.exists(`${CGROUP_ROOT}/cpuacct${path}/cpuacct.usage`) || !this.fs.exists(`${CGROUP_ROOT}/unified${path}/cpu.stat`) ? 'cpuacct' : 'unified';
      this.v1CpuSource.set(path, src);
    }
    let cpuTimeNs: number;
    const vcpuTimeNs: number[] = [];
    if (src === 'cpuacct') {
      const cpuDir = `${CGROUP_ROOT}/cpuacct${path}`;
      const cpuFile = `${cpuDir}/cpuacct.usage`;
      cpuTimeNs = num(this.fs.readText(cpuFile).trim(), cpuFile, 'cpuacct.usage');
      for (const v of this.vcpuList(cpuDir, vcpus, '')) {
        const f = `${v}/cpuacct.usage`;
        try {
          vcpuTimeNs.push(num(this.fs.readText(f).trim(), f, 'cpuacct.usage'));
        } catch (e) {
          if (e instanceof WattsplitError) throw e;
          break;
        }
      }
    } else {
      // hybrid host: cpuacct not managed by libvirt, CPU time from the v2 "unified" hierarchy's core cpu.stat
      const dir = `${CGROUP_ROOT}/unified${path}`;
      const cpuFile = `${dir}/cpu.stat`;
      cpuTimeNs = parseCpuStatUsageNs(this.fs.readText(cpuFile), cpuFile);
      for (const v of this.vcpuList(dir, vcpus, '')) {
        const f = `${v}/cpu.stat`;
        try {
          vcpuTimeNs.push(parseCpuStatUsageNs(this.fs.readText(f), f));
        } catch (e) {
          if (e instanceof WattsplitError) throw e;
          break;
        }
      }
    }
    const memFile = `${CGROUP_ROOT}/memory${path}/memory.usage_in_bytes`;
    let memoryUsedBytes = 0;
    try {
      memoryUsedBytes = num(this.fs.readText(memFile).trim(), memFile, 'memory.usage_in_bytes');
    } catch (e) {
      if (e instanceof WattsplitError) throw e; // memory controller not mounted
    }
    const ioFile = `${CGROUP_ROOT}/blkio${path}/blkio.throttle.io_service_bytes`;
    let io = { read: 0, write: 0 };
    try {
      io = parseBlkioServiceBytes(this.fs.readText(ioFile), ioFile);
    } catch (e) {
      if (e instanceof WattsplitError) throw e;
    }
    return { cpuTimeNs, vcpuTimeNs, memoryUsedBytes, blockReadBytes: io.read, blockWriteBytes: io.write };
  }

  /** Drops what is cached about a VM's cgroup (vCPU list, open fds of a keepOpen HostFs). */
  forget(path: string): void {
    const dirs = this.version === 2 ? [`${CGROUP_ROOT}${path}`] : ['cpuacct', 'unified', 'memory', 'blkio'].map((c) => `${CGROUP_ROOT}/${c}${path}`);
    for (const d of dirs) this.vcpuDirs.delete(d);
    this.v1CpuSource.delete(path);
    const rel = (this.fs as Partial<ReleasableHostFs>).release;
    if (rel) for (const d of dirs) rel.call(this.fs, d);
  }
}

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
import { CounterFile } from './host-fs.js';
import { cgroupV1Path, cgroupV2Path, libvirtMachineName, systemdEscape, systemdUnescape } from './machine-name.js';

export const CGROUP_ROOT = '/sys/fs/cgroup';
const V1_LOCATE_CONTROLLERS = ['cpuacct', 'unified', 'cpu', 'memory'];

export type CgroupVersion = 1 | 2;

/** A cgroup directory a scan found: its path relative to the hierarchy root, its full path, its machine name. */
interface Candidate {
  path: string;
  dir: string;
  machine: string;
}

/** "machine-qemu\\x2d3\\x2dweb.scope" or "qemu-3-web.libvirt-qemu" → "qemu-3-web". */
function machineNameOf(dirName: string): string {
  if (dirName.endsWith('.libvirt-qemu')) return dirName.slice(0, -'.libvirt-qemu'.length);
  return systemdUnescape(dirName.replace(/^machine-/, '').replace(/\.scope$/, ''));
}

/** A HostFs that caches open files (RootedHostFs with keepOpen) and can let go of a subtree. */
export interface ReleasableHostFs extends HostFs {
  release(prefix: string): void;
}

export function detectCgroupVersion(fs: HostFs): CgroupVersion {
  return fs.exists(`${CGROUP_ROOT}/cgroup.controllers`) ? 2 : 1;
}

/** One VM's counter files (named once, held across rounds) and how to read them: `files()`, `readFiles()`. */
export interface VmFiles {
  cpu: CounterFile;
  /** cpu.stat (usage_usec) rather than a one-number file in ns */
  cpuIsStat: boolean;
  cpuField: string;
  vcpus: CounterFile[];
  mem: CounterFile;
  memField: string;
  io: CounterFile;
}

/** The counters read every round. */
export interface VmCpuStats {
  cpuTimeNs: number;
  vcpuTimeNs: number[];
}

/** The counters that may be read every few rounds (VmSamplerOptions.slowEveryRounds): memory and block I/O. */
export interface VmSlowStats {
  memoryUsedBytes: number;
  blockReadBytes: number;
  blockWriteBytes: number;
}

export interface VmCgroupStats extends VmCpuStats, VmSlowStats {}

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

/**
 * Σ Read and Σ Write over the devices of a v1 blkio.throttle.io_service_bytes: lines "MAJ:MIN Op N" (the
 * kernel writes single spaces); the per-device "Total" lines are not summed, the last line "Total N" has two
 * fields and is skipped.
 */
export function parseBlkioServiceBytes(text: string, file: string): { read: number; write: number } {
  const out = { read: 0, write: 0 };
  const b = Buffer.from(text, 'latin1');
  scanBlkioServiceBytes(b, b.length, file, out);
  return out;
}

const SP = 0x20;
const NL = 0x0a;

/**
 * parseBlkioServiceBytes from the read buffer's first `n` bytes, into `out`: no strings, no arrays (a value
 * that is not plain digits goes the string way, to be read as Number(text) reads it, or named in the error).
 */
export function scanBlkioServiceBytes(b: Uint8Array, n: number, file: string, out: { read: number; write: number }): void {
  let read = 0;
  let write = 0;
  for (let i = 0; i < n; ) {
    // the line [i, end) and its first two spaces a, s (plain loops: Buffer#indexOf is a call into C++)
    let end = i;
    let a = -1;
    let s = -1;
    for (; end < n; end++) {
      const c = b[end];
      if (c === NL) break;
      if (c === SP) {
        if (a < 0) a = end;
        else if (s < 0) s = end;
      }
    }
    if (s > 0 && a > i) {
      // "Read" or "Write" between the two spaces
      const len = s - a - 1;
      const isRead = len === 4 && b[a + 1] === 0x52 && b[a + 2] === 0x65 && b[a + 3] === 0x61 && b[a + 4] === 0x64;
      const isWrite = len === 5 && b[a + 1] === 0x57 && b[a + 2] === 0x72 && b[a + 3] === 0x69 && b[a + 4] === 0x74 && b[a + 5] === 0x65;
      if (isRead || isWrite) {
        let v = 0;
        let k = s + 1;
        for (; k < end; k++) {
          const c = b[k] as number;
          if (c < 0x30 || c > 0x39) break;
          v = v * 10 + (c - 0x30);
        }
        let tail = k;
        while (tail < end && (b[tail] === SP || b[tail] === 0x09 || b[tail] === 0x0d)) tail++;
        if (k === s + 1 || tail !== end || k - s - 1 > 15) {
          // not plain digits (or past a double's exact digits): as the text says it
          const latin1 = (from: number, to: number) => String.fromCharCode(...b.subarray(from, to));
          v = num(latin1(s + 1, end).trim(), file, `${latin1(i, a)} ${isRead ? 'Read' : 'Write'}`);
        }
        if (isRead) read += v;
        else write += v;
      }
    }
    i = end + 1;
  }
  out.read = read;
  out.write = write;
}

/** Reads one VM's cgroup; locates it from the libvirt domain id and name. */
export class CgroupReader {
  readonly version: CgroupVersion;
  private readonly filesByPath = new Map<string, VmFiles>();
  /** I/O bytes of the VM being read (one object for every read, not one per VM per round). */
  private readonly io = { read: 0, write: 0 };

  constructor(private readonly fs: HostFs, version?: CgroupVersion) {
    this.version = version ?? detectCgroupVersion(fs);
  }

  /**
   * The VM's cgroup path relative to the cgroup (v2) or controller (v1) root, or undefined when no cgroup
   * exists for it. In order of trust:
   *  1. the qemu process's own membership: /proc/<pid>/cgroup of the pid in libvirt's pidfile
   *     (/run/libvirt/qemu/<name>.pid), when that process is in a "qemu-<id>-" cgroup;
   *  2. the computed name, "qemu-<id>-<name>", under EVERY controller before any scan;
   *  3. a scan for "qemu-<id>-*" (names libvirt shortened): candidates whose name is a prefix of the
   *     computed one (or the reverse) first, longest first; any other only when it is the one candidate
   *     and holds processes. libvirt reuses domain ids after a libvirtd restart, so a stale
   *     "qemu-<id>-<other VM>" cgroup can sit beside the right one: a prefix match must never beat an
   *     exact one, in any controller.
   */
  locate(id: number, name: string): string | undefined {
    if (id < 0) return undefined;
    const fromPid = this.fromQemuPid(id, name);
    if (fromPid !== undefined) return fromPid;
    const machine = libvirtMachineName(id, name);
    if (this.version === 2) {
      const p = cgroupV2Path(id, name);
      if (this.fs.exists(`${CGROUP_ROOT}${p}`)) return p;
      return this.pick(machine, this.scan(CGROUP_ROOT, '/machine.slice', `machine-${systemdEscape(`qemu-${id}-`)}`, '.scope'));
    }
    // v1: libvirt places the VM in every controller it manages; which ones vary (cpuacct may be left at
    // the root when not co-mounted with cpu), and hybrid hosts also have the v2 "unified" hierarchy.
    const p1 = cgroupV1Path(id, name);
    const p2 = `/machine.slice/machine-${systemdEscape(machine)}.scope`;
    const bases = V1_LOCATE_CONTROLLERS.map((c) => `${CGROUP_ROOT}/${c}`).filter((b) => this.fs.exists(b));
    for (const base of bases) {
      if (this.fs.exists(`${base}${p1}`)) return p1;
      if (this.fs.exists(`${base}${p2}`)) return p2;
    }
    const found: Candidate[] = [];
    for (const base of bases) {
      for (const c of [...this.scan(base, '/machine', `qemu-${id}-`, '.libvirt-qemu'), ...this.scan(base, '/machine.slice', `machine-${systemdEscape(`qemu-${id}-`)}`, '.scope')]) {
        if (!found.some((f) => f.path === c.path)) found.push(c);
      }
    }
    return this.pick(machine, found);
  }

  /** Where libvirt's qemu driver (system instance) writes the qemu pid of a running domain. */
  static pidFile(name: string): string {
    return `/run/libvirt/qemu/${name}.pid`;
  }

  /**
   * proc(5) /proc/<pid>/cgroup, "hierarchy-ID:controller-list:path" per hierarchy ("0::path" on v2):
   * the qemu process's cgroup, cut at the VM's own directory (qemu threads sit in its libvirt/emulator
   * and vcpu sub-cgroups). Only a "qemu-<id>-" directory counts: a pidfile left from an earlier run
   * can name a pid that now belongs to something else.
   */
  private fromQemuPid(id: number, name: string): string | undefined {
    let pid: number;
    let text: string;
    try {
      pid = Number(this.fs.readText(CgroupReader.pidFile(name)).trim());
      if (!Number.isInteger(pid) || pid <= 0) return undefined;
      text = this.fs.readText(`/proc/${pid}/cgroup`);
    } catch {
      return undefined; // no pidfile (not libvirt's system qemu driver, or not running) or the process is gone
    }
    const want = this.version === 2 ? ['0:'] : V1_LOCATE_CONTROLLERS.map((c) => (c === 'unified' ? '0:' : c));
    const lines = text.split('\n').filter(Boolean).map((l) => {
      const a = l.indexOf(':');
      const b = l.indexOf(':', a + 1);
      return { controllers: l.slice(a + 1, b).split(','), hierarchy: l.slice(0, a), path: l.slice(b + 1) };
    });
    const scope = `machine-${systemdEscape(`qemu-${id}-`)}`;
    const own = (dir: string) => (dir.startsWith(`qemu-${id}-`) && dir.endsWith('.libvirt-qemu')) || (dir.startsWith(scope) && dir.endsWith('.scope'));
    for (const w of want) {
      const line = lines.find((l) => (w === '0:' ? l.hierarchy === '0' && l.controllers.join('') === '' : l.controllers.includes(w)));
      if (!line) continue;
      const parts = line.path.split('/');
      const k = parts.findIndex(own);
      if (k < 0) continue;
      const path = parts.slice(0, k + 1).join('/');
      const base = this.version === 2 ? CGROUP_ROOT : `${CGROUP_ROOT}/${w === '0:' ? 'unified' : w}`;
      if (this.fs.exists(`${base}${path}`)) return path;
    }
    return undefined;
  }

  private scan(root: string, parent: string, prefix: string, suffix: string): Candidate[] {
    if (!this.fs.exists(`${root}${parent}`)) return [];
    return this.fs
      .readDir(`${root}${parent}`)
      .filter((e) => e.startsWith(prefix) && e.endsWith(suffix))
      .map((e) => ({ path: `${parent}/${e}`, dir: `${root}${parent}/${e}`, machine: machineNameOf(e) }));
  }

  /** The scan candidate for `machine`: a name-compatible one (longest), else a lone one that holds processes. */
  private pick(machine: string, found: readonly Candidate[]): string | undefined {
    const compatible = found.filter((c) => machine.startsWith(c.machine) || c.machine.startsWith(machine));
    if (compatible.length > 0) return [...compatible].sort((a, b) => b.machine.length - a.machine.length)[0]!.path;
    if (found.length === 1 && this.holdsProcesses(found[0]!.dir)) return found[0]!.path;
    return undefined;
  }

  private holdsProcesses(dir: string): boolean {
    for (const f of ['cgroup.procs', 'tasks']) {
      try {
        if (this.fs.readText(`${dir}/${f}`).trim() !== '') return true;
      } catch {
        // not this hierarchy's file
      }
    }
    return false;
  }

  /** Reads the VM's counters; throws Node's ENOENT/ENODEV when the cgroup vanished. */
  read(path: string, vcpus: number): VmCgroupStats {
    return this.readFiles(this.files(path, vcpus));
  }

  /** read() of files the caller holds (from `files(path, vcpus)`; valid until `forget(path)`). */
  readFiles(f: VmFiles): VmCgroupStats {
    const slow = { memoryUsedBytes: 0, blockReadBytes: 0, blockWriteBytes: 0 };
    this.readSlow(f, slow);
    return { ...this.readCpu(f), ...slow };
  }

  /** CPU time of the whole cgroup and (unless `vcpus` is false) per vCPU; throws Node's ENOENT/ENODEV when the cgroup vanished. */
  readCpu(f: VmFiles, vcpus = true): VmCpuStats {
    const cpuTimeNs = f.cpuIsStat ? parseCpuStatUsageNs(f.cpu.text(), f.cpu.path) : this.uint(f.cpu, f.cpuField);
    const vcpuTimeNs: number[] = [];
    if (vcpus) for (const v of f.vcpus) {
      try {
        vcpuTimeNs.push(f.cpuIsStat ? parseCpuStatUsageNs(v.text(), v.path) : this.uint(v, f.cpuField));
      } catch (e) {
        if (e instanceof WattsplitError) throw e;
        break; // fewer vCPU threads than reserved (hot-unplugged, or libvirt without per-vCPU cgroups)
      }
    }
    return { cpuTimeNs, vcpuTimeNs };
  }

  /** Memory in use and block I/O bytes, into `out` (0 where the controller is not there). */
  readSlow(f: VmFiles, out: VmSlowStats): void {
    this.readMemory(f, out);
    this.readBlock(f, out);
  }

  /** Memory in use, into `out` (0 where the memory controller is not there: v1). */
  readMemory(f: VmFiles, out: VmSlowStats): void {
    let memoryUsedBytes = 0;
    try {
      memoryUsedBytes = this.uint(f.mem, f.memField);
    } catch (e) {
      // v2: memory.current is always there (an error is the cgroup gone); v1: the memory controller may not be mounted
      if (e instanceof WattsplitError || this.version === 2) throw e;
    }
    out.memoryUsedBytes = memoryUsedBytes;
  }

  /** Block I/O bytes read and written, into `out` (0 where the io / blkio controller is not there). */
  readBlock(f: VmFiles, out: VmSlowStats): void {
    const io = this.io;
    io.read = 0;
    io.write = 0;
    try {
      if (this.version === 2) {
        const r = parseIoStat(f.io.text(), f.io.path);
        io.read = r.read;
        io.write = r.write;
      } else f.io.scan(scanBlkioServiceBytes, io);
    } catch (e) {
      if (e instanceof WattsplitError) throw e; // io controller not enabled for the slice / blkio not mounted: no block stats
      io.read = 0;
      io.write = 0;
    }
    out.blockReadBytes = io.read;
    out.blockWriteBytes = io.write;
  }

  /** A one-number file; a value that is not one is SENSOR_READ_FAILED naming the file and what it holds. */
  private uint(file: CounterFile, field: string): number {
    const v = file.uint();
    if (Number.isFinite(v)) return v;
    let text: string;
    try {
      text = file.text().trim();
    } catch {
      text = '?';
    }
    return num(text, file.path, field);
  }

  /** The VM's files, named once per cgroup and held (kept-open files are read without a lookup by path). */
  files(path: string, vcpus: number): VmFiles {
    const known = this.filesByPath.get(path);
    if (known && known.vcpus.length === vcpus) return known;
    const file = (p: string) => new CounterFile(this.fs, p);
    const list = (dir: string, sub: string, name: string) => Array.from({ length: vcpus }, (_, k) => file(`${dir}${sub}/vcpu${k}/${name}`));
    let f: VmFiles;
    if (this.version === 2) {
      const dir = `${CGROUP_ROOT}${path}`;
      f = { cpu: file(`${dir}/cpu.stat`), cpuIsStat: true, cpuField: 'usage_usec', vcpus: list(dir, '/libvirt', 'cpu.stat'), mem: file(`${dir}/memory.current`), memField: 'memory.current', io: file(`${dir}/io.stat`) };
    } else {
      // hybrid host: cpuacct not managed by libvirt, CPU time from the v2 "unified" hierarchy's core cpu.stat
      const unified = !this.fs.exists(`${CGROUP_ROOT}/cpuacct${path}/cpuacct.usage`) && this.fs.exists(`${CGROUP_ROOT}/unified${path}/cpu.stat`);
      const cpuDir = `${CGROUP_ROOT}/${unified ? 'unified' : 'cpuacct'}${path}`;
      const name = unified ? 'cpu.stat' : 'cpuacct.usage';
      f = {
        cpu: file(`${cpuDir}/${name}`),
        cpuIsStat: unified,
        cpuField: unified ? 'usage_usec' : 'cpuacct.usage',
        vcpus: list(cpuDir, '', name),
        mem: file(`${CGROUP_ROOT}/memory${path}/memory.usage_in_bytes`),
        memField: 'memory.usage_in_bytes',
        io: file(`${CGROUP_ROOT}/blkio${path}/blkio.throttle.io_service_bytes`),
      };
    }
    this.filesByPath.set(path, f);
    return f;
  }

  /** Drops what is cached about a VM's cgroup (vCPU list, open fds of a keepOpen HostFs). */
  forget(path: string): void {
    const dirs = this.version === 2 ? [`${CGROUP_ROOT}${path}`] : ['cpuacct', 'unified', 'memory', 'blkio'].map((c) => `${CGROUP_ROOT}/${c}${path}`);
    this.filesByPath.delete(path);
    const rel = (this.fs as Partial<ReleasableHostFs>).release;
    if (rel) for (const d of dirs) rel.call(this.fs, d);
  }
}

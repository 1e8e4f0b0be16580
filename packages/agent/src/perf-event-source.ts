/**
 * PerfEventSource: hardware counters per VM cgroup through perf_event_open(2), called with koffi's
 * variadic `syscall` (no native build).
 *
 * perf_event_open(2): int syscall(SYS_perf_event_open, struct perf_event_attr *attr, pid_t pid, int cpu,
 *   int group_fd, unsigned long flags). With PERF_FLAG_PID_CGROUP (1<<2), `pid` is an fd of the cgroup
 *   directory (cgroup v2 dir, or the v1 perf_event controller dir) and `cpu` must be >= 0: one fd per event
 *   per CPU, summed. attr: type PERF_TYPE_HARDWARE 0, config PERF_COUNT_HW_CPU_CYCLES 0 / INSTRUCTIONS 1 /
 *   CACHE_REFERENCES 2 / CACHE_MISSES 3; read_format TOTAL_TIME_ENABLED|TOTAL_TIME_RUNNING (1|2) so a
 *   multiplexed counter is scaled by enabled/running; read() returns u64 value, enabled, running.
 *   struct perf_event_attr (PERF_ATTR_SIZE_VER5 = 112 bytes): u32 type @0, u32 size @4, u64 config @8,
 *   u64 sample_period @16, u64 sample_type @24, u64 read_format @32, u64 flag bits @40 (disabled bit 0,
 *   inherit bit 1, exclude_hv bit 6), ... zero.
 * Where the kernel refuses (EACCES/EPERM: perf_event_paranoid or seccomp, ENOENT/EOPNOTSUPP: no PMU, as
 * in most VMs) the probe fails once: `supported()` is false and `reason` says why.
 */
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { arch, cpus } from 'node:os';
import { createRequire } from 'node:module';
import type * as Koffi from 'koffi';
import type { Logger, PerfReading, PerfSource } from '@wattsplit/wire';

const PERF_FLAG_PID_CGROUP = 1 << 2;
const PERF_FLAG_FD_CLOEXEC = 1 << 3;
const ATTR_SIZE = 112;
const EVENTS = [
  ['cycles', 0],
  ['instructions', 1],
  ['llcReferences', 2],
  ['llcMisses', 3],
] as const;

const SYS_PERF_EVENT_OPEN: Record<string, number> = { x64: 298, arm64: 241, ia32: 336, arm: 364, ppc64: 319, s390x: 331, riscv64: 241 };

/** koffi is loaded on first use only (it costs ~7 MB of RSS). */
let koffiMod: typeof Koffi | undefined;
function K(): typeof Koffi {
  koffiMod ??= createRequire(import.meta.url)('koffi') as typeof Koffi;
  return koffiMod;
}

type SyscallFn = (...args: unknown[]) => number | bigint;
let syscallFn: SyscallFn | undefined;

function sys(): SyscallFn {
  if (!syscallFn) {
    const libc = K().load('libc.so.6');
    syscallFn = libc.func('long syscall(long number, ...)');
  }
  return syscallFn;
}

function attr(config: number, excludeHv: boolean): Buffer {
  const b = Buffer.alloc(ATTR_SIZE);
  b.writeUInt32LE(0, 0); // PERF_TYPE_HARDWARE
  b.writeUInt32LE(ATTR_SIZE, 4);
  b.writeBigUInt64LE(BigInt(config), 8);
  b.writeBigUInt64LE(3n, 32); // TOTAL_TIME_ENABLED | TOTAL_TIME_RUNNING
  b.writeBigUInt64LE(excludeHv ? 1n << 6n : 0n, 40);
  return b;
}

/** perf_event_open; returns the fd or -errno. */
export function perfEventOpen(config: number, pid: number, cpu: number, flags: number): number {
  const nr = SYS_PERF_EVENT_OPEN[arch()];
  if (nr === undefined) return -38; // ENOSYS
  const r = Number(sys()(nr, 'void *', attr(config, true), 'int', pid, 'int', cpu, 'int', -1, 'unsigned long', flags | PERF_FLAG_FD_CLOEXEC));
  return r < 0 ? -K().errno() : r;
}

const ERRNO_NAMES: Record<number, string> = { 1: 'EPERM', 2: 'ENOENT', 13: 'EACCES', 19: 'ENODEV', 22: 'EINVAL', 38: 'ENOSYS', 95: 'EOPNOTSUPP', 24: 'EMFILE' };

export interface PerfEventSourceOptions {
  /** Directory of the cgroup hierarchy perf uses: "/sys/fs/cgroup" (v2) or "/sys/fs/cgroup/perf_event" (v1). */
  cgroupRoot: string;
  /** CPUs to count on; default all. */
  cpuCount?: number;
  /** Where the kernel lists PMUs; default /sys/bus/event_source/devices. */
  eventSourceDir?: string;
  logger: Logger;
}

interface CgroupFds {
  fds: number[][]; // [event][cpu]
}

export class PerfEventSource implements PerfSource {
  private ok: boolean;
  readonly reason: string;
  private readonly cpuCount: number;
  private readonly open = new Map<string, CgroupFds | null>();
  private readonly buf = Buffer.alloc(24);
  private readonly log: Logger;

  constructor(private readonly opts: PerfEventSourceOptions) {
    this.log = opts.logger.child({ source: 'perf' });
    this.cpuCount = opts.cpuCount ?? cpus().length;
    let fd: number;
    const pmu = (opts.eventSourceDir ?? '/sys/bus/event_source/devices');
    try {
      // No core PMU registered (cpu, or cpu_core/cpu_atom on hybrid parts): unsupported without loading the FFI.
      fd = ['cpu', 'cpu_core', 'cpu_atom', 'armv8_pmuv3_0'].some((d) => existsSync(`${pmu}/${d}`)) ? perfEventOpen(0, 0, -1, 0) : -2; // probe: cycles of this process, any CPU
    } catch (e) {
      fd = -38;
      this.reason = `perf_event_open not callable: ${(e as Error).message}`;
    }
    if (fd >= 0) {
      closeSync(fd);
      this.ok = true;
      this.reason = '';
    } else {
      this.ok = false;
      const name = ERRNO_NAMES[-fd] ?? `errno ${-fd}`;
      this.reason ||= `perf_event_open(cycles) failed with ${name}: ${
        name === 'EACCES' || name === 'EPERM'
          ? 'not permitted (kernel.perf_event_paranoid, container seccomp, or missing CAP_PERFMON)'
          : `no hardware PMU exposed here (no core PMU under ${pmu}; typical inside VMs)`
      }`;
    }
  }

  supported(): boolean {
    return this.ok;
  }

  private openCgroup(path: string): CgroupFds | null {
    const dir = `${this.opts.cgroupRoot}${path}`;
    let cg: number;
    try {
      cg = openSync(dir, 'r');
    } catch (e) {
      this.log.warn({ cgroup: dir }, `perf: cannot open cgroup dir ${dir}: ${(e as Error).message}`);
      return null;
    }
    const fds: number[][] = [];
    try {
      for (const [name, config] of EVENTS) {
        const row: number[] = [];
        for (let c = 0; c < this.cpuCount; c++) {
          const fd = perfEventOpen(config, cg, c, PERF_FLAG_PID_CGROUP);
          if (fd < 0) {
            this.log.warn({ cgroup: dir, event: name, cpu: c }, `perf: perf_event_open(${name}, cgroup ${dir}, cpu ${c}) failed with ${ERRNO_NAMES[-fd] ?? `errno ${-fd}`}: no perf counters for this VM`);
            for (const r of [...fds, row]) for (const f of r) closeSync(f);
            return null;
          }
          row.push(fd);
        }
        fds.push(row);
      }
    } finally {
      closeSync(cg);
    }
    return { fds };
  }

  private readSum(fds: number[]): number {
    let sum = 0;
    for (const fd of fds) {
      const n = readSync(fd, this.buf, 0, 24, null);
      if (n < 24) continue;
      const value = Number(this.buf.readBigUInt64LE(0));
      const enabled = Number(this.buf.readBigUInt64LE(8));
      const running = Number(this.buf.readBigUInt64LE(16));
      sum += running > 0 && running < enabled ? Math.round((value * enabled) / running) : value;
    }
    return sum;
  }

  read(cgroupPath: string): PerfReading | undefined {
    if (!this.ok) return undefined;
    if (!existsSync(`${this.opts.cgroupRoot}${cgroupPath}`)) {
      this.release(cgroupPath);
      return undefined;
    }
    let h = this.open.get(cgroupPath);
    if (h === undefined) {
      h = this.openCgroup(cgroupPath);
      this.open.set(cgroupPath, h);
    }
    if (!h) return undefined;
    const [cycles = [], instructions = [], refs = [], misses = []] = h.fds;
    return { cycles: this.readSum(cycles), instructions: this.readSum(instructions), llcReferences: this.readSum(refs), llcMisses: this.readSum(misses) };
  }

  /** Closes the fds of a cgroup that went away. */
  release(cgroupPath: string): void {
    const h = this.open.get(cgroupPath);
    this.open.delete(cgroupPath);
    if (h) for (const r of h.fds) for (const f of r) closeSync(f);
  }

  close(): void {
    for (const p of [...this.open.keys()]) this.release(p);
  }
}

/**
 * RootedHostFs: the real HostFs. Every path is the host's absolute path ("/sys/class/powercap/...");
 * a configurable root prefix lets the same samplers read a fixture tree or a chroot'ed sysfs.
 * Reads are synchronous on purpose (sysfs reads are µs-cheap); errors keep Node's errno `code` and
 * name the full path that failed.
 *
 * `keepOpen` (for the real /sys, /proc and cgroupfs): files stay open and are re-read with pread at
 * offset 0, which makes the kernel regenerate them (seq_file / kernfs), one syscall instead of
 * open+fstat+read+close: ~1 µs instead of ~10 µs per file. A file whose kernfs node was removed (zone
 * unloaded, VM cgroup gone, tap deleted) answers ENODEV on its old fd; it is then closed and opened
 * again, so a vanished file still reports ENOENT. Do not use keepOpen on ordinary file systems where
 * files are replaced or deleted (fixture trees): an open fd would keep reading the old inode.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, readdirSync, statfsSync } from 'node:fs';
import type { HostFs } from '@wattsplit/wire';

export interface RootedHostFsOptions {
  /** Keep files open and pread them (real kernfs/procfs only). Default false. */
  keepOpen?: boolean;
  /** At most this many cached fds (least recently opened closed first). Default 16384. */
  maxOpenFiles?: number;
}

const BUF_SIZE = 64 * 1024;

export class RootedHostFs implements HostFs {
  readonly root: string;
  readonly keepOpen: boolean;
  private readonly maxOpen: number;
  private readonly fds = new Map<string, number>();
  private buf: Buffer | undefined;

  constructor(root = '/', opts: RootedHostFsOptions = {}) {
    this.root = root === '/' || root === '' ? '' : root.replace(/\/+$/, '');
    this.keepOpen = opts.keepOpen ?? false;
    this.maxOpen = opts.maxOpenFiles ?? 16384;
  }

  /** The real path a host path maps to. */
  resolve(path: string): string {
    return this.root + path;
  }

  readText(path: string): string {
    const full = this.resolve(path);
    if (!this.keepOpen) {
      try {
        return readFileSync(full, 'latin1');
      } catch (e) {
        throw withPath(e, full);
      }
    }
    return this.preadText(full);
  }

  private preadText(full: string): string {
    this.buf ??= Buffer.allocUnsafe(BUF_SIZE);
    for (let attempt = 0; attempt < 2; attempt++) {
      let fd = this.fds.get(full);
      const cached = fd !== undefined;
      try {
        if (fd === undefined) {
          fd = openSync(full, 'r');
          if (this.fds.size >= this.maxOpen) this.evictOldest();
          this.fds.set(full, fd);
        }
        const n = readSync(fd, this.buf, 0, BUF_SIZE, 0);
        if (n === BUF_SIZE) return readFileSync(full, 'latin1'); // larger than the buffer: read it whole
        return this.buf.toString('latin1', 0, n);
      } catch (e) {
        if (fd !== undefined) this.closeFd(full);
        const code = (e as NodeJS.ErrnoException).code;
        // a stale fd of a removed kernfs node: reopen once to learn whether the file is really gone
        if (cached && (code === 'ENODEV' || code === 'ESTALE' || code === 'EBADF') && attempt === 0) continue;
        throw withPath(e, full);
      }
    }
    throw withPath(Object.assign(new Error(`ENOENT: no such file, open '${full}'`), { code: 'ENOENT' }), full);
  }

  private closeFd(full: string): void {
    const fd = this.fds.get(full);
    this.fds.delete(full);
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        /* already closed */
      }
    }
  }

  private evictOldest(): void {
    const first = this.fds.keys().next();
    if (!first.done) this.closeFd(first.value);
  }

  /** Closes cached fds of every path under `prefix` (a VM that went away). */
  release(prefix: string): void {
    if (!this.keepOpen) return;
    const full = this.resolve(prefix).replace(/\/+$/, '');
    for (const p of [...this.fds.keys()]) if (p === full || p.startsWith(`${full}/`)) this.closeFd(p);
  }

  /** Number of fds kept open. */
  openFiles(): number {
    return this.fds.size;
  }

  readDir(path: string): string[] {
    const full = this.resolve(path);
    try {
      return readdirSync(full);
    } catch (e) {
      throw withPath(e, full);
    }
  }

  exists(path: string): boolean {
    return existsSync(this.resolve(path));
  }

  close(): void {
    for (const p of [...this.fds.keys()]) this.closeFd(p);
  }
}

/** Node's fs errors already carry the path in the message; make sure ours always do. */
function withPath(e: unknown, full: string): unknown {
  if (e instanceof Error) {
    const err = e as NodeJS.ErrnoException;
    if (!err.message.includes(full)) err.message = `${err.message} (${full})`;
    err.path ??= full;
  }
  return e;
}

/** errno code of a thrown Node system error, or undefined. */
export function errnoOf(e: unknown): string | undefined {
  return e instanceof Error ? (e as NodeJS.ErrnoException).code : undefined;
}

/** statfs(2) f_type of sysfs (linux/magic.h SYSFS_MAGIC). */
const SYSFS_MAGIC = 0x62656572;

/**
 * Whether `root` holds the kernel's own files (so keepOpen is right): `/`, or a root whose `sys` is a
 * mounted sysfs, as in a container that mounts the host's /sys at /host/sys and reads with root /host.
 */
export function isKernelSysfsRoot(root: string): boolean {
  if (root === '/' || root === '') return true;
  try {
    return statfsSync(`${root.replace(/\/+$/, '')}/sys`).type === SYSFS_MAGIC;
  } catch {
    return false;
  }
}

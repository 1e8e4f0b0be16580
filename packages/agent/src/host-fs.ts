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

/** A kept-open file: keyed by the caller's host path (the same string each round, so its hash is cached). */
interface OpenFile {
  full: string;
  fd: number;
}

/**
 * The leading unsigned decimal integer of a file's text ("123456\n", "  42"), NaN when there is none: what
 * `Number(text.trim())` gives for the one-number files of cgroupfs and sysfs.
 */
export function readUint(fs: HostFs, path: string): number {
  return fs instanceof RootedHostFs ? fs.readUint(path) : parseUintText(fs.readText(path));
}

function parseUintText(text: string): number {
  const t = text.trim();
  return t === '' ? NaN : Number(t);
}

export class RootedHostFs implements HostFs {
  readonly root: string;
  readonly keepOpen: boolean;
  private readonly maxOpen: number;
  private readonly files = new Map<string, OpenFile>();
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
    if (!this.keepOpen) {
      const full = this.resolve(path);
      try {
        return readFileSync(full, 'latin1');
      } catch (e) {
        throw withPath(e, full);
      }
    }
    const n = this.pread(path);
    if (n === BUF_SIZE) return this.readWhole(path); // larger than the buffer: read it whole
    return (this.buf as Buffer).toString('latin1', 0, n);
  }

  /** `readUint(fs, path)` without a string in between (kept-open files: parsed from the read buffer). */
  readUint(path: string): number {
    if (!this.keepOpen) return parseUintText(this.readText(path));
    const n = this.pread(path);
    const b = this.buf as Buffer;
    let i = 0;
    while (i < n && (b[i] === 0x20 || b[i] === 0x09 || b[i] === 0x0a)) i++;
    const start = i;
    let v = 0;
    for (; i < n; i++) {
      const c = b[i] as number;
      if (c < 0x30 || c > 0x39) break;
      v = v * 10 + (c - 0x30);
    }
    if (i === start) return NaN;
    // past 15 digits a double cannot add digits exactly: let Number round it, as Number(text) does
    if (i - start > 15) v = Number(b.toString('latin1', start, i));
    // anything after the number but white space is not a number file ("12abc"): as Number(text.trim()) says
    for (let k = i; k < n; k++) if (b[k] !== 0x20 && b[k] !== 0x0a && b[k] !== 0x09) return NaN;
    return v;
  }

  private readWhole(path: string): string {
    const full = this.resolve(path);
    try {
      return readFileSync(full, 'latin1');
    } catch (e) {
      throw withPath(e, full);
    }
  }

  /** Reads the kept-open file at offset 0 into this.buf; returns the byte count. */
  private pread(path: string): number {
    const buf = (this.buf ??= Buffer.allocUnsafe(BUF_SIZE));
    for (let attempt = 0; attempt < 2; attempt++) {
      let f = this.files.get(path);
      const cached = f !== undefined;
      try {
        if (f === undefined) {
          const full = this.resolve(path);
          f = { full, fd: -1 };
          try {
            f.fd = openSync(full, 'r');
          } catch (e) {
            throw withPath(e, full);
          }
          if (this.files.size >= this.maxOpen) this.evictOldest();
          this.files.set(path, f);
        }
        return readSync(f.fd, buf, 0, BUF_SIZE, 0);
      } catch (e) {
        if (cached) this.closeFile(path);
        const code = (e as NodeJS.ErrnoException).code;
        // a stale fd of a removed kernfs node: reopen once to learn whether the file is really gone
        if (cached && (code === 'ENODEV' || code === 'ESTALE' || code === 'EBADF') && attempt === 0) continue;
        throw withPath(e, f?.full ?? this.resolve(path));
      }
    }
    const full = this.resolve(path);
    throw withPath(Object.assign(new Error(`ENOENT: no such file, open '${full}'`), { code: 'ENOENT' }), full);
  }

  private closeFile(path: string): void {
    const f = this.files.get(path);
    this.files.delete(path);
    if (f !== undefined) {
      try {
        closeSync(f.fd);
      } catch {
        /* already closed */
      }
    }
  }

  private evictOldest(): void {
    const first = this.files.keys().next();
    if (!first.done) this.closeFile(first.value);
  }

  /** Closes cached fds of every path under `prefix` (a VM that went away). */
  release(prefix: string): void {
    if (!this.keepOpen) return;
    const p = prefix.replace(/\/+$/, '');
    for (const path of [...this.files.keys()]) if (path === p || path.startsWith(`${p}/`)) this.closeFile(path);
  }

  /** Number of fds kept open. */
  openFiles(): number {
    return this.files.size;
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
    for (const p of [...this.files.keys()]) this.closeFile(p);
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

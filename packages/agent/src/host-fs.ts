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

/**
 * A kept-open file: in `files` under its host path while open (fd ≥ 0). A caller that reads it every round
 * holds it (`keep`, `CounterFile`) and reads it without a lookup by path; once closed (released, evicted,
 * stale) it has fd −1 and the holder's next read opens it again. Two fields only: an agent at 500 VMs holds
 * 3 500 of these, so the real path (root + path) is built when the file is opened or named in an error, not kept.
 */
interface OpenFile {
  readonly path: string;
  fd: number;
}

/** A file the caller holds to read every round (RootedHostFs.keep); opaque. */
export type KeptFile = Readonly<OpenFile>;

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
    return this.readTextKept(this.entry(path));
  }

  /** readText of a held file (from `keep`). */
  readTextKept(kept: KeptFile): string {
    const f = kept as OpenFile;
    const n = this.pread(f);
    if (n === BUF_SIZE) return this.readWhole(f.path); // larger than the buffer: read it whole
    return (this.buf as Buffer).toString('latin1', 0, n);
  }

  /** `readUint(fs, path)` without a string in between (kept-open files: parsed from the read buffer). */
  readUint(path: string): number {
    if (!this.keepOpen) return parseUintText(this.readText(path));
    return this.readUintKept(this.entry(path));
  }

  /**
   * The file a caller reads every round, to hold and read with readUintKept/readTextKept: no lookup by path
   * per read (with keepOpen only; it is opened on its first read).
   */
  keep(path: string): KeptFile {
    return this.entry(path);
  }

  /** `parse` of a held file's bytes, from the read buffer (valid only during the call). */
  scanKept<A>(kept: KeptFile, parse: (bytes: Uint8Array, length: number, path: string, arg: A) => void, arg: A): void {
    const n = this.pread(kept);
    if (n === BUF_SIZE) {
      const b = Buffer.from(this.readWhole(kept.path), 'latin1'); // larger than the buffer: read it whole
      parse(b, b.length, kept.path, arg);
      return;
    }
    parse(this.buf as Buffer, n, kept.path, arg);
  }

  /** readUint of a held file (from `keep`). */
  readUintKept(kept: KeptFile): number {
    const n = this.pread(kept);
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

  /** The open entry of a path, or a closed one (fd −1) that pread opens; a new entry holds the path as one flat string. */
  private entry(path: string): OpenFile {
    return this.files.get(path) ?? { path: flatString(path), fd: -1 };
  }

  /** Reads the kept-open file at offset 0 into this.buf (opening it if closed); returns the byte count. */
  private pread(f: OpenFile): number {
    const buf = (this.buf ??= Buffer.allocUnsafe(BUF_SIZE));
    for (let attempt = 0; attempt < 2; attempt++) {
      const cached = f.fd >= 0;
      try {
        if (!cached) this.open(f);
        return readSync(f.fd, buf, 0, BUF_SIZE, 0);
      } catch (e) {
        if (cached) this.closeFile(f);
        const code = (e as NodeJS.ErrnoException).code;
        // a stale fd of a removed kernfs node: reopen once to learn whether the file is really gone
        if (cached && (code === 'ENODEV' || code === 'ESTALE' || code === 'EBADF') && attempt === 0) continue;
        throw withPath(e, this.resolve(f.path));
      }
    }
    const full = this.resolve(f.path);
    throw withPath(Object.assign(new Error(`ENOENT: no such file, open '${full}'`), { code: 'ENOENT' }), full);
  }

  private open(f: OpenFile): void {
    const full = this.resolve(f.path);
    let fd: number;
    try {
      fd = openSync(full, 'r');
    } catch (e) {
      throw withPath(e, full);
    }
    // one fd per path: another holder's entry for it (opened since this one was closed) goes
    const other = this.files.get(f.path);
    if (other !== undefined && other !== f) this.closeFile(other);
    else if (this.files.size >= this.maxOpen) this.evictOldest();
    f.fd = fd;
    this.files.set(f.path, f);
  }

  private closeFile(f: OpenFile): void {
    if (this.files.get(f.path) === f) this.files.delete(f.path);
    if (f.fd >= 0) {
      try {
        closeSync(f.fd);
      } catch {
        /* already closed */
      }
    }
    f.fd = -1;
  }

  private evictOldest(): void {
    const first = this.files.values().next();
    if (!first.done) this.closeFile(first.value);
  }

  /** Closes cached fds of every path under `prefix` (a VM that went away). */
  release(prefix: string): void {
    if (!this.keepOpen) return;
    const p = prefix.replace(/\/+$/, '');
    for (const f of [...this.files.values()]) if (f.path === p || f.path.startsWith(`${p}/`)) this.closeFile(f);
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
    for (const f of [...this.files.values()]) this.closeFile(f);
  }
}

/**
 * A file read every round, named once by its holder: from a kept-open RootedHostFs it is held and read
 * without a lookup by path; from any other HostFs it is read by path. One object per file beside the held
 * OpenFile (7 per VM on cgroup v1), sharing its path string.
 */
export class CounterFile {
  readonly path: string;
  /**
   * the held file when `fs` is a kept-open RootedHostFs, else undefined. Invariant: set only in the constructor, and only
   * when `fs instanceof RootedHostFs`, so where `kept` is set the `(this.fs as RootedHostFs)` casts below hold.
   */
  private readonly kept: KeptFile | undefined;

  constructor(
    private readonly fs: HostFs,
    path: string,
  ) {
    this.kept = fs instanceof RootedHostFs && fs.keepOpen ? fs.keep(path) : undefined;
    this.path = this.kept ? this.kept.path : path;
  }

  /** readUint(fs, path). */
  uint(): number {
    return this.kept ? (this.fs as RootedHostFs).readUintKept(this.kept) : readUint(this.fs, this.path);
  }

  /** fs.readText(path). */
  text(): string {
    return this.kept ? (this.fs as RootedHostFs).readTextKept(this.kept) : this.fs.readText(this.path);
  }

  /** `parse(bytes, length, path, arg)` of the file's bytes (a kept-open file's: the read buffer, no string). */
  scan<A>(parse: (bytes: Uint8Array, length: number, path: string, arg: A) => void, arg: A): void {
    if (this.kept) {
      (this.fs as RootedHostFs).scanKept(this.kept, parse, arg);
      return;
    }
    const b = Buffer.from(this.fs.readText(this.path), 'latin1');
    parse(b, b.length, this.path, arg);
  }
}

/**
 * The same text as one sequential string. A path built from template parts (`${dir}/vcpu${k}/${name}`) is a chain
 * of V8 cons strings over small pieces, ≈ 210 bytes of heap for an 80-character cgroup path, kept as long as the
 * file is held; flat it is ≈ 100 (3 500 held files at 500 VMs: −0.33 MB, docs/benchmarks.md). JSON round-trips
 * every string exactly (lone surrogates as \u escapes); once per file held, not per read.
 */
export function flatString(s: string): string {
  return JSON.parse(JSON.stringify(s)) as string;
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

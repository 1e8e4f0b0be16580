/**
 * RootedHostFs: the real HostFs. Every path is the host's absolute path ("/sys/class/powercap/...");
 * a configurable root prefix lets the same samplers read a fixture tree or a chroot'ed sysfs.
 * Reads are synchronous on purpose (sysfs reads are µs-cheap); errors keep Node's errno `code` and
 * name the full path that failed.
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import type { HostFs } from '@wattsplit/wire';

export class RootedHostFs implements HostFs {
  readonly root: string;

  constructor(root = '/') {
    this.root = root === '/' || root === '' ? '' : root.replace(/\/+$/, '');
  }

  /** The real path a host path maps to. */
  resolve(path: string): string {
    return this.root + path;
  }

  readText(path: string): string {
    const full = this.resolve(path);
    try {
      return readFileSync(full, 'utf8');
    } catch (e) {
      throw withPath(e, full);
    }
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

/**
 * In-memory HostFs whose files are generated lazily on read from live counters (no string is rebuilt
 * per simulation step). Directories list their children; a node may be temporarily hidden (a cgroup
 * briefly absent) or failing (a read returning EIO) — both checked at read time.
 * Errors are thrown like Node's fs errors: an Error with `code` ('ENOENT', 'ENOTDIR', 'EISDIR', 'EIO').
 */
import type { HostFs } from '@wattsplit/wire';

export type FileGen = () => string;

interface FileNode {
  kind: 'file';
  read: FileGen;
  visible: (() => boolean) | undefined;
}
interface DirNode {
  kind: 'dir';
  children: Set<string>;
  visible: (() => boolean) | undefined;
}
type Node = FileNode | DirNode;

export function fsError(code: 'ENOENT' | 'ENOTDIR' | 'EISDIR' | 'EIO', syscall: string, path: string): NodeJS.ErrnoException {
  const text = { ENOENT: 'no such file or directory', ENOTDIR: 'not a directory', EISDIR: 'illegal operation on a directory', EIO: 'i/o error' }[code];
  const errno = { ENOENT: -2, ENOTDIR: -20, EISDIR: -21, EIO: -5 }[code];
  return Object.assign(new Error(`${code}: ${text}, ${syscall} '${path}'`), { code, errno, syscall, path });
}

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

export class MemHostFs implements HostFs {
  private readonly nodes = new Map<string, Node>([['/', { kind: 'dir', children: new Set(), visible: undefined }]]);
  /** Paths whose next reads fail with EIO (set by the host's noise model for one step). */
  readonly failing = new Set<string>();

  addFile(path: string, read: FileGen, visible?: () => boolean): void {
    this.ensureDir(parentOf(path));
    this.nodes.set(path, { kind: 'file', read, visible });
    this.link(path);
  }

  addDir(path: string, visible?: () => boolean): void {
    this.ensureDir(parentOf(path));
    const n = this.nodes.get(path);
    if (n?.kind === 'dir') {
      n.visible = visible;
      return;
    }
    this.nodes.set(path, { kind: 'dir', children: new Set(), visible });
    this.link(path);
  }

  /** Removes a path and everything below it. */
  remove(path: string): void {
    const n = this.nodes.get(path);
    if (!n) return;
    if (n.kind === 'dir') for (const c of [...n.children]) this.remove(path === '/' ? `/${c}` : `${path}/${c}`);
    this.nodes.delete(path);
    const p = this.nodes.get(parentOf(path));
    if (p?.kind === 'dir') p.children.delete(path.slice(path.lastIndexOf('/') + 1));
  }

  readText(path: string): string {
    const n = this.lookup(path, 'open');
    if (n.kind === 'dir') throw fsError('EISDIR', 'read', path);
    if (this.failing.size > 0 && this.failing.has(path)) throw fsError('EIO', 'read', path);
    return n.read();
  }

  readDir(path: string): string[] {
    const n = this.lookup(path, 'scandir');
    if (n.kind !== 'dir') throw fsError('ENOTDIR', 'scandir', path);
    const out: string[] = [];
    const base = path === '/' ? '' : path;
    for (const c of n.children) {
      const child = this.nodes.get(`${base}/${c}`);
      if (child && (!child.visible || child.visible())) out.push(c);
    }
    return out.sort();
  }

  exists(path: string): boolean {
    try {
      this.lookup(path, 'access');
      return true;
    } catch {
      return false;
    }
  }

  /** True when `path` is a directory (for tree walkers such as writeHostTree). */
  isDir(path: string): boolean {
    return this.nodes.get(path)?.kind === 'dir';
  }

  private lookup(path: string, syscall: string): Node {
    const n = this.nodes.get(path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path);
    if (!n) throw fsError('ENOENT', syscall, path);
    if (n.visible && !n.visible()) throw fsError('ENOENT', syscall, path);
    // a hidden ancestor hides everything below it
    for (let p = parentOf(path); p !== '/'; p = parentOf(p)) {
      const a = this.nodes.get(p);
      if (a?.visible && !a.visible()) throw fsError('ENOENT', syscall, path);
    }
    return n;
  }

  private ensureDir(path: string): void {
    if (this.nodes.has(path)) return;
    this.ensureDir(parentOf(path));
    this.nodes.set(path, { kind: 'dir', children: new Set(), visible: undefined });
    this.link(path);
  }

  private link(path: string): void {
    if (path === '/') return;
    const p = this.nodes.get(parentOf(path));
    if (p?.kind === 'dir') p.children.add(path.slice(path.lastIndexOf('/') + 1));
  }
}

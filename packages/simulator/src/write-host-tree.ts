/**
 * Materialises a simulated host's current file tree (sysfs, procfs, cgroupfs) into a real directory,
 * for agent tests that read through the real file system: `<dir>/sys/class/powercap/...`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HostFs } from '@wattsplit/wire';

export interface WriteHostTreeResult {
  files: number;
  dirs: number;
  /** Paths that could not be read at this instant (a noise EIO), left out. */
  skipped: string[];
}

/** Writes every file of `host.fs` under `dir` (paths keep their absolute layout below dir). */
export function writeHostTree(host: { fs: HostFs }, dir: string): WriteHostTreeResult {
  const out: WriteHostTreeResult = { files: 0, dirs: 0, skipped: [] };
  const walk = (path: string, depth: number): void => {
    if (depth > 32) return;
    let children: string[];
    try {
      children = host.fs.readDir(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOTDIR') {
        out.skipped.push(path);
        return;
      }
      try {
        writeFileSync(join(dir, path), host.fs.readText(path));
        out.files++;
      } catch {
        out.skipped.push(path);
      }
      return;
    }
    mkdirSync(join(dir, path), { recursive: true });
    out.dirs++;
    for (const c of children) walk(path === '/' ? `/${c}` : `${path}/${c}`, depth + 1);
  };
  walk('/', 0);
  return out;
}

/** Shared helpers for this package's tests (compiled, not exported from the index). */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HostFs } from '@wattsplit/wire';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'test-fixtures');

/** A private copy of a fixture tree that the test may modify; removed by the returned cleanup. */
export function copyFixture(name: string): { root: string; cleanup: () => void } {
  const root = mkdtempSync(join(tmpdir(), `wattsplit-agent-${name}-`));
  cpSync(join(FIXTURES, name), root, { recursive: true });
  return { root, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `wattsplit-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A HostFs wrapper that throws a Node system error for chosen paths (EACCES as for non-root on energy_uj). */
export class FaultyHostFs implements HostFs {
  constructor(
    private readonly inner: HostFs,
    private readonly faults: Map<string, string>,
  ) {}

  private check(path: string): void {
    for (const [p, code] of this.faults) {
      if (path === p || path.startsWith(`${p}/`)) {
        const e = new Error(`${code}: simulated, open '${path}'`) as NodeJS.ErrnoException;
        e.code = code;
        e.path = path;
        throw e;
      }
    }
  }

  readText(path: string): string {
    this.check(path);
    return this.inner.readText(path);
  }

  readDir(path: string): string[] {
    this.check(path);
    return this.inner.readDir(path);
  }

  exists(path: string): boolean {
    return this.inner.exists(path);
  }
}

export function fakeClock(startNs = 1_000_000_000, wallStartNs = 1_700_000_000_000_000_000): { monoNs: () => number; wallUnixNs: () => number; advance: (ms: number) => void } {
  let mono = startNs;
  let wall = wallStartNs;
  return {
    monoNs: () => mono,
    wallUnixNs: () => wall,
    advance: (ms: number) => {
      mono += ms * 1e6;
      wall += ms * 1e6;
    },
  };
}

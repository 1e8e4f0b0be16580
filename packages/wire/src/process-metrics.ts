/**
 * What every wattsplit process adds to its `/metrics`: prom-client's default `process_*` and `nodejs_*`
 * families (CPU seconds, resident memory, open fds, start time, heap, event-loop lag, GC durations: the
 * names every Node.js dashboard already reads) and `wattsplit_build_info{version,commit,role} 1`.
 *
 * Why prom-client only here: the defaults are its well-kept part (Linux /proc reads, perf_hooks event-loop
 * histogram, GC observer), and writing them again would drift from what operators' dashboards expect.
 * The domain families stay in the hand-written renderers (collector-metrics.ts, gateway metrics.ts,
 * agent-metrics.ts): the collector's per-VM counters are updated on the hot path through cached series
 * objects, which prom-client's label-hash lookup per increment would slow down, and the gateway's are a
 * plain snapshot object (`stats()`). All of them render text format 0.0.4, so one scrape is the
 * concatenation; the families never share a name.
 *
 * The default collectors are process-wide: one registry per process, started on first use (a process that
 * runs several roles, e.g. `wattsplit demo --serve`, reports them once per endpoint with its own role).
 * prom-client is loaded then, not with this module: a process that serves no /metrics (the agent without
 * --metrics-port) never loads it (≈ 1.3 MB of heap and the built-ins it requires).
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Registry } from 'prom-client';

/** Defined by the agent bundler (scripts/package-agent.mjs); undeclared in the workspace build. */
declare const WATTSPLIT_BUILD_VERSION: string | undefined;
declare const WATTSPLIT_BUILD_COMMIT: string | undefined;

export interface BuildInfo {
  version: string;
  /** Full or short git commit the process was built from; `unknown` when nothing says. */
  commit: string;
}

export interface ProcessMetricsOptions {
  /**
   * Resolution of the event-loop delay histogram, ms (prom-client's default is 10). The agent uses 100: its
   * CPU budget is counted in ms per second and the histogram's timer would wake it 100 times a second.
   */
  eventLoopPrecisionMs?: number;
}

let registry: Promise<Registry> | undefined;
let cachedBuildInfo: BuildInfo | undefined;

/** Starts the process-wide default collectors (idempotent; the first call's options win); resolves once started. */
export function startProcessMetrics(opts: ProcessMetricsOptions = {}): Promise<Registry> {
  registry ??= import('prom-client').then(({ Registry: PromRegistry, collectDefaultMetrics }) => {
    const r = new PromRegistry();
    collectDefaultMetrics({ register: r, eventLoopMonitoringPrecision: opts.eventLoopPrecisionMs ?? 10 });
    return r;
  });
  return registry;
}

/** Version and commit: WATTSPLIT_BUILD_VERSION / WATTSPLIT_BUILD_COMMIT (env, then the bundler's defines), else the workspace's package.json and git HEAD. */
export function buildInfo(): BuildInfo {
  if (cachedBuildInfo) return cachedBuildInfo;
  const here = dirname(fileURLToPath(import.meta.url));
  const version =
    process.env.WATTSPLIT_BUILD_VERSION ||
    (typeof WATTSPLIT_BUILD_VERSION === 'string' ? WATTSPLIT_BUILD_VERSION : undefined) ||
    packageVersion(join(here, '..', 'package.json')) ||
    'unknown';
  const commit =
    process.env.WATTSPLIT_BUILD_COMMIT ||
    (typeof WATTSPLIT_BUILD_COMMIT === 'string' ? WATTSPLIT_BUILD_COMMIT : undefined) ||
    gitHead(here) ||
    'unknown';
  return (cachedBuildInfo = { version, commit });
}

function packageVersion(path: string): string | undefined {
  try {
    const p = JSON.parse(readFileSync(path, 'utf8')) as { name?: unknown; version?: unknown };
    return typeof p.name === 'string' && p.name.startsWith('@wattsplit/') && typeof p.version === 'string' ? p.version : undefined;
  } catch {
    return undefined;
  }
}

/** HEAD of the git checkout above `from`, read from the files (no `git` process): loose ref, then packed-refs. */
export function gitHead(from: string): string | undefined {
  let dir = resolve(from);
  for (;;) {
    const dotGit = join(dir, '.git');
    try {
      let gitDir = dotGit;
      if (statSync(dotGit).isFile()) {
        const m = /^gitdir:\s*(.+)$/m.exec(readFileSync(dotGit, 'utf8'));
        if (!m?.[1]) return undefined;
        gitDir = resolve(dir, m[1].trim());
      }
      return resolveHead(gitDir);
    } catch {
      const up = dirname(dir);
      if (up === dir) return undefined;
      dir = up;
    }
  }
}

function resolveHead(gitDir: string): string | undefined {
  const head = readFileSync(join(gitDir, 'HEAD'), 'utf8').trim();
  const ref = /^ref:\s*(.+)$/.exec(head)?.[1];
  if (!ref) return /^[0-9a-f]{40,64}$/.test(head) ? head : undefined;
  let common = gitDir;
  try {
    common = resolve(gitDir, readFileSync(join(gitDir, 'commondir'), 'utf8').trim());
  } catch {
    // not a linked worktree
  }
  for (const d of [gitDir, common]) {
    try {
      const v = readFileSync(join(d, ref), 'utf8').trim();
      if (/^[0-9a-f]{40,64}$/.test(v)) return v;
    } catch {
      // packed
    }
  }
  try {
    for (const line of readFileSync(join(common, 'packed-refs'), 'utf8').split('\n')) {
      const [sha, name] = line.split(' ');
      if (name === ref && sha && /^[0-9a-f]{40,64}$/.test(sha)) return sha;
    }
  } catch {
    // no packed refs
  }
  return undefined;
}

const esc = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

/** `wattsplit_build_info{version,commit,role} 1` in text format 0.0.4. */
export function buildInfoText(role: string, info: BuildInfo = buildInfo()): string {
  return [
    '# HELP wattsplit_build_info The version and git commit this process runs, by role; always 1.',
    '# TYPE wattsplit_build_info gauge',
    `wattsplit_build_info{version="${esc(info.version)}",commit="${esc(info.commit)}",role="${esc(role)}"} 1`,
    '',
  ].join('\n');
}

/** The default process families (starting them if needed) followed by the build info of `role`. */
export async function processMetricsText(role: string, opts: ProcessMetricsOptions = {}): Promise<string> {
  const text = await (await startProcessMetrics(opts)).metrics();
  return `${text.endsWith('\n') ? text : `${text}\n`}${buildInfoText(role)}`;
}

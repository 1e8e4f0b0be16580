/**
 * Shared by the tests of the packaged agent (the bundle and the .deb): build the artefact with the
 * repository's own script, run an installed copy against a fixture host, stream to a real gateway on
 * loopback. Test-only (not exported from the index).
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = process.env.WATTSPLIT_REPO_ROOT ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** Dual-socket AMD host, cgroup v1: VM 3 "batch-a" (2 vCPUs) has a qemu cgroup. */
export const V1_FIXTURE = join(REPO_ROOT, 'packages/agent/test-fixtures/dual-socket-v1');

export interface AgentManifest {
  version: string;
  tree: string;
  unpackedBytes: number;
  files: number;
  tarball?: string;
  sha256?: string;
  natives: Record<string, string>;
}

/** Why the packaging script cannot run here, or undefined when it can (esbuild installed). */
export function packagingUnavailable(): string | undefined {
  if (!existsSync(join(REPO_ROOT, 'scripts/package-agent.mjs'))) return 'scripts/package-agent.mjs missing';
  if (!existsSync(join(REPO_ROOT, 'node_modules/esbuild/package.json'))) return 'esbuild is not installed (root devDependency): run pnpm install';
  return undefined;
}

/** Runs scripts/package-agent.mjs into a fresh directory; returns its manifest with absolute paths. */
export function buildAgentArtefact(extraArgs: string[] = []): AgentManifest & { outDir: string } {
  const outDir = mkdtempSync(join(tmpdir(), 'wattsplit-agent-pkg-'));
  const out = execFileSync(process.execPath, [join(REPO_ROOT, 'scripts/package-agent.mjs'), '--out', outDir, '--json', ...extraArgs], { cwd: REPO_ROOT, encoding: 'utf8' });
  const m = JSON.parse(out.trim().split('\n').pop() ?? '{}') as AgentManifest;
  return { ...m, tree: join(outDir, m.tree), ...(m.tarball ? { tarball: join(outDir, m.tarball) } : {}), outDir };
}

/** An agent config for the v1 fixture host: static VM list, no libvirt/NVML/perf, plaintext to `gateway`. */
export function writeFixtureAgentConfig(dir: string, gateway: string, hostId: string): string {
  const file = join(dir, 'agent.json');
  writeFileSync(file, JSON.stringify({
    hostId, intervalMs: 200, sysfsRoot: V1_FIXTURE,
    gateway: { address: gateway, tls: false },
    spool: { dir: join(dir, 'spool') },
    libvirt: false, vms: [{ uuid: '00000000-0000-4000-8000-000000000003', name: 'batch-a', id: 3, vcpus: 2, tenant: 'acme' }],
    nvml: { enabled: false }, perf: { enabled: false },
  }));
  return file;
}

export interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Wall ms from spawn to the first byte on stdout (undefined when none). */
  firstOutputMs: number | undefined;
}

/** Runs a command to its end (or `timeoutMs`, then SIGKILL). `env` replaces the environment when given. */
export function runToEnd(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<ProcessResult> {
  return new Promise((res) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
    let stdout = '';
    let stderr = '';
    let first: number | undefined;
    child.stdout.on('data', (b: Buffer) => {
      first ??= Number(process.hrtime.bigint() - t0) / 1e6;
      stdout += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      res({ code, stdout, stderr, firstOutputMs: first });
    });
  });
}

/**
 * Starts a long-running command, waits until `ready()` holds (polling), then SIGTERMs it and returns
 * how it ended. Fails (rejects) when it exits early or `ready` never holds within `timeoutMs`.
 */
export async function runUntil(cmd: string, args: string[], ready: () => boolean, opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<ProcessResult> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const closed = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
  const until = Date.now() + (opts.timeoutMs ?? 20_000);
  try {
    while (!ready()) {
      if (child.exitCode !== null) throw new Error(`${cmd} exited ${child.exitCode} early:\n${stderr.slice(-2000)}`);
      if (Date.now() > until) throw new Error(`${cmd}: timed out waiting:\n${stderr.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (e) {
    child.kill('SIGKILL');
    await closed;
    throw e;
  }
  child.kill('SIGTERM');
  const code = await closed;
  return { code, stdout, stderr, firstOutputMs: undefined };
}

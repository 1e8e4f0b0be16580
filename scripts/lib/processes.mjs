/* global fetch, AbortSignal */
// Child processes and servers for the scripts that run the shipped processes against real servers
// (scripts/faults.mjs, scripts/fleet-demo.mjs): each child in its own process group with its output in a
// log file and its unexpected exit recorded, bounded waits, OS-chosen ports, the repo's server scripts
// (scripts/kafka.sh, scripts/clickhouse-server.sh) and ClickHouse's HTTP interface.
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '../..');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** Polls `fn` until it returns something truthy (returned); throws naming `what` and the last error after `timeoutMs`. */
export async function waitFor(what, fn, timeoutMs, everyMs = 250) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? ` (${last.message})` : ''}`);
}

/** A child process in its own process group, stdout+stderr to a log file; unexpected exits are recorded. */
export class Proc {
  static all = new Set();
  static deaths = [];
  /** `stdio`: extra entries after stdin/stdout/stderr (e.g. ['ipc'] for a child that talks over IPC). */
  constructor(name, cmd, args, { env = {}, logDir, stdio = [] }) {
    this.name = name;
    this.logFile = join(logDir, `${name}.log`);
    const fd = openSync(this.logFile, 'a');
    this.child = spawn(cmd, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', fd, fd, ...stdio], detached: true });
    closeSync(fd);
    this.expectExit = false;
    this.exited = new Promise((res) => this.child.on('exit', (code, sig) => {
      Proc.all.delete(this);
      this.exit = { code, sig };
      if (!this.expectExit) Proc.deaths.push({ name, code, sig, at: new Date().toISOString() });
      res(this.exit);
    }));
    Proc.all.add(this);
  }
  get alive() {
    return this.exit === undefined;
  }
  /** Signals the process group; waits up to `ms` for the exit, then SIGKILLs the group. */
  async stop(sig = 'SIGTERM', ms = 8000) {
    this.expectExit = true;
    if (!this.alive) return this.exit;
    try {
      process.kill(-this.child.pid, sig);
    } catch { /* gone */ }
    const t = await Promise.race([this.exited, sleep(ms).then(() => undefined)]);
    if (t) return t;
    try {
      process.kill(-this.child.pid, 'SIGKILL');
    } catch { /* gone */ }
    return Promise.race([this.exited, sleep(3000)]);
  }
  log() {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }
}

/** Alive and not a zombie (servers started by the scripts are re-parented to an init that may not reap them). */
export function pidAlive(pid) {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** SIGKILLs every Proc's process group now (an exit handler's last resort). */
export function killAllNow() {
  for (const p of Proc.all) {
    p.expectExit = true;
    try {
      process.kill(-p.child.pid, 'SIGKILL');
    } catch { /* gone */ }
  }
}

/** Runs scripts/NAME with `args` (bounded); `{ ok, out: last stdout line }` or `{ ok: false, why }`. */
export function script(name, args, timeoutS) {
  const r = spawnSync('bash', [join(root, 'scripts', name), ...args], { cwd: root, encoding: 'utf8', timeout: timeoutS * 1000, killSignal: 'SIGKILL' });
  const out = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  if (r.error || r.status !== 0) return { ok: false, why: `${name} ${args.join(' ')}: ${r.error?.message ?? `exit ${r.status}`}: ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}` };
  return { ok: true, out };
}

/** Rows of one SELECT over ClickHouse's HTTP interface (FORMAT JSON; 64-bit integers come as strings). */
export async function chQuery(url, db, sql) {
  const u = new URL(url);
  if (db) u.searchParams.set('database', db);
  const r = await fetch(u, { method: 'POST', body: `${sql} FORMAT JSON`, signal: AbortSignal.timeout(10000) });
  const text = await r.text();
  if (!r.ok) throw new Error(`ClickHouse ${r.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text).data;
}

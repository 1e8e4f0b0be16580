/**
 * Who holds a chDB data directory.
 *
 * ClickHouse (src/Common/StatusFile.cpp), and so chDB, takes `flock(fd, LOCK_EX | LOCK_NB)` on
 * `<data dir>/status` when it opens a directory and writes the holder into it:
 *   "PID: 1185\nStarted at: 2026-12-05 13:22:07\nRevision: 54513\n"
 * A second process fails with "Code: 76. Cannot lock file .../status. Another server instance in same
 * directory is already running", which chDB prints to stderr and does not pass on to the caller.
 * The file stays after a crash or a kill, so its PID alone does not prove a holder: the lock does.
 * proc(5) /proc/locks lists held locks, one a line:
 *   "1: FLOCK  ADVISORY  WRITE 1185 fe:00:9977858 0 EOF"   (id, type, mode, access, pid, maj:min:inode, start, end)
 * (a blocked waiter's line has "->" after the id). We match the status file's inode.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface ChdbDirHolder {
  /** PID of the process holding the lock, as this process sees it (0 when unknown). */
  pid: number;
  /** Its command line, when readable. */
  command?: string;
  /** "Started at" from the status file. */
  since?: string;
}

export interface ChdbDirLockProbe {
  /** Reads a file's text; throws when it cannot. */
  readText(path: string): string;
  /** The inode of a file; throws when it does not exist. */
  inode(path: string): number;
  readonly selfPid: number;
}

export const procLockProbe: ChdbDirLockProbe = {
  readText: (p) => readFileSync(p, 'utf8'),
  inode: (p) => statSync(p).ino,
  selfPid: process.pid,
};

/** The process that holds `dataDir` open with chDB/ClickHouse, or undefined when none does (or it cannot be told). */
export function chdbDirHolder(dataDir: string, probe: ChdbDirLockProbe = procLockProbe): ChdbDirHolder | undefined {
  const statusFile = join(dataDir, 'status');
  let ino: number;
  try {
    ino = probe.inode(statusFile);
  } catch {
    return undefined; // never opened, or closed cleanly (ClickHouse removes the file on shutdown)
  }
  let locks: string;
  try {
    locks = probe.readText('/proc/locks');
  } catch {
    return undefined; // not Linux: the open itself will fail and say so
  }
  let pid: number | undefined;
  for (const line of locks.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[1] === '->') continue; // a waiter, not a holder
    if (f[1] !== 'FLOCK' || f[3] !== 'WRITE') continue;
    const inode = Number((f[5] ?? '').split(':')[2]);
    if (inode !== ino) continue;
    pid = Number(f[4]);
    break;
  }
  if (pid === undefined || pid === probe.selfPid) return undefined;
  const holder: ChdbDirHolder = { pid: Number.isInteger(pid) && pid > 0 ? pid : 0 };
  try {
    const status = probe.readText(statusFile);
    const since = /^Started at: (.+)$/m.exec(status)?.[1];
    if (since) holder.since = since;
    if (holder.pid === 0) holder.pid = Number(/^PID: (\d+)$/m.exec(status)?.[1] ?? 0); // pid namespaces: /proc/locks shows 0
  } catch {
    // unreadable status file: the lock is enough
  }
  if (holder.pid > 0) {
    try {
      const cmd = probe.readText(`/proc/${holder.pid}/cmdline`).split('\0').filter(Boolean).join(' ');
      if (cmd) holder.command = cmd.length > 120 ? `${cmd.slice(0, 120)}…` : cmd;
    } catch {
      // gone meanwhile, or another pid namespace
    }
  }
  return holder;
}

/** One line for an error message: "another process (PID 1185: node collector.js, since 2026-12-05 13:22:07)". */
export function describeHolder(h: ChdbDirHolder): string {
  const who = h.pid > 0 ? `PID ${h.pid}${h.command ? `: ${h.command}` : ''}` : 'PID unknown';
  return `another process (${who}${h.since ? `, since ${h.since}` : ''})`;
}

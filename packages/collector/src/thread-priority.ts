/**
 * The collector's training runs at the lowest CPU priority, so it only takes what ingest leaves.
 *
 * Linux: a thread is a task with its own id (tid), and setpriority(2) on a tid changes that task's nice
 * value only — "PRIO_PROCESS … a process ID … (in the Linux implementation, this is the thread ID)",
 * the NPTL deviation in sched(7)/setpriority(2): the nice value is a per-thread attribute. A worker
 * thread finds its tid from /proc/thread-self (a link to `<pid>/task/<tid>`, proc(5), Linux ≥ 3.17) and
 * renices itself with os.setPriority(tid, nice); /proc/<pid>/task/<tid>/stat (field 19, `nice`) shows
 * the result. Raising the nice value (lowering the priority) needs no privilege; the thread ends with
 * its job, so nothing has to lower it back. Elsewhere (no /proc/thread-self, another OS) nothing
 * changes and the result says why: training then runs at normal priority, as before.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';

/** CFS's weakest weight (nice 19 ≈ 1.5 % of a nice-0 thread's share when both want the CPU). */
export const LOWEST_NICE = 19;

export type ThreadPriorityResult =
  | { readonly kind: 'lowered'; readonly tid: number; readonly nice: number }
  | { readonly kind: 'unchanged'; readonly tid?: number; readonly why: string };

/** The platform calls, injectable for tests. */
export interface ThreadPriorityIo {
  platform: NodeJS.Platform;
  readlink: (path: string) => string;
  setPriority: (tid: number, nice: number) => void;
}

const realIo: ThreadPriorityIo = { platform: process.platform, readlink: (p) => readlinkSync(p), setPriority: (tid, nice) => setPriority(tid, nice) };

/** This thread's kernel task id (Linux), from /proc/thread-self → `<pid>/task/<tid>`. */
export function currentThreadId(io: Pick<ThreadPriorityIo, 'readlink'> = realIo): number | undefined {
  let link: string;
  try {
    link = io.readlink('/proc/thread-self');
  } catch {
    return undefined;
  }
  const m = /^(\d+)\/task\/(\d+)$/.exec(link);
  return m ? Number(m[2]) : undefined;
}

/**
 * Sets the calling thread's nice value to `nice` (default 19, the lowest priority); only this thread,
 * not the process. 0 leaves it as it is. Never throws: a platform without per-thread priorities or a
 * refusal (EPERM/EACCES: lowering the nice value without CAP_SYS_NICE) is `unchanged` with the reason.
 */
export function lowerThisThreadPriority(nice: number = LOWEST_NICE, io: ThreadPriorityIo = realIo): ThreadPriorityResult {
  if (nice === 0) return { kind: 'unchanged', why: 'nice 0 configured' };
  if (!Number.isInteger(nice) || nice < -20 || nice > 19) return { kind: 'unchanged', why: `nice ${nice} is not an integer in -20..19` };
  if (io.platform !== 'linux') return { kind: 'unchanged', why: `per-thread priorities are Linux-only here (platform ${io.platform})` };
  const tid = currentThreadId(io);
  if (tid === undefined) return { kind: 'unchanged', why: 'no /proc/thread-self (Linux < 3.17 or /proc not mounted)' };
  try {
    io.setPriority(tid, nice);
  } catch (e) {
    return { kind: 'unchanged', tid, why: `setpriority(${tid}, ${nice}) refused: ${(e as Error).message}` };
  }
  return { kind: 'lowered', tid, nice };
}

/** The nice value of task `tid` of process `pid`, from /proc/<pid>/task/<tid>/stat (field 19), or undefined. */
export function threadNice(pid: number, tid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "tid (comm) state ppid …": comm may hold spaces and parentheses, so split after the last ')'.
  // Fields after it start at field 3 (state); nice is field 19, the 17th of them.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const v = Number(rest[16]);
  return Number.isFinite(v) ? v : undefined;
}

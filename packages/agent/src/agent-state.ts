/**
 * The agent's identity across restarts: the last frame sequence number, persisted in the spool dir
 * (write temp file, rename) so a restarted agent continues the sequence. boot_id is new on every start
 * (counters may have restarted). The write is not fsync'd each round (that would put a disk flush in
 * every sampling round); after a host crash the sequence is instead recovered from the spool, whose
 * records are fsync'd before any frame leaves the host: seq = max(state file, last spooled frame).
 * So a seq is never reused for a frame that was sent.
 */
import { closeSync, constants, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { WattsplitError } from '@wattsplit/wire';

export interface AgentStateFile {
  hostId: string;
  seq: number;
  bootId: string;
  /** The BMC power integrator (when the BMC gives power only), valid for `bootId`'s monotonic clock. */
  bmc?: { j: number; w: number; monoNs: number };
}

export const AGENT_STATE_FILE = 'agent-state.json';

export function loadAgentState(dir: string): AgentStateFile | undefined {
  const file = join(dir, AGENT_STATE_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new WattsplitError('SPOOL_CORRUPT', `${file}: not JSON (${(e as Error).message}); move it away to start a new sequence`, { cause: e, details: { file } });
  }
  const o = j as Partial<AgentStateFile>;
  if (typeof o.seq !== 'number' || !Number.isSafeInteger(o.seq) || o.seq < 0) {
    throw new WattsplitError('SPOOL_CORRUPT', `${file}: seq=${JSON.stringify(o.seq)} is not a non-negative integer`, { details: { file, field: 'seq', value: o.seq } });
  }
  const out: AgentStateFile = { hostId: String(o.hostId ?? ''), seq: o.seq, bootId: String(o.bootId ?? '') };
  const b = o.bmc;
  if (b && typeof b === 'object' && [b.j, b.w, b.monoNs].every((x) => typeof x === 'number' && Number.isFinite(x))) out.bmc = { j: b.j, w: b.w, monoNs: b.monoNs };
  return out;
}

/**
 * Keeps the state file open and overwrites it in place each round (one pwrite of a fixed-size record,
 * no rename, no mkdir): the per-round cost is one syscall.
 */
export class AgentStateWriter {
  private fd: number | undefined;
  private readonly file: string;

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
    this.file = join(dir, AGENT_STATE_FILE);
  }

  write(st: AgentStateFile): void {
    this.fd ??= openSync(this.file, constants.O_RDWR | constants.O_CREAT, 0o644);
    if (this.fd === undefined) return;
    // pad to a fixed width so an in-place overwrite never leaves the tail of a longer old record
    const text = JSON.stringify(st).padEnd(384, ' ');
    writeSync(this.fd, text, 0);
    ftruncateSync(this.fd, Buffer.byteLength(text));
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

export function saveAgentState(dir: string, st: AgentStateFile, fsync = false): void {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, AGENT_STATE_FILE);
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, JSON.stringify(st));
    if (fsync) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/**
 * The agent's identity across restarts: the last frame sequence number, persisted in the spool dir so a
 * restarted agent continues the sequence. The file is overwritten in place each round without fsync (no
 * disk flush in every sampling round): an agent crash keeps it (the page cache does), a power loss may not.
 * Hence the reservation: before a seq above `seqReserved` is handed out, the file is written with
 * `seqReserved` = seq + SEQ_RESERVATION and fsync'd, so the copy on disk always has a `seqReserved` at or
 * above every seq handed out. A start that cannot be sure the file is current (not `clean`, and not the same
 * kernel boot as the agent that wrote it: a reboot, maybe after a power loss) continues after
 * `seqReserved`, so a seq is never reused for a frame that was sent; a clean stop (`clean`, fsync'd) or an
 * agent restart on the same kernel boot continues exactly after `seq`.
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
  /** No seq above this was handed out (the file was fsync'd with it before). */
  seqReserved?: number;
  /** Written (and fsync'd) by a clean stop: `seq` is exact. */
  clean?: boolean;
}

/** Seqs reserved per fsync of the state file: one fsync per this many frames. */
export const SEQ_RESERVATION = 600;

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
  if (typeof o.seqReserved === 'number' && Number.isSafeInteger(o.seqReserved) && o.seqReserved >= 0) out.seqReserved = o.seqReserved;
  if (o.clean === true) out.clean = true;
  return out;
}

/**
 * Keeps the state file open and overwrites it in place each round (one pwrite of a fixed-size record,
 * no rename, no mkdir): the per-round cost is one syscall; `durable` adds an fsync.
 */
export class AgentStateWriter {
  private fd: number | undefined;
  private length = -1;
  private readonly file: string;

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
    this.file = join(dir, AGENT_STATE_FILE);
  }

  write(st: AgentStateFile, durable = false): void {
    this.fd ??= openSync(this.file, constants.O_RDWR | constants.O_CREAT, 0o644);
    if (this.fd === undefined) return;
    // pad to a fixed width so an in-place overwrite never leaves the tail of a longer old record
    const text = JSON.stringify(st).padEnd(384, ' ');
    writeSync(this.fd, text, 0);
    const length = Buffer.byteLength(text);
    if (length !== this.length) ftruncateSync(this.fd, length);
    this.length = length;
    if (durable) fsyncSync(this.fd);
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

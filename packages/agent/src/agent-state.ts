/**
 * The agent's durable identity across restarts: the last frame sequence number, persisted in the
 * spool dir (write temp file, fsync, rename) so a restarted agent continues the sequence and never
 * reuses a seq for different content. boot_id is new on every start (counters may have restarted).
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { WattsplitError } from '@wattsplit/wire';

export interface AgentStateFile {
  hostId: string;
  seq: number;
  bootId: string;
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
  return { hostId: String(o.hostId ?? ''), seq: o.seq, bootId: String(o.bootId ?? '') };
}

export function saveAgentState(dir: string, st: AgentStateFile): void {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, AGENT_STATE_FILE);
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, JSON.stringify(st));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

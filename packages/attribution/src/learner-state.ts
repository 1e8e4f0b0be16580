/**
 * Reading persisted learner state (`LearnerHostState`, one `learner_state` row per learner and host) back
 * into a learner. The state came from storage, so it is untrusted input: every field is checked and a bad
 * one is refused with LEARNER_STATE_INVALID naming the learner, the host, the field path and the value;
 * nothing is half-imported (learners validate the whole state before they replace anything).
 */
import { WattsplitError } from '@wattsplit/wire';
import type { LearnerHostState } from './types.js';

export const LEARNER_STATE_VERSION = 1;

/** Field checker bound to one state; every method throws LEARNER_STATE_INVALID naming `where` and the path. */
export class LearnerStateReader {
  constructor(private readonly where: string) {}

  fail(path: string, what: string, value: unknown): never {
    let shown: string;
    try {
      shown = JSON.stringify(value) ?? String(value);
    } catch {
      shown = String(value);
    }
    if (shown.length > 80) shown = `${shown.slice(0, 77)}...`;
    throw new WattsplitError('LEARNER_STATE_INVALID', `${this.where}: field "${path}" ${what}, got ${shown}`, { details: { field: path, value: shown } });
  }

  object(v: unknown, path: string): Record<string, unknown> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(path, 'must be an object', v);
    return v as Record<string, unknown>;
  }

  array(v: unknown, path: string, length?: number): unknown[] {
    if (!Array.isArray(v)) this.fail(path, 'must be an array', v);
    if (length !== undefined && v.length !== length) this.fail(path, `must have ${length} elements (has ${v.length})`, v);
    return v;
  }

  number(v: unknown, path: string, opts: { min?: number; integer?: boolean } = {}): number {
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(path, 'must be a finite number', v);
    if (opts.integer && !Number.isInteger(v)) this.fail(path, 'must be an integer', v);
    if (opts.min !== undefined && v < opts.min) this.fail(path, `must be ≥ ${opts.min}`, v);
    return v;
  }

  numbers(v: unknown, path: string, length?: number): number[] {
    return this.array(v, path, length).map((x, i) => this.number(x, `${path}[${i}]`));
  }

  string(v: unknown, path: string): string {
    if (typeof v !== 'string') this.fail(path, 'must be a string', v);
    return v;
  }

  boolean(v: unknown, path: string): boolean {
    if (typeof v !== 'boolean') this.fail(path, 'must be true or false', v);
    return v;
  }

  /** `[[name, number], ...]` (order kept: it decides column order in fits). */
  pairs(v: unknown, path: string): Array<[string, number]> {
    return this.array(v, path).map((p, i) => {
      const a = this.array(p, `${path}[${i}]`, 2);
      return [this.string(a[0], `${path}[${i}][0]`), this.number(a[1], `${path}[${i}][1]`)];
    });
  }
}

/**
 * Parses (when given JSON text) and checks the envelope of a persisted state: version, learner name, host.
 * Returns the state object and a reader for the learner's own fields.
 */
export function openLearnerState(state: unknown, learner: string, hostId: string): { s: Record<string, unknown>; r: LearnerStateReader; lastSeq: number } {
  const r = new LearnerStateReader(`${learner} state of host ${JSON.stringify(hostId)}`);
  let v = state;
  if (typeof v === 'string') {
    try {
      v = JSON.parse(v) as unknown;
    } catch (e) {
      throw new WattsplitError('LEARNER_STATE_INVALID', `${learner} state of host ${JSON.stringify(hostId)}: not valid JSON (${(e as Error).message})`, { cause: e, details: { field: '' } });
    }
  }
  const s = r.object(v, '(state)');
  if (s.v !== LEARNER_STATE_VERSION) r.fail('v', `must be ${LEARNER_STATE_VERSION} (a state written by another version of wattsplit is not read)`, s.v);
  if (s.learner !== learner) r.fail('learner', `must be ${JSON.stringify(learner)}`, s.learner);
  if (s.hostId !== hostId) r.fail('hostId', `must be ${JSON.stringify(hostId)} (the host it is imported for)`, s.hostId);
  const lastSeq = r.number(s.lastSeq, 'lastSeq', { integer: true });
  return { s, r, lastSeq };
}

/** The common part of every exported state. */
export function learnerStateEnvelope(learner: string, hostId: string, lastSeq: number): LearnerHostState {
  return { v: LEARNER_STATE_VERSION, learner, hostId, lastSeq };
}

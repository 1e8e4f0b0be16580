/**
 * ModelStore: the models' side of the store (migration 0006): versioned model artefacts, activation
 * history, the training lease, and online learners' state. Every collector replica reads the same rows,
 * so all apply the same version; a restart or rebalance loses nothing.
 *
 * - `model_versions`: one row per artefact; `model_id` (random) tells apart two artefacts that got the
 *   same version number.
 * - `model_activations`: append-only; a row says "from `effective_from_ns` (interval end time) on,
 *   class C is attributed with version V (model_id M)". Promote and rollback append rows too. The
 *   effective time, not the moment a replica notices, decides which version an interval gets: replicas
 *   and replays agree.
 * - `model_leases`: who trains a class. ClickHouse has no compare-and-set, so a lease is taken by
 *   appending a row and reading back after a settle delay: the row with the latest `taken_at_ms` (ties:
 *   the larger holder id) holds it. Two replicas racing both see both rows once the delay has passed
 *   and agree on the winner; the holder re-checks before it commits a version (fencing), and the model
 *   id in the activation keeps even a lost race from mixing two artefacts.
 * - `learner_state`: per learner and key (host), the JSON state and the last interval seq observed;
 *   ReplacingMergeTree(seq): the newest wins, an older save never replaces a newer one.
 */
import { randomUUID } from 'node:crypto';
import { WattsplitError, type TransportResult } from '@wattsplit/wire';
import type { Store } from './store.js';
import { int, str } from './transport.js';

export interface ModelVersionMeta {
  hardwareClass: string;
  version: number;
  modelId: string;
  trainedAtMs: number;
  trainedBy: string;
  /** first | new_class | drift | period | manual */
  reason: string;
  windowFromNs: number;
  windowToNs: number;
  intervals: number;
  trainSeconds: number;
  residualRmsW: { rapl: number; bmc_rest: number };
  /** The previous version's drift ratio that triggered this training (0 when none). */
  driftRatio: number;
}

export interface ModelVersionRow extends ModelVersionMeta {
  modelJson: string;
}

export interface ModelActivation {
  hardwareClass: string;
  seq: number;
  version: number;
  modelId: string;
  effectiveFromNs: number;
  activatedAtMs: number;
  activatedBy: string;
  /** train | promote | rollback */
  action: string;
  note: string;
}

export interface LearnerStateRow {
  learner: string;
  key: string;
  seq: number;
  stateJson: string;
}

type Row = Record<string, unknown>;
const num = (v: unknown): number => Number(v ?? 0);
const text = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'bigint' ? String(v) : v == null ? '' : JSON.stringify(v));

/** A model_versions row's metadata. */
function metaOf(r: Row): ModelVersionMeta {
  return {
    hardwareClass: text(r.hardware_class),
    version: num(r.version),
    modelId: text(r.model_id),
    trainedAtMs: num(r.trained_at_ms),
    trainedBy: text(r.trained_by),
    reason: text(r.reason),
    windowFromNs: num(r.window_from_ns),
    windowToNs: num(r.window_to_ns),
    intervals: num(r.intervals),
    trainSeconds: num(r.train_seconds),
    residualRmsW: { rapl: num(r.residual_rapl_w), bmc_rest: num(r.residual_bmc_rest_w) },
    driftRatio: num(r.drift_ratio),
  };
}

function check(r: TransportResult, what: string): void {
  if (r.kind !== 'ok') throw new WattsplitError(r.error.code, `${what}: ${r.error.message}`, { cause: r.error, retriable: r.kind === 'retryable', details: r.error.details });
}

export class ModelStore {
  constructor(
    private readonly store: Store,
    private readonly now: () => number = Date.now,
  ) {}

  private async rows(sql: string): Promise<Row[]> {
    return (await this.store.query(sql, 'JSONEachRow')).rows;
  }

  /** A new random model id. */
  static newModelId(): string {
    return randomUUID();
  }

  /** The next version number of a class (1 for the first). */
  async nextVersion(hardwareClass: string): Promise<number> {
    const r = (await this.rows(`SELECT max(version) AS top FROM model_versions WHERE hardware_class = ${str(hardwareClass)}`))[0];
    return num(r?.top) + 1;
  }

  async saveVersion(m: ModelVersionRow): Promise<void> {
    check(
      await this.store.insertRows('model_versions', [
        {
          hardware_class: m.hardwareClass,
          version: m.version,
          model_id: m.modelId,
          trained_at_ms: int(m.trainedAtMs, 'trained_at_ms'),
          trained_by: m.trainedBy,
          reason: m.reason,
          window_from_ns: int(m.windowFromNs, 'window_from_ns'),
          window_to_ns: int(m.windowToNs, 'window_to_ns'),
          intervals: m.intervals,
          train_seconds: m.trainSeconds,
          residual_rapl_w: m.residualRmsW.rapl,
          residual_bmc_rest_w: m.residualRmsW.bmc_rest,
          drift_ratio: m.driftRatio,
          model_json: m.modelJson,
        },
      ]),
      `save model ${m.hardwareClass} v${m.version}`,
    );
  }

  /** Versions (metadata only), newest first; one class or all. */
  async versions(hardwareClass?: string): Promise<ModelVersionMeta[]> {
    const where = hardwareClass === undefined ? '' : `WHERE hardware_class = ${str(hardwareClass)}`;
    const rows = await this.rows(
      `SELECT hardware_class, version, model_id, trained_at_ms, trained_by, reason, window_from_ns, window_to_ns, intervals, train_seconds, residual_rapl_w, residual_bmc_rest_w, drift_ratio
       FROM model_versions FINAL ${where} ORDER BY hardware_class, version DESC, trained_at_ms DESC`,
    );
    return rows.map(metaOf);
  }

  /** The artefact of one version (the given model id, else the newest artefact with that number). */
  async loadVersion(hardwareClass: string, version: number, modelId?: string): Promise<ModelVersionRow | undefined> {
    const byId = modelId === undefined ? '' : ` AND model_id = ${str(modelId)}`;
    const r = (
      await this.rows(
        `SELECT hardware_class, version, model_id, trained_at_ms, trained_by, reason, window_from_ns, window_to_ns, intervals, train_seconds, residual_rapl_w, residual_bmc_rest_w, drift_ratio, model_json
         FROM model_versions FINAL WHERE hardware_class = ${str(hardwareClass)} AND version = ${int(version, 'version')}${byId} ORDER BY trained_at_ms DESC LIMIT 1`,
      )
    )[0];
    if (!r) return undefined;
    return { ...metaOf(r), modelJson: text(r.model_json) };
  }

  /** Appends an activation; its seq is the wall clock in ms, above every earlier one of the class. */
  async activate(a: Omit<ModelActivation, 'seq' | 'activatedAtMs'>): Promise<ModelActivation> {
    const last = (await this.rows(`SELECT max(seq) AS top FROM model_activations WHERE hardware_class = ${str(a.hardwareClass)}`))[0];
    const at = this.now();
    const row: ModelActivation = { ...a, seq: Math.max(at, num(last?.top) + 1), activatedAtMs: at };
    check(
      await this.store.insertRows('model_activations', [
        {
          hardware_class: row.hardwareClass,
          seq: row.seq,
          version: row.version,
          model_id: row.modelId,
          effective_from_ns: int(row.effectiveFromNs, 'effective_from_ns'),
          activated_at_ms: row.activatedAtMs,
          activated_by: row.activatedBy,
          action: row.action,
          note: row.note,
        },
      ]),
      `activate ${a.hardwareClass} v${a.version}`,
    );
    return row;
  }

  /** Activation history, oldest first; one class or all. */
  async activations(hardwareClass?: string): Promise<ModelActivation[]> {
    const where = hardwareClass === undefined ? '' : `WHERE hardware_class = ${str(hardwareClass)}`;
    const rows = await this.rows(
      `SELECT hardware_class, seq, version, model_id, effective_from_ns, activated_at_ms, activated_by, action, note FROM model_activations ${where} ORDER BY hardware_class, seq`,
    );
    return rows.map((r) => ({
      hardwareClass: text(r.hardware_class),
      seq: num(r.seq),
      version: num(r.version),
      modelId: text(r.model_id),
      effectiveFromNs: num(r.effective_from_ns),
      activatedAtMs: num(r.activated_at_ms),
      activatedBy: text(r.activated_by),
      action: text(r.action),
      note: text(r.note),
    }));
  }

  /** The lease's current holder and expiry, if any row exists. */
  async leaseHolder(name: string): Promise<{ holder: string; expiresAtMs: number } | undefined> {
    const r = (await this.rows(`SELECT holder, expires_at_ms FROM model_leases WHERE name = ${str(name)} ORDER BY taken_at_ms DESC, holder DESC LIMIT 1`))[0];
    if (!r) return undefined;
    return { holder: text(r.holder), expiresAtMs: num(r.expires_at_ms) };
  }

  /**
   * Takes or renews the lease `name` for `ttlMs` when it is free, expired or already ours; waits
   * `settleMs` and reads back: true when we hold it then. Throws like query() when the store is down.
   */
  async tryLease(name: string, holder: string, ttlMs: number, settleMs = 500): Promise<boolean> {
    const cur = await this.leaseHolder(name);
    const now = this.now();
    if (cur && cur.holder !== holder && cur.expiresAtMs > now) return false;
    check(await this.store.insertRows('model_leases', [{ name, holder, taken_at_ms: now, expires_at_ms: now + ttlMs }]), `lease ${name}`);
    if (settleMs > 0) await new Promise((r) => setTimeout(r, settleMs));
    const after = await this.leaseHolder(name);
    return after?.holder === holder && after.expiresAtMs > this.now();
  }

  /** Still ours and not expired (checked right before committing what the lease guards). */
  async holdsLease(name: string, holder: string): Promise<boolean> {
    const cur = await this.leaseHolder(name);
    return cur?.holder === holder && cur.expiresAtMs > this.now();
  }

  /** Gives the lease up at once (an expired row of ours). */
  async releaseLease(name: string, holder: string): Promise<void> {
    if (!(await this.holdsLease(name, holder))) return;
    const now = this.now();
    check(await this.store.insertRows('model_leases', [{ name, holder, taken_at_ms: now, expires_at_ms: now }]), `release lease ${name}`);
  }

  async saveLearnerStates(rows: readonly LearnerStateRow[]): Promise<TransportResult> {
    return this.store.insertRows(
      'learner_state',
      rows.map((r) => ({ learner: r.learner, key: r.key, seq: int(r.seq, 'learner_state.seq'), saved_at_ms: this.now(), state_json: r.stateJson })),
    );
  }

  /** The newest saved state of every learner for one key. */
  async loadLearnerStates(key: string): Promise<LearnerStateRow[]> {
    const rows = await this.rows(`SELECT learner, key, seq, state_json FROM learner_state FINAL WHERE key = ${str(key)} ORDER BY learner`);
    return rows.map((r) => ({ learner: text(r.learner), key: text(r.key), seq: num(r.seq), stateJson: text(r.state_json) }));
  }

  /** loadLearnerStates of many keys in one query (per IN list of 500): every key asked for has an entry. */
  async loadLearnerStatesOf(keys: readonly string[]): Promise<Map<string, LearnerStateRow[]>> {
    const out = new Map<string, LearnerStateRow[]>();
    const all = [...new Set(keys)];
    for (const k of all) out.set(k, []);
    for (let i = 0; i < all.length; i += 500) {
      const list = all.slice(i, i + 500).map(str).join(', ');
      const rows = await this.rows(`SELECT learner, key, seq, state_json FROM learner_state FINAL WHERE key IN (${list}) ORDER BY key, learner`);
      for (const r of rows) out.get(text(r.key))?.push({ learner: text(r.learner), key: text(r.key), seq: num(r.seq), stateJson: text(r.state_json) });
    }
    return out;
  }

  /** The newest saved state of one learner for one key. */
  async loadLearnerState(learner: string, key: string): Promise<LearnerStateRow | undefined> {
    const r = (await this.rows(`SELECT learner, key, seq, state_json FROM learner_state FINAL WHERE learner = ${str(learner)} AND key = ${str(key)} ORDER BY seq DESC LIMIT 1`))[0];
    if (!r) return undefined;
    return { learner: text(r.learner), key: text(r.key), seq: num(r.seq), stateJson: text(r.state_json) };
  }
}

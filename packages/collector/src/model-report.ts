/**
 * What the store says about the models, as operators read it: `wattsplit models list|show` and the REST
 * API (`GET /api/models`, `GET /api/models/:class`) print the same objects, read straight from the store
 * (model_activations + model_versions + host_samples), so every replica and the CLI answer alike.
 *
 * "In force" follows ModelCatalog's rule (model-catalog.ts): among a class's activations whose effective
 * time is at or before now, the latest decision (highest seq). A later decision whose effective time has
 * not come yet is `pending`. A class with stored history and no activation in force is a cold start: its
 * intervals are attributed by the fallback (cpu_share) until a model applies.
 */
import { checkModelJson, MODEL_SOURCES } from '@wattsplit/models';
import { ModelStore, type ModelActivation, type ModelVersionMeta, type Store } from '@wattsplit/store';
import { WattsplitError } from '@wattsplit/wire';

export interface ModelActivationView {
  seq: number;
  version: number;
  model_id: string;
  action: string;
  activated_at: string;
  activated_by: string;
  effective_from: string;
  effective_from_ns: number;
  note: string;
}

export interface ModelVersionView {
  version: number;
  model_id: string;
  trained_at: string;
  trained_by: string;
  reason: string;
  intervals: number;
  window_from: string;
  window_to: string;
  train_seconds: number;
  residual_rms_w: { rapl: number; bmc_rest: number };
  /** Drift ratio of the previous version that triggered this training (0 when none). */
  drift_ratio: number;
}

/** One hardware class in `models list` / `GET /api/models`. */
export interface ModelListEntry {
  hardware_class: string;
  /** in_force: a version applies now; pending: only a future activation; cold_start: none at all. */
  status: 'in_force' | 'pending' | 'cold_start';
  /** The version in force now (null: none). */
  version: number | null;
  model_id: string | null;
  effective_from: string | null;
  /** How the version in force was activated: train | promote | rollback. */
  action: string | null;
  trained_at: string | null;
  trained_by: string | null;
  reason: string | null;
  intervals: number | null;
  residual_rms_w: { rapl: number; bmc_rest: number } | null;
  /** Seconds since the version in force was trained. */
  age_s: number | null;
  /** A later activation that applies from a future interval end. */
  pending: { version: number; action: string; effective_from: string } | null;
  /** Stored versions of the class. */
  versions: number;
  /** Host intervals of the class in the store (host_samples). */
  stored_intervals: number;
}

/** One version of one class in `models show` / `GET /api/models/:class`. */
export interface ModelDetail {
  hardware_class: string;
  /** The version in force now (null: none). */
  in_force_version: number | null;
  version: ModelVersionView & { in_force: boolean };
  /** What the artefact holds. */
  artefact: {
    backend: string;
    format_version: number;
    train_intervals: number;
    sockets: number | null;
    sources: Record<string, { static_w: number; residual_rms_w: number; mean_power_w: number; vms_known: number }>;
    /** VMs (and the hypervisor term) with a learned signature of their own; others get the MLP (cold start per VM). */
    vms_known: number;
  };
  /** Every activation of the class, oldest first. */
  activations: ModelActivationView[];
  /** Every stored version of the class, newest first. */
  versions: { version: number; trained_at: string; reason: string; trained_by: string }[];
}

const isoMs = (ms: number) => new Date(ms).toISOString();
const isoNs = (ns: number) => new Date(Math.floor(ns / 1e6)).toISOString();

function activationView(a: ModelActivation): ModelActivationView {
  return {
    seq: a.seq,
    version: a.version,
    model_id: a.modelId,
    action: a.action,
    activated_at: isoMs(a.activatedAtMs),
    activated_by: a.activatedBy,
    effective_from: isoNs(a.effectiveFromNs),
    effective_from_ns: a.effectiveFromNs,
    note: a.note,
  };
}

function versionView(v: ModelVersionMeta): ModelVersionView {
  return {
    version: v.version,
    model_id: v.modelId,
    trained_at: isoMs(v.trainedAtMs),
    trained_by: v.trainedBy,
    reason: v.reason,
    intervals: v.intervals,
    window_from: isoNs(v.windowFromNs),
    window_to: isoNs(v.windowToNs),
    train_seconds: v.trainSeconds,
    residual_rms_w: v.residualRmsW,
    drift_ratio: v.driftRatio,
  };
}

/** The activation of a class in force at `atNs` (latest decision already effective), and one pending after it. */
function inForce(acts: readonly ModelActivation[], atNs: number): { current: ModelActivation | undefined; pending: ModelActivation | undefined } {
  const sorted = [...acts].sort((a, b) => a.seq - b.seq);
  let current: ModelActivation | undefined;
  for (let i = sorted.length - 1; i >= 0; i--) {
    if (sorted[i]!.effectiveFromNs <= atNs) {
      current = sorted[i];
      break;
    }
  }
  const latest = sorted[sorted.length - 1];
  return { current, pending: latest && latest !== current && latest.effectiveFromNs > atNs ? latest : undefined };
}

function metaOf(versions: readonly ModelVersionMeta[], a: ModelActivation): ModelVersionMeta | undefined {
  return versions.find((v) => v.version === a.version && (a.modelId === '' || v.modelId === a.modelId)) ?? versions.find((v) => v.version === a.version);
}

function groupBy<T extends { hardwareClass: string }>(xs: readonly T[]): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const x of xs) {
    const l = m.get(x.hardwareClass) ?? [];
    l.push(x);
    m.set(x.hardwareClass, l);
  }
  return m;
}

/** Host intervals stored per hardware class (the classes `ModelLifecycle.classes()` trains). */
async function storedIntervals(store: Store): Promise<Map<string, number>> {
  const rows = (await store.query(`SELECT hardware_class AS c, count() AS n FROM host_samples WHERE hardware_class != '' GROUP BY c ORDER BY c`, 'JSONEachRow')).rows;
  return new Map(rows.map((r) => [String(r.c as string), Number(r.n ?? 0)]));
}

/** Every hardware class with a model or with stored history, sorted by name. */
export async function listModels(store: Store, opts: { nowMs?: number } = {}): Promise<ModelListEntry[]> {
  const nowMs = opts.nowMs ?? Date.now();
  const models = new ModelStore(store);
  const [acts, versions, history] = await Promise.all([models.activations(), models.versions(), storedIntervals(store)]);
  const actsBy = groupBy(acts);
  const versionsBy = groupBy(versions);
  const classes = [...new Set([...actsBy.keys(), ...versionsBy.keys(), ...history.keys()])].sort();
  return classes.map((hc): ModelListEntry => {
    const vs = versionsBy.get(hc) ?? [];
    const { current, pending } = inForce(actsBy.get(hc) ?? [], nowMs * 1e6);
    const meta = current ? metaOf(vs, current) : undefined;
    return {
      hardware_class: hc,
      status: current ? 'in_force' : pending ? 'pending' : 'cold_start',
      version: current?.version ?? null,
      model_id: current?.modelId ?? null,
      effective_from: current ? isoNs(current.effectiveFromNs) : null,
      action: current?.action ?? null,
      trained_at: meta ? isoMs(meta.trainedAtMs) : null,
      trained_by: meta?.trainedBy ?? null,
      reason: meta?.reason ?? null,
      intervals: meta?.intervals ?? null,
      residual_rms_w: meta?.residualRmsW ?? null,
      age_s: meta ? Math.max(0, (nowMs - meta.trainedAtMs) / 1000) : null,
      pending: pending ? { version: pending.version, action: pending.action, effective_from: isoNs(pending.effectiveFromNs) } : null,
      versions: new Set(vs.map((v) => v.version)).size,
      stored_intervals: history.get(hc) ?? 0,
    };
  });
}

export function unknownModelClass(hardwareClass: string, known: readonly string[]): WattsplitError {
  return new WattsplitError('CONFIG_INVALID', `hardware class ${JSON.stringify(hardwareClass)} has no model versions; classes with versions: ${known.join(', ') || '(none: nothing trained yet)'}`, {
    details: { field: 'hardwareClass', value: hardwareClass, known },
  });
}

/**
 * One version of a class (default: the version in force now, else the latest activated, else the newest
 * stored). An unknown class or version is CONFIG_INVALID naming it and listing what exists.
 */
export async function describeModel(store: Store, hardwareClass: string, opts: { version?: number; nowMs?: number } = {}): Promise<ModelDetail> {
  const nowMs = opts.nowMs ?? Date.now();
  const models = new ModelStore(store);
  const versions = await models.versions(hardwareClass);
  if (versions.length === 0) {
    const known = [...new Set((await models.versions()).map((v) => v.hardwareClass))].sort();
    throw unknownModelClass(hardwareClass, known);
  }
  const acts = await models.activations(hardwareClass);
  const { current } = inForce(acts, nowMs * 1e6);
  const latest = acts[acts.length - 1];
  const wanted = opts.version ?? current?.version ?? latest?.version ?? versions[0]!.version;
  const byId = opts.version === undefined ? (current ?? latest)?.modelId : undefined;
  const row = await models.loadVersion(hardwareClass, wanted, byId || undefined);
  if (!row) {
    const have = [...new Set(versions.map((v) => v.version))].sort((a, b) => a - b);
    throw new WattsplitError('CONFIG_INVALID', `model ${hardwareClass} v${wanted} does not exist; versions: ${have.join(', ')}`, { details: { field: 'version', value: wanted, known: have } });
  }
  const model = checkModelJson(JSON.parse(row.modelJson) as unknown, `model_versions ${hardwareClass} v${wanted}`);
  const sources: ModelDetail['artefact']['sources'] = {};
  const known = new Set<string>();
  for (const s of MODEL_SOURCES) {
    const w = model.sources[s];
    const vms = Object.keys(w.vmCoreW ?? w.vm);
    for (const v of vms) known.add(v);
    sources[s] = { static_w: w.staticW, residual_rms_w: w.residualRmsW, mean_power_w: w.meanPowerW, vms_known: vms.length };
  }
  return {
    hardware_class: hardwareClass,
    in_force_version: current?.version ?? null,
    version: { ...versionView(row), in_force: current !== undefined && current.version === row.version && (current.modelId === '' || current.modelId === row.modelId) },
    artefact: { backend: model.backend, format_version: model.formatVersion, train_intervals: model.trainIntervals, sockets: model.placement?.sockets ?? null, sources, vms_known: known.size },
    activations: acts.map(activationView),
    versions: versions.map((v) => ({ version: v.version, trained_at: isoMs(v.trainedAtMs), reason: v.reason, trained_by: v.trainedBy })),
  };
}

/** The classes that have stored versions (promote / rollback targets). */
export async function classesWithVersions(store: Store): Promise<string[]> {
  return [...new Set((await new ModelStore(store).versions()).map((v) => v.hardwareClass))].sort();
}

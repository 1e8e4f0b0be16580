/**
 * wattsplit models list|show|train|promote|rollback: the models the collector trains, from the store
 * (embedded --data-dir or a ClickHouse server with --url). `list` and `show` print what model-report.ts
 * reads, the same objects as GET /api/models; `train`, `promote` and `rollback` go through ModelLifecycle,
 * the collector's own code path (lease, worker thread, store, activation by effective time), so a
 * running collector and this command never train one class at once. Every subcommand takes --json.
 */
import { hostname } from 'node:os';
import { ModelLifecycle, TRAIN_REASONS, classesWithVersions, describeModel, listModels, unknownModelClass, type ModelDetail, type ModelListEntry, type TrainReason } from '@wattsplit/collector';
import type { ModelActivation, Store } from '@wattsplit/store';
import { WattsplitError } from '@wattsplit/wire';
import { intFlag, parse, strFlag, timeFlagNs, type Values } from '../args.js';
import { makeLogger } from '../logging.js';
import { DEFAULT_DATA_DIR, openStore, STORE_FLAGS } from '../store-open.js';

const HELP = `usage: wattsplit models <list|show|train|promote|rollback> [options] [--data-dir DIR (default ${DEFAULT_DATA_DIR}) | --url http://host:8123 --database wattsplit] [--json]

  list                          per hardware class: the version in force, when it took effect, who trained
                                it and why, its residual and age; classes with history but no model (cold start)
  show CLASS [--version N]      one version (default: the one in force): metadata, the class's activation
                                history, what the artefact holds
  train [CLASS ...]             train now, as the collector does (lease, worker thread, store, activate);
        [--reason manual]       default: every class with stored history; exit 1 when nothing was trained
        [--effective-from T]    interval end time the new version applies from (ISO 8601 or unix seconds;
                                default now + 2 s)
        [--lookback-s 86400]    history one training reads
  promote CLASS VERSION [--note TEXT] [--effective-from T]   activate an existing version
  rollback CLASS [--note TEXT] [--effective-from T]          activate the version in force before the latest activation`;

const FLAGS = {
  ...STORE_FLAGS,
  json: { type: 'boolean' },
  version: { type: 'string' },
  reason: { type: 'string' },
  note: { type: 'string' },
  'effective-from': { type: 'string' },
  'lookback-s': { type: 'string' },
  'log-level': { type: 'string' },
} as const;

const SUBCOMMANDS = ['list', 'show', 'train', 'promote', 'rollback'] as const;
type Subcommand = (typeof SUBCOMMANDS)[number];

/** Who an activation or a version made here is by: the operator's command, on this machine. */
const BY = `cli:${hostname()}:${process.pid}`;

function bad(field: string, value: unknown, message: string): WattsplitError {
  return new WattsplitError('CONFIG_INVALID', message, { details: { field, value } });
}

/** --effective-from: ISO 8601 or unix seconds → ns; undefined when absent. */
function effectiveFrom(values: Values): number | undefined {
  return timeFlagNs(values, 'effective-from');
}

function positiveInt(raw: string, what: string): number {
  if (!/^\d{1,9}$/.test(raw) || Number(raw) < 1) throw bad(what, raw, `${what} ${JSON.stringify(raw)}: expected a version number ≥ 1`);
  return Number(raw);
}

const fixed = (x: number | null | undefined, d = 1) => (x === null || x === undefined ? '-' : x.toFixed(d));

function ageText(s: number | null): string {
  if (s === null) return '-';
  if (s < 120) return `${Math.round(s)}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${(s / 3600).toFixed(1)}h`;
  return `${(s / 86_400).toFixed(1)}d`;
}

function printList(models: readonly ModelListEntry[]): void {
  if (models.length === 0) {
    console.log('no hardware class in the store yet (no history, no models)');
    return;
  }
  const head = ['class', 'version', 'effective from', 'trained at', 'trained by', 'reason', 'intervals', 'rms rapl W', 'rms bmc W', 'age'];
  const rows = models.map((m) => [
    m.hardware_class,
    m.version === null ? (m.status === 'pending' ? 'pending' : 'cold start') : `v${m.version}${m.action && m.action !== 'train' ? ` (${m.action})` : ''}`,
    m.effective_from ?? '-',
    m.trained_at ?? '-',
    m.trained_by ?? '-',
    m.reason ?? '-',
    m.intervals === null ? `${m.stored_intervals} stored` : String(m.intervals),
    fixed(m.residual_rms_w?.rapl),
    fixed(m.residual_rms_w?.bmc_rest),
    ageText(m.age_s),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd();
  console.log(line(head));
  for (const r of rows) console.log(line(r));
  for (const m of models) if (m.pending) console.log(`${m.hardware_class}: v${m.pending.version} (${m.pending.action}) applies from ${m.pending.effective_from}`);
}

function printDetail(d: ModelDetail): void {
  const v = d.version;
  console.log(`${d.hardware_class} v${v.version}${v.in_force ? ' (in force)' : d.in_force_version === null ? ' (no version in force)' : ` (v${d.in_force_version} is in force)`}`);
  console.log(`  model id      ${v.model_id}`);
  console.log(`  trained       ${v.trained_at} by ${v.trained_by} (${v.reason}${v.drift_ratio ? `, drift ${v.drift_ratio.toFixed(2)}×` : ''}) in ${v.train_seconds.toFixed(1)} s`);
  console.log(`  history       ${v.intervals} intervals, ${v.window_from} → ${v.window_to}`);
  console.log(`  residual rms  rapl ${v.residual_rms_w.rapl.toFixed(2)} W, bmc_rest ${v.residual_rms_w.bmc_rest.toFixed(2)} W`);
  const a = d.artefact;
  console.log(`  artefact      backend ${a.backend}, format ${a.format_version}, ${a.vms_known} VMs known${a.sockets === null ? '' : `, ${a.sockets} sockets`}`);
  for (const [s, x] of Object.entries(a.sources)) console.log(`    ${s.padEnd(9)} static ${x.static_w.toFixed(1)} W, mean ${x.mean_power_w.toFixed(1)} W, residual ${x.residual_rms_w.toFixed(2)} W, ${x.vms_known} VMs known`);
  console.log('  activations (oldest first):');
  for (const x of d.activations) console.log(`    ${x.activated_at}  ${x.action.padEnd(8)} v${String(x.version).padEnd(3)} by ${x.activated_by}, effective ${x.effective_from}${x.note ? `: ${x.note}` : ''}`);
}

function activationJson(a: ModelActivation): Record<string, unknown> {
  return {
    hardware_class: a.hardwareClass,
    version: a.version,
    model_id: a.modelId,
    action: a.action,
    activated_at: new Date(a.activatedAtMs).toISOString(),
    activated_by: a.activatedBy,
    effective_from: new Date(Math.floor(a.effectiveFromNs / 1e6)).toISOString(),
    effective_from_ns: a.effectiveFromNs,
    note: a.note,
  };
}

/** A class promote/rollback/show can act on: it must have stored versions. */
async function requireVersioned(store: Store, hardwareClass: string): Promise<void> {
  const known = await classesWithVersions(store);
  if (!known.includes(hardwareClass)) throw unknownModelClass(hardwareClass, known);
}

async function train(store: Store, values: Values, classes: string[]): Promise<number> {
  const reason = strFlag(values, 'reason', 'manual');
  if (!TRAIN_REASONS.some((r) => r === reason)) throw bad('reason', reason, `--reason=${reason}: expected one of ${TRAIN_REASONS.join(', ')}`);
  const eff = effectiveFrom(values);
  const logger = makeLogger(strFlag(values, 'log-level', 'warn'));
  const lifecycle = new ModelLifecycle({ store, holder: BY, logger, training: { lookbackS: intFlag(values, 'lookback-s', 86_400, 60, 365 * 86_400) } });
  const withHistory = await lifecycle.classes();
  const unknown = classes.filter((c) => !withHistory.includes(c));
  if (unknown.length > 0) {
    throw bad('hardwareClass', unknown[0], `hardware class ${JSON.stringify(unknown[0])} has no stored history to train on; classes with history: ${withHistory.join(', ') || '(none)'}`);
  }
  const targets = classes.length > 0 ? classes : withHistory;
  if (targets.length === 0) throw bad('hardwareClass', '', 'no hardware class has stored history to train on (run a collector or `wattsplit demo` first)');
  const out: Record<string, unknown>[] = [];
  for (const hc of targets) {
    const r = await lifecycle.train(hc, { reason: reason as TrainReason, ...(eff !== undefined ? { effectiveFromNs: eff } : {}) }).catch((e: unknown) => ({
      hardwareClass: hc,
      reason: reason as TrainReason,
      skipped: `failed: ${e instanceof Error ? e.message : String(e)}`,
    }));
    if ('version' in r && r.version && 'activation' in r && r.activation) {
      const v = r.version;
      out.push({ hardware_class: hc, trained: true, version: v.version, model_id: v.modelId, reason: v.reason, intervals: v.intervals, train_seconds: v.trainSeconds, residual_rms_w: v.residualRmsW, activation: activationJson(r.activation) });
      if (!values.json) console.log(`${hc}: trained v${v.version} (${v.reason}, ${v.intervals} intervals, ${v.trainSeconds.toFixed(1)} s, residual rms rapl ${v.residualRmsW.rapl.toFixed(2)} W), in force from ${activationJson(r.activation).effective_from as string}`);
    } else {
      out.push({ hardware_class: hc, trained: false, skipped: r.skipped ?? 'not trained' });
      if (!values.json) console.log(`${hc}: not trained: ${r.skipped ?? 'no reason given'}`);
    }
  }
  if (values.json) console.log(JSON.stringify({ trained_by: BY, results: out }));
  return out.some((o) => o.trained === true) ? 0 : 1;
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, FLAGS, true);
  const [sub, ...args] = positionals;
  if (values.help || sub === undefined) {
    console.log(HELP);
    return values.help ? 0 : 2;
  }
  if (!SUBCOMMANDS.some((s) => s === sub)) throw bad('subcommand', sub, `models ${sub}: unknown subcommand; expected one of ${SUBCOMMANDS.join(', ')}`);
  const cmd = sub as Subcommand;
  const arity: Record<Subcommand, [number, number]> = { list: [0, 0], show: [1, 1], train: [0, Infinity], promote: [2, 2], rollback: [1, 1] };
  const [lo, hi] = arity[cmd];
  if (args.length < lo || args.length > hi) throw bad('arguments', args, `models ${cmd}: expected ${lo === hi ? lo : `${lo} or more`} argument(s), got ${args.length} (see wattsplit models --help)`);
  const version = cmd === 'promote' ? positiveInt(args[1]!, 'VERSION') : values.version === undefined ? undefined : positiveInt(String(values.version), '--version');
  effectiveFrom(values); // bad input before the store opens
  const store = await openStore(values, { mustExist: true });
  try {
    switch (cmd) {
      case 'list': {
        const models = await listModels(store);
        if (values.json) console.log(JSON.stringify({ now: new Date().toISOString(), models }));
        else printList(models);
        return 0;
      }
      case 'show': {
        const d = await describeModel(store, args[0]!, version === undefined ? {} : { version });
        if (values.json) console.log(JSON.stringify(d));
        else printDetail(d);
        return 0;
      }
      case 'train':
        return await train(store, values, args);
      case 'promote':
      case 'rollback': {
        const hc = args[0]!;
        await requireVersioned(store, hc);
        const lifecycle = new ModelLifecycle({ store, holder: BY });
        const note = strFlag(values, 'note', '');
        const eff = effectiveFrom(values);
        const a = cmd === 'promote' ? await lifecycle.promote(hc, version!, BY, note, eff) : await lifecycle.rollback(hc, BY, note, eff);
        const j = activationJson(a);
        if (values.json) console.log(JSON.stringify(j));
        else console.log(`${hc}: ${a.action} v${a.version} by ${a.activatedBy}, in force from ${j.effective_from as string}${a.note ? ` (${a.note})` : ''}`);
        return 0;
      }
    }
  } finally {
    await store.close();
  }
}

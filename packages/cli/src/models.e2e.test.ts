// `wattsplit models` as an operator runs it: child processes of the built CLI on a demo data directory
// (the demo trains v1 of every class through the collector's TrainingService), then train, rollback,
// promote and the error cases; and, when the test ClickHouse server runs, the same commands with --url,
// including a training lease held by another trainer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClickHouseServerStore, ModelStore } from '@wattsplit/store';
import { sampleInterval, sampleResult } from '@wattsplit/store/test-fixtures';
import type { ModelDetail, ModelListEntry } from '@wattsplit/collector';

const main = join(dirname(fileURLToPath(import.meta.url)), 'main.js');
const run = (args: string[], timeout = 120_000): SpawnSyncReturns<string> => spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', timeout, maxBuffer: 64 << 20 });

/** Exit 0 and the parsed JSON on stdout. */
function json<T>(args: string[]): T {
  const r = run(args);
  assert.equal(r.status, 0, `${args.join(' ')}: exit ${r.status}, stderr: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** One line on stderr, naming what it must, with no stack trace. */
function oneLine(r: SpawnSyncReturns<string>, status: number, pattern: RegExp): void {
  assert.equal(r.status, status, `exit ${r.status}, stderr: ${r.stderr}`);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
}

interface ListJson {
  models: ModelListEntry[];
}
interface TrainJson {
  trained_by: string;
  results: { hardware_class: string; trained: boolean; version?: number; skipped?: string; activation?: { effective_from_ns: number } }[];
}
interface ActivationJson {
  hardware_class: string;
  version: number;
  action: string;
  note: string;
  effective_from_ns: number;
}

/** Activations apply from an interval end time a moment ahead; wait until it has passed. */
async function untilEffective(ns: readonly number[]): Promise<void> {
  const wait = Math.max(0, ...ns.map((n) => n / 1e6 - Date.now())) + 50;
  await new Promise((r) => setTimeout(r, wait));
}

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'wattsplit-models-'));
  execFileSync(process.execPath, [main, 'demo', '--hosts', '2', '--vms', '4', '--warmup-minutes', '3', '--minutes', '1', '--data-dir', dir, '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('models list / train / rollback / promote / show on the demo data directory', async () => {
  const d = ['--data-dir', dir];
  // The demo trained v1 of every class through the collector's TrainingService.
  const first = json<ListJson>(['models', 'list', ...d, '--json']).models;
  assert.ok(first.length >= 1, 'at least one hardware class');
  // the first pass that trains says 'first'; a class whose intervals reached the minimum only after it (a later
  // pass, while the other class was training) says 'new_class' (training-service.ts: the catalog is read per pass)
  assert.ok(first.some((m) => m.reason === 'first'), `one class trained as the first model: ${first.map((m) => `${m.hardware_class} ${m.reason}`).join(', ')}`);
  for (const m of first) {
    assert.equal(m.status, 'in_force', m.hardware_class);
    assert.equal(m.version, 1, m.hardware_class);
    assert.equal(m.action, 'train');
    assert.ok(m.reason === 'first' || m.reason === 'new_class', `${m.hardware_class}: reason ${m.reason}`);
    assert.ok(m.trained_by, `${m.hardware_class}: trained_by set`);
    assert.ok(m.intervals !== null && m.intervals >= 60, `${m.hardware_class}: ${m.intervals} intervals`);
    assert.ok(m.residual_rms_w && m.residual_rms_w.rapl >= 0 && m.residual_rms_w.bmc_rest >= 0);
    assert.ok(m.age_s !== null && m.age_s >= 0);
    assert.ok(m.stored_intervals > 0);
  }
  const classes = first.map((m) => m.hardware_class);
  const hc = classes[0]!;
  const table = run(['models', 'list', ...d]);
  assert.equal(table.status, 0, table.stderr);
  for (const c of classes) assert.match(table.stdout, new RegExp(`^${c.replace(/[+.]/g, '\\$&')}\\s+v1\\s`, 'm'));

  // train: v2 of every class with history, through the lease and the worker thread.
  const trained = json<TrainJson>(['models', 'train', ...d, '--json']);
  assert.match(trained.trained_by, /^cli:/);
  assert.deepEqual(trained.results.map((r) => [r.hardware_class, r.trained, r.version]), classes.map((c) => [c, true, 2]));
  await untilEffective(trained.results.map((r) => r.activation!.effective_from_ns));
  const second = json<ListJson>(['models', 'list', ...d, '--json']).models;
  for (const m of second) {
    assert.equal(m.version, 2, m.hardware_class);
    assert.equal(m.status, 'in_force');
    assert.equal(m.reason, 'manual');
    assert.equal(m.trained_by, trained.trained_by);
    assert.equal(m.versions, 2);
  }

  // rollback: v1 in force again; the history shows train, train, rollback.
  const rb = json<ActivationJson>(['models', 'rollback', hc, ...d, '--note', 'v2 looks off', '--json']);
  assert.deepEqual([rb.hardware_class, rb.version, rb.action, rb.note], [hc, 1, 'rollback', 'v2 looks off']);
  await untilEffective([rb.effective_from_ns]);
  const afterRollback = json<ListJson>(['models', 'list', ...d, '--json']).models.find((m) => m.hardware_class === hc)!;
  assert.deepEqual([afterRollback.version, afterRollback.action, afterRollback.reason], [1, 'rollback', first[0]!.reason]);
  const shown = json<ModelDetail>(['models', 'show', hc, ...d, '--json']);
  assert.equal(shown.version.version, 1);
  assert.equal(shown.version.in_force, true);
  assert.deepEqual(shown.activations.map((a) => [a.action, a.version]), [['train', 1], ['train', 2], ['rollback', 1]]);
  assert.deepEqual(Object.keys(shown.artefact.sources).sort(), ['bmc_rest', 'rapl']);
  assert.ok(shown.artefact.vms_known >= 4, `VMs known: ${shown.artefact.vms_known}`);
  assert.ok(shown.artefact.backend);

  // promote: v2 again, by an explicit activation.
  const pr = json<ActivationJson>(['models', 'promote', hc, '2', ...d, '--note', 'checked', '--json']);
  assert.deepEqual([pr.version, pr.action], [2, 'promote']);
  await untilEffective([pr.effective_from_ns]);
  const v2 = json<ModelDetail>(['models', 'show', hc, ...d, '--json']);
  assert.equal(v2.in_force_version, 2);
  assert.deepEqual(v2.activations.map((a) => a.action), ['train', 'train', 'rollback', 'promote']);
  const v1 = json<ModelDetail>(['models', 'show', hc, '--version', '1', ...d, '--json']);
  assert.deepEqual([v1.version.version, v1.version.in_force, v1.in_force_version], [1, false, 2]);
  const text = run(['models', 'show', hc, ...d]);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, new RegExp(`^${hc.replace(/[+.]/g, '\\$&')} v2 \\(in force\\)`));
  assert.match(text.stdout, /rollback v1 .*v2 looks off/);
});

test('unknown class or version, and a data directory that does not exist: one CONFIG_INVALID line naming it, exit 2', () => {
  const d = ['--data-dir', dir];
  const hc = json<ListJson>(['models', 'list', ...d, '--json']).models[0]!.hardware_class;
  oneLine(run(['models', 'show', 'no-such-class', ...d]), 2, new RegExp(`CONFIG_INVALID: hardware class "no-such-class" has no model versions; classes with versions: .*${hc.replace(/[+.]/g, '\\$&')}`));
  oneLine(run(['models', 'promote', 'no-such-class', '1', ...d]), 2, /CONFIG_INVALID: hardware class "no-such-class"/);
  oneLine(run(['models', 'rollback', 'no-such-class', ...d]), 2, /CONFIG_INVALID: hardware class "no-such-class"/);
  oneLine(run(['models', 'train', 'no-such-class', ...d]), 2, /CONFIG_INVALID: hardware class "no-such-class" has no stored history to train on; classes with history: /);
  oneLine(run(['models', 'promote', hc, '99', ...d]), 2, /CONFIG_INVALID: model .* v99 does not exist \(versions: /);
  oneLine(run(['models', 'show', hc, '--version', '99', ...d]), 2, /CONFIG_INVALID: model .* v99 does not exist; versions: 1, 2/);
  oneLine(run(['models', 'promote', hc, 'two', ...d]), 2, /CONFIG_INVALID: VERSION "two": expected a version number/);
  oneLine(run(['models', 'frobnicate', ...d]), 2, /CONFIG_INVALID: models frobnicate: unknown subcommand; expected one of list, show, train, promote, rollback/);
  oneLine(run(['models', 'train', '--reason', 'because', ...d]), 2, /--reason=because: expected one of first, new_class, drift, period, manual/);
  const missing = join(dir, 'no', 'such');
  for (const sub of [['list'], ['show', hc], ['train'], ['rollback', hc]]) oneLine(run(['models', ...sub, '--data-dir', missing]), 2, new RegExp(`--data-dir=${missing}: .*does not exist`));
  assert.equal(existsSync(join(dir, 'no')), false, 'nothing was created');
  oneLine(run(['models', 'list', '--data-dir', '/no/such']), 2, /--data-dir=\/no\/such: .*does not exist/);
});

const chUrl = process.env.WATTSPLIT_TEST_CLICKHOUSE_URL;
test(
  'against a ClickHouse server (--url): cold start, a lease another trainer holds, train, list',
  { skip: chUrl ? false : 'WATTSPLIT_TEST_CLICKHOUSE_URL is not set (no test ClickHouse server; node scripts/services.mjs up --json prints it)' },
  async (t) => {
    const database = `wattsplit_models_${randomUUID().slice(0, 8)}`;
    const store = new ClickHouseServerStore({ url: chUrl!, database });
    await store.init();
    t.after(async () => {
      await store.query(`DROP DATABASE IF EXISTS ${database}`).catch(() => undefined);
      await store.close();
    });
    // 60 s of one host's stored history, as a collector would have written it.
    const now = Math.floor(Date.now() / 1000) * 1e9;
    const writes = Array.from({ length: 60 }, (_, i) => sampleInterval('hv-ch', i + 1, now - (60 - i) * 1e9)).map((iv) => ({ interval: iv, results: [sampleResult(iv)] }));
    const w = await store.writeIntervals(writes);
    assert.equal(w.kind, 'ok');
    const hc = writes[0]!.interval.hardwareClass;
    const s = ['--url', chUrl!, '--database', database];

    const cold = json<ListJson>(['models', 'list', ...s, '--json']).models;
    assert.deepEqual(cold.map((m) => [m.hardware_class, m.status, m.version, m.stored_intervals]), [[hc, 'cold_start', null, 60]]);

    // A running collector holds the class's lease: the command says so and trains nothing (exit 1).
    assert.equal(await new ModelStore(store).tryLease(`train:${hc}`, 'collector-elsewhere', 60_000, 0), true);
    const held = run(['models', 'train', ...s]);
    assert.equal(held.status, 1, held.stderr);
    assert.match(held.stdout, new RegExp(`${hc.replace(/[+.]/g, '\\$&')}: not trained: another trainer holds the lease \\(collector-elsewhere\\)`));
    await new ModelStore(store).releaseLease(`train:${hc}`, 'collector-elsewhere');

    const trained = json<TrainJson>(['models', 'train', hc, ...s, '--effective-from', String(Math.floor(Date.now() / 1000) - 60), '--json']);
    assert.deepEqual(trained.results.map((r) => [r.hardware_class, r.trained, r.version]), [[hc, true, 1]]);
    const list = json<ListJson>(['models', 'list', ...s, '--json']).models;
    assert.deepEqual(list.map((m) => [m.hardware_class, m.status, m.version, m.reason, m.trained_by]), [[hc, 'in_force', 1, 'manual', trained.trained_by]]);
  },
);

// End to end, fleet mode, faults while the collectors learn: the same simulated fleet (seed 5, 2 hosts ×
// 6 VMs, 2 hardware classes) goes twice through `wattsplit fleet-sim` → `wattsplit gateway` → Kafka (a
// broker of its own per run: the telemetry topic is fixed) → `wattsplit collector` → ClickHouse (the
// shared server of WATTSPLIT_TEST_CLICKHOUSE_URL, a database per run):
//   A, undisturbed: one collector trains both classes and bills.
//   B, disturbed: collector-1 is SIGKILLed while it trains (its lease row is there, no version is);
//      collector-2 and collector-3 join, wait out the dead trainer's lease (--train-lease-ttl-s) and
//      train; in the billed period the replica that is applying is SIGKILLed and restarted, and a
//      replica leaves (SIGTERM) while frames keep coming.
// Both runs train on the same history and switch over at the same interval: the agents stand still
// between warm-up and billing (fleet-sim --hold), the test holds every class's training lease until the
// warm-up is stored (so no training reads part of it), and the collectors activate from a fixed interval
// end time (--train-effective-from, between the last warm-up and the first billed interval).
// Asserted in each run: every (host, seq) stored once and attributed once per share (no FINAL), each
// method conserves the measured energy per interval, every additive_model interval names one version and
// that version is the one the activation rows give for its end time (fallback before, v1 after), rollups
// = attributions FINAL, learner_state saved for every host up to its last stored seq; across the runs:
// the same intervals with the same measured joules, the same models (one version per class, same window
// and weights), the same learner state, the same attributions per tenant and method.
// It starts its own brokers, so it runs where the shared test services could start (scripts/test.mjs
// sets WATTSPLIT_TEST_KAFKA and WATTSPLIT_TEST_CLICKHOUSE_URL) and skips with the reason otherwise.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = process.env.WATTSPLIT_REPO_ROOT ?? join(dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = join(root, 'packages/cli/dist/main.js');

const HOSTS = 2;
const VMS = 6;
const SEED = 5;
const WARMUP_S = 120;
/** B bills in real time once its simulated clock has caught up with the wall clock (--max-lead-s 0), so the
 *  kills happen while frames are coming; A bills as fast as the gateway acks. Same frames either way. */
const BILLED_S = 100;
/** The dead trainer's lease blocks its class this long (training takes ≈ 5-20 s here). */
const LEASE_TTL_S = 30;
/** The test's own holder of every class's lease until the warm-up is stored. */
const GATE = 'training-faults-test';

// ───────────────────────── scripts/lib/processes.mjs, typed ─────────────────────────

interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly alive: boolean;
  readonly exit: { code: number | null; sig: string | null } | undefined;
  stop(sig?: NodeJS.Signals, ms?: number): Promise<unknown>;
  log(): string;
}
interface Processes {
  Proc: new (name: string, cmd: string, args: string[], o: { env?: Record<string, string>; logDir: string; stdio?: string[] }) => Proc;
  chQuery(url: string, db: string, sql: string): Promise<Record<string, unknown>[]>;
  killAllNow(): void;
  script(name: string, args: string[], timeoutS: number): { ok: boolean; out?: string; why?: string };
  sleep(ms: number): Promise<void>;
  /** Resolves with fn's first truthy result. */
  waitFor<T>(what: string, fn: () => Promise<T> | T, timeoutMs: number, everyMs?: number): Promise<NonNullable<T>>;
}

function skipReason(): string | false {
  if (!process.env.WATTSPLIT_TEST_KAFKA) return 'WATTSPLIT_TEST_KAFKA not set (no Kafka on this machine: node scripts/services.mjs up)';
  if (!process.env.WATTSPLIT_TEST_CLICKHOUSE_URL) return 'WATTSPLIT_TEST_CLICKHOUSE_URL not set (no ClickHouse server on this machine)';
  return false;
}

// ───────────────────────── what a run leaves in its database ─────────────────────────

interface Outcome {
  db: string;
  firstBilledSeq: number;
  lastSeq: number;
  effNs: number;
  classOf: Map<string, string>;
  /** What happened, for the failure messages. */
  story: string[];
  /** B: collector-1's pid and the class it was training when killed. */
  killedTrainer?: { pid: number; hardwareClass: string };
}

interface AgentMsg {
  type: string;
  hosts?: { hostId: string; hardwareClass: string }[];
  startUnixMs?: number;
  firstBilledSeq?: number;
  lastSeq?: number;
  message?: string;
}

const n = (v: unknown): number => Number(v);
const s = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v));

test('training faults: a trainer killed mid-training, an applier killed mid-billing, a replica joining and leaving: the same models, learner state and attributions as an undisturbed run', { skip: skipReason(), timeout: 420_000 }, async (t) => {
  const P = (await import(pathToFileURL(join(root, 'scripts/lib/processes.mjs')).href)) as Processes;
  const ch = process.env.WATTSPLIT_TEST_CLICKHOUSE_URL!;
  const runId = `${process.pid}${Date.now().toString(36)}`;
  const tmp = mkdtempSync(join(tmpdir(), 'wattsplit-training-faults-'));
  const brokers: string[] = [];
  const dbs: string[] = [];
  let failed = true;
  t.after(async () => {
    P.killAllNow();
    for (const b of brokers) P.script('kafka.sh', ['stop', b], 40);
    if (failed) {
      process.stderr.write(`training-faults: logs kept in ${tmp}, databases ${dbs.join(', ')}\n`);
      return;
    }
    for (const db of dbs) await chExec(ch, '', `DROP DATABASE IF EXISTS ${db}`).catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
  });
  const started = Date.now();

  const a = await fleetRun(t, P, { ch, tmp, runId, label: 'a', disturbed: false, brokers, dbs });
  if (a === 'skip') return;
  const b = await fleetRun(t, P, { ch, tmp, runId, label: 'b', disturbed: true, brokers, dbs });
  if (b === 'skip') return;
  const ctx = `\nA: ${a.story.join('; ')}\nB: ${b.story.join('; ')}\nlogs: ${tmp}`;

  // ── each run on its own ──
  for (const r of [a, b]) {
    const q = (sql: string) => P.chQuery(ch, r.db, sql);
    const tag: string = r === a ? 'A' : 'B';
    // No interval stored or attributed twice: rows per key without FINAL.
    assert.deepEqual(await q(`SELECT host, seq, count() AS c FROM host_samples GROUP BY host, seq HAVING c > 1 LIMIT 5`), [], `${tag}: host intervals stored twice${ctx}`);
    assert.deepEqual(await q(`SELECT host, seq, method, source, kind, vm_uuid, count() AS c FROM attributions GROUP BY host, seq, method, source, kind, vm_uuid HAVING c > 1 LIMIT 5`), [], `${tag}: attribution shares written twice${ctx}`);
    // Nothing lost: every host's intervals from the first to the last seq are there for both methods.
    const perHost = await q(`SELECT host, method, count() AS k, min(seq) AS lo, max(seq) AS hi FROM (SELECT DISTINCT host, seq, method FROM attributions) GROUP BY host, method ORDER BY host, method`);
    assert.equal(perHost.length, HOSTS * 2, `${tag}: ${JSON.stringify(perHost)}`);
    for (const h of perHost) assert.equal(n(h.hi), r.lastSeq, `${tag}: ${s(h.host)} ${s(h.method)} attributed up to seq ${s(h.hi)}, the agents sent up to ${r.lastSeq}${ctx}`);
    // Conservation per interval and method: the shares add up to what the host measured.
    const cons = await q(
      `SELECT host, seq, method, att, measured FROM
         (SELECT host, seq, method, sum(dynamic_j + static_j) AS att FROM attributions FINAL GROUP BY host, seq, method)
         ANY LEFT JOIN (SELECT host, seq, rapl_j + gpu_j + bmc_rest_j AS measured FROM host_samples FINAL) USING (host, seq)
       WHERE abs(att - measured) > 1e-6 * greatest(1, measured) LIMIT 5`,
    );
    assert.deepEqual(cons, [], `${tag}: intervals where a method does not add up to the measured energy${ctx}`);
    // One version per interval, the one the activation rows give for its end time.
    const acts = await q(`SELECT hardware_class, seq, version, effective_from_ns FROM model_activations ORDER BY hardware_class, seq`);
    const versions = await q(
      `SELECT host, seq, any(t1_ns) AS t1, groupUniqArray(model_version) AS v FROM attributions WHERE method = 'additive_model' GROUP BY host, seq ORDER BY host, seq`,
    );
    const wrong: string[] = [];
    for (const row of versions) {
      const hc = r.classOf.get(s(row.host))!;
      const t1 = n(row.t1);
      const inForce = acts.filter((x) => x.hardware_class === hc && n(x.effective_from_ns) <= t1).sort((x, y) => n(y.seq) - n(x.seq))[0];
      const v = row.v as string[];
      const want = inForce ? `${hc}@v${s(inForce.version)}` : 'fallback:cpu_share';
      const billed = n(row.seq) >= r.firstBilledSeq;
      if (v.length !== 1 || v[0] !== want || (billed && !inForce) || (!billed && inForce)) wrong.push(`${s(row.host)}#${s(row.seq)}: ${v.join('+')} (expected ${want}${billed ? ', billed' : ', warm-up'})`);
    }
    assert.deepEqual(wrong.slice(0, 5), [], `${tag}: ${wrong.length} additive_model intervals with the wrong or several versions${ctx}`);
    // Rollups = the attributions they were made from.
    const rollups = await q(
      `SELECT tenant, method, rj, rs, fj, fs FROM
         (SELECT tenant, method, sum(dynamic_j + static_j) AS rj, sum(shares) AS rs FROM tenant_energy_hourly GROUP BY tenant, method)
         FULL OUTER JOIN (SELECT tenant, method, sum(dynamic_j + static_j) AS fj, count() AS fs FROM attributions FINAL GROUP BY tenant, method) USING (tenant, method)
       WHERE abs(rj - fj) > 1e-6 * greatest(1, fj) OR rs != fs`,
    );
    assert.deepEqual(rollups, [], `${tag}: tenant rollups differ from attributions FINAL${ctx}`);
    const vmRollups = await q(
      `SELECT vm_uuid, method, rj, fj FROM
         (SELECT vm_uuid, method, sum(dynamic_j + static_j) AS rj FROM vm_energy_hourly GROUP BY vm_uuid, method)
         FULL OUTER JOIN (SELECT vm_uuid, method, sum(dynamic_j + static_j) AS fj FROM attributions FINAL GROUP BY vm_uuid, method) USING (vm_uuid, method)
       WHERE abs(rj - fj) > 1e-6 * greatest(1, fj)`,
    );
    assert.deepEqual(vmRollups, [], `${tag}: VM rollups differ from attributions FINAL${ctx}`);
    // Learner state: saved for every host, up to the host's last stored interval (every collector stopped cleanly last).
    const ls = await q(`SELECT learner, key, seq FROM learner_state FINAL ORDER BY key, learner`);
    for (const h of r.classOf.keys()) {
      const rows = ls.filter((x) => x.key === h);
      assert.ok(rows.length > 0, `${tag}: no learner_state for ${h}: ${JSON.stringify(ls)}${ctx}`);
      for (const x of rows) assert.equal(n(x.seq), r.lastSeq, `${tag}: ${s(x.learner)} of ${h} saved up to seq ${s(x.seq)}, last stored ${r.lastSeq}${ctx}`);
    }
    // One model version per class, activated once, from the pinned time.
    const mv = await q(`SELECT hardware_class, version, trained_by FROM model_versions FINAL ORDER BY hardware_class, version`);
    assert.deepEqual(mv.map((x) => `${s(x.hardware_class)}@v${s(x.version)}`), [...new Set(r.classOf.values())].sort().map((c) => `${c}@v1`), `${tag}: model versions${ctx}`);
    assert.equal(acts.length, mv.length, `${tag}: activations ${JSON.stringify(acts)}${ctx}`);
    for (const x of acts) assert.ok(Math.abs(n(x.effective_from_ns) - r.effNs) < 1000, `${tag}: ${s(x.hardware_class)} effective from ${s(x.effective_from_ns)}, pinned ${r.effNs}`);
    if (r.killedTrainer) {
      const k = r.killedTrainer;
      const byKilled = mv.filter((x) => s(x.trained_by).split(':')[1] === String(k.pid));
      assert.deepEqual(byKilled, [], `B: a version by the collector killed while training: ${JSON.stringify(byKilled)}${ctx}`);
    }
  }

  // ── B against A ──
  const qa = (sql: string) => P.chQuery(ch, a.db, sql);
  const qb = (sql: string) => P.chQuery(ch, b.db, sql);
  assert.equal(b.firstBilledSeq, a.firstBilledSeq);
  assert.equal(b.lastSeq, a.lastSeq);
  // The same intervals, measuring the same energy.
  const measured = `SELECT host, seq, rapl_j + gpu_j + bmc_rest_j AS j FROM host_samples FINAL ORDER BY host, seq`;
  const [ma, mb] = [await qa(measured), await qb(measured)];
  assert.equal(mb.length, ma.length, `stored intervals: A ${ma.length}, B ${mb.length}${ctx}`);
  const diffM = ma.filter((x, i) => mb[i]?.host !== x.host || mb[i]?.seq !== x.seq || Math.abs(n(mb[i]?.j) - n(x.j)) > 1e-6);
  assert.deepEqual(diffM.slice(0, 5), [], `intervals stored or measured differently in B${ctx}`);
  // The same models: window, intervals and the trained weights.
  const model = `SELECT hardware_class, version, intervals, window_from_ns, window_to_ns, model_json FROM model_versions FINAL ORDER BY hardware_class`;
  const [va, vb] = [await qa(model), await qb(model)];
  const startA = startUnix(a);
  const startB = startUnix(b);
  for (const [i, x] of va.entries()) {
    const y = vb[i]!;
    assert.equal(y.hardware_class, x.hardware_class);
    assert.equal(n(y.intervals), n(x.intervals), `${s(x.hardware_class)}: trained on ${s(x.intervals)} intervals in A, ${s(y.intervals)} in B${ctx}`);
    // The windows are the same simulated seconds (each run's clock starts at its own wall time).
    assert.ok(Math.abs(n(y.window_from_ns) / 1e6 - startB - (n(x.window_from_ns) / 1e6 - startA)) < 1, `${s(x.hardware_class)}: training windows differ${ctx}`);
    assert.ok(Math.abs(n(y.window_to_ns) / 1e6 - startB - (n(x.window_to_ns) / 1e6 - startA)) < 1, `${s(x.hardware_class)}: training windows differ${ctx}`);
    assert.deepEqual(weights(s(y.model_json)), weights(s(x.model_json)), `${s(x.hardware_class)}: B's model is not A's${ctx}`);
  }
  // The same learner state per host and learner.
  const learners = `SELECT key, learner, seq, state_json FROM learner_state FINAL ORDER BY key, learner`;
  const [la, lb] = [await qa(learners), await qb(learners)];
  // A learner killed between two saves catches up from the stored intervals when its host is next seen, and
  // learners observe each interval right after attributing it (batch timing does not matter): the same
  // state, up to the last bits of floats that went through the store (read back as decimal text).
  // The CPU signature filter integrates over interval times, which are unix ns held as doubles (rounded to
  // 256 ns at today's epoch): two runs whose clocks start at different wall times see durations that differ
  // by up to ~3e-7 relative, so its numbers agree to 1e-6 relative, not 1e-9.
  let tol = 1e-9;
  const closeTo = (x: unknown, y: unknown, path: string): string | undefined => {
    if (typeof x === 'number' && typeof y === 'number') return Math.abs(x - y) <= tol * Math.max(1, Math.abs(x)) ? undefined : `${path}: ${x} vs ${y}`;
    if (Array.isArray(x) && Array.isArray(y)) {
      if (x.length !== y.length) return `${path}: ${x.length} vs ${y.length} elements`;
      for (let i = 0; i < x.length; i++) {
        const d = closeTo(x[i], y[i], `${path}[${i}]`);
        if (d) return d;
      }
      return undefined;
    }
    if (x && y && typeof x === 'object' && typeof y === 'object') {
      const keys = [...new Set([...Object.keys(x), ...Object.keys(y)])].sort();
      for (const k of keys) {
        const d = closeTo((x as Record<string, unknown>)[k], (y as Record<string, unknown>)[k], `${path}.${k}`);
        if (d) return d;
      }
      return undefined;
    }
    return Object.is(x, y) ? undefined : `${path}: ${JSON.stringify(x)} vs ${JSON.stringify(y)}`;
  };
  await t.test('the same learner state', () => {
    assert.deepEqual(lb.map((x) => [x.key, x.learner, n(x.seq)]), la.map((x) => [x.key, x.learner, n(x.seq)]), `learner state rows differ${ctx}`);
    let diff: string | undefined;
    for (const [i, x] of la.entries()) {
      const y = lb[i]!;
      tol = s(x.learner).endsWith('/cpu_signature') ? 1e-6 : 1e-9;
      diff ??= closeTo(learnerState(s(y.state_json), startB), learnerState(s(x.state_json), startA), `learner_state[${i}] (${s(x.key)} ${s(x.learner)})`);
    }
    assert.equal(diff, undefined, `learner state differs: ${diff ?? ''}${ctx}`);
  });
  // The same bills: per tenant and method, billed and warm-up alike.
  const tenants = `SELECT tenant, method, seq >= ${a.firstBilledSeq} AS billed, sum(dynamic_j + static_j) AS j FROM attributions FINAL GROUP BY tenant, method, billed ORDER BY tenant, method, billed`;
  const [ta, tb] = [await qa(tenants), await qb(tenants)];
  assert.equal(tb.length, ta.length);
  for (const [i, x] of ta.entries()) t.diagnostic(`${s(x.tenant)} ${s(x.method)} ${n(x.billed) ? 'billed' : 'warm-up'}: A ${n(x.j).toFixed(3)} J, B ${n(tb[i]!.j).toFixed(3)} J (${((n(tb[i]!.j) / n(x.j) - 1) * 100).toFixed(4)} %)`);
  const far = ta.map((x, i) => ({ x, y: tb[i]! })).filter(({ x, y }) => y.tenant !== x.tenant || y.method !== x.method || Math.abs(n(y.j) - n(x.j)) > 1e-6 * Math.max(1, n(x.j)));
  await t.test('the same bills per tenant and method (cpu_share and warm-up too)', () => {
    assert.deepEqual(far.map(({ x, y }) => `${s(x.tenant)} ${s(x.method)} ${n(x.billed) ? 'billed' : 'warm-up'}: A ${n(x.j).toFixed(3)} J, B ${n(y.j).toFixed(3)} J`), [], `tenants billed differently in B${ctx}`);
  });
  // Per interval too: every share the same.
  const billedModel = far.filter(({ x }) => x.method === 'additive_model' && n(x.billed) === 1);
  assert.deepEqual(billedModel.map(({ x, y }) => `${s(x.tenant)}: A ${n(x.j).toFixed(3)} J, B ${n(y.j).toFixed(3)} J`), [], `tenants billed differently by additive_model in B${ctx}`);
  const shares = `SELECT host, seq, method, source, kind, vm_uuid, dynamic_j + static_j AS j, model_version FROM attributions FINAL WHERE method = 'additive_model' AND seq >= ${a.firstBilledSeq} ORDER BY host, seq, method, source, kind, vm_uuid`;
  const [sa, sb] = [await qa(shares), await qb(shares)];
  assert.equal(sb.length, sa.length, `shares: A ${sa.length}, B ${sb.length}${ctx}`);
  const diffS = sa.filter((x, i) => { const y = sb[i]!; return y.host !== x.host || y.seq !== x.seq || y.method !== x.method || y.vm_uuid !== x.vm_uuid || y.source !== x.source || y.model_version !== x.model_version || Math.abs(n(y.j) - n(x.j)) > 1e-6 * Math.max(1, n(x.j)); });
  assert.deepEqual(diffS.slice(0, 3).map((x) => JSON.stringify(x)), [], `${diffS.length} billed additive_model shares differ in B${ctx}`);
  failed = false;
  t.diagnostic(`A: ${a.story.join('; ')}`);
  t.diagnostic(`B: ${b.story.join('; ')}`);
  t.diagnostic(`${((Date.now() - started) / 1000).toFixed(0)} s`);
});

/** The trained parameters of a model artefact (what it was trained on and when are compared apart). */
function weights(json: string): unknown {
  const m = JSON.parse(json) as Record<string, unknown>;
  const { trainedAt: _at, trainedBy: _by, trainSeconds: _s, ...rest } = m;
  return rest;
}

/** A learner's state without when it was saved. */
/**
 * A stored learner state, comparable across the runs: without its save time, and with the times the CPU
 * signature filter keeps (unix seconds of the last update, `t`, and of each term's last interval, `seen`) made
 * relative to the run's start in whole ms (each run's simulated clock starts at its own wall time).
 */
function learnerState(json: string, startUnixMs: number): unknown {
  const st = JSON.parse(json) as Record<string, unknown>;
  const { savedAt: _at, ...rest } = st;
  if (rest.learner === 'cpu_signature' && rest.sources && typeof rest.sources === 'object') {
    const rel = (tS: unknown): unknown => (typeof tS === 'number' ? Math.round(tS * 1000 - startUnixMs) : tS);
    for (const src of Object.values(rest.sources as Record<string, Record<string, unknown>>)) {
      src.t = rel(src.t);
      if (Array.isArray(src.seen)) src.seen = src.seen.map(rel);
    }
  }
  return rest;
}

const starts = new WeakMap<Outcome, number>();
const startUnix = (o: Outcome): number => starts.get(o)!;

async function chExec(url: string, db: string, sql: string, body?: string): Promise<void> {
  const u = new URL(url);
  if (db) u.searchParams.set('database', db);
  if (body !== undefined) u.searchParams.set('query', sql);
  const r = await fetch(u, { method: 'POST', body: body ?? sql, signal: AbortSignal.timeout(10_000) });
  if (!r.ok) throw new Error(`ClickHouse ${r.status}: ${(await r.text()).slice(0, 300)}`);
}

async function scrape(url: string): Promise<Record<string, number>> {
  const r = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(3000) });
  const out: Record<string, number> = {};
  for (const line of (await r.text()).split('\n')) {
    const m = /^([a-z_]+)(\{.*\})?\s+(\S+)$/.exec(line);
    if (m) out[`${m[1]}${m[2] ?? ''}`] = Number(m[3]);
  }
  return out;
}

/** The first JSON log line of `p` with this msg (the process exiting first is an error). */
function logLine(p: Proc, msg: string): Record<string, unknown> | undefined {
  if (!p.alive) throw new Error(`${p.name} exited (${p.exit?.sig ?? `code ${p.exit?.code}`}): ${p.log().trim().split('\n').slice(-5).join(' | ')}`);
  for (const line of p.log().split('\n')) {
    if (!line.includes(msg)) continue;
    try {
      const j = JSON.parse(line) as Record<string, unknown>;
      if (j.msg === msg) return j;
    } catch {
      /* a partial line */
    }
  }
  return undefined;
}

interface RunOptions {
  ch: string;
  tmp: string;
  runId: string;
  label: 'a' | 'b';
  disturbed: boolean;
  brokers: string[];
  dbs: string[];
}

/** One run over the simulated fleet; 'skip' when Kafka cannot start here. */
async function fleetRun(t: TestContext, P: Processes, o: RunOptions): Promise<Outcome | 'skip'> {
  const broker = `training-faults-${o.runId}-${o.label}`;
  const db = `training_faults_${o.runId}_${o.label}`;
  const logDir = join(o.tmp, o.label);
  mkdirSync(logDir);
  const story: string[] = [];
  const t0 = Date.now();
  const note = (what: string) => story.push(`${((Date.now() - t0) / 1000).toFixed(0)} s ${what}`);
  o.brokers.push(broker);
  const k = P.script('kafka.sh', ['start', broker], 150);
  if (!k.ok || !/^127\.0\.0\.1:\d+$/.test(k.out ?? '')) {
    t.skip(`Kafka could not start: ${k.why ?? k.out}`);
    return 'skip';
  }
  o.dbs.push(db);
  const env = { WATTSPLIT_KAFKA_BROKERS: k.out!, WATTSPLIT_KAFKA_PARTITIONS: '4', WATTSPLIT_KAFKA_SESSION_TIMEOUT_MS: '6000' };
  const q = (sql: string) => P.chQuery(o.ch, db, sql);

  const gw = new P.Proc('gateway', process.execPath, [CLI, 'gateway', '--host', '127.0.0.1', '--port', '0', '--metrics-port', '0', '--log-level', 'info'], { env, logDir });
  const gl = await P.waitFor('the gateway listening', () => logLine(gw, 'gateway listening'), 60_000);
  await P.waitFor('the gateway ready', async () => (await fetch(`http://127.0.0.1:${s(gl.metricsPort)}/healthz`, { signal: AbortSignal.timeout(2000) })).ok, 60_000, 500);

  // The agents, and their messages in order.
  const agents = new P.Proc('agents', process.execPath, [
    CLI, 'fleet-sim', '--gateway', `127.0.0.1:${s(gl.port)}`, '--spool-dir', join(logDir, 'spool'), '--hosts', String(HOSTS), '--vms', String(VMS), '--seed', String(SEED),
    '--warmup-s', String(WARMUP_S), '--billed-s', String(BILLED_S), '--hold', ...(o.disturbed ? ['--max-lead-s', '0'] : []), '--run-id', `${o.runId}${o.label}`, '--log-level', 'warn',
  ], { logDir, stdio: ['ipc'] });
  const inbox: AgentMsg[] = [];
  agents.child.on('message', (m: AgentMsg) => {
    if (m.type !== 'progress') inbox.push(m);
  });
  const next = (type: string, ms: number) =>
    P.waitFor(`the agents' "${type}"`, () => {
      const m = inbox.shift();
      if (m?.type === 'error') throw new Error(`agent process: ${m.message ?? ''}`);
      if (!agents.alive) throw new Error(`agent process exited: ${agents.log().slice(-500)}`);
      return m?.type === type ? m : undefined;
    }, ms, 100);
  const send = (m: object) => agents.child.send(m);
  const ready = await next('ready', 60_000);
  const classOf = new Map(ready.hosts!.map((h) => [h.hostId, h.hardwareClass]));
  const classes = [...new Set(classOf.values())].sort();
  // The switch-over: half-way between the last warm-up interval's end and the first billed one's.
  const effNs = (ready.startUnixMs! + WARMUP_S * 1000 + 500) * 1e6;

  const collectors = new Map<string, { proc: Proc; url: string; pid: number }>();
  const startCollector = async (name: string) => {
    const p = new P.Proc(name, process.execPath, [
      CLI, 'collector', '--url', o.ch, '--database', db, '--http-port', '0', '--group', `training-faults-${o.runId}-${o.label}`, '--log-level', 'info',
      '--train-check-s', '2', '--train-min-intervals', '30', '--drift-ratio', '100', '--train-lease-ttl-s', String(LEASE_TTL_S), '--train-effective-from', String(effNs / 1e9),
    ], { env, logDir });
    const l = await P.waitFor(`${name} running`, () => logLine(p, 'collector running'), 90_000);
    const c = { proc: p, url: s(l.url), pid: p.child.pid! };
    collectors.set(name, c);
    note(`${name} up (pid ${c.pid})`);
    return c;
  };
  const lease = (holder: string, ttlMs: number) => {
    const now = Date.now();
    return chExec(o.ch, db, 'INSERT INTO model_leases FORMAT JSONEachRow', classes.map((c) => JSON.stringify({ name: `train:${c}`, holder, taken_at_ms: now, expires_at_ms: now + ttlMs })).join('\n'));
  };
  const hostsAt = async (table: string, seq: number) => {
    const rows = await q(`SELECT host, max(seq) AS s FROM ${table} GROUP BY host`);
    return [...classOf.keys()].every((h) => rows.some((r) => r.host === h && n(r.s) >= seq));
  };
  const inForce = async (names: string[]) => {
    for (const nm of names) {
      const m = await scrape(collectors.get(nm)!.url);
      if (!classes.every((c) => m[`wattsplit_model_version{hardware_class="${c}"}`] === 1)) return false;
    }
    return true;
  };

  const c1 = await startCollector('collector-1');
  // No training before the whole warm-up is stored: the test holds every class's lease meanwhile.
  await lease(GATE, 3_600_000);
  send({ op: 'warmup' });
  await next('warmup-done', 120_000);
  await P.waitFor('the warm-up stored', () => hostsAt('attributions', WARMUP_S + 1), 60_000, 500);
  note('warm-up stored');
  await lease(GATE, 0);
  let killedTrainer: Outcome['killedTrainer'];
  let appliers: string[];
  if (!o.disturbed) {
    appliers = ['collector-1'];
  } else {
    // collector-1 takes a class's lease and trains: killed a few seconds in, before it can store a version.
    const held = await P.waitFor('collector-1 holding a training lease', async () => (await q(`SELECT name FROM model_leases WHERE holder LIKE '%:${c1.pid}:%' AND expires_at_ms > taken_at_ms`))[0], 60_000, 200);
    await P.sleep(1000); // past the lease settle (0.5 s), inside the worker (tfjs start alone takes longer): a quiet machine trained a class in under 2.5 s
    await c1.proc.stop('SIGKILL');
    collectors.delete('collector-1');
    const hc = s(held.name).replace(/^train:/, '');
    killedTrainer = { pid: c1.pid, hardwareClass: hc };
    const early = await q(`SELECT hardware_class, version FROM model_versions`);
    assert.deepEqual(early, [], `collector-1 stored a version before it was killed (it was to be killed while training): ${JSON.stringify(early)}`);
    note(`collector-1 SIGKILLed while training ${hc}`);
    await startCollector('collector-2');
    await startCollector('collector-3');
    appliers = ['collector-2', 'collector-3'];
  }
  const acts = await P.waitFor('a model for every class', async () => {
    const rows = await q(`SELECT hardware_class, version, activated_by FROM model_activations`);
    return classes.every((c) => rows.some((r) => r.hardware_class === c)) ? rows : undefined;
  }, (LEASE_TTL_S + 90) * 1000, 1000);
  note(`trained: ${acts.map((x) => `${s(x.hardware_class)} v${s(x.version)} by pid ${s(x.activated_by).split(':')[1]}`).join(', ')}`);
  await P.waitFor('every collector applying the models', () => inForce(appliers), 30_000, 500);
  // The trainers' worker threads ran at the lowest CPU priority, only those threads (thread-priority.ts): the shipped process says so.
  assert.ok([...collectors.values()].some((c) => /training worker thread \d+ runs at nice 19/.test(c.proc.log())), `no collector logged its training worker at nice 19: ${[...collectors.values()].map((c) => c.proc.log().split('\n').filter((l) => /nice|priority/.test(l)).join(' | ')).join(' || ')}`);

  send({ op: 'bill', notBeforeUnixMs: 0 });
  const bs = await next('billed-start', 30_000);
  const firstBilledSeq = bs.firstBilledSeq!;
  if (o.disturbed) {
    // The replica that is applying the model is killed mid-billed period (once the stream is live), then restarted.
    const liveAt = firstBilledSeq + Math.round(BILLED_S * 0.6);
    await P.waitFor('the billed stream attributed live (or 60 % of it)', async () => {
      const rows = await q(`SELECT host, max(seq) AS s, max(t1_ns) AS t1 FROM attributions GROUP BY host`);
      return [...classOf.keys()].every((h) => rows.some((r) => r.host === h && n(r.s) > firstBilledSeq && (n(r.t1) / 1e6 > Date.now() - 3000 || n(r.s) >= liveAt)));
    }, 180_000, 200);
    const at = async () => n((await q(`SELECT min(s) AS s FROM (SELECT host, max(seq) AS s FROM attributions GROUP BY host)`))[0]?.s);
    const counts = await Promise.all(appliers.map(async (nm) => (await scrape(collectors.get(nm)!.url))['wattsplit_collector_intervals_total{method="additive_model"}'] ?? 0));
    const victim = counts[1]! > 0 ? 'collector-3' : 'collector-2';
    await collectors.get(victim)!.proc.stop('SIGKILL');
    collectors.delete(victim);
    note(`${victim} SIGKILLed while applying at seq ${await at()} (billed ${firstBilledSeq}-${firstBilledSeq + BILLED_S - 1}; intervals it had applied: ${appliers.map((nm, i) => `${nm} ${counts[i]}`).join(', ')})`);
    const again = `${victim}-restarted`;
    await startCollector(again);
    await P.waitFor(`${again} applying the models`, () => inForce([again]), 30_000, 500);
    // A replica leaves while frames keep coming.
    const leaver = victim === 'collector-3' ? again : 'collector-3';
    await collectors.get(leaver)!.proc.stop('SIGTERM', 15_000);
    collectors.delete(leaver);
    note(`${leaver} left (SIGTERM) at seq ${await at()}`);
  }
  const done = await next('done', 240_000);
  const lastSeq = done.lastSeq!;
  await P.waitFor(`every host attributed up to seq ${lastSeq}`, () => hostsAt('attributions', lastSeq), 120_000, 500);
  note(`drained at seq ${lastSeq}`);
  send({ op: 'stop' });
  await agents.stop('SIGTERM', 10_000);
  // The survivors stop cleanly (they save learner state), then the gateway and the broker.
  for (const [nm, c] of collectors) {
    await c.proc.stop('SIGTERM', 15_000);
    assert.equal(c.proc.exit?.code, 0, `${nm} exited ${JSON.stringify(c.proc.exit)}: ${c.proc.log().slice(-1000)}`);
  }
  await gw.stop('SIGTERM', 10_000);
  P.script('kafka.sh', ['stop', broker], 40);
  o.brokers.splice(o.brokers.indexOf(broker), 1);
  note('stopped');
  const out: Outcome = { db, firstBilledSeq, lastSeq, effNs, classOf, story, ...(killedTrainer ? { killedTrainer } : {}) };
  starts.set(out, ready.startUnixMs!);
  return out;
}

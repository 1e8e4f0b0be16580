#!/usr/bin/env node
/* global fetch, AbortSignal */
// `npm run fleet-demo`: the demo's accuracy report, from the fleet deployment's own processes.
//
//   wattsplit fleet-sim (simulated hosts → real Agents → SpoolingSender) ──gRPC──▶ wattsplit gateway
//     ──▶ Kafka (its own KRaft broker, scripts/kafka.sh) ──▶ 1–2 × wattsplit collector (consumer group)
//     ──▶ ClickHouse server (scripts/clickhouse-server.sh, or WATTSPLIT_TEST_CLICKHOUSE_URL; own database)
//
// 1. Warm-up: the agents send --warmup-minutes of simulated history as fast as the gateway acks it;
//    simulated time starts that long before now, so the warm-up ends about now.
// 2. Training: nobody asks the collectors to train. Each checks every --train-check-s (5 s) whether a
//    hardware class has --train-min-intervals of history and no model, trains it under the class's lease
//    and activates it from its commit time + 2 s. This script only watches `model_activations` until
//    every class has a version (and every collector's /metrics shows it loaded), meanwhile the agents
//    follow the wall clock (the stream goes on, as a real fleet's does).
// 3. Billed period: the intervals ending after every activation; --minutes of it, simulated as fast as
//    the gateway acks but at most 240 s ahead of the wall clock (the collector re-dates frames more than
//    300 s ahead of their bus timestamp).
// 4. Drain (every host's last interval attributed), then the report of `wattsplit demo`
//    (packages/cli/src/demo-report.ts) plus the model versions the billed period used and who trained them.
//
//   node scripts/fleet-demo.mjs [--hosts 3] [--vms 8] [--warmup-minutes 5] [--minutes 3] [--seed 1]
//        [--collectors 2] [--json] [--keep] [--log-level warn] [--train-timeout-s 240] [--timeout-s 540]
//
// Kafka is always its own broker (instance fleet-demo-<pid>): the collector's telemetry topic is fixed
// (wattsplit.telemetry.v1), so on a shared broker other runs' frames would be consumed, stored and
// trained on. ClickHouse: WATTSPLIT_TEST_CLICKHOUSE_URL when set (a database of its own, dropped at the
// end), else its own server (destroyed at the end). Without java + Kafka's jars or a ClickHouse binary it
// exits 2 saying why (--json: {"skipped": why}). Every child runs in its own process group and is stopped
// at the end, on failure and on Ctrl-C; every wait is bounded. Exit 0: the report was made, conservation
// holds and every billed class was attributed by a model a collector trained; 1 otherwise.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Proc, chQuery, killAllNow, root, script, sleep, waitFor } from './lib/processes.mjs';

const HELP = `usage: npm run fleet-demo -- [options]      (node scripts/fleet-demo.mjs [options])

Runs the fleet deployment on this machine — its own Kafka broker and ClickHouse server, \`wattsplit
gateway\`, collectors that train their own models, simulated hosts driving real agents — and prints the
demo's report: measured vs attributed (conservation) and every method's per-tenant error against the
simulator's truth, plus which model versions billed the period and which collector trained them.

  --hosts N              simulated hosts (default 3)
  --vms N                VMs per host (default 8)
  --warmup-minutes M     simulated history before training (default 5)
  --minutes M            billed simulated minutes at 1 Hz (default 3)
  --seed N               simulator seed (default 1)
  --collectors N         collector processes in the consumer group, 1 or 2 (default 2)
  --json                 print one JSON object instead of tables
  --keep                 keep the logs, the servers' data and the database
  --log-level L          the processes' logs (in the run's log directory): error|warn|info|debug (default info)
  --train-timeout-s S    how long to wait for every class's first model (default 240)
  --timeout-s S          the whole run's bound (default 540)
Servers: WATTSPLIT_TEST_CLICKHOUSE_URL reuses a ClickHouse server (own database); Kafka is its own broker.`;

const { values: o } = parseArgs({
  options: {
    hosts: { type: 'string', default: '3' },
    vms: { type: 'string', default: '8' },
    'warmup-minutes': { type: 'string', default: '5' },
    minutes: { type: 'string', default: '3' },
    seed: { type: 'string', default: '1' },
    collectors: { type: 'string', default: '2' },
    json: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    'log-level': { type: 'string', default: 'info' },
    'train-timeout-s': { type: 'string', default: '240' },
    'timeout-s': { type: 'string', default: '540' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (o.help) {
  process.stdout.write(`${HELP}\n`);
  process.exit(0);
}
const num = (name, min, max, integer = true) => {
  const n = Number(o[name]);
  if (!(Number.isFinite(n) && n >= min && n <= max && (!integer || Number.isInteger(n)))) {
    process.stderr.write(`fleet-demo: --${name}=${o[name]}: expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}\n`);
    process.exit(2);
  }
  return n;
};
const hosts = num('hosts', 1, 50);
const vms = num('vms', 1, 50);
const warmupS = Math.round(num('warmup-minutes', 0.5, 120, false) * 60);
const billedS = Math.round(num('minutes', 0.5, 120, false) * 60);
const seed = num('seed', 0, 2 ** 31);
const nCollectors = num('collectors', 1, 2);
const trainTimeoutMs = num('train-timeout-s', 10, 3600) * 1000;
const json = o.json;
const logLevel = o['log-level'];
if (!['error', 'warn', 'info', 'debug'].includes(logLevel)) {
  process.stderr.write(`fleet-demo: --log-level=${logLevel}: expected error, warn, info or debug\n`);
  process.exit(2);
}

const CLI = join(root, 'packages/cli/dist/main.js');
const METHODS = ['cpu_share', 'additive_model'];
const say = (s) => process.stderr.write(`fleet-demo: ${s}\n`);
const started = Date.now();
const runId = `${process.pid}${Date.now().toString(36)}`;
const name = `fleet-demo-${process.pid}`;
const db = `fleet_demo_${runId}`;
const tmp = mkdtempSync(join(tmpdir(), 'wattsplit-fleet-demo-'));
const logDir = join(tmp, 'logs');
mkdirSync(logDir);

// ───────────────────────────── servers and processes ─────────────────────────────

// `*Started`: a start was tried (a signal during the script may leave a server up before it answered).
const servers = { kafka: undefined, clickhouse: undefined, ownClickHouse: false, kafkaStarted: false, clickhouseStarted: false };

function startServers() {
  servers.kafkaStarted = true;
  const k = script('kafka.sh', ['start', name], 150);
  if (!k.ok || !/^127\.0\.0\.1:\d+$/.test(k.out)) throw Object.assign(new Error(`Kafka unavailable: ${k.why ?? k.out}`), { unavailable: true });
  servers.kafka = k.out;
  if (process.env.WATTSPLIT_TEST_CLICKHOUSE_URL) {
    servers.clickhouse = process.env.WATTSPLIT_TEST_CLICKHOUSE_URL;
  } else {
    servers.clickhouseStarted = true;
    const c = script('clickhouse-server.sh', ['start', name], 60);
    if (!c.ok) throw Object.assign(new Error(`ClickHouse unavailable: ${c.why}`), { unavailable: true });
    servers.clickhouse = c.out;
    servers.ownClickHouse = true;
  }
}

/** Synchronous, so that it also runs from an exit handler. */
function stopServers() {
  if (servers.kafkaStarted) script('kafka.sh', ['stop', name, ...(o.keep ? ['--keep-data'] : [])], 40);
  servers.kafkaStarted = false;
  servers.kafka = undefined;
  if (servers.clickhouseStarted) script('clickhouse-server.sh', [o.keep ? 'stop' : 'destroy', name], 40);
  else if (servers.clickhouse && !o.keep) {
    const u = new URL(servers.clickhouse);
    spawnSync(process.execPath, ['-e', `fetch(${JSON.stringify(u.href)}, { method: 'POST', body: 'DROP DATABASE IF EXISTS ${db}', signal: AbortSignal.timeout(10000) }).catch(() => {})`], { timeout: 15000 });
  }
  servers.clickhouseStarted = false;
  servers.clickhouse = undefined;
}

const kafkaEnv = () => ({ WATTSPLIT_KAFKA_BROKERS: servers.kafka, WATTSPLIT_KAFKA_PARTITIONS: '4', WATTSPLIT_KAFKA_SESSION_TIMEOUT_MS: '6000' });

/** The first JSON log line of `p` whose msg is `msg`, once it is there (the process exiting first is an error). */
function logLine(p, msg) {
  if (!p.alive) throw new Error(`${p.name} exited (${p.exit.sig ?? `code ${p.exit.code}`}): ${p.log().trim().split('\n').slice(-5).join(' | ')}`);
  for (const line of p.log().split('\n')) {
    if (!line.includes(msg)) continue;
    try {
      const j = JSON.parse(line);
      if (j.msg === msg) return j;
    } catch { /* a partial line */ }
  }
  return undefined;
}

async function httpOk(url) {
  const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
  return r.ok;
}

async function scrape(url) {
  const r = await fetch(url, { signal: AbortSignal.timeout(3000) });
  const out = {};
  for (const line of (await r.text()).split('\n')) {
    const m = /^([a-z_]+)(\{.*\})?\s+(\S+)$/.exec(line);
    if (m) out[`${m[1]}${m[2] ?? ''}`] = Number(m[3]);
  }
  return out;
}

async function startGateway() {
  const p = new Proc('gateway', process.execPath, [CLI, 'gateway', '--host', '127.0.0.1', '--port', '0', '--metrics-port', '0', '--log-level', logLevel], { env: kafkaEnv(), logDir });
  const l = await waitFor('the gateway listening', () => logLine(p, 'gateway listening'), 60_000);
  const g = { proc: p, address: `127.0.0.1:${l.port}`, metrics: `http://127.0.0.1:${l.metricsPort}` };
  // Ready = the producer answers and the topic exists (its readiness probe creates it with 4 partitions).
  await waitFor('the gateway ready (Kafka answering)', () => httpOk(`${g.metrics}/healthz`), 60_000, 500);
  return g;
}

async function startCollector(i, minIntervals) {
  const p = new Proc(`collector-${i}`, process.execPath, [
    CLI, 'collector', '--url', servers.clickhouse, '--database', db, '--http-port', '0', '--group', `fleet-demo-${runId}`,
    '--train-check-s', '5', '--train-min-intervals', String(minIntervals), '--log-level', logLevel,
  ], { env: kafkaEnv(), logDir });
  const l = await waitFor(`collector-${i} running`, () => logLine(p, 'collector running'), 90_000);
  await waitFor(`collector-${i} /healthz`, () => httpOk(`${l.url}/healthz`), 30_000, 500);
  return { proc: p, name: `collector-${i}`, pid: p.child.pid, url: l.url };
}

/** The agent process, and its messages in order. */
function startAgents(gatewayAddress) {
  const p = new Proc('agents', process.execPath, [
    CLI, 'fleet-sim', '--gateway', gatewayAddress, '--spool-dir', join(tmp, 'spool'), '--hosts', String(hosts), '--vms', String(vms), '--seed', String(seed),
    '--warmup-s', String(warmupS), '--billed-s', String(billedS), '--run-id', runId, '--log-level', logLevel === 'info' || logLevel === 'debug' ? 'warn' : logLevel,
  ], { logDir, stdio: ['ipc'] });
  const queue = [];
  let wake;
  p.child.on('message', (m) => {
    if (m.type === 'progress') {
      say(`  ${m.phase}: simulated ${fmtClock(m.simS)} / ${fmtClock(m.ofS)}, ${m.frames} frames sent${m.leadS !== undefined ? `, simulated clock ${m.leadS} s ahead of now` : ''}`);
      return;
    }
    queue.push(m);
    wake?.();
  });
  p.child.on('exit', () => wake?.());
  const next = async (type, timeoutMs) => {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const m = queue.shift();
      if (m?.type === 'error') throw new Error(`agent process: ${m.message}`);
      if (m?.type === type) return m;
      if (m) continue;
      if (!p.alive) throw new Error(`agent process exited (${p.exit.sig ?? `code ${p.exit.code}`}) before "${type}": ${p.log().trim().split('\n').slice(-5).join(' | ')}`);
      if (Date.now() > end) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for the agents' "${type}"`);
      await Promise.race([new Promise((r) => (wake = r)), sleep(1000)]);
      wake = undefined;
    }
  };
  return { proc: p, next, send: (m) => p.alive && p.child.connected && p.child.send(m) };
}

const fmtClock = (s) => `${Math.floor(s / 60)}:${String(Math.round(s % 60)).padStart(2, '0')}`;

// ───────────────────────────── the run ─────────────────────────────

let agentsRef; // the agent process, once started
let failed = false; // a failed run keeps its logs
let cleaning; // one cleanup, whoever asks first (the run's end, a signal, the deadline)
const cleanup = () => (cleaning ??= stopEverything());
async function stopEverything() {
  agentsRef?.send({ op: 'stop' });
  const procs = [...Proc.all];
  // Agents first (their spools close), then collectors (they commit and save learner state), then the gateway.
  const order = (p) => (p.name === 'agents' ? 0 : p.name.startsWith('collector') ? 1 : 2);
  for (const rank of [0, 1, 2]) await Promise.all(procs.filter((p) => order(p) === rank).map((p) => p.stop('SIGTERM', 10_000)));
  killAllNow();
  stopServers();
  if (o.keep) return;
  if (failed) rmSync(join(tmp, 'spool'), { recursive: true, force: true });
  else rmSync(tmp, { recursive: true, force: true });
}

async function run() {
  say(`starting Kafka${process.env.WATTSPLIT_TEST_CLICKHOUSE_URL ? '' : ' and ClickHouse'} (${name}; logs in ${logDir})`);
  startServers();
  say(`Kafka ${servers.kafka}, ClickHouse ${servers.clickhouse} database ${db}`);
  const gateway = await startGateway();
  const agents = startAgents(gateway.address);
  agentsRef = agents;
  const ready = await agents.next('ready', 60_000);
  const classes = [...new Set(ready.hosts.map((h) => h.hardwareClass))].sort();
  // A class's first model waits for most of its warm-up history: its hosts × the warm-up seconds, less 10 %.
  const perClass = Math.min(...classes.map((c) => ready.hosts.filter((h) => h.hardwareClass === c).length));
  const minIntervals = Math.max(30, Math.floor(perClass * warmupS * 0.9));
  const collectors = [];
  for (let i = 1; i <= nCollectors; i++) collectors.push(await startCollector(i, minIntervals));
  say(`gateway ${gateway.address}; ${collectors.map((c) => `${c.name} ${c.url} (pid ${c.pid})`).join(', ')}; training: check every 5 s, first model after ${minIntervals} intervals of a class`);
  say(`${hosts} hosts × ${vms} VMs (${classes.length} hardware classes: ${classes.join(', ')}), ${fmtClock(warmupS)} warm-up + ${fmtClock(billedS)} billed at 1 Hz, seed ${seed}`);

  agents.send({ op: 'warmup' });
  const wu = await agents.next('warmup-done', Math.max(120_000, warmupS * 1000));
  say(`warm-up sent (${wu.frames} frames, ${((Date.now() - started) / 1000).toFixed(0)} s); waiting for the collectors to train every class on their own...`);

  // Training: the collectors decide; this only watches what they activate.
  const t0 = Date.now();
  const acts = await waitFor(`a model for every hardware class (${classes.join(', ')}) in model_activations`, async () => {
    const rows = await chQuery(servers.clickhouse, db, `SELECT hardware_class, argMax(version, seq) AS version, argMax(effective_from_ns, seq) AS eff, argMax(activated_by, seq) AS by FROM model_activations GROUP BY hardware_class`);
    return classes.every((c) => rows.some((r) => r.hardware_class === c)) ? rows : undefined;
  }, trainTimeoutMs, 1000).catch((e) => {
    throw new Error(`${e.message}. What the collectors said about training: ${collectors.map((c) => `${c.name}: ${trainingLog(c.proc)}`).join(' / ')}`);
  });
  for (const a of acts) say(`  ${a.hardware_class} v${a.version} activated by ${collectorOf(collectors, a.by)} from ${new Date(Number(a.eff) / 1e6).toISOString()}`);
  // Every replica has loaded every class's version (its catalog refreshes every second) before billing.
  await waitFor('every collector applying the new models (wattsplit_model_version in /metrics)', async () => {
    for (const c of collectors) {
      const m = await scrape(`${c.url}/metrics`);
      if (!acts.every((a) => m[`wattsplit_model_version{hardware_class="${a.hardware_class}"}`] === Number(a.version))) return false;
    }
    return true;
  }, 30_000, 500);
  const trainedInS = (Date.now() - t0) / 1000;
  const notBefore = Math.max(...acts.map((a) => Number(a.eff) / 1e6)) + 1000;
  agents.send({ op: 'bill', notBeforeUnixMs: notBefore });
  const bs = await agents.next('billed-start', 60_000);
  say(`models in force after ${trainedInS.toFixed(0)} s; billing from seq ${bs.firstBilledSeq} (${new Date(bs.fromUnixMs).toISOString()})`);
  const done = await agents.next('done', Math.max(180_000, billedS * 1000));

  // Drain: every host's last interval attributed (attributions are the last table a store write fills).
  const drained = Date.now();
  await waitFor(`every host's last interval (seq ${done.lastSeq}) attributed`, async () => {
    const rows = await chQuery(servers.clickhouse, db, `SELECT host, max(seq) AS s FROM attributions GROUP BY host`);
    return ready.hosts.every((h) => rows.some((r) => r.host === h.hostId && Number(r.s) >= done.lastSeq));
  }, 120_000, 500);
  say(`pipeline drained (${((Date.now() - drained) / 1000).toFixed(1)} s after the last frame was acked); ${((Date.now() - started) / 1000).toFixed(0)} s wall`);

  const { buildReport, conservationHolds, printTables, sumBy } = await import(pathToFileURL(join(root, 'packages/cli/dist/demo-report.js')).href);
  const store = { query: async (sql) => ({ rows: await chQuery(servers.clickhouse, db, sql) }) };
  const truth = done.truth;
  const report = await buildReport(store, truth, done.firstBilledSeq, METHODS);
  const conservationOk = conservationHolds(report, METHODS);
  const models = await billedModels(collectors, done.firstBilledSeq);
  const gw = await scrape(`${gateway.metrics}/metrics`).catch(() => ({}));
  const out = {
    hosts,
    vms: hosts * vms,
    frames: done.frames,
    warmup_minutes: warmupS / 60,
    billed_minutes: billedS / 60,
    seed,
    clickhouse: { url: servers.clickhouse, database: db },
    kafka: servers.kafka,
    sensor_joules: done.sensorJoules,
    measured_joules: report.measured,
    attributed_joules: report.attributedByMethod[METHODS[0]],
    conservation_ok: conservationOk,
    true_joules_by_vm: Object.fromEntries(truth.map((v) => [v.uuid, v.totalJoules])),
    true_joules_by_tenant: sumBy(truth, (v) => v.tenant),
    methods: report.methods,
    anomalies: report.anomalies,
    gateway: { frames_accepted: gw.wattsplit_gateway_frames_accepted_total ?? null },
    models: models.models,
    billed_additive_records: models.records,
    billed_fallback_records: models.fallbackRecords,
    hardware_classes: classes,
    collectors: collectors.map((c) => ({ name: c.name, pid: c.pid })),
    training_wait_seconds: trainedInS,
    wall_seconds: (Date.now() - started) / 1000,
  };
  const everyClassTrained = classes.every((c) => out.models.some((m) => m.hardware_class === c && m.collector));
  if (json) process.stdout.write(`${JSON.stringify(out)}\n`);
  else {
    printTables(out, report, truth, METHODS, `Logs: ${logDir}${o.keep ? '' : ' (removed at exit; --keep keeps them and the data)'}`);
    printModels(out);
  }
  return conservationOk && everyClassTrained && out.billed_fallback_records === 0 ? 0 : 1;
}

/** The model versions that attributed the billed period, with who trained them. */
async function billedModels(collectors, firstSeq) {
  const used = await chQuery(servers.clickhouse, db, `SELECT model_version, count() AS n FROM attributions FINAL WHERE method = 'additive_model' AND seq >= ${firstSeq} GROUP BY model_version ORDER BY model_version`);
  const versions = await chQuery(servers.clickhouse, db, `SELECT hardware_class, version, model_id, trained_by, reason, intervals, train_seconds FROM model_versions FINAL ORDER BY hardware_class, version`);
  const models = [];
  let fallbackRecords = 0;
  let records = 0;
  for (const u of used) {
    records += Number(u.n);
    const m = /^(.+)@v(\d+)$/.exec(u.model_version);
    if (!m) {
      fallbackRecords += Number(u.n);
      continue;
    }
    const rows = versions.filter((v) => v.hardware_class === m[1] && Number(v.version) === Number(m[2]));
    models.push({
      hardware_class: m[1],
      version: Number(m[2]),
      trained_by: rows.map((r) => r.trained_by).join(', ') || null,
      collector: rows.map((r) => collectorOf(collectors, r.trained_by, null)).find((c) => c) ?? null,
      reason: rows[0]?.reason ?? null,
      train_intervals: rows[0] ? Number(rows[0].intervals) : null,
      train_seconds: rows[0] ? Number(rows[0].train_seconds) : null,
      billed_records: Number(u.n),
    });
  }
  return { models, records, fallbackRecords };
}

/** Which of this run's collectors a trainer id (`host:pid:random`) is. */
function collectorOf(collectors, holder, otherwise = holder) {
  const pid = Number(String(holder).split(':')[1]);
  return collectors.find((c) => c.pid === pid)?.name ?? otherwise;
}

function trainingLog(p) {
  const lines = p.log().split('\n').filter((l) => /train|model/i.test(l)).slice(-3);
  return lines.map((l) => {
    try {
      return JSON.parse(l).msg;
    } catch {
      return l.slice(0, 200);
    }
  }).join('; ') || 'nothing logged';
}

function printModels(out) {
  console.log(`\nModels that attributed the billed period (additive_model; ${out.billed_additive_records} records, ${out.billed_fallback_records} by the cold-start fallback):`);
  console.log(`${'hardware class'.padEnd(22)} ${'version'.padStart(7)}  ${'trained by'.padEnd(12)} ${'reason'.padEnd(9)} ${'intervals'.padStart(9)} ${'train s'.padStart(8)}  trainer id`);
  for (const m of out.models) {
    console.log(`${m.hardware_class.padEnd(22)} ${`v${m.version}`.padStart(7)}  ${String(m.collector ?? 'other').padEnd(12)} ${String(m.reason).padEnd(9)} ${String(m.train_intervals).padStart(9)} ${(m.train_seconds ?? NaN).toFixed(1).padStart(8)}  ${m.trained_by}`);
  }
  console.log(`\n${out.hosts} hosts × ${out.vms / out.hosts} VMs through gateway → Kafka ${out.kafka} → ${out.collectors.length} collector processes → ClickHouse ${out.clickhouse.url} (${out.clickhouse.database}); models in force ${out.training_wait_seconds.toFixed(0)} s after the warm-up; ${out.wall_seconds.toFixed(0)} s wall`);
}

// ───────────────────────────── main ─────────────────────────────

process.once('exit', () => {
  killAllNow();
  stopServers(); // a no-op when the cleanup got to it
});
let interrupted;
for (const s of ['SIGINT', 'SIGTERM']) {
  process.once(s, () => {
    interrupted = s;
    say(`${s}: stopping everything`);
    void cleanup().then(() => process.exit(130));
  });
}
const deadline = setTimeout(() => {
  say(`the run passed its ${o['timeout-s']} s bound: stopping everything`);
  void cleanup().then(() => process.exit(3));
}, Number(o['timeout-s']) * 1000);
let code = 1;
try {
  code = await run();
} catch (e) {
  if (e.unavailable) {
    say(`skipped: ${e.message}`);
    if (json) process.stdout.write(`${JSON.stringify({ skipped: e.message })}\n`);
    code = 2;
  } else {
    failed = true;
    say(interrupted ? `interrupted (${interrupted})` : `failed: ${e.message}`);
    const dead = Proc.deaths.map((d) => `${d.name} ${d.sig ?? `exit ${d.code}`}`);
    if (dead.length) say(`processes that died: ${dead.join(', ')}`);
    say(`the processes' logs are kept in ${logDir}`);
    code = 1;
  }
} finally {
  if (o.keep) say(`kept ${tmp}${servers.ownClickHouse ? ` and ClickHouse instance ${name}` : ''} (database ${db})`);
  await cleanup();
  clearTimeout(deadline);
}
say(`machine: ${hostname()}, ${cpus().length} × ${cpus()[0]?.model ?? '?'}, Node ${process.version}`);
process.exit(interrupted ? 130 : code);

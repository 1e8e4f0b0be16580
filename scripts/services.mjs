#!/usr/bin/env node
// The real servers integration tests share: a single-node Kafka (KRaft) and a ClickHouse server, both
// on free loopback ports, started with scripts/kafka.sh and scripts/clickhouse-server.sh.
//
//   node scripts/services.mjs up [--json]   start what this machine can; with --json the LAST stdout
//                                          line is {"env":{WATTSPLIT_TEST_KAFKA, WATTSPLIT_TEST_CLICKHOUSE_URL},
//                                          "unavailable":{"kafka":"why", "clickhouse":"why"}}
//   node scripts/services.mjs down         stop everything `up` started (and only that)
//   node scripts/services.mjs status       print the state file
//
// Each start is bounded (Kafka 90 s, ClickHouse 30 s); a failure makes that service "unavailable"
// with the reason, never a hang. State: .cache/services/state.json (which instance names `up` started).
// WATTSPLIT_SERVICES_SKIP=kafka,clickhouse skips some (reported unavailable: "skipped by ...").
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const stateDir = join(root, '.cache/services');
const stateFile = join(stateDir, 'state.json');
const INSTANCE = 'services';
const say = (m) => process.stderr.write(`services: ${m}\n`);

function has(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function run(script, args, timeoutS) {
  const r = spawnSync('bash', [join(root, 'scripts', script), ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: timeoutS * 1000,
    killSignal: 'SIGKILL',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  const err = (r.stderr ?? '').trim().split('\n').slice(-3).join(' | ');
  if (r.error) return { ok: false, why: `${script} ${args[0]}: ${r.error.message}${err ? ` (${err})` : ''}` };
  if (r.status !== 0) return { ok: false, why: `${script} ${args[0]} exited ${r.status}: ${err}` };
  return { ok: true, out };
}

function readState() {
  try {
    return JSON.parse(readFileSync(stateFile, 'utf8'));
  } catch {
    return { started: [] };
  }
}

function up(json) {
  mkdirSync(stateDir, { recursive: true });
  const skip = new Set((process.env.WATTSPLIT_SERVICES_SKIP ?? '').split(',').map((s) => s.trim()).filter(Boolean));
  const env = {};
  const unavailable = {};
  const state = readState();

  // Kafka: needs java; the jars come from Maven Central (fetch once, cached in .cache/kafka).
  if (skip.has('kafka')) unavailable.kafka = 'skipped by WATTSPLIT_SERVICES_SKIP';
  else if (!has('java')) unavailable.kafka = 'java not found (apt-get install default-jre-headless; see scripts/provision.sh)';
  else {
    const cached = spawnSync('bash', [join(root, 'scripts/kafka.sh'), 'jars'], { stdio: 'ignore' }).status === 0;
    const fetched = cached ? { ok: true } : has('mvn') ? run('kafka.sh', ['fetch'], 300) : { ok: false, why: 'Kafka jars not cached and mvn not found (apt-get install maven)' };
    if (!fetched.ok) unavailable.kafka = fetched.why;
    else {
      say('starting Kafka (KRaft, single node)...');
      const r = run('kafka.sh', ['start', INSTANCE], 95);
      if (r.ok && /^127\.0\.0\.1:\d+$/.test(r.out)) {
        env.WATTSPLIT_TEST_KAFKA = r.out;
        if (!state.started.includes('kafka')) state.started.push('kafka');
        say(`Kafka at ${r.out}`);
      } else {
        unavailable.kafka = r.ok ? `kafka.sh start printed ${JSON.stringify(r.out)}` : r.why;
        run('kafka.sh', ['stop', INSTANCE], 30);
      }
    }
  }

  // ClickHouse server: Debian's clickhouse-server (18.16 on bookworm) or a newer `clickhouse` binary.
  if (skip.has('clickhouse')) unavailable.clickhouse = 'skipped by WATTSPLIT_SERVICES_SKIP';
  else if (!has('clickhouse-server') && !existsSync('/usr/sbin/clickhouse-server') && !has('clickhouse') && !process.env.CLICKHOUSE_BIN) {
    unavailable.clickhouse = 'no clickhouse-server binary (apt-get install clickhouse-server; see scripts/provision.sh)';
  } else {
    say('starting ClickHouse server...');
    const r = run('clickhouse-server.sh', ['start', INSTANCE], 40);
    if (r.ok && /^http:\/\/127\.0\.0\.1:\d+$/.test(r.out)) {
      env.WATTSPLIT_TEST_CLICKHOUSE_URL = r.out;
      if (!state.started.includes('clickhouse')) state.started.push('clickhouse');
      say(`ClickHouse at ${r.out}`);
    } else {
      unavailable.clickhouse = r.ok ? `clickhouse-server.sh start printed ${JSON.stringify(r.out)}` : r.why;
      run('clickhouse-server.sh', ['stop', INSTANCE], 30);
    }
  }

  writeFileSync(stateFile, JSON.stringify({ ...state, env, unavailable, at: new Date().toISOString() }, null, 2));
  const result = { env, unavailable };
  if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    for (const [k, v] of Object.entries(env)) process.stdout.write(`export ${k}=${v}\n`);
    for (const [k, v] of Object.entries(unavailable)) process.stdout.write(`# ${k} unavailable: ${v}\n`);
  }
}

function down() {
  const state = readState();
  for (const s of state.started ?? []) {
    const r = s === 'kafka' ? run('kafka.sh', ['stop', INSTANCE], 30) : run('clickhouse-server.sh', ['stop', INSTANCE], 30);
    say(r.ok ? `${s} stopped` : `${s}: ${r.why}`);
  }
  rmSync(stateFile, { force: true });
}

const [cmd, ...rest] = process.argv.slice(2);
switch (cmd) {
  case 'up':
    up(rest.includes('--json'));
    break;
  case 'down':
    down();
    break;
  case 'status':
    process.stdout.write(`${JSON.stringify(readState(), null, 2)}\n`);
    break;
  default:
    process.stderr.write('usage: node scripts/services.mjs up [--json] | down | status\n');
    process.exit(2);
}

#!/usr/bin/env node
// `npm run test:cluster`: starts the real cluster (scripts/cluster.mjs up: 3 Kafka brokers, ZooKeeper,
// 3 ClickHouse servers) unless one is already running, runs every *.cluster.test.js (built from
// packages/*/src/*.cluster.test.ts) with WATTSPLIT_CLUSTER_* set, then stops the cluster if it started it.
// When a test fails, the servers' logs are copied to a temporary directory first (its path is printed).
// Exit status: the tests' (0 only when something passed and nothing failed); 2 when the machine lacks java,
// Kafka's jars or clickhouse-server (the reason is printed).
//   node scripts/test-cluster.mjs [name filters...]
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { tmpdir } from 'node:os';
import { clusterEnv, down, readState, root, saveLogs, status, up } from './lib/cluster.mjs';

const filters = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const say = (m) => process.stdout.write(`test-cluster: ${m}\n`);

const files = [];
(function walk(d) {
  for (const e of readdirSync(d)) {
    if (e === 'node_modules') continue;
    const p = join(d, e);
    if (statSync(p).isDirectory()) walk(p);
    else if (/\.cluster\.test\.js$/.test(e) && p.includes('/dist/')) files.push(p);
  }
})(join(root, 'packages'));
const selected = files.sort().filter((f) => !filters.length || filters.some((q) => f.includes(q)));
if (!selected.length) {
  say(`no *.cluster.test.js under packages/*/dist${filters.length ? ` matching ${filters.join(', ')}` : ''} (build first: tsc -b)`);
  process.exit(1);
}

const t0 = Date.now();
let state = readState();
let started = false;
if (!state || !(await status(state)).every((x) => x.ready)) {
  if (state) await down((m) => say(m));
  say('starting the cluster (scripts/cluster.mjs up)...');
  try {
    state = await up((m) => say(m));
  } catch (e) {
    say(`cluster unavailable: ${e.message}`);
    process.exit(e.unavailable ? 2 : 1);
  }
  started = true;
  say(`cluster up in ${state.startSeconds} s`);
} else say('using the running cluster');

const env = { ...process.env, ...clusterEnv(state), WATTSPLIT_REPO_ROOT: root };
const tap = join(mkdtempSync(join(tmpdir(), 'wattsplit-test-cluster-')), 'report.tap');
const child = spawn(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', '--test-reporter-destination=stdout', '--test-reporter=tap', `--test-reporter-destination=${tap}`, ...selected.map((f) => relative(root, f))], { cwd: root, stdio: 'inherit', env });
const code = await new Promise((res) => child.on('exit', (c) => res(c ?? 1)));
if (code !== 0) say(`tests failed: the servers' logs are kept in ${saveLogs(join(dirname(tap), 'cluster-logs'))}`);
if (started) {
  say('stopping the cluster it started...');
  await down((m) => say(m)).catch((e) => say(`stop failed: ${e.message}`));
}
const rep = readFileSync(tap, 'utf8');
const num = (k) => Number((rep.match(new RegExp(`^# ${k} (\\d+)`, 'm')) ?? [])[1] ?? 0);
process.stdout.write(`\ntests: ${num('pass')} passed, ${num('fail')} failed, ${num('skipped')} skipped (${Math.round((Date.now() - t0) / 1000)} s with the cluster's start and stop)\n`);
process.exit(code === 0 && num('fail') === 0 && num('pass') > 0 ? 0 : 1);

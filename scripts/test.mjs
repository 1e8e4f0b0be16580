#!/usr/bin/env node
// The one test command. Modes: unit tests need nothing; integration tests use the real servers this
// script starts when the machine has them (Kafka KRaft broker, clickhouse-server, libvirtd) and skip
// with a stated reason when it does not; the end-to-end tests run the whole pipeline.
//   node scripts/test.mjs [--unit] [--no-lint] [--no-services] [--cluster] [files or name filters...]
// --cluster ends the run with the cluster suite (scripts/test-cluster.mjs: 3 Kafka brokers, ZooKeeper, 3
// ClickHouse servers; it skips with its reason, exit 2, on a machine without java, Kafka's jars or
// clickhouse-server). CI runs that suite after this one as its own stage (`npm run test:cluster`, .ci/run): it
// needs ~1.6 GiB and a few minutes more than a developer's `npm test` wants.
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, statSync, readFileSync, mkdtempSync } from 'node:fs';
import { join, dirname, relative } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const flag = (f) => argv.includes(f);
const filters = argv.filter((a) => !a.startsWith('--'));

function step(name, cmd, args, opts = {}) {
  process.stdout.write(`\n== ${name}\n`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  if (r.status !== 0) {
    process.stdout.write(`\n${name} failed (exit ${r.status})\n`);
    process.exit(r.status ?? 1);
  }
}

step('generated code matches proto/', process.execPath, ['scripts/gen-proto.mjs', '--check']);
if (!flag('--no-lint')) step('lint', join(root, 'node_modules/.bin/eslint'), ['--max-warnings', '0', '.']);

const files = [];
(function walk(d) {
  for (const e of readdirSync(d)) {
    if (e === 'node_modules') continue;
    const p = join(d, e);
    const s = statSync(p);
    if (s.isDirectory()) walk(p);
    // *.cluster.test.js need the real cluster: scripts/test-cluster.mjs runs them (below, on a whole run)
    else if (/\.test\.js$/.test(e) && !/\.cluster\.test\.js$/.test(e) && p.includes(`${'/dist/'}`)) files.push(p);
  }
})(join(root, 'packages'));
let selected = files.sort();
if (filters.length) selected = selected.filter((f) => filters.some((q) => f.includes(q)));
if (flag('--unit')) selected = selected.filter((f) => !/\.(int|e2e)\.test\.js$/.test(f));
// `node --test` with no files searches the whole tree: a filter that matches nothing would run every test
if (!selected.length) {
  process.stderr.write(`no built test file matches ${filters.map((q) => JSON.stringify(q)).join(', ') || '(no filter)'} (test files are matched by their path under packages/*/dist/)\n`);
  process.exit(1);
}

// Shared real servers for integration tests (each test still uses its own topic / table / database).
const env = { ...process.env, WATTSPLIT_REPO_ROOT: root };
const stops = [];
if (!flag('--unit') && !flag('--no-services')) {
  const svc = join(root, 'scripts/services.mjs');
  try {
    statSync(svc);
    const r = spawnSync(process.execPath, [svc, 'up', '--json'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], env });
    const out = r.stdout.toString().trim().split('\n').pop() ?? '{}';
    const got = JSON.parse(out || '{}');
    for (const [k, v] of Object.entries(got.env ?? {})) env[k] = String(v);
    for (const [k, why] of Object.entries(got.unavailable ?? {})) process.stdout.write(`service ${k} unavailable: ${why}\n`);
    stops.push(() => spawnSync(process.execPath, [svc, 'down'], { cwd: root, stdio: 'inherit', env }));
  } catch { /* no services script yet */ }
}

process.stdout.write(`\n== node --test (${selected.length} files)\n`);
const tap = join(mkdtempSync(join(tmpdir(), 'wattsplit-test-')), 'report.tap');
const child = spawn(process.execPath, [
  '--test', '--test-concurrency=1',
  '--test-reporter=spec', '--test-reporter-destination=stdout',
  '--test-reporter=tap', `--test-reporter-destination=${tap}`,
  ...selected.map((f) => relative(root, f)),
], { cwd: root, stdio: 'inherit', env });
const code = await new Promise((res) => child.on('exit', (c) => res(c ?? 1)));
for (const s of stops) s();
const rep = readFileSync(tap, 'utf8');
const num = (k) => Number((rep.match(new RegExp(`^# ${k} (\\d+)`, 'm')) ?? [])[1] ?? 0);
process.stdout.write(`\ntests: ${num('pass')} passed, ${num('fail')} failed, ${num('skipped')} skipped\n`);
const mainOk = code === 0 && num('fail') === 0 && num('pass') > 0;
let clusterOk = true;
if (flag('--cluster')) {
  process.stdout.write('\n== cluster suite (scripts/test-cluster.mjs)\n');
  const r = spawnSync(process.execPath, [join(root, 'scripts/test-cluster.mjs')], { cwd: root, stdio: 'inherit', env });
  if (r.status === 2) process.stdout.write('cluster suite: skipped (the reason is above)\n');
  else clusterOk = r.status === 0;
  process.stdout.write(`cluster suite: ${r.status === 2 ? 'skipped' : clusterOk ? 'passed' : 'FAILED'}\n`);
}
process.exit(mainOk && clusterOk ? 0 : 1);

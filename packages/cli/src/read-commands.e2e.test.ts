// The read-only commands (query, bill, cap-plan) on a real demo data directory, as a user runs them:
// child processes of the built CLI with its real logger. Bad input and a busy or missing store are one
// line and a non-zero exit, never a hang, a stack trace or a silently empty answer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const main = join(dirname(fileURLToPath(import.meta.url)), 'main.js');
const run = (args: string[], timeout = 60_000): SpawnSyncReturns<string> => spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', timeout, maxBuffer: 64 << 20 });

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'wattsplit-read-'));
  execFileSync(process.execPath, [main, 'demo', '--hosts', '2', '--vms', '4', '--warmup-minutes', '1', '--minutes', '2', '--seed', '3', '--data-dir', dir, '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** One line on stderr, naming what it must, with no stack trace. */
function oneLine(r: SpawnSyncReturns<string>, status: number, pattern: RegExp): void {
  assert.equal(r.status, status, `exit ${r.status}, stderr: ${r.stderr}`);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
}

interface CapPlanJson {
  window: { method: string; windowS: number; hosts: { hostId: string; seconds: number; powerW: number; vmW: number; nonVmW: number; vms: { powerW: number }[] }[] };
}

test('cap-plan from the store, for the learned and the CPU-share method: host power = Σ VM + non-VM power over one window', () => {
  for (const method of ['additive_model', 'cpu_share']) {
    // The README's command: planning works (safe or not), no "VM powers exceed the host's measured power".
    const readme = run(['cap-plan', '--cap-w', '900', '--method', method, '--data-dir', dir]);
    assert.ok(readme.status === 0 || readme.status === 1, `${method}: exit ${readme.status}: ${readme.stderr}`);
    assert.match(readme.stdout, /^plan is (SAFE|NOT SAFE)/, `${method}: ${readme.stderr}`);
    assert.doesNotMatch(readme.stderr, /CAP_INPUT_INVALID|exceeds the host/);

    const r = run(['cap-plan', '--cap-w', '100000', '--method', method, '--window-s', '30', '--data-dir', dir, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const w = (JSON.parse(r.stdout) as CapPlanJson).window;
    assert.equal(w.method, method);
    assert.deepEqual(w.hosts.map((h) => h.hostId).sort(), ['hv-00', 'hv-01']);
    for (const h of w.hosts) {
      assert.ok(h.seconds > 25 && h.seconds < 35, `${h.hostId}: intervals ending in the last 30 s cover ${h.seconds} s`);
      assert.ok(h.powerW > 0 && h.vms.length > 0);
      assert.ok(Math.abs(h.vms.reduce((a, v) => a + v.powerW, 0) - h.vmW) <= 1e-9 * h.powerW);
      assert.ok(Math.abs(h.powerW - (h.vmW + h.nonVmW)) <= 1e-6 * h.powerW, `${method} ${h.hostId}: ${h.powerW} W measured vs ${h.vmW} + ${h.nonVmW} W`);
      assert.ok(h.vmW <= h.powerW * (1 + 1e-9));
    }
  }
});

test('bill for an unknown tenant or method is an error naming the value and listing what the store knows (exit 2)', () => {
  oneLine(run(['bill', '--data-dir', dir, '--tenant', 'no-such-tenant']), 2, /CONFIG_INVALID: --tenant=no-such-tenant: .*known tenants: .*acme-ai/);
  oneLine(run(['bill', '--data-dir', dir, '--method', 'cpu_shares']), 2, /CONFIG_INVALID: --method=cpu_shares: .*known methods: additive_model, cpu_share/);
  oneLine(run(['cap-plan', '--cap-w', '900', '--data-dir', dir, '--method', 'nope']), 2, /--method=nope: .*known methods: additive_model, cpu_share/);
  const known = run(['bill', '--data-dir', dir, '--tenant', 'acme-ai', '--method', 'additive_model', '--json']);
  assert.equal(known.status, 0, known.stderr);
  const report = JSON.parse(known.stdout) as { total_joules: number; tenants: { vms: { vm_name: string; host: string; kwh: number }[] }[] };
  assert.ok(report.total_joules > 0);
  // the table says what its help says: a line per VM under the tenant, the same kWh as the JSON's
  const vms = report.tenants[0]!.vms;
  assert.ok(vms.length > 0);
  const table = run(['bill', '--data-dir', dir, '--tenant', 'acme-ai', '--method', 'additive_model']);
  assert.equal(table.status, 0, table.stderr);
  for (const v of vms) assert.match(table.stdout, new RegExp(`^ {2}${v.vm_name} @ ${v.host} +${v.kwh.toFixed(6)} `, 'm'), `no line for ${v.vm_name} in:\n${table.stdout}`);
  // bad SQL still names the problem
  oneLine(run(['query', '--data-dir', dir, 'SELECT nope FROM attributions']), 1, /STORE_QUERY_FAILED.*nope/);
});

test('read-only commands refuse a data directory that does not exist, and do not create it (exit 2)', () => {
  const missing = join(dir, 'no', 'such', 'dir');
  oneLine(run(['query', '--data-dir', missing, 'SELECT 1']), 2, new RegExp(`--data-dir=${missing}: .*does not exist`));
  oneLine(run(['bill', '--data-dir', missing]), 2, /does not exist/);
  oneLine(run(['cap-plan', '--cap-w', '900', '--data-dir', missing]), 2, /does not exist/);
  assert.equal(existsSync(join(dir, 'no')), false, 'nothing was created');
  const empty = mkdtempSync(join(tmpdir(), 'wattsplit-empty-'));
  try {
    oneLine(run(['query', '--data-dir', empty, 'SELECT 1']), 2, /holds no wattsplit store/);
    assert.equal(existsSync(join(empty, 'clickhouse')), false);
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});

test('numeric flag errors are one line with the flag, the value and the range, exit 2', () => {
  oneLine(run(['cap-plan', '--cap-w', '-5', '--data-dir', dir]), 2, /CONFIG_INVALID: --cap-w=-5: expected a number > 0/);
  oneLine(run(['cap-plan', '--cap-w=900', '--window-s', '-3', '--data-dir', dir]), 2, /--window-s=-3: expected an integer from 1 to 86400/);
  oneLine(run(['demo', '--hosts', '-1']), 2, /CONFIG_INVALID: --hosts=-1: expected an integer from 1 to 1000/);
  oneLine(run(['demo', '--hosts', '0']), 2, /--hosts=0: expected an integer from 1 to 1000/);
  oneLine(run(['demo', '--minutes', '1.5']), 2, /--minutes=1.5: expected an integer from 1 to 1440/);
  oneLine(run(['bill', '--price-per-kwh', '-0.2', '--data-dir', dir]), 2, /--price-per-kwh=-0.2: expected a number ≥ 0/);
  oneLine(run(['bill', '--price-per-kwh', '0x10', '--data-dir', dir]), 2, /--price-per-kwh=0x10: expected a number ≥ 0/);
  oneLine(run(['agent', '--check', '--interval-ms', '-100']), 2, /--interval-ms=-100: expected an integer from 10 to/);
  oneLine(run(['demo', '--hosts']), 2, /--hosts: missing value/);
  oneLine(run(['demo', '--hosts', '--vms', '3']), 2, /--hosts: missing value/);
  oneLine(run(['demo', '--frobnicate']), 2, /unknown option --frobnicate/);
});

/** Runs the CLI with stdout closed by the reader: at once, or after the first chunk (`| head -c 1`). */
async function closedPipe(args: string[], afterFirstChunk: boolean): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [main, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  if (afterFirstChunk) child.stdout.once('data', () => child.stdout.destroy());
  else child.stdout.destroy();
  const code = await new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
  return { code, stderr };
}

test('output into a pipe the reader closed early: every command exits quietly, no EPIPE stack trace', async () => {
  const cases: [string[], boolean][] = [
    [['bill', '--data-dir', dir], false],
    [['bill', '--data-dir', dir, '--tenant', 'acme-ai'], false],
    [['query', '--data-dir', dir, 'SELECT * FROM attributions FINAL'], true],
    [['cap-plan', '--cap-w', '100000', '--data-dir', dir, '--json'], false],
    [['--help'], false],
  ];
  for (const [args, afterFirstChunk] of cases) {
    const r = await closedPipe(args, afterFirstChunk);
    assert.equal(r.code, 0, `${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
    assert.equal(r.stderr, '', `${args.join(' ')}: ${r.stderr}`);
  }
});

test('a data directory another process holds: query and bill fail within seconds, naming the directory and the holder PID', async (t) => {
  const storeUrl = pathToFileURL(createRequire(import.meta.url).resolve('@wattsplit/store')).href;
  const script = join(dir, 'hold-store.mjs');
  writeFileSync(script, `
    const { ChdbStore } = await import(${JSON.stringify(storeUrl)});
    const s = new ChdbStore({ dataDir: ${JSON.stringify(join(dir, 'clickhouse'))} });
    await s.init();
    process.stdout.write('ready\\n');
    process.stdin.on('data', () => {});
    process.stdin.on('end', async () => { await s.close(); process.exit(0); });`);
  const holder = spawn(process.execPath, [script], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.after(async () => {
    if (holder.exitCode === null) {
      holder.stdin.end();
      await new Promise((r) => holder.once('exit', r));
    }
  });
  await new Promise<void>((res, rej) => {
    holder.stdout.setEncoding('utf8').on('data', (d: string) => d.includes('ready') && res());
    holder.once('exit', (c) => rej(new Error(`holder exited ${c}`)));
  });
  for (const args of [['query', '--data-dir', dir, 'SELECT 1'], ['bill', '--data-dir', dir], ['cap-plan', '--cap-w', '900', '--data-dir', dir]]) {
    const t0 = Date.now();
    const r = run(args, 20_000);
    assert.notEqual(r.signal, 'SIGTERM', `${args[0]} hung (killed after 20 s)`);
    assert.ok(Date.now() - t0 < 10_000, `${args[0]} took ${Date.now() - t0} ms`);
    oneLine(r, 1, new RegExp(`STORE_UNAVAILABLE: chDB data directory ${join(dir, 'clickhouse')} is in use by another process \\(PID ${holder.pid}`));
  }
});

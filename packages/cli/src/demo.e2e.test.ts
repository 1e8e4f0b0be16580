// End to end, embedded: `wattsplit demo` runs agents over simulated hosts → gRPC → gateway → bus →
// NestJS collector → chDB; then `wattsplit query` reads the attributions back with SQL from the same
// data directory. Both as a user runs them: child processes of the built CLI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const main = join(dirname(fileURLToPath(import.meta.url)), 'main.js');
const cli = (args: string[]) => execFileSync(process.execPath, [main, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });

interface DemoJson {
  hosts: number;
  vms: number;
  frames: number;
  sensor_joules: number;
  measured_joules: number;
  attributed_joules: number;
  conservation_ok: boolean;
  true_joules_by_vm: Record<string, number>;
  methods: Record<string, { max_tenant_error_pct: number; mean_tenant_error_pct: number; attributed_joules: number }>;
}

test('demo → gRPC → gateway → bus → collector → chDB, then SQL reads the same joules back', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-demo-e2e-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const out = JSON.parse(cli(['demo', '--hosts', '2', '--vms', '6', '--warmup-minutes', '3', '--minutes', '2', '--seed', '5', '--data-dir', dir, '--json'])) as DemoJson;
  assert.equal(out.hosts, 2);
  assert.equal(out.vms, 12);
  assert.equal(out.frames, 2 * (5 * 60 + 1));
  assert.equal(out.conservation_ok, true);
  assert.ok(Math.abs(out.measured_joules - out.attributed_joules) <= 1e-6 * out.measured_joules);
  assert.ok(out.measured_joules / out.sensor_joules > 0.999 && out.measured_joules / out.sensor_joules < 1.001, `captured ${out.measured_joules} of ${out.sensor_joules} J`);
  assert.deepEqual(Object.keys(out.methods).sort(), ['additive_model', 'cpu_share']);
  for (const m of Object.values(out.methods)) assert.ok(Math.abs(m.attributed_joules - out.measured_joules) <= 1e-6 * out.measured_joules);
  assert.ok(Object.keys(out.true_joules_by_vm).length >= 10);

  // The same numbers through SQL, with the CLI's query command on the demo's data directory.
  const rows = cli(['query', '--data-dir', dir, '--format', 'json', "SELECT method, sum(dynamic_j + static_j) AS j, count() AS n FROM attributions FINAL GROUP BY method ORDER BY method"])
    .trim().split('\n').map((l) => JSON.parse(l) as { method: string; j: number; n: string });
  assert.deepEqual(rows.map((r) => r.method), ['additive_model', 'cpu_share']);
  const measured = JSON.parse(cli(['query', '--data-dir', dir, '--format', 'json', 'SELECT sum(rapl_j + gpu_j + bmc_rest_j) AS j FROM host_samples FINAL']).trim()) as { j: number };
  for (const r of rows) {
    assert.ok(Number(r.n) > 0);
    assert.ok(Math.abs(r.j - measured.j) <= 1e-6 * measured.j, `${r.method}: ${r.j} J vs measured ${measured.j} J`);
  }
});

test('bad flags give one clear line naming the problem, not a stack trace (exit 2)', () => {
  const r = spawnSync(process.execPath, [main, 'demo', '--hosts', '0'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /CONFIG_INVALID: --hosts=0: expected an integer from 1 to 1000/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  const u = spawnSync(process.execPath, [main, 'frobnicate'], { encoding: 'utf8' });
  assert.equal(u.status, 2);
  assert.match(u.stderr, /unknown command "frobnicate"/);
});

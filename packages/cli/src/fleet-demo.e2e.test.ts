// End to end, fleet mode: `node scripts/fleet-demo.mjs --json` (what `npm run fleet-demo` runs) on a small
// fleet — its own Kafka broker, the shared ClickHouse server (WATTSPLIT_TEST_CLICKHOUSE_URL, a database of
// its own), `wattsplit gateway`, two `wattsplit collector` processes that train their own models, simulated
// agents — and the report it prints: conservation, every hardware class billed by a model a collector
// trained, the learned model close to the simulator's truth where the CPU-time split is not.
// It starts its own broker (the collector's telemetry topic is fixed, a shared broker would mix runs), so it
// runs where the shared test services could start (scripts/test.mjs sets WATTSPLIT_TEST_KAFKA and
// WATTSPLIT_TEST_CLICKHOUSE_URL) and skips with the reason otherwise. ≈ 1 minute on a 2-core box.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = process.env.WATTSPLIT_REPO_ROOT ?? join(dirname(fileURLToPath(import.meta.url)), '../../..');

interface FleetDemoJson {
  hosts: number;
  vms: number;
  sensor_joules: number;
  measured_joules: number;
  attributed_joules: number;
  conservation_ok: boolean;
  true_joules_by_vm: Record<string, number>;
  methods: Record<string, { attributed_joules: number; max_tenant_error_pct: number; worst_tenant: string }>;
  hardware_classes: string[];
  collectors: { name: string; pid: number }[];
  models: { hardware_class: string; version: number; trained_by: string | null; collector: string | null; billed_records: number }[];
  billed_fallback_records: number;
}

function skipReason(): string | false {
  if (!process.env.WATTSPLIT_TEST_KAFKA) return 'WATTSPLIT_TEST_KAFKA not set (no Kafka on this machine: node scripts/services.mjs up)';
  if (!process.env.WATTSPLIT_TEST_CLICKHOUSE_URL) return 'WATTSPLIT_TEST_CLICKHOUSE_URL not set (no ClickHouse server on this machine)';
  return false;
}

test('npm run fleet-demo: gateway → Kafka → 2 training collectors → ClickHouse; conservation, collector-trained models, accuracy', { skip: skipReason(), timeout: 330_000 }, async (t) => {
  const args = ['--json', '--hosts', '2', '--vms', '6', '--warmup-minutes', '2', '--minutes', '1', '--seed', '5', '--collectors', '2', '--timeout-s', '300'];
  const child = spawn(process.execPath, [join(root, 'scripts/fleet-demo.mjs'), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number>((res) => child.on('exit', (c) => res(c ?? 1)));
  if (code === 2) {
    t.skip(`fleet demo could not start its servers: ${err.trim().split('\n').filter((l) => l.includes('skipped')).pop() ?? err.slice(-300)}`);
    return;
  }
  let r: FleetDemoJson;
  try {
    r = JSON.parse(out.trim().split('\n').pop() ?? '') as FleetDemoJson;
  } catch {
    assert.fail(`fleet-demo.mjs exited ${code} without a JSON report; stderr tail:\n${err.slice(-3000)}`);
  }
  const ctx = `\n${err.slice(-3000)}`;
  assert.equal(r.hosts, 2);
  assert.equal(r.vms, 12);
  // Conservation: what the sensors measured is captured, and every method attributes exactly that.
  assert.equal(r.conservation_ok, true, ctx);
  assert.ok(Math.abs(r.measured_joules / r.sensor_joules - 1) < 1e-3, `captured ${r.measured_joules} of ${r.sensor_joules} J`);
  assert.deepEqual(Object.keys(r.methods).sort(), ['additive_model', 'cpu_share']);
  for (const [m, v] of Object.entries(r.methods)) assert.ok(Math.abs(v.attributed_joules - r.measured_joules) <= 1e-6 * r.measured_joules, `${m}: ${v.attributed_joules} J vs measured ${r.measured_joules} J`);
  // Every hardware class was billed by a model that one of the run's collectors trained, never by the cold-start fallback.
  assert.equal(r.hardware_classes.length, 2);
  assert.equal(r.billed_fallback_records, 0, ctx);
  const names = new Set(r.collectors.map((c) => c.name));
  for (const hc of r.hardware_classes) {
    const used = r.models.filter((m) => m.hardware_class === hc);
    assert.ok(used.length > 0, `no model billed ${hc}: ${JSON.stringify(r.models)}`);
    for (const m of used) assert.ok(m.collector !== null && names.has(m.collector) && m.trained_by, `${hc} v${m.version} trained by ${m.trained_by}, not by a collector of this run (${[...names].join(', ')})`);
  }
  // Accuracy (per-tenant billing error against the simulator's truth): the learned model within a few %,
  // the CPU-time split far off for the light tenants.
  const am = r.methods.additive_model!;
  const cs = r.methods.cpu_share!;
  assert.ok(am.max_tenant_error_pct < 8, `additive_model worst tenant ${am.worst_tenant} ${am.max_tenant_error_pct.toFixed(1)} %`);
  assert.ok(cs.max_tenant_error_pct > 2 * am.max_tenant_error_pct && cs.max_tenant_error_pct > 15, `cpu_share worst ${cs.max_tenant_error_pct.toFixed(1)} % vs additive_model ${am.max_tenant_error_pct.toFixed(1)} %`);
});

// Smoke of the accuracy protocol's evaluation path (benchmarks/accuracy-oos.mjs, issue 12) as it is run: the
// benchmark command as a child process, on one evaluation fleet shortened to 90 + 60 simulated seconds. It runs
// the demo's pipeline (agents → gRPC → gateway → bus → collector → chDB, model trained by the collector) on
// family physics; the full protocol is a benchmark, not a test (docs/accuracy.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EVALUATION_PROTOCOL } from '@wattsplit/simulator';

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');

interface MethodScores {
  conservation_ok: boolean;
  attributed_joules: number;
  tenant_total: { worst: number; mean: number };
  tenant_dynamic: { worst: number; mean: number };
  coverage: { tenants_with_interval: number; covered: number; share: number; mean_rel_half_width: number } | null;
  zero_billed_vms: number;
  worst_vm_dynamic: number;
  host_static: Record<string, { true_w: number; billed_w: number; error_w: number }>;
  tenants?: unknown;
}
interface FleetScores {
  seed: number;
  physics: unknown;
  host_physics: Record<string, unknown>;
  trained: { hardwareClass: string; version?: number; skipped?: string }[];
  measured_joules: number;
  sensor_joules: number;
  methods: Record<string, MethodScores>;
}

test('accuracy protocol: an evaluation fleet through the whole pipeline, scored in aggregate only', () => {
  const e = EVALUATION_PROTOCOL.eval.find((x) => Array.isArray(x.physics) && x.physics.length >= 3)!;
  const text = execFileSync(process.execPath, [join(root, 'benchmarks/accuracy.mjs'), '--set', 'eval', '--seeds', String(e.seed), '--warmup-s', '90', '--billed-s', '60', '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const report = JSON.parse(text) as { protocol: { hardware_class: string; hosts: number }; sets: { eval?: { fleets: FleetScores[] }; dev?: unknown } };
  assert.equal(report.sets.dev, undefined, 'only the set asked for');
  const fleets = report.sets.eval!.fleets;
  assert.equal(fleets.length, 1);
  const f = fleets[0]!;
  assert.equal(f.seed, e.seed);
  assert.deepEqual(f.physics, e.physics);
  for (const p of Object.values(f.host_physics)) assert.deepEqual([...(p as string[])].sort(), [...(e.physics as string[])].sort());
  assert.equal(report.protocol.hardware_class, EVALUATION_PROTOCOL.hostSpec.hardwareClass);
  assert.ok(f.trained.some((t) => t.version !== undefined), `the collector trained a model: ${JSON.stringify(f.trained)}`);
  assert.ok(f.measured_joules / f.sensor_joules > 0.999 && f.measured_joules / f.sensor_joules < 1.001, `captured ${f.measured_joules} of ${f.sensor_joules} J`);
  assert.deepEqual(Object.keys(f.methods).sort(), ['additive_model', 'cpu_share']);
  for (const [name, m] of Object.entries(f.methods)) {
    assert.equal(m.conservation_ok, true, name);
    assert.ok(Math.abs(m.attributed_joules - f.measured_joules) <= 1e-6 * f.measured_joules, name);
    for (const x of [m.tenant_total.worst, m.tenant_total.mean, m.tenant_dynamic.worst, m.tenant_dynamic.mean, m.worst_vm_dynamic]) assert.ok(Number.isFinite(x) && x >= 0, `${name}: ${x}`);
    assert.ok(m.tenant_total.worst >= m.tenant_total.mean && m.tenant_dynamic.worst >= m.tenant_dynamic.mean);
    assert.equal(Object.keys(m.host_static).length, EVALUATION_PROTOCOL.hosts);
    for (const h of Object.values(m.host_static)) assert.ok(h.true_w > 50 && Number.isFinite(h.error_w));
    assert.equal(m.tenants, undefined, 'evaluation results carry no per-tenant rows');
  }
  // the CPU-share baseline carries no interval; the learned model's interval is scored
  assert.equal(f.methods.cpu_share!.coverage, null);
  const cov = f.methods.additive_model!.coverage!;
  assert.ok(cov.tenants_with_interval > 0 && cov.covered <= cov.tenants_with_interval && cov.mean_rel_half_width > 0);
});

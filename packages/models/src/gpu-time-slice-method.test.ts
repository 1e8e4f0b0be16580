import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkConservation, type AttributionContext } from '@wattsplit/attribution';
import { GpuTimeSliceMethod } from './index.js';
import { synthHost } from './test-hosts.js';

const ctx: AttributionContext = { policy: 'equal', staticPower: { watts: { rapl: 123, gpu: 150, bmc_rest: 42 }, origin: 'configured' } };

test('time-sliced GPU: each VM\'s dynamic GPU energy within 3 % of truth after warm-up (SM-time share is far off); passthrough goes whole to its VM', () => {
  const { intervals, truthGpu } = synthHost({ seed: 21, seconds: 1500, gpu: { dynW: [560, 300], idleW: 130, passthroughW: 400 } });
  const m = new GpuTimeSliceMethod({ minWindows: 100 });
  const got: Record<string, number> = {};
  const base: Record<string, number> = {};
  const truth: Record<string, number> = {};
  intervals.forEach((iv, i) => {
    // causal: each interval is split with what the learner saw before it, then observed
    const r = m.attribute(iv, ctx);
    m.observe(iv);
    assert.deepEqual(checkConservation(r), []);
    if (i < 100) {
      assert.match(r.note, /gpu 0000:17:00\.0: warming up/);
      return;
    }
    assert.equal(r.note, '');
    const a = iv.vms[0]!.gpus[0]!.smUtilPct;
    const b = iv.vms[1]!.gpus[0]!.smUtilPct;
    const dyn = iv.gpus[0]!.joules - (m.fitOf('h1', '0000:17:00.0')!.staticW * iv.durationS);
    for (const s of r.shares) if (s.source === 'gpu' && (s.vmUuid === 'vm-0' || s.vmUuid === 'vm-1')) got[s.vmUuid] = (got[s.vmUuid] ?? 0) + s.dynamicJoules;
    if (a + b > 0) {
      base['vm-0'] = (base['vm-0'] ?? 0) + (dyn * a) / (a + b);
      base['vm-1'] = (base['vm-1'] ?? 0) + (dyn * b) / (a + b);
    }
    // passthrough: the whole device to vm-2
    const vm2 = r.shares.filter((s) => s.source === 'gpu' && s.vmUuid === 'vm-2').reduce((x, s) => x + s.dynamicJoules + s.staticJoules, 0);
    assert.ok(Math.abs(vm2 - 400) < 1e-6, `vm-2 got ${vm2}`);
  });
  for (const k of ['vm-0', 'vm-1']) truth[k] = truthGpu[k]!;
  const fit = m.fitOf('h1', '0000:17:00.0')!;
  assert.ok(Math.abs(fit.staticW - 130) < 5, `static ${fit.staticW}`);
  assert.ok(Math.abs(fit.signatures['vm-0']! - 560 / 0.99) / (560 / 0.99) < 0.03, JSON.stringify(fit.signatures));
  assert.ok(Math.abs(fit.signatures['vm-1']! - 300 / 0.99) / (300 / 0.99) < 0.03, JSON.stringify(fit.signatures));
  const ratioGot = got['vm-0']! / (got['vm-0']! + got['vm-1']!);
  const ratioBase = base['vm-0']! / (base['vm-0']! + base['vm-1']!);
  const ratioTrue = truth['vm-0']! / (truth['vm-0']! + truth['vm-1']!);
  assert.ok(Math.abs(ratioGot / ratioTrue - 1) < 0.03, `model ${ratioGot} vs true ${ratioTrue}`);
  assert.ok(Math.abs(ratioBase / ratioTrue - 1) > 0.05, `baseline ${ratioBase} vs true ${ratioTrue}`);
});

test('a host without GPUs passes the base method through, named gpu_signature', () => {
  const { intervals } = synthHost({ seed: 1, seconds: 2 });
  const r = new GpuTimeSliceMethod().attribute(intervals[0]!, ctx);
  assert.equal(r.method, 'gpu_signature');
  assert.equal(r.modelVersion, 'cpu_share:1');
  assert.deepEqual(checkConservation(r), []);
});

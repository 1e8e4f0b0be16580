/**
 * End to end on the simulator (a test-only dependency): frames of a realistic fleet → IntervalAligner →
 * CpuShareMethod. Every interval conserves exactly, and the CPU-share baseline is measurably unfair per
 * tenant on the default fleet — the gap learned models are meant to close.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createFleet } from '@wattsplit/simulator';
import { IntervalAligner } from './interval-aligner.js';
import { CpuShareMethod } from './cpu-share-method.js';
import { checkConservation } from './conservation.js';
import { tenantErrors } from './tenant-errors.js';
import type { SourceName, StaticPowerEstimate } from './types.js';

test('default fleet, 300 s: every interval conserves and CPU-share is off by tens of % for some tenant', () => {
  const fleet = createFleet({ hosts: 4, vmsPerHost: 12, seed: 1 });
  // the simulator's true static power per host (what a perfectly configured operator would enter)
  fleet.step(0.001);
  const staticW = new Map<string, StaticPowerEstimate>();
  for (const h of fleet.truth().hosts) {
    const w = (s: SourceName) => h.staticJoules[s] / 0.001;
    staticW.set(h.hostId, { watts: { rapl: w('rapl'), gpu: w('gpu'), bmc_rest: w('bmc_rest') }, origin: 'configured' });
  }
  const before = fleet.truth();
  const aligner = new IntervalAligner();
  const method = new CpuShareMethod();
  const billed: Record<string, number> = {};
  let intervals = 0;
  const anomalies = new Map<string, number>();
  const round = (seq: number) => {
    for (const h of fleet.hosts) {
      const r = aligner.push(h.oracleFrame(seq));
      assert.equal(r.rejected, undefined);
      for (const a of r.anomalies) anomalies.set(a.code, (anomalies.get(a.code) ?? 0) + 1);
      if (!r.interval) continue;
      intervals++;
      const res = method.attribute(r.interval, { policy: 'reserved', staticPower: staticW.get(h.hostId)! });
      assert.deepEqual(checkConservation(res), []);
      for (const s of res.shares) if (s.kind === 'vm') billed[s.tenant] = (billed[s.tenant] ?? 0) + s.dynamicJoules + s.staticJoules;
    }
  };
  round(1);
  for (let i = 0; i < 300; i++) {
    fleet.step(1);
    round(i + 2);
  }
  assert.equal(intervals, 4 * 300);
  assert.equal(anomalies.get('VM_VANISHED'), 2, 'the stopped VM and the migrated one');
  const after = fleet.truth();
  const truth: Record<string, number> = {};
  for (const v of after.vms) {
    const b = before.vms.find((x) => x.uuid === v.uuid && x.hostId === v.hostId)?.totalJoules ?? 0;
    truth[v.tenant] = (truth[v.tenant] ?? 0) + v.totalJoules - b;
  }
  const e = tenantErrors(billed, truth);
  assert.ok(e.max > 0.25, `worst tenant error ${e.max} (${e.worstTenant})`);
  assert.ok(e.max < 1, `but not absurd: ${e.max}`);
});

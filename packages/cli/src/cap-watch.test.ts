// The collector's live cap watch (packages/collector/src/cap-watch.ts) with the capping package as its
// advisor, as `wattsplit collector --caps` wires it: statuses from the attributions just made, one
// CapStatus per cap on wattsplit.capping.v1 keyed by the cap, /metrics gauges, and a warning once when
// a cap is predicted to cross.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AttributionResult, HostInterval } from '@wattsplit/attribution';
import * as capping from '@wattsplit/capping';
import { CapWatch, CollectorMetrics } from '@wattsplit/collector';
import { CapStatus, InProcessBus, isWattsplitError, memoryLogger, TOPICS, type BusMessage } from '@wattsplit/wire';
import { capWatchFromFile } from './cap-watch-config.js';

/** One 1 s interval of a host: VMs at the given watts (all dynamic, rapl), host measured = Σ VMs + idleW. */
function interval(hostId: string, seq: number, vms: Record<string, number>, idleW = 100): { iv: HostInterval; r: AttributionResult } {
  const t0 = 1_764_950_400e9 + (seq - 1) * 1e9;
  const t1 = t0 + 1e9;
  const vmTotal = Object.values(vms).reduce((a, w) => a + w, 0);
  const r: AttributionResult = {
    hostId,
    seq,
    t0UnixNs: t0,
    t1UnixNs: t1,
    method: 'additive_model',
    modelVersion: '1',
    hardwareClass: 'c',
    note: '',
    measured: { rapl: vmTotal + idleW, gpu: 0, bmc_rest: 0 },
    shares: [
      ...Object.entries(vms).map(([uuid, w]) => ({ kind: 'vm' as const, vmUuid: uuid, vmName: uuid, tenant: 't', source: 'rapl' as const, dynamicJoules: w, staticJoules: 0, lowJoules: w, highJoules: w })),
      { kind: 'unallocated' as const, vmUuid: '', vmName: '', tenant: '', source: 'rapl' as const, dynamicJoules: 0, staticJoules: idleW, lowJoules: idleW, highJoules: idleW },
    ],
  };
  const iv = { hostId, seq, t0UnixNs: t0, t1UnixNs: t1, vms: Object.keys(vms).map((uuid) => ({ uuid, memoryBytes: 2 ** 31 })) } as unknown as HostInterval;
  return { iv, r };
}

test('cap watch: a rack whose VMs ramp up is predicted to cross; statuses on wattsplit.capping.v1 keyed by cap, gauges, one warning', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-capwatch-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const caps = join(dir, 'caps.json');
  writeFileSync(caps, JSON.stringify({ defaultHostCapW: 600, groups: [{ groupId: 'rack-1', kind: 'rack', capW: 700, members: ['hv-a', 'hv-b'], otherW: 20 }], horizonS: 120, windowS: 5, minIntervalMs: 0 }));
  const { config, advisor } = capWatchFromFile(caps);
  const bus = new InProcessBus({ logger: memoryLogger() });
  t.after(() => bus.close());
  const got: BusMessage[] = [];
  const sub = await bus.subscribe({ topic: TOPICS.capping, groupId: 'test', fromBeginning: true, handler: async (ms) => void got.push(...ms) });
  t.after(() => sub.stop());
  const metrics = new CollectorMetrics();
  const log = memoryLogger();
  const watch = new CapWatch(config, advisor, { producer: bus.producer(), metrics, logger: log, methods: ['cpu_share', 'additive_model'] });
  assert.equal(watch.method, 'additive_model');

  // 150 s of history (a trend needs 120 s: a younger series is a ramp): hv-a's web VM rises 10 → 160 W
  // (+1 W/s), hv-b flat: the rack goes from 470 W to 620 W now.
  for (let s = 1; s <= 150; s++) {
    const a = interval('hv-a', s, { 'web-1': 10 + s, 'db-1': 80 });
    const b = interval('hv-b', s, { 'batch-1': 160 });
    watch.observe(a.iv, [a.r]);
    watch.observe(b.iv, [b.r]);
  }
  const st = await watch.evaluate();
  const rack = st.find((s) => s.scopeId === 'rack-1')!;
  assert.equal(rack.scopeKind, 'rack');
  assert.deepEqual(rack.hostIds, ['hv-a', 'hv-b']);
  // Now: hv-a = 100 + mean(web over the last 5 s: 158) + 80 = 338, hv-b 260; rack = 338 + 260 + 20.
  assert.ok(Math.abs(rack.powerW - 618) < 1e-6, `rack now ${rack.powerW}`);
  // web-1 rises 1 W/s: the bound is 618 + 2 + t W (its level now is 160, 2 W above its window mean), over 700 W from t = 81 s.
  assert.equal(rack.predictedCrossS, 81, `the rising trend crosses 700 W: ${rack.predictedCrossS}`);
  assert.ok(rack.predictedPeakW > 700);
  assert.equal(rack.planSafe, true, 'the advisor has a plan that keeps the rack under its cap');
  assert.ok(rack.planPeakW <= 700 + 1e-6);
  const hostA = st.find((s) => s.scopeId === 'hv-a')!;
  assert.equal(hostA.scopeKind, 'host');
  assert.equal(hostA.predictedCrossS, -1, 'hv-a stays under its own 600 W');

  // Published: one message per cap, keyed by it, decodable.
  for (let i = 0; i < 50 && got.length < 3; i++) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(got.map((m) => m.key).sort(), ['hv-a', 'hv-b', 'rack-1']);
  const msg = CapStatus.decode(got.find((m) => m.key === 'rack-1')!.value);
  assert.equal(msg.scopeKind, 'rack');
  assert.equal(msg.predictedCrossS, rack.predictedCrossS);
  assert.equal(msg.method, 'additive_model');
  assert.ok(msg.actions.length > 0, 'with the plan that keeps it under');

  // /metrics gauges.
  const text = metrics.render();
  assert.match(text, /wattsplit_cap_limit_watts\{cap="rack-1",kind="rack"\} 700/);
  assert.match(text, new RegExp(`wattsplit_cap_predicted_crossing_seconds\\{cap="rack-1",kind="rack"\\} ${rack.predictedCrossS}`));
  assert.match(text, /wattsplit_cap_predicted_crossing_seconds\{cap="hv-a",kind="host"\} -1/);
  assert.match(text, /wattsplit_cap_plan_safe\{cap="rack-1",kind="rack"\} 1/);

  // The alert: once per crossing episode.
  const warns = () => log.entries.filter((e) => e.level === 'warn' && /predicted to cross/.test(e.msg));
  assert.equal(warns().length, 1);
  assert.match(warns()[0]!.msg, /rack rack-1 is predicted to cross its 700 W cap in \d+ s/);
  await watch.evaluate();
  assert.equal(warns().length, 1, 'not repeated while the episode lasts');
});

test('cap watch: a host that stopped reporting is left out of the evaluation (no status, not planned with) until it reports again', async () => {
  const log = memoryLogger();
  const bus = new InProcessBus({ logger: log });
  const config = { hostCapsW: { 'hv-a': 600, 'hv-b': 600, 'hv-c': 600 }, groups: [{ groupId: 'rack-1', kind: 'rack', capW: 2000, members: ['hv-a', 'hv-b'] }], horizonS: 30, staleS: 30, publish: false };
  const watch = new CapWatch(config, capping, { producer: bus.producer(), metrics: new CollectorMetrics(), logger: log, methods: ['cpu_share', 'additive_model'] });
  // hv-c stops at second 100, hv-a and hv-b go on to 140.
  for (let s = 1; s <= 140; s++) {
    for (const [h, vm] of [['hv-a', 'web-1'], ['hv-b', 'batch-1'], ['hv-c', 'db-1']] as const) {
      if (h === 'hv-c' && s > 100) continue;
      const x = interval(h, s, { [vm]: 200 });
      watch.observe(x.iv, [x.r]);
    }
  }
  const ids = (st: readonly { scopeId: string }[]) => st.map((x) => x.scopeId).sort();
  assert.deepEqual(ids(await watch.evaluate()), ['hv-a', 'hv-b', 'rack-1'], 'hv-c, 40 s behind, has no status');
  const left = log.entries.filter((e) => /host hv-c is not reporting/.test(e.msg));
  assert.equal(left.length, 1);
  await watch.evaluate();
  assert.equal(log.entries.filter((e) => /host hv-c is not reporting/.test(e.msg)).length, 1, 'logged once per episode');
  // It reports again: back in.
  const back = interval('hv-c', 141, { 'db-1': 200 });
  watch.observe(back.iv, [back.r]);
  assert.deepEqual(ids(await watch.evaluate()), ['hv-a', 'hv-b', 'hv-c', 'rack-1']);
});

test('cap watch: evaluations asked for while one is publishing run after it, so the last status published per cap is the newest', async () => {
  const log = memoryLogger();
  // A producer whose first send completes last (a slow first request: the topic's metadata, a retry).
  const published: { key: string; hostIds: string[] }[] = [];
  let sends = 0;
  const producer = {
    send: async (_topic: string, ms: readonly { key: string; value: Uint8Array }[]) => {
      if (++sends === 1) await new Promise((r) => setTimeout(r, 60));
      for (const m of ms) published.push({ key: m.key, hostIds: CapStatus.decode(m.value).hostIds });
      return { kind: 'ok' as const };
    },
    close: async () => undefined,
  };
  const config = { hostCapsW: { 'hv-a': 600, 'hv-b': 600 }, groups: [{ groupId: 'rack-1', kind: 'rack', capW: 2000, members: ['hv-a', 'hv-b'] }], horizonS: 30, staleS: 20, minIntervalMs: 0 };
  const watch = new CapWatch(config, capping, { producer, metrics: new CollectorMetrics(), logger: log, methods: ['cpu_share', 'additive_model'] });
  // hv-a's partition stored up to 150 s, hv-b's only to 100 s (> staleS behind): the first evaluation leaves hv-b out
  for (let s = 1; s <= 150; s++) {
    const a = interval('hv-a', s, { 'web-1': 200 });
    watch.observe(a.iv, [a.r]);
    if (s <= 100) {
      const b = interval('hv-b', s, { 'batch-1': 200 });
      watch.observe(b.iv, [b.r]);
    }
  }
  const first = watch.maybeEvaluate();
  // hv-b's partition stores the rest while the first evaluation is publishing; its batch asks for an evaluation too
  for (let s = 101; s <= 150; s++) {
    const b = interval('hv-b', s, { 'batch-1': 200 });
    watch.observe(b.iv, [b.r]);
  }
  const second = watch.maybeEvaluate();
  await Promise.all([first, second]);
  const racks = published.filter((p) => p.key === 'rack-1').map((p) => p.hostIds);
  assert.deepEqual(racks, [['hv-a'], ['hv-a', 'hv-b']], 'the newer status published last');
  assert.equal(watch.statuses().find((x) => x.scopeId === 'rack-1')?.hostIds.length, 2);
});

test('--caps: bad settings are one CONFIG_INVALID naming the field', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-capwatch-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const bad = (cfg: unknown, re: RegExp): void => {
    const f = join(dir, 'c.json');
    writeFileSync(f, JSON.stringify(cfg));
    assert.throws(() => capWatchFromFile(f), (e) => isWattsplitError(e, 'CONFIG_INVALID') && re.test(e.message), re.source);
  };
  bad({ defaultHostCapW: -1 }, /defaultHostCapW=-1 must be a number > 0/);
  bad({ horizonS: 2.5 }, /horizonS=2\.5 must be an integer/);
  bad({ capz: 1 }, /capz=1 is not a cap watch setting/);
  bad({ staleS: 0 }, /staleS=0 must be a number > 0/);
  bad({ groups: [{ groupId: 'r', capW: 10, members: ['a', 'r'] }] }, /cycle/);
});

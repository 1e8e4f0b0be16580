import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkConservation, CpuShareMethod, type AttributionContext, type AttributionResult, type HostInterval } from '@wattsplit/attribution';
import { isWattsplitError, memoryLogger } from '@wattsplit/wire';
import { AdditiveModelMethod, ModelRegistry, ModelTrainer, trainAdditiveModel, initTf, type HistoryProvider } from './index.js';
import { synthHost } from './test-hosts.js';

const ctx: AttributionContext = { policy: 'reserved', staticPower: { watts: { rapl: 123, gpu: 0, bmc_rest: 42 }, origin: 'configured' } };
const fast = { steps: 300, maxIntervals: 1500 };

function tenantDynamic(results: AttributionResult[], source = 'rapl'): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of results) for (const s of r.shares) if (s.kind === 'vm' && s.source === source) out[s.tenant] = (out[s.tenant] ?? 0) + s.dynamicJoules;
  return out;
}

function tmp(t: { after: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), 'wattsplit-models-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

test('tfjs runs on the wasm backend with .wasm files from node_modules', async () => {
  assert.equal(await initTf(), 'wasm');
});

test('additive model: every tenant within 3 % of the truth where cpu_share is far off; exact conservation and uncertainty bands', async (t) => {
  const { intervals, truthRapl } = synthHost({ seed: 11, seconds: 1500 });
  const reg = new ModelRegistry({ dir: tmp(t), training: fast });
  const info = await reg.train('synth', intervals);
  assert.equal(info.version, 1);
  const method = new AdditiveModelMethod({ models: reg });
  const res = intervals.map((iv) => method.attribute(iv, ctx));
  for (const r of res.slice(0, 200)) assert.deepEqual(checkConservation(r), []);
  assert.equal(res[0]!.method, 'additive_model');
  assert.equal(res[0]!.modelVersion, 'synth@v1');
  assert.equal(res[0]!.note, '');
  for (const s of res[5]!.shares) assert.ok(s.lowJoules <= s.dynamicJoules + s.staticJoules + 1e-9 && s.highJoules >= s.dynamicJoules + s.staticJoules - 1e-9);
  assert.ok(res[5]!.shares.some((s) => s.kind === 'vm' && s.highJoules > s.lowJoules));
  const model = tenantDynamic(res);
  // truth is dynamic only: compare shapes of dynamic energy
  const base = tenantDynamic(intervals.map((iv) => new CpuShareMethod().attribute(iv, ctx)));
  const totT = Object.values(truthRapl).reduce((a, b) => a + b, 0);
  const totM = Object.values(model).reduce((a, b) => a + b, 0);
  const totB = Object.values(base).reduce((a, b) => a + b, 0);
  let baseWorst = 0;
  for (const k of Object.keys(truthRapl)) {
    const errM = Math.abs(model[k]! / totM - truthRapl[k]! / totT) / (truthRapl[k]! / totT);
    const errB = Math.abs(base[k]! / totB - truthRapl[k]! / totT) / (truthRapl[k]! / totT);
    baseWorst = Math.max(baseWorst, errB);
    assert.ok(errM <= 0.03, `${k}: model share error ${(100 * errM).toFixed(2)} %`);
  }
  assert.ok(baseWorst > 0.1, `cpu_share worst ${baseWorst}`);
});

test('cold start falls back to cpu_share and says so in each record', () => {
  const { intervals } = synthHost({ seed: 2, seconds: 5 });
  const method = new AdditiveModelMethod({ models: { get: () => undefined } });
  const r = method.attribute(intervals[0]!, ctx);
  const b = new CpuShareMethod().attribute(intervals[0]!, ctx);
  assert.match(r.note, /cold start: no additive model for hardware class "synth"; cpu_share/);
  assert.equal(r.modelVersion, 'fallback:cpu_share');
  assert.deepEqual(checkConservation(r), []);
  const vm0 = (x: AttributionResult): number => x.shares.filter((s) => s.vmUuid === 'vm-0' && s.source === 'rapl').reduce((a, s) => a + s.dynamicJoules, 0);
  assert.ok(Math.abs(vm0(r) - vm0(b)) < 1e-9);
});

test('registry: versions persist as JSON, reload, and a bad file is named with its field', async (t) => {
  const dir = tmp(t);
  const { intervals } = synthHost({ seed: 3, seconds: 400, hardwareClass: 'xeon/8480 2S' });
  const reg = new ModelRegistry({ dir, training: { steps: 50 } });
  await reg.train('xeon/8480 2S', intervals);
  const v2 = await reg.train('xeon/8480 2S', intervals);
  assert.equal(v2.version, 2);
  assert.deepEqual(await reg.versions('xeon/8480 2S'), [1, 2]);
  assert.deepEqual(readdirSync(join(dir, encodeURIComponent('xeon/8480 2S'))).sort(), ['v1.json', 'v2.json']);
  const again = new ModelRegistry({ dir });
  const loaded = await again.load();
  assert.equal(loaded.length, 1);
  assert.equal(again.get('xeon/8480 2S')?.version, 2);
  assert.equal(again.get('other'), undefined);
  mkdirSync(join(dir, 'broken'));
  writeFileSync(join(dir, 'broken', 'v1.json'), JSON.stringify({ kind: 'wattsplit.additive_model', formatVersion: 1, hardwareClass: 'broken', version: 1, norm: { mean: [], std: [] } }));
  await assert.rejects(new ModelRegistry({ dir }).load(), (e) => isWattsplitError(e, 'MODEL_NOT_TRAINED') && /broken\/v1\.json: model field "norm" is invalid/.test(e.message));
  writeFileSync(join(dir, 'broken', 'v1.json'), '{not json');
  await assert.rejects(new ModelRegistry({ dir }).load(), (e) => isWattsplitError(e, 'MODEL_NOT_TRAINED') && /broken\/v1\.json: cannot read model/.test(e.message));
  assert.throws(() => new ModelRegistry({ dir, driftRatio: 1 }), /driftRatio must be > 1, got 1/);
});

test('too little data to train gives MODEL_TRAINING_FAILED with the count', async () => {
  const { intervals } = synthHost({ seconds: 10 });
  await assert.rejects(trainAdditiveModel(intervals), (e) => isWattsplitError(e, 'MODEL_TRAINING_FAILED') && /need at least 30 usable intervals to train, got 10 of 10/.test(e.message));
});

test('drift is detected when the host changes, not on more of the same', async (t) => {
  const reg = new ModelRegistry({ dir: tmp(t), training: fast });
  await reg.train('synth', synthHost({ seed: 4, seconds: 1200 }).intervals);
  const same = reg.checkDrift('synth', synthHost({ seed: 5, seconds: 300 }).intervals)!;
  assert.equal(same.drifted, false, JSON.stringify(same));
  const changed = reg.checkDrift('synth', synthHost({ seed: 5, seconds: 300, powerScale: 1.5 }).intervals)!;
  assert.equal(changed.drifted, true, JSON.stringify(changed));
  assert.ok(changed.recentRmsW.rapl > 3 * changed.trainingRmsW.rapl);
  assert.equal(reg.checkDrift('unknown', []), undefined);
  // The training window itself, with a few VMs stopping and starting (partial presence, their CPU time in
  // the wrong interval): scored like the trainer selects its intervals, it is not drift.
  const window = synthHost({ seed: 5, seconds: 300 }).intervals;
  for (const k of [50, 120, 121, 200]) {
    const iv = window[k]!;
    const v = iv.vms[0]!;
    v.presence = 0.4;
    v.state = 'gone';
    v.cpuSeconds *= 8;
  }
  const churn = reg.checkDrift('synth', window)!;
  assert.equal(churn.drifted, false, `VMs starting and stopping are not drift: ${JSON.stringify(churn)}`);
});

test('trainer: cold start trains, no drift keeps, drift retrains, thin history skips, failures are reported', async (t) => {
  let data: HostInterval[] = synthHost({ seed: 6, seconds: 800 }).intervals;
  let fail = false;
  const history: HistoryProvider = {
    readHistory: async (q) => {
      if (fail) throw new Error('store down');
      return data.filter((iv) => iv.hardwareClass === q.hardwareClass);
    },
  };
  const log = memoryLogger();
  const reg = new ModelRegistry({ dir: tmp(t), training: fast, logger: log });
  const trainer = new ModelTrainer({ registry: reg, history, hardwareClasses: ['synth', 'empty'], minIntervals: 100, logger: log, now: () => Date.parse('2026-11-23T12:00:00Z') });
  const r1 = await trainer.runOnce();
  assert.deepEqual(r1.map((r) => [r.hardwareClass, r.action]), [['synth', 'trained'], ['empty', 'skipped']]);
  assert.match(r1[1]!.reason, /only 0 intervals of history/);
  const r2 = await trainer.runOnce();
  assert.equal(r2[0]!.action, 'kept');
  data = synthHost({ seed: 7, seconds: 800, powerScale: 1.6 }).intervals;
  const r3 = await trainer.runOnce();
  assert.equal(r3[0]!.action, 'trained');
  assert.match(r3[0]!.reason, /drift/);
  assert.equal(r3[0]!.model!.version, 2);
  fail = true;
  const r4 = await trainer.runOnce();
  assert.equal(r4[0]!.action, 'failed');
  assert.match(r4[0]!.reason, /store down/);
  assert.ok(log.entries.some((e) => e.level === 'warn' && /model drift/.test(e.msg)));
  // each training's info line says how many load-factor points fell back to the dense solve (none on this host)
  const trained = log.entries.filter((e) => e.level === 'info' && e.msg === 'additive model trained');
  assert.ok(trained.length >= 2);
  for (const e of trained) assert.equal(e.fields.denseFallbacks, 0);
  trainer.start();
  await trainer.stop();
});

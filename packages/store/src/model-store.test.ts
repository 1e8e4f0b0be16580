import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@wattsplit/wire';
import { ChdbStore } from './chdb-store.js';
import { ModelStore, type ModelVersionRow } from './model-store.js';

const dir = mkdtempSync(join(tmpdir(), 'wattsplit-model-store-'));
const store = new ChdbStore({ dataDir: join(dir, 'db'), logger: silentLogger });
after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const version = (hc: string, v: number, id = ModelStore.newModelId()): ModelVersionRow => ({
  hardwareClass: hc, version: v, modelId: id, trainedAtMs: 1_800_000_000_000 + v, trainedBy: 'collector-a', reason: v === 1 ? 'first' : 'drift',
  windowFromNs: 1e18, windowToNs: 1.1e18, intervals: 600 * v, trainSeconds: 1.5, residualRmsW: { rapl: 2.5, bmc_rest: 4 }, driftRatio: v === 1 ? 0 : 2.1, modelJson: JSON.stringify({ v }),
});

test('versions and activations: numbered per class, newest first; activation history keeps every decision in order', async () => {
  await store.init();
  const ms = new ModelStore(store);
  assert.equal(await ms.nextVersion('xeon'), 1);
  await ms.saveVersion(version('xeon', 1));
  const v2 = version('xeon', 2);
  await ms.saveVersion(v2);
  await ms.saveVersion(version('epyc', 1));
  assert.equal(await ms.nextVersion('xeon'), 3);
  assert.deepEqual((await ms.versions('xeon')).map((m) => m.version), [2, 1]);
  const back = await ms.loadVersion('xeon', 2);
  assert.deepEqual(back, v2, 'the artefact and its metadata round-trip');
  assert.equal(await ms.loadVersion('xeon', 2, 'no-such-id'), undefined);
  const a1 = await ms.activate({ hardwareClass: 'xeon', version: 1, modelId: 'm1', effectiveFromNs: 1e18, activatedBy: 'collector-a', action: 'train', note: '' });
  const a2 = await ms.activate({ hardwareClass: 'xeon', version: 2, modelId: v2.modelId, effectiveFromNs: 1.2e18, activatedBy: 'collector-b', action: 'train', note: '' });
  const a3 = await ms.activate({ hardwareClass: 'xeon', version: 1, modelId: 'm1', effectiveFromNs: 1.3e18, activatedBy: 'operator', action: 'rollback', note: 'v2 over-bills' });
  assert.ok(a1.seq < a2.seq && a2.seq < a3.seq, 'seqs increase even within one millisecond');
  assert.deepEqual((await ms.activations('xeon')).map((a) => [a.version, a.action]), [[1, 'train'], [2, 'train'], [1, 'rollback']]);
});

test('lease: one holder at a time; racing takers agree on one winner; expiry and release free it', async () => {
  let now = 1_800_000_000_000;
  const ms = new ModelStore(store, () => now);
  assert.equal(await ms.tryLease('train:xeon', 'a', 60_000, 0), true);
  assert.equal(await ms.tryLease('train:xeon', 'b', 60_000, 0), false, 'held by a');
  assert.equal(await ms.tryLease('train:xeon', 'a', 60_000, 0), true, 'renewed by its holder');
  now += 61_000;
  assert.equal(await ms.tryLease('train:xeon', 'b', 60_000, 0), true, 'expired: b takes it');
  assert.equal(await ms.holdsLease('train:xeon', 'a'), false);
  await ms.releaseLease('train:xeon', 'b');
  assert.equal(await ms.holdsLease('train:xeon', 'b'), false);
  // A race: both see the lease free and both append; after the settle delay both read the same winner.
  now += 1000;
  const [x, y] = await Promise.all([ms.tryLease('train:epyc', 'x', 60_000, 50), ms.tryLease('train:epyc', 'y', 60_000, 50)]);
  assert.equal(Number(x) + Number(y), 1, `exactly one wins (x=${x}, y=${y})`);
});

test('learner state: the save with the highest seq wins, whatever the order of the saves', async () => {
  const ms = new ModelStore(store);
  assert.equal((await ms.saveLearnerStates([{ learner: 'static_power', key: 'hv-1', seq: 20, stateJson: '{"n":20}' }])).kind, 'ok');
  assert.equal((await ms.saveLearnerStates([{ learner: 'static_power', key: 'hv-1', seq: 10, stateJson: '{"n":10}' }])).kind, 'ok');
  assert.deepEqual(await ms.loadLearnerState('static_power', 'hv-1'), { learner: 'static_power', key: 'hv-1', seq: 20, stateJson: '{"n":20}' });
  assert.equal(await ms.loadLearnerState('static_power', 'hv-2'), undefined);
});

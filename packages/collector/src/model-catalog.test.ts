// The catalog's refresh: two at once (a training's own and the refresh timer's) must not both report a change,
// or the collector says "model catalog updated" twice for one activation (found by an outside audit, 2026-12-07).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ModelStore } from '@wattsplit/store';
import { ModelCatalog } from './model-catalog.js';

test('concurrent refreshes run one after the other: one reports the change, the other finds nothing new', async () => {
  let reads = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  const models = {
    activations: async () => {
      reads++;
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setTimeout(r, 20));
      inFlight--;
      return [];
    },
  } as unknown as ModelStore;
  const catalog = new ModelCatalog(models);
  const results = await Promise.all([catalog.refresh(), catalog.refresh()]);
  assert.deepEqual(results, [true, false]);
  assert.equal(reads, 2);
  assert.equal(maxInFlight, 1, 'never two reads at once');
  // a failed refresh does not block the next one
  let fail = true;
  const flaky = new ModelCatalog({ activations: async () => (fail ? Promise.reject(new Error('store down')) : []) } as unknown as ModelStore);
  await assert.rejects(flaky.refresh(), /store down/);
  fail = false;
  assert.equal(await flaky.refresh(), true);
});

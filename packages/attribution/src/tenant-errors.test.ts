import { test } from 'node:test';
import assert from 'node:assert/strict';
import { joulesByTenant, tenantErrors } from './tenant-errors.js';
import { staticSplitWeights } from './idle-split.js';
import { isWattsplitError } from '@wattsplit/wire';

test('per-tenant relative error, max, mean and worst tenant', () => {
  const r = tenantErrors({ a: 110, b: 50, c: 5 }, new Map([['a', 100], ['b', 100], ['d', 0]]));
  assert.deepEqual(r.tenants.map((t) => t.tenant), ['a', 'b', 'c', 'd']);
  assert.ok(Math.abs(r.tenants[0]!.relError - 0.1) < 1e-12);
  assert.equal(r.tenants[1]!.relError, 0.5);
  assert.ok(Number.isNaN(r.tenants[2]!.relError), 'no truth → NaN, left out of the summary');
  assert.equal(r.max, 0.5);
  assert.ok(Math.abs(r.mean - 0.3) < 1e-12);
  assert.equal(r.worstTenant, 'b');
  assert.deepEqual(tenantErrors({}, {}), { tenants: [], max: 0, mean: 0, worstTenant: '' });
});

test('reserved weights: by vCPUs and memory, presence-weighted, normalised', () => {
  const w = staticSplitWeights([
    { uuid: 'a', vcpus: 6, memoryBytes: 10, presence: 1 },
    { uuid: 'b', vcpus: 2, memoryBytes: 30, presence: 1 },
  ], 'reserved');
  assert.ok(Math.abs(w.get('a')! - (0.5 * 0.75 + 0.5 * 0.25)) < 1e-12);
  const w2 = staticSplitWeights([{ uuid: 'a', vcpus: 1, memoryBytes: 1, presence: 1 }, { uuid: 'b', vcpus: 1, memoryBytes: 1, presence: 0 }], 'reserved', { vcpu: 1, memory: 0 });
  assert.deepEqual([...w2], [['a', 1], ['b', 0]]);
  assert.equal(staticSplitWeights([], 'equal').size, 0);
  assert.equal(staticSplitWeights([{ uuid: 'a', vcpus: 1, memoryBytes: 1, presence: 1 }], 'unallocated').size, 0);
  assert.throws(() => staticSplitWeights([{ uuid: 'a', vcpus: 1, memoryBytes: 1, presence: 1 }], 'reserved', { vcpu: -1, memory: 0 }), (e) => isWattsplitError(e, 'CONFIG_INVALID') && /vcpu:-1/.test(e.message));
});

test('joulesByTenant sums VM shares only', () => {
  const share = (kind: string, tenant: string, d: number, st: number) => ({ kind, tenant, dynamicJoules: d, staticJoules: st });
  assert.deepEqual(joulesByTenant([{ shares: [share('vm', 'a', 1, 2), share('host_overhead', '', 5, 0)] }, { shares: [share('vm', 'a', 1, 0), share('vm', 'b', 0, 4)] }]), { a: 4, b: 4 });
});

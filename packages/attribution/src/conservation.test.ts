import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkConservation, reconcile, reconcileInPlace } from './conservation.js';
import { prng } from './test-fixtures.js';
import { referenceReconcile } from './test-references.js';
import type { AttributionResult, AttributionShare, SourceName } from './types.js';

const sh = (uuid: string, source: SourceName, dyn: number, sta: number, kind: AttributionShare['kind'] = 'vm'): AttributionShare => ({
  kind, vmUuid: uuid, vmName: uuid, tenant: 't', source, dynamicJoules: dyn, staticJoules: sta, lowJoules: dyn + sta, highJoules: dyn + sta,
});
const sum = (xs: AttributionShare[], s: SourceName) => xs.filter((x) => x.source === s).reduce((a, x) => a + x.dynamicJoules + x.staticJoules, 0);
const result = (shares: AttributionShare[], measured: Record<SourceName, number>): AttributionResult => ({
  hostId: 'hv', seq: 1, t0UnixNs: 0, t1UnixNs: 1, method: 'm', modelVersion: '1', hardwareClass: '', note: '', shares, measured,
});

test('reconcile scales dynamic parts proportionally and leaves static parts alone', () => {
  const out = reconcile([sh('a', 'rapl', 30, 10), sh('b', 'rapl', 10, 10)], { rapl: 100, gpu: 0, bmc_rest: 0 });
  assert.equal(sum(out, 'rapl'), 100);
  assert.equal(out[0]!.staticJoules, 10);
  assert.ok(Math.abs(out[0]!.dynamicJoules - 60) < 1e-9);
  assert.ok(Math.abs(out[1]!.dynamicJoules - 20) < 1e-9);
  assert.ok(Math.abs(out[0]!.highJoules - 70) < 1e-9, 'bounds scale with the share');
});

test('reconcile zeroes dynamics and scales statics when statics alone exceed the measurement', () => {
  const out = reconcile([sh('a', 'rapl', 30, 60), sh('b', 'rapl', 10, 60)], { rapl: 60, gpu: 0, bmc_rest: 0 });
  assert.equal(sum(out, 'rapl'), 60);
  assert.ok(out.every((s) => s.dynamicJoules === 0 && s.staticJoules === 30));
});

test('reconcile never makes negatives: negative and NaN inputs become 0', () => {
  const out = reconcile([sh('a', 'gpu', -5, Number.NaN), sh('b', 'gpu', 5, 0)], { rapl: 0, gpu: 10, bmc_rest: 0 });
  assert.ok(out.every((s) => s.dynamicJoules >= 0 && s.staticJoules >= 0));
  assert.equal(sum(out, 'gpu'), 10);
});

test('reconcile puts a residual nothing can absorb into an unallocated share', () => {
  const out = reconcile([sh('a', 'bmc_rest', 0, 5)], { rapl: 0, gpu: 0, bmc_rest: 12 });
  const un = out.find((s) => s.kind === 'unallocated' && s.source === 'bmc_rest')!;
  assert.equal(un.staticJoules, 7);
  assert.equal(sum(out, 'bmc_rest'), 12);
  // a measured source with no shares at all
  const out2 = reconcile([], { rapl: 3, gpu: 0, bmc_rest: 0 });
  assert.equal(out2.length, 1);
  assert.equal(out2[0]!.kind, 'unallocated');
  assert.equal(sum(out2, 'rapl'), 3);
});

test('property: reconciled shares always conserve (seeded random inputs)', () => {
  const rnd = prng(7);
  for (let k = 0; k < 1000; k++) {
    const shares = Array.from({ length: Math.floor(rnd() * 20) }, (_, i) =>
      sh(`v${i}`, (['rapl', 'gpu', 'bmc_rest'] as const)[Math.floor(rnd() * 3)]!, rnd() < 0.2 ? 0 : rnd() * 1e4 - 100, rnd() < 0.5 ? 0 : rnd() * 500),
    );
    const measured = { rapl: rnd() * 5000, gpu: rnd() < 0.3 ? 0 : rnd() * 3000, bmc_rest: rnd() * 1e6 };
    const out = reconcile(shares, measured);
    assert.deepEqual(checkConservation(result(out, measured), 1e-12), [], `case ${k}`);
  }
});

test('checkConservation names the source, the sums and bad parts', () => {
  const p = checkConservation(result([sh('a', 'rapl', 50, 10), sh('b', 'gpu', -1, 0)], { rapl: 100, gpu: 0, bmc_rest: 0 }));
  assert.ok(p.some((x) => /rapl shares sum to 60 J but 100 J was measured/.test(x)));
  assert.ok(p.some((x) => /shares\[1\] \(vm b gpu\) dynamicJoules=-1 must be finite and ≥ 0/.test(x)));
  const noMethod = checkConservation({ ...result([], { rapl: 0, gpu: 0, bmc_rest: 0 }), method: '' });
  assert.ok(noMethod.some((x) => /method is empty/.test(x)));
  // every part by name, in share order, an unknown source, and each source's sum (parts read by name, summed in locals)
  const bad = { ...sh('c', 'bmc_rest', Number.NaN, -2), lowJoules: Number.POSITIVE_INFINITY, highJoules: -0.5 };
  const odd = { ...sh('d', 'rapl', 1, 0), source: 'wind' as SourceName };
  assert.deepEqual(checkConservation(result([sh('a', 'rapl', 50, 10), bad, odd, sh('e', 'gpu', 4, 1)], { rapl: 60, gpu: 5, bmc_rest: 3 })), [
    'host hv seq 1 method m: shares[1] (vm c bmc_rest) dynamicJoules=NaN must be finite and ≥ 0',
    'host hv seq 1 method m: shares[1] (vm c bmc_rest) staticJoules=-2 must be finite and ≥ 0',
    'host hv seq 1 method m: shares[1] (vm c bmc_rest) lowJoules=Infinity must be finite and ≥ 0',
    'host hv seq 1 method m: shares[1] (vm c bmc_rest) highJoules=-0.5 must be finite and ≥ 0',
    'host hv seq 1 method m: shares[2].source="wind" is not a known source',
    'host hv seq 1 method m: bmc_rest shares sum to NaN J but 3 J was measured (off by NaN J)',
  ]);
  // a source named like an Object.prototype key is not a known source either
  const proto = { ...sh('f', 'rapl', 1, 0), source: 'toString' as SourceName };
  assert.deepEqual(checkConservation(result([sh('a', 'rapl', 60, 0), proto], { rapl: 60, gpu: 0, bmc_rest: 0 })), ['host hv seq 1 method m: shares[1].source="toString" is not a known source']);
});

test('reconcile and reconcileInPlace: the same shares, to the bit, as caaca9a\'s reconcile (frozen in test-references.ts), the latter on the objects given (seeded random inputs)', () => {
  const rnd = prng(11);
  for (let k = 0; k < 1000; k++) {
    const shares = Array.from({ length: Math.floor(rnd() * 20) }, (_, i) =>
      sh(`v${i}`, (['rapl', 'gpu', 'bmc_rest'] as const)[Math.floor(rnd() * 3)]!, rnd() < 0.2 ? 0 : rnd() * 1e4 - 100, rnd() < 0.5 ? 0 : rnd() * 500, rnd() < 0.1 ? 'unallocated' : 'vm'),
    );
    const measured = { rapl: rnd() * 5000, gpu: rnd() < 0.3 ? 0 : rnd() * 3000, bmc_rest: rnd() < 0.2 ? 0 : rnd() * 1e6 };
    const input = JSON.stringify(shares);
    const expected = referenceReconcile(shares, measured);
    const copied = reconcile(shares, measured);
    assert.equal(JSON.stringify(shares), input, `case ${k}: reconcile left its input alone`);
    assert.deepEqual(copied, expected, `case ${k}: reconcile`);
    const own = [...shares];
    reconcileInPlace(own, measured);
    assert.deepEqual(own, expected, `case ${k}: reconcileInPlace`);
    // the given objects were reconciled (an unallocated share it had to create comes after them)
    shares.forEach((s, i) => assert.equal(own[i], s, `case ${k}: share ${i} is the object given`));
  }
});

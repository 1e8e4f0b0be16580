import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EVALUATION_PROTOCOL as P, type EvaluationFleet } from './evaluation-sets.js';
import { FAMILY_NAMES, isFamilyName } from './physics/families.js';
import { createFleet } from './fleet.js';

const combo = (e: EvaluationFleet): string | undefined => (Array.isArray(e.physics) ? [...e.physics].sort().join('+') : undefined);
const familiesOf = (e: EvaluationFleet): readonly string[] => (Array.isArray(e.physics) ? e.physics : e.physics === 'families' ? FAMILY_NAMES : []);

test('evaluation protocol: dev and eval fleets are disjoint (seeds, physics combinations) and a family is held out of dev', () => {
  assert.ok(P.dev.length > 0 && P.eval.length > 0);
  const devSeeds = new Set(P.dev.map((e) => e.seed));
  assert.equal(devSeeds.size, P.dev.length, 'no seed twice in dev');
  assert.equal(new Set(P.eval.map((e) => e.seed)).size, P.eval.length, 'no seed twice in eval');
  for (const e of P.eval) assert.ok(!devSeeds.has(e.seed), `eval seed ${e.seed} is also a dev seed`);
  // no explicit evaluation combination was developed on; dev never draws families at random (it would cover them all)
  const devCombos = new Set(P.dev.map(combo).filter((c) => c !== undefined));
  for (const e of P.eval) {
    const c = combo(e);
    if (c !== undefined) assert.ok(!devCombos.has(c), `eval combination ${c} is used in dev`);
  }
  for (const e of P.dev) assert.notEqual(e.physics, 'families', 'dev fleets name their families');
  const devFamilies = new Set(P.dev.flatMap(familiesOf));
  assert.ok(P.heldOutFamilies.length > 0);
  for (const f of P.heldOutFamilies) {
    assert.ok(isFamilyName(f));
    assert.ok(!devFamilies.has(f), `held-out family ${f} is run in dev`);
    assert.ok(P.eval.some((e) => familiesOf(e).includes(f)), `held-out family ${f} is evaluated`);
  }
  // every eval fleet runs at least one family (out-of-sample physics, not the legacy law)
  for (const e of P.eval) assert.ok(e.physics !== 'legacy' && familiesOf(e).length > 0, `eval seed ${e.seed}`);
});

for (const name of ['fresh', 'fresh2', 'fresh3'] as const) {
  test(`evaluation protocol: the ${name} evaluation fleets follow the same rules and share no seed with dev, eval or another fresh set`, () => {
    const set = P[name];
    assert.ok(set.length > 0);
    const others = (['fresh', 'fresh2', 'fresh3'] as const).filter((x) => x !== name).flatMap((x) => P[x]);
    const taken = new Set([...P.dev, ...P.eval, ...others].map((e) => e.seed));
    assert.equal(new Set(set.map((e) => e.seed)).size, set.length, `no seed twice in ${name}`);
    for (const e of set) assert.ok(!taken.has(e.seed), `${name} seed ${e.seed} is also a dev, eval or other fresh seed`);
    const devCombos = new Set(P.dev.map(combo).filter((c) => c !== undefined));
    const devFamilies = new Set(P.dev.flatMap(familiesOf));
    for (const e of set) {
      const c = combo(e);
      if (c !== undefined) assert.ok(!devCombos.has(c), `${name} combination ${c} is used in dev`);
      assert.ok(e.physics !== 'legacy' && familiesOf(e).length > 0, `${name} seed ${e.seed} runs a family`);
    }
    if (name === 'fresh3') {
      // fresh3 also avoids the combinations of the earlier evaluation sets
      const evalCombos = new Set([...P.eval, ...P.fresh, ...P.fresh2].map(combo).filter((c) => c !== undefined));
      for (const e of set) {
        const c = combo(e);
        if (c !== undefined) assert.ok(!evalCombos.has(c), `fresh3 combination ${c} is an earlier evaluation combination`);
      }
    }
    for (const f of P.heldOutFamilies) {
      assert.ok(!devFamilies.has(f));
      assert.ok(set.some((e) => familiesOf(e).includes(f)), `held-out family ${f} is in the ${name} set`);
    }
  });
}

test('evaluation protocol: one hardware class, the declared size, and every fleet builds', () => {
  assert.ok(P.warmupS >= 60 && P.billedS >= 60 && P.quick.warmupS >= 60 && P.quick.billedS >= 60);
  for (const e of [...P.dev, ...P.eval, ...P.fresh, ...P.fresh2, ...P.fresh3]) {
    const f = createFleet({ hosts: P.hosts, vmsPerHost: P.vmsPerHost, seed: e.seed, hostSpecs: [P.hostSpec], physics: e.physics, physicsShiftAtS: P.warmupS });
    assert.equal(f.hosts.length, P.hosts);
    assert.deepEqual(new Set(f.hosts.map((h) => h.hardwareClass)), new Set([P.hostSpec.hardwareClass]));
    f.step(2);
    assert.equal(f.truth().vms.filter((v) => v.cpuSeconds > 0).length, P.hosts * P.vmsPerHost - 1, 'all VMs run but the late starter');
  }
});

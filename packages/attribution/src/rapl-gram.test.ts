import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CholeskyWork, InterceptWork, RaplGram, choleskySolve, type GramRecord } from './rapl-gram.js';
import { ridgeIntercept } from './static-power-learner.js';
import { prng } from './test-fixtures.js';
import { ReferenceRaplGram, referenceCholeskySolve } from './test-reference-rapl-gram.js';

/** The regression as StaticPowerLearner built it before the sums: the design matrix from the records. */
function directIntercept(recs: readonly GramRecord[]): number | undefined {
  const seen = new Map<string, number>();
  for (const r of recs) for (const k of r.cores.keys()) seen.set(k, (seen.get(k) ?? 0) + 1);
  const cols = [...seen].filter(([, n]) => n >= 0.1 * recs.length).map(([k]) => k);
  const colIdx = new Map(cols.map((k, i) => [k, i]));
  const w = cols.length + 2;
  const X = recs.map((r) => {
    const row = new Array<number>(2 * w).fill(0);
    for (const [k, c] of r.cores) row[colIdx.get(k) ?? cols.length]! += c;
    row[cols.length + 1] = r.overheadCores;
    for (let j = 0; j < w; j++) row[w + j] = row[j]! * r.busyFrac;
    return row;
  });
  return ridgeIntercept(X, recs.map((r) => r.power.rapl));
}

function record(rnd: () => number, t: number): GramRecord {
  const cores = new Map<string, number>();
  // steady VMs, VMs that come and go (churn past the window), a VM at constant cores, a rare VM
  cores.set('steady-a', 2 + 4 * rnd());
  cores.set('steady-b', rnd() < 0.5 ? 12 * rnd() : 0.5);
  cores.set('pinned', 3);
  if (t % 50 < 30) cores.set(`churn-${Math.floor(t / 50)}`, 1 + rnd());
  if (t % 13 === 0) cores.set('rare', 5 * rnd());
  const overheadCores = 0.2 + 0.6 * rnd();
  let busy = overheadCores;
  for (const c of cores.values()) busy += c;
  const busyFrac = busy / 64;
  let y = 120 + 3 * overheadCores;
  for (const [k, c] of cores) y += (k.startsWith('steady-b') ? 9 : 2.5) * c * (1 + 0.8 * busyFrac);
  return { cores, overheadCores, busyFrac, power: { rapl: y + (rnd() - 0.5) * 4 } };
}

test('running sums give the intercept of the regression on the window (add, evict, rebuild; VMs churning)', () => {
  const rnd = prng(11);
  const g = new RaplGram();
  const window: GramRecord[] = [];
  let compared = 0;
  for (let t = 0; t < 400; t++) {
    const r = record(rnd, t);
    window.push(r);
    g.add(r);
    if (window.length > 60) g.remove(window.shift()!);
    if (t === 250) g.rebuild(window);
    if (window.length >= 10) {
      const want = directIntercept(window);
      const got = g.intercept();
      assert.ok(want !== undefined && got !== undefined, `t=${t}: ${want} vs ${got}`);
      assert.ok(Math.abs(got - want) < 1e-6, `t=${t}: sums ${got} W, direct ${want} W`);
      compared++;
    }
  }
  assert.equal(compared, 391);
  assert.equal(g.n, 60);
});

test('constant and absent columns are dropped; fewer than 3 records give no intercept', () => {
  const g = new RaplGram();
  const same: GramRecord = { cores: new Map([['a', 2]]), overheadCores: 0.5, busyFrac: 0.25, power: { rapl: 150 } };
  g.add(same);
  g.add(same);
  assert.equal(g.intercept(), undefined);
  g.add(same);
  assert.equal(g.intercept(), 150); // every column constant: the mean power
  assert.equal(directIntercept([same, same, same]), 150);
});

test('cholesky solve: exact on a small SPD system, undefined when not positive definite', () => {
  const x = choleskySolve(new Float64Array([4, 2, 2, 3]), new Float64Array([10, 8]), 2)!;
  assert.ok(Math.abs(x[0]! - 1.75) < 1e-12 && Math.abs(x[1]! - 1.5) < 1e-12, `${x[0]} ${x[1]}`);
  assert.equal(choleskySolve(new Float64Array([1, 2, 2, 1]), new Float64Array([1, 1]), 2), undefined);
});

/** A host of `vms` VMs: most in every record, every seventh one away a quarter of the time, a few rare. */
function hostRecord(rnd: () => number, t: number, vms: number): GramRecord {
  const cores = new Map<string, number>();
  for (let v = 0; v < vms; v++) if (v % 7 !== 3 || t % 40 < 30) cores.set(`vm-${v}`, (v % 5 === 0 ? 2 : 0.1) + 3 * rnd());
  if (t % 17 === 0) cores.set(`rare-${t % 3}`, rnd());
  const overheadCores = 0.2 + rnd();
  let busy = overheadCores;
  for (const c of cores.values()) busy += c;
  const busyFrac = busy / (4 * vms + 8);
  let y = 150 + 2 * overheadCores;
  for (const c of cores.values()) y += 4 * c * (1 + busyFrac);
  return { cores, overheadCores, busyFrac, power: { rapl: y + rnd() } };
}

test('intercept: the same watts, to the bit, as cb03fb3\'s (frozen in test-reference-rapl-gram.ts), hosts of 1–60 VMs sharing one InterceptWork', () => {
  const rnd = prng(23);
  const sizes = [1, 2, 5, 13, 50, 60, 3, 31];
  const hosts = sizes.map((vms) => ({ vms, now: new RaplGram(), ref: new ReferenceRaplGram(), window: [] as GramRecord[] }));
  const work = new InterceptWork();
  let compared = 0;
  let defined = 0;
  let differs = 0;
  for (let t = 0; t < 240; t++) {
    // the hosts in turn, as a collector's intervals arrive: the work holds the previous host's (other-sized) arrays
    for (const h of hosts) {
      const r = hostRecord(rnd, t, h.vms);
      h.window.push(r);
      h.now.add(r);
      h.ref.add(r);
      if (h.window.length > 150) {
        const out = h.window.shift()!;
        h.now.remove(out);
        h.ref.remove(out);
      }
      if (t === 200) {
        h.now.rebuild(h.window);
        h.ref.rebuild(h.window);
      }
      const want = h.ref.intercept(0.1);
      const got = h.now.intercept({ minShare: 0.1, work });
      assert.ok(Object.is(got, want), `t=${t}, ${h.vms} VMs: ${got} W, cb03fb3 ${want} W`);
      // without a work of its own, and with the defaults (minShare 0.1, λ 1e-4), too
      assert.ok(Object.is(h.now.intercept({ minShare: 0.1 }), want), `t=${t}, ${h.vms} VMs, no work`);
      assert.ok(Object.is(h.now.intercept(), want), `t=${t}, ${h.vms} VMs, defaults`);
      // other options reach the regression: a VM needs 40 % of the records for columns of its own, λ 1e-2
      const wantOther = h.ref.intercept(0.4, 1e-2);
      const gotOther = h.now.intercept({ minShare: 0.4, lambda: 1e-2, work });
      assert.ok(Object.is(gotOther, wantOther), `t=${t}, ${h.vms} VMs, minShare 0.4, λ 1e-2: ${gotOther} W, cb03fb3 ${wantOther} W`);
      if (wantOther !== want) differs++;
      compared++;
      if (want !== undefined) defined++;
    }
  }
  assert.equal(compared, 240 * sizes.length);
  assert.ok(defined > 0.9 * compared, `${defined} of ${compared} defined`);
  // the other options give other watts (so the comparison above would see them ignored)
  assert.ok(differs > 0.9 * compared, `${differs} of ${compared} differ with minShare 0.4, λ 1e-2`);
});

test('cholesky solve, two rows at a time: the same solution, to the bit, as cb03fb3\'s for k = 1–41 (odd and even) in mixed order, one work reused after larger solves, undefined for the same systems; the upper triangle is not read', () => {
  const rnd = prng(29);
  const work = new CholeskyWork();
  // the largest first, then smaller and larger ones mixed: most solves reuse a work grown for a larger k,
  // whose x holds that solve's values past k
  const first = [41, 3, 17, 1, 40, 2];
  const sizes = [...first, ...Array.from({ length: 41 }, (_, i) => 1 + ((16 * i) % 41)).filter((k) => !first.includes(k))];
  assert.deepEqual([...sizes].sort((a, b) => a - b), Array.from({ length: 41 }, (_, i) => i + 1));
  let solved = 0;
  let refused = 0;
  let reused = 0;
  for (const k of sizes) {
    for (let rep = 0; rep < 4; rep++) {
      const A = Float64Array.from({ length: k * k }, () => rnd() - 0.5);
      const M = new Float64Array(k * k);
      for (let i = 0; i < k; i++) {
        for (let j = 0; j < k; j++) {
          let s = 0;
          for (let t = 0; t < k; t++) s += A[i * k + t]! * A[j * k + t]!;
          // rep 3: a negative diagonal shift, not positive definite for most k
          M[i * k + j] = s + (i === j ? (rep === 3 ? -0.5 : 1e-3) : 0);
        }
      }
      const rhs = Float64Array.from({ length: k }, () => rnd());
      const want = referenceCholeskySolve(M, rhs, k);
      if (work.x.length > k) reused++;
      // the upper triangle is never read (intercept fills only the lower one): NaN there changes nothing
      const lower = M.slice();
      for (let i = 0; i < k; i++) for (let j = i + 1; j < k; j++) lower[i * k + j] = Number.NaN;
      for (const got of [choleskySolve(M, rhs, k, work), choleskySolve(M, rhs, k), choleskySolve(lower, rhs, k, work)]) {
        if (want === undefined) {
          assert.equal(got, undefined, `k=${k} rep=${rep}`);
          continue;
        }
        assert.ok(got !== undefined, `k=${k} rep=${rep}: refused, cb03fb3 solved it`);
        // exactly k entries, even when the work's x is longer (nothing stale past k to read)
        assert.equal(got.length, k, `k=${k} rep=${rep}: ${got.length} entries`);
        for (let i = 0; i < k; i++) assert.ok(Object.is(got[i], want[i]), `k=${k} rep=${rep} x[${i}]: ${got[i]} vs ${want[i]}`);
      }
      if (want === undefined) refused++;
      else solved++;
    }
  }
  assert.ok(solved > 100 && refused > 10, `${solved} solved, ${refused} refused`);
  assert.equal(work.x.length, 41); // grown once, by the first solve
  assert.equal(reused, 4 * 40); // every solve of k < 41
});

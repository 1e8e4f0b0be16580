import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32 } from '@wattsplit/attribution';
import { LoadFactorNormalEquations, type LoadFactorRow, type RidgedNnls } from './load-factor-fit.js';
import type { Logger } from '@wattsplit/wire';

test('the normal equations accumulated by halves (upper triangles, the transposes added when read) equal AᵀA and Aᵀb summed row by row, at every (β₁, β₂)', () => {
  const rnd = mulberry32(7);
  const n = 9;
  const rows: LoadFactorRow[] = [];
  for (let r = 0; r < 200; r++) {
    const m = 1 + Math.floor(rnd() * 6);
    // columns drawn with repeats (a VM's two terms in one row) and some zero values (a term with no CPU)
    const cols = Int32Array.from({ length: m }, () => Math.floor(rnd() * 6));
    const v = [0, 1, 2].map(() => Float64Array.from({ length: m }, () => (rnd() < 0.15 ? 0 : rnd() * 10)));
    const ucols = rnd() < 0.5 ? [6, 7 + Math.floor(rnd() * 2)] : [6];
    rows.push({ m, cols, v, ucols, uvals: ucols.map(() => rnd() * 3), target: 50 + rnd() * 100 });
  }
  const ne = new LoadFactorNormalEquations(n);
  for (const r of rows.slice(0, 100)) ne.addRow(r);
  ne.system(0.3, -0.2); // a read between rows changes nothing stored
  for (const r of rows.slice(100)) ne.addRow(r);
  assert.equal(ne.rows, 200);
  for (const [b1, b2] of [[0, 0], [0.4, -0.3], [-1.2, 1.2], [1.6, 0.05]] as const) {
    const AtA = Array.from({ length: n }, () => new Float64Array(n));
    const Atb = new Float64Array(n);
    for (const r of rows) {
      const a = new Float64Array(n);
      for (let p = 0; p < r.m; p++) a[r.cols[p]!] = a[r.cols[p]!]! + r.v[0]![p]! + b1 * r.v[1]![p]! + b2 * r.v[2]![p]!;
      r.ucols.forEach((c, k) => (a[c] = a[c]! + r.uvals[k]!));
      for (let p = 0; p < n; p++) {
        Atb[p] = Atb[p]! + a[p]! * r.target;
        for (let q = 0; q < n; q++) AtA[p]![q] = AtA[p]![q]! + a[p]! * a[q]!;
      }
    }
    const got = ne.system(b1, b2);
    for (let p = 0; p < n; p++) {
      assert.ok(Math.abs(got.Atb[p]! - Atb[p]!) <= 1e-9 * Math.max(1, Math.abs(Atb[p]!)), `Atb[${p}] at (${b1}, ${b2}): ${got.Atb[p]} vs ${Atb[p]}`);
      for (let q = 0; q < n; q++) {
        assert.ok(Math.abs(got.AtA[p]![q]! - AtA[p]![q]!) <= 1e-9 * Math.max(1, Math.abs(AtA[p]![q]!)), `AtA[${p}][${q}] at (${b1}, ${b2}): ${got.AtA[p]![q]} vs ${AtA[p]![q]}`);
      }
    }
  }
});

/**
 * Rows shaped like a hardware class in refitPerVm: H hosts of V VMs; columns 0 = host 0's intercept,
 * 1..H·V = the VMs, then the hypervisor term (one column for the class), K I/O columns (every host), the other
 * hosts' intercepts, and one column that no row has (an unseen VM, ridged). VM 1 (host 0) migrates to host 1
 * halfway, which links the two hosts; VM 3 draws less power when busy (its multiplier ends at the bound 0).
 */
function classRows(seed: number, H: number, V: number, load: readonly [number, number] = [0.5, -0.3], noiseW = 1): { rows: LoadFactorRow[]; N: number; hv: number; io: number[]; empty: number; fit: RidgedNnls } {
  const rnd = mulberry32(seed);
  const K = 2;
  const hv = 1 + H * V;
  const io = [hv + 1, hv + 2];
  const icol = (h: number): number => (h === 0 ? 0 : hv + K + h);
  const empty = hv + K + H;
  const N = empty + 1;
  const coreW = Array.from({ length: H * V }, () => 2 + 8 * rnd());
  // one VM whose CPU time goes with less power: its multiplier ends at the bound 0
  coreW[3] = -6;
  const rows: LoadFactorRow[] = [];
  const T = 120;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < H; h++) {
      const cols: number[] = [];
      const v: number[][] = [[], [], []];
      let u = 0;
      const cpu: number[] = [];
      for (let i = 0; i < V; i++) {
        const vm = h * V + i;
        // the migrating VM runs on host 0 first, on host 1 after
        const host = vm === 1 && H > 1 ? (t < T / 2 ? 0 : 1) : h;
        if (host !== h && vm === 1) continue;
        const c = rnd() < 0.15 ? 0 : 4 * rnd();
        cpu.push(c);
        cols.push(1 + vm);
        u += c / (4 * V);
      }
      if (h === 1 && t >= T / 2) {
        const c = 4 * rnd();
        cpu.push(c);
        cols.push(2);
        u += c / (4 * V);
      }
      cols.push(hv);
      cpu.push(0.5 + rnd());
      let y = 80 + 5 * h;
      const lf = 1 + load[0] * u + load[1] * u * u;
      cols.forEach((c, i) => {
        const x = cpu[i]!;
        v[0]!.push(x);
        v[1]!.push(x * u);
        v[2]!.push(x * u * u);
        y += lf * x * (c === hv ? 3 : coreW[c - 1]!);
      });
      const iov = [rnd() * 2, rnd() < 0.5 ? 0 : rnd()];
      y += 4 * iov[0]! + 1.5 * iov[1]! + noiseW * (rnd() - 0.5);
      const ucols = [icol(h), ...io];
      rows.push({ m: cols.length, cols: Int32Array.from(cols), v: v.map((a) => Float64Array.from(a)), ucols, uvals: [1, ...iov], target: y });
    }
  }
  const vmCol = (p: number): boolean => p >= 1 && p < hv;
  const fit: RidgedNnls = {
    ridge: Array.from({ length: N }, (_, p) => (vmCol(p) || p === empty ? 0.005 : 0)),
    ridgeTo: 1,
    free: [0, ...Array.from({ length: H - 1 }, (_, h) => icol(h + 1))],
    ridgeFloor: Array.from({ length: N }, (_, p) => (vmCol(p) || p === empty ? 40 : 0)),
  };
  return { rows, N, hv, io, empty, fit };
}

test('a class of several hosts: blocks per host (two hosts joined by a migrating VM), the class-wide columns on the border; AᵀA, Aᵀb and the searched fit equal the dense reference', () => {
  const H = 5;
  const V = 6;
  const { rows, N, hv, io, empty, fit } = classRows(11, H, V);
  const blocks = new LoadFactorNormalEquations(N);
  const dense = new LoadFactorNormalEquations(N, { solver: 'dense' });
  for (const r of rows) {
    blocks.addRow(r);
    dense.addRow(r);
  }
  const st = blocks.structure();
  assert.deepEqual([...st.border].sort((a, b) => a - b), [hv, ...io]);
  const icol = (h: number): number => (h === 0 ? 0 : hv + io.length + h);
  const hostCols = (h: number): number[] => [icol(h), ...Array.from({ length: V }, (_, i) => 1 + h * V + i)];
  const want = [[...hostCols(0), ...hostCols(1)], ...[2, 3, 4].map(hostCols), [empty]].map((cs) => cs.sort((a, b) => a - b));
  assert.deepEqual([...st.blocks].sort((a, b) => a[0]! - b[0]!), want.sort((a, b) => a[0]! - b[0]!));
  assert.deepEqual(dense.structure(), { blocks: [Array.from({ length: N }, (_, c) => c)], border: [] });
  for (const [b1, b2] of [[0, 0], [0.5, -0.3], [-1.2, 1.2]] as const) {
    const x = blocks.system(b1, b2);
    const y = dense.system(b1, b2);
    for (let p = 0; p < N; p++) {
      assert.ok(Math.abs(x.Atb[p]! - y.Atb[p]!) <= 1e-9 * Math.max(1, Math.abs(y.Atb[p]!)));
      for (let q = 0; q < N; q++) assert.ok(Math.abs(x.AtA[p]![q]! - y.AtA[p]![q]!) <= 1e-9 * Math.max(1, Math.abs(y.AtA[p]![q]!)), `AtA[${p}][${q}]`);
    }
  }
  const a = blocks.search(fit);
  const b = dense.search(fit);
  assert.ok(a && b);
  assert.equal(a.b1, b.b1);
  assert.equal(a.b2, b.b2);
  assert.ok(Math.abs(a.sse - b.sse) <= 1e-9 * b.sse, `${a.sse} vs ${b.sse}`);
  const scale = Math.max(...Array.from(b.x, Math.abs));
  a.x.forEach((v, p) => assert.ok(Math.abs(v - b.x[p]!) <= 1e-6 * Math.max(Math.abs(b.x[p]!), 1e-3 * scale), `column ${p}: ${v} vs ${b.x[p]}`));
  // the unseen, ridged column sits at ridge / (1 + ridge) of the ridge target (its unit diagonal), in both
  assert.ok(a.x[empty]! > 0.9 && a.x[empty]! < 1);
  // the VM with negative power per core is at its bound in both
  assert.equal(b.x[4], 0);
  assert.equal(a.x[4], 0);
  // and at a fixed load factor, the first fit and a second one on more rows
  const f1 = blocks.search(fit, [0.3, -0.1]);
  const f2 = dense.search(fit, [0.3, -0.1]);
  assert.ok(f1 && f2 && Math.abs(f1.sse - f2.sse) <= 1e-9 * f2.sse);
});

test('a class where one column is in every row but splits nothing stays one dense block (no border)', () => {
  const { rows, N } = classRows(3, 1, 8);
  const ne = new LoadFactorNormalEquations(N);
  for (const r of rows) ne.addRow(r);
  const st = ne.structure();
  assert.deepEqual(st.border, []);
  // the seen columns form one block; the columns no row has are blocks of their own
  const seen = new Set(rows.flatMap((r) => [...Array.from(r.cols), ...r.ucols]));
  const big = st.blocks.filter((b) => b.length > 1);
  assert.equal(big.length, 1);
  assert.deepEqual(big[0], [...seen].sort((a, b) => a - b));
});

test('the coarse-to-fine search reaches the grid search\'s (β₁, β₂) and fit with fewer solves, over classes of 1–6 hosts, true load factors across the box and noise from none to large', () => {
  const cases: { seed: number; H: number; V: number; load: [number, number]; noiseW: number }[] = [
    { seed: 1, H: 1, V: 10, load: [0.5, -0.3], noiseW: 1 },
    { seed: 2, H: 1, V: 12, load: [0, 0], noiseW: 1 },
    { seed: 3, H: 3, V: 6, load: [-0.6, 0.4], noiseW: 2 },
    { seed: 4, H: 4, V: 5, load: [1.2, -0.5], noiseW: 0.5 },
    { seed: 5, H: 6, V: 4, load: [0.3, 0.6], noiseW: 20 },
    { seed: 6, H: 2, V: 8, load: [-1, 0.9], noiseW: 0 },
    { seed: 7, H: 5, V: 6, load: [0.05, -0.05], noiseW: 40 },
  ];
  for (const c of cases) {
    const { rows, N, fit } = classRows(c.seed, c.H, c.V, c.load, c.noiseW);
    const grid = new LoadFactorNormalEquations(N, { search: 'grid' });
    const ctf = new LoadFactorNormalEquations(N);
    for (const r of rows) {
      grid.addRow(r);
      ctf.addRow(r);
    }
    const a = grid.search(fit);
    const b = ctf.search(fit);
    const what = JSON.stringify(c);
    assert.ok(a && b, what);
    assert.equal(b.b1, a.b1, what);
    assert.equal(b.b2, a.b2, what);
    // the same NNLS at the same point, reached from other warm starts: equal to the solver's precision
    assert.ok(Math.abs(a.sse - b.sse) <= 1e-9 * a.sse, `${what}: sse ${b.sse} vs ${a.sse}`);
    const scale = Math.max(...Array.from(a.x, Math.abs));
    a.x.forEach((v, p) => assert.ok(Math.abs(b.x[p]! - v) <= 1e-8 * scale, `${what}: column ${p}: ${b.x[p]} vs ${v}`));
    // the searches' own solve counts, read before the extra solve at the true load factor below; measured
    // 33-52 % of the grid's (docs/benchmarks.md, the coarse-to-fine section): 60 % is that with a margin
    const searchSolves = ctf.solves;
    assert.ok(searchSolves < 0.6 * grid.solves, `${what}: ${searchSolves} solves vs ${grid.solves}`);
    // and it fits the rows no worse than the load factor they were made with
    const truth = ctf.search(fit, c.load);
    assert.ok(truth && a.sse <= truth.sse, `${what}: sse ${a.sse} at the found (${a.b1}, ${a.b2}) vs ${truth?.sse} at the true load factor`);
  }
});

test('a search revisits no (β₁, β₂): each point is solved once, whatever path the pattern search takes', () => {
  const { rows, N, fit } = classRows(8, 2, 5, [0.4, -0.2]);
  for (const search of ['grid', 'coarse-to-fine'] as const) {
    const ne = new LoadFactorNormalEquations(N, { search });
    for (const r of rows) ne.addRow(r);
    const seen = new Set<string>();
    const solve = ne.solve.bind(ne);
    ne.solve = (b1, b2, f) => {
      const key = `${Math.round(b1 * 80)},${Math.round(b2 * 80)}`;
      assert.ok(!seen.has(key), `${search}: (${b1}, ${b2}) solved twice`);
      seen.add(key);
      return solve(b1, b2, f);
    };
    assert.ok(ne.search(fit));
    assert.equal(ne.solves, seen.size);
    // the grid search solves every admissible grid point, the pattern search's moves on top
    if (search === 'grid') assert.ok(ne.solves > 300, `${ne.solves}`);
  }
});

test('where the block pivoting does not converge, the point is solved densely to the same optimum, counted and reported once', () => {
  const { rows, N, fit } = classRows(11, 5, 6);
  const warnings: { obj: Record<string, unknown>; msg: string }[] = [];
  const logger = { warn: (obj: Record<string, unknown>, msg: string) => warnings.push({ obj, msg }), info: () => {}, debug: () => {}, error: () => {}, child: () => logger } as unknown as Logger;
  const starved = new LoadFactorNormalEquations(N, { maxPivotSteps: 0, logger, label: 'test-class rapl' });
  const blocks = new LoadFactorNormalEquations(N);
  const dense = new LoadFactorNormalEquations(N, { solver: 'dense' });
  for (const r of rows) for (const ne of [starved, blocks, dense]) ne.addRow(r);
  const a = starved.search(fit);
  const b = dense.search(fit);
  const c = blocks.search(fit);
  assert.ok(a && b && c);
  assert.equal(a.b1, b.b1);
  assert.equal(a.b2, b.b2);
  assert.ok(Math.abs(a.sse - b.sse) <= 1e-9 * b.sse, `${a.sse} vs ${b.sse}`);
  assert.equal(starved.denseFallbacks, starved.solves, 'every point fell back');
  assert.ok(starved.denseFallbacks > 10);
  assert.equal(blocks.denseFallbacks, 0, 'the default bound converges on this class');
  assert.equal(warnings.length, 1, 'one warning per system');
  assert.equal(warnings[0]!.obj.system, 'test-class rapl');
  assert.match(warnings[0]!.msg, /did not converge.*dense Lawson–Hanson/);
});

test('systems of one training sharing `warned` and `fallbacks`: one warning per label over all of them, every fallback counted', () => {
  const { rows, N, fit } = classRows(11, 5, 6);
  const warnings: { obj: Record<string, unknown>; msg: string }[] = [];
  const logger = { warn: (obj: Record<string, unknown>, msg: string) => warnings.push({ obj, msg }), info: () => {}, debug: () => {}, error: () => {}, child: () => logger } as unknown as Logger;
  const warned = new Set<string>();
  const fallbacks = { count: 0 };
  const shared = { maxPivotSteps: 0, logger, warned, fallbacks };
  const first = new LoadFactorNormalEquations(N, { ...shared, label: 'test-class rapl' });
  const second = new LoadFactorNormalEquations(N, { ...shared, label: 'test-class rapl' });
  const other = new LoadFactorNormalEquations(N, { ...shared, label: 'test-class bmc_rest' });
  // the same label without the shared set: its own warning, as before
  const alone = new LoadFactorNormalEquations(N, { maxPivotSteps: 0, logger, label: 'test-class rapl' });
  for (const ne of [first, second, other, alone]) {
    for (const r of rows) ne.addRow(r);
    assert.ok(ne.search(fit));
    assert.ok(ne.denseFallbacks > 10, `${ne.denseFallbacks}`);
  }
  assert.equal(fallbacks.count, first.denseFallbacks + second.denseFallbacks + other.denseFallbacks, 'the shared counter holds the sharing systems\' fallbacks');
  assert.deepEqual([...warned].sort(), ['test-class bmc_rest', 'test-class rapl']);
  assert.deepEqual(
    warnings.map((w) => w.obj.system),
    ['test-class rapl', 'test-class bmc_rest', 'test-class rapl'],
    'once for the two rapl systems sharing the set, once for bmc_rest, once for the system with its own set',
  );
});

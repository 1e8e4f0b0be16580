import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HostInterval } from '@wattsplit/attribution';
import { trainAdditiveModel, type AdditiveModelJson } from './index.js';
import { synthHost } from './test-hosts.js';

const fast = { steps: 300, maxIntervals: 1500 };

/**
 * A class of `hosts` synthetic hosts of `vms` VMs each (host k: seed + k, its own VM ids), whose dynamic power
 * is concave in load (per-core power falls as more cores are busy: a load factor away from 0 to find).
 */
function concaveClass(seed: number, hosts: number, vms: number): HostInterval[] {
  const out: HostInterval[] = [];
  for (let k = 0; k < hosts; k++) {
    const hostId = `h${k + 1}`;
    const { intervals } = synthHost({ seed: seed + k, vms, seconds: Math.round(1500 / hosts) + 60 });
    const dyn = intervals.map((iv) => iv.measured.rapl / iv.durationS - 120);
    const dMax = Math.max(...dyn);
    intervals.forEach((iv, i) => {
      const d = Math.max(0, dyn[i]!);
      out.push({ ...iv, hostId, vms: iv.vms.map((v) => ({ ...v, uuid: `${hostId}-${v.uuid}`, name: `${hostId}-${v.name}` })), measured: { ...iv.measured, rapl: (120 + d * (1.25 - (0.5 * d) / dMax)) * iv.durationS } });
    });
  }
  return out.sort((a, b) => a.t0UnixNs - b.t0UnixNs);
}

const rel = (a: number, b: number): number => Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-9);

/** Both models' load factors equal, their per-VM coefficients, static powers and residuals equal to `tol`. */
function assertSameModel(a: AdditiveModelJson, b: AdditiveModelJson, tol: number, what: string): void {
  for (const s of ['rapl', 'bmc_rest'] as const) {
    const x = a.sources[s];
    const y = b.sources[s];
    assert.deepEqual(y.load, x.load, `${what} ${s} load`);
    assert.ok(rel(x.staticW, y.staticW) <= tol, `${what} ${s} staticW ${x.staticW} vs ${y.staticW}`);
    assert.ok(rel(x.residualRmsW, y.residualRmsW) <= tol, `${what} ${s} residual ${x.residualRmsW} vs ${y.residualRmsW}`);
    for (const [h, w] of Object.entries(x.hostStaticW ?? {})) assert.ok(rel(w, y.hostStaticW?.[h] ?? NaN) <= tol, `${what} ${s} ${h} static`);
    const own = Object.entries(x.vmCoreW ?? {});
    assert.equal(own.length, Object.keys(y.vmCoreW ?? {}).length);
    for (const [id, w] of own) assert.ok(rel(w, y.vmCoreW?.[id] ?? NaN) <= tol, `${what} ${s} ${id} W/core ${w} vs ${y.vmCoreW?.[id]}`);
    for (const [id, w] of Object.entries(x.vm)) assert.ok(Math.abs(w - (y.vm[id] ?? NaN)) <= tol, `${what} ${s} ${id} log-multiplier`);
  }
}

test('trainAdditiveModel: the coarse-to-fine load-factor search gives the grid search\'s model (load factors equal, coefficients to 1e-8) on one host and on a class of four', async () => {
  for (const [hosts, vms] of [[1, 10], [4, 6]] as const) {
    const ivs = concaveClass(21, hosts, vms);
    const grid = await trainAdditiveModel(ivs, { ...fast, loadFactorSearch: 'grid' });
    const ctf = await trainAdditiveModel(ivs, fast);
    // a load factor was searched and found away from 0 (the concave power), so the comparison is not of two defaults
    assert.ok(grid.sources.rapl.load[0] !== 0 || grid.sources.rapl.load[1] !== 0, `load ${grid.sources.rapl.load.join(', ')}`);
    assert.equal(Object.keys(ctf.sources.rapl.hostStaticW ?? {}).length, hosts);
    // the same NNLS at the same (β₁, β₂), reached from other warm starts: the solver's precision, well above it
    assertSameModel(grid, ctf, 1e-8, `${hosts} × ${vms}`);
  }
});

/**
 * Which CPU package (socket) each VM runs on, inferred from host-level measurements only: every package has
 * its own RAPL counter (`intel-rapl:0`, `intel-rapl:1`, `amd-rapl:N`), and a VM's CPU time raises the
 * energy of the package it runs on, not the other's. Per host and package, a non-negative least-squares fit
 *   P_package(t) = c_0 + Σ_vm b_vm · cpu_vm(t)
 * gives each VM a coefficient per package; its placement is the share of its coefficients per package.
 * Why it matters: per-core power depends on the load of the core's own package (all-core turbo, voltage,
 * uncore), which can differ a lot between the sockets of one host.
 *
 * Package zones are the top-level RAPL ids (`<prefix>:<n>`, no sub-zone); a top-level zone carrying at least
 * as much energy as all other top-level zones together is `psys` (the whole platform) and is left out.
 * A VM that restarts, arrives or leaves may come back on another package: its CPU time before such a break
 * (its CPU counter went backwards, or it was away from the host for more than 30 s; a cgroup
 * briefly unreadable is not a break) is a separate column, and only the latest one is kept.
 */
import type { HostInterval } from '@wattsplit/attribution';
import type { Placement } from './additive-model.js';
import { nnlsNormal } from './nnls.js';

const TOP_LEVEL = /^[^:]+:(\d+)$/;
/** Coefficient shares below this are leakage of the fit, not placement. */
const MIN_SHARE = 0.12;
/** Fewer intervals of a host than this: no placement for it. */
const MIN_INTERVALS = 60;

/** Package zone ids of a host (sorted by package index), from the mean energy of its top-level RAPL zones. */
export function packageZones(intervals: readonly HostInterval[]): string[] {
  const sum = new Map<string, number>();
  const seen = new Map<string, number>();
  for (const iv of intervals) {
    for (const [id, j] of Object.entries(iv.raplZones)) {
      if (!TOP_LEVEL.test(id) || !Number.isFinite(j)) continue;
      sum.set(id, (sum.get(id) ?? 0) + j);
      seen.set(id, (seen.get(id) ?? 0) + 1);
    }
  }
  // zones present in (almost) every interval
  let ids = [...sum.keys()].filter((id) => (seen.get(id) ?? 0) >= 0.9 * intervals.length);
  if (ids.length >= 3) {
    const total = ids.reduce((a, id) => a + sum.get(id)!, 0);
    ids = ids.filter((id) => sum.get(id)! < 0.5 * total);
  }
  return ids.sort((a, b) => Number(TOP_LEVEL.exec(a)![1]) - Number(TOP_LEVEL.exec(b)![1]));
}

/** Away longer than this (s): the VM may come back on another package. */
const AWAY_S = 30;

function restarted(iv: HostInterval, uuid: string): boolean {
  return iv.anomalies.some((a) => a.vmUuid === uuid && a.code === 'COUNTER_WENT_BACKWARDS');
}

/**
 * Placement of every VM on hosts with ≥ 2 package zones, keyed `${hostId}/${vmUuid}`. All intervals are read
 * (breaks); only those passing `fit` (e.g. free of agent artefacts) are fitted. Hosts with one package,
 * or too few intervals, are left out (their terms use the host load). Returns undefined when no host qualifies.
 */
export function inferPlacement(intervals: readonly HostInterval[], fit: (iv: HostInterval) => boolean = () => true): Placement | undefined {
  return fitPlacement(intervals, fit).placement;
}

/** A placement with the earlier epochs too (for training on intervals from before a VM moved). */
export interface PlacementFit {
  /** The latest placement of every VM (what the model keeps). */
  placement: Placement | undefined;
  /** `${hostId}/${vmUuid}#${epoch}` → weights, for the epochs before the latest. */
  earlier: Record<string, number[]>;
  /** The `earlier` key of a VM in an interval, or undefined when the VM was in its latest epoch. */
  keyOf(iv: HostInterval, vmUuid: string): string | undefined;
}

export function fitPlacement(intervals: readonly HostInterval[], fit: (iv: HostInterval) => boolean = () => true): PlacementFit {
  const earlierKey = new Map<HostInterval, Map<string, string>>();
  const earlier: Record<string, number[]> = {};
  const byHost = new Map<string, HostInterval[]>();
  for (const iv of intervals) {
    if (!(iv.durationS > 0)) continue;
    let l = byHost.get(iv.hostId);
    if (!l) byHost.set(iv.hostId, (l = []));
    l.push(iv);
  }
  const vm: Record<string, number[]> = {};
  let sockets = 0;
  for (const [host, list] of byHost) {
    if (list.length < MIN_INTERVALS) continue;
    list.sort((a, b) => a.t0UnixNs - b.t0UnixNs || a.seq - b.seq);
    const zones = packageZones(list);
    if (zones.length < 2 || (sockets !== 0 && zones.length !== sockets)) continue;
    // columns: VM epochs (a new epoch after each break)
    const epoch = new Map<string, number>();
    const lastSeenNs = new Map<string, number>();
    const starts = new Map<string, number[]>(); // list index at which each epoch of a VM begins
    const col = new Map<string, number>(); // `${uuid}#${epoch}` → column (1-based; 0 = intercept)
    const rows: { cols: number[]; vals: number[]; y: number[] }[] = [];
    list.forEach((iv, idx) => {
      const cols: number[] = [];
      const vals: number[] = [];
      for (const v of iv.vms) {
        const last = lastSeenNs.get(v.uuid);
        if (restarted(iv, v.uuid) || (last !== undefined && iv.t0UnixNs - last > AWAY_S * 1e9)) epoch.set(v.uuid, (epoch.get(v.uuid) ?? 0) + 1);
        lastSeenNs.set(v.uuid, iv.t1UnixNs);
        const key = `${v.uuid}#${epoch.get(v.uuid) ?? 0}`;
        const st = starts.get(v.uuid) ?? [];
        if (st.length <= (epoch.get(v.uuid) ?? 0)) starts.set(v.uuid, [...st, idx]);
        let c = col.get(key);
        if (c === undefined) col.set(key, (c = col.size + 1));
        const x = v.cpuSeconds / iv.durationS;
        if (x > 0 && Number.isFinite(x)) {
          cols.push(c);
          vals.push(x);
        }
      }
      const y = zones.map((z) => (iv.raplZones[z] ?? NaN) / iv.durationS);
      if (fit(iv) && y.every((x) => Number.isFinite(x) && x >= 0)) rows.push({ cols, vals, y });
    });
    if (rows.length < MIN_INTERVALS) continue;
    const n = col.size + 1;
    const AtA = Array.from({ length: n }, () => new Float64Array(n));
    const Atb = zones.map(() => new Float64Array(n));
    for (const r of rows) {
      const cs = [0, ...r.cols];
      const vs = [1, ...r.vals];
      for (let p = 0; p < cs.length; p++) {
        const row = AtA[cs[p]!]!;
        for (let q = 0; q < cs.length; q++) row[cs[q]!] = row[cs[q]!]! + vs[p]! * vs[q]!;
        r.y.forEach((y, z) => (Atb[z]![cs[p]!] = Atb[z]![cs[p]!]! + vs[p]! * y));
      }
    }
    // a little ridge keeps columns of rarely busy VMs solvable
    for (let p = 1; p < n; p++) AtA[p]![p] = AtA[p]![p]! * (1 + 1e-6) + 1e-9;
    const coef = Atb.map((b) => nnlsNormal(AtA, b, [0]));
    for (const [key, c] of col) {
      const [uuid, ep] = key.split('#') as [string, string];
      const b = coef.map((x) => Math.max(0, x[c]!));
      let tot = b.reduce((a, x) => a + x, 0);
      if (!(tot > 0)) continue;
      let w = b.map((x) => (x / tot < MIN_SHARE ? 0 : x));
      tot = w.reduce((a, x) => a + x, 0);
      w = w.map((x) => x / tot);
      if (Number(ep) === (epoch.get(uuid) ?? 0)) vm[`${host}/${uuid}`] = w;
      else earlier[`${host}/${key}`] = w;
    }
    // intervals in which a VM was in an earlier epoch than its latest
    for (const [uuid, st] of starts) {
      if (st.length < 2) continue;
      const latest = st[st.length - 1]!;
      for (let idx = st[0]!; idx < latest; idx++) {
        const iv = list[idx]!;
        if (!iv.vms.some((v) => v.uuid === uuid)) continue;
        let ep = 0;
        while (ep + 1 < st.length && st[ep + 1]! <= idx) ep++;
        let m = earlierKey.get(iv);
        if (!m) earlierKey.set(iv, (m = new Map<string, string>()));
        m.set(uuid, `${host}/${uuid}#${ep}`);
      }
    }
    sockets = zones.length;
  }
  const ok = sockets >= 2 && Object.keys(vm).length > 0;
  return { placement: ok ? { sockets, vm } : undefined, earlier: ok ? earlier : {}, keyOf: (iv, uuid) => (ok ? earlierKey.get(iv)?.get(uuid) : undefined) };
}

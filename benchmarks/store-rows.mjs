#!/usr/bin/env node
// The store's hot-table row encoding (issue 15): vm_samples and attributions rows through the RowBinary
// codec's encodeProjected, as prepareRows runs it on a group commit (480 host intervals of 50 VMs; RAPL
// and BMC shares, ≈ 2 attribution rows per VM-sample), with two builds of @wattsplit/store in one process,
// alternating which goes first; the bytes of both are checked equal first (the run stops otherwise).
//
//   BEFORE_ROOT=<a checkout built apart, e.g. a git worktree of the commit before> node benchmarks/store-rows.mjs
//   env: REPS (21) BYTE_REPS (5) SITES
//
// Column types come from the migrations' CREATE TABLE statements (packages/store/sql). CPU time (user +
// system, GC included) per VM-sample, medians of REPS; then the bytes each build allocates on the V8 heap per
// VM-sample (V8's sampling heap profiler, every 1 KiB, objects collected by GC kept; the encoders' output
// Buffers' contents are off-heap and not counted), medians of BYTE_REPS (5) after the timed runs (JIT warm);
// prints one JSON line. SITES=1 also prints each build's top allocating functions (stderr).
import { readFileSync } from 'node:fs';
import { loadavg, cpus } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Session } from 'node:inspector/promises';

const here = resolve(import.meta.dirname, '..');
const before = process.env.BEFORE_ROOT;
if (!before) {
  console.error('BEFORE_ROOT=<a checkout built apart> is needed: this benchmark compares two builds');
  process.exit(2);
}
const load = async (root) => ({
  rb: await import(pathToFileURL(resolve(root, 'packages/store/dist/row-binary.js')).href),
  rows: await import(pathToFileURL(resolve(root, 'packages/store/dist/rows.js')).href),
});
const builds = { before: await load(before), after: await load(here) };
const fx = await import(pathToFileURL(resolve(here, 'packages/store/dist/test-fixtures.js')).href);

const sql = ['0001_raw_samples.sql', '0002_attributions.sql'].map((f) => readFileSync(resolve(here, 'packages/store/sql', f), 'utf8')).join('\n');
const typesOf = (table) => {
  const m = sql.match(new RegExp(`CREATE TABLE IF NOT EXISTS ${table}\\s*\\(([\\s\\S]*?)\\n\\)`));
  if (!m) throw new Error(`no CREATE TABLE ${table} in the migrations`);
  return new Map(
    m[1]
      .split('\n')
      .map((l) => l.trim().match(/^(\w+) (.+?)(?: CODEC\(.*\))?(?: MATERIALIZED .*)?,?$/))
      .filter(Boolean)
      .map((x) => [x[1], x[2].replace(/,$/, '')]),
  );
};
const vmTypes = typesOf('vm_samples');
const atTypes = typesOf('attributions');

let seed = 5;
const rnd = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
const intervals = [];
for (let n = 0; n < 480; n++) {
  const iv = fx.sampleInterval(`host-${n % 8}`, n, 1_765_000_000_000_000_000 + n * 1e9);
  iv.vms = Array.from({ length: 50 }, (_, k) => ({
    ...fx.sampleVm(`0000${k}-0000-4000-8000-${String(n % 8).padStart(12, '0')}`, `tenant-${k % 7}`, rnd() * 4),
    gpus: [],
    vcpuSeconds: [rnd(), rnd(), rnd(), rnd()],
    memoryUsedBytes: Math.floor(rnd() * 2 ** 33),
    blockReadBytes: Math.floor(rnd() * 1e9),
  }));
  intervals.push(iv);
}
const results = intervals.map((i) => fx.sampleResult(i)).map((r) => ({ ...r, shares: r.shares.filter((s) => s.source !== 'gpu') }));
const vmSamples = intervals.length * 50;

const runs = {};
const out = {};
for (const [k, { rb, rows }] of Object.entries(builds)) {
  const vc = rb.rowBinaryCodec('vm_samples', vmTypes, rows.VM_ROW_PROJECTION.columns);
  const ac = rb.rowBinaryCodec('attributions', atTypes, rows.ATTRIBUTION_ROW_PROJECTION.columns);
  if (!vc || !ac) throw new Error(`${k}: a projection column is not in the migrations' tables`);
  const vi = rows.vmItems(intervals);
  const si = rows.shareItems(results);
  runs[k] = () => [vc.encodeProjected(vi, rows.VM_ROW_PROJECTION), ac.encodeProjected(si, rows.ATTRIBUTION_ROW_PROJECTION)];
  out[k] = runs[k]().map((b) => Buffer.from(b));
}
for (let t = 0; t < 2; t++) if (!out.before[t].equals(out.after[t])) throw new Error(`${t === 0 ? 'vm_samples' : 'attributions'} bytes differ between the builds`);

const REPS = Number(process.env.REPS ?? 21);
const load0 = loadavg()[0];
const us = { before: [], after: [] };
for (let r = 0; r < REPS; r++) {
  for (const k of r % 2 ? ['after', 'before'] : ['before', 'after']) {
    const c0 = process.cpuUsage();
    runs[k]();
    const c = process.cpuUsage(c0);
    us[k].push((c.user + c.system) / vmSamples);
  }
}
const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];

const session = new Session();
session.connect();
const sampled = (node) => node.selfSize + node.children.reduce((a, c) => a + sampled(c), 0);
const bytes = { before: [], after: [] };
const BYTE_REPS = Number(process.env.BYTE_REPS ?? 5);
for (let r = 0; r < BYTE_REPS; r++) {
  for (const k of r % 2 ? ['after', 'before'] : ['before', 'after']) {
    await session.post('HeapProfiler.startSampling', { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
    runs[k]();
    const { profile } = await session.post('HeapProfiler.stopSampling');
    bytes[k].push(sampled(profile.head) / vmSamples);
    if (process.env.SITES && r === BYTE_REPS - 1) {
      const m = new Map();
      const walk = (n) => { const key = `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.split('/').slice(-1)[0]}:${n.callFrame.lineNumber + 1}`; m.set(key, (m.get(key) ?? 0) + n.selfSize); n.children.forEach(walk); };
      walk(profile.head);
      console.error(k, [...m].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([x, v]) => `${x} ${(v / vmSamples).toFixed(0)}`).join(' | '));
    }
  }
}
session.disconnect();
console.log(JSON.stringify({
  bench: 'store-rows', vm_samples: vmSamples, attribution_rows: results.reduce((a, r) => a + r.shares.length, 0), bytes_equal: true, reps: REPS,
  before_us_per_vm_sample: +median(us.before).toFixed(3), after_us_per_vm_sample: +median(us.after).toFixed(3), ratio: +(median(us.after) / median(us.before)).toFixed(3),
  before_heap_bytes_per_vm_sample: Math.round(median(bytes.before)), after_heap_bytes_per_vm_sample: Math.round(median(bytes.after)), byte_reps: BYTE_REPS,
  loadavg_1m_start_end: [load0, loadavg()[0]], machine: `${cpus().length} × ${cpus()[0]?.model.split(' ').slice(0, 2).join(' ')}`, node: process.version, date: new Date().toISOString(),
}));

#!/usr/bin/env node
// Where a collector's main thread spends its time, from a V8 CPU profile (`node --cpu-prof ...`, e.g.
// `node --cpu-prof --cpu-prof-dir=DIR benchmarks/fleet.mjs ...`, which profiles the collector's process):
//
//   node benchmarks/profile-groups.mjs FILE.cpuprofile [FROM_S TO_S]
//
// Samples between FROM_S and TO_S seconds after the profile started (default: all); each busy sample goes
// to the first group below with a function of that name anywhere on its stack (so the order matters:
// garbage collection first, publishing before the store, ...). Prints the busy seconds and each group's
// seconds and share of them. The profiler samples wall-clock time on the main thread: on a loaded box a
// function's share includes the time the thread waited for a core while in it.
import { readFileSync } from 'node:fs';

const GROUPS = [
  ['garbage collection (main thread)', ['(garbage collector)']],
  ['publish attributions: encode', ['encodeAttributionBatch']],
  ['publish attributions: producer (gzip, copies, socket)', ['send']],
  ['RowBinary encoding (vm_samples, attributions)', ['prepareRows']],
  ['other store calls (HTTP client, host rows, checkpoints)', ['writeIntervals', 'saveCheckpoints', 'insert', 'insertPrepared', 'exec']],
  ['decode frames', ['decodeFrame']],
  ['align (IntervalAligner)', ['align', 'validateFrame']],
  ['attribute + conservation', ['attribute']],
  ['metrics', ['recordResult', 'recordMeasured', 'inc']],
  ['Kafka consumer (fetch, decompress, to BusMessage)', ['drain', 'toBus', 'readRecordsBatches', '#onData', '#pushRecords']],
  ['benchmark harness: starting servers', ['spawnSync', 'execFileSync']],
];

const [file, fromArg, toArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: node benchmarks/profile-groups.mjs FILE.cpuprofile [FROM_S TO_S]\n');
  process.exit(2);
}
const p = JSON.parse(readFileSync(file, 'utf8'));
const from = Number(fromArg ?? 0) * 1e6;
const to = Number(toArg ?? Infinity) * 1e6;
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const selfUs = new Map();
let t = 0;
for (let i = 0; i < p.samples.length; i++) {
  t += p.timeDeltas[i];
  if (t < from || t > to) continue;
  selfUs.set(p.samples[i], (selfUs.get(p.samples[i]) ?? 0) + (p.timeDeltas[i + 1] ?? 0));
}
const acc = new Map([...GROUPS.map(([g]) => [g, 0]), ['other', 0]]);
let busy = 0;
let idle = 0;
for (const [id, us] of selfUs) {
  if (byId.get(id).callFrame.functionName === '(idle)') {
    idle += us;
    continue;
  }
  busy += us;
  const stack = new Set();
  for (let c = id; c !== undefined; c = parent.get(c)) stack.add(byId.get(c).callFrame.functionName);
  const hit = GROUPS.find(([, fns]) => fns.some((f) => stack.has(f)))?.[0] ?? 'other';
  acc.set(hit, acc.get(hit) + us);
}
console.log(`main thread: busy ${(busy / 1e6).toFixed(2)} s, idle ${(idle / 1e6).toFixed(2)} s`);
console.log('\n| group | s | share of busy |\n|---|---|---|');
for (const [g, us] of acc) console.log(`| ${g} | ${(us / 1e6).toFixed(2)} | ${((100 * us) / busy).toFixed(1)} % |`);

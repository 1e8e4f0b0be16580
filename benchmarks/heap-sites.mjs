#!/usr/bin/env node
// Where a sampling heap profile's bytes were allocated (issue 15): sums the sampled bytes by allocating
// function (its file and line) and by the nearest wattsplit function on the stack, per VM-sample.
//
//   HEAP_PROFILE=/tmp/heap.json HOSTS=8 VMS=50 SECONDS=120 REPEAT=4 STAGES=B node benchmarks/pipeline.mjs
//   node benchmarks/heap-sites.mjs /tmp/heap.json [top=25]
//
// The profile is V8's sampling heap profile (HeapProfiler.startSampling with the objects collected by minor
// and major GC kept), so a site's bytes are an estimate of everything it allocated over the sampled runs,
// garbage included; `vmSamples` in the file (written by pipeline.mjs) puts them per VM-sample.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

const [file, topArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: node benchmarks/heap-sites.mjs <heap profile json> [top]');
  process.exit(2);
}
const top = Number(topArg ?? 25);
const profile = JSON.parse(readFileSync(file, 'utf8'));
if (!(Number.isFinite(profile.vmSamples) && profile.vmSamples > 0)) {
  console.error(`${file}: no vmSamples in the profile (${JSON.stringify(profile.vmSamples)}); write it with HEAP_PROFILE=<file> STAGES=B (or C) node benchmarks/pipeline.mjs`);
  process.exit(2);
}
const perVm = profile.vmSamples;

const frameName = (cf) => `${cf.functionName || '(anonymous)'} ${cf.url ? basename(cf.url) : ''}:${cf.lineNumber + 1}`;
/** The package a frame belongs to: a wattsplit package by its folder, else the npm package, else node's own. */
const pkgOf = (url) => {
  const w = /packages\/([^/]+)\/dist\//.exec(url);
  if (w) return `@wattsplit/${w[1]}`;
  const m = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1];
  return url.startsWith('node:') ? 'node' : url === '' ? '(native/VM)' : basename(url);
};

const bySite = new Map();
const byWattsplit = new Map();
const byPkg = new Map();
let total = 0;
const add = (m, k, v) => m.set(k, (m.get(k) ?? 0) + v);
// Stacks through the benchmark script itself (pipeline.mjs re-encoding frames with new host ids before a
// stage run) are the benchmark's own work, not the collector's: counted apart. The collector's handlers run
// from the bus's timers and promise jobs, so their stacks do not go through the script.
let benchmarkOwn = 0;
function walk(node, stack) {
  const here = [...stack, node.callFrame];
  const self = node.selfSize;
  if (self > 0 && here.some((cf) => /\/benchmarks\/[^/]+\.mjs$/.test(cf.url))) benchmarkOwn += self;
  else if (self > 0) {
    total += self;
    add(bySite, frameName(node.callFrame), self);
    add(byPkg, pkgOf(node.callFrame.url), self);
    const w = [...here].reverse().find((cf) => /packages\/[^/]+\/dist\//.test(cf.url));
    add(byWattsplit, w ? `${pkgOf(w.url)} ${frameName(w)}` : '(no wattsplit frame)', self);
  }
  for (const c of node.children) walk(c, here);
}
walk(profile.head, []);

const print = (title, m) => {
  console.log(`\n| ${title} | bytes / VM-sample | share |\n|---|---|---|`);
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`| ${k} | ${(v / perVm).toFixed(0)} | ${((100 * v) / total).toFixed(1)} % |`);
};
console.log(`sampled bytes per VM-sample: ${(total / perVm).toFixed(0)} (${perVm} VM-samples), besides the benchmark script's own ${(benchmarkOwn / perVm).toFixed(0)}`);
print('allocating package', byPkg);
print('nearest wattsplit function', byWattsplit);
print('allocating function', bySite);

#!/usr/bin/env node
// Where a collector's main thread spends its time, from a V8 CPU profile (`node --cpu-prof ...`, e.g.
// `node --cpu-prof --cpu-prof-dir=DIR benchmarks/fleet.mjs ...`, which profiles the collector's process):
//
//   node benchmarks/profile-groups.mjs FILE.cpuprofile [FROM_S TO_S]
//
// Samples between FROM_S and TO_S seconds after the profile started (default: all); each busy sample goes
// to the first group below with a matching frame anywhere on its stack (so the order matters: garbage
// collection first, publishing before the store, ...). A frame matches on its function name AND the package
// its script lies in (`callFrame.url`), never on a bare name: in @platformatic/kafka every API call (the
// producer's, but also the consumer's fetches, heartbeats and offset commits) goes through `Connection.send`,
// and names like `insert`, `exec`, `inc`, `align` or `attribute` exist in several packages. The producer is
// its client's `send` (clients/producer/); any other frame of the Kafka client counts with the consumer,
// the socket reads of the responses (`Connection#onData`, not under the producer's `send`) and so the
// produce acknowledgements' included. Prints the busy seconds and each group's
// seconds and share of them. The profiler samples wall-clock time on the main thread: on a loaded box a
// function's share includes the time the thread waited for a core while in it.
import { readFileSync } from 'node:fs';

// the package a script belongs to, from its URL: this repo's packages/<name>/ (sources or dist) or
// node_modules/@wattsplit/<name>/, and a dependency by its node_modules path
const ws = (name) => new RegExp(`(/packages/${name}/|/@wattsplit/${name}/)`);
const KAFKA_PRODUCER = /\/@platformatic\/kafka\/dist\/clients\/producer\//;
const KAFKA = /\/@platformatic\/kafka\//;
const ANY = /(?:)/;

/** [group, [[function name ('*': any), URL pattern], ...]] */
const GROUPS = [
  ['garbage collection (main thread)', [['(garbage collector)', ANY]]],
  ['publish attributions: encode', [['encodeAttributionBatch', ws('collector')]]],
  ['publish attributions: producer (gzip, copies, socket)', [['send', KAFKA_PRODUCER]]],
  ['RowBinary encoding (vm_samples, attributions)', [['prepareRows', ws('store')]]],
  [
    'other store calls (HTTP client, host rows, checkpoints)',
    [
      ['writeIntervals', ws('store')],
      ['saveCheckpoints', ws('store')],
      ['insert', ws('store')],
      ['insertPrepared', ws('store')],
      ['exec', ws('store')],
      ['exec', /\/@clickhouse\/client/],
      ['insert', /\/@clickhouse\/client/],
    ],
  ],
  ['decode frames', [['decodeFrame', ws('wire')]]],
  ['align (IntervalAligner)', [['align', ws('attribution')], ['validateFrame', ws('wire')]]],
  ['attribute + conservation', [['attribute', ws('collector')], ['attribute', ws('models')], ['attribute', ws('attribution')]]],
  ['metrics', [['recordResult', ws('collector')], ['recordMeasured', ws('collector')], ['inc', ws('collector')], ['inc', /\/prom-client\//]]],
  [
    'Kafka consumer and the rest of the Kafka client (fetch, decompress, to BusMessage, heartbeats, commits)',
    [['drain', ws('kafka')], ['toBus', ws('kafka')], ['*', KAFKA]],
  ],
  ['benchmark harness: starting servers', [['spawnSync', ANY], ['execFileSync', ANY]]],
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
  const stack = [];
  for (let c = id; c !== undefined; c = parent.get(c)) stack.push(byId.get(c).callFrame);
  const matches = ([fn, url]) => stack.some((f) => (fn === '*' || f.functionName === fn) && url.test(f.url ?? ''));
  const hit = GROUPS.find(([, frames]) => frames.some(matches))?.[0] ?? 'other';
  acc.set(hit, acc.get(hit) + us);
}
console.log(`main thread: busy ${(busy / 1e6).toFixed(2)} s, idle ${(idle / 1e6).toFixed(2)} s`);
console.log('\n| group | s | share of busy |\n|---|---|---|');
for (const [g, us] of acc) console.log(`| ${g} | ${(us / 1e6).toFixed(2)} | ${((100 * us) / busy).toFixed(1)} % |`);

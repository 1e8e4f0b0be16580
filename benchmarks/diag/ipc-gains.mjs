#!/usr/bin/env node
// Issue 12 diagnosis (docs/accuracy-method.md), development fleets only: the RAPL part of the additive model
// trained on a fleet cached by accuracy-filter.mjs: the class's IPC gain and load factor (β₁, β₂), then per VM
// its own IPC gain, IPC reference and W per busy core (vmCoreW).
//
//   node benchmarks/accuracy-filter.mjs --seeds 106 --warm 1800 --bill 1800 --cold --cache-dir DIR   # makes the cache
//   node benchmarks/diag/ipc-gains.mjs --cache-dir DIR --seed 106 --len 1800
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..') + '/';
const models = await import(pathToFileURL(root + 'packages/models/dist/index.js').href);
const argv = process.argv.slice(2);
const arg = (k, d) => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : d);
const cacheDir = arg('--cache-dir', undefined);
if (!cacheDir) throw new Error('--cache-dir DIR: a cache written by benchmarks/accuracy-filter.mjs --cache-dir DIR');
const seed = arg('--seed', '106');
const len = arg('--len', '600');
const data = JSON.parse(readFileSync(join(cacheDir, `fleet-${seed}-${len}-${len}.json`), 'utf8'));
const m = await models.trainAdditiveModel(data.warm, { hardwareClass: data.warm[0].hardwareClass });
const r = m.sources.rapl;
console.log('ipcGain', r.ipcGain, 'load', r.load);
const names = new Map(data.truth.vms.map((v) => [v.uuid, v.name]));
for (const [id, g] of Object.entries(r.vmIpcGain ?? {})) console.log(names.get(id) ?? id, 'gain', g.toFixed(2), 'ref', r.vmIpcRef?.[id]?.toFixed(2), 'coreW', r.vmCoreW?.[id]?.toFixed(2));

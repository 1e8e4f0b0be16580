#!/usr/bin/env node
// Issue 12 diagnosis (docs/accuracy-method.md), development fleets only: the RAPL part of the additive model
// trained on a fleet cached by accuracy-filter.mjs: the class's IPC gain and load factor (β₁, β₂), then per VM
// its own IPC gain, IPC reference and W per busy core (vmCoreW).
//
//   node benchmarks/accuracy-filter.mjs --seeds 106 --warm 1800 --bill 1800 --cold --cache-dir DIR   # makes the cache
//   node benchmarks/diag/ipc-gains.mjs --cache-dir DIR --seed 106 --len 1800
import { arg, loadFleet } from './fleet-cache.mjs';

const seed = arg('--seed', '106');
const len = arg('--len', '600');
const data = await loadFleet(seed, len);
const m = data.model;
const r = m.sources.rapl;
console.log('ipcGain', r.ipcGain, 'load', r.load);
const names = new Map(data.truth.vms.map((v) => [v.uuid, v.name]));
for (const [id, g] of Object.entries(r.vmIpcGain ?? {})) console.log(names.get(id) ?? id, 'gain', g.toFixed(2), 'ref', r.vmIpcRef?.[id]?.toFixed(2), 'coreW', r.vmCoreW?.[id]?.toFixed(2));

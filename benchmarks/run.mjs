#!/usr/bin/env node
// Runs every benchmark in sequence (npm run bench [-- name ...]); each prints its own JSON line and
// markdown table with machine, date and command. Results are kept in docs/benchmarks.md.
// Benchmarks that need Kafka / a ClickHouse server start their own (scripts/kafka.sh, scripts/clickhouse-server.sh).
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const BENCHES = {
  pipeline: [process.execPath, ['benchmarks/pipeline.mjs']],
  'static-power': [process.execPath, ['benchmarks/static-power.mjs']],
  agent: [process.execPath, ['--max-semi-space-size=4', 'benchmarks/agent-round.mjs', '--vms', '200', '--rounds', '300']],
  'agent-process': [process.execPath, ['benchmarks/agent-process.mjs']],
  'agent-start': [process.execPath, ['benchmarks/agent-start.mjs']],
  gateway: [process.execPath, ['packages/gateway/dist/ingest-benchmark.js']],
  capping: [process.execPath, ['benchmarks/capping.mjs']],
  'capping-scale': [process.execPath, ['packages/capping/dist/cap-plan-benchmark.js']],
  store: [process.execPath, ['packages/store/bench/chdb-worker-overhead.mjs']],
  accuracy: [process.execPath, ['benchmarks/accuracy.mjs']],
  'fleet-bus': [process.execPath, ['benchmarks/fleet-bus.mjs']],
  fleet: [process.execPath, ['benchmarks/fleet.mjs']],
};
// Names select benchmarks; flags (--json, --seed 2, …) go to each selected benchmark.
const args = process.argv.slice(2);
const flagArgs = args.filter((a, i) => a.startsWith('--') || (i > 0 && args[i - 1].startsWith('--') && !/^[a-z][a-z-]*$/.test(a)));
const wanted = args.filter((a) => !flagArgs.includes(a));
const names = wanted.length ? wanted : Object.keys(BENCHES);
let failed = 0;
for (const name of names) {
  const b = BENCHES[name];
  if (!b) {
    console.error(`unknown benchmark ${name}; known: ${Object.keys(BENCHES).join(', ')}`);
    process.exit(2);
  }
  const argv = [...b[1], ...flagArgs];
  if (!flagArgs.includes('--json')) console.log(`\n### ${name}: ${[b[0] === process.execPath ? 'node' : b[0], ...argv].join(' ')}\n`);
  const r = spawnSync(b[0], argv, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    console.log(`(${name} exited ${r.status})`);
  }
}
process.exit(failed ? 1 : 0);

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
  agent: [process.execPath, ['--max-semi-space-size=4', 'benchmarks/agent-round.mjs', '--vms', '200', '--rounds', '300']],
  gateway: [process.execPath, ['packages/gateway/dist/ingest-benchmark.js']],
  capping: [process.execPath, ['packages/capping/dist/cap-plan-benchmark.js']],
  store: [process.execPath, ['packages/store/bench/chdb-worker-overhead.mjs']],
  accuracy: [process.execPath, ['benchmarks/accuracy.mjs']],
  'fleet-bus': [process.execPath, ['benchmarks/fleet-bus.mjs']],
  fleet: [process.execPath, ['benchmarks/fleet.mjs']],
};
const wanted = process.argv.slice(2);
const names = wanted.length ? wanted : Object.keys(BENCHES);
let failed = 0;
for (const name of names) {
  const b = BENCHES[name];
  if (!b) {
    console.error(`unknown benchmark ${name}; known: ${Object.keys(BENCHES).join(', ')}`);
    process.exit(2);
  }
  console.log(`\n### ${name}: ${[b[0] === process.execPath ? 'node' : b[0], ...b[1]].join(' ')}\n`);
  const r = spawnSync(b[0], b[1], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    console.log(`(${name} exited ${r.status})`);
  }
}
process.exit(failed ? 1 : 0);

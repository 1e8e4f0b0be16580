// Issue 15, where a ClickHouse server's CPU goes when the collector stores a batch: the shipped store's
// writeIntervals (the same code `wattsplit collector` runs against ClickHouse) on real intervals, with its inserts
// made one at a time so that the server process's CPU (/proc/PID/stat) can be put on each table.
//
//   scripts/clickhouse-server.sh start split        (prints the URL; the pid is in .cache/clickhouse/split/pid)
//   node benchmarks/diag/server-write-split.mjs --server URL --pid PID [--hosts 8] [--vms 50] [--seconds 60] [--batches 8]
//
// The intervals: the simulator's fleet sampled by the real agents (the shipped counter schedule), aligned and split by
// cpu_share, one batch = every host's intervals over --seconds (480 at the defaults, the size of the collector's
// writes in the pipeline benchmark). Also reports the server's CPU over the 10 s after the last insert (its merges).
// The store runs its four inserts as it does in the collector (three raw tables side by side, then attributions);
// here they are serialised, which changes the wall time, not the server's work.
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '@wattsplit/wire';
import { Agent, SHIPPED_SCHEDULE } from '@wattsplit/agent';
import { IntervalAligner, CpuShareMethod } from '@wattsplit/attribution';
import { createFleet } from '@wattsplit/simulator';
import { ClickHouseServerStore } from '@wattsplit/store';

const { values } = parseArgs({
  options: { server: { type: 'string' }, pid: { type: 'string' }, hosts: { type: 'string', default: '8' }, vms: { type: 'string', default: '50' }, seconds: { type: 'string', default: '60' }, batches: { type: 'string', default: '8' }, 'no-rollups': { type: 'boolean', default: false }, setting: { type: 'string', multiple: true, default: [] } },
});
if (!values.server || !(Number(values.pid) > 0)) throw new Error('--server URL and --pid PID are required (scripts/clickhouse-server.sh start split)');
const HOSTS = Number(values.hosts);
const VMS = Number(values.vms);
const SECONDS = Number(values.seconds);
const BATCHES = Number(values.batches);
const pid = Number(values.pid);
const serverCpuUs = () => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(f[11]) + Number(f[12])) / 100) * 1e6; // CLK_TCK 100
};

// The intervals, batch by batch.
const fleet = createFleet({ hosts: HOSTS, vmsPerHost: VMS, seed: 7, events: 'none', startUnixMs: Date.now() - (BATCHES * SECONDS + 1) * 1000 });
const agents = fleet.hosts.map((h) => new Agent({ hostId: h.hostId, hardwareClass: h.hardwareClass, fs: h.fs, domains: h.domains, gpus: h.gpus, perf: h.perf, bmc: h.bmc, processOwners: h.processOwners, clock: h.clock, logger: silentLogger, bootId: 'split', ...SHIPPED_SCHEDULE }));
const aligner = new IntervalAligner();
const cpuShare = new CpuShareMethod();
const ctx = { policy: 'reserved', staticPower: { watts: { rapl: 100, gpu: 0, bmc_rest: 60 }, origin: 'configured' } };
const batches = [];
for (let b = 0; b <= BATCHES; b++) {
  const writes = [];
  for (let t = 0; t < SECONDS; t++) {
    fleet.step(1);
    for (const a of agents) {
      const f = await a.sampleOnce();
      const r = aligner.push(f);
      if (r.interval) writes.push({ interval: r.interval, results: [cpuShare.attribute(r.interval, ctx)] });
    }
  }
  batches.push(writes);
}

// --setting k=v (repeatable): server settings sent with every query, as ClickHouseServerOptions.settings does.
const settings = Object.fromEntries(values.setting.map((kv) => [kv.split('=')[0], Number.isNaN(Number(kv.split('=')[1])) ? kv.split('=')[1] : Number(kv.split('=')[1])]));
const store = new ClickHouseServerStore({ url: values.server, database: `split_${process.pid}`, logger: silentLogger, ...(values.setting.length ? { settings } : {}) });
await store.init();
// --no-rollups: the hourly rollups' views dropped, to see what they cost inside the attributions insert.
if (values['no-rollups']) for (const v of ['vm_energy_hourly_mv', 'tenant_energy_hourly_mv']) await store.query(`DROP TABLE ${v}`, 'CSV');
// Serialise the transport's inserts and put the server's CPU on each table.
const t = store.t;
const perTable = new Map();
let chain = Promise.resolve();
const timed = (name, fn) =>
  function (table, ...rest) {
    const run = async () => {
      const c0 = serverCpuUs();
      const w0 = performance.now();
      await fn.call(t, table, ...rest);
      const key = typeof table === 'string' ? table : (table?.table ?? name);
      const e = perTable.get(key) ?? { inserts: 0, cpuUs: 0, wallMs: 0 };
      e.inserts++;
      e.cpuUs += serverCpuUs() - c0;
      e.wallMs += performance.now() - w0;
      perTable.set(key, e);
    };
    const p = chain.then(run);
    chain = p.catch(() => undefined);
    return p;
  };
// insert() encodes and calls insertPrepared(): wrapping that alone sees every insert once.
t.insertPrepared = timed('insertPrepared', t.insertPrepared);

const load0 = loadavg()[0];
let vmSamples = 0;
// the first batch warms the server up and is left out
for (const [k, writes] of batches.entries()) {
  if (k === 1) perTable.clear();
  const r = await store.writeIntervals(writes);
  if (r.kind !== 'ok') throw new Error(`write failed: ${r.error.message}`);
  if (k > 0) vmSamples += writes.reduce((s, w) => s + w.interval.vms.length, 0);
}
const c0 = serverCpuUs();
await sleep(10_000);
const afterUs = serverCpuUs() - c0;
const load1 = loadavg()[0];
const version = String((await store.query('SELECT version() AS v', 'JSONEachRow')).rows[0]?.v ?? '?');
const counted = async (table) => Number((await store.query(`SELECT count() AS n FROM ${table}`, 'JSONEachRow')).rows[0]?.n ?? 0);
const rowsPerVmSample = {};
for (const table of ['attributions', 'vm_samples', 'host_samples']) rowsPerVmSample[table] = (await counted(table)) / (vmSamples + batches[0].reduce((s, w) => s + w.interval.vms.length, 0));
const rows = [...perTable].map(([table, e]) => ({ table, inserts: e.inserts, cpu_us_per_vm_sample: e.cpuUs / vmSamples, wall_us_per_vm_sample: (e.wallMs * 1000) / vmSamples }));
const out = { bench: 'server-write-split', server: version, hosts: HOSTS, vms: VMS, intervals_per_batch: batches[1].length, batches: BATCHES, vm_samples: vmSamples, rollups: !values['no-rollups'], settings, rows_per_vm_sample: rowsPerVmSample, tables: rows, after_10s_cpu_us_per_vm_sample: afterUs / vmSamples, machine: `${cpus().length} × ${cpus()[0]?.model.trim()}`, loadavg_1m_start_end: [load0, load1], date: new Date().toISOString() };
console.log(JSON.stringify(out));
console.log(`\nClickHouse ${out.server}, ${BATCHES} batches of ${out.intervals_per_batch} intervals × ${VMS} VMs (cpu_share)${values['no-rollups'] ? ', the rollup views dropped' : ''}${values.setting.length ? `, settings ${JSON.stringify(settings)}` : ''}; rows per VM-sample ${JSON.stringify(rowsPerVmSample)}; server CPU per VM-sample:\n\n| table | inserts | server CPU µs / VM-sample | wall µs / VM-sample |\n|---|---|---|---|`);
for (const r of rows) console.log(`| ${r.table} | ${r.inserts} | ${r.cpu_us_per_vm_sample.toFixed(2)} | ${r.wall_us_per_vm_sample.toFixed(2)} |`);
const sum = rows.reduce((s, r) => s + r.cpu_us_per_vm_sample, 0);
console.log(`| all inserts | | ${sum.toFixed(2)} | |\n| the 10 s after (merges) | | ${out.after_10s_cpu_us_per_vm_sample.toFixed(2)} | |\n\nload ${load0.toFixed(1)} → ${load1.toFixed(1)}; ${out.machine}; ${out.date}`);
await store.query(`DROP DATABASE split_${process.pid}`, 'CSV').catch(() => undefined);
await store.close();

#!/usr/bin/env node
// Issue 15: what ClickHouse spends to take in one VM-sample, in today's layout (a row per VM in
// vm_samples, a row per share in attributions) against the proposal (one row per host interval
// with array columns for the VMs and shares), on a ClickHouse server (Debian's 18.16 here):
//
//   node benchmarks/store-layout.mjs
//   env: HOSTS (40) VMS (50) SECONDS (30) WRITE (200 intervals per insert, as the fleet benchmark's
//        collector at 200 hosts with 1 s write spacing) REPS (3) SETTLE_S (8)
//
// It starts its own server (scripts/clickhouse-server.sh start store-layout), and drops its database and
// stops the server at the end whatever happened (a finally): the server's CPU is read from its process, so
// a server given by URL could not be measured (`--clickhouse URL` is refused). Intervals come from real
// Agents over the simulator, aligned and split by cpu_share (one method: 2 shares per VM, RAPL and BMC, plus host rows). Per layout, in its own tables
// without materialized views (the rollups read the same values in either layout; an array layout's views
// would ARRAY JOIN them), REPS rounds interleaved: every interval inserted in writes of WRITE intervals,
// then SETTLE_S seconds for merges; the server's CPU (/proc/<pid>/stat, all threads) over the insert and the
// settle time, per VM-sample, the client's encoding CPU, and the bytes on disk (system.parts, active parts, per
// VM-sample they hold).
// Then checks that the array layout, expanded by ARRAY JOIN (what views for SQL users would do), gives
// the same rows: count, Σ cpu_s, Σ dynamic_j + static_j per tenant.
// Measures the two raw tables, not host_samples or anomalies (the same in both); and, apart, the restart
// checkpoints as the collector saves them today (a whole base64 frame per host per write).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeFrame, decodeFrame, silentLogger } from '@wattsplit/wire';
import { Agent } from '@wattsplit/agent';
import { IntervalAligner, CpuShareMethod } from '@wattsplit/attribution';
import { createFleet } from '@wattsplit/simulator';
import { HttpTransport, VM_ROW_PROJECTION, ATTRIBUTION_ROW_PROJECTION, capabilitiesOf } from '@wattsplit/store';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const HOSTS = Number(process.env.HOSTS ?? 40);
const VMS = Number(process.env.VMS ?? 50);
const SECONDS = Number(process.env.SECONDS ?? 30);
const WRITE = Number(process.env.WRITE ?? 200);
const REPS = Number(process.env.REPS ?? 3);
const SETTLE_S = Number(process.env.SETTLE_S ?? 8);
const argv = process.argv.slice(2);
const say = (m) => process.stderr.write(`store-layout: ${m}\n`);
if (argv.includes('--clickhouse')) {
  say('--clickhouse URL is not supported: the server CPU per VM-sample (what this measures) is read from /proc of a server this script starts itself; run it without --clickhouse');
  process.exit(2);
}
const script = (name, args) => execFileSync('bash', [join(root, 'scripts', name), ...args], { encoding: 'utf8', timeout: 120_000 }).trim().split('\n').pop();

// ---- intervals
const fleet = createFleet({ hosts: HOSTS, vmsPerHost: VMS, seed: 7, events: 'none', noise: true, startUnixMs: Date.now() - SECONDS * 1000 });
const agents = fleet.hosts.map((h) => new Agent({ hostId: h.hostId, hardwareClass: h.hardwareClass, fs: h.fs, domains: h.domains, gpus: h.gpus, perf: h.perf, bmc: h.bmc, processOwners: h.processOwners, clock: h.clock, logger: silentLogger, bootId: 'bench' }));
const aligner = new IntervalAligner();
const method = new CpuShareMethod();
const ctx = { policy: 'reserved', staticPower: { watts: { rapl: 100, gpu: 70, bmc_rest: 60 }, origin: 'configured' } };
const intervals = []; // { iv, res }
for (let t = 0; t <= SECONDS; t++) {
  if (t > 0) fleet.step(1);
  for (const a of agents) {
    const bytes = encodeFrame(await a.sampleOnce());
    const r = aligner.push(decodeFrame(bytes));
    if (r.interval) intervals.push({ iv: r.interval, res: method.attribute(r.interval, ctx), frame: bytes });
  }
}
const vmSamples = intervals.reduce((n, x) => n + x.iv.vms.length, 0);
const shareRows = intervals.reduce((n, x) => n + x.res.shares.length, 0);
say(`${intervals.length} intervals, ${vmSamples} VM-samples, ${shareRows} share rows`);

// ---- server
const NAME = 'store-layout';
const database = `layout_${process.pid}`;
let t;
try {
  const url = script('clickhouse-server.sh', ['start', NAME]);
  const serverPid = readFileSync(join(root, `.cache/clickhouse/${NAME}/pid`), 'utf8').trim();
  const serverCpuS = () => {
    const s = readFileSync(`/proc/${serverPid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  };
  t = new HttpTransport({ url, database, requestTimeoutMs: 120_000 });
  await t.ensureDatabase();
  const version = (await t.query('SELECT version()', 'TabSeparated')).trim();

  // Today's tables (the columns of packages/store/sql/0001 and 0002, MergeTree without views) and the array layout.
  const VM_COLS = `host LowCardinality(String), hardware_class LowCardinality(String), seq UInt64, t0_ns Int64, t1_ns Int64,
    ts DateTime('UTC') MATERIALIZED toDateTime(intDiv(t1_ns, 1000000000), 'UTC')`;
  const DDL = {
    rows: [
      `CREATE TABLE vm_rows (${VM_COLS}, vm_uuid LowCardinality(String), vm_name LowCardinality(String), tenant LowCardinality(String), state LowCardinality(String),
        presence Float64, vcpus UInt32, memory_bytes UInt64, cpu_s Float64, vcpu_s Array(Float64), memory_used_bytes UInt64, block_read_bytes UInt64,
        block_write_bytes UInt64, net_rx_bytes UInt64, net_tx_bytes UInt64, perf_supported UInt8, cycles UInt64, instructions UInt64, llc_misses UInt64,
        llc_references UInt64, gpu_devices Array(String), gpu_sm_util_pct Array(Float64), gpu_mem_util_pct Array(Float64), gpu_util_samples Array(UInt32),
        gpu_used_memory_bytes Array(UInt64), gpu_holds_context Array(UInt8), gpu_passthrough Array(UInt8))
       ENGINE = ReplacingMergeTree PARTITION BY toYYYYMMDD(ts) ORDER BY (host, seq, vm_uuid)`,
      `CREATE TABLE attr_rows (host LowCardinality(String), seq UInt64, t0_ns Int64, t1_ns Int64,
        ts DateTime('UTC') MATERIALIZED toDateTime(intDiv(t1_ns, 1000000000), 'UTC'), kind LowCardinality(String), vm_uuid LowCardinality(String),
        vm_name LowCardinality(String), tenant LowCardinality(String), source LowCardinality(String), dynamic_j Float64, static_j Float64, low_j Float64,
        high_j Float64, measured_j Float64, method LowCardinality(String), model_version LowCardinality(String), hardware_class LowCardinality(String), note String)
       ENGINE = ReplacingMergeTree PARTITION BY toYYYYMMDD(ts) ORDER BY (host, seq, method, source, kind, vm_uuid)`,
    ],
    checkpoints: [
      `CREATE TABLE ckpt (host LowCardinality(String), seq UInt64, boot_id String, saved_at DateTime('UTC') MATERIALIZED now(), frame_b64 String)
       ENGINE = ReplacingMergeTree(seq) ORDER BY host`,
    ],
    arrays: [
      `CREATE TABLE vm_arrays (${VM_COLS}, vm_uuid Array(String), vm_name Array(String), tenant Array(String), state Array(String),
        presence Array(Float64), vcpus Array(UInt32), memory_bytes Array(UInt64), cpu_s Array(Float64), vcpu_s Array(Array(Float64)), memory_used_bytes Array(UInt64),
        block_read_bytes Array(UInt64), block_write_bytes Array(UInt64), net_rx_bytes Array(UInt64), net_tx_bytes Array(UInt64), perf_supported Array(UInt8),
        cycles Array(UInt64), instructions Array(UInt64), llc_misses Array(UInt64), llc_references Array(UInt64), gpu_devices Array(Array(String)),
        gpu_sm_util_pct Array(Array(Float64)), gpu_mem_util_pct Array(Array(Float64)), gpu_util_samples Array(Array(UInt32)),
        gpu_used_memory_bytes Array(Array(UInt64)), gpu_holds_context Array(Array(UInt8)), gpu_passthrough Array(Array(UInt8)))
       ENGINE = ReplacingMergeTree PARTITION BY toYYYYMMDD(ts) ORDER BY (host, seq)`,
      `CREATE TABLE attr_arrays (host LowCardinality(String), seq UInt64, t0_ns Int64, t1_ns Int64,
        ts DateTime('UTC') MATERIALIZED toDateTime(intDiv(t1_ns, 1000000000), 'UTC'), method LowCardinality(String), model_version LowCardinality(String),
        hardware_class LowCardinality(String), note String, measured_sources Array(String), measured_j Array(Float64), kind Array(String), vm_uuid Array(String),
        vm_name Array(String), tenant Array(String), source Array(String), dynamic_j Array(Float64), static_j Array(Float64), low_j Array(Float64), high_j Array(Float64))
       ENGINE = ReplacingMergeTree PARTITION BY toYYYYMMDD(ts) ORDER BY (host, seq, method)`,
    ],
  };
  // as the store's migrations adapt the schema (migrations.ts adaptToVersion): no LowCardinality before 19.1
  const caps = capabilitiesOf(version);
  for (const sqls of Object.values(DDL)) for (const s of sqls) await t.command(caps.lowCardinality ? s : s.replace(/LowCardinality\(String\)/g, 'String'));

  // ---- the two writers: each encodes its rows (RowBinary) and inserts them
  const vmArrayRow = ({ iv }) => {
    const v = iv.vms;
    const col = (f) => v.map(f);
    const p = (x, k) => (x.perf ? x.perf[k] : 0);
    return {
      host: iv.hostId, hardware_class: iv.hardwareClass, seq: iv.seq, t0_ns: Math.round(iv.t0UnixNs), t1_ns: Math.round(iv.t1UnixNs),
      vm_uuid: col((x) => x.uuid), vm_name: col((x) => x.name), tenant: col((x) => x.tenant), state: col((x) => x.state), presence: col((x) => x.presence),
      vcpus: col((x) => x.vcpus), memory_bytes: col((x) => x.memoryBytes), cpu_s: col((x) => x.cpuSeconds), vcpu_s: col((x) => x.vcpuSeconds),
      memory_used_bytes: col((x) => x.memoryUsedBytes), block_read_bytes: col((x) => x.blockReadBytes), block_write_bytes: col((x) => x.blockWriteBytes),
      net_rx_bytes: col((x) => x.netRxBytes), net_tx_bytes: col((x) => x.netTxBytes), perf_supported: col((x) => (x.perf ? 1 : 0)),
      cycles: col((x) => p(x, 'cycles')), instructions: col((x) => p(x, 'instructions')), llc_misses: col((x) => p(x, 'llcMisses')), llc_references: col((x) => p(x, 'llcReferences')),
      gpu_devices: col((x) => x.gpus.map((g) => g.device)), gpu_sm_util_pct: col((x) => x.gpus.map((g) => g.smUtilPct)), gpu_mem_util_pct: col((x) => x.gpus.map((g) => g.memUtilPct)),
      gpu_util_samples: col((x) => x.gpus.map((g) => g.utilSamples)), gpu_used_memory_bytes: col((x) => x.gpus.map((g) => g.usedMemoryBytes)),
      gpu_holds_context: col((x) => x.gpus.map((g) => (g.holdsContext ? 1 : 0))), gpu_passthrough: col((x) => x.gpus.map((g) => (g.passthrough ? 1 : 0))),
    };
  };
  const attrArrayRow = ({ res: r }) => {
    const s = r.shares;
    const col = (f) => s.map(f);
    return {
      host: r.hostId, seq: r.seq, t0_ns: Math.round(r.t0UnixNs), t1_ns: Math.round(r.t1UnixNs), method: r.method, model_version: r.modelVersion,
      hardware_class: r.hardwareClass, note: r.note, measured_sources: Object.keys(r.measured), measured_j: Object.values(r.measured),
      kind: col((x) => x.kind), vm_uuid: col((x) => x.vmUuid), vm_name: col((x) => x.vmName), tenant: col((x) => x.tenant), source: col((x) => x.source),
      dynamic_j: col((x) => x.dynamicJoules), static_j: col((x) => x.staticJoules), low_j: col((x) => x.lowJoules), high_j: col((x) => x.highJoules),
    };
  };
  /** A RowProjection (row-binary.ts) over a row builder: the array layout's rows encoded as the rows layout's are. */
  const projection = (build, columns) => ({
    columns,
    plain: () => true,
    values(x, o) {
      const r = build(x);
      for (let c = 0; c < columns.length; c++) o[c] = r[columns[c]];
    },
    row: build,
  });
  const VM_ARRAY_PROJECTION = projection(vmArrayRow, Object.keys(vmArrayRow(intervals[0])));
  const ATTR_ARRAY_PROJECTION = projection(attrArrayRow, Object.keys(attrArrayRow(intervals[0])));
  // encode two tables' rows (the client CPU measured), then insert both; the same for every layout
  const encodeAndInsert = async (...tables) => {
    const c0 = process.cpuUsage();
    const prepared = [];
    for (const [table, items, proj] of tables) prepared.push(await t.prepareRows(table, items, proj));
    const c = process.cpuUsage(c0);
    await Promise.all(prepared.map((p) => t.insertPrepared(p)));
    return { encodeUs: c.user + c.system, bytes: prepared.reduce((n, p) => n + p.body.length, 0) };
  };
  const layouts = {
    rows: async (write) => {
      const vmItems = [];
      const shareItems = [];
      for (const { iv, res } of write) {
        for (let k = 0; k < iv.vms.length; k++) vmItems.push({ i: iv, v: iv.vms[k], k });
        for (let k = 0; k < res.shares.length; k++) shareItems.push({ r: res, s: res.shares[k], k });
      }
      return encodeAndInsert(['vm_rows', vmItems, VM_ROW_PROJECTION], ['attr_rows', shareItems, ATTRIBUTION_ROW_PROJECTION]);
    },
    arrays: async (write) => {
      // one object of column arrays per interval, then RowBinary (a production encoder would write the
      // arrays straight from the interval: this client CPU is an upper bound)
      return encodeAndInsert(['vm_arrays', write, VM_ARRAY_PROJECTION], ['attr_arrays', write, ATTR_ARRAY_PROJECTION]);
    },
  };

  // The restart checkpoints as the collector saves them today (sql-store.ts saveCheckpoints): one row per
  // host per write with its whole last frame, base64. Measured apart: what rebuilding the aligner's
  // reference from stored rows instead would take off the server.
  layouts.checkpoints = async (write) => {
    const c0 = process.cpuUsage();
    const rows = write.map(({ iv, frame }) => ({ host: iv.hostId, seq: iv.seq, boot_id: 'bench', frame_b64: Buffer.from(frame).toString('base64') }));
    const c = process.cpuUsage(c0);
    await t.insert('ckpt', rows);
    return { encodeUs: c.user + c.system, bytes: rows.reduce((n, r) => n + r.frame_b64.length + r.host.length + 16, 0) };
  };
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const res = { rows: [], arrays: [], checkpoints: [] };
  const load0 = loadavg()[0];
  for (let rep = 0; rep < REPS; rep++) {
    for (const name of rep % 2 === 0 ? ['rows', 'arrays', 'checkpoints'] : ['arrays', 'rows', 'checkpoints']) {
      const s0 = serverCpuS();
      let encodeUs = 0;
      let bytes = 0;
      const w0 = performance.now();
      for (let k = 0; k < intervals.length; k += WRITE) {
        const r = await layouts[name](intervals.slice(k, k + WRITE));
        encodeUs += r.encodeUs;
        bytes += r.bytes;
      }
      const insertS = (performance.now() - w0) / 1000;
      await new Promise((r) => setTimeout(r, SETTLE_S * 1000));
      const serverUs = (serverCpuS() - s0) * 1e6;
      res[name].push({ serverUs: serverUs / vmSamples, clientUs: encodeUs / vmSamples, bytes: bytes / vmSamples, insertS });
      say(`rep ${rep} ${name}: server ${(serverUs / vmSamples).toFixed(1)} µs per VM-sample, insert ${insertS.toFixed(1)} s`);
    }
  }

  // ---- the array layout, expanded by ARRAY JOIN, gives the same rows
  const one = async (sql) => JSON.parse((await t.query(sql, 'JSONEachRow')).trim().split('\n')[0]);
  const vmR = await one(`SELECT count() AS n, sum(cpu_s) AS cpu FROM (SELECT DISTINCT host, seq, vm_uuid, cpu_s FROM vm_rows)`);
  const vmA = await one(`SELECT count() AS n, sum(cpu_s) AS cpu FROM (SELECT DISTINCT host, seq, vm_uuid, cpu_s FROM vm_arrays ARRAY JOIN vm_uuid, cpu_s)`);
  const byTenant = async (from) =>
    (await t.query(`SELECT tenant, sum(dynamic_j + static_j) AS j FROM (SELECT DISTINCT host, seq, method, source, kind, vm_uuid, tenant, dynamic_j, static_j FROM ${from}) GROUP BY tenant ORDER BY tenant`, 'JSONEachRow'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
  const tenR = await byTenant('attr_rows');
  const tenA = await byTenant('attr_arrays ARRAY JOIN kind, vm_uuid, tenant, source, dynamic_j, static_j');
  if (process.env.DEBUG) say(JSON.stringify({ vmR, vmA, tenR, tenA }));
  // the same values; sums may differ in the last bits (summation order)
  const close = (a, b) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a));
  const same = Number(vmR.n) === Number(vmA.n) && close(vmR.cpu, vmA.cpu) && tenR.length === tenA.length && tenR.every((r, k) => r.tenant === tenA[k]?.tenant && close(r.j, tenA[k].j));
  const parts = (await t.query(`SELECT table, sum(bytes) AS b FROM system.parts WHERE database = '${database}' AND active GROUP BY table ORDER BY table`, 'JSONEachRow'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  // bytes of the active parts per VM-sample they hold (ReplacingMergeTree may have merged the rounds' copies away)
  const stored = {
    vm_rows: Number((await one('SELECT count() AS n FROM vm_rows')).n),
    attr_rows: Number((await one('SELECT count() AS n FROM attr_rows')).n) / (shareRows / vmSamples),
    vm_arrays: Number((await one('SELECT sum(length(vm_uuid)) AS n FROM vm_arrays')).n),
    attr_arrays: Number((await one('SELECT sum(length(vm_uuid)) AS n FROM attr_arrays')).n) / (shareRows / vmSamples),
  };
  const disk = Object.fromEntries(parts.map((p) => [p.table, Number(p.b) / stored[p.table]]));


  const row = (name) => {
    const r = res[name];
    return { server: median(r.map((x) => x.serverUs)), client: median(r.map((x) => x.clientUs)), bytes: median(r.map((x) => x.bytes)), insertS: median(r.map((x) => x.insertS)), runs: r.map((x) => +x.serverUs.toFixed(1)) };
  };
  const R = row('rows');
  const A = row('arrays');
  const C = row('checkpoints');
  const out = {
    bench: 'store-layout', clickhouse: version, hosts: HOSTS, vms: VMS, intervals: intervals.length, vm_samples: vmSamples, share_rows: shareRows, write: WRITE, reps: REPS, settle_s: SETTLE_S,
    rows: R, arrays: A, checkpoints: C, server_ratio: A.server / R.server, disk_bytes_per_vm_sample: disk, same_rows: same, loadavg_start_end: [load0, loadavg()[0]],
    machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`, node: process.version, date: new Date().toISOString(),
  };
  console.log(JSON.stringify(out));
  console.log(`\n| layout | ClickHouse ${version} CPU µs per VM-sample (insert + ${SETTLE_S} s of merges), median (runs) | client encoding µs per VM-sample | RowBinary bytes per VM-sample | on disk B per VM-sample |`);
  console.log('|---|---|---|---|---|');
  console.log(`| a row per VM and per share (today) | ${R.server.toFixed(1)} (${R.runs.join(', ')}) | ${R.client.toFixed(2)} | ${R.bytes.toFixed(0)} | ${((disk.vm_rows ?? 0) + (disk.attr_rows ?? 0)).toFixed(0)} |`);
  console.log(`| a row per host interval, arrays | ${A.server.toFixed(1)} (${A.runs.join(', ')}) | ${A.client.toFixed(2)} (column arrays built first: an upper bound) | ${A.bytes.toFixed(0)} | ${((disk.vm_arrays ?? 0) + (disk.attr_arrays ?? 0)).toFixed(0)} |`);
  console.log(`| checkpoints as saved today (a whole frame per host per write, base64; not part of either layout) | ${C.server.toFixed(1)} (${C.runs.join(', ')}) | ${C.client.toFixed(2)} | ${C.bytes.toFixed(0)} (approx.) | - |`);
  console.log(`\narrays / rows (server CPU): ${(A.server / R.server).toFixed(2)}×; the array layout expanded by ARRAY JOIN gives the same rows: ${same ? 'yes' : 'NO'}`);
  console.log(`${intervals.length} intervals (${HOSTS} hosts × ${VMS} VMs × ${SECONDS} s), ${shareRows / vmSamples} share rows per VM-sample, writes of ${WRITE} intervals, ${REPS} rounds interleaved; load average ${load0.toFixed(1)} → ${loadavg()[0].toFixed(1)}; ${out.machine}; node ${process.version}; ${out.date}`);
  if (!same) process.exit(1);
} finally {
  if (t) {
    await t.command(`DROP DATABASE IF EXISTS ${database}`).catch((e) => say(`could not drop ${database}: ${e.message}`));
    await t.close();
  }
  script('clickhouse-server.sh', ['stop', NAME]);
}

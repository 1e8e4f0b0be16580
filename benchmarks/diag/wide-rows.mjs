// Issue 15, design measurement: what would one row per host interval (the VMs' shares in array columns) save the
// store against today's one row per VM share? Nothing shipped uses the wide table; this measures the engine's side
// of the choice before anyone builds it.
//
//   node benchmarks/diag/wide-rows.mjs [--hosts-intervals 480] [--vms 50] [--batches 12]
//   node benchmarks/diag/wide-rows.mjs --server http://127.0.0.1:PORT --pid PID   (a ClickHouse server instead:
//        scripts/clickhouse-server.sh start wide; PID from .cache/clickhouse/wide/pid; the DDL adapted to its
//        version as the store's migrations do; the rows posted as RowBinary over HTTP, as the server store does;
//        CPU read from the server process's /proc/PID/stat)
//
// Both layouts get the same data, generated inside the engine (chDB, the npm package the embedded store uses), and
// written to RowBinary files first, as the store's worker does; then each batch is inserted into each layout in
// turn (alternating which goes first), timed by the process's CPU (every engine thread) and wall clock:
//   A "rows"  (shipped): `attributions` (packages/store/sql/0002) + the two hourly rollup views (0003), one row per
//             (host interval, method, VM, source);
//   B "wide"  (candidate): `attribution_intervals`, one row per (host interval, method) with the shares' columns as
//             arrays, and the same two rollups fed by views that ARRAY JOIN them (SQL users would read a view that
//             does the same).
// Then checks that the rollups agree to the joule and reports the bytes per VM-sample (the RowBinary the collector
// would encode and hand over; the parts on disk after OPTIMIZE FINAL).
import { createRequire } from 'node:module';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir, loadavg, cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';

const { values } = parseArgs({
  options: { 'hosts-intervals': { type: 'string', default: '480' }, vms: { type: 'string', default: '50' }, batches: { type: 'string', default: '12' }, server: { type: 'string' }, pid: { type: 'string' } },
});
const B = Number(values['hosts-intervals']);
const V = Number(values.vms);
const K = Number(values.batches);
const SOURCES = 2; // rapl and bmc_rest (hosts without a GPU)
const storeRequire = createRequire(new URL('../../packages/store/package.json', import.meta.url));
const { adaptToVersion, capabilitiesOf } = await import('@wattsplit/store').catch(() => import(new URL('../../packages/store/dist/index.js', import.meta.url).href));
const dir = mkdtempSync(join(tmpdir(), 'wattsplit-wide-rows-'));

/** The engine: chDB in this process (default), or a ClickHouse server over HTTP. */
let engine;
if (values.server) {
  const url = values.server.replace(/\/$/, '');
  const pid = Number(values.pid);
  if (!(pid > 0)) throw new Error('--server needs --pid (the server process, for its CPU time)');
  const db = `wide_${process.pid}`;
  const post = async (sql, body, database = db) => {
    const r = await globalThis.fetch(`${url}/?database=${database}&query=${encodeURIComponent(sql)}`, { method: 'POST', body: body ?? '' });
    if (!r.ok) throw new Error(`${sql.slice(0, 200)}: HTTP ${r.status}: ${(await r.text()).slice(0, 500)}`);
    return Buffer.from(await r.arrayBuffer());
  };
  await post(`CREATE DATABASE IF NOT EXISTS ${db}`, undefined, 'default');
  const version = (await post('SELECT version()', undefined, 'default')).toString().trim();
  const tick = 100; // CLK_TCK on Linux
  engine = {
    name: `ClickHouse server ${version}`,
    caps: capabilitiesOf(version),
    q: async (sql) => (await post(sql)).toString(),
    /** The rows of `select` as RowBinary bytes. */
    rowBinary: async (select) => post(`${select} FORMAT RowBinary`),
    insert: async (table, cols, bytes) => {
      await post(`INSERT INTO ${table} (${cols}) FORMAT RowBinary`, bytes);
    },
    cpuUs: () => {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      return ((Number(f[11]) + Number(f[12])) / tick) * 1e6;
    },
    close: async () => void (await post(`DROP DATABASE ${db}`, undefined, 'default')),
  };
} else {
  const chdb = storeRequire('chdb');
  const session = new chdb.Session(join(dir, 'db'));
  let n = 0;
  engine = {
    name: `chDB ${chdb.version?.().chdb ?? ''}`,
    caps: capabilitiesOf('26.1'),
    q: async (sql) => String(session.query(sql, 'CSV')),
    rowBinary: async (select, structure) => {
      const file = join(dir, `rows${n++}.bin`);
      session.query(`INSERT INTO FUNCTION file('${file}', 'RowBinary', '${structure}') ${select}`, 'CSV');
      return { file, structure, size: statSync(file).size };
    },
    insert: async (table, cols, f) => {
      session.query(`INSERT INTO ${table} (${cols}) SETTINGS optimize_on_insert = 0, insert_deduplication_token = '${table}:${f.file}' SELECT * FROM file('${f.file}', 'RowBinary', '${f.structure}')`, 'CSV');
    },
    cpuUs: () => {
      const c = process.cpuUsage();
      return c.user + c.system;
    },
    close: async () => session.cleanup?.(),
  };
}
const { caps } = engine;
const q = (sql) => engine.q(sql);

const sqlDir = new URL('../../packages/store/sql/', import.meta.url);
const fill = (text) => adaptToVersion(text.replaceAll('{{attribution_retention_days}}', '400').replaceAll('{{rollup_retention_days}}', '800').replaceAll('{{dedup_window}}', '1000'), caps);
const statements = (file) => fill(readFileSync(new URL(file, sqlDir), 'utf8')).split(/;\s*$/m).map((x) => x.replace(/^\s*--.*$/gm, '').trim()).filter(Boolean);
for (const st of [...statements('0002_attributions.sql'), ...statements('0003_rollups.sql')]) await q(st);

// B: the same rollup tables under other names, fed from the wide table.
const rollups = statements('0003_rollups.sql').filter((x) => x.startsWith('CREATE TABLE'));
for (const st of rollups) await q(st.replace(/CREATE TABLE IF NOT EXISTS (\w+)/, 'CREATE TABLE IF NOT EXISTS $1_w'));
await q(
  fill(`CREATE TABLE attribution_intervals
(
    host LowCardinality(String),
    seq UInt64 CODEC(Delta, ZSTD),
    t0_ns Int64 CODEC(DoubleDelta, ZSTD),
    t1_ns Int64 CODEC(DoubleDelta, ZSTD),
    ts DateTime('UTC') MATERIALIZED toDateTime(intDiv(t1_ns, 1000000000), 'UTC'),
    method LowCardinality(String),
    model_version LowCardinality(String),
    hardware_class LowCardinality(String),
    note String,
    share Nested(
        kind LowCardinality(String),
        vm_uuid LowCardinality(String),
        vm_name LowCardinality(String),
        tenant LowCardinality(String),
        source LowCardinality(String),
        dynamic_j Float64,
        static_j Float64,
        low_j Float64,
        high_j Float64,
        measured_j Float64
    )
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (host, seq, method)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000`),
);
// The shares are a Nested column (arrays share.kind, share.vm_uuid, …): ARRAY JOIN share gives one row per share, and
// the rollups' columns (dynamic_j, …) do not clash with the arrays' names (share.dynamic_j, …).
const joined = `(SELECT ts, host, method, share.kind AS kind, share.vm_uuid AS vm_uuid, share.vm_name AS vm_name, share.tenant AS tenant,
    share.source AS source, share.dynamic_j AS dynamic_j, share.static_j AS static_j, share.low_j AS low_j, share.high_j AS high_j
    FROM attribution_intervals ARRAY JOIN share)`;
await q(`CREATE MATERIALIZED VIEW vm_energy_hourly_w_mv TO vm_energy_hourly_w AS
SELECT toStartOfHour(ts) AS hour, share.vm_uuid AS vm_uuid, share.vm_name AS vm_name, share.tenant AS tenant, host, share.kind AS kind,
    share.source AS source, method, sum(share.dynamic_j) AS dynamic_j, sum(share.static_j) AS static_j, sum(share.low_j) AS low_j,
    sum(share.high_j) AS high_j, count() AS shares
FROM attribution_intervals ARRAY JOIN share
GROUP BY hour, vm_uuid, vm_name, tenant, host, kind, source, method`);
await q(`CREATE MATERIALIZED VIEW tenant_energy_hourly_w_mv TO tenant_energy_hourly_w AS
SELECT toStartOfHour(ts) AS hour, share.tenant AS tenant, share.kind AS kind, share.source AS source, method,
    sum(share.dynamic_j) AS dynamic_j, sum(share.static_j) AS static_j, sum(share.low_j) AS low_j, sum(share.high_j) AS high_j, count() AS shares
FROM attribution_intervals ARRAY JOIN share
GROUP BY hour, tenant, kind, source, method`);

// The data: B host intervals per batch (hosts × seconds), V VMs each, two sources; 1 s intervals, an hour ago.
const rowsCols = 'host String, seq UInt64, t0_ns Int64, t1_ns Int64, kind String, vm_uuid String, vm_name String, tenant String, source String, dynamic_j Float64, static_j Float64, low_j Float64, high_j Float64, measured_j Float64, method String, model_version String, hardware_class String, note String';
const wideCols = 'host String, seq UInt64, t0_ns Int64, t1_ns Int64, method String, model_version String, hardware_class String, note String, `share.kind` Array(String), `share.vm_uuid` Array(String), `share.vm_name` Array(String), `share.tenant` Array(String), `share.source` Array(String), `share.dynamic_j` Array(Float64), `share.static_j` Array(Float64), `share.low_j` Array(Float64), `share.high_j` Array(Float64), `share.measured_j` Array(Float64)';
const names = (cols) => cols.split(', ').map((c) => c.split(' ')[0]).join(', ');
const HOSTS = 8;
const t0 = (Math.floor(Date.now() / 1000) - 3600) * 1e9;
const files = [];
for (let k = 0; k < K; k++) {
  await q('DROP TABLE IF EXISTS stage');
  await q(`CREATE TABLE stage ENGINE = Memory AS
SELECT concat('hv-', toString(h)) AS host, toUInt64(1 + ${k * Math.ceil(B / HOSTS)} + i) AS seq,
    toInt64(${t0} + (${k * Math.ceil(B / HOSTS)} + i) * 1000000000) AS t0_ns, t0_ns + 1000000000 AS t1_ns, 'vm' AS kind,
    concat(lower(hex(cityHash64(h, v))), '-0000-4000-8000-', lower(hex(cityHash64(v, h)))) AS vm_uuid,
    concat('vm-', toString(h), '-', toString(v)) AS vm_name, concat('tenant-', toString(v % 7)) AS tenant,
    if(src = 0, 'rapl', 'bmc_rest') AS source,
    (cityHash64(h, v, i, src) % 100000) / 1000 AS dynamic_j, (cityHash64(v, h, i, src) % 10000) / 1000 AS static_j,
    dynamic_j + static_j - 0.5 AS low_j, dynamic_j + static_j + 0.5 AS high_j, toFloat64(400 + src * 100) AS measured_j,
    'cpu_share' AS method, 'cpu_share/1' AS model_version, 'xeon-test' AS hardware_class, '' AS note
FROM (SELECT intDiv(number, ${V * SOURCES}) % ${HOSTS} AS h, intDiv(number, ${V * SOURCES * HOSTS}) AS i, intDiv(number, ${SOURCES}) % ${V} AS v, number % ${SOURCES} AS src FROM numbers(${B * V * SOURCES}))`);
  const a = await engine.rowBinary(`SELECT ${names(rowsCols)} FROM stage ORDER BY host, seq, vm_uuid, source`, rowsCols);
  const w = await engine.rowBinary(
    `SELECT host, seq, t0_ns, t1_ns, method, model_version, hardware_class, note, groupArray(kind), groupArray(vm_uuid), groupArray(vm_name),
    groupArray(tenant), groupArray(source), groupArray(dynamic_j), groupArray(static_j), groupArray(low_j), groupArray(high_j), groupArray(measured_j)
FROM (SELECT * FROM stage ORDER BY host, seq, vm_uuid, source) GROUP BY host, seq, t0_ns, t1_ns, method, model_version, hardware_class, note ORDER BY host, seq`,
    wideCols,
  );
  files.push({ a, w });
}
await q('DROP TABLE stage');

const insert = {
  rows: (f) => engine.insert('attributions', names(rowsCols), f.a),
  wide: (f) => engine.insert('attribution_intervals', names(wideCols), f.w),
};
const vmSamples = B * V;
const spent = { rows: [], wide: [] };
const load0 = loadavg()[0];
for (const [k, f] of files.entries()) {
  for (const layout of k % 2 === 0 ? ['rows', 'wide'] : ['wide', 'rows']) {
    const c0 = engine.cpuUs();
    const w0 = performance.now();
    await insert[layout](f);
    const c = engine.cpuUs() - c0;
    spent[layout].push({ cpuUs: c / vmSamples, wallUs: ((performance.now() - w0) * 1000) / vmSamples });
  }
}
const load1 = loadavg()[0];
const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
// the first batch of each is the engine's warm-up: left out of the medians
const stat = (l) => ({ cpu_us_per_vm_sample: median(spent[l].slice(1).map((x) => x.cpuUs)), wall_us_per_vm_sample: median(spent[l].slice(1).map((x) => x.wallUs)) });
const one = async (sql) => (await q(`${sql} FORMAT JSONEachRow`)).trim();
const sums = (t) => one(`SELECT round(sum(dynamic_j), 3) AS d, round(sum(static_j), 3) AS s, round(sum(low_j), 3) AS lo, round(sum(high_j), 3) AS hi, sum(shares) AS n FROM ${t}`);
const byTenant = (t) => one(`SELECT tenant, source, round(sum(dynamic_j), 6) AS d, round(sum(static_j), 6) AS s FROM ${t} GROUP BY tenant, source ORDER BY tenant, source`);
const agree = {
  tenant_rollup: (await sums('tenant_energy_hourly')) === (await sums('tenant_energy_hourly_w')) && (await byTenant('tenant_energy_hourly')) === (await byTenant('tenant_energy_hourly_w')),
  vm_rollup: (await sums('vm_energy_hourly')) === (await sums('vm_energy_hourly_w')),
  raw: (await one(`SELECT round(sum(dynamic_j), 3) AS d, count() AS n FROM attributions`)) === (await one(`SELECT round(sum(dynamic_j), 3) AS d, count() AS n FROM ${joined}`)),
};
for (const t of ['attributions', 'attribution_intervals', 'vm_energy_hourly', 'vm_energy_hourly_w', 'tenant_energy_hourly', 'tenant_energy_hourly_w']) await q(`OPTIMIZE TABLE ${t} FINAL`);
const disk = async (t) => Number(JSON.parse(await one(`SELECT sum(bytes) AS b FROM system.parts WHERE active AND table = '${t}' AND database = currentDatabase()`)).b);
const total = vmSamples * K;
const size = (x) => (Buffer.isBuffer(x) ? x.length : x.size);
const out = {
  bench: 'wide-rows',
  engine: engine.name,
  host_intervals_per_insert: B,
  vms: V,
  sources: SOURCES,
  batches: K,
  rows: { ...stat('rows'), rowbinary_bytes_per_vm_sample: size(files[0].a) / vmSamples, disk_bytes_per_vm_sample: (await disk('attributions')) / total },
  wide: { ...stat('wide'), rowbinary_bytes_per_vm_sample: size(files[0].w) / vmSamples, disk_bytes_per_vm_sample: (await disk('attribution_intervals')) / total },
  rollups_agree: agree,
  machine: `${cpus().length} × ${cpus()[0]?.model.trim()}`,
  node: process.version,
  loadavg_1m_start_end: [load0, load1],
  date: new Date().toISOString(),
};
console.log(JSON.stringify(out));
const f2 = (x) => x.toFixed(2);
console.log(`\n${engine.name}\n\n| layout | engine CPU µs / VM-sample (median of ${K - 1} inserts of ${B} host intervals) | wall µs / VM-sample | RowBinary bytes / VM-sample | on disk after OPTIMIZE, bytes / VM-sample |\n|---|---|---|---|---|`);
for (const l of ['rows', 'wide']) console.log(`| ${l} | ${f2(out[l].cpu_us_per_vm_sample)} | ${f2(out[l].wall_us_per_vm_sample)} | ${f2(out[l].rowbinary_bytes_per_vm_sample)} | ${f2(out[l].disk_bytes_per_vm_sample)} |`);
console.log(`\nrollups agree: ${JSON.stringify(agree)}; ${out.machine}; load ${load0.toFixed(1)} → ${load1.toFixed(1)}; ${out.date}`);
await engine.close();
rmSync(dir, { recursive: true, force: true });
if (!agree.tenant_rollup || !agree.vm_rollup || !agree.raw) process.exitCode = 1;

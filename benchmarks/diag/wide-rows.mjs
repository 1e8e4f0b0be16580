// Issue 15, design measurement: what would one row per host interval (the VMs' shares in array columns) save the
// store against today's one row per VM share? Nothing shipped uses the wide table; this measures the engine's side
// of the choice before anyone builds it.
//
//   node benchmarks/diag/wide-rows.mjs [--hosts-intervals 480] [--vms 50] [--batches 12]
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

const { values } = parseArgs({ options: { 'hosts-intervals': { type: 'string', default: '480' }, vms: { type: 'string', default: '50' }, batches: { type: 'string', default: '12' } } });
const B = Number(values['hosts-intervals']);
const V = Number(values.vms);
const K = Number(values.batches);
const SOURCES = 2; // rapl and bmc_rest (hosts without a GPU)
const chdb = createRequire(new URL('../../packages/store/package.json', import.meta.url))('chdb');
const dir = mkdtempSync(join(tmpdir(), 'wattsplit-wide-rows-'));
const s = new chdb.Session(join(dir, 'db'));
const q = (sql, fmt = 'CSV') => s.query(sql, fmt);

const sqlDir = new URL('../../packages/store/sql/', import.meta.url);
const fill = (text) => text.replaceAll('{{attribution_retention_days}}', '400').replaceAll('{{rollup_retention_days}}', '800').replaceAll('{{dedup_window}}', '1000');
const statements = (file) => fill(readFileSync(new URL(file, sqlDir), 'utf8')).split(/;\s*$/m).map((x) => x.replace(/^\s*--.*$/gm, '').trim()).filter(Boolean);
for (const st of [...statements('0002_attributions.sql'), ...statements('0003_rollups.sql')]) q(st);

// B: the same rollup tables under other names, fed from the wide table.
const rollups = statements('0003_rollups.sql').filter((x) => x.startsWith('CREATE TABLE'));
for (const st of rollups) q(st.replace(/CREATE TABLE IF NOT EXISTS (\w+)/, 'CREATE TABLE IF NOT EXISTS $1_w'));
q(`CREATE TABLE attribution_intervals
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
    kind Array(LowCardinality(String)),
    vm_uuid Array(LowCardinality(String)),
    vm_name Array(LowCardinality(String)),
    tenant Array(LowCardinality(String)),
    source Array(LowCardinality(String)),
    dynamic_j Array(Float64),
    static_j Array(Float64),
    low_j Array(Float64),
    high_j Array(Float64),
    measured_j Array(Float64)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (host, seq, method)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000`);
// The arrays joined in a subquery under names of their own: the rollups' columns have the arrays' names, and the
// analyzer would resolve an ARRAY JOIN of dynamic_j to the outer sum(…) AS dynamic_j.
const arrayJoin = 'ARRAY JOIN kind, vm_uuid, vm_name, tenant, source, dynamic_j, static_j, low_j, high_j';
const joined = `(SELECT ts, host, method, kind AS k_, vm_uuid AS u_, vm_name AS n_, tenant AS t_, source AS s_, dynamic_j AS d_, static_j AS st_, low_j AS lo_, high_j AS hi_
    FROM attribution_intervals ${arrayJoin})`;
q(`CREATE MATERIALIZED VIEW vm_energy_hourly_w_mv TO vm_energy_hourly_w AS
SELECT toStartOfHour(ts) AS hour, u_ AS vm_uuid, n_ AS vm_name, t_ AS tenant, host, k_ AS kind, s_ AS source, method,
    sum(d_) AS dynamic_j, sum(st_) AS static_j, sum(lo_) AS low_j, sum(hi_) AS high_j, count() AS shares
FROM ${joined}
GROUP BY hour, u_, n_, t_, host, k_, s_, method`);
q(`CREATE MATERIALIZED VIEW tenant_energy_hourly_w_mv TO tenant_energy_hourly_w AS
SELECT toStartOfHour(ts) AS hour, t_ AS tenant, k_ AS kind, s_ AS source, method,
    sum(d_) AS dynamic_j, sum(st_) AS static_j, sum(lo_) AS low_j, sum(hi_) AS high_j, count() AS shares
FROM ${joined}
GROUP BY hour, t_, k_, s_, method`);

// The data: B host intervals per batch (hosts × seconds), V VMs each, two sources; 1 s intervals, an hour ago.
const rowsCols = 'host String, seq UInt64, t0_ns Int64, t1_ns Int64, kind String, vm_uuid String, vm_name String, tenant String, source String, dynamic_j Float64, static_j Float64, low_j Float64, high_j Float64, measured_j Float64, method String, model_version String, hardware_class String, note String';
const wideCols = 'host String, seq UInt64, t0_ns Int64, t1_ns Int64, method String, model_version String, hardware_class String, note String, kind Array(String), vm_uuid Array(String), vm_name Array(String), tenant Array(String), source Array(String), dynamic_j Array(Float64), static_j Array(Float64), low_j Array(Float64), high_j Array(Float64), measured_j Array(Float64)';
const HOSTS = 8;
const t0 = (Math.floor(Date.now() / 1000) - 3600) * 1e9;
const files = [];
for (let k = 0; k < K; k++) {
  q('DROP TABLE IF EXISTS stage');
  q(`CREATE TABLE stage ENGINE = Memory AS
SELECT concat('hv-', toString(h)) AS host, toUInt64(1 + ${k * Math.ceil(B / HOSTS)} + i) AS seq,
    toInt64(${t0} + (${k * Math.ceil(B / HOSTS)} + i) * 1000000000) AS t0_ns, t0_ns + 1000000000 AS t1_ns, 'vm' AS kind,
    concat(lower(hex(cityHash64(h, v))), '-0000-4000-8000-', lower(hex(cityHash64(v, h)))) AS vm_uuid,
    concat('vm-', toString(h), '-', toString(v)) AS vm_name, concat('tenant-', toString(v % 7)) AS tenant,
    if(src = 0, 'rapl', 'bmc_rest') AS source,
    (cityHash64(h, v, i, src) % 100000) / 1000 AS dynamic_j, (cityHash64(v, h, i, src) % 10000) / 1000 AS static_j,
    dynamic_j + static_j - 0.5 AS low_j, dynamic_j + static_j + 0.5 AS high_j, 400 + src * 100 AS measured_j,
    'cpu_share' AS method, 'cpu_share/1' AS model_version, 'xeon-test' AS hardware_class, '' AS note
FROM (SELECT intDiv(number, ${V * SOURCES}) % ${HOSTS} AS h, intDiv(number, ${V * SOURCES * HOSTS}) AS i, intDiv(number, ${SOURCES}) % ${V} AS v, number % ${SOURCES} AS src FROM numbers(${B * V * SOURCES}))`);
  const a = join(dir, `a${k}.bin`);
  const w = join(dir, `w${k}.bin`);
  q(`INSERT INTO FUNCTION file('${a}', 'RowBinary', '${rowsCols}') SELECT * FROM stage ORDER BY host, seq, vm_uuid, source`);
  q(`INSERT INTO FUNCTION file('${w}', 'RowBinary', '${wideCols}')
SELECT host, seq, t0_ns, t1_ns, method, model_version, hardware_class, note, groupArray(kind), groupArray(vm_uuid), groupArray(vm_name),
    groupArray(tenant), groupArray(source), groupArray(dynamic_j), groupArray(static_j), groupArray(low_j), groupArray(high_j), groupArray(measured_j)
FROM (SELECT * FROM stage ORDER BY host, seq, vm_uuid, source) GROUP BY host, seq, t0_ns, t1_ns, method, model_version, hardware_class, note`);
  files.push({ a, w });
}
q('DROP TABLE stage');

const rowsColNames = rowsCols.split(', ').map((c) => c.split(' ')[0]).join(', ');
const wideColNames = wideCols.split(', ').map((c) => c.split(' ')[0]).join(', ');
const insert = {
  rows: (f) => q(`INSERT INTO attributions (${rowsColNames}) SETTINGS optimize_on_insert = 0, insert_deduplication_token = 'a${f.a}' SELECT * FROM file('${f.a}', 'RowBinary', '${rowsCols}')`),
  wide: (f) => q(`INSERT INTO attribution_intervals (${wideColNames}) SETTINGS optimize_on_insert = 0, insert_deduplication_token = 'w${f.w}' SELECT * FROM file('${f.w}', 'RowBinary', '${wideCols}')`),
};
const vmSamples = B * V;
const spent = { rows: [], wide: [] };
const load0 = loadavg()[0];
for (const [k, f] of files.entries()) {
  for (const layout of k % 2 === 0 ? ['rows', 'wide'] : ['wide', 'rows']) {
    const c0 = process.cpuUsage();
    const w0 = performance.now();
    insert[layout](f);
    const c = process.cpuUsage(c0);
    spent[layout].push({ cpuUs: (c.user + c.system) / vmSamples, wallUs: ((performance.now() - w0) * 1000) / vmSamples });
  }
}
const load1 = loadavg()[0];
const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
// the first batch of each is the engine's warm-up: left out of the medians
const stat = (l) => ({ cpu_us_per_vm_sample: median(spent[l].slice(1).map((x) => x.cpuUs)), wall_us_per_vm_sample: median(spent[l].slice(1).map((x) => x.wallUs)) });
const one = (sql) => q(sql, 'JSONEachRow').toString().trim();
const sums = (t) => JSON.parse(one(`SELECT round(sum(dynamic_j), 3) AS d, round(sum(static_j), 3) AS s, round(sum(low_j), 3) AS lo, round(sum(high_j), 3) AS hi, sum(shares) AS n FROM ${t}`));
const byTenant = (t) => one(`SELECT tenant, source, round(sum(dynamic_j), 6) AS d, round(sum(static_j), 6) AS s FROM ${t} GROUP BY tenant, source ORDER BY tenant, source FORMAT JSONEachRow`);
const agree = {
  tenant_rollup: JSON.stringify(sums('tenant_energy_hourly')) === JSON.stringify(sums('tenant_energy_hourly_w')) && byTenant('tenant_energy_hourly') === byTenant('tenant_energy_hourly_w'),
  vm_rollup: JSON.stringify(sums('vm_energy_hourly')) === JSON.stringify(sums('vm_energy_hourly_w')),
  raw: one(`SELECT round(sum(dynamic_j), 3) AS d, count() AS n FROM attributions`) === one(`SELECT round(sum(d_), 3) AS d, count() AS n FROM ${joined}`),
};
for (const t of ['attributions', 'attribution_intervals', 'vm_energy_hourly', 'vm_energy_hourly_w', 'tenant_energy_hourly', 'tenant_energy_hourly_w']) q(`OPTIMIZE TABLE ${t} FINAL`);
const disk = (t) => Number(JSON.parse(one(`SELECT sum(bytes_on_disk) AS b FROM system.parts WHERE active AND table = '${t}'`)).b);
const total = vmSamples * K;
const out = {
  bench: 'wide-rows',
  host_intervals_per_insert: B,
  vms: V,
  sources: SOURCES,
  batches: K,
  rows: { ...stat('rows'), rowbinary_bytes_per_vm_sample: statSync(files[0].a).size / vmSamples, disk_bytes_per_vm_sample: disk('attributions') / total },
  wide: { ...stat('wide'), rowbinary_bytes_per_vm_sample: statSync(files[0].w).size / vmSamples, disk_bytes_per_vm_sample: disk('attribution_intervals') / total },
  rollups_agree: agree,
  chdb: chdb.version?.() ?? null,
  machine: `${cpus().length} × ${cpus()[0]?.model.trim()}`,
  node: process.version,
  loadavg_1m_start_end: [load0, load1],
  date: new Date().toISOString(),
};
console.log(JSON.stringify(out));
const f2 = (x) => x.toFixed(2);
console.log(`\n| layout | engine CPU µs / VM-sample (median of ${K - 1} inserts of ${B} host intervals) | wall µs / VM-sample | RowBinary bytes / VM-sample | on disk after OPTIMIZE, bytes / VM-sample |\n|---|---|---|---|---|`);
for (const l of ['rows', 'wide']) console.log(`| ${l} | ${f2(out[l].cpu_us_per_vm_sample)} | ${f2(out[l].wall_us_per_vm_sample)} | ${f2(out[l].rowbinary_bytes_per_vm_sample)} | ${f2(out[l].disk_bytes_per_vm_sample)} |`);
console.log(`\nrollups agree: ${JSON.stringify(agree)}; ${out.machine}; load ${load0.toFixed(1)} → ${load1.toFixed(1)}; ${out.date}`);
s.cleanup?.();
rmSync(dir, { recursive: true, force: true });
if (!agree.tenant_rollup || !agree.vm_rollup || !agree.raw) process.exitCode = 1;

/**
 * The accuracy report of `wattsplit demo` and `npm run fleet-demo` (scripts/fleet-demo.mjs): what the
 * sensors measured in the billed period, what each attribution method attributed (conservation), and
 * each method's per-tenant and per-VM-class error against the simulator's ground truth.
 *
 * Both runs bill the same way: every simulated host samples once per simulated second from seq 1, so
 * the billed period is "intervals closing at seq ≥ firstSeq" on every host. The store is read with SQL
 * only (`QueryStore`: the embedded chDB store, or a ClickHouse server over HTTP), the same statements in
 * both modes. Scoring code: CLI demos only, never a library export.
 */
import { tenantErrors, type TenantErrorSummary } from '@wattsplit/attribution';
import type { VmTruth } from '@wattsplit/simulator';

export interface MethodReport {
  attributed_joules: number;
  max_tenant_error_pct: number;
  mean_tenant_error_pct: number;
  worst_tenant: string;
  tenants: Record<string, { attributed_joules: number; true_joules: number; error_pct: number }>;
}

export interface Report {
  measured: number;
  attributedByMethod: Record<string, number>;
  byVm: Map<string, Map<string, number>>; // method → vm uuid → joules
  methods: Record<string, MethodReport>;
  anomalies: Record<string, number>;
}

/** What the report reads through: rows of one SELECT. */
export interface QueryStore {
  query(sql: string, format?: 'JSONEachRow'): Promise<{ rows: Record<string, unknown>[] }>;
}

/** The part of a run's JSON output the tables print. */
export interface ReportHeadline {
  sensor_joules: number;
  measured_joules: number;
  conservation_ok: boolean;
  frames: number;
  anomalies: Record<string, number>;
}

export function sumBy<T extends { totalJoules: number }>(xs: readonly T[], key: (x: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[key(x)] = (out[key(x)] ?? 0) + x.totalJoules;
  return out;
}

/** Conservation: the first method (the baseline every other method falls back to) attributes what was measured. */
export function conservationHolds(report: Report, methodNames: readonly string[]): boolean {
  return Math.abs(report.measured - (report.attributedByMethod[methodNames[0]!] ?? 0)) <= 1e-6 * report.measured;
}

export async function buildReport(store: QueryStore, truth: readonly VmTruth[], firstSeq: number, methodNames: readonly string[]): Promise<Report> {
  const measuredRows = await store.query(`SELECT sum(rapl_j + gpu_j + bmc_rest_j) AS j FROM host_samples FINAL WHERE seq >= ${firstSeq}`, 'JSONEachRow');
  const measured = Number(measuredRows.rows[0]?.j ?? 0);
  const totals = await store.query(`SELECT method, sum(dynamic_j + static_j) AS j FROM attributions FINAL WHERE seq >= ${firstSeq} GROUP BY method`, 'JSONEachRow');
  const attributedByMethod: Record<string, number> = {};
  for (const r of totals.rows) attributedByMethod[String(r.method)] = Number(r.j);
  const vmRows = await store.query(`SELECT method, vm_uuid, sum(dynamic_j + static_j) AS j FROM attributions FINAL WHERE seq >= ${firstSeq} AND kind = 'vm' GROUP BY method, vm_uuid`, 'JSONEachRow');
  const byVm = new Map<string, Map<string, number>>();
  for (const r of vmRows.rows) {
    const m = String(r.method);
    if (!byVm.has(m)) byVm.set(m, new Map());
    byVm.get(m)!.set(String(r.vm_uuid), Number(r.j));
  }
  const an = await store.query(`SELECT code, count() AS n FROM anomalies FINAL GROUP BY code ORDER BY code`, 'JSONEachRow');
  const anomalies = Object.fromEntries(an.rows.map((r) => [String(r.code), Number(r.n)]));
  const trueByTenant = sumBy(truth, (v) => v.tenant);
  const tenantOf = new Map(truth.map((v) => [v.uuid, v.tenant]));
  const methods: Record<string, MethodReport> = {};
  for (const m of methodNames) {
    const attrByTenant: Record<string, number> = {};
    for (const [uuid, j] of byVm.get(m) ?? new Map<string, number>()) {
      const t = tenantOf.get(uuid);
      if (t !== undefined) attrByTenant[t] = (attrByTenant[t] ?? 0) + j;
    }
    const s: TenantErrorSummary = tenantErrors(attrByTenant, trueByTenant);
    methods[m] = {
      attributed_joules: attributedByMethod[m] ?? 0,
      max_tenant_error_pct: 100 * s.max,
      mean_tenant_error_pct: 100 * s.mean,
      worst_tenant: s.worstTenant,
      tenants: Object.fromEntries(s.tenants.map((t) => [t.tenant, { attributed_joules: t.attributed, true_joules: t.truth, error_pct: 100 * t.relError }])),
    };
  }
  return { measured, attributedByMethod, byVm, methods, anomalies };
}

/** The report as tables on stdout; `queryHint` is the last line (how to read the data with SQL). */
export function printTables(out: ReportHeadline, report: Report, truth: readonly VmTruth[], methodNames: readonly string[], queryHint: string): void {
  const kwh = (j: number) => (j / 3.6e6).toFixed(4);
  const pct = (a: number, t: number) => (t > 0 ? `${(((a - t) / t) * 100).toFixed(1)}%` : '-');
  console.log(`\nSensors measured ${kwh(out.sensor_joules)} kWh in the billed period; the pipeline captured ${kwh(out.measured_joules)} kWh (${((100 * out.measured_joules) / out.sensor_joules).toFixed(3)} %) from ${out.frames} frames; conservation ${out.conservation_ok ? 'holds' : 'VIOLATED'} for every method:`);
  for (const m of methodNames) console.log(`  ${m.padEnd(16)} attributed ${kwh(report.attributedByMethod[m] ?? 0)} kWh`);

  const classes = [...new Set(truth.map((v) => v.class))].sort();
  const colW = 22;
  console.log(`\nPer VM class (kWh; error vs the simulator's truth):`);
  console.log(`${'class'.padEnd(12)} ${'VMs'.padStart(4)} ${'true'.padStart(9)}  ${methodNames.map((m) => m.padStart(colW)).join(' ')}`);
  for (const c of classes) {
    const vs = truth.filter((v) => v.class === c);
    const t = vs.reduce((a, v) => a + v.totalJoules, 0);
    const cols = methodNames.map((m) => {
      const a = vs.reduce((acc, v) => acc + (report.byVm.get(m)?.get(v.uuid) ?? 0), 0);
      return `${kwh(a)} (${pct(a, t)})`.padStart(colW);
    });
    console.log(`${c.padEnd(12)} ${String(new Set(vs.map((v) => v.uuid)).size).padStart(4)} ${kwh(t).padStart(9)}  ${cols.join(' ')}`);
  }
  console.log(`\nPer tenant error (|attributed − true| / true):`);
  const tenants = Object.keys(report.methods[methodNames[0]!]!.tenants).sort();
  console.log(`${'tenant'.padEnd(14)} ${'true kWh'.padStart(9)}  ${methodNames.map((m) => m.padStart(14)).join(' ')}`);
  for (const t of tenants) {
    const tr = report.methods[methodNames[0]!]!.tenants[t]!.true_joules;
    console.log(`${t.padEnd(14)} ${kwh(tr).padStart(9)}  ${methodNames.map((m) => `${(report.methods[m]?.tenants[t]?.error_pct ?? NaN).toFixed(1)}%`.padStart(14)).join(' ')}`);
  }
  console.log(`${'worst'.padEnd(14)} ${''.padStart(9)}  ${methodNames.map((m) => `${report.methods[m]!.max_tenant_error_pct.toFixed(1)}%`.padStart(14)).join(' ')}`);
  const an = Object.entries(out.anomalies);
  if (an.length) console.log(`\nAnomalies repaired or flagged by the pipeline: ${an.map(([k, n]) => `${k} ×${n}`).join(', ')}`);
  console.log(`\n${queryHint}`);
}

/**
 * A BillReport (billing.ts) as people read it: a text table (a tenant's VMs indented below it when the report
 * carries them: `bill --tenant`), CSV (one row per tenant, learned and cpu_share side by side; no VM rows, so a
 * column's sum is the total) and a printable HTML statement per tenant (one page each; print to PDF from
 * the browser). The JSON form is the report object itself.
 */
import type { BillAmounts, BillReport, TenantBill } from './billing.js';

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const k6 = (x: number) => x.toFixed(6);
const money = (x: number | null) => (x === null ? '-' : x.toFixed(4));
const grams = (x: number | null) => (x === null ? '-' : x.toFixed(1));
const signed = (x: number | null, f: (v: number) => string) => (x === null ? '-' : `${x > 0 ? '+' : ''}${f(x)}`);

export function billTable(r: BillReport): string {
  const out: string[] = [];
  out.push(`Bills ${r.from} → ${r.to} (whole hours), method ${r.method}; tariff ${r.tariff}; PUE ${r.pue}; carbon ${r.carbon ?? 'not computed (give --intensity)'}`);
  const cur = r.currency ?? '';
  out.push(`${'tenant'.padEnd(20)} ${'IT kWh'.padStart(12)} ${'facility kWh'.padStart(13)} ${`cost ${cur}`.padStart(12)} ${'gCO2e'.padStart(12)}`);
  const row = (name: string, a: BillAmounts) => `${name.padEnd(20)} ${k6(a.kwh).padStart(12)} ${k6(a.facility_kwh).padStart(13)} ${money(a.cost).padStart(12)} ${grams(a.co2e_g).padStart(12)}`;
  for (const t of r.tenants) {
    out.push(row(t.tenant || '(no tenant)', t));
    // a tenant's bill (--tenant) carries its VMs: one indented line each, name (or UUID) and host
    for (const v of t.vms ?? []) out.push(row(`  ${v.vm_name || v.vm_uuid} @ ${v.host || '?'}`, v));
  }
  out.push(row('total', r.total));
  if (r.fairness) {
    out.push('');
    out.push(`Fairness: the same bills under ${r.fairness.baseline} (CPU-time share) beside ${r.method}; difference = ${r.fairness.baseline} − ${r.method} (> 0: paid for others' energy)`);
    out.push(`${'tenant'.padEnd(20)} ${`${r.method} kWh`.padStart(20)} ${'cpu_share kWh'.padStart(14)} ${'Δ kWh'.padStart(12)} ${'Δ %'.padStart(8)} ${`Δ ${cur}`.padStart(11)} ${'Δ gCO2e'.padStart(11)}`);
    for (const f of r.fairness.tenants) {
      out.push(
        `${(f.tenant || '(no tenant)').padEnd(20)} ${k6(f.learned.facility_kwh).padStart(20)} ${k6(f.cpu_share.facility_kwh).padStart(14)} ${signed(f.difference.kwh, k6).padStart(12)} ${(f.difference.pct === null ? '-' : `${(f.difference.pct * 100).toFixed(1)}%`).padStart(8)} ${signed(f.difference.cost, (v) => v.toFixed(4)).padStart(11)} ${signed(f.difference.co2e_g, (v) => v.toFixed(1)).padStart(11)}`,
      );
    }
    const payers = r.fairness.tenants.filter((f) => f.difference.kwh > 1e-9).map((f) => f.tenant);
    const paidFor = r.fairness.tenants.filter((f) => f.difference.kwh < -1e-9).map((f) => f.tenant);
    // no tenant's difference above 1e-9 kWh: the two methods bill the same (no "nobody paid … used by nobody")
    if (!payers.length && !paidFor.length) out.push(`${r.fairness.baseline} and ${r.method} bill every tenant the same (no difference above 1e-9 kWh).`);
    else out.push(`Under cpu_share, ${payers.join(', ') || 'nobody'} paid ${k6(r.fairness.overpaid_kwh)} kWh of energy used by ${paidFor.join(', ') || 'nobody'}.`);
  }
  return out.join('\n');
}

const CSV_COLUMNS = ['tenant', 'method', 'joules', 'kwh', 'facility_kwh', 'cost', 'co2e_g', 'cpu_share_kwh', 'cpu_share_facility_kwh', 'cpu_share_cost', 'cpu_share_co2e_g', 'difference_kwh', 'difference_cost', 'difference_co2e_g'] as const;

const csvCell = (v: string | number | null) => {
  if (v === null) return '';
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

export function billCsv(r: BillReport): string {
  const fair = new Map((r.fairness?.tenants ?? []).map((f) => [f.tenant, f]));
  const lines = [CSV_COLUMNS.join(',')];
  for (const t of r.tenants) {
    const f = fair.get(t.tenant);
    lines.push(
      [t.tenant, r.method, t.joules, t.kwh, t.facility_kwh, t.cost, t.co2e_g, f?.cpu_share.kwh ?? null, f?.cpu_share.facility_kwh ?? null, f?.cpu_share.cost ?? null, f?.cpu_share.co2e_g ?? null, f?.difference.kwh ?? null, f?.difference.cost ?? null, f?.difference.co2e_g ?? null]
        .map(csvCell)
        .join(','),
    );
  }
  return `${lines.join('\n')}\n`;
}

function statement(r: BillReport, t: TenantBill): string {
  const cur = esc(r.currency ?? '');
  const f = r.fairness?.tenants.find((x) => x.tenant === t.tenant);
  const vmRows = (t.vms ?? [])
    .map((v) => `<tr><td>${esc(v.vm_name || v.vm_uuid)}</td><td class="m">${esc(v.vm_uuid)}</td><td>${esc(v.host)}</td><td class="n">${k6(v.kwh)}</td><td class="n">${k6(v.facility_kwh)}</td><td class="n">${money(v.cost)}</td><td class="n">${grams(v.co2e_g)}</td></tr>`)
    .join('\n');
  const split = (title: string, m: Record<string, BillAmounts>) =>
    `<h3>${title}</h3><table><thead><tr><th></th><th>IT kWh</th><th>facility kWh</th><th>cost ${cur}</th><th>gCO2e</th></tr></thead><tbody>${Object.entries(m)
      .map(([k, a]) => `<tr><td>${esc(k)}</td><td class="n">${k6(a.kwh)}</td><td class="n">${k6(a.facility_kwh)}</td><td class="n">${money(a.cost)}</td><td class="n">${grams(a.co2e_g)}</td></tr>`)
      .join('')}</tbody></table>`;
  return `<section class="statement">
<h1>Energy statement: ${esc(t.tenant || '(no tenant)')}</h1>
<p class="meta">Period ${esc(r.from)} → ${esc(r.to)} (whole hours, UTC) · method <b>${esc(r.method)}</b> · tariff ${esc(r.tariff)} · PUE ${esc(r.pue)} · carbon ${esc(r.carbon ?? 'not computed')} · source ${esc(r.billing_source)}</p>
<table class="sum"><tbody>
<tr><th>IT energy</th><td class="n">${k6(t.kwh)} kWh</td></tr>
<tr><th>Facility energy (× PUE)</th><td class="n">${k6(t.facility_kwh)} kWh</td></tr>
<tr><th>Amount due</th><td class="n"><b>${money(t.cost)} ${cur}</b></td></tr>
<tr><th>Emissions</th><td class="n">${grams(t.co2e_g)} gCO2e</td></tr>
</tbody></table>
${split('By tariff period', t.periods)}
${Object.keys(t.regions).length > 1 || r.carbon ? split('By region', t.regions) : ''}
${vmRows ? `<h3>By VM</h3><table><thead><tr><th>VM</th><th>uuid</th><th>host</th><th>IT kWh</th><th>facility kWh</th><th>cost ${cur}</th><th>gCO2e</th></tr></thead><tbody>${vmRows}</tbody></table>` : ''}
${
  f
    ? `<h3>Compared with CPU-time share</h3><p>Billed by CPU-time share (cpu_share), this tenant would have been charged <b>${k6(f.cpu_share.facility_kwh)} kWh</b>${f.cpu_share.cost !== null ? `, <b>${money(f.cpu_share.cost)} ${cur}</b>` : ''}${f.cpu_share.co2e_g !== null ? `, ${grams(f.cpu_share.co2e_g)} gCO2e` : ''}: ${f.difference.kwh >= 0 ? 'more' : 'less'} than measured by ${k6(Math.abs(f.difference.kwh))} kWh (${f.difference.pct === null ? '-' : `${(Math.abs(f.difference.pct) * 100).toFixed(1)} %`}).</p>`
    : ''
}
</section>`;
}

/** One printable HTML document with a statement per tenant (a page break between them). */
export function billHtml(r: BillReport): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wattsplit energy statements ${esc(r.from)} → ${esc(r.to)}</title>
<style>
body{font:13px system-ui,sans-serif;color:#222;margin:2em}
h1{font-size:20px;margin:0 0 4px}h3{font-size:14px;margin:18px 0 4px}
.meta{color:#555}table{border-collapse:collapse;margin:4px 0}td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}td.m{font-family:monospace;font-size:11px}
table.sum th{font-weight:normal;color:#555}
.statement{page-break-after:always;break-after:page;margin-bottom:3em}
@media print{body{margin:1cm}.statement{margin:0}}
</style></head><body>
${r.tenants.map((t) => statement(r, t)).join('\n')}
</body></html>
`;
}

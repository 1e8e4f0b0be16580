/**
 * The tiny self-contained dashboard: per-tenant energy table with inline SVG bars, no external assets.
 * With `tenant` (a tenant-scoped caller) the totals are that tenant's only; the caller filters them.
 * With `models` (admin only: fleet metadata) a small table of the model in force per hardware class.
 */
import type { TenantTotal } from '@wattsplit/store';

/** What the dashboard shows of one class's model (GET /api/models has the rest). */
export interface DashboardModelRow {
  hardware_class: string;
  status: string;
  version: number | null;
  age_s: number | null;
  residual_rms_w: { rapl: number; bmc_rest: number } | null;
  drift_ratio: number | null;
  cold_start_share: number | null;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
const kwh = (j: number) => (j / 3.6e6).toFixed(6);

function age(s: number | null): string {
  if (s === null) return '-';
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86_400).toFixed(1)} d`;
}

function modelsTable(models: readonly DashboardModelRow[]): string {
  const rows = models
    .map(
      (m) =>
        `<tr><td>${esc(m.hardware_class)}</td><td>${m.version === null ? esc(m.status.replace('_', ' ')) : `v${m.version}`}</td><td class="n">${age(m.age_s)}</td><td class="n">${m.residual_rms_w ? `${m.residual_rms_w.rapl.toFixed(1)} / ${m.residual_rms_w.bmc_rest.toFixed(1)}` : '-'}</td><td class="n">${m.drift_ratio === null ? '-' : `${m.drift_ratio.toFixed(2)}×`}</td><td class="n">${m.cold_start_share === null ? '-' : `${(100 * m.cold_start_share).toFixed(0)} %`}</td></tr>`,
    )
    .join('\n');
  return `<h2>Models (additive_model)</h2>
<table><thead><tr><th>hardware class</th><th>version</th><th>age</th><th>residual W (rapl / bmc)</th><th>drift</th><th>cold start</th></tr></thead>
<tbody>
${rows || '<tr><td colspan="6">no hardware class yet</td></tr>'}
</tbody></table>
`;
}

export function renderDashboard(totals: readonly TenantTotal[], opts: { method: string; fromUnixNs: number; toUnixNs: number; tenant?: string; models?: readonly DashboardModelRow[] }): string {
  // One row per tenant (VM energy); host overhead and unallocated idle get their own rows.
  const rows = new Map<string, { dyn: number; sta: number }>();
  for (const t of totals) {
    const label = t.kind === 'vm' ? t.tenant || '(no tenant)' : `[${t.kind}]`;
    const r = rows.get(label) ?? { dyn: 0, sta: 0 };
    r.dyn += t.dynamicJoules;
    r.sta += t.staticJoules;
    rows.set(label, r);
  }
  const list = [...rows.entries()].sort((a, b) => b[1].dyn + b[1].sta - (a[1].dyn + a[1].sta));
  const max = Math.max(1e-12, ...list.map(([, r]) => r.dyn + r.sta));
  const total = list.reduce((a, [, r]) => a + r.dyn + r.sta, 0);
  const W = 320;
  const body = list
    .map(([name, r]) => {
      const wd = (W * r.dyn) / max;
      const ws = (W * r.sta) / max;
      return `<tr><td>${esc(name)}</td><td class="n">${r.dyn.toFixed(1)}</td><td class="n">${r.sta.toFixed(1)}</td><td class="n">${kwh(r.dyn + r.sta)}</td><td><svg width="${W}" height="14" role="img" aria-label="${esc(name)} energy"><rect x="0" y="1" width="${wd.toFixed(1)}" height="12" fill="#2b7bb9"/><rect x="${wd.toFixed(1)}" y="1" width="${ws.toFixed(1)}" height="12" fill="#9cc3e0"/></svg></td></tr>`;
    })
    .join('\n');
  const from = new Date(opts.fromUnixNs / 1e6).toISOString();
  const to = new Date(opts.toUnixNs / 1e6).toISOString();
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wattsplit: energy by tenant</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}.k{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}</style>
</head><body>
<h1>${opts.tenant === undefined ? 'Energy by tenant' : `Energy of tenant ${esc(opts.tenant)}`}</h1>
<p>method <b>${esc(opts.method)}</b>, ${esc(from)} → ${esc(to)} (whole hours), total ${total.toFixed(1)} J = ${kwh(total)} kWh
<span class="k" style="background:#2b7bb9"></span>dynamic<span class="k" style="background:#9cc3e0"></span>static</p>
<table><thead><tr><th>tenant</th><th>dynamic J</th><th>static J</th><th>kWh</th><th></th></tr></thead>
<tbody>
${body || '<tr><td colspan="5">no attributed energy in this range</td></tr>'}
</tbody></table>
${opts.models ? modelsTable(opts.models) : ''}<p>${opts.tenant === undefined ? '<a href="/metrics">/metrics</a> · <a href="/api/models">/api/models</a> · ' : ''}<a href="/healthz">/healthz</a> · GET /api/v1/tenants/:tenant/bill?from&amp;to&amp;method · GET /api/v1/vms/:uuid/energy?from&amp;to&amp;method</p>
</body></html>
`;
}

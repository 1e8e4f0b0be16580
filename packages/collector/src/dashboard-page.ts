/**
 * GET /dashboard: the charted dashboard, one page, views drawn in the browser with uPlot (bundled from
 * npm and served by this process at /assets/: no CDN, works offline) from the REST API (views-api.ts,
 * GET /api/models, caps-api.ts). Views: fleet power, per-host power stacked by VM, per-tenant energy over
 * time, the fairness comparison (learned vs cpu_share), carbon per tenant, model health, pipeline health,
 * power caps (the live watch's latest statuses: power now vs cap, forecast crossing, the plan's actions).
 * `#fleet`, `#host`, … shows one view (the screenshot test uses it). Each view's section gets
 * `data-points` (how many values its chart or table holds) and `data-state` (ok | empty | error | denied),
 * so a test can tell a chart with data from a page that merely loaded.
 */
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { Controller, Get, Header } from '@nestjs/common';
import { Access } from './api-guard.js';

const require = createRequire(import.meta.url);

/** The files of the bundled charting library the page loads. */
const ASSETS: Record<string, string> = {
  'uplot.js': 'uplot/dist/uPlot.iife.min.js',
  'uplot.css': 'uplot/dist/uPlot.min.css',
  'dashboard.js': '',
};

const cache = new Map<string, string>();

function asset(name: string): { body: string } | undefined {
  const file = ASSETS[name];
  if (file === undefined) return undefined;
  let body = cache.get(name);
  if (body === undefined) cache.set(name, (body = file ? readFileSync(require.resolve(file), 'utf8') : DASHBOARD_JS));
  return { body };
}

export const VIEWS = ['fleet', 'host', 'tenants', 'fairness', 'carbon', 'models', 'pipeline', 'caps'] as const;

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wattsplit dashboard</title>
<link rel="stylesheet" href="/assets/uplot.css">
<style>
body{font:14px system-ui,sans-serif;margin:0;color:#222;background:#f6f7f9}
header{background:#1d3557;color:#fff;padding:10px 20px;display:flex;gap:18px;align-items:center;flex-wrap:wrap}
header h1{font-size:18px;margin:0}header a{color:#cfe3ff}header select,header input{font:inherit}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(620px,1fr));gap:16px;padding:16px}
section{background:#fff;border:1px solid #dde;border-radius:6px;padding:12px 16px;min-height:120px}
section h2{font-size:15px;margin:0 0 8px}.big{font-size:28px;font-weight:600}.muted{color:#667}
table{border-collapse:collapse;width:100%}td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.pos{color:#b00020}.neg{color:#1b7f3b}.err{color:#b00020}
.gauge{position:relative;width:140px;height:12px;background:#eef1f5;border-radius:2px}.gauge i{position:absolute;top:0;bottom:0;left:0;background:#2b7bb9}.gauge i.over{background:#b00020}.gauge b{position:absolute;top:-2px;bottom:-2px;width:2px;background:#e76f51}
ul.acts{margin:0;padding-left:16px}ul.acts li{margin:1px 0}
body.one main{grid-template-columns:1fr}body.one section{display:none}body.one section.shown{display:block}
</style></head><body>
<header><h1>wattsplit</h1>
<label>method <select id="method"><option value="">default (learned)</option><option>additive_model</option><option>cpu_share</option></select></label>
<label>host <select id="host"></select></label>
<span class="muted" id="range"></span>
<a href="/">summary table</a><a href="/api/openapi.json">API</a><a href="/api/models">models</a>
</header>
<main>
<section id="v-fleet"><h2>Fleet power (measured)</h2><div class="big" id="fleet-now">…</div><div class="chart"></div></section>
<section id="v-host"><h2>Host power by VM (attributed, stacked)</h2><div class="chart"></div></section>
<section id="v-tenants"><h2>Energy per tenant over time (kWh per hour)</h2><div class="chart"></div></section>
<section id="v-fairness"><h2>Fairness: learned model vs CPU-time share</h2><div class="chart"></div><div class="table"></div></section>
<section id="v-carbon"><h2>Carbon per tenant (gCO2e)</h2><div class="chart"></div><div class="note muted"></div></section>
<section id="v-models"><h2>Model health</h2><div class="table"></div></section>
<section id="v-pipeline"><h2>Pipeline health</h2><div class="table"></div></section>
<section id="v-caps"><h2>Power caps (live watch)</h2><div class="note muted"></div><div class="table"></div></section>
</main>
<script src="/assets/uplot.js"></script>
<script src="/assets/dashboard.js"></script>
</body></html>
`;

/** The page's script: fetch each view's resource, draw it, mark the section with what it holds. */
const DASHBOARD_JS = `"use strict";
(function () {
  var COLORS = ['#2b7bb9', '#e76f51', '#2a9d8f', '#e9c46a', '#8e44ad', '#f4a261', '#264653', '#d62828', '#6a994e', '#577590', '#bc6c25', '#9d4edd'];
  var only = location.hash.replace('#', '');
  if (only) { document.body.classList.add('one'); var s = document.getElementById('v-' + only); if (s) s.classList.add('shown'); }
  var params = new URLSearchParams(location.search);
  var methodSel = document.getElementById('method');
  methodSel.value = params.get('method') || '';
  function method() { return methodSel.value ? 'method=' + encodeURIComponent(methodSel.value) : ''; }
  function q() { var a = []; ['from', 'to'].forEach(function (k) { if (params.get(k)) a.push(k + '=' + encodeURIComponent(params.get(k))); }); if (method()) a.push(method()); return a.length ? '?' + a.join('&') : ''; }
  function qNoMethod() { var a = []; ['from', 'to'].forEach(function (k) { if (params.get(k)) a.push(k + '=' + encodeURIComponent(params.get(k))); }); return a.length ? '?' + a.join('&') : ''; }
  function get(path) {
    return fetch(path, { credentials: 'same-origin' }).then(function (r) {
      if (r.status === 401 || r.status === 403) { var e = new Error('not readable with this token'); e.denied = true; throw e; }
      return r.json().then(function (b) { if (!r.ok) throw new Error(b.message || ('HTTP ' + r.status)); return b; });
    });
  }
  function esc(s) { return String(s).replace(/[&<>"']/g, function (c) { return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]; }); }
  function mark(id, points) { var s = document.getElementById('v-' + id); s.setAttribute('data-points', String(points)); s.setAttribute('data-state', points > 0 ? 'ok' : 'empty'); if (points === 0) s.querySelector('h2').insertAdjacentHTML('afterend', '<p class="muted">no data in this range</p>'); }
  function fail(id, e) { var s = document.getElementById('v-' + id); s.setAttribute('data-points', '0'); s.setAttribute('data-state', e.denied ? 'denied' : 'error'); s.querySelector('h2').insertAdjacentHTML('afterend', '<p class="err">' + esc(e.message) + '</p>'); }
  function width(el) { return Math.max(320, (el.clientWidth || 600) - 4); }
  function plot(el, opts, data) { opts.width = width(el); opts.height = opts.height || 260; return new uPlot(opts, data, el); }
  function bars(align) { return uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.35, 40], align: align || 0 }) : undefined; }
  var views = {
    fleet: function () {
      return get('/api/v1/fleet/power' + qNoMethod()).then(function (b) {
        var el = document.querySelector('#v-fleet .chart');
        var t = b.points.map(function (p) { return p.t; });
        var tot = b.points.map(function (p) { return p.rapl_w + p.gpu_w + p.bmc_rest_w; });
        document.getElementById('fleet-now').textContent = b.now ? (b.now.total_w / 1000).toFixed(2) + ' kW now' : 'no data';
        plot(el, { series: [{}, { label: 'total W', stroke: '#1d3557', width: 2 }, { label: 'RAPL W', stroke: COLORS[0] }, { label: 'GPU W', stroke: COLORS[1] }, { label: 'rest of wall (BMC) W', stroke: COLORS[2] }] },
          [t, tot, b.points.map(function (p) { return p.rapl_w; }), b.points.map(function (p) { return p.gpu_w; }), b.points.map(function (p) { return p.bmc_rest_w; })]);
        mark('fleet', t.length);
      });
    },
    host: function () {
      var sel = document.getElementById('host');
      return get('/api/v1/hosts').then(function (h) {
        if (!sel.options.length) h.hosts.forEach(function (x) { sel.add(new Option(x.host + ' (' + x.hardware_class + ')', x.host)); });
        if (!sel.value) { mark('host', 0); return; }
        return get('/api/v1/hosts/' + encodeURIComponent(sel.value) + '/power' + q()).then(function (b) {
          var el = document.querySelector('#v-host .chart'); el.innerHTML = '';
          var acc = b.times.map(function () { return 0; });
          var series = [{}], data = [b.times];
          b.series.forEach(function (s, i) {
            acc = acc.map(function (v, k) { return v + s.watts[k]; });
            series.push({ label: s.vm_name + (s.tenant ? ' · ' + s.tenant : ''), stroke: COLORS[i % COLORS.length], fill: COLORS[i % COLORS.length] + '55' });
            data.push(acc.slice());
          });
          // stacked: draw the top band first so each fill covers the ones below it
          var order = [0].concat(series.slice(1).map(function (_, i) { return series.length - 1 - i; }));
          plot(el, { series: order.map(function (i) { return series[i]; }) }, order.map(function (i) { return data[i]; }));
          mark('host', b.times.length * b.series.length);
        });
      });
    },
    tenants: function () {
      return get('/api/v1/tenants-energy' + q()).then(function (b) {
        var el = document.querySelector('#v-tenants .chart');
        var x = b.hours.map(function (h) { return Date.parse(h.replace(' ', 'T') + 'Z') / 1000; });
        plot(el, { scales: x.length === 1 ? { x: { range: [x[0] - 3600, x[0] + 3600] } } : {}, series: [{}].concat(b.tenants.map(function (t, i) { return { label: t.tenant, stroke: COLORS[i % COLORS.length], width: 2, points: { show: true, size: 8 } }; })) }, [x].concat(b.tenants.map(function (t) { return t.kwh; })));
        mark('tenants', b.hours.length * b.tenants.length);
      });
    },
    fairness: function () {
      return get('/api/v1/fairness' + q()).then(function (b) {
        var el = document.querySelector('#v-fairness .chart');
        var names = b.tenants.map(function (t) { return t.tenant; });
        var x = names.map(function (_, i) { return i; });
        plot(el, { scales: { x: { time: false } }, axes: [{ values: function (u, v) { return v.map(function (i) { return names[i] || ''; }); } }, {}],
          series: [{}, { label: b.method + ' kWh', stroke: COLORS[0], fill: COLORS[0] + 'aa', paths: bars(-1) }, { label: 'cpu_share kWh', stroke: COLORS[1], fill: COLORS[1] + 'aa', paths: bars(1) }] },
          [x, b.tenants.map(function (t) { return t.learned.facility_kwh; }), b.tenants.map(function (t) { return t.cpu_share.facility_kwh; })]);
        var cur = b.currency || '';
        document.querySelector('#v-fairness .table').innerHTML = '<table><thead><tr><th>tenant</th><th class="n">' + esc(b.method) + ' kWh</th><th class="n">cpu_share kWh</th><th class="n">difference</th><th class="n">' + esc(cur) + '</th></tr></thead><tbody>' +
          b.tenants.map(function (t) { var d = t.difference; return '<tr><td>' + esc(t.tenant) + '</td><td class="n">' + t.learned.facility_kwh.toFixed(4) + '</td><td class="n">' + t.cpu_share.facility_kwh.toFixed(4) + '</td><td class="n ' + (d.kwh > 0 ? 'pos' : 'neg') + '">' + (d.kwh > 0 ? '+' : '') + d.kwh.toFixed(4) + ' kWh' + (d.pct === null ? '' : ' (' + (d.pct * 100).toFixed(1) + ' %)') + '</td><td class="n">' + (d.cost === null ? '-' : (d.cost > 0 ? '+' : '') + d.cost.toFixed(4)) + '</td></tr>'; }).join('') +
          '</tbody></table><p class="muted">difference = cpu_share − learned: &gt; 0 means the tenant pays for others\\' energy under CPU-time share.</p>';
        mark('fairness', b.tenants.length);
      });
    },
    carbon: function () {
      return get('/api/v1/carbon' + q()).then(function (b) {
        var note = document.querySelector('#v-carbon .note');
        if (!b.configured) { note.textContent = b.message; mark('carbon', 0); return; }
        note.textContent = 'grid intensity: ' + b.source;
        var names = b.tenants.map(function (t) { return t.tenant; });
        plot(document.querySelector('#v-carbon .chart'), { scales: { x: { time: false } }, axes: [{ values: function (u, v) { return v.map(function (i) { return names[i] || ''; }); } }, {}],
          series: [{}, { label: 'gCO2e (' + b.method + ')', stroke: COLORS[2], fill: COLORS[2] + 'aa', paths: bars(-1) }, { label: 'gCO2e (cpu_share)', stroke: COLORS[1], fill: COLORS[1] + '66', paths: bars(1) }] },
          [names.map(function (_, i) { return i; }), b.tenants.map(function (t) { return t.co2e_g; }), b.tenants.map(function (t) { return t.cpu_share_co2e_g; })]);
        mark('carbon', b.tenants.length);
      });
    },
    models: function () {
      return get('/api/models').then(function (b) {
        document.querySelector('#v-models .table').innerHTML = '<p class="muted">training: ' + esc(b.training) + '</p><table><thead><tr><th>hardware class</th><th>status</th><th>version</th><th class="n">age</th><th class="n">residual W (rapl)</th><th class="n">drift</th><th class="n">cold start</th><th class="n">intervals</th></tr></thead><tbody>' +
          b.models.map(function (m) { return '<tr><td>' + esc(m.hardware_class) + '</td><td>' + esc(m.status) + '</td><td>' + (m.version === null ? '-' : 'v' + m.version) + '</td><td class="n">' + (m.age_s === null ? '-' : Math.round(m.age_s / 60) + ' min') + '</td><td class="n">' + (m.residual_rms_w ? m.residual_rms_w.rapl.toFixed(1) : '-') + '</td><td class="n">' + (m.drift_ratio === null ? '-' : m.drift_ratio.toFixed(2) + '×') + '</td><td class="n">' + (m.cold_start_share === null ? '-' : (100 * m.cold_start_share).toFixed(0) + ' %') + '</td><td class="n">' + m.stored_intervals + '</td></tr>'; }).join('') + '</tbody></table>';
        mark('models', b.models.length);
      });
    },
    pipeline: function () {
      return get('/api/v1/pipeline' + qNoMethod()).then(function (b) {
        var c = b.collector;
        document.querySelector('#v-pipeline .table').innerHTML = '<p>' + esc(b.mode) + ' · ' + b.intervals_stored + ' host intervals stored in range' + (c ? ' · frames accepted ' + c.framesAccepted + ', rejected ' + c.framesRejected + ', dead letters ' + c.deadLetters + ', store failures ' + c.storeFailures + ', lag ' + c.lag_seconds.toFixed(1) + ' s' : '') + '</p>' +
          '<table><thead><tr><th>host</th><th class="n">newest interval, s ago</th></tr></thead><tbody>' + b.hosts.map(function (h) { return '<tr><td>' + esc(h.host) + '</td><td class="n">' + h.lag_s.toFixed(0) + '</td></tr>'; }).join('') + '</tbody></table>' +
          '<h3>anomalies</h3><table><tbody>' + (b.anomalies.map(function (a) { return '<tr><td>' + esc(a.code) + '</td><td class="n">' + a.count + '</td></tr>'; }).join('') || '<tr><td>none</td></tr>') + '</tbody></table>';
        mark('pipeline', b.hosts.length + b.anomalies.length);
      });
    },
    caps: function () {
      return get('/api/v1/caps').then(function (b) {
        var note = document.querySelector('#v-caps .note');
        if (!b.configured || !b.caps.length) { note.textContent = b.message; mark('caps', 0); return; }
        var c0 = b.caps[0];
        note.textContent = 'as of ' + c0.as_of + ' (newest attributed interval), horizon ' + c0.horizon_s + ' s, method ' + c0.method + (c0.margin_w ? ', margin ' + c0.margin_w + ' W' : '') + '; plan SLA cost ' + c0.plan.sla_cost_vm_s.toFixed(2) + ' VM·s';
        function w(x) { return x.toFixed(0) + ' W'; }
        function gauge(c) {
          var top = Math.max(c.cap_w, c.predicted_peak_w, c.power_w) || 1;
          return '<div class="gauge" title="now ' + w(c.power_w) + ', cap ' + w(c.cap_w) + ', predicted peak ' + w(c.predicted_peak_w) + '"><i class="' + (c.power_w > c.cap_w ? 'over' : '') + '" style="width:' + (100 * c.power_w / top).toFixed(1) + '%"></i><b style="left:' + (100 * c.cap_w / top).toFixed(1) + '%"></b></div>';
        }
        function crossing(c) {
          if (c.predicted_cross_s < 0) return '<span class="neg">not within ' + c.horizon_s + ' s</span>';
          return '<span class="pos">' + (c.predicted_cross_s === 0 ? 'now' : 'in ' + c.predicted_cross_s + ' s') + '</span> <span class="muted">' + esc(c.predicted_cross_at.slice(11, 19)) + ' UTC</span>';
        }
        function action(a) {
          var until = a.until_s === null ? 'until lifted' : 'to ' + a.until_s.toFixed(1) + ' s';
          var what = a.kind === 'migrate'
            ? 'migrate ' + esc(a.vm) + ' ' + esc(a.host) + ' → ' + esc(a.to_host) + ' by ' + esc(a.mode) + (a.mode === 'pre-copy-throttled' ? ' at ' + (100 * a.bandwidth_fraction).toFixed(0) + ' % of the link' : '') + ', from ' + a.start_s.toFixed(1) + ' s ' + until
            : 'throttle ' + esc(a.vm) + ' on ' + esc(a.host) + ' by ' + a.shed_w.toFixed(1) + ' W (' + esc(a.method) + ' ' + a.fraction.toFixed(2) + '), from ' + a.start_s.toFixed(1) + ' s ' + until;
          return '<li title="' + esc(a.reason) + '">' + what + '</li>';
        }
        document.querySelector('#v-caps .table').innerHTML = '<table><thead><tr><th>cap</th><th>hosts</th><th class="n">now</th><th class="n">cap</th><th></th><th class="n">predicted peak</th><th>crosses</th><th>plan</th><th>actions</th></tr></thead><tbody>' +
          b.caps.map(function (c) {
            return '<tr data-cap="' + esc(c.cap) + '" data-safe="' + (c.plan.safe ? '1' : '0') + '"><td>' + esc(c.cap) + ' <span class="muted">' + esc(c.kind) + '</span></td><td>' + esc(c.hosts.join(', ')) + '</td><td class="n ' + (c.power_w > c.cap_w ? 'pos' : '') + '">' + w(c.power_w) + '</td><td class="n">' + w(c.cap_w) + '</td><td>' + gauge(c) + '</td><td class="n">' + w(c.predicted_peak_w) + '</td><td>' + crossing(c) + '</td>' +
              '<td class="' + (c.plan.safe ? 'neg' : 'pos') + '">' + (c.plan.safe ? 'safe' : 'NOT safe') + ', peak ' + w(c.plan.peak_w) + '</td><td>' + (c.plan.actions.length ? '<ul class="acts">' + c.plan.actions.map(action).join('') + '</ul>' : '<span class="muted">none</span>') + '</td></tr>';
          }).join('') + '</tbody></table>';
        mark('caps', b.caps.length);
      });
    }
  };
  function load() {
    var names = only && views[only] ? [only] : Object.keys(views);
    return Promise.all(names.map(function (n) { return views[n]().catch(function (e) { fail(n, e); }); })).then(function () { document.body.setAttribute('data-loaded', '1'); });
  }
  methodSel.addEventListener('change', function () { params.set('method', methodSel.value); location.search = params.toString(); });
  document.getElementById('host').addEventListener('change', function () { document.querySelector('#v-host .chart').innerHTML = ''; views.host(); });
  document.getElementById('range').textContent = params.get('from') ? params.get('from') + ' → ' + (params.get('to') || 'now') : 'latest hour (energy views: latest 7 days)';
  load();
})();
`;

@Controller()
export class DashboardPageController {
  /** The page itself names no data: the views' data come from the API, each route with its own access. */
  @Get('dashboard')
  @Access('tenant-data')
  @Header('Content-Type', 'text/html; charset=utf-8')
  page(): string {
    return PAGE;
  }

  /** The charting library and the page script (public code, no data). */
  @Get('assets/uplot.js')
  @Access('open')
  @Header('Content-Type', 'application/javascript; charset=utf-8')
  @Header('Cache-Control', 'public, max-age=3600')
  uplotJs(): string {
    return asset('uplot.js')!.body;
  }

  @Get('assets/uplot.css')
  @Access('open')
  @Header('Content-Type', 'text/css; charset=utf-8')
  @Header('Cache-Control', 'public, max-age=3600')
  uplotCss(): string {
    return asset('uplot.css')!.body;
  }

  @Get('assets/dashboard.js')
  @Access('open')
  @Header('Content-Type', 'application/javascript; charset=utf-8')
  dashboardJs(): string {
    return asset('dashboard.js')!.body;
  }
}

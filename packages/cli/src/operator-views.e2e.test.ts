// What operators look at, on a real demo data directory through the built CLI: bills with tariff, PUE
// and carbon equal to the stored attributions to the joule; `wattsplit serve` (REST API, OpenAPI,
// 4xx naming the field); the dashboard in headless Chromium, one screenshot per view, each view's
// chart holding data. Screenshots go to $WATTSPLIT_SCREENSHOTS_DIR (default a temp dir, printed).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import { ClickHouseServerStore } from '@wattsplit/store';

const main = join(dirname(fileURLToPath(import.meta.url)), 'main.js');
const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const data = (f: string) => join(repo, 'docs', 'data', f);
const run = (args: string[]) => spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20 });

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'wattsplit-ops-'));
  execFileSync(process.execPath, [main, 'demo', '--hosts', '2', '--vms', '4', '--warmup-minutes', '2', '--minutes', '2', '--seed', '5', '--data-dir', dir, '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
});
after(() => rmSync(dir, { recursive: true, force: true }));

function sql(query: string): Record<string, unknown>[] {
  const r = run(['query', '--data-dir', dir, '--format', 'json', query]);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Record<string, unknown>);
}

interface Amounts {
  joules: number;
  kwh: number;
  facility_kwh: number;
  cost: number | null;
  co2e_g: number | null;
}
interface Report {
  method: string;
  total_joules: number;
  tenants: (Amounts & { tenant: string; vms?: unknown[] })[];
  fairness?: { tenants: { tenant: string; learned: Amounts; cpu_share: Amounts; difference: { kwh: number } }[] };
}

const PRICED = ['--tariff', data('tariff-tou.json'), '--pue', '1.3', '--intensity', data('grid-intensity-synthetic.csv'), '--intensity-repeat-weekly', '--regions', data('regions.txt')];

test('bill --all --json: totals equal the stored attributions to the joule, per tenant and method, with kWh, cost, gCO2e and the cpu_share comparison', () => {
  for (const method of ['additive_model', 'cpu_share']) {
    const r = run(['bill', '--all', '--json', '--method', method, '--data-dir', dir, ...PRICED]);
    assert.equal(r.status, 0, r.stderr);
    const rep = JSON.parse(r.stdout) as Report;
    const stored = sql(`SELECT tenant, sum(dynamic_j + static_j) AS j FROM attributions FINAL WHERE kind = 'vm' AND method = '${method}' GROUP BY tenant ORDER BY tenant`);
    assert.deepEqual(rep.tenants.map((t) => t.tenant), stored.map((s) => s.tenant));
    for (const s of stored) {
      const t = rep.tenants.find((x) => x.tenant === s.tenant)!;
      assert.ok(Math.abs(t.joules - Number(s.j)) < 1, `${method} ${String(s.tenant)}: bill ${t.joules} J vs stored ${String(s.j)} J`);
      assert.ok(Math.abs(t.facility_kwh - 1.3 * t.kwh) < 1e-9);
      assert.ok(t.cost !== null && t.cost > 0 && t.co2e_g !== null && t.co2e_g > 0, JSON.stringify(t));
    }
    const storedTotal = stored.reduce((a, s) => a + Number(s.j), 0);
    assert.ok(Math.abs(rep.total_joules - storedTotal) < 1, `total ${rep.total_joules} vs ${storedTotal}`);
    if (method === 'additive_model') {
      assert.ok(rep.fairness && rep.fairness.tenants.length === rep.tenants.length);
      const cpu = sql(`SELECT sum(dynamic_j + static_j) AS j FROM attributions FINAL WHERE kind = 'vm' AND method = 'cpu_share'`)[0]!;
      const cpuBilled = rep.fairness.tenants.reduce((a, f) => a + f.cpu_share.joules, 0);
      assert.ok(Math.abs(cpuBilled - Number(cpu.j)) < 1, 'the comparison bills the stored cpu_share attributions too');
      for (const f of rep.fairness.tenants) assert.ok(Math.abs(f.difference.kwh - (f.cpu_share.facility_kwh - f.learned.facility_kwh)) < 1e-12);
    } else assert.equal(rep.fairness, undefined);
  }
});

test('bill formats: table with the fairness report, CSV, a printable HTML statement per tenant with a line per VM', () => {
  const table = run(['bill', '--data-dir', dir, ...PRICED]);
  assert.equal(table.status, 0, table.stderr);
  assert.match(table.stdout, /method additive_model/);
  assert.match(table.stdout, /Fairness: the same bills under cpu_share/);
  assert.match(table.stdout, /Under cpu_share, .* paid [\d.]+ kWh of energy used by /);
  const csv = run(['bill', '--csv', '--data-dir', dir, '--price-per-kwh', '0.25']);
  assert.equal(csv.status, 0, csv.stderr);
  const lines = csv.stdout.trim().split('\n');
  assert.match(lines[0]!, /^tenant,method,joules,kwh,facility_kwh,cost,co2e_g,cpu_share_kwh,/);
  assert.ok(lines.length > 2);
  const out = join(dir, 'acme.html');
  const html = run(['bill', '--tenant', 'acme-ai', '--html', '--out', out, '--data-dir', dir, ...PRICED]);
  assert.equal(html.status, 0, html.stderr);
  const doc = readFileSync(out, 'utf8');
  assert.match(doc, /Energy statement: acme-ai/);
  assert.match(doc, /Amount due/);
  assert.match(doc, /By VM/);
  assert.match(doc, /Compared with CPU-time share/);
  assert.match(doc, /break-after:page/);
});

test('bill refuses inputs it cannot use, naming the flag or the file and line (exit 2)', () => {
  const noRegion = run(['bill', '--data-dir', dir, '--intensity', data('grid-intensity-synthetic.csv')]);
  assert.equal(noRegion.status, 2);
  assert.match(noRegion.stderr, /--intensity needs the region of every host/);
  const strict = run(['bill', '--data-dir', dir, '--intensity', data('grid-intensity-synthetic.csv'), '--regions', data('regions.txt')]);
  assert.equal(strict.status, 2, 'hours outside the synthetic week need --intensity-repeat-weekly');
  assert.match(strict.stderr, /no value for region XX-\w+ in the hour .* --intensity-repeat-weekly/);
  const tariff = join(dir, 'bad-tariff.json');
  writeFileSync(tariff, JSON.stringify({ default_price_per_kwh: 0.2, periods: [{ days: 'mon-fri', from: '25:00', to: '08:00', price_per_kwh: 0.1 }] }));
  const t = run(['bill', '--data-dir', dir, '--tariff', tariff]);
  assert.equal(t.status, 2);
  assert.match(t.stderr, /periods\[0\]: from "25:00": expected HH:MM/);
  const pue = run(['bill', '--data-dir', dir, '--pue', '0.8']);
  assert.equal(pue.status, 2);
  assert.match(pue.stderr, /--pue=0.8: expected a number from 1 to 5/);
  const both = run(['bill', '--data-dir', dir, '--tenant', 'acme-ai', '--all']);
  assert.equal(both.status, 2);
});

/** Starts `wattsplit serve` on a free port; resolves with its base URL. */
async function startServe(args: string[]): Promise<{ child: ChildProcess; base: string }> {
  const child = spawn(process.execPath, [main, 'serve', '--data-dir', dir, '--port', '0', '--log-level', 'warn', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const base = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`serve did not print its URL: ${out} ${err}`)), 60_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /serving the dashboard at (http:\/\/[^/\s]+)\/dashboard/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    });
    child.on('exit', (c) => reject(new Error(`serve exited ${c}: ${err}`)));
  });
  return { child, base };
}

async function stop(child: ChildProcess): Promise<number | null> {
  const done = new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
  child.kill('SIGTERM');
  return done;
}

test('wattsplit serve: the API over a data directory without a bus; OpenAPI lists every route; bad input is a 4xx naming it', async (t) => {
  // Read before serve opens the directory (an embedded store is one process's at a time).
  const stored = sql(`SELECT sum(dynamic_j + static_j) AS j FROM attributions FINAL WHERE kind = 'vm' AND method = 'additive_model'`)[0]!;
  const { child, base } = await startServe(PRICED);
  t.after(() => void child.kill('SIGKILL'));
  const get = (p: string) => fetch(`${base}${p}`);
  const health = (await (await get('/healthz')).json()) as { mode: string };
  assert.equal(health.mode, 'serve');
  for (const p of ['/api/v1/hosts', '/api/v1/fleet/power', '/api/v1/hosts/hv-00/power', '/api/v1/tenants', '/api/v1/tenants-energy', '/api/v1/fairness', '/api/v1/carbon', '/api/v1/bills', '/api/v1/pipeline', '/api/models', '/api/v1/tenants/acme-ai/statement', '/dashboard', '/', '/assets/uplot.js']) {
    assert.equal((await get(p)).status, 200, p);
  }
  const bills = (await (await get('/api/v1/bills')).json()) as { tenants: Amounts[]; fairness: unknown };
  assert.ok(Math.abs(bills.tenants.reduce((a, x) => a + x.joules, 0) - Number(stored.j)) < 1, 'REST bills = stored attributions');
  const cases: [string, number, RegExp][] = [
    ['/api/v1/hosts/no-such-host/power', 404, /host "no-such-host"/],
    ['/api/v1/tenants/nobody/statement', 404, /tenant "nobody"/],
    ['/api/v1/bills?tenant=nobody', 404, /tenant "nobody"/],
    ['/api/v1/fleet/power?step=0', 400, /step="0"/],
    ['/api/v1/fleet/power?from=yesterday', 400, /from="yesterday"/],
    ['/api/v1/fairness?method=nope', 400, /method="nope"/],
    ['/api/v1/fairness?method=cpu_share', 400, /method="cpu_share" is the baseline/],
    ['/api/v1/tenants-energy?bogus=1', 400, /bogus="1" is not a parameter/],
    ['/api/v1/hosts/hv-00/power?from=2&to=1', 400, /to must be after from/],
  ];
  for (const [p, status, msg] of cases) {
    const r = await get(p);
    assert.equal(r.status, status, p);
    assert.match(((await r.json()) as { message: string }).message, msg, p);
  }
  const doc = (await (await get('/api/openapi.json')).json()) as { openapi: string; paths: Record<string, unknown> };
  assert.match(doc.openapi, /^3\./);
  for (const p of ['/api/v1/bills', '/api/v1/fairness', '/api/v1/carbon', '/api/v1/hosts/{host}/power', '/api/models', '/api/v1/tenants/{tenant}/bill']) assert.ok(doc.paths[p], p);
  // Every documented path answers (not a 404 for a missing route).
  for (const p of Object.keys(doc.paths)) {
    const concrete = p.replace('{host}', 'hv-00').replace('{tenant}', 'acme-ai').replace('{uuid}', 'x').replace('{hardwareClass}', 'xeon-8468');
    const r = await get(concrete);
    assert.ok(r.status !== 404 || /\{hardwareClass\}/.test(p), `${p}: ${r.status}`);
  }
  assert.equal(await stop(child), 0);
});

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p));

test('dashboard in headless Chromium: a screenshot of every view, each chart or table holding data', { skip: CHROMIUM ? false : 'no chromium (apt-get install chromium)', timeout: 300_000 }, async (t) => {
  const { child, base } = await startServe(PRICED);
  t.after(() => void child.kill('SIGKILL'));
  const shots = process.env.WATTSPLIT_SCREENSHOTS_DIR ?? mkdtempSync(join(tmpdir(), 'wattsplit-shots-'));
  mkdirSync(shots, { recursive: true });
  const chrome = (args: string[]) =>
    spawnSync(CHROMIUM!, ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--hide-scrollbars', '--virtual-time-budget=15000', `--user-data-dir=${join(shots, '.profile')}`, ...args], { encoding: 'utf8', timeout: 90_000, maxBuffer: 64 << 20 });
  for (const view of ['fleet', 'host', 'tenants', 'fairness', 'carbon', 'models', 'pipeline']) {
    const url = `${base}/dashboard#${view}`;
    const dom = chrome(['--dump-dom', url]);
    assert.equal(dom.status, 0, dom.stderr);
    const section = new RegExp(`<section id="v-${view}"[^>]*data-points="(\\d+)"[^>]*data-state="(\\w+)"`).exec(dom.stdout);
    assert.ok(section, `${view}: the view rendered (${dom.stdout.slice(0, 300)})`);
    assert.equal(section[2], 'ok', `${view}: state ${section[2]}`);
    assert.ok(Number(section[1]) > 0, `${view}: no data points`);
    if (!['models', 'pipeline'].includes(view)) assert.match(dom.stdout, new RegExp(`id="v-${view}"[\\s\\S]*?<canvas`), `${view}: a chart canvas`);
    const png = join(shots, `dashboard-${view}.png`);
    const shot = chrome([`--screenshot=${png}`, '--window-size=1280,900', url]);
    assert.equal(shot.status, 0, shot.stderr);
    assert.ok(statSync(png).size > 10_000, `${view}: screenshot ${png} is not blank`);
  }
  const all = join(shots, 'dashboard-all.png');
  assert.equal(chrome([`--screenshot=${all}`, '--window-size=1400,2000', `${base}/dashboard`]).status, 0);
  t.diagnostic(`screenshots in ${shots}`);
  assert.equal(await stop(child), 0);
});

/** Every ```sql block of a markdown file, in order. */
export function sqlBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1]!.trim());
}

test('docs/sql.md: every query runs on chDB (a demo data directory), and the cookbook queries return rows', () => {
  const blocks = sqlBlocks(readFileSync(join(repo, 'docs', 'sql.md'), 'utf8'));
  assert.ok(blocks.length >= 8, `${blocks.length} sql blocks`);
  for (const q of blocks) {
    const r = run(['query', '--data-dir', dir, '--format', 'json', q]);
    assert.equal(r.status, 0, `${q}\n${r.stderr}`);
    if (/^SELECT/i.test(q) && !/grid_intensity/.test(q)) assert.ok(r.stdout.trim().length > 0, `no rows: ${q}`);
  }
});

const serverUrl = process.env.WATTSPLIT_TEST_CLICKHOUSE_URL;

test('docs/sql.md: every query runs on the ClickHouse server the tests start (18.16 on Debian)', { skip: serverUrl ? false : 'ClickHouse server unavailable: WATTSPLIT_TEST_CLICKHOUSE_URL is not set (run through scripts/test.mjs)' }, async (t) => {
  const database = `wattsplit_sqldoc_${randomUUID().slice(0, 8)}`;
  const store = new ClickHouseServerStore({ url: serverUrl!, database });
  t.after(async () => {
    await store.query(`DROP DATABASE IF EXISTS ${database}`).catch(() => undefined);
    await store.close();
  });
  await store.init();
  t.diagnostic(`server ${store.capabilities?.version ?? '?'}`);
  // Over HTTP as written (DDL and INSERT too), in the migrated database.
  for (const q of sqlBlocks(readFileSync(join(repo, 'docs', 'sql.md'), 'utf8'))) {
    const r = await fetch(`${serverUrl!.replace(/\/$/, '')}/?database=${database}`, { method: 'POST', body: q });
    assert.ok(r.ok, `${q}\n${r.status}: ${await r.text()}`);
  }
});

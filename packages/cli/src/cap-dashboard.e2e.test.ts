// The dashboard's power-cap panel on the shipped process: `wattsplit demo --caps FILE --serve` (built CLI,
// real logger) runs the collector's live cap watch, prints its last statuses in the --json report and keeps
// serving; GET /api/v1/caps serves the same statuses (power now, cap, forecast peak and crossing, the plan
// and its actions), and headless Chromium shows them on /dashboard#caps, one row per cap, as the API says.
// `wattsplit serve` (no watch in that process) answers configured: false and the panel says how to start one.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const main = join(dirname(fileURLToPath(import.meta.url)), 'main.js');
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p));

interface ReportStatus {
  scopeId: string;
  scopeKind: string;
  hostIds: string[];
  capW: number;
  powerW: number;
  predictedPeakW: number;
  predictedCrossS: number;
  planSafe: boolean;
  planPeakW: number;
  planSlaCost: number;
  horizonS: number;
  tUnixNs: number;
  actions: { kind: string; vmUuid: string; hostId: string; toHostId: string; mode: string }[];
}
interface ApiCap {
  cap: string;
  kind: string;
  hosts: string[];
  as_of: string;
  cap_w: number;
  power_w: number;
  predicted_peak_w: number;
  predicted_cross_s: number;
  predicted_cross_at: string | null;
  horizon_s: number;
  plan: { safe: boolean; peak_w: number; sla_cost_vm_s: number; actions: { kind: string; vm: string; host: string; to_host?: string; mode?: string; method?: string }[] };
}

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'wattsplit-cap-dashboard-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Starts the command; resolves with the base URL it prints and everything it wrote to stdout so far. */
async function startServing(args: string[]): Promise<{ child: ChildProcess; base: string; stdout: () => string; stderr: () => string }> {
  const child = spawn(process.execPath, [main, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const base = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no URL printed in 180 s: ${out.slice(-1000)} ${err.slice(-2000)}`)), 180_000);
    const look = () => {
      const m = /serving the dashboard at (http:\/\/[^/\s]+)\/dashboard/.exec(out + err);
      if (m) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    };
    child.stdout.on('data', look);
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      look();
    });
    child.on('exit', (c) => {
      clearTimeout(t);
      reject(new Error(`${args[0]} exited ${c}: ${err.slice(-2000)}`));
    });
  });
  return { child, base, stdout: () => out, stderr: () => err };
}

async function stop(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const done = new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
  child.kill('SIGTERM');
  return done;
}

function chrome(profile: string, args: string[]): SpawnSyncReturns<string> {
  return spawnSync(CHROMIUM!, ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--hide-scrollbars', '--virtual-time-budget=15000', `--user-data-dir=${profile}`, ...args], {
    encoding: 'utf8',
    timeout: 90_000,
    maxBuffer: 64 << 20,
  });
}

/** The text of an HTML fragment (tags dropped, entities of the page's esc() undone, spaces collapsed). */
const text = (html: string): string =>
  html
    .replace(/<[^>]+>/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ')
    .trim();

test('demo --caps --serve: GET /api/v1/caps serves the watch statuses of the report; the dashboard cap panel shows each cap as the API says', { timeout: 300_000 }, async (t) => {
  const caps = join(dir, 'caps.json');
  // hv-01's own cap and a rack of both hosts far below what they draw (over now: the plan cannot keep it);
  // hv-00's cap well above it.
  writeFileSync(caps, JSON.stringify({ hostCapsW: { 'hv-00': 5000, 'hv-01': 1200 }, groups: [{ groupId: 'rack-1', kind: 'rack', capW: 300, members: ['hv-00', 'hv-01'], otherW: 25 }], horizonS: 60, windowS: 10 }));
  const demo = await startServing(['demo', '--hosts', '2', '--vms', '4', '--warmup-minutes', '1', '--minutes', '2', '--seed', '3', '--data-dir', join(dir, 'data'), '--json', '--log-level', 'warn', '--caps', caps, '--serve', '--port', '0']);
  t.after(() => void demo.child.kill('SIGKILL'));
  // The report is printed before the server starts.
  const report = JSON.parse(demo.stdout().trim().split('\n').pop()!) as { caps: ReportStatus[]; conservation_ok: boolean };
  assert.equal(report.conservation_ok, true);
  assert.deepEqual(report.caps.map((s) => s.scopeId).sort(), ['hv-00', 'hv-01', 'rack-1']);
  const rackR = report.caps.find((s) => s.scopeId === 'rack-1')!;
  assert.ok(rackR.powerW > 300 && rackR.predictedCrossS === 0, `the rack is over its cap now: ${JSON.stringify(rackR)}`);

  // The API: the same statuses (the watch has stopped: nothing more is attributed after the report).
  const res = await fetch(`${demo.base}/api/v1/caps`);
  assert.equal(res.status, 200);
  const api = (await res.json()) as { configured: boolean; evaluated: boolean; caps: ApiCap[] };
  assert.equal(api.configured, true);
  assert.equal(api.evaluated, true);
  assert.deepEqual(api.caps.map((c) => c.cap), report.caps.map((s) => s.scopeId));
  for (const s of report.caps) {
    const c = api.caps.find((x) => x.cap === s.scopeId)!;
    assert.equal(c.kind, s.scopeKind);
    assert.deepEqual(c.hosts, s.hostIds);
    assert.equal(c.cap_w, s.capW);
    assert.equal(c.power_w, s.powerW);
    assert.equal(c.predicted_peak_w, s.predictedPeakW);
    assert.equal(c.predicted_cross_s, s.predictedCrossS);
    assert.equal(c.horizon_s, 60);
    assert.equal(c.plan.safe, s.planSafe);
    assert.equal(c.plan.peak_w, s.planPeakW);
    assert.equal(c.plan.sla_cost_vm_s, s.planSlaCost);
    assert.equal(Date.parse(c.as_of), Math.floor(s.tUnixNs / 1e6));
    assert.equal(c.predicted_cross_at === null ? null : Date.parse(c.predicted_cross_at), s.predictedCrossS < 0 ? null : Math.floor(s.tUnixNs / 1e6) + s.predictedCrossS * 1000);
    assert.deepEqual(
      c.plan.actions.map((a) => [a.kind, a.vm, a.host, a.to_host ?? '', a.kind === 'migrate' ? a.mode : a.method]),
      s.actions.map((a) => [a.kind, a.vmUuid, a.hostId, a.toHostId, a.mode]),
    );
  }
  const rack = api.caps.find((c) => c.cap === 'rack-1')!;
  assert.ok(rack.plan.actions.length > 0, 'the advisor acts on the rack even where it cannot keep it');
  assert.equal((await fetch(`${demo.base}/api/v1/caps?x=1`)).status, 400, 'an unknown parameter is a 400');
  const doc = (await (await fetch(`${demo.base}/api/openapi.json`)).json()) as { paths: Record<string, unknown> };
  assert.ok(doc.paths['/api/v1/caps'], 'documented in OpenAPI');

  if (!CHROMIUM) {
    t.diagnostic('no chromium: the dashboard part is skipped (apt-get install chromium)');
  } else {
    const shots = process.env.WATTSPLIT_SCREENSHOTS_DIR ?? join(dir, 'shots');
    mkdirSync(shots, { recursive: true });
    const dom = chrome(join(dir, '.profile'), ['--dump-dom', `${demo.base}/dashboard#caps`]);
    assert.equal(dom.status, 0, dom.stderr);
    const section = /<section id="v-caps"[^>]*data-points="(\d+)"[^>]*data-state="(\w+)"[^>]*>([\s\S]*?)<\/section>/.exec(dom.stdout);
    assert.ok(section, `the caps view rendered: ${dom.stdout.slice(0, 500)}`);
    assert.equal(section[2], 'ok');
    assert.equal(Number(section[1]), api.caps.length, 'one point per cap');
    const rows = [...section[3]!.matchAll(/<tr data-cap="([^"]+)" data-safe="([01])">([\s\S]*?)<\/tr>/g)];
    assert.deepEqual(rows.map((r) => r[1]), api.caps.map((c) => c.cap), 'a row per cap, in the API order');
    for (const [, id, safe, cells] of rows) {
      const c = api.caps.find((x) => x.cap === id)!;
      const shown = text(cells!);
      assert.equal(safe, c.plan.safe ? '1' : '0');
      assert.ok(shown.startsWith(`${c.cap} ${c.kind} ${c.hosts.join(', ')} ${c.power_w.toFixed(0)} W ${c.cap_w.toFixed(0)} W ${c.predicted_peak_w.toFixed(0)} W`), `${id}: ${shown}`);
      if (c.predicted_cross_s < 0) assert.match(shown, new RegExp(`not within ${c.horizon_s} s`), `${id}: ${shown}`);
      else assert.ok(shown.includes(`${c.predicted_cross_s === 0 ? 'now' : `in ${c.predicted_cross_s} s`} ${c.predicted_cross_at!.slice(11, 19)} UTC`), `${id}: ${shown}`);
      assert.ok(shown.includes(`${c.plan.safe ? 'safe' : 'NOT safe'}, peak ${c.plan.peak_w.toFixed(0)} W`), `${id}: ${shown}`);
      // Every action of the plan touching the cap, with its VM, hosts and mode.
      const items = [...cells!.matchAll(/<li[^>]*>([\s\S]*?)<\/li>/g)].map((m) => text(m[1]!));
      assert.equal(items.length, c.plan.actions.length, `${id}: ${shown}`);
      c.plan.actions.forEach((a, i) => {
        const want = a.kind === 'migrate' ? `migrate ${a.vm} ${a.host} → ${a.to_host!} by ${a.mode!}` : `throttle ${a.vm} on ${a.host} by `;
        assert.ok(items[i]!.startsWith(want), `${id} action ${i}: ${items[i]!} (want ${want})`);
      });
      if (c.plan.actions.length === 0) assert.match(shown, / none$/);
    }
    assert.match(text(section[3]!), new RegExp(`horizon 60 s, method additive_model; plan SLA cost ${rackR.planSlaCost.toFixed(2)} VM·s`));
    const png = join(shots, 'dashboard-caps.png');
    assert.equal(chrome(join(dir, '.profile'), [`--screenshot=${png}`, '--window-size=1400,900', `${demo.base}/dashboard#caps`]).status, 0);
    assert.ok(statSync(png).size > 10_000, `screenshot ${png} is not blank`);
    t.diagnostic(`screenshot: ${png}`);
  }
  assert.equal(await stop(demo.child), 0, demo.stderr().slice(-2000));

  // `wattsplit serve` on the same data directory: no watch in that process.
  const serve = await startServing(['serve', '--data-dir', join(dir, 'data'), '--port', '0', '--log-level', 'warn']);
  t.after(() => void serve.child.kill('SIGKILL'));
  const none = (await (await fetch(`${serve.base}/api/v1/caps`)).json()) as { configured: boolean; message: string; caps: unknown[] };
  assert.equal(none.configured, false);
  assert.deepEqual(none.caps, []);
  assert.match(none.message, /--caps FILE/);
  if (CHROMIUM) {
    const dom = chrome(join(dir, '.profile'), ['--dump-dom', `${serve.base}/dashboard#caps`]);
    assert.equal(dom.status, 0, dom.stderr);
    const section = /<section id="v-caps"[^>]*data-points="(\d+)"[^>]*data-state="(\w+)"[^>]*>([\s\S]*?)<\/section>/.exec(dom.stdout);
    assert.ok(section && section[2] === 'empty' && section[1] === '0', `serve: the caps view is empty: ${section?.[0] ?? dom.stdout.slice(0, 500)}`);
    assert.match(text(section[3]!), /no power-cap watch here: start the collector \(or the demo\) with --caps FILE/);
  }
  assert.equal(await stop(serve.child), 0);
});

test('GET /api/v1/caps: a tenant token gets 403 (fleet metadata, scope admin), an admin token 200', { timeout: 300_000 }, async (t) => {
  const tokens = join(dir, 'tokens');
  writeFileSync(tokens, 'admin adm-secret-0123456789abcdef0123 ops\ntenant:acme-ai acme-secret-0123456789abcdef0123 acme\n');
  execFileSync(process.execPath, [main, 'demo', '--hosts', '1', '--vms', '2', '--warmup-minutes', '0', '--minutes', '1', '--seed', '4', '--data-dir', join(dir, 'data2'), '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const serve = await startServing(['serve', '--data-dir', join(dir, 'data2'), '--port', '0', '--log-level', 'warn', '--api-tokens-file', tokens]);
  t.after(() => void serve.child.kill('SIGKILL'));
  const get = (token: string) => fetch(`${serve.base}/api/v1/caps`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal((await get('acme-secret-0123456789abcdef0123')).status, 403);
  assert.equal((await get('adm-secret-0123456789abcdef0123')).status, 200);
  assert.equal(await stop(serve.child), 0);
});

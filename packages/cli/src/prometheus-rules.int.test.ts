// deploy/prometheus against the processes it watches: a real `wattsplit agent --metrics-port 0` process
// sending to a gateway (with its metrics endpoint) on an in-process bus that an embedded collector (REST
// port, training on) consumes. Each /metrics is scraped; every wattsplit_* metric named in an alert
// expression must be a family one of them exposes, and each carries process_* / nodejs_* defaults and
// wattsplit_build_info with its role. promtool (built from the Prometheus Go module by
// scripts/prometheus-tools.sh, once, into .tools/bin) checks the rules and the scrape config and runs the
// rule unit tests (deploy/prometheus/wattsplit-alerts.test.yml); those tests skip, saying why, without Go.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedCollector } from '@wattsplit/collector';
import { serveGatewayHttp, startGateway } from '@wattsplit/gateway';
import { InProcessBus, memoryLogger } from '@wattsplit/wire';
import { REPO_ROOT } from './agent-artefact.fixture.js';

const promDir = join(REPO_ROOT, 'deploy/prometheus');
const main = join(REPO_ROOT, 'packages/cli/dist/main.js');

function promtool(): string | { skip: string } {
  const t = spawnSync('sh', [join(REPO_ROOT, 'scripts/prometheus-tools.sh')], { encoding: 'utf8', timeout: 1_800_000 });
  if (t.status === 3) return { skip: 'Go is not installed: promtool is built from the Prometheus Go module (scripts/prometheus-tools.sh)' };
  if (t.status !== 0) return { skip: `scripts/prometheus-tools.sh failed (no Go module proxy?): ${(t.stderr ?? '').slice(-500)}` };
  return join(t.stdout.trim(), 'promtool');
}

/** The `expr:` of every rule, one-line or a `|` block (the shapes wattsplit-alerts.yml uses). */
export function ruleExpressions(yaml: string): { alert: string; expr: string }[] {
  const lines = yaml.split('\n');
  const out: { alert: string; expr: string }[] = [];
  let alert = '';
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const a = /^\s*- alert:\s*(\S+)/.exec(line);
    if (a) alert = a[1]!;
    const m = /^(\s*)expr:\s*(.*)$/.exec(line);
    if (!m) continue;
    if (m[2]!.trim() !== '|') {
      out.push({ alert, expr: m[2]!.trim() });
      continue;
    }
    const indent = m[1]!.length;
    const body: string[] = [];
    while (i + 1 < lines.length && (lines[i + 1]!.trim() === '' || lines[i + 1]!.search(/\S/) > indent)) body.push(lines[++i]!.trim());
    out.push({ alert, expr: body.join(' ').trim() });
  }
  return out;
}

/** Family names a scrape declares (`# TYPE`), plus sample names (histogram parts included). */
function families(text: string): Set<string> {
  const s = new Set<string>();
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) /.exec(line);
    if (t) s.add(t[1]!);
    else if (line && !line.startsWith('#')) s.add(line.split(/[{ ]/)[0]!);
  }
  return s;
}

async function scrape(url: string): Promise<string> {
  const r = await fetch(url);
  assert.equal(r.status, 200, url);
  assert.match(r.headers.get('content-type') ?? '', /^text\/plain;.*version=0\.0\.4/);
  return r.text();
}

test('every metric in the alert rules is exposed by a real agent, gateway or collector, each with process defaults and build info', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-prom-'));
  const bus = new InProcessBus({ partitions: 1 });
  const collector = await startEmbeddedCollector({
    dataDir: join(dir, 'data'),
    bus,
    logger: memoryLogger(),
    http: { port: 0 },
    models: { training: { checkIntervalS: 86_400, minIntervals: 30, leaseSettleMs: 0, inWorker: false } },
  });
  const gw = await startGateway({ producer: bus.producer(), auth: { mode: 'none' } });
  const gwHttp = await serveGatewayHttp(gw, { port: 0 });
  const child = spawn(process.execPath, [main, 'agent', '--no-nvml', '--no-perf', '--no-libvirt', '--insecure', '--interval-ms', '200', '--gateway', gw.address, '--spool-dir', join(dir, 'spool'), '--host-id', 'hv-prom', '--metrics-port', '0', '--log-level', 'info'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  t.after(async () => {
    child.kill('SIGKILL');
    await gwHttp.close();
    await gw.close(0);
    await collector.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const until = Date.now() + 20_000;
  let agentPort: number | undefined;
  while (agentPort === undefined) {
    const line = out.split('\n').find((l) => l.includes('"metricsPort"'));
    if (line) agentPort = (JSON.parse(line) as { metricsPort: number }).metricsPort;
    else if (child.exitCode !== null || Date.now() > until) assert.fail(`agent never logged its metrics port:\n${out.slice(-2000)}`);
    else await new Promise((r) => setTimeout(r, 100));
  }
  // a few frames through the whole path
  while (gw.stats().framesAccepted < 3) {
    if (Date.now() > until) assert.fail(`no frames reached the gateway:\n${out.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const texts = {
    agent: await scrape(`http://127.0.0.1:${agentPort}/metrics`),
    gateway: await scrape(`http://127.0.0.1:${gwHttp.port}/metrics`),
    collector: await scrape(`${collector.url}/metrics`),
  };
  const exposed = new Set<string>();
  for (const [role, text] of Object.entries(texts)) {
    for (const f of families(text)) exposed.add(f);
    assert.match(text, new RegExp(`^wattsplit_build_info\\{version="[^"]+",commit="[^"]+",role="${role}"\\} 1$`, 'm'), role);
    assert.match(text, /^process_cpu_seconds_total \d/m, role);
    assert.match(text, /^process_resident_memory_bytes \d/m, role);
    assert.match(text, /^nodejs_heap_size_used_bytes \d/m, role);
  }
  assert.match(texts.agent, /^wattsplit_agent_frames_total\{host="hv-prom"\} [1-9]\d*$/m);
  assert.match(texts.agent, /^wattsplit_agent_sampler_state\{host="hv-prom",sampler="domains",state="ok"\} 1$/m);
  assert.match(texts.agent, /^wattsplit_agent_send_failures_total\{host="hv-prom",kind="rejected"\} 0$/m);
  assert.match(texts.gateway, /^wattsplit_gateway_frames_accepted_total [1-9]\d*$/m);

  const exprs = ruleExpressions(readFileSync(join(promDir, 'wattsplit-alerts.yml'), 'utf8'));
  assert.ok(exprs.length >= 10, `rules found: ${exprs.length}`);
  const missing: string[] = [];
  for (const { alert, expr } of exprs) {
    for (const name of expr.match(/\b(?:wattsplit|process|nodejs)_[a-z0-9_]+/g) ?? []) if (!exposed.has(name)) missing.push(`${alert}: ${name}`);
    for (const job of expr.match(/job="([^"]+)"/g) ?? []) assert.match(job, /job="wattsplit-(agent|gateway|collector)"/, `${alert}: ${job} is a job of prometheus.yml`);
  }
  assert.deepEqual(missing, [], 'metrics named in alert rules that no process exposes');
});

const tool = promtool();
const skip = typeof tool === 'string' ? undefined : tool.skip;

test('promtool check rules: deploy/prometheus/wattsplit-alerts.yml', { skip }, () => {
  const r = spawnSync(tool as string, ['check', 'rules', 'wattsplit-alerts.yml'], { cwd: promDir, encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /SUCCESS: \d+ rules found/);
});

test('promtool test rules: the alerts fire (and stay quiet) as wattsplit-alerts.test.yml says', { skip }, () => {
  const r = spawnSync(tool as string, ['test', 'rules', 'wattsplit-alerts.test.yml'], { cwd: promDir, encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
});

test('promtool check config --syntax-only: deploy/prometheus/prometheus.yml', { skip }, () => {
  const r = spawnSync(tool as string, ['check', 'config', '--syntax-only', 'prometheus.yml'], { cwd: promDir, encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
});

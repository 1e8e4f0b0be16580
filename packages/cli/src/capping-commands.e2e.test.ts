// The capping commands as a user runs them, child processes of the built CLI with its real logger, on a
// real demo data directory: the demo with the live cap watch (--caps: a warning when a cap is predicted
// to cross, the statuses in its report), the README's cap-plan example with either method, with a rack
// cap and against the forecast bound, and cap-apply's dry run of the plan it printed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const main = join(dirname(fileURLToPath(import.meta.url)), 'main.js');
const run = (args: string[], timeout = 240_000): SpawnSyncReturns<string> => spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', timeout, maxBuffer: 64 << 20 });

let dir = '';
let demo: SpawnSyncReturns<string>;
let caps = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'wattsplit-capping-'));
  caps = join(dir, 'caps.json');
  // A rack of both hosts under a cap far below what they draw: predicted to cross at once.
  writeFileSync(caps, JSON.stringify({ defaultHostCapW: 5000, groups: [{ groupId: 'rack-1', kind: 'rack', capW: 300, members: ['hv-00', 'hv-01'], otherW: 25 }], horizonS: 60, windowS: 10 }));
  demo = run(['demo', '--hosts', '2', '--vms', '4', '--warmup-minutes', '1', '--minutes', '2', '--seed', '3', '--data-dir', join(dir, 'data'), '--json', '--log-level', 'warn', '--caps', caps]);
});
after(() => rmSync(dir, { recursive: true, force: true }));

interface Status {
  scopeId: string;
  scopeKind: string;
  capW: number;
  powerW: number;
  predictedCrossS: number;
  planSafe: boolean;
}

test('demo --caps: the collector watches the caps, warns once a cap is predicted to cross, and reports the statuses', () => {
  assert.equal(demo.status, 0, demo.stderr.slice(-2000));
  const report = JSON.parse(demo.stdout) as { caps?: Status[]; conservation_ok: boolean };
  assert.equal(report.conservation_ok, true);
  const rack = report.caps?.find((s) => s.scopeId === 'rack-1');
  assert.ok(rack, `statuses: ${JSON.stringify(report.caps)}`);
  assert.equal(rack.scopeKind, 'rack');
  assert.ok(rack.powerW > 300, `the rack draws ${rack.powerW} W`);
  assert.equal(rack.predictedCrossS, 0, 'over its cap now');
  assert.deepEqual(report.caps!.filter((s) => s.scopeKind === 'host').map((s) => s.scopeId).sort(), ['hv-00', 'hv-01']);
  // The warning, from the collector's pino logger on stderr (one JSON line), once for the episode.
  const warns = demo.stderr.split('\n').filter((l) => l.includes('predicted to cross'));
  assert.equal(warns.length, 1, demo.stderr.slice(-3000));
  const w = JSON.parse(warns[0]!) as { level: number; cap: string; component: string; msg: string };
  assert.equal(w.level, 40);
  assert.equal(w.cap, 'rack-1');
  assert.equal(w.component, 'cap-watch');
  assert.match(w.msg, /^rack rack-1 is predicted to cross its 300 W cap in 0 s/);
});

test('demo --caps without --json or a log level: the text report ends with each cap\'s status, the predicted crossing said there', () => {
  const r = run(['demo', '--hosts', '2', '--vms', '4', '--warmup-minutes', '1', '--minutes', '2', '--seed', '3', '--data-dir', join(dir, 'data-text'), '--caps', caps]);
  assert.equal(r.status, 0, r.stderr.slice(-2000));
  // stderr has the demo's progress; at the default log level (error) not the warning: the report is where it is said
  assert.doesNotMatch(r.stderr, /predicted to cross/);
  const section = r.stdout.slice(r.stdout.indexOf('Power caps (the live watch'));
  assert.match(section, /^ {2}rack rack-1: [\d.]+ W now, cap 300 W, predicted peak [\d.]+ W: PREDICTED TO CROSS in 0 s$/m, r.stdout.slice(-1500));
  for (const h of ['hv-00', 'hv-01']) assert.match(section, new RegExp(`^ {2}host ${h}: [\\d.]+ W now, cap 5000 W, .*: no crossing predicted within 60 s$`, 'm'));
});

test("the README's cap-plan runs on the demo's data with either method; with a rack cap and against the forecast bound; cap-apply prints the plan's virsh commands", () => {
  const data = join(dir, 'data');
  for (const method of ['additive_model', 'cpu_share']) {
    const r = run(['cap-plan', '--cap-w', '900', '--method', method, '--data-dir', data]);
    assert.ok(r.status === 0 || r.status === 1, `${method}: exit ${r.status}: ${r.stderr}`);
    assert.match(r.stdout, /^plan is (SAFE|NOT SAFE) over 120 s; SLA cost [\d.]+ VM·s/);
    assert.doesNotMatch(r.stderr, /CAP_INPUT_INVALID/);
  }
  const groups = join(dir, 'groups.json');
  writeFileSync(groups, JSON.stringify([{ groupId: 'rack-1', kind: 'rack', capW: 1500, members: ['hv-00', 'hv-01'], otherW: 25 }]));
  const g = run(['cap-plan', '--cap-w', '5000', '--groups', groups, '--method', 'additive_model', '--data-dir', data, '--json', '--margin-w', '10']);
  assert.equal(g.status, 0, g.stderr);
  const plan = JSON.parse(g.stdout) as { safe: boolean; marginW: number; groups: { groupId: string; timelineW: number[]; peakW: number }[]; actions: { kind: string }[]; window: unknown };
  assert.equal(plan.marginW, 10);
  const rack = plan.groups.find((x) => x.groupId === 'rack-1')!;
  if (plan.safe) assert.ok(rack.peakW <= 1500 - 10 + 1e-6, `rack peak ${rack.peakW} W under the plan`);
  const f = run(['cap-plan', '--cap-w', '5000', '--groups', groups, '--forecast', '--method', 'additive_model', '--data-dir', data, '--json']);
  assert.equal(f.status, 0, f.stderr);
  const fp = JSON.parse(f.stdout) as { forecast: { samples: number; vms: number; basis: string } };
  assert.equal(fp.forecast.vms, 8);
  assert.ok(fp.forecast.samples >= 8 * 2, `per-VM minute samples: ${fp.forecast.samples}`);
  assert.equal(fp.forecast.basis, 'trend', 'three minutes of history: no hour-of-day profile yet');

  const planFile = join(dir, 'plan.json');
  const tight = run(['cap-plan', '--cap-w', '600', '--method', 'additive_model', '--data-dir', data, '--json']);
  writeFileSync(planFile, tight.stdout);
  const p = JSON.parse(tight.stdout) as { actions: { kind: string; vmUuid: string }[] };
  assert.ok(p.actions.length > 0, 'a 600 W cap needs actions');
  const dry = run(['cap-apply', planFile, '--connect', 'hv-00=qemu:///system', '--connect', 'hv-01=qemu+ssh://hv-01/system']);
  assert.equal(dry.status, 0, dry.stderr);
  assert.match(dry.stdout, /^dry run: \d+ steps \(nothing is changed; --execute performs them\)/);
  for (const a of p.actions) assert.ok(dry.stdout.includes(a.vmUuid), `${a.kind} ${a.vmUuid} is in the dry run`);
  assert.match(dry.stdout, /virsh -c qemu(:\/\/\/system|\+ssh:\/\/hv-01\/system) (schedinfo|migrate)/);
  const bad = run(['cap-apply', join(dir, 'groups.json')]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /no "actions" array: not a cap-plan --json plan/);
});

test('wattsplit collector --caps with a bad caps file: one CONFIG_INVALID line naming the field, exit 2, before connecting', () => {
  const bad = join(dir, 'bad-caps.json');
  writeFileSync(bad, JSON.stringify({ defaultHostCapW: 900, groups: [{ groupId: 'rack-1', capW: 1500, members: ['hv-00', 'rack-1'] }] }));
  const r = spawnSync(process.execPath, [main, 'collector', '--caps', bad, '--data-dir', join(dir, 'c')], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, WATTSPLIT_KAFKA_BROKERS: '127.0.0.1:1' } });
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /^wattsplit: CONFIG_INVALID: --caps=.*bad-caps\.json: planCaps: groups: rack-1 → rack-1 is a cycle/);
});

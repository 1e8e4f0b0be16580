#!/usr/bin/env node
// Out-of-sample accuracy: the evaluation protocol of issue 12 (docs/accuracy.md, "Evaluation protocol").
//
//   node benchmarks/accuracy-oos.mjs --set dev|eval|fresh|fresh2|fresh3|all [--quick] [--json] [--seeds 1,101] [--warmup-s N] [--billed-s N] [--jobs N] [--json-out FILE]
//   (--jobs N: N fleets at a time, each in its own process; on a shared box this gets the runs more CPU)
//   [--agent-option KEY=VALUE ...]: an agent config setting for every simulated agent, as `wattsplit agent` takes it
//   from its config: slowCountersEveryMs=5000 (memory and block I/O read every 5 s, staggered), slowVcpuCounters=true
//   (per-vCPU counters on that schedule too); slowCountersEveryMs=0 reads every counter every round. Without any: the
//   shipped agent's defaults (DEFAULT_AGENT_CONFIG: 5000 ms and true), the schedule the demo and an installed agent run.
//   node benchmarks/accuracy.mjs --set ...        (the same: accuracy.mjs hands --set runs to this file)
//
// The fleets are declared once, in packages/simulator/src/evaluation-sets.ts (EVALUATION_PROTOCOL):
// development fleets (legacy physics and dev families: what a model may be shaped on) and evaluation fleets
// (other seeds, physics combinations and a family no dev fleet runs). Sets are run and reported apart.
//
// Each fleet runs the path `wattsplit demo` runs (packages/cli/src/commands/demo.ts): simulator hosts → real
// Agents (samplers over the simulated sysfs/cgroup/perf/BMC) → spool → gRPC → gateway → in-process bus →
// embedded collector (NestJS pipeline, chDB). After the warm-up the collector's own TrainingService trains the
// hardware class's model on the stored host totals (as the demo asks it to); the billed period is attributed
// live by cpu_share and additive_model. Online learners are causal in the pipeline (each interval is
// attributed, then observed). Truth (packages/simulator, truthBetween) is used for scoring only.
//
// Scores per fleet and method, over the billed period: each tenant's total (dynamic + static) and dynamic
// energy error vs truth, worst and mean; coverage of the stored uncertainty interval (Σ low_j .. Σ high_j per
// tenant contains the true total); VMs billed 0 J of dynamic energy while they used > 1 kJ; worst VM's dynamic
// error among VMs with > 1 kJ; each host's static power (billed static energy / s) vs truth.
// Evaluation output stays aggregate (no per-VM or per-tenant rows): evaluation data is not looked at per VM.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { hostOptions } from './host-options.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const imp = (p) => import(pathToFileURL(join(root, p)).href);
const sim = await imp('packages/simulator/dist/index.js');
const { startEmbeddedCollector } = await imp('packages/collector/dist/embedded.js');
const { startGateway } = await imp('packages/gateway/dist/index.js');
const { InProcessBus } = await imp('packages/wire/dist/index.js');
const agentsLib = await imp('packages/cli/dist/simulated-agents.js');
const { makeLogger } = await imp('packages/cli/dist/logging.js');

const P = sim.EVALUATION_PROTOCOL;
const METHODS = ['cpu_share', 'additive_model'];
/** A VM "billed zero": less than 1 J of dynamic energy while its true dynamic energy exceeds 1 kJ. */
const ZERO_J = 1;
const USED_J = 1000;

function parseArgs(argv) {
  const val = (k) => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : undefined);
  const set = val('--set') ?? 'dev';
  if (!['dev', 'eval', 'fresh', 'fresh2', 'fresh3', 'all'].includes(set)) throw new Error(`--set ${set}: expected dev, eval, fresh, fresh2, fresh3 or all (dev and eval; the fresh sets run only by name)`);
  const quick = argv.includes('--quick');
  const num = (k, d) => {
    const v = val(k);
    if (v === undefined) return d;
    const n = Number(v);
    if (!(Number.isInteger(n) && n >= 60)) throw new Error(`${k} ${v}: expected an integer ≥ 60 (seconds)`);
    return n;
  };
  const seeds = val('--seeds')?.split(',').map(Number);
  const agent = {};
  argv.forEach((a, i) => {
    if (a !== '--agent-option') return;
    const kv = argv[i + 1] ?? '';
    const [k, v] = [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)];
    if (k === 'slowCountersEveryMs' && Number.isInteger(Number(v)) && Number(v) >= 0) agent[k] = Number(v);
    else if ((k === 'slowVcpuCounters' || k === 'slowBlockIo') && (v === 'true' || v === 'false')) agent[k] = v === 'true';
    else throw new Error(`--agent-option ${kv}: expected slowCountersEveryMs=<ms>, slowVcpuCounters=true|false or slowBlockIo=true|false`);
  });
  const host = hostOptions(argv);
  return {
    set,
    quick,
    json: argv.includes('--json'),
    jsonOut: val('--json-out'),
    seeds,
    warmupS: num('--warmup-s', quick ? P.quick.warmupS : P.warmupS),
    billedS: num('--billed-s', quick ? P.quick.billedS : P.billedS),
    logLevel: val('--log-level') ?? 'silent',
    jobs: Math.max(1, Number(val('--jobs') ?? 1) || 1),
    agent,
    host,
  };
}

/** One fleet through the demo's path; returns the billed-period scores. */
export async function runFleet(entry, { warmupS, billedS, logLevel = 'silent', agent = {}, host = {} }) {
  const logger = makeLogger(logLevel);
  const dataDir = mkdtempSync(join(tmpdir(), `wattsplit-oos-${entry.seed}-`));
  const startUnixMs = Date.now() - (warmupS + billedS) * 1000;
  const fleet = sim.createFleet({ hosts: P.hosts, vmsPerHost: P.vmsPerHost, seed: entry.seed, hostSpecs: [{ ...P.hostSpec, ...host }], physics: entry.physics, physicsShiftAtS: warmupS, startUnixMs });
  const bus = new InProcessBus({ logger, lingerMs: 250 });
  const collector = await startEmbeddedCollector({ dataDir, bus, policy: 'reserved', logger, models: { training: { checkIntervalS: 86_400, minIntervals: 60 } } });
  const gateway = await startGateway({ producer: bus.producer(), logger });
  const agents = agentsLib.createSimulatedAgents(fleet, { gatewayAddress: gateway.address, spoolDir: join(dataDir, 'spool'), logger, bootId: (h) => `oos-${entry.seed}-${h}`, agent });
  const billedStartNs = (startUnixMs + warmupS * 1000) * 1e6;
  const firstBilledSeq = warmupS + 2; // frame k is sampled at simulated second k-1 (as in the demo)
  const started = Date.now();
  const drainAll = async () => {
    await agentsLib.drainSenders(agents);
    await bus.idle();
  };
  let truth0;
  const trained = [];
  try {
    await agentsLib.sampleAll(agents);
    for (let t = 1; t <= warmupS + billedS; t++) {
      fleet.step(1);
      await agentsLib.sampleAll(agents);
      if (t === warmupS) {
        truth0 = fleet.truth();
        await drainAll();
        const outcomes = await collector.training.runOnce({ effectiveFromNs: billedStartNs + 1, untilUnixNs: billedStartNs });
        for (const o of outcomes) trained.push(o.version ? { hardwareClass: o.hardwareClass, version: o.version.version, intervals: o.version.intervals, train_s: o.version.trainSeconds, residual_rms_w: o.version.residualRmsW } : { hardwareClass: o.hardwareClass, skipped: o.skipped ?? 'no need' });
      }
      if (t % 20 === 0) await Promise.all(agents.map((a) => a.sender.drain(60_000)));
    }
    await drainAll();
    const billed = sim.truthBetween(truth0, fleet.truth());
    const scores = await score(collector.store, billed, firstBilledSeq, billedS);
    return {
      seed: entry.seed,
      physics: entry.physics,
      host_physics: Object.fromEntries(fleet.hosts.map((h) => [h.hostId, fleet.physicsOf(h.hostId)])),
      warmup_s: warmupS,
      billed_s: billedS,
      trained,
      wall_s: (Date.now() - started) / 1000,
      ...scores,
    };
  } finally {
    await agentsLib.closeAgents(agents);
    await gateway.close();
    await collector.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function rows(store, sql) {
  return (await store.query(sql, 'JSONEachRow')).rows;
}

async function score(store, billed, firstSeq, billedS) {
  // truth per VM (a migrated VM has one row per host) and per tenant
  const tv = new Map();
  for (const v of billed.vms) {
    const dyn = v.dynamicJoules.rapl + v.dynamicJoules.gpu + v.dynamicJoules.bmc_rest;
    const x = tv.get(v.uuid) ?? { tenant: v.tenant, cls: v.class, dyn: 0, total: 0 };
    x.dyn += dyn;
    x.total += v.totalJoules;
    tv.set(v.uuid, x);
  }
  const measured = Number((await rows(store, `SELECT sum(rapl_j + gpu_j + bmc_rest_j) AS j FROM host_samples FINAL WHERE seq >= ${firstSeq}`))[0]?.j ?? 0);
  const sensor = billed.hosts.reduce((a, h) => a + h.measuredJoules.rapl + h.measuredJoules.gpu + h.measuredJoules.bmc_rest, 0);
  const vmRows = await rows(store, `SELECT method, vm_uuid, sum(dynamic_j) AS d, sum(static_j) AS s, sum(low_j) AS lo, sum(high_j) AS hi FROM attributions FINAL WHERE seq >= ${firstSeq} AND kind = 'vm' GROUP BY method, vm_uuid`);
  const totRows = await rows(store, `SELECT method, sum(dynamic_j + static_j) AS j FROM attributions FINAL WHERE seq >= ${firstSeq} GROUP BY method`);
  const staticRows = await rows(store, `SELECT method, host, sum(static_j) AS s FROM attributions FINAL WHERE seq >= ${firstSeq} GROUP BY method, host`);
  const out = { measured_joules: measured, sensor_joules: sensor, methods: {} };
  for (const m of METHODS) {
    const attributed = Number(totRows.find((r) => r.method === m)?.j ?? 0);
    const byTenant = {};
    const vmErr = [];
    let zero = 0;
    for (const r of vmRows.filter((x) => x.method === m)) {
      const t = tv.get(String(r.vm_uuid));
      if (!t) continue;
      const a = byTenant[t.tenant] ?? (byTenant[t.tenant] = { d: 0, s: 0, lo: 0, hi: 0 });
      a.d += Number(r.d);
      a.s += Number(r.s);
      a.lo += Number(r.lo);
      a.hi += Number(r.hi);
      if (t.dyn > USED_J) {
        if (Number(r.d) < ZERO_J) zero++;
        vmErr.push(Math.abs(Number(r.d) - t.dyn) / t.dyn);
      }
    }
    // VMs with truth but no attribution row at all count as billed zero too
    for (const [uuid, t] of tv) if (t.dyn > USED_J && !vmRows.some((r) => r.method === m && r.vm_uuid === uuid)) zero++;
    const trueT = {};
    for (const t of tv.values()) {
      const x = trueT[t.tenant] ?? (trueT[t.tenant] = { dyn: 0, total: 0 });
      x.dyn += t.dyn;
      x.total += t.total;
    }
    const tenants = {};
    let covered = 0;
    let withInterval = 0;
    const halfWidths = [];
    for (const [k, tr] of Object.entries(trueT)) {
      if (!(tr.total > 0)) continue;
      const a = byTenant[k] ?? { d: 0, s: 0, lo: 0, hi: 0 };
      const tot = a.d + a.s;
      tenants[k] = { true_total_j: tr.total, true_dynamic_j: tr.dyn, total_j: tot, dynamic_j: a.d, total_err: (tot - tr.total) / tr.total, dynamic_err: tr.dyn > 0 ? (a.d - tr.dyn) / tr.dyn : 0, low_j: a.lo, high_j: a.hi };
      if (a.hi > a.lo) {
        withInterval++;
        if (tr.total >= a.lo && tr.total <= a.hi) covered++;
        halfWidths.push((a.hi - a.lo) / 2 / tr.total);
      }
    }
    const list = Object.values(tenants);
    const worstMean = (f) => ({ worst: Math.max(...list.map((x) => Math.abs(f(x)))), mean: list.reduce((s, x) => s + Math.abs(f(x)), 0) / list.length });
    const hostStatic = {};
    for (const h of billed.hosts) {
      const trueW = (h.staticJoules.rapl + h.staticJoules.gpu + h.staticJoules.bmc_rest) / billedS;
      const billedW = Number(staticRows.find((r) => r.method === m && r.host === h.hostId)?.s ?? 0) / billedS;
      hostStatic[h.hostId] = { true_w: trueW, billed_w: billedW, error_w: billedW - trueW };
    }
    out.methods[m] = {
      attributed_joules: attributed,
      conservation_ok: Math.abs(attributed - measured) <= 1e-6 * measured,
      tenant_total: worstMean((x) => x.total_err),
      tenant_dynamic: worstMean((x) => x.dynamic_err),
      coverage: withInterval > 0 ? { tenants_with_interval: withInterval, covered, share: covered / withInterval, mean_rel_half_width: halfWidths.reduce((s, x) => s + x, 0) / halfWidths.length } : null,
      zero_billed_vms: zero,
      worst_vm_dynamic: vmErr.length ? Math.max(...vmErr) : 0,
      host_static: hostStatic,
      tenants,
    };
  }
  return out;
}

function gitState() {
  // a snapshot made with `git archive` (no .git) names its commit in .snapshot-commit
  if (existsSync(join(root, '.snapshot-commit'))) return { head: readFileSync(join(root, '.snapshot-commit'), 'utf8').trim(), uncommitted_package_files: [], snapshot: root };
  const git = (...a) => spawnSync('git', a, { cwd: root, encoding: 'utf8' }).stdout?.trimEnd() ?? '';
  const dirty = git('status', '--porcelain', '--', 'packages').split('\n').filter((l) => l !== '' && !l.startsWith('??') && !/\.test\.ts$/.test(l));
  return { head: git('rev-parse', '--short', 'HEAD'), uncommitted_package_files: dirty.map((l) => l.slice(3)) };
}

/** Runs each fleet in its own process (this file, one seed, --json), o.jobs at a time; results in table order. */
async function runInChildren(set, fleets, o) {
  const self = fileURLToPath(import.meta.url);
  const out = new Array(fleets.length);
  let next = 0;
  const worker = async () => {
    while (next < fleets.length) {
      const k = next++;
      const e = fleets[k];
      if (!o.json) process.stderr.write(`  ${set} seed ${e.seed} (${physName(e.physics)}) in a child process...\n`);
      const args = [self, '--set', set, '--seeds', String(e.seed), '--json', '--warmup-s', String(o.warmupS), '--billed-s', String(o.billedS), '--log-level', o.logLevel, ...Object.entries(o.agent).flatMap(([k, v]) => ['--agent-option', `${k}=${v}`]), ...Object.entries(o.host).flatMap(([k, v]) => ['--host-option', `${k}=${v}`])];
      const text = await new Promise((resolve, reject) => {
        const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
        let buf = '';
        child.stdout.on('data', (d) => (buf += d));
        child.on('error', reject);
        child.on('exit', (code) => (code === 0 ? resolve(buf) : reject(new Error(`${set} seed ${e.seed}: child exited ${code}`))));
      });
      out[k] = JSON.parse(text.trim().split('\n').pop()).sets[set].fleets[0];
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.jobs, fleets.length) }, worker));
  return out;
}

function summarize(results) {
  const s = {};
  for (const m of METHODS) {
    const ms = results.map((r) => r.methods[m]);
    const cov = ms.map((x) => x.coverage).filter(Boolean);
    s[m] = {
      tenant_total_worst: Math.max(...ms.map((x) => x.tenant_total.worst)),
      tenant_total_mean: ms.reduce((a, x) => a + x.tenant_total.mean, 0) / ms.length,
      tenant_dynamic_worst: Math.max(...ms.map((x) => x.tenant_dynamic.worst)),
      tenant_dynamic_mean: ms.reduce((a, x) => a + x.tenant_dynamic.mean, 0) / ms.length,
      coverage: cov.length ? cov.reduce((a, c) => a + c.covered, 0) / cov.reduce((a, c) => a + c.tenants_with_interval, 0) : null,
      zero_billed_vms: ms.reduce((a, x) => a + x.zero_billed_vms, 0),
      worst_vm_dynamic: Math.max(...ms.map((x) => x.worst_vm_dynamic)),
      fleets_meeting_targets: ms.filter((x) => x.tenant_total.worst <= 0.03 && x.tenant_dynamic.worst <= 0.05).length,
      conservation_ok: ms.every((x) => x.conservation_ok),
    };
  }
  return s;
}

const pct = (x) => (x === null || x === undefined ? 'n/a' : `${(100 * x).toFixed(1)} %`);
const physName = (p) => (Array.isArray(p) ? p.join('+') || 'base' : p);

function printSet(name, results, sum, redact) {
  const log = (s) => process.stdout.write(`${s}\n`);
  log(`\n## ${name === 'dev' ? 'Development (in-sample)' : name === 'fresh' ? 'Fresh evaluation (out-of-sample)' : name === 'fresh2' ? 'Second fresh evaluation (out-of-sample)' : name === 'fresh3' ? 'Third fresh evaluation (out-of-sample)' : 'Evaluation (out-of-sample)'} fleets\n`);
  log('| seed | physics | tenant total worst / mean: cpu_share | additive_model | tenant dynamic worst / mean: cpu_share | additive_model | interval coverage (inside / tenants, mean half-width) | VMs billed 0 J (> 1 kJ used) | worst VM dynamic | host static error (W) | wall |');
  log('|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|');
  for (const r of results) {
    const c = r.methods.cpu_share;
    const a = r.methods.additive_model;
    const cov = a.coverage ? `${a.coverage.covered}/${a.coverage.tenants_with_interval} (±${pct(a.coverage.mean_rel_half_width)})` : 'n/a';
    const hs = Object.entries(a.host_static).map(([h, x]) => `${h} ${x.error_w >= 0 ? '+' : ''}${x.error_w.toFixed(1)}`).join(', ');
    log(`| ${r.seed} | ${physName(r.physics)} | ${pct(c.tenant_total.worst)} / ${pct(c.tenant_total.mean)} | ${pct(a.tenant_total.worst)} / ${pct(a.tenant_total.mean)} | ${pct(c.tenant_dynamic.worst)} / ${pct(c.tenant_dynamic.mean)} | ${pct(a.tenant_dynamic.worst)} / ${pct(a.tenant_dynamic.mean)} | ${cov} | ${a.zero_billed_vms} (cpu_share ${c.zero_billed_vms}) | ${pct(a.worst_vm_dynamic)} | ${hs} | ${r.wall_s.toFixed(0)} s |`);
  }
  log(`\n| ${name} set | tenant total worst | mean | tenant dynamic worst | mean | coverage | VMs billed 0 J | worst VM dynamic | fleets within 3 % / 5 % |`);
  log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const m of METHODS) {
    const s = sum[m];
    log(`| ${m} | ${pct(s.tenant_total_worst)} | ${pct(s.tenant_total_mean)} | ${pct(s.tenant_dynamic_worst)} | ${pct(s.tenant_dynamic_mean)} | ${pct(s.coverage)} | ${s.zero_billed_vms} | ${pct(s.worst_vm_dynamic)} | ${s.fleets_meeting_targets}/${results.length} |`);
  }
  if (!redact) {
    for (const r of results) {
      log(`\n### dev seed ${r.seed} (${physName(r.physics)}): per tenant (error of total / dynamic energy)\n`);
      log('| tenant | true kJ | cpu_share total | dynamic | additive_model total | dynamic |');
      log('|---|---:|---:|---:|---:|---:|');
      for (const [k, a] of Object.entries(r.methods.additive_model.tenants).sort()) {
        const c = r.methods.cpu_share.tenants[k];
        log(`| ${k} | ${(a.true_total_j / 1e3).toFixed(1)} | ${pct(c?.total_err)} | ${pct(c?.dynamic_err)} | ${pct(a.total_err)} | ${pct(a.dynamic_err)} |`);
      }
    }
  }
}

export async function main(argv) {
  const o = parseArgs(argv);
  const sets = o.set === 'all' ? ['dev', 'eval'] : [o.set];
  const load0 = loadavg();
  const started = new Date();
  const report = {
    command: `node benchmarks/accuracy-oos.mjs ${argv.join(' ')}`.trim(),
    machine: `${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`,
    date: started.toISOString(),
    // what code ran: the benchmark imports the packages' dist/, built from the working tree (say if it differs from HEAD)
    git: gitState(),
    protocol: { hardware_class: P.hostSpec.hardwareClass, hosts: P.hosts, vms_per_host: P.vmsPerHost, warmup_s: o.warmupS, billed_s: o.billedS, held_out_families: P.heldOutFamilies },
    agent_options: o.agent,
    host_options: o.host,
    sets: {},
  };
  if (!o.json) process.stdout.write(`# wattsplit out-of-sample accuracy\n\nmachine: ${report.machine}; date: ${report.date}; command: ${report.command}; code: ${report.git.head}${report.git.uncommitted_package_files.length ? ` + uncommitted ${report.git.uncommitted_package_files.join(', ')}` : ''}; agent options ${JSON.stringify(o.agent)}; host options ${JSON.stringify(o.host)}; load average at start ${load0.map((x) => x.toFixed(2)).join(' ')}\n`);
  for (const set of sets) {
    const fleets = P[set].filter((e) => !o.seeds || o.seeds.includes(e.seed));
    const results = [];
    if (o.jobs > 1) results.push(...(await runInChildren(set, fleets, o)));
    else {
      for (const e of fleets) {
        if (!o.json) process.stderr.write(`  ${set} seed ${e.seed} (${physName(e.physics)})...\n`);
        results.push(await runFleet(e, o));
      }
    }
    if (results.length === 0) continue;
    const sum = summarize(results);
    // evaluation data is reported in aggregate only
    if (set !== 'dev') for (const r of results) for (const m of METHODS) delete r.methods[m].tenants;
    report.sets[set] = { fleets: results, summary: sum };
    if (!o.json) printSet(set, results, sum, set !== 'dev');
  }
  report.load_average = { start: load0, end: loadavg() };
  report.wall_s = (Date.now() - started.getTime()) / 1000;
  if (o.jsonOut) writeFileSync(o.jsonOut, `${JSON.stringify(report)}\n`);
  if (o.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else process.stdout.write(`\nload average at end ${report.load_average.end.map((x) => x.toFixed(2)).join(' ')}; wall ${report.wall_s.toFixed(0)} s\n`);
  return report;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await main(process.argv.slice(2));
  process.exit(0);
}

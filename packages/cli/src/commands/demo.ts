/**
 * wattsplit demo: the whole embedded pipeline on a simulated fleet, faster than real time.
 *
 *   simulator hosts ─▶ Agent (real samplers over the simulated sysfs/cgroup/NVML/BMC)
 *     ─▶ SpoolingSender (disk spool) ─▶ gRPC (loopback) ─▶ gateway ─▶ in-process bus
 *     ─▶ collector (NestJS) ─▶ attribution methods ─▶ embedded ClickHouse (chDB)
 *
 * A warm-up period is simulated first (history the learned model trains on), then the billed period,
 * which is what the report scores against the simulator's ground truth, per tenant and per VM class.
 * Models are trained by the collector's own TrainingService, the one fleet collectors run on their
 * schedule: at the end of the warm-up the demo asks it for a pass (`runOnce`), which decides, leases,
 * trains in a worker thread on the stored host totals and activates the version for the billed period.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Agent, GrpcIngestClient, SpoolingSender } from '@wattsplit/agent';
import { tenantErrors, type TenantErrorSummary } from '@wattsplit/attribution';
import { startGateway } from '@wattsplit/gateway';
import { startEmbeddedCollector } from '@wattsplit/collector';
import { createFleet, truthBetween, type FleetTruth, type VmTruth } from '@wattsplit/simulator';
import { InProcessBus, WattsplitError } from '@wattsplit/wire';
import { intFlag, parse, strFlag } from '../args.js';
import { DEFAULT_DATA_DIR, chdbDir } from '../store-open.js';
import { makeLogger } from '../logging.js';

const HELP = `usage: wattsplit demo [options]

Runs agents on a simulated fleet through gRPC, the gateway, the in-process bus and the NestJS
collector into embedded ClickHouse, then compares every attribution method with the simulator's truth.

  --hosts N            hosts (default 4)
  --vms N              VMs per host (default 12)
  --minutes N          billed simulated minutes at 1 Hz (default 10)
  --warmup-minutes N   simulated history before the billed period, for model training (default 10)
  --seed N             simulator seed (default 1)
  --data-dir DIR       where chDB and the agents' spools live (default ${DEFAULT_DATA_DIR}; wiped first)
  --json               print one JSON object instead of tables
  --log-level L        collector/agent logs to stderr: silent|error|warn|info|debug (default error; the report lists anomalies)`;

interface MethodReport {
  attributed_joules: number;
  max_tenant_error_pct: number;
  mean_tenant_error_pct: number;
  worst_tenant: string;
  tenants: Record<string, { attributed_joules: number; true_joules: number; error_pct: number }>;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    hosts: { type: 'string' },
    vms: { type: 'string' },
    minutes: { type: 'string' },
    'warmup-minutes': { type: 'string' },
    seed: { type: 'string' },
    'data-dir': { type: 'string' },
    json: { type: 'boolean' },
    'log-level': { type: 'string' },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const hosts = intFlag(values, 'hosts', 4, 1, 1000);
  const vms = intFlag(values, 'vms', 12, 1, 500);
  const minutes = intFlag(values, 'minutes', 10, 1, 24 * 60);
  const warmupMinutes = intFlag(values, 'warmup-minutes', 10, 0, 24 * 60);
  const seed = intFlag(values, 'seed', 1, 0, 2 ** 31);
  const json = values.json === true;
  const dataDir = resolve(strFlag(values, 'data-dir', DEFAULT_DATA_DIR));
  const logger = makeLogger(strFlag(values, 'log-level', 'error'));
  const say = (s: string) => {
    if (!json) process.stderr.write(s);
  };

  // The demo owns its data directory: start from nothing so the report is about this run only.
  rmSync(dataDir, { recursive: true, force: true });
  mkdirSync(dataDir, { recursive: true });

  // Simulated time ends now, so timestamps look like a real recent period (and retention TTLs keep the rows).
  const startUnixMs = Date.now() - (warmupMinutes + minutes) * 60_000;
  const fleet = createFleet({ hosts, vmsPerHost: vms, seed, startUnixMs });
  const methodNames = ['cpu_share', 'additive_model'];
  // The collector takes up to 256 frames per store batch, waiting at most 250 ms for them to gather.
  const bus = new InProcessBus({ logger, lingerMs: 250 });
  // The scheduler's own timer stays out of the way (a pass on a part of the warm-up would train early):
  // the demo asks for the pass when the warm-up history is stored.
  const collector = await startEmbeddedCollector({ dataDir: chdbDir(dataDir), bus, policy: 'reserved', logger, models: { training: { checkIntervalS: 86_400, minIntervals: 60 } } });
  const training = collector.training!;
  const billedStartNs = (startUnixMs + warmupMinutes * 60_000) * 1e6;
  const gateway = await startGateway({ producer: bus.producer(), logger });
  const agents = fleet.hosts.map((h) => ({
    agent: new Agent({
      hostId: h.hostId,
      hardwareClass: h.hardwareClass,
      fs: h.fs,
      domains: h.domains,
      gpus: h.gpus,
      perf: h.perf,
      bmc: h.bmc,
      processOwners: h.processOwners,
      clock: h.clock,
      logger: logger.child({ host: h.hostId }),
      intervalMs: 1000,
      bootId: `demo-${seed}-${h.hostId}`,
    }),
    sender: new SpoolingSender({
      spool: { dir: join(dataDir, 'spool', h.hostId), fsync: false },
      transport: new GrpcIngestClient({ address: gateway.address, tls: false, logger: logger.child({ host: h.hostId }) }),
      batching: { maxFrames: 64, lingerMs: 5 },
      logger: logger.child({ host: h.hostId }),
    }),
  }));
  for (const a of agents) a.sender.start();

  const warmupS = warmupMinutes * 60;
  const billedS = minutes * 60;
  const totalS = warmupS + billedS;
  const started = Date.now();
  let frames = 0;
  let truthAtBilledStart: FleetTruth | undefined;
  // Frame k (seq k) is sampled at simulated second k-1; the interval closing at seq s covers [s-2, s-1].
  const firstBilledSeq = warmupS + 2;
  say(`wattsplit demo: ${hosts} hosts × ${vms} VMs, ${warmupMinutes} min warm-up + ${minutes} min billed at 1 Hz, seed ${seed}\n`);

  const sampleAll = async () => {
    for (const a of agents) {
      a.sender.enqueue(await a.agent.sampleOnce());
      frames++;
    }
  };
  try {
    await sampleAll();
    let lastProgress = 0;
    for (let t = 1; t <= totalS; t++) {
      fleet.step(1);
      await sampleAll();
      if (t === warmupS) {
        truthAtBilledStart = fleet.truth();
        if (warmupS > 0) {
          await drainAll(agents, bus);
          say(`  warm-up done (${frames} frames); the collector trains its models on the stored history...\n`);
          const outcomes = await training.runOnce({ effectiveFromNs: billedStartNs + 1, untilUnixNs: billedStartNs });
          for (const o of outcomes) {
            say(o.version ? `  trained ${o.hardwareClass} v${o.version.version} (${o.reason}, ${o.version.intervals} intervals, ${o.version.trainSeconds.toFixed(1)} s, residual rms ${o.version.residualRmsW.rapl.toFixed(1)} W)\n` : `  ${o.hardwareClass}: not trained (${o.skipped ?? 'no need'})\n`);
          }
        }
      }
      if (t % 20 === 0) await Promise.all(agents.map((a) => a.sender.drain(60_000))); // keep the spools short
      // A live line on a terminal; a line per 10 % when stderr is a file or a pipe.
      const tty = process.stderr.isTTY;
      if ((tty && Date.now() - lastProgress > 250) || t === totalS || (!tty && t % Math.max(1, Math.round(totalS / 10)) === 0)) {
        lastProgress = Date.now();
        const m = gateway.stats().framesAccepted;
        say(`${tty ? '\r' : ''}  simulated ${fmtClock(t)} / ${fmtClock(totalS)}  frames sent ${frames}  accepted by gateway ${m}${tty ? '  ' : '\n'}`);
      }
    }
    await drainAll(agents, bus);
    say(`${process.stderr.isTTY ? '\n' : ''}  pipeline drained in ${((Date.now() - started) / 1000).toFixed(1)} s wall (${(totalS / ((Date.now() - started) / 1000)).toFixed(0)}× real time)\n`);

    const billed = truthAtBilledStart ? truthBetween(truthAtBilledStart, fleet.truth()) : fleet.truth();
    const truth = billed.vms.filter((v) => v.totalJoules > 0);
    // What the simulated sensors measured in the billed period: the pipeline must capture all of it.
    const sensorJoules = billed.hosts.reduce((a, h) => a + h.measuredJoules.rapl + h.measuredJoules.gpu + h.measuredJoules.bmc_rest, 0);
    const report = await buildReport(collector.store, truth, firstBilledSeq, methodNames);
    const conservationOk = Math.abs(report.measured - report.attributedByMethod[methodNames[0]!]!) <= 1e-6 * report.measured;
    const out = {
      hosts,
      vms: hosts * vms,
      frames,
      warmup_minutes: warmupMinutes,
      billed_minutes: minutes,
      seed,
      data_dir: dataDir,
      sensor_joules: sensorJoules,
      measured_joules: report.measured,
      attributed_joules: report.attributedByMethod[methodNames[0]!]!,
      conservation_ok: conservationOk,
      true_joules_by_vm: Object.fromEntries(truth.map((v) => [v.uuid, v.totalJoules])),
      true_joules_by_tenant: sumBy(truth, (v) => v.tenant),
      methods: report.methods,
      anomalies: report.anomalies,
      gateway: gateway.stats(),
      wall_seconds: (Date.now() - started) / 1000,
    };
    if (json) console.log(JSON.stringify(out));
    else printTables(out, report, truth, methodNames);
    return conservationOk ? 0 : 1;
  } finally {
    for (const a of agents) {
      await a.sender.close();
      await a.agent.close();
    }
    await gateway.close();
    await collector.close();
  }
}

async function drainAll(agents: readonly { sender: SpoolingSender }[], bus: InProcessBus): Promise<void> {
  for (const a of agents) {
    if (!(await a.sender.drain(120_000))) {
      throw new WattsplitError('TRANSPORT_TIMEOUT', `agent spool did not drain within 120 s: ${a.sender.metrics().lastError ?? 'no error recorded'}`);
    }
  }
  await bus.idle();
}

function fmtClock(s: number): string {
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

function sumBy<T extends { totalJoules: number }>(xs: readonly T[], key: (x: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[key(x)] = (out[key(x)] ?? 0) + x.totalJoules;
  return out;
}

interface Report {
  measured: number;
  attributedByMethod: Record<string, number>;
  byVm: Map<string, Map<string, number>>; // method → vm uuid → joules
  methods: Record<string, MethodReport>;
  anomalies: Record<string, number>;
}

type QueryStore = { query(sql: string, format?: 'JSONEachRow'): Promise<{ rows: Record<string, unknown>[] }> };

async function buildReport(store: QueryStore, truth: readonly VmTruth[], firstSeq: number, methodNames: readonly string[]): Promise<Report> {
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

function printTables(out: { sensor_joules: number; measured_joules: number; conservation_ok: boolean; frames: number; anomalies: Record<string, number> }, report: Report, truth: readonly VmTruth[], methodNames: readonly string[]): void {
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
  console.log(`\nQuery the data: npm run wattsplit -- query "SELECT tenant, method, round(sum(dynamic_j + static_j)) AS joules FROM attributions FINAL GROUP BY tenant, method ORDER BY tenant, method"`);
}


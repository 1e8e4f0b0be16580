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
import { startGateway } from '@wattsplit/gateway';
import { startEmbeddedCollector } from '@wattsplit/collector';
import { createFleet, truthBetween, type FleetTruth } from '@wattsplit/simulator';
import { InProcessBus } from '@wattsplit/wire';
import { intFlag, parse, strFlag } from '../args.js';
import { buildReport, conservationHolds, printTables, sumBy } from '../demo-report.js';
import { closeAgents, createSimulatedAgents, drainSenders, sampleAll, type SimulatedAgent } from '../simulated-agents.js';
import { DEFAULT_DATA_DIR } from '../store-open.js';
import { makeLogger } from '../logging.js';
import { capWatchFromFile } from '../cap-watch-config.js';
import { PRICING_FLAGS } from './bill.js';
import { demoBilling, serveHttpConfig, serveUntilSignal, SERVE_HTTP_FLAGS } from './serve.js';

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
  --serve              keep serving the REST API and dashboard after the report (prints the URL; Ctrl-C stops);
                       --port P (default 8080), --host H, --api-tokens-file F, and bill's pricing flags
                       (default: the synthetic samples in docs/data)
  --log-level L        collector/agent logs to stderr: silent|error|warn|info|debug (default error; the report lists anomalies)
  --caps FILE          run the collector's live power-cap watch with these caps (docs/capping.md "Live watch"):
                       the report ends with each cap's last status (a predicted crossing is also logged,
                       as a warning: --log-level warn); --json reports them as "caps";
                       with --serve, GET /api/v1/caps and the dashboard's cap panel show them`;

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
    serve: { type: 'boolean' },
    caps: { type: 'string' },
    ...SERVE_HTTP_FLAGS,
    ...PRICING_FLAGS,
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
  const capsFile = strFlag(values, 'caps', '');
  const capWatch = capsFile ? capWatchFromFile(capsFile) : undefined;
  const serveHttp = values.serve === true ? { ...serveHttpConfig(values), billing: demoBilling(values) } : undefined;
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
  const collector = await startEmbeddedCollector({ dataDir, bus, policy: 'reserved', logger, models: { training: { checkIntervalS: 86_400, minIntervals: 60 } }, ...(capWatch ? { capWatch } : {}) });
  const training = collector.training!;
  const billedStartNs = (startUnixMs + warmupMinutes * 60_000) * 1e6;
  const gateway = await startGateway({ producer: bus.producer(), logger });
  const agents = createSimulatedAgents(fleet, { gatewayAddress: gateway.address, spoolDir: join(dataDir, 'spool'), logger, bootId: (hostId) => `demo-${seed}-${hostId}` });

  const warmupS = warmupMinutes * 60;
  const billedS = minutes * 60;
  const totalS = warmupS + billedS;
  const started = Date.now();
  let frames = 0;
  let truthAtBilledStart: FleetTruth | undefined;
  // Frame k (seq k) is sampled at simulated second k-1; the interval closing at seq s covers [s-2, s-1].
  const firstBilledSeq = warmupS + 2;
  say(`wattsplit demo: ${hosts} hosts × ${vms} VMs, ${warmupMinutes} min warm-up + ${minutes} min billed at 1 Hz, seed ${seed}\n`);

  try {
    frames += await sampleAll(agents);
    let lastProgress = 0;
    for (let t = 1; t <= totalS; t++) {
      fleet.step(1);
      frames += await sampleAll(agents);
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
    // The watch evaluates at most every few wall seconds while the replay runs faster than real time, with
    // hosts a minute or more apart in data time (one left out as not reporting); the report's statuses are
    // those of the drained fleet, every host at its last interval.
    await collector.pipeline.capWatch?.evaluate().catch((e: unknown) => logger.warn({ err: (e as Error).message }, 'cap watch: the final evaluation failed'));
    say(`${process.stderr.isTTY ? '\n' : ''}  pipeline drained in ${((Date.now() - started) / 1000).toFixed(1)} s wall (${(totalS / ((Date.now() - started) / 1000)).toFixed(0)}× real time)\n`);

    const billed = truthAtBilledStart ? truthBetween(truthAtBilledStart, fleet.truth()) : fleet.truth();
    const truth = billed.vms.filter((v) => v.totalJoules > 0);
    // What the simulated sensors measured in the billed period: the pipeline must capture all of it.
    const sensorJoules = billed.hosts.reduce((a, h) => a + h.measuredJoules.rapl + h.measuredJoules.gpu + h.measuredJoules.bmc_rest, 0);
    const report = await buildReport(collector.store, truth, firstBilledSeq, methodNames);
    const conservationOk = conservationHolds(report, methodNames);
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
      ...(collector.pipeline.capWatch ? { caps: collector.pipeline.capWatch.statuses() } : {}),
    };
    if (json) console.log(JSON.stringify(out));
    else {
      printTables(out, report, truth, methodNames, `Query the data: npm run wattsplit -- query "SELECT tenant, method, round(sum(dynamic_j + static_j)) AS joules FROM attributions FINAL GROUP BY tenant, method ORDER BY tenant, method"`);
      // the cap watch's last status per cap: in the report, whatever the log level (the warning is a log line)
      const caps = collector.pipeline.capWatch?.statuses() ?? [];
      if (caps.length > 0) {
        console.log('\nPower caps (the live watch, last status of each):');
        for (const c of caps) {
          const cross = c.predictedCrossS >= 0 ? `PREDICTED TO CROSS in ${c.predictedCrossS} s` : `no crossing predicted within ${c.horizonS} s`;
          console.log(`  ${c.scopeKind} ${c.scopeId}: ${c.powerW.toFixed(1)} W now, cap ${c.capW} W, predicted peak ${c.predictedPeakW.toFixed(1)} W: ${cross}`);
        }
      }
    }
    if (serveHttp) await serveUntilSignal(collector.store, serveHttp, logger, (l) => (json ? console.error(l) : console.log(l)), { storeReady: true, ...(collector.pipeline.capWatch ? { capWatch: collector.pipeline.capWatch } : {}) });
    return conservationOk ? 0 : 1;
  } finally {
    await closeAgents(agents);
    await gateway.close();
    await collector.close();
  }
}

async function drainAll(agents: readonly SimulatedAgent[], bus: InProcessBus): Promise<void> {
  await drainSenders(agents);
  await bus.idle();
}

function fmtClock(s: number): string {
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

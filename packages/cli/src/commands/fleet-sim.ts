/**
 * wattsplit fleet-sim (hidden; the agent process of `npm run fleet-demo`, scripts/fleet-demo.mjs):
 * simulated hosts driving real agents → SpoolingSender → gRPC to a `wattsplit gateway`, stepped
 * faster than real time and steered by the parent over the IPC channel. It keeps the simulator's
 * ground truth, which it hands over for scoring at the end (truth never travels through the pipeline).
 *
 * Simulated time starts `--warmup-s` before now, so the warm-up ends about now. Phases and messages
 * (parent → child `{op}`, child → parent `{type}`):
 *   ready {hosts:[{hostId,hardwareClass}], vms}              fleet built, agents connected
 *   {op:'warmup'}   → progress… → warmup-done {frames}        warm-up as fast as the gateway acks
 *   (then it follows the wall clock: simulated time never passes now, so the stream goes on while
 *    the collectors train, as a real fleet's does; with --hold it sends nothing until 'bill', so two
 *    runs of the same seed bill the same simulated seconds whatever happened in between:
 *    training-faults.e2e.test.ts)
 *   {op:'bill', notBeforeUnixMs}  → billed-start {firstBilledSeq, fromUnixMs}   the first billed
 *    interval ends after notBeforeUnixMs (the models' activation time); then the billed period runs
 *    as fast as acks allow but at most --max-lead-s ahead of the wall clock (the collector dates a
 *    frame more than 300 s ahead of its bus timestamp by that timestamp)
 *   → progress… → done {frames, lastSeq, firstBilledSeq, sensorJoules, truth: VmTruth[]}
 *   {op:'stop'} (or the parent gone) → spools closed, exit 0. A failure is `{type:'error', message}`, exit 1.
 */
import { createFleet, truthBetween, type FleetTruth } from '@wattsplit/simulator';
import { normaliseError } from '@wattsplit/wire';
import { intFlag, parse, strFlag } from '../args.js';
import { makeLogger } from '../logging.js';
import { closeAgents, createSimulatedAgents, drainSenders, sampleAll } from '../simulated-agents.js';

const HELP = `usage: wattsplit fleet-sim --gateway HOST:PORT --spool-dir DIR [--hosts 3] [--vms 8] [--seed 1]
  [--warmup-s 300] [--billed-s 180] [--max-lead-s 240] [--hold] [--run-id ID] [--log-level error]
The simulated agents of scripts/fleet-demo.mjs (npm run fleet-demo); needs the parent's IPC channel.`;

type ParentMessage = { op: 'warmup' } | { op: 'bill'; notBeforeUnixMs: number } | { op: 'stop' };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    gateway: { type: 'string' },
    'spool-dir': { type: 'string' },
    hosts: { type: 'string' },
    vms: { type: 'string' },
    seed: { type: 'string' },
    'warmup-s': { type: 'string' },
    'billed-s': { type: 'string' },
    'max-lead-s': { type: 'string' },
    hold: { type: 'boolean' },
    'run-id': { type: 'string' },
    'log-level': { type: 'string' },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const send = process.send?.bind(process);
  if (!send) {
    console.error('wattsplit fleet-sim: no IPC channel (it is started by scripts/fleet-demo.mjs)');
    return 2;
  }
  const gatewayAddress = strFlag(values, 'gateway', '');
  const spoolDir = strFlag(values, 'spool-dir', '');
  if (!gatewayAddress || !spoolDir) {
    console.error('wattsplit fleet-sim: --gateway and --spool-dir are required');
    return 2;
  }
  const hosts = intFlag(values, 'hosts', 3, 1, 1000);
  const vms = intFlag(values, 'vms', 8, 1, 500);
  const seed = intFlag(values, 'seed', 1, 0, 2 ** 31);
  const warmupS = intFlag(values, 'warmup-s', 300, 1, 86_400);
  const billedS = intFlag(values, 'billed-s', 180, 1, 86_400);
  const maxLeadMs = intFlag(values, 'max-lead-s', 240, 0, 290) * 1000;
  const runId = strFlag(values, 'run-id', String(process.pid));
  const hold = values.hold === true;
  const logger = makeLogger(strFlag(values, 'log-level', 'error'));

  // Messages from the parent, consumed in order by the phase that waits for them.
  const inbox: ParentMessage[] = [];
  let wake: (() => void) | undefined;
  let parentGone = false;
  process.on('message', (m: ParentMessage) => {
    inbox.push(m);
    wake?.();
  });
  process.on('disconnect', () => {
    parentGone = true;
    wake?.();
  });
  const next = async (): Promise<ParentMessage> => {
    while (!inbox.length) {
      if (parentGone) return { op: 'stop' };
      await new Promise<void>((r) => (wake = r));
      wake = undefined;
    }
    return inbox.shift()!;
  };
  /** A message if one is waiting (the wall-clock phase polls between steps). */
  const poll = (): ParentMessage | undefined => (parentGone ? { op: 'stop' } : inbox.shift());

  const startUnixMs = Date.now() - warmupS * 1000;
  const fleet = createFleet({ hosts, vmsPerHost: vms, seed, startUnixMs });
  const agents = createSimulatedAgents(fleet, { gatewayAddress, spoolDir, logger, bootId: (h) => `fleet-demo-${runId}-${h}` });
  const simUnixMs = () => startUnixMs + fleet.elapsedS * 1000;
  let frames = 0;
  // Frame k (seq k) is sampled at simulated second k-1; the interval closing at seq s covers [s-2, s-1].
  const step = async () => {
    fleet.step(1);
    frames += await sampleAll(agents);
    if (fleet.elapsedS % 20 === 0) await drainSenders(agents, 120_000); // keep the spools short (as the demo does)
  };
  try {
    send({ type: 'ready', hosts: fleet.hosts.map((h) => ({ hostId: h.hostId, hardwareClass: h.hardwareClass })), vms: hosts * vms, startUnixMs });
    if ((await next()).op !== 'warmup') return 0;
    frames += await sampleAll(agents);
    const every = Math.max(1, Math.round(warmupS / 5));
    while (fleet.elapsedS < warmupS) {
      await step();
      if (fleet.elapsedS % every === 0) send({ type: 'progress', phase: 'warm-up', simS: fleet.elapsedS, ofS: warmupS, frames });
    }
    await drainSenders(agents);
    send({ type: 'warmup-done', frames, simUnixMs: simUnixMs() });

    // Follow the wall clock (--hold: stand still) until the parent says from when to bill.
    let bill: number | undefined;
    for (;;) {
      const got = poll();
      if (got?.op === 'stop') return 0;
      if (got?.op === 'bill') bill = got.notBeforeUnixMs;
      // The first billed interval closes at seq elapsed+2 and ends at simulated second elapsed+1.
      if (bill !== undefined && startUnixMs + (fleet.elapsedS + 1) * 1000 >= bill) break;
      if (!hold && simUnixMs() + 1000 <= Date.now()) await step();
      else await sleep(100);
    }
    const truthAtStart: FleetTruth = fleet.truth();
    const billedFromS = fleet.elapsedS;
    const firstBilledSeq = billedFromS + 2;
    send({ type: 'billed-start', firstBilledSeq, fromUnixMs: simUnixMs(), frames });
    const everyB = Math.max(1, Math.round(billedS / 5));
    while (fleet.elapsedS < billedFromS + billedS) {
      if (simUnixMs() + 1000 > Date.now() + maxLeadMs) {
        await sleep(100);
        if (poll()?.op === 'stop') return 0;
        continue;
      }
      await step();
      const done = fleet.elapsedS - billedFromS;
      if (done % everyB === 0) send({ type: 'progress', phase: 'billed', simS: done, ofS: billedS, frames, leadS: Math.round((simUnixMs() - Date.now()) / 1000) });
    }
    await drainSenders(agents);
    const billed = truthBetween(truthAtStart, fleet.truth());
    send({
      type: 'done',
      frames,
      lastSeq: fleet.elapsedS + 1,
      firstBilledSeq,
      endUnixMs: simUnixMs(),
      // What the simulated sensors measured in the billed period: the pipeline must capture all of it.
      sensorJoules: billed.hosts.reduce((a, h) => a + h.measuredJoules.rapl + h.measuredJoules.gpu + h.measuredJoules.bmc_rest, 0),
      truth: billed.vms.filter((v) => v.totalJoules > 0),
    });
    await next(); // stop
    return 0;
  } catch (e) {
    const err = normaliseError(e);
    send({ type: 'error', message: `${err.code}: ${err.message}` });
    return 1;
  } finally {
    await closeAgents(agents);
    if (process.connected) process.disconnect();
  }
}

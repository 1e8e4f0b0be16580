/**
 * Real agents on simulated hosts: one `Agent` per simulator host (its samplers read the simulated sysfs,
 * cgroups, NVML and BMC) → `SpoolingSender` (disk spool) → gRPC to a gateway. What `wattsplit demo` and
 * the fleet demo's agent process (`wattsplit fleet-sim`) drive, one simulated second at a time.
 */
import { join } from 'node:path';
import { Agent, GrpcIngestClient, SHIPPED_SCHEDULE, SpoolingSender, type CounterScheduleOptions } from '@wattsplit/agent';
import type { Fleet } from '@wattsplit/simulator';
import { WattsplitError, type Logger } from '@wattsplit/wire';

export interface SimulatedAgent {
  hostId: string;
  agent: Agent;
  sender: SpoolingSender;
}

export interface SimulatedAgentsOptions {
  /** host:port of the gateway (plaintext gRPC: loopback demos only). */
  gatewayAddress: string;
  /** Each host's spool goes to <spoolDir>/<host id>. */
  spoolDir: string;
  logger: Logger;
  /** The boot id each host's frames carry (seq restarts at 1 for a new one). */
  bootId: (hostId: string) => string;
  /**
   * The agent's counter schedule, as `wattsplit agent` takes it from its config (`slowCountersEveryMs`,
   * `slowVcpuCounters`); absent: the shipped agent's defaults (`SHIPPED_SCHEDULE` from @wattsplit/agent), so the demo and the
   * accuracy protocol measure the schedule an installed agent runs. A key set here overrides its default.
   */
  agent?: SimulatedAgentOptions;
}

/** The agent settings a simulated fleet may run with (benchmarks compare the shipped defaults against others). */
export type SimulatedAgentOptions = CounterScheduleOptions;

export function createSimulatedAgents(fleet: Fleet, opts: SimulatedAgentsOptions): SimulatedAgent[] {
  const agents = fleet.hosts.map((h) => {
    const logger = opts.logger.child({ host: h.hostId });
    return {
      hostId: h.hostId,
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
        logger,
        intervalMs: 1000,
        bootId: opts.bootId(h.hostId),
        ...SHIPPED_SCHEDULE,
        ...opts.agent,
      }),
      sender: new SpoolingSender({
        spool: { dir: join(opts.spoolDir, h.hostId), fsync: false },
        transport: new GrpcIngestClient({ address: opts.gatewayAddress, tls: false, logger }),
        batching: { maxFrames: 64, lingerMs: 5 },
        logger,
      }),
    };
  });
  for (const a of agents) a.sender.start();
  return agents;
}

/** Every agent samples once (its next seq) and spools the frame; returns the number of frames. */
export async function sampleAll(agents: readonly SimulatedAgent[]): Promise<number> {
  for (const a of agents) a.sender.enqueue(await a.agent.sampleOnce());
  return agents.length;
}

/** Waits until every spool is empty (the gateway acked every frame); TRANSPORT_TIMEOUT after `timeoutMs`. */
export async function drainSenders(agents: readonly SimulatedAgent[], timeoutMs = 120_000): Promise<void> {
  for (const a of agents) {
    if (!(await a.sender.drain(timeoutMs))) {
      throw new WattsplitError('TRANSPORT_TIMEOUT', `agent ${a.hostId}: spool did not drain within ${timeoutMs / 1000} s: ${a.sender.metrics().lastError ?? 'no error recorded'}`);
    }
  }
}

export async function closeAgents(agents: readonly SimulatedAgent[]): Promise<void> {
  for (const a of agents) {
    await a.sender.close();
    await a.agent.close();
  }
}

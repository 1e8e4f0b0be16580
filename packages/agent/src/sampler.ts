/**
 * The one interface every sensor module implements. A round builds one TelemetryFrame: each sampler
 * contributes its part (energy counters, VM samples, GPU device samples, host CPU) to a
 * FrameUnderConstruction. Samplers never throw for a sensor problem: they report it once through the
 * logger, keep a status for `--check`, and set the counter's `error` field where a reading is missing.
 */
import type { DomainInfo, IEnergyCounter, IGpuDeviceSample, IHostCpu, IVmSample, ProcessOwnerMap } from '@wattsplit/wire';

export interface FrameUnderConstruction {
  /** CLOCK_MONOTONIC of the round, ns. */
  monoNs: number;
  counters: IEnergyCounter[];
  vms: IVmSample[];
  gpus: IGpuDeviceSample[];
  hostCpu: IHostCpu | undefined;
}

/** What the round knows before samplers run: the VM inventory (from the DomainSource) and the clock. */
export interface RoundContext {
  /** Domains listed by the DomainSource this round. */
  domains: DomainInfo[];
  /** False when the DomainSource failed this round: VM samplers then report nothing rather than guess. */
  domainsAvailable: boolean;
  /** The VM samples already in the frame, by uuid (filled by the VM sampler, which runs first). */
  vmsByUuid: Map<string, IVmSample>;
  /** cgroup path of each VM relative to the cgroup root (v2) or a controller root (v1), filled by the VM sampler. */
  cgroupPathByUuid: Map<string, string>;
  processOwners: ProcessOwnerMap | undefined;
  /** Monotonic clock, ns, for per-read timestamps. */
  monoNs(): number;
}

export type SamplerState = 'ok' | 'unavailable' | 'degraded';

export interface SamplerStatus {
  name: string;
  state: SamplerState;
  /** Human-readable: what it sees, or why it sees nothing and how to fix it. */
  detail: string;
}

export interface Sampler {
  readonly name: string;
  sample(frame: FrameUnderConstruction, ctx: RoundContext): void | Promise<void>;
  status(): SamplerStatus;
  close?(): void | Promise<void>;
}

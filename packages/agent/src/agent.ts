/**
 * The Agent composes the samplers into one TelemetryFrame per round: VM inventory and cgroup/proc
 * stats first (so GPU activity and perf counters can be attached to VMs), then perf, GPU, RAPL and BMC.
 * It owns the frame identity and the monotonic/wall timestamps (from an injectable clock):
 * - boot_id is the KERNEL's boot id (/proc/sys/kernel/random/boot_id under the sysfs root): it names the
 *   epoch of CLOCK_MONOTONIC and of the kernel's energy and CPU counters, which an agent restart does not
 *   reset and a host reboot does. So the collector bridges an agent restart (same boot, counters kept
 *   counting: the interval across it is billed) and starts afresh after a reboot. Without that file
 *   (an unusual kernel, a fixture tree) it is `agent-<random>` per start and the collector tells the two
 *   apart by monotonic-clock continuity instead.
 * - seq is +1 per frame, persisted in the state dir so a restart continues it (after a reboot that may have
 *   cost the state file's latest writes, it continues after the seqs reserved on disk: see agent-state.ts).
 *   An agent with a state dir but no state (first install, reinstall, state lost) starts at the wall clock in
 *   milliseconds: far above any seq an earlier installation on that host can have reached at ≤ 1 frame per
 *   ms, so a reinstalled agent never reuses a seq of billed history (the collector refuses reuse anyway).
 */
import { randomUUID } from 'node:crypto';
import {
  type BmcSource,
  type DomainInfo,
  type DomainSource,
  type GpuSource,
  type HostFs,
  type ITelemetryFrame,
  type IVmSample,
  type Logger,
  type PerfSource,
  type ProcessOwnerMap,
  WattsplitError,
} from '@wattsplit/wire';
import { AgentStateWriter, SEQ_RESERVATION, loadAgentState } from './agent-state.js';
import { BmcSampler } from './bmc-sampler.js';
import type { CgroupVersion } from './cgroup-reader.js';
import { CgroupProcessOwnerMap } from './cgroup-process-owners.js';
import { systemClock, type AgentClock } from './clock.js';
import { GpuSampler } from './gpu-sampler.js';
import { deriveHardwareClass } from './hardware-class.js';
import { PerfSampler } from './perf-sampler.js';
import { RaplSampler } from './rapl-sampler.js';
import type { FrameUnderConstruction, RoundContext, Sampler, SamplerStatus } from './sampler.js';
import { VmSampler, type VmSamplerOptions } from './vm-sampler.js';

export const AGENT_VERSION = '0.1.0';

export interface AgentOptions {
  hostId: string;
  /** Defaults to one derived from /proc/cpuinfo and the GPU names. */
  hardwareClass?: string;
  fs: HostFs;
  domains: DomainSource;
  gpus?: GpuSource;
  perf?: PerfSource;
  bmc?: BmcSource;
  /** Maps GPU processes to VMs; default: by the process's cgroup (/proc/<pid>/cgroup inside a VM's qemu cgroup). */
  processOwners?: ProcessOwnerMap;
  clock?: AgentClock;
  logger: Logger;
  /** Where seq and boot id persist (the spool dir). Without it the sequence restarts at 1 on every start. */
  stateDir?: string;
  /** Nominal sampling interval written into frames. */
  intervalMs?: number;
  /** Read RAPL (default true). */
  rapl?: boolean;
  cgroupVersion?: CgroupVersion;
  /**
   * Read each VM's memory in use (and block I/O with `slowBlockIo`) every this many ms (rounded to whole
   * intervals, staggered over the VMs) instead of every round; CPU time is read every round. Absent or ≤ intervalMs: every round (the
   * class's default; `wattsplit agent`'s config default is 5000, SHIPPED_SCHEDULE in agent-config.ts).
   */
  slowCountersEveryMs?: number;
  /**
   * Put the per-vCPU CPU counters on that schedule too. Absent here (the class): false, every round; `wattsplit
   * agent`'s config defaults to true (its schedule with no keys set is SHIPPED_SCHEDULE, agent-config.ts).
   */
  slowVcpuCounters?: boolean;
  /**
   * Put block I/O on that schedule too (VmSample.slow_read_mono_ns then says when it was read). Default false
   * here and in `wattsplit agent`'s config: block I/O every round, since a 5-s window lags the disk's power
   * (docs/agent.md, "Counter schedule").
   */
  slowBlockIo?: boolean;
  /** Boot id override (the simulator uses deterministic ones); the kernel's boot id otherwise (random per start if unreadable). */
  bootId?: string;
  /** The sequence continues after max(state file seq, minSeq): pass the last spooled seq (SpoolingSender.lastSpooledSeq()). */
  minSeq?: number;
}

export interface AgentRunOptions {
  intervalMs: number;
  onFrame: (frame: ITelemetryFrame) => void | Promise<void>;
  signal?: AbortSignal;
  /** Stop after this many frames (tests, `--once`). */
  maxFrames?: number;
}

const BOOT_ID = /^[0-9A-Fa-f-]{8,64}$/;

/**
 * Prefix of a boot id the agent made up because it could not read the kernel's: it changes on every
 * agent start, so the collector must tell a restart from a reboot by other means (monotonic clock).
 */
export const AGENT_BOOT_ID_PREFIX = 'agent-';

/** The kernel's boot id (proc(5): /proc/sys/kernel/random/boot_id, "a random string regenerated at each boot"), if readable. */
export function kernelBootId(fs: HostFs): string | undefined {
  try {
    const s = fs.readText('/proc/sys/kernel/random/boot_id').trim();
    return BOOT_ID.test(s) ? s : undefined;
  } catch {
    return undefined;
  }
}

const HOST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

export class Agent {
  readonly hostId: string;
  readonly bootId: string;
  private hardwareClass: string | undefined;
  private seq: number;
  /** Highest seq the state file on disk allows (fsync'd); 0 until the first frame of this run reserves. */
  private seqReserved = 0;
  private readonly samplers: Sampler[] = [];
  private readonly clock: AgentClock;
  private readonly log: Logger;
  private readonly intervalMs: number;
  private domainError: string | undefined;
  private lastDomains: DomainInfo[] = [];
  private stopped = false;
  private stateWriter: AgentStateWriter | undefined;
  private bmcSampler: BmcSampler | undefined;
  private readonly cgroupOwners: CgroupProcessOwnerMap | undefined;

  constructor(private readonly opts: AgentOptions) {
    if (!HOST_ID.test(opts.hostId)) {
      throw new WattsplitError('CONFIG_INVALID', `hostId=${JSON.stringify(opts.hostId)} must be 1-128 chars of [A-Za-z0-9._:-]`, { details: { field: 'hostId', value: opts.hostId } });
    }
    this.hostId = opts.hostId;
    this.log = opts.logger.child({ host: opts.hostId });
    this.clock = opts.clock ?? systemClock;
    this.intervalMs = opts.intervalMs ?? 1000;
    this.hardwareClass = opts.hardwareClass;
    const kernelBoot = opts.bootId === undefined ? kernelBootId(opts.fs) : undefined;
    this.bootId = opts.bootId ?? kernelBoot ?? `${AGENT_BOOT_ID_PREFIX}${randomUUID()}`;
    if (opts.bootId === undefined && kernelBoot === undefined) {
      this.log.warn({ bootId: this.bootId }, '/proc/sys/kernel/random/boot_id unreadable: boot id is random per agent start (the collector still bridges a restart by monotonic-clock continuity)');
    }
    const st = opts.stateDir ? loadAgentState(opts.stateDir) : undefined;
    if (st && st.hostId && st.hostId !== opts.hostId) {
      throw new WattsplitError('CONFIG_INVALID', `state dir ${opts.stateDir} belongs to host ${JSON.stringify(st.hostId)}, not ${JSON.stringify(opts.hostId)}: give each host its own spool dir`, { details: { field: 'stateDir', value: opts.stateDir } });
    }
    const seqEpoch = opts.stateDir && !st && !(opts.minSeq && opts.minSeq > 0) ? Math.floor(this.clock.wallUnixNs() / 1e6) : 0;
    // The state file is exact after a clean stop or on the same kernel boot (the page cache kept every
    // write); otherwise its latest writes may have died with the host: continue after what was reserved.
    const exact = st !== undefined && (st.clean === true || (kernelBoot !== undefined && st.bootId === kernelBoot));
    this.seq = Math.max(st?.seq ?? 0, exact ? 0 : (st?.seqReserved ?? 0), opts.minSeq ?? 0, seqEpoch);
    if (st) {
      const how = st.bootId === this.bootId ? 'agent restarted on the same host boot (the collector bridges the gap)' : 'host rebooted or first start with a kernel boot id';
      const after = this.seq > st.seq && this.seq === st.seqReserved ? ` after the ${this.seq - st.seq} seqs reserved on disk (the agent did not stop cleanly: its last writes may be lost)` : '';
      this.log.info({ seq: st.seq, next: this.seq + 1, previousBootId: st.bootId, bootId: this.bootId }, `${how}: continuing the frame sequence${after}`);
    } else if (seqEpoch > 0) {
      this.log.info({ seq: this.seq }, 'no agent state: the frame sequence starts at the wall clock in ms (never below an earlier installation\'s)');
    }
    this.cgroupOwners = opts.processOwners ? undefined : new CgroupProcessOwnerMap(opts.fs);
    const vmOpts: VmSamplerOptions = { slowEveryRounds: Math.max(1, Math.round((opts.slowCountersEveryMs ?? 0) / this.intervalMs)), slowVcpus: opts.slowVcpuCounters === true, slowBlock: opts.slowBlockIo === true };
    if (opts.cgroupVersion !== undefined) vmOpts.cgroupVersion = opts.cgroupVersion;
    this.samplers.push(new VmSampler(opts.fs, this.log.child({ sampler: 'vms' }), vmOpts));
    if (opts.perf) this.samplers.push(new PerfSampler(opts.perf, this.log.child({ sampler: 'perf' })));
    if (opts.gpus) this.samplers.push(new GpuSampler(opts.gpus, this.log.child({ sampler: 'gpu' })));
    if (opts.rapl !== false) this.samplers.push(new RaplSampler(opts.fs, this.log.child({ sampler: 'rapl' })));
    if (opts.bmc) {
      this.bmcSampler = new BmcSampler(opts.bmc, this.log.child({ sampler: 'bmc' }));
      // Same kernel boot, same monotonic clock: the power integrator carries on where it stopped.
      if (st?.bmc && st.bootId === this.bootId && kernelBoot !== undefined) this.bmcSampler.resume(st.bmc);
      this.samplers.push(this.bmcSampler);
    }
  }

  /** Last sequence number handed out (0 before the first frame). */
  get lastSeq(): number {
    return this.seq;
  }

  /** What each sampler sees, and the VM inventory's health. */
  status(): SamplerStatus[] {
    const out: SamplerStatus[] = [
      this.domainError
        ? { name: 'domains', state: 'unavailable', detail: this.domainError }
        : { name: 'domains', state: 'ok', detail: `${this.lastDomains.length} domains listed: ${this.lastDomains.map((d) => `${d.name} (${d.state})`).join(', ') || 'none'}` },
    ];
    for (const s of this.samplers) out.push(s.status());
    return out;
  }

  /** Domains of the last round. */
  domains(): DomainInfo[] {
    return this.lastDomains;
  }

  async sampleOnce(): Promise<ITelemetryFrame> {
    let domains: DomainInfo[] = [];
    let domainsAvailable = true;
    try {
      domains = await this.opts.domains.listDomains();
      if (this.domainError) this.log.info('VM inventory available again');
      this.domainError = undefined;
    } catch (e) {
      domainsAvailable = false;
      const msg = `listing VMs failed: ${(e as Error).message}`;
      if (this.domainError !== msg) this.log.warn({ code: 'SENSOR_UNAVAILABLE' }, msg);
      this.domainError = msg;
    }
    this.lastDomains = domains;
    const monoNs = this.clock.monoNs();
    const wallUnixNs = this.clock.wallUnixNs();
    const frame: FrameUnderConstruction = { monoNs, counters: [], vms: [], gpus: [], hostCpu: undefined };
    const ctx: RoundContext = {
      domains,
      domainsAvailable,
      vmsByUuid: new Map<string, IVmSample>(),
      cgroupPathByUuid: new Map<string, string>(),
      processOwners: this.opts.processOwners ?? this.cgroupOwners,
      monoNs: () => this.clock.monoNs(),
    };
    for (const s of this.samplers) {
      // GPU processes map to VMs by cgroup once the VM sampler has located this round's cgroups
      if (s.name === 'gpu') this.cgroupOwners?.update(ctx.cgroupPathByUuid);
      try {
        await s.sample(frame, ctx);
      } catch (e) {
        // Samplers report sensor trouble themselves; anything reaching here is a bug: keep the round.
        this.log.error({ sampler: s.name, err: (e as Error).message }, 'sampler failed unexpectedly');
      }
    }
    this.hardwareClass ??= deriveHardwareClass(this.opts.fs, frame.gpus.map((g) => g.name ?? ''));
    this.seq += 1;
    if (this.opts.stateDir) {
      const reserve = this.seq > this.seqReserved;
      if (reserve) this.seqReserved = this.seq + SEQ_RESERVATION;
      this.writeState(reserve, false);
    }
    const out: ITelemetryFrame = {
      hostId: this.hostId,
      hardwareClass: this.hardwareClass,
      seq: this.seq,
      bootId: this.bootId,
      monoNs,
      wallUnixNs,
      intervalMs: this.intervalMs,
      counters: frame.counters,
      vms: frame.vms,
      gpus: frame.gpus,
      agentVersion: AGENT_VERSION,
    };
    if (frame.hostCpu) out.hostCpu = frame.hostCpu;
    return out;
  }

  /**
   * Samples every `intervalMs` (aligned to the previous tick, never overlapping) until the signal
   * aborts, `stop()` is called or `maxFrames` frames were produced.
   */
  async run(opts: AgentRunOptions): Promise<void> {
    this.stopped = false;
    // one abort listener for the whole run (not one per tick): it cuts the current wait short
    let wake: (() => void) | undefined;
    const onAbort = () => wake?.();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await this.loop(opts, (ms) => new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          wake = undefined;
          resolve();
        }, ms);
        wake = () => {
          clearTimeout(t);
          wake = undefined;
          resolve();
        };
      }));
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  private async loop(opts: AgentRunOptions, sleep: (ms: number) => Promise<void>): Promise<void> {
    let n = 0;
    let next = Date.now();
    while (!this.stopped && !opts.signal?.aborted && (opts.maxFrames === undefined || n < opts.maxFrames)) {
      const frame = await this.sampleOnce();
      n++;
      await opts.onFrame(frame);
      next += opts.intervalMs;
      const wait = next - Date.now();
      if (wait < 0) {
        // Fell behind (slow sensor, suspended host): skip missed ticks rather than burst.
        next = Date.now();
        continue;
      }
      if (opts.maxFrames !== undefined && n >= opts.maxFrames) break;
      await sleep(wait);
    }
  }

  stop(): void {
    this.stopped = true;
  }

  private writeState(durable: boolean, clean: boolean): void {
    if (!this.opts.stateDir) return;
    const bmc = this.bmcSampler?.integrator();
    (this.stateWriter ??= new AgentStateWriter(this.opts.stateDir)).write(
      { hostId: this.hostId, seq: this.seq, bootId: this.bootId, ...(bmc ? { bmc } : {}), seqReserved: this.seqReserved, ...(clean ? { clean } : {}) },
      durable,
    );
  }

  async close(): Promise<void> {
    this.stop();
    // a clean stop: the next start continues exactly after this seq
    if (this.stateWriter) this.writeState(true, true);
    this.stateWriter?.close();
    for (const s of this.samplers) await s.close?.();
    await this.opts.domains.close?.();
  }
}

/**
 * Per-VM activity: the DomainSource lists the VMs, their qemu cgroup (v1 or v2) gives CPU time,
 * per-vCPU time, memory and block I/O, the tap devices give network bytes, and /proc/stat gives the
 * host's busy/idle time (hypervisor overhead = host busy − Σ VM CPU).
 *
 * Net: the taps' byte counters from one read of /proc/1/net/dev a round (net-dev.ts); a tap that file does
 * not list (another network namespace, the file unreadable) from Documentation/ABI/testing/
 * sysfs-class-net-statistics: /sys/class/net/<iface>/statistics/rx_bytes and tx_bytes. Both cumulative, the
 * same kernel counters. A tap's rx is what the guest sent, so it is reported as the VM's tx.
 *
 * Memory in use is a level that changes slowly: with `slowEveryRounds` N > 1 it is read every Nth round per VM
 * (staggered: each VM in its own round, so every round reads about 1/N of them) and the frames in between repeat
 * the last value. Block I/O goes on that schedule too only with `slowBlock`: its counters then repeat between
 * reads and every sample says when they were read (VmSample.slow_read_mono_ns) so that the collector takes their
 * deltas over the read window, not the frame's interval — which lags the disk's power by up to a window, so by
 * default block I/O is read every round (the demo's worst tenant 2.6 % with it on the slow schedule, 1.5 % every
 * round; docs/agent.md, "Counter schedule"). CPU time of the whole cgroup is read every round; per vCPU too, unless `slowVcpus`
 * puts the per-vCPU counters on the same schedule (VmSample.vcpu_read_mono_ns then says when they were read). A
 * VM seen for the first time, or with a new domain id, is read whole.
 *
 * VMs that appear, migrate or vanish are reported as what they are, never guessed: a VM seen for the
 * first time gets started_mono_ns = now (its counters start from its own zero); a VM whose domain or
 * cgroup disappears is reported once with state GONE and its last known counters; a shut-off VM is
 * reported once with state SHUTOFF; live-migration states come from the DomainSource.
 */
import { VmState, type DomainInfo, type DomainState, type HostFs, type IVmSample, type Logger } from '@wattsplit/wire';
import { CgroupReader, type CgroupVersion, type ReleasableHostFs, type VmFiles, type VmSlowStats } from './cgroup-reader.js';
import { errnoOf, readUint } from './host-fs.js';
import { NET_DEV_FILE, parseNetDev } from './net-dev.js';
import { CpuFreqReader, discoverFreqFiles, parseProcStat } from './proc-stat.js';
import type { FrameUnderConstruction, RoundContext, Sampler, SamplerStatus } from './sampler.js';

export function vmStateOf(s: DomainState): VmState {
  switch (s) {
    case 'running':
      return VmState.VM_STATE_RUNNING;
    case 'paused':
      return VmState.VM_STATE_PAUSED;
    case 'shutoff':
      return VmState.VM_STATE_SHUTOFF;
    case 'migrating_out':
      return VmState.VM_STATE_MIGRATING_OUT;
    case 'migrating_in':
      return VmState.VM_STATE_MIGRATING_IN;
    case 'other':
      return VmState.VM_STATE_UNSPECIFIED;
  }
}

interface KnownVm {
  id: number;
  taps: string[];
  cgroupPath: string;
  /** its cgroup's counter files, held (the CgroupReader's, for this cgroup and vCPU count) */
  files: VmFiles;
  startedMonoNs: number;
  last: IVmSample;
  /** the last round whose inventory listed it (one not listed in this round is gone) */
  listedRound: number;
  /** memory and block I/O as last read, and when (mono ns) */
  slow: VmSlowStats;
  slowAtNs: number;
  /** its slow counters are read in the rounds r with (r + phase) % slowEveryRounds = 0 */
  phase: number;
}

export interface VmSamplerOptions {
  cgroupVersion?: CgroupVersion;
  /** Read memory and block I/O every this many rounds (per VM, staggered); 1 (default) = every round. */
  slowEveryRounds?: number;
  /** Read the per-vCPU CPU counters on that schedule too (default false: every round). */
  slowVcpus?: boolean;
  /** Read block I/O on that schedule too (default false: every round). */
  slowBlock?: boolean;
}

export class VmSampler implements Sampler {
  readonly name = 'vms';
  private readonly cgroups: CgroupReader;
  private readonly known = new Map<string, KnownVm>();
  private readonly warned = new Set<string>();
  private freq: CpuFreqReader | undefined;
  /** This round's tap counters from /proc/1/net/dev (undefined: read each tap's sysfs files). */
  private netDev: Map<string, { rx: number; tx: number }> | undefined;
  private netDevError: string | undefined;
  /** Rounds to wait before trying /proc/1/net/dev again after it failed. */
  private netDevSkip = 0;
  private readonly taps = new Set<string>();
  /** Host paths of each tap's sysfs counters, named once. */
  private readonly tapFiles = new Map<string, { rx: string; tx: string }>();
  private round = 0;
  private readonly slowEvery: number;
  private readonly slowVcpus: boolean;
  private readonly slowBlock: boolean;
  private nextPhase = 0;
  private lastSeen = 0;
  private lastMissing: string[] = [];
  private hostCpuError: string | undefined;

  constructor(
    private readonly fs: HostFs,
    private readonly log: Logger,
    opts: VmSamplerOptions = {},
  ) {
    this.cgroups = new CgroupReader(fs, opts.cgroupVersion);
    this.slowEvery = Math.max(1, Math.floor(opts.slowEveryRounds ?? 1));
    this.slowVcpus = this.slowEvery > 1 && opts.slowVcpus === true;
    this.slowBlock = this.slowEvery > 1 && opts.slowBlock === true;
  }

  get cgroupVersion(): CgroupVersion {
    return this.cgroups.version;
  }

  private warnOnce(key: string, fields: Record<string, unknown>, msg: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log.warn(fields, msg);
  }

  sample(frame: FrameUnderConstruction, ctx: RoundContext): void {
    frame.hostCpu = this.readHostCpu();
    if (!ctx.domainsAvailable) return; // inventory unknown this round: do not mark VMs gone
    this.readNetDev(ctx.domains);
    const round = ++this.round;
    const missing: string[] = [];
    for (const d of ctx.domains) {
      const prev = this.known.get(d.uuid);
      if (prev) prev.listedRound = round;
      const s = this.sampleDomain(d, prev, ctx, missing);
      if (s) {
        frame.vms.push(s);
        ctx.vmsByUuid.set(d.uuid, s);
      }
    }
    for (const [uuid, k] of this.known) {
      if (k.listedRound === round) continue;
      const gone: IVmSample = { ...k.last, state: VmState.VM_STATE_GONE, readMonoNs: k.last.readMonoNs ?? 0 };
      frame.vms.push(gone);
      ctx.vmsByUuid.set(uuid, gone);
      this.log.info({ vm: uuid, name: k.last.name }, 'VM vanished from the hypervisor: reported once as GONE with its last counters');
      this.forget(uuid);
    }
    this.lastSeen = frame.vms.length;
    this.lastMissing = missing;
  }

  private forget(uuid: string): void {
    const k = this.known.get(uuid);
    if (k) {
      this.cgroups.forget(k.cgroupPath);
      const rel = (this.fs as Partial<ReleasableHostFs>).release;
      if (rel) for (const t of k.taps) rel.call(this.fs, `/sys/class/net/${t}`);
    }
    this.known.delete(uuid);
  }

  private sampleDomain(d: DomainInfo, prev: KnownVm | undefined, ctx: RoundContext, missing: string[]): IVmSample | undefined {
    if (d.state === 'shutoff') {
      if (!prev) return undefined;
      this.forget(d.uuid);
      return { ...prev.last, state: VmState.VM_STATE_SHUTOFF };
    }
    let cgroupPath = prev && prev.id === d.id ? prev.cgroupPath : undefined;
    if (cgroupPath === undefined) {
      if (prev) this.forget(d.uuid); // same uuid, new domain id: the qemu process restarted
      cgroupPath = this.cgroups.locate(d.id, d.name);
      if (cgroupPath === undefined) {
        const why = `VM ${d.name} (${d.uuid}, id ${d.id}, ${d.state}) has no qemu cgroup (cgroup v${this.cgroups.version}); not reported until it has one`;
        missing.push(why);
        this.warnOnce(`nocg:${d.uuid}:${d.id}`, { vm: d.uuid }, why);
        return undefined;
      }
    }
    const now = ctx.monoNs();
    const same = prev !== undefined && prev.id === d.id;
    const files = same && prev.files.vcpus.length === d.vcpus ? prev.files : this.cgroups.files(cgroupPath, d.vcpus);
    // memory and block I/O: this VM's round to read them, or it is new (read whole), or the last values again
    const fresh = !same || this.slowEvery === 1 || (this.round + prev.phase) % this.slowEvery === 0;
    const slow = same ? prev.slow : { memoryUsedBytes: 0, blockReadBytes: 0, blockWriteBytes: 0 };
    let cpu;
    try {
      cpu = this.cgroups.readCpu(files, fresh || !this.slowVcpus);
      if (fresh) this.cgroups.readSlow(files, slow);
      else if (!this.slowBlock) this.cgroups.readBlock(files, slow);
    } catch (e) {
      const code = errnoOf(e);
      if (prev && (code === 'ENOENT' || code === 'ENODEV')) {
        this.log.info({ vm: d.uuid, name: d.name, cgroup: cgroupPath }, 'VM cgroup vanished mid-interval: reported once as GONE with its last counters');
        this.forget(d.uuid);
        return { ...prev.last, state: VmState.VM_STATE_GONE };
      }
      const why = `VM ${d.name} (${d.uuid}): reading cgroup ${cgroupPath} failed: ${(e as Error).message}`;
      missing.push(why);
      this.warnOnce(`rd:${d.uuid}:${code ?? (e as Error).message}`, { vm: d.uuid }, why);
      return undefined;
    }
    let rx = 0;
    let tx = 0;
    for (const tap of d.taps) {
      const c = this.netDev?.get(tap);
      if (c) {
        // Host-side rx on a tap = bytes the guest transmitted.
        tx += c.rx;
        rx += c.tx;
        continue;
      }
      let files = this.tapFiles.get(tap);
      if (!files) this.tapFiles.set(tap, (files = { rx: `/sys/class/net/${tap}/statistics/rx_bytes`, tx: `/sys/class/net/${tap}/statistics/tx_bytes` }));
      try {
        tx += readUint(this.fs, files.rx);
        rx += readUint(this.fs, files.tx);
      } catch (e) {
        this.warnOnce(`tap:${d.uuid}:${tap}`, { vm: d.uuid, tap }, `VM ${d.name}: tap ${tap} not readable (${(e as Error).message}); its bytes are left out`);
      }
    }
    const sample: IVmSample = {
      uuid: d.uuid,
      name: d.name,
      tenant: d.tenant,
      vcpus: d.vcpus,
      memoryBytes: d.memoryBytes,
      state: vmStateOf(d.state),
      cpuTimeNs: cpu.cpuTimeNs,
      vcpuTimeNs: fresh || !this.slowVcpus || !prev ? cpu.vcpuTimeNs : (prev.last.vcpuTimeNs ?? []),
      memoryUsedBytes: slow.memoryUsedBytes,
      blockReadBytes: slow.blockReadBytes,
      blockWriteBytes: slow.blockWriteBytes,
      netRxBytes: rx,
      netTxBytes: tx,
      readMonoNs: now,
      startedMonoNs: prev && prev.id === d.id ? prev.startedMonoNs : now,
      hardwareClass: d.flavor,
    };
    const slowAtNs = fresh ? now : (prev?.slowAtNs ?? now);
    if (this.slowBlock) sample.slowReadMonoNs = slowAtNs;
    if (this.slowVcpus) sample.vcpuReadMonoNs = slowAtNs;
    if (!prev || prev.id !== d.id) {
      this.log.info({ vm: d.uuid, name: d.name, cgroup: cgroupPath }, 'VM appeared');
    }
    if (same) {
      // the same qemu process: update in place (no new object per VM per round)
      prev.taps = d.taps;
      prev.cgroupPath = cgroupPath;
      prev.files = files;
      prev.last = sample;
      prev.slowAtNs = slowAtNs;
    } else {
      const phase = this.nextPhase++ % this.slowEvery;
      this.known.set(d.uuid, { id: d.id, taps: d.taps, cgroupPath, files, startedMonoNs: sample.startedMonoNs ?? now, last: sample, listedRound: this.round, slow, slowAtNs, phase });
    }
    ctx.cgroupPathByUuid.set(d.uuid, cgroupPath);
    return sample;
  }

  /** One read of /proc/1/net/dev for every listed VM's taps; on failure each tap's sysfs files are read. */
  private readNetDev(domains: readonly DomainInfo[]): void {
    this.taps.clear();
    for (const d of domains) for (const t of d.taps) this.taps.add(t);
    this.netDev = undefined;
    if (this.taps.size === 0) return;
    if (this.netDevSkip > 0) {
      this.netDevSkip--;
      return;
    }
    try {
      this.netDev = parseNetDev(this.fs.readText(NET_DEV_FILE), this.taps);
      this.netDevError = undefined;
    } catch (e) {
      const msg = (e as Error).message;
      if (this.netDevError !== msg) this.log.debug({ file: NET_DEV_FILE }, `${NET_DEV_FILE} unreadable (${msg}): tap counters from /sys/class/net/<tap>/statistics`);
      this.netDevError = msg;
      this.netDevSkip = 60;
    }
  }

  private readHostCpu() {
    try {
      const hc = parseProcStat(this.fs.readText('/proc/stat'));
      this.freq ??= new CpuFreqReader(this.fs, discoverFreqFiles(this.fs));
      hc.avgFreqMhz = this.freq.read();
      this.hostCpuError = undefined;
      return hc;
    } catch (e) {
      this.hostCpuError = (e as Error).message;
      this.warnOnce('procstat', { code: 'SENSOR_READ_FAILED' }, `host CPU accounting unavailable: ${this.hostCpuError}`);
      return undefined;
    }
  }

  status(): SamplerStatus {
    const parts = [`cgroup v${this.cgroups.version}`, `${this.lastSeen} VMs reported`];
    if (this.hostCpuError) parts.push(`/proc/stat: ${this.hostCpuError}`);
    if (this.lastMissing.length) parts.push(...this.lastMissing);
    return { name: this.name, state: this.lastMissing.length || this.hostCpuError ? 'degraded' : 'ok', detail: parts.join('; ') };
  }
}

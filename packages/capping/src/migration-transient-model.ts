/**
 * What a pre-copy live migration does to host power while it runs.
 *
 * Pre-copy (Clark et al., NSDI 2005; QEMU/KVM's default): round 0 sends all guest memory while the VM
 * runs; every later round resends the pages the guest dirtied during the previous round; once what is
 * left fits in the downtime limit the VM is paused, the rest is sent (stop-and-copy) and the VM resumes
 * on the destination ("switchover"). Round i lasts V_i / B and dirties D·t_i bytes, so with memory M,
 * dirty rate D and migration bandwidth B the rounds shrink geometrically by D/B (Liu et al., HPDC 2011);
 * with D ≥ B they never shrink and the migration does not converge without throttling the guest.
 *
 * Power: while the migration runs both hosts draw extra power for the copy (CPU for page scanning,
 * dirty tracking, TCP, NIC): measured about +12 W on source and destination for 8–20 s on KVM hosts;
 * the extra is roughly independent of VM size at a given bandwidth (Strunk & Dargie, AINA 2013: size
 * changes the duration, not the power). The VM's own power stays on the source until switchover and
 * then moves to the destination in one step. So migrating a VM off a host already at its cap first
 * RAISES that host's power by the transient, for the whole duration, before it falls by the VM's share.
 */
import { WattsplitError } from '@wattsplit/wire';

export interface MigrationTransientParams {
  /** Extra power on the source host while the migration runs, W. Default 12. */
  sourceExtraW: number;
  /** Extra power on the destination host while the migration runs, W. Default 12. */
  destinationExtraW: number;
  /** Fixed time outside the copy rounds (connection, destination QEMU start, device state), s. Default 2. */
  setupS: number;
  /** Shortest migration observed end to end, s: small VMs still take this long. Default 8. */
  minDurationS: number;
  /** Longest duration the model will report, s; Infinity = no clamp (default). Set 20 to stay inside the measured 8–20 s range. */
  maxDurationS: number;
  /** Share of the link's bytes/s the migration stream achieves (TCP, QEMU framing, other traffic). Default 0.8. */
  linkEfficiency: number;
  /** Pre-copy rounds before giving up on convergence (round 0 included). Default 30. */
  maxRounds: number;
  /** Pause the guest for the final copy once what is left takes at most this long, s (QEMU downtime-limit, default 300 ms). */
  downtimeLimitS: number;
  /** Guest dirty rate when a VM does not say, bytes/s. Default 32 MiB/s. */
  defaultDirtyRateBps: number;
  /**
   * Post-copy: from the stop of the VM on the source to its resumption on the destination (device
   * state only), s. The source's share of the VM's power is gone within this time. Default 0.12.
   */
  postCopySwitchS: number;
  /** Post-copy slowdown of the migrated VM while its pages arrive, small working set. Default 0.10. */
  postCopySlowdownSmall: number;
  /** Post-copy slowdown of a memory-intensive VM (a write-intensive working set of memoryIntensiveWorkingSetBytes or more). Default 0.68. */
  postCopySlowdownMemoryIntensive: number;
  /** Working set at and above which a writing VM counts as memory-intensive, bytes. Default 200 MB. */
  memoryIntensiveWorkingSetBytes: number;
  /** Pre-copy slowdown of the migrating VM (dirty logging: a write-protect fault per first write to a page each round). Default 0.05. */
  preCopySlowdown: number;
  /**
   * Slowdown of EVERY VM on a CPU-saturated source while a pre-copy runs: the migration thread's CPU
   * comes from the guests (no power is added, the work is displaced). Default 0.05.
   */
  saturatedSourceSlowdown: number;
}

/**
 * How the VM moves:
 * - `pre-copy`: memory copied while the VM runs, then stop-and-copy; the VM's power leaves the source at the end.
 * - `pre-copy-throttled`: the same with the migration bandwidth capped at `bandwidthFraction` of the link;
 *   the migration's CPU work (and so its extra watts) scales with its throughput, the transfer takes longer.
 * - `post-copy`: the VM is stopped, its device state sent (~0.12 s) and it resumes on the destination at
 *   once; its pages follow (on demand and pushed in the background) while it runs there slowed down.
 */
export type MigrationMode = 'pre-copy' | 'pre-copy-throttled' | 'post-copy';
export const MIGRATION_MODES: readonly MigrationMode[] = ['pre-copy', 'pre-copy-throttled', 'post-copy'];

export const DEFAULT_MIGRATION_TRANSIENT: Readonly<MigrationTransientParams> = Object.freeze({
  sourceExtraW: 12,
  destinationExtraW: 12,
  setupS: 2,
  minDurationS: 8,
  maxDurationS: Infinity,
  linkEfficiency: 0.8,
  maxRounds: 30,
  downtimeLimitS: 0.3,
  defaultDirtyRateBps: 32 * 1024 * 1024,
  postCopySwitchS: 0.12,
  postCopySlowdownSmall: 0.1,
  postCopySlowdownMemoryIntensive: 0.68,
  memoryIntensiveWorkingSetBytes: 200e6,
  preCopySlowdown: 0.05,
  saturatedSourceSlowdown: 0.05,
});

export interface MigrationEstimate {
  /** Start to switchover, s (setup + pre-copy rounds + stop-and-copy, at least minDurationS). */
  durationS: number;
  /** Pre-copy rounds, round 0 (all memory) included. */
  rounds: number;
  /** Bytes sent over the link, all rounds and the final copy. */
  transferredBytes: number;
  /** Guest pause of the final stop-and-copy, s. */
  downtimeS: number;
  /** False when the dirty rate kept up with the link: the remaining memory never fit the downtime limit. */
  converged: boolean;
  sourceExtraW: number;
  destinationExtraW: number;
  /** Energy the migration itself costs on both hosts, J. */
  overheadJoules: number;
}

export interface MigratingVm {
  memoryBytes: number;
  /** Bytes/s the guest dirties; default params.defaultDirtyRateBps. */
  dirtyRateBps?: number | undefined;
  /** Bytes the guest keeps touching (its working set); default: what it dirties in one second, at most its memory. */
  workingSetBytes?: number | undefined;
}

/** A migration in one mode: when the VM's power moves, how long the copy's extra watts last, what it costs the guest. */
export interface ModeEstimate extends MigrationEstimate {
  mode: MigrationMode;
  /** Share of the link the migration may use (1 except for pre-copy-throttled). */
  bandwidthFraction: number;
  /** Bytes/s the migration may use (the value to give libvirt's migrate --bandwidth), before linkEfficiency. */
  bandwidthBps: number;
  /** Start to the moment the VM runs on the destination, s (= durationS for pre-copy; setup + postCopySwitchS for post-copy). */
  switchoverAfterS: number;
  /**
   * The earliest it can run there, s: setup + one pass over its memory at the full allowed bandwidth
   * (pre-copy), setup (post-copy). Durations are estimates (the 8 s minimum is an observation, not a
   * law): a destination must have room for the VM from this moment on.
   */
  earliestSwitchoverAfterS: number;
  /** Slowdown of the migrating VM (fraction of its work lost) over `slowedS` seconds. */
  slowdown: number;
  slowedS: number;
}

export class MigrationTransientModel {
  readonly params: Readonly<MigrationTransientParams>;

  constructor(params: Partial<MigrationTransientParams> = {}) {
    const p = { ...DEFAULT_MIGRATION_TRANSIENT, ...params };
    const need = (field: keyof MigrationTransientParams, ok: boolean, why: string): void => {
      if (!ok) throw new WattsplitError('CONFIG_INVALID', `MigrationTransientModel: ${field}=${JSON.stringify(p[field])} ${why}`, { details: { field, value: p[field] } });
    };
    for (const f of ['sourceExtraW', 'destinationExtraW', 'setupS', 'minDurationS', 'downtimeLimitS', 'defaultDirtyRateBps', 'postCopySwitchS', 'memoryIntensiveWorkingSetBytes'] as const) need(f, Number.isFinite(p[f]) && p[f] >= 0, 'must be a finite number ≥ 0');
    need('maxDurationS', !Number.isNaN(p.maxDurationS) && p.maxDurationS >= p.minDurationS, `must be ≥ minDurationS (${p.minDurationS})`);
    need('linkEfficiency', p.linkEfficiency > 0 && p.linkEfficiency <= 1, 'must be in (0, 1]');
    for (const f of ['postCopySlowdownSmall', 'postCopySlowdownMemoryIntensive', 'preCopySlowdown', 'saturatedSourceSlowdown'] as const) need(f, p[f] >= 0 && p[f] <= 1, 'must be a fraction in [0, 1]');
    need('maxRounds', Number.isInteger(p.maxRounds) && p.maxRounds >= 1, 'must be an integer ≥ 1');
    this.params = Object.freeze(p);
  }

  /**
   * One migration mode. Pre-copy (throttled or not): the rounds at the allowed bandwidth, extra watts
   * scaled by the bandwidth share (the copy's CPU and NIC work follow its throughput; Strunk & Dargie:
   * at a given bandwidth the power does not depend on VM size). Post-copy: setup, a `postCopySwitchS`
   * stop for device state, then the memory is pushed once (M / B, no rounds: pages are never resent)
   * while the VM runs on the destination slowed by remote page faults.
   */
  estimateMode(vm: MigratingVm, linkBps: number, mode: MigrationMode, bandwidthFraction = 1): ModeEstimate {
    const p = this.params;
    if (!(bandwidthFraction > 0 && bandwidthFraction <= 1)) throw new WattsplitError('CONFIG_INVALID', `migration: bandwidthFraction=${JSON.stringify(bandwidthFraction)} must be in (0, 1]`, { details: { field: 'bandwidthFraction', value: bandwidthFraction } });
    const f = mode === 'pre-copy-throttled' ? bandwidthFraction : 1;
    const base = this.estimate(vm, linkBps * f);
    const common = { bandwidthFraction: f, bandwidthBps: linkBps * f, sourceExtraW: p.sourceExtraW * f, destinationExtraW: p.destinationExtraW * f };
    if (mode !== 'post-copy') {
      const earliestSwitchoverAfterS = Math.min(base.durationS, p.setupS + vm.memoryBytes / common.bandwidthBps);
      return { ...base, ...common, mode, overheadJoules: (common.sourceExtraW + common.destinationExtraW) * base.durationS, switchoverAfterS: base.durationS, earliestSwitchoverAfterS, slowdown: p.preCopySlowdown, slowedS: base.durationS };
    }
    const b = linkBps * p.linkEfficiency;
    const pushS = vm.memoryBytes / b;
    const durationS = Math.min(Math.max(p.maxDurationS, p.setupS + p.postCopySwitchS), Math.max(p.minDurationS, p.setupS + p.postCopySwitchS + pushS));
    return {
      mode,
      ...common,
      durationS,
      rounds: 1,
      transferredBytes: vm.memoryBytes,
      downtimeS: p.postCopySwitchS,
      converged: true,
      overheadJoules: (p.sourceExtraW + p.destinationExtraW) * durationS,
      switchoverAfterS: p.setupS + p.postCopySwitchS,
      earliestSwitchoverAfterS: p.setupS,
      slowdown: this.postCopySlowdown(vm),
      slowedS: Math.max(0, durationS - p.setupS - p.postCopySwitchS),
    };
  }

  /**
   * Post-copy slowdown of a VM: from postCopySlowdownSmall (small working set) to
   * postCopySlowdownMemoryIntensive (a write-intensive working set of memoryIntensiveWorkingSetBytes),
   * linear in how much of that working set the guest has and how much of it it rewrites each second.
   */
  postCopySlowdown(vm: MigratingVm): number {
    const p = this.params;
    const d = vm.dirtyRateBps ?? p.defaultDirtyRateBps;
    const wss = Math.min(vm.memoryBytes, vm.workingSetBytes ?? d);
    const intensity = Math.min(1, wss / p.memoryIntensiveWorkingSetBytes) * Math.min(1, d / Math.max(1, wss));
    return p.postCopySlowdownSmall + (p.postCopySlowdownMemoryIntensive - p.postCopySlowdownSmall) * intensity;
  }

  /** Duration, rounds and power of migrating `vm` over a link of `linkBps` bytes/s. */
  estimate(vm: MigratingVm, linkBps: number): MigrationEstimate {
    const p = this.params;
    if (!(linkBps > 0) || !Number.isFinite(linkBps)) throw new WattsplitError('CONFIG_INVALID', `migration: linkBps=${JSON.stringify(linkBps)} must be a positive number of bytes/s`, { details: { field: 'linkBps', value: linkBps } });
    const m = vm.memoryBytes;
    if (!(m >= 0) || !Number.isFinite(m)) throw new WattsplitError('CONFIG_INVALID', `migration: memoryBytes=${JSON.stringify(m)} must be a number ≥ 0`, { details: { field: 'memoryBytes', value: m } });
    const d = vm.dirtyRateBps ?? p.defaultDirtyRateBps;
    if (!(d >= 0) || !Number.isFinite(d)) throw new WattsplitError('CONFIG_INVALID', `migration: dirtyRateBps=${JSON.stringify(d)} must be a number ≥ 0`, { details: { field: 'dirtyRateBps', value: d } });
    const b = linkBps * p.linkEfficiency;
    let copyS = 0;
    let sent = 0;
    let left = m; // bytes to send in the current round
    let rounds = 0;
    let converged = false;
    while (rounds < p.maxRounds) {
      const t = left / b;
      copyS += t;
      sent += left;
      rounds++;
      left = Math.min(m, d * t);
      if (left / b <= p.downtimeLimitS) {
        converged = true;
        break;
      }
    }
    const downtimeS = left / b;
    sent += left;
    const raw = p.setupS + copyS + downtimeS;
    const durationS = Math.min(p.maxDurationS, Math.max(p.minDurationS, raw));
    return {
      durationS,
      rounds,
      transferredBytes: sent,
      downtimeS,
      converged,
      sourceExtraW: p.sourceExtraW,
      destinationExtraW: p.destinationExtraW,
      overheadJoules: (p.sourceExtraW + p.destinationExtraW) * durationS,
    };
  }
}

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
}

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
}

export class MigrationTransientModel {
  readonly params: Readonly<MigrationTransientParams>;

  constructor(params: Partial<MigrationTransientParams> = {}) {
    const p = { ...DEFAULT_MIGRATION_TRANSIENT, ...params };
    const need = (field: keyof MigrationTransientParams, ok: boolean, why: string): void => {
      if (!ok) throw new WattsplitError('CONFIG_INVALID', `MigrationTransientModel: ${field}=${JSON.stringify(p[field])} ${why}`, { details: { field, value: p[field] } });
    };
    for (const f of ['sourceExtraW', 'destinationExtraW', 'setupS', 'minDurationS', 'downtimeLimitS', 'defaultDirtyRateBps'] as const) need(f, Number.isFinite(p[f]) && p[f] >= 0, 'must be a finite number ≥ 0');
    need('maxDurationS', !Number.isNaN(p.maxDurationS) && p.maxDurationS >= p.minDurationS, `must be ≥ minDurationS (${p.minDurationS})`);
    need('linkEfficiency', p.linkEfficiency > 0 && p.linkEfficiency <= 1, 'must be in (0, 1]');
    need('maxRounds', Number.isInteger(p.maxRounds) && p.maxRounds >= 1, 'must be an integer ≥ 1');
    this.params = Object.freeze(p);
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

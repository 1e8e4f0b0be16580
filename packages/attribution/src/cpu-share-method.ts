/**
 * The cloud baseline ("cpu_share"): what clouds bill today, and the yardstick learned models must beat.
 *
 * Per source s with measured M_s over an interval of d seconds:
 *   static  S_s = min(M_s, P_static,s · d), split by the idle policy (presence-weighted);
 *   dynamic D_s = M_s − S_s.
 * RAPL and bmc_rest: D_s split by CPU seconds. VM v gets D_s · c_v / T, the host gets D_s · O / T as
 *   host_overhead, where O = max(0, host busy − Σ c_v) is CPU time outside VMs and T = Σ c_v + O.
 *   No CPU time at all → unallocated.
 * GPU, per device g with measured J_g: static min(J_g, P_static,gpu / #devices · d) split by the policy
 *   among the VMs attached to g (passthrough owner or context holders; a GPU nobody uses → unallocated),
 *   dynamic by GPU time: mean SM utilisation × presence (time-slice share), or equally among attached VMs
 *   when none shows utilisation; nobody attached → unallocated.
 * Ends with `reconcileInPlace` on its own shares, so Σ shares == measured per source exactly.
 *
 * Contract: each VM appears once in `iv.vms` (one uuid, one entry). An interval that repeats a VM uuid is
 * refused: `attribute` throws WattsplitError FRAME_INVALID_FIELD naming the field (`vms[i].uuid`) and the
 * uuid, and attributes nothing. The collector's intervals never repeat one (see checkUniqueUuids); VMs in
 * any order are accepted.
 */
import { WattsplitError } from '@wattsplit/wire';
import { reconcileInPlace } from './conservation.js';
import { DEFAULT_RESERVED_WEIGHTS, staticSplitWeights, staticSplitWeightsByVm } from './idle-split.js';
import type { AttributionContext, AttributionMethod, AttributionResult, AttributionShare, EntityKind, HostInterval, SourceName, VmInterval } from './types.js';

export const CPU_SHARE_METHOD = 'cpu_share';
export const CPU_SHARE_VERSION = '1';

const SOURCE_INDEX: Readonly<Record<SourceName, number>> = { rapl: 0, gpu: 1, bmc_rest: 2 };

/**
 * Refuses an interval that names a VM uuid twice: shares are kept by VM position, one per VM. Never the case
 * for the collector's intervals — the aligner's come from frames validateFrame checked (it refuses a frame
 * that repeats a uuid) in uuid order, and those read back from the store are deduplicated by uuid — so only
 * a caller building intervals by hand can meet this. Cheap for the aligner's: one pass when in uuid order.
 */
function checkUniqueUuids(iv: HostInterval): void {
  const vms = iv.vms;
  let ascending = true;
  for (let i = 1; i < vms.length && ascending; i++) ascending = vms[i - 1]!.uuid < vms[i]!.uuid;
  if (ascending) return;
  const seen = new Set<string>();
  vms.forEach((v, i) => {
    if (seen.has(v.uuid)) {
      throw new WattsplitError('FRAME_INVALID_FIELD', `host ${iv.hostId} seq ${iv.seq}: vms[${i}].uuid ${JSON.stringify(v.uuid)} is repeated in the interval; cpu_share needs each VM once`, {
        details: { host: iv.hostId, seq: iv.seq, field: `vms[${i}].uuid`, value: v.uuid },
      });
    }
    seen.add(v.uuid);
  });
}

export class CpuShareMethod implements AttributionMethod {
  readonly name = CPU_SHARE_METHOD;

  attribute(iv: HostInterval, ctx: AttributionContext): AttributionResult {
    // One share per (kind, source, VM), in the order each was first added. VM shares sit by source and VM
    // position in one array, host_overhead and unallocated by kind and source: no map or key string per VM
    // (issue 15).
    checkUniqueUuids(iv);
    const nVms = iv.vms.length;
    const shares: AttributionShare[] = [];
    const vmSlots: (AttributionShare | undefined)[] = new Array<AttributionShare | undefined>(3 * nVms);
    const hostSlots: (AttributionShare | undefined)[] = [undefined, undefined, undefined, undefined, undefined, undefined];
    const share = (kind: EntityKind, vm: VmInterval | undefined, source: SourceName): AttributionShare => {
      const s: AttributionShare = { kind, vmUuid: vm?.uuid ?? '', vmName: vm?.name ?? '', tenant: vm?.tenant ?? '', source, dynamicJoules: 0, staticJoules: 0, lowJoules: 0, highJoules: 0 };
      shares.push(s);
      return s;
    };
    /** Adds to VM i's share of `source` (created with `vm`'s labels if new). */
    const addVm = (i: number, vm: VmInterval, source: SourceName, dyn: number, sta: number): void => {
      if (!(dyn > 0) && !(sta > 0)) return;
      const k = SOURCE_INDEX[source] * nVms + i;
      const s = (vmSlots[k] ??= share('vm', vm, source));
      if (dyn > 0) s.dynamicJoules += dyn;
      if (sta > 0) s.staticJoules += sta;
    };
    const addHost = (kind: 'host_overhead' | 'unallocated', source: SourceName, dyn: number, sta: number): void => {
      if (!(dyn > 0) && !(sta > 0)) return;
      const k = (kind === 'host_overhead' ? 0 : 3) + SOURCE_INDEX[source];
      const s = (hostSlots[k] ??= share(kind, undefined, source));
      if (dyn > 0) s.dynamicJoules += dyn;
      if (sta > 0) s.staticJoules += sta;
    };
    const weights = ctx.reservedWeights ?? DEFAULT_RESERVED_WEIGHTS;
    const dur = Math.max(0, iv.durationS);

    // ---- CPU-side sources: split by CPU seconds
    let vmCpu = 0;
    for (const v of iv.vms) vmCpu += pos(v.cpuSeconds);
    const overheadCpu = Math.max(0, pos(iv.hostCpu.busySeconds) - vmCpu);
    const totalCpu = vmCpu + overheadCpu;
    const hostStaticByVm = staticSplitWeightsByVm(iv.vms, ctx.policy, weights);
    for (const source of ['rapl', 'bmc_rest'] as const) {
      const m = pos(iv.measured[source]);
      if (m === 0) continue;
      const sta = Math.min(m, pos(ctx.staticPower.watts[source]) * dur);
      const dyn = m - sta;
      if (hostStaticByVm) for (let i = 0; i < nVms; i++) addVm(i, iv.vms[i]!, source, 0, sta * hostStaticByVm[i]!);
      else addHost('unallocated', source, 0, sta);
      if (totalCpu > 0) {
        for (let i = 0; i < nVms; i++) {
          const v = iv.vms[i]!;
          addVm(i, v, source, (dyn * pos(v.cpuSeconds)) / totalCpu, 0);
        }
        addHost('host_overhead', source, (dyn * overheadCpu) / totalCpu, 0);
      } else {
        addHost('unallocated', source, dyn, 0);
      }
    }

    // ---- GPU: per device, by GPU time
    const mGpu = pos(iv.measured.gpu);
    if (mGpu > 0) {
      const devices = iv.gpus.length;
      const staticPerDevice = devices > 0 ? (pos(ctx.staticPower.watts.gpu) / devices) * dur : 0;
      let covered = 0;
      for (const g of iv.gpus) {
        const j = pos(g.joules);
        covered += j;
        const sta = Math.min(j, staticPerDevice);
        const dyn = j - sta;
        const attached: { vm: VmInterval; i: number; util: number; passthrough: boolean }[] = [];
        for (let i = 0; i < nVms; i++) {
          const v = iv.vms[i]!;
          for (const vg of v.gpus) {
            if (vg.device !== g.device) continue;
            if (vg.passthrough || vg.holdsContext || vg.smUtilPct > 0) attached.push({ vm: v, i, util: pos(vg.smUtilPct) * clamp01(v.presence), passthrough: vg.passthrough });
          }
        }
        if (attached.length === 0) {
          addHost('unallocated', 'gpu', dyn, sta);
          continue;
        }
        const w = staticSplitWeights(
          attached.map((a) => a.vm),
          ctx.policy,
          weights,
        );
        if (w.size === 0) addHost('unallocated', 'gpu', 0, sta);
        else {
          for (const [uuid, f] of w) {
            // the VM of that uuid
            let i = -1;
            for (const a of attached) if (a.vm.uuid === uuid) i = a.i;
            addVm(i, iv.vms[i]!, 'gpu', 0, sta * f);
          }
        }
        const owners = attached.filter((a) => a.passthrough);
        const takers = owners.length > 0 ? owners : attached;
        let utilSum = 0;
        for (const a of takers) utilSum += a.util;
        for (const a of takers) addVm(a.i, a.vm, 'gpu', utilSum > 0 ? (dyn * a.util) / utilSum : dyn / takers.length, 0);
      }
      if (mGpu > covered) addHost('unallocated', 'gpu', mGpu - covered, 0);
    }

    // the shares are this call's own: reconciled in place, then their bounds set
    reconcileInPlace(shares, iv.measured);
    for (const s of shares) {
      const total = s.dynamicJoules + s.staticJoules;
      s.lowJoules = total;
      s.highJoules = total;
    }
    return {
      hostId: iv.hostId,
      seq: iv.seq,
      t0UnixNs: iv.t0UnixNs,
      t1UnixNs: iv.t1UnixNs,
      method: CPU_SHARE_METHOD,
      modelVersion: CPU_SHARE_VERSION,
      hardwareClass: iv.hardwareClass,
      note: iv.unusableSources?.length ? `not billed (counter reset or read error): ${iv.unusableSources.join(', ')}` : '',
      shares,
      measured: { ...iv.measured },
    };
  }
}

function pos(x: number | undefined): number {
  return x !== undefined && Number.isFinite(x) && x > 0 ? x : 0;
}

function clamp01(x: number): number {
  return Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0;
}

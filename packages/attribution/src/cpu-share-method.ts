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
 * Ends with `reconcile`, so Σ shares == measured per source exactly.
 */
import { reconcile } from './conservation.js';
import { DEFAULT_RESERVED_WEIGHTS, staticSplitWeights } from './idle-split.js';
import type { AttributionContext, AttributionMethod, AttributionResult, AttributionShare, EntityKind, HostInterval, SourceName, VmInterval } from './types.js';

export const CPU_SHARE_METHOD = 'cpu_share';
export const CPU_SHARE_VERSION = '1';

export class CpuShareMethod implements AttributionMethod {
  readonly name = CPU_SHARE_METHOD;

  attribute(iv: HostInterval, ctx: AttributionContext): AttributionResult {
    // One share per (kind, source, VM uuid), in the order each was first added; looked up by kind and
    // source, then by uuid (no key string per VM and source).
    const shares: AttributionShare[] = [];
    const slots = new Map<string, Map<string, AttributionShare>>();
    const add = (kind: EntityKind, vm: VmInterval | undefined, source: SourceName, dyn: number, sta: number): void => {
      if (!(dyn > 0) && !(sta > 0)) return;
      const slotKey = kind === 'vm' ? source : `${kind}|${source}`;
      let slot = slots.get(slotKey);
      if (!slot) slots.set(slotKey, (slot = new Map<string, AttributionShare>()));
      const uuid = vm?.uuid ?? '';
      let s = slot.get(uuid);
      if (!s) {
        s = { kind, vmUuid: uuid, vmName: vm?.name ?? '', tenant: vm?.tenant ?? '', source, dynamicJoules: 0, staticJoules: 0, lowJoules: 0, highJoules: 0 };
        slot.set(uuid, s);
        shares.push(s);
      }
      if (dyn > 0) s.dynamicJoules += dyn;
      if (sta > 0) s.staticJoules += sta;
    };
    const weights = ctx.reservedWeights ?? DEFAULT_RESERVED_WEIGHTS;
    const dur = Math.max(0, iv.durationS);
    const byUuid = new Map<string, VmInterval>();
    for (const v of iv.vms) byUuid.set(v.uuid, v);

    // ---- CPU-side sources: split by CPU seconds
    let vmCpu = 0;
    for (const v of iv.vms) vmCpu += pos(v.cpuSeconds);
    const overheadCpu = Math.max(0, pos(iv.hostCpu.busySeconds) - vmCpu);
    const totalCpu = vmCpu + overheadCpu;
    const hostStatic = staticSplitWeights(iv.vms, ctx.policy, weights);
    for (const source of ['rapl', 'bmc_rest'] as const) {
      const m = pos(iv.measured[source]);
      if (m === 0) continue;
      const sta = Math.min(m, pos(ctx.staticPower.watts[source]) * dur);
      const dyn = m - sta;
      if (hostStatic.size === 0) add('unallocated', undefined, source, 0, sta);
      else for (const [uuid, w] of hostStatic) add('vm', byUuid.get(uuid), source, 0, sta * w);
      if (totalCpu > 0) {
        for (const v of iv.vms) add('vm', v, source, (dyn * pos(v.cpuSeconds)) / totalCpu, 0);
        add('host_overhead', undefined, source, (dyn * overheadCpu) / totalCpu, 0);
      } else {
        add('unallocated', undefined, source, dyn, 0);
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
        const attached: { vm: VmInterval; util: number; passthrough: boolean }[] = [];
        for (const v of iv.vms) {
          for (const vg of v.gpus) {
            if (vg.device !== g.device) continue;
            if (vg.passthrough || vg.holdsContext || vg.smUtilPct > 0) attached.push({ vm: v, util: pos(vg.smUtilPct) * clamp01(v.presence), passthrough: vg.passthrough });
          }
        }
        if (attached.length === 0) {
          add('unallocated', undefined, 'gpu', dyn, sta);
          continue;
        }
        const w = staticSplitWeights(
          attached.map((a) => a.vm),
          ctx.policy,
          weights,
        );
        if (w.size === 0) add('unallocated', undefined, 'gpu', 0, sta);
        else for (const [uuid, f] of w) add('vm', byUuid.get(uuid), 'gpu', 0, sta * f);
        const owners = attached.filter((a) => a.passthrough);
        const takers = owners.length > 0 ? owners : attached;
        let utilSum = 0;
        for (const a of takers) utilSum += a.util;
        for (const a of takers) add('vm', a.vm, 'gpu', utilSum > 0 ? (dyn * a.util) / utilSum : dyn / takers.length, 0);
      }
      if (mGpu > covered) add('unallocated', undefined, 'gpu', mGpu - covered, 0);
    }

    // reconcile returns new share objects: their bounds are set in place
    const reconciled = reconcile(shares, iv.measured);
    for (const s of reconciled) {
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
      shares: reconciled,
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

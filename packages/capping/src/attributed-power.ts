/**
 * Turns wattsplit attribution results into the powers the advisor plans with: each VM's attributed power
 * and the host's measured power. The advisor needs these rather than CPU shares: two VMs at the same CPU
 * time can draw very different power.
 *
 * Contract: host and VM powers come from the SAME intervals and the SAME divisor (the seconds those
 * intervals cover), so by conservation host power = Σ VM power + non-VM power (host overhead and
 * unallocated idle), and Σ VM power never exceeds the host's. A VM present in only part of the window
 * contributes its joules over the whole window (its mean power there), not over its own seconds: that
 * would count the same watts at two different rates and can make the VMs outweigh their host.
 */
import type { AttributionResult } from '@wattsplit/attribution';
import { WattsplitError } from '@wattsplit/wire';

export interface AttributedVmPower {
  uuid: string;
  tenant: string;
  /** Attributed joules over the window's seconds (the host's divisor), W. */
  powerW: number;
  joules: number;
  /** Seconds of the window the VM was present in (informative; not the divisor). */
  seconds: number;
}

/** One host's power over a window of attribution results, every part over the same divisor. */
export interface HostPowerBreakdown {
  hostId: string;
  /** Seconds the host's intervals cover: the divisor of every power here. */
  seconds: number;
  /** Measured host power (sum over sources), W. */
  powerW: number;
  /** Σ of the VMs' powerW. */
  vmW: number;
  /** Attributed to the host itself (hypervisor overhead) and left unallocated (idle), W. */
  nonVmW: number;
  vms: AttributedVmPower[];
}

const seconds = (r: AttributionResult): number => (r.t1UnixNs - r.t0UnixNs) / 1e9;

function checkResult(r: AttributionResult, i: number): void {
  if (!(r.t1UnixNs > r.t0UnixNs)) {
    throw new WattsplitError('CAP_INPUT_INVALID', `attribution results[${i}] host=${JSON.stringify(r.hostId)} seq=${r.seq}: t1UnixNs=${r.t1UnixNs} must be after t0UnixNs=${r.t0UnixNs}`, {
      details: { field: 't1UnixNs', value: r.t1UnixNs },
    });
  }
}

/** Seconds covered by the results (one host's intervals, each counted once). */
function windowSeconds(results: readonly AttributionResult[]): number {
  let s = 0;
  results.forEach((r, i) => {
    checkResult(r, i);
    s += seconds(r);
  });
  return s;
}

/** Mean attributed power per VM over the given results (one host's recent intervals), by VM uuid. */
export function attributedVmPowerW(results: readonly AttributionResult[]): Map<string, AttributedVmPower> {
  const window = windowSeconds(results);
  const out = new Map<string, AttributedVmPower>();
  for (const r of results) {
    const dt = seconds(r);
    const seen = new Set<string>();
    for (const s of r.shares) {
      if (s.kind !== 'vm') continue;
      const cur = out.get(s.vmUuid) ?? { uuid: s.vmUuid, tenant: s.tenant, powerW: 0, joules: 0, seconds: 0 };
      cur.joules += s.dynamicJoules + s.staticJoules;
      if (!seen.has(s.vmUuid)) cur.seconds += dt; // a VM has one share per source in an interval
      seen.add(s.vmUuid);
      out.set(s.vmUuid, cur);
    }
  }
  for (const v of out.values()) v.powerW = window > 0 ? v.joules / window : 0;
  return out;
}

/** Mean measured host power over the results (sum over sources), W: the divisor attributedVmPowerW uses. */
export function measuredHostPowerW(results: readonly AttributionResult[]): number {
  const window = windowSeconds(results);
  let j = 0;
  for (const r of results) j += Object.values(r.measured).reduce((a, b) => a + b, 0);
  return window > 0 ? j / window : 0;
}

/**
 * Per host (in order of first appearance): measured power, VM powers and the non-VM rest, from one
 * window of results of one method. Results may mix hosts; each host's intervals are its own window.
 */
export function hostPowerBreakdown(results: readonly AttributionResult[]): HostPowerBreakdown[] {
  const byHost = new Map<string, AttributionResult[]>();
  results.forEach((r, i) => {
    checkResult(r, i);
    const l = byHost.get(r.hostId) ?? [];
    l.push(r);
    byHost.set(r.hostId, l);
  });
  return [...byHost].map(([hostId, rs]) => {
    const window = windowSeconds(rs);
    const vms = [...attributedVmPowerW(rs).values()];
    let nonVmJ = 0;
    for (const r of rs) for (const s of r.shares) if (s.kind !== 'vm') nonVmJ += s.dynamicJoules + s.staticJoules;
    return {
      hostId,
      seconds: window,
      powerW: measuredHostPowerW(rs),
      vmW: vms.reduce((a, v) => a + v.powerW, 0),
      nonVmW: window > 0 ? nonVmJ / window : 0,
      vms,
    };
  });
}

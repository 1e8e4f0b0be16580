/**
 * Turns wattsplit attribution results into the powers the advisor plans with: each VM's attributed power
 * (its dynamic + static joules over the seconds it was present) and the host's measured power. The
 * advisor needs these rather than CPU shares: two VMs at the same CPU time can draw very different power.
 */
import type { AttributionResult } from '@wattsplit/attribution';
import { WattsplitError } from '@wattsplit/wire';

export interface AttributedVmPower {
  uuid: string;
  tenant: string;
  powerW: number;
  joules: number;
  seconds: number;
}

const seconds = (r: AttributionResult): number => (r.t1UnixNs - r.t0UnixNs) / 1e9;

function checkResult(r: AttributionResult, i: number): void {
  if (!(r.t1UnixNs > r.t0UnixNs)) {
    throw new WattsplitError('CAP_INPUT_INVALID', `attribution results[${i}] host=${JSON.stringify(r.hostId)} seq=${r.seq}: t1UnixNs=${r.t1UnixNs} must be after t0UnixNs=${r.t0UnixNs}`, {
      details: { field: 't1UnixNs', value: r.t1UnixNs },
    });
  }
}

/** Mean attributed power per VM over the given results (one host's recent intervals), by VM uuid. */
export function attributedVmPowerW(results: readonly AttributionResult[]): Map<string, AttributedVmPower> {
  const out = new Map<string, AttributedVmPower>();
  results.forEach((r, i) => {
    checkResult(r, i);
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
  });
  for (const v of out.values()) v.powerW = v.seconds > 0 ? v.joules / v.seconds : 0;
  return out;
}

/** Mean measured host power over the results (sum over sources), W. */
export function measuredHostPowerW(results: readonly AttributionResult[]): number {
  let j = 0;
  let s = 0;
  results.forEach((r, i) => {
    checkResult(r, i);
    j += Object.values(r.measured).reduce((a, b) => a + b, 0);
    s += seconds(r);
  });
  return s > 0 ? j / s : 0;
}

/**
 * Per-second predicted host power under a list of actions. Second t stands for [t, t+1) and holds the
 * HIGHEST power the host can draw in it: something that adds power counts in every second it touches,
 * something that removes power only in the seconds it fully covers. A migration's transient therefore
 * covers [floor(start), ceil(switchover)); the VM leaves the source at ceil(switchover) and arrives on the
 * destination at floor(switchover) (in that second both hosts carry it).
 *
 * The baseline is today's measured host power, held flat: the advisor plans against the present, it does
 * not forecast load.
 */
import type { CapAction, CapHost } from './cap-plan-types.js';

export interface PowerStep {
  hostId: string;
  fromS: number;
  untilS: number;
  watts: number;
}

/** The power steps one action causes, in integer seconds clipped to [0, horizonS). */
export function stepsOf(a: CapAction, horizonS: number): PowerStep[] {
  const clip = (s: PowerStep): PowerStep[] => {
    const fromS = Math.max(0, s.fromS);
    const untilS = Math.min(horizonS, s.untilS);
    return untilS > fromS && s.watts !== 0 ? [{ ...s, fromS, untilS }] : [];
  };
  switch (a.kind) {
    case 'throttle':
      return clip({ hostId: a.hostId, fromS: Math.ceil(a.fromS), untilS: a.untilS === null ? horizonS : Math.floor(a.untilS), watts: -a.shedW });
    case 'migrate': {
      const start = Math.floor(a.startS);
      const leave = Math.ceil(a.switchoverS);
      const arrive = Math.floor(a.switchoverS);
      return [
        ...clip({ hostId: a.fromHostId, fromS: start, untilS: leave, watts: a.sourceExtraW }),
        ...clip({ hostId: a.toHostId, fromS: start, untilS: leave, watts: a.destinationExtraW }),
        ...clip({ hostId: a.fromHostId, fromS: leave, untilS: horizonS, watts: -a.vmPowerW }),
        ...clip({ hostId: a.toHostId, fromS: arrive, untilS: horizonS, watts: a.vmPowerW }),
      ];
    }
  }
}

export function applySteps(timelines: Map<string, Float64Array>, steps: readonly PowerStep[]): void {
  for (const s of steps) {
    const tl = timelines.get(s.hostId);
    if (!tl) continue;
    for (let t = s.fromS; t < s.untilS; t++) tl[t] = tl[t]! + s.watts;
  }
}

/** Predicted per-second power of every host under `actions`, any actions (the advisor's or a naive plan's). */
export function simulatePlan(hosts: readonly CapHost[], actions: readonly CapAction[], horizonS: number): Map<string, number[]> {
  const tls = new Map<string, Float64Array>(hosts.map((h) => [h.hostId, new Float64Array(horizonS).fill(h.powerW)]));
  for (const a of actions) applySteps(tls, stepsOf(a, horizonS));
  return new Map([...tls].map(([k, v]) => [k, Array.from(v, (w) => Math.round(w * 1e6) / 1e6)]));
}

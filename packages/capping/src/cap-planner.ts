/**
 * The power-cap advisor. For every host over its cap it compares
 * - throttling: CPU quotas on its VMs (lowest priority first, proportionally within a priority) that
 *   shed the excess for the whole horizon, and
 * - throttle-then-migrate: for each movable VM and each other host, shed enough on the source that the
 *   source stays under its cap INCLUDING the migration transient, migrate, lift the throttles at
 *   switchover (keeping only what the source still needs without the VM), with the destination checked
 *   second by second under its own cap including ITS transient and the arriving VM,
 * and picks the cheapest safe option, cost = Σ throttled W × s (weighted by 1 + priority) + migration
 * overhead J. Destinations' timelines carry earlier decisions, so two sources never count the same headroom.
 *
 * A host over its cap can never be fixed by a migration alone: its power is already above the cap and
 * the transient raises it further until switchover. That is what the naive advisor gets wrong.
 */
import { WattsplitError } from '@wattsplit/wire';
import type { CapAction, CapHost, CapPlan, CapVm, HostPlan, HostPlanStatus, MigrateAction, PlanCapsInput, ThrottleAction } from './cap-plan-types.js';
import { MigrationTransientModel } from './migration-transient-model.js';
import { applySteps, stepsOf, type PowerStep } from './power-timeline.js';

export interface PlanCapsOptions {
  model?: MigrationTransientModel;
  /** Stay this far under every cap, W. Default 0. */
  marginW?: number;
  /** Seconds between setting the throttles and starting the migration (cgroup quota takes effect, power settles). Default 1. */
  throttleLeadS?: number;
  /** Floor of a VM's power under throttling when it gives no minPowerW, as a fraction of its power. Default 0.1. */
  defaultMinPowerFraction?: number;
  /** At most this many notes per host. Default 12. */
  maxNotesPerHost?: number;
}

interface Shed {
  vm: CapVm;
  shedW: number;
}

interface Option {
  status: 'throttle' | 'throttle-then-migrate' | 'infeasible';
  actions: CapAction[];
  cost: number;
  /** Lowest headroom the destination keeps, W (tie-break: more is better). */
  destHeadroomW: number;
  destination?: string;
}

const EPS = 1e-9;
const round3 = (w: number): number => Math.round(w * 1000) / 1000;
/** Rounds up to 1e-3 (watts shed, seconds of a transient): a plan rounded this way is never less safe than computed. */
const ceil3 = (w: number): number => Math.ceil(w * 1000 - 1e-6) / 1000;

function invalid(path: string, value: unknown, why: string): never {
  throw new WattsplitError('CAP_INPUT_INVALID', `planCaps: ${path}=${JSON.stringify(value)} ${why}`, { details: { field: path, value } });
}

function validate(input: PlanCapsInput): void {
  if (!Array.isArray(input.hosts)) invalid('hosts', input.hosts, 'must be an array');
  if (!(input.linkBps > 0) || !Number.isFinite(input.linkBps)) invalid('linkBps', input.linkBps, 'must be a positive number of bytes/s');
  if (!Number.isInteger(input.horizonS) || input.horizonS < 1 || input.horizonS > 86_400) invalid('horizonS', input.horizonS, 'must be an integer number of seconds in [1, 86400]');
  const hosts = new Set<string>();
  const vms = new Map<string, string>();
  input.hosts.forEach((h, i) => {
    const at = `hosts[${i}]`;
    if (!h.hostId) invalid(`${at}.hostId`, h.hostId, 'must be set');
    if (hosts.has(h.hostId)) invalid(`${at}.hostId`, h.hostId, 'is repeated');
    hosts.add(h.hostId);
    if (!(h.capW > 0) || !Number.isFinite(h.capW)) invalid(`${at}.capW`, h.capW, 'must be a positive number of watts');
    if (!(h.powerW >= 0) || !Number.isFinite(h.powerW)) invalid(`${at}.powerW`, h.powerW, 'must be a number of watts ≥ 0');
    let sum = 0;
    h.vms.forEach((v, j) => {
      const vat = `${at}.vms[${j}]`;
      if (!v.uuid) invalid(`${vat}.uuid`, v.uuid, 'must be set');
      const other = vms.get(v.uuid);
      if (other !== undefined) invalid(`${vat}.uuid`, v.uuid, `is also on host ${JSON.stringify(other)}`);
      vms.set(v.uuid, h.hostId);
      if (!(v.powerW >= 0) || !Number.isFinite(v.powerW)) invalid(`${vat}.powerW`, v.powerW, 'must be a number of watts ≥ 0 (the attributed power)');
      if (!(v.memoryBytes >= 0) || !Number.isFinite(v.memoryBytes)) invalid(`${vat}.memoryBytes`, v.memoryBytes, 'must be a number of bytes ≥ 0');
      if (v.dirtyRateBps !== undefined && (!(v.dirtyRateBps >= 0) || !Number.isFinite(v.dirtyRateBps))) invalid(`${vat}.dirtyRateBps`, v.dirtyRateBps, 'must be a number of bytes/s ≥ 0');
      if (v.minPowerW !== undefined && (!(v.minPowerW >= 0) || v.minPowerW > v.powerW)) invalid(`${vat}.minPowerW`, v.minPowerW, `must be in [0, powerW=${v.powerW}]`);
      if (v.priority !== undefined && !Number.isFinite(v.priority)) invalid(`${vat}.priority`, v.priority, 'must be a finite number');
      sum += v.powerW;
    });
    if (sum > h.powerW * (1 + 1e-6) + 1e-6) invalid(`${at}.vms[*].powerW`, round3(sum), `sum exceeds the host's measured powerW=${h.powerW}: attributed shares cannot exceed what was measured`);
  });
}

export function planCaps(input: PlanCapsInput, opts: PlanCapsOptions = {}): CapPlan {
  validate(input);
  const model = opts.model ?? new MigrationTransientModel();
  const marginW = opts.marginW ?? 0;
  const lead = opts.throttleLeadS ?? 1;
  const minFrac = opts.defaultMinPowerFraction ?? 0.1;
  const maxNotes = opts.maxNotesPerHost ?? 12;
  if (!(marginW >= 0)) invalid('options.marginW', marginW, 'must be ≥ 0');
  if (!Number.isInteger(lead) || lead < 0) invalid('options.throttleLeadS', lead, 'must be an integer ≥ 0');
  if (!(minFrac >= 0 && minFrac <= 1)) invalid('options.defaultMinPowerFraction', minFrac, 'must be in [0, 1]');
  const H = input.horizonS;
  const { sourceExtraW, destinationExtraW } = model.params;

  const tls = new Map<string, Float64Array>(input.hosts.map((h) => [h.hostId, new Float64Array(H).fill(h.powerW)]));
  const limit = (h: CapHost): number => h.capW - marginW;
  const minPower = (v: CapVm): number => v.minPowerW ?? v.powerW * minFrac;
  const avail = (v: CapVm): number => Math.max(0, v.powerW - minPower(v));
  const weight = (v: CapVm): number => 1 + Math.max(0, v.priority ?? 0);
  const quota = (v: CapVm, shedW: number): number => (avail(v) > 0 ? Math.max(0, 1 - shedW / (v.powerW - minPower(v))) : 1);

  /** Sheds `need` W from `pool`: lowest priority first, proportionally to what each can give within a priority. */
  const allocate = (need: number, pool: readonly CapVm[], already: ReadonlyMap<string, number> = new Map()): Shed[] | undefined => {
    if (need <= EPS) return [];
    const left = (v: CapVm): number => Math.max(0, avail(v) - (already.get(v.uuid) ?? 0));
    const levels = [...new Set(pool.map((v) => v.priority ?? 0))].sort((a, b) => a - b);
    const out: Shed[] = [];
    let rest = need;
    for (const p of levels) {
      const group = pool.filter((v) => (v.priority ?? 0) === p && left(v) > EPS);
      const total = group.reduce((a, v) => a + left(v), 0);
      if (total <= EPS) continue;
      const frac = Math.min(1, rest / total);
      for (const v of group) out.push({ vm: v, shedW: left(v) * frac });
      rest -= total * frac;
      if (rest <= EPS) return out;
    }
    return undefined;
  };
  const throttle = (h: CapHost, s: Shed, fromS: number, untilS: number | null, reason: string, alreadyShed = 0): ThrottleAction => ({
    kind: 'throttle',
    hostId: h.hostId,
    vmUuid: s.vm.uuid,
    tenant: s.vm.tenant,
    shedW: ceil3(s.shedW),
    cpuQuotaFraction: round3(quota(s.vm, s.shedW + alreadyShed)),
    fromS,
    untilS,
    reason,
  });

  const hostsById = new Map(input.hosts.map((h) => [h.hostId, h]));
  /** Highest predicted power of each host so far (its timeline is today's flat power until something is committed on it). */
  const tlMax = new Map(input.hosts.map((h) => [h.hostId, h.powerW]));
  /** Highest sum of `steps` over any second (piecewise constant: the maximum is at a piece start). */
  const maxDelta = (steps: readonly PowerStep[]): number => {
    let max = -Infinity;
    for (const t of [0, ...steps.flatMap((x) => [x.fromS, x.untilS])]) {
      if (t >= H) continue;
      let d = 0;
      for (const x of steps) if (x.fromS <= t && t < x.untilS) d += x.watts;
      max = Math.max(max, d);
    }
    return max;
  };
  /** Range-maximum tables of the hosts something was committed on (others are flat at their measured power). */
  const rangeMax = new Map<string, RangeMax>();
  /**
   * Lowest headroom (limit − predicted power) of one host over the horizon with `steps` (all on that host)
   * added, `stepsMax` = maxDelta(steps). Exact: for a flat host the peak plus the highest step sum; else the
   * delta is piecewise constant, so the peak is the largest (range max of the timeline + delta) over its pieces.
   */
  const cuts = new Float64Array(64);
  const headroom = (hostId: string, steps: readonly PowerStep[], stepsMax = maxDelta(steps)): number => {
    const h = hostsById.get(hostId)!;
    const table = rangeMax.get(hostId);
    if (!table) return limit(h) - (tlMax.get(hostId)! + stepsMax);
    // Cheap rejection: the last second carries every step that runs to the end of the horizon.
    let last = 0;
    for (const x of steps) if (x.untilS >= H) last += x.watts;
    if (limit(h) - (tls.get(hostId)![H - 1]! + last) < -1e-6) return limit(h) - (tls.get(hostId)![H - 1]! + last);
    // Sorted distinct piece boundaries (insertion sort into a scratch buffer: no allocation per call).
    let n = 0;
    const put = (t: number): void => {
      if (t > H || n >= cuts.length) return;
      let i = n;
      while (i > 0 && cuts[i - 1]! > t) i--;
      if (i > 0 && cuts[i - 1] === t) return;
      cuts.copyWithin(i + 1, i, n);
      cuts[i] = t;
      n++;
    };
    put(0);
    put(H);
    for (const x of steps) {
      put(x.fromS);
      put(x.untilS);
    }
    let peak = -Infinity;
    for (let i = 0; i + 1 < n; i++) {
      const a = cuts[i]!;
      let d = 0;
      for (const x of steps) if (x.fromS <= a && a < x.untilS) d += x.watts;
      peak = Math.max(peak, table.max(a, cuts[i + 1]!) + d);
    }
    return limit(h) - peak;
  };
  const stepsOn = (hostId: string, acts: readonly CapAction[]): PowerStep[] => acts.flatMap((a) => stepsOf(a, H)).filter((x) => x.hostId === hostId);

  const actions: CapAction[] = [];
  const status = new Map<string, HostPlanStatus>();
  const notes = new Map<string, string[]>();
  const note = (hostId: string, n: string): void => {
    const l = notes.get(hostId) ?? [];
    if (l.length < maxNotes) l.push(n);
    else if (l.length === maxNotes) l.push('… more options rejected');
    notes.set(hostId, l);
  };

  /** Switchover seconds (rounded up) of the migrations planned so far: later migrations may start there. */
  const switchovers = new Set<number>();
  const over = input.hosts.filter((h) => h.powerW > limit(h) + EPS).sort((a, b) => b.powerW - limit(b) - (a.powerW - limit(a)));
  for (const src of over) {
    const excess = src.powerW - limit(src);
    const options: Option[] = [];

    // Option A: throttle the excess away for the whole horizon.
    const shedAll = allocate(excess, src.vms);
    if (shedAll) {
      const acts = shedAll.map((s) => throttle(src, s, 0, null, `host ${src.hostId} is ${round3(excess)} W over its cap ${src.capW} W`));
      options.push({ status: 'throttle', actions: acts, cost: shedAll.reduce((a, s) => a + s.shedW * H * weight(s.vm), 0), destHeadroomW: Infinity });
    }

    // Option B: throttle so the source absorbs the transient, migrate one VM, lift throttles at switchover.
    const windowNeed = src.powerW + sourceExtraW - limit(src);
    for (const v of src.vms) {
      if (v.movable === false) continue;
      const own = Math.min(avail(v), windowNeed);
      const others = src.vms.filter((o) => o !== v);
      const otherWindow = allocate(windowNeed - own, others);
      if (!otherWindow) {
        note(src.hostId, `migrate ${v.uuid}: the source must shed ${round3(windowNeed)} W to stay under its cap during the +${sourceExtraW} W transient; only ${round3(src.vms.reduce((a, o) => a + avail(o), 0))} W can be throttled`);
        continue;
      }
      const est = model.estimate({ memoryBytes: v.memoryBytes, dirtyRateBps: (v.dirtyRateBps ?? model.params.defaultDirtyRateBps) * quota(v, own) }, input.linkBps);
      if (!est.converged) {
        note(src.hostId, `migrate ${v.uuid}: pre-copy does not converge (dirty rate ≥ usable link rate even at CPU quota ${round3(quota(v, own))})`);
        continue;
      }
      const firstStart = own + otherWindow.reduce((a, s) => a + s.shedW, 0) > EPS ? lead : 0;
      const durationS = ceil3(est.durationS);
      // Start as soon as the throttles took effect; if no destination has room then (another migration's
      // transient is on it), try starting when one of the migrations already planned has switched over.
      const starts = [firstStart, ...[...switchovers].filter((t) => t > firstStart).sort((a, b) => a - b)].filter((t) => t + durationS <= H).slice(0, 8);
      if (starts.length === 0) {
        note(src.hostId, `migrate ${v.uuid}: takes ${round3(est.durationS)} s, switchover after the ${H} s horizon`);
        continue;
      }
      const residualNeed = src.powerW - v.powerW - limit(src);
      const residual = allocate(residualNeed, others);
      if (!residual) {
        note(src.hostId, `migrate ${v.uuid}: without it the host still needs ${round3(residualNeed)} W shed, more than its other VMs can give`);
        continue;
      }
      let found: Option | undefined;
      let closest = -Infinity;
      for (const startS of starts) {
        const switchoverS = startS + durationS;
        const leave = Math.ceil(switchoverS);
        const why = `keep ${src.hostId} under its cap ${src.capW} W during the +${sourceExtraW} W migration transient of ${v.uuid}`;
        const base: CapAction[] = [];
        if (own > EPS) base.push(throttle(src, { vm: v, shedW: own }, 0, leave, why));
        for (const s of otherWindow) base.push(throttle(src, s, 0, leave, why));
        for (const s of residual) base.push(throttle(src, s, leave, null, `${src.hostId} is still ${round3(residualNeed)} W over its cap without ${v.uuid}`));
        const throttleCost =
          own * leave * weight(v) + otherWindow.reduce((a, s) => a + s.shedW * leave * weight(s.vm), 0) + residual.reduce((a, s) => a + s.shedW * (H - leave) * weight(s.vm), 0);
        const mig = (toHostId: string): MigrateAction => ({
          kind: 'migrate',
          vmUuid: v.uuid,
          tenant: v.tenant,
          fromHostId: src.hostId,
          toHostId,
          startS,
          durationS,
          switchoverS,
          vmPowerW: v.powerW,
          sourceExtraW,
          destinationExtraW,
          rounds: est.rounds,
          transferredBytes: Math.round(est.transferredBytes),
          reason: `${src.hostId} is ${round3(excess)} W over its cap; ${v.uuid} takes ${v.powerW} W with it at switchover${startS > firstStart ? ` (starts at ${startS} s, after an earlier migration's switchover, to share no destination transient)` : ''}`,
        });
        // The source side does not depend on the destination: check it once.
        const srcHead = headroom(src.hostId, stepsOn(src.hostId, [...base, mig('')]));
        if (srcHead < -1e-6) {
          note(src.hostId, `migrate ${v.uuid}: the source would still exceed its cap by ${round3(-srcHead)} W during the migration`);
          break;
        }
        // Every destination costs the same for this VM and start: keep the one left with the most headroom.
        const dstSteps = stepsOn('', [mig('')]);
        const dstMax = maxDelta(dstSteps);
        let best: { hostId: string; head: number } | undefined;
        for (const dst of input.hosts) {
          if (dst === src) continue;
          const head = headroom(dst.hostId, dstSteps, dstMax);
          if (head < -1e-6) closest = Math.max(closest, head);
          else if (!best || head > best.head) best = { hostId: dst.hostId, head };
        }
        if (best) {
          found = { status: 'throttle-then-migrate', actions: [...base, mig(best.hostId)], cost: throttleCost + est.overheadJoules, destHeadroomW: best.head, destination: best.hostId };
          break;
        }
      }
      if (found) options.push(found);
      else if (input.hosts.length > 1 && closest > -Infinity) {
        note(src.hostId, `migrate ${v.uuid}: no destination has ${round3(v.powerW)} W for the VM plus ${destinationExtraW} W for its transient under its cap (closest misses by ${round3(-closest)} W)`);
      }
    }

    options.sort((a, b) => a.cost - b.cost || b.destHeadroomW - a.destHeadroomW);
    let chosen = options[0];
    if (!chosen) {
      // Nothing is safe: throttle everything to its floor and say how far over the host stays.
      const shed = src.vms.filter((v) => avail(v) > EPS).map((v) => ({ vm: v, shedW: avail(v) }));
      const got = shed.reduce((a, s) => a + s.shedW, 0);
      note(src.hostId, `infeasible: throttling every VM to its floor sheds ${round3(got)} W of the ${round3(excess)} W needed; ${round3(excess - got)} W over remains`);
      chosen = { status: 'infeasible', actions: shed.map((s) => throttle(src, s, 0, null, `host ${src.hostId} cannot get under its cap; throttled to the floor`)), cost: Infinity, destHeadroomW: 0 };
    } else if (chosen.status === 'throttle') {
      const alt = options.find((o) => o.status === 'throttle-then-migrate');
      note(src.hostId, alt ? `throttling (cost ${round3(chosen.cost)} W·s) is cheaper than the best migration to ${alt.destination} (cost ${round3(alt.cost)} W·s) over ${H} s` : 'no safe migration exists: throttling instead');
    }
    actions.push(...chosen.actions);
    const committed = chosen.actions.flatMap((a) => stepsOf(a, H));
    applySteps(tls, committed);
    for (const id of new Set(committed.map((x) => x.hostId))) {
      rangeMax.set(id, new RangeMax(tls.get(id)!));
      tlMax.set(id, Math.max(...tls.get(id)!));
    }
    status.set(src.hostId, chosen.status);
    if (chosen.destination) status.set(chosen.destination, 'destination');
    for (const a of chosen.actions) if (a.kind === 'migrate') switchovers.add(Math.ceil(a.switchoverS));
  }

  const touched = new Set<string>([...status.keys()]);
  const hosts: HostPlan[] = input.hosts
    .filter((h) => touched.has(h.hostId))
    .map((h) => {
      const timelineW = Array.from(tls.get(h.hostId)!, (w) => Math.round(w * 1e6) / 1e6);
      return {
        hostId: h.hostId,
        capW: h.capW,
        powerW: h.powerW,
        status: status.get(h.hostId) ?? 'within-cap',
        timelineW,
        peakW: Math.max(...timelineW),
        overCapSeconds: timelineW.filter((w) => w > h.capW + 1e-6).length,
        notes: notes.get(h.hostId) ?? [],
      };
    });
  return { actions, hosts, safe: hosts.every((h) => h.overCapSeconds === 0), horizonS: H };
}

/** Sparse table: the maximum of any range [a, b) of a fixed array in O(1). */
class RangeMax {
  private readonly levels: Float64Array[];
  constructor(values: Float64Array) {
    this.levels = [Float64Array.from(values)];
    for (let k = 1; 1 << k <= values.length; k++) {
      const prev = this.levels[k - 1]!;
      const half = 1 << (k - 1);
      const cur = new Float64Array(values.length - (1 << k) + 1);
      for (let i = 0; i < cur.length; i++) cur[i] = Math.max(prev[i]!, prev[i + half]!);
      this.levels.push(cur);
    }
  }
  /** max of values[a..b), b > a. */
  max(a: number, b: number): number {
    const k = 31 - Math.clz32(b - a);
    const l = this.levels[k]!;
    return Math.max(l[a]!, l[b - (1 << k)]!);
  }
}

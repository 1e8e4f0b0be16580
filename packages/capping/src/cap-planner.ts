/**
 * The power-cap advisor. Every cap is a SCOPE: a host, or a group of hosts (rack, PDU, row, any named
 * set, nested or overlapping) whose power is the sum of its hosts' plus its own `otherW`. Each scope's
 * limit is its cap less the headroom margin. While some scope is over its limit in some second, the
 * advisor takes the one furthest over and compares, by SLA cost:
 * - throttling: shed the excess from the scope's VMs for the whole horizon (lowest priority first,
 *   proportionally within a priority), by DVFS where the host offers it (the same watts cost less work:
 *   dynamic power falls as f^α, CPU-bound work as f), else by CPU quota;
 * - moving one VM out of the scope, in each migration mode (pre-copy, pre-copy with the bandwidth capped,
 *   post-copy), to each host outside it: throttle the source so every scope holding it stays under its
 *   limit INCLUDING the migration's extra watts, start one lead second later, lift the throttles when the
 *   VM's power has left (keeping what the scope still needs without it), with every scope holding the
 *   destination checked second by second with its transient and the arriving VM.
 * SLA cost = Σ over VMs of (1 + priority) × (slowdown × seconds + downtime × downtimeCostFactor): a
 * throttle's slowdown for as long as it holds; pre-copy's dirty-logging slowdown for the transfer (and on
 * a CPU-saturated source the slowdown of every guest whose CPU the copy takes instead of adding watts);
 * post-copy's remote-fault slowdown while the pages arrive. Ties go to less migration energy, then to
 * the destination left with the most headroom. The plan's notes say what each option would have cost.
 *
 * Invariants (tested): a committed decision brings its target scope under its limit in every second and
 * never raises any other scope above its limit in a second where it was not already above; so scopes
 * are fixed one at a time and the loop ends. Timelines are per second and hold the highest power the
 * host can draw in that second (see power-timeline.ts), from the forecast bound where one is given.
 *
 * A host over its cap can never be fixed by a migration alone: its power is already above the cap and
 * the transient raises it further until switchover. That is what the naive advisor gets wrong.
 */
import { WattsplitError } from '@wattsplit/wire';
import type { CapAction, CapGroup, CapHost, CapPlan, CapVm, GroupPlan, HostPlan, HostPlanStatus, MigrateAction, PlanCapsInput, ThrottleAction, ThrottleMethod } from './cap-plan-types.js';
import { MIGRATION_MODES, MigrationTransientModel, type MigrationMode, type ModeEstimate } from './migration-transient-model.js';
import { applySteps, baselineOf, groupHosts, groupOtherW, stepsOf, type PowerStep } from './power-timeline.js';

export interface PlanCapsOptions {
  model?: MigrationTransientModel;
  /** Stay this far under every cap, W. Default 0. */
  marginW?: number;
  /** And this share of every cap, e.g. 0.02 keeps 2 % free. Default 0. */
  marginFraction?: number;
  /** Seconds between setting the throttles and starting the migration (cgroup quota takes effect, power settles). Default 1. */
  throttleLeadS?: number;
  /** Floor of a VM's power under throttling when it gives no minPowerW, as a fraction of its power. Default 0.1. */
  defaultMinPowerFraction?: number;
  /** At most this many notes per host or group. Default 12. */
  maxNotesPerHost?: number;
  /** Migration modes the advisor may use. Default all: pre-copy, pre-copy-throttled, post-copy. */
  modes?: MigrationMode[];
  /**
   * Migrations per cap: when the best move leaves its cap still over (throttled for the rest of the
   * horizon), the advisor commits the move without those throttles and decides again, up to this many
   * moves; the last decision keeps its throttles. Default 4.
   */
  maxMovesPerScope?: number;
  /** Bandwidth shares tried for pre-copy-throttled. Default [0.5, 0.25]. */
  throttledBandwidthFractions?: number[];
  /** Dynamic power ∝ frequency^α under DVFS. Default 2 (voltage does not fall all the way with frequency). */
  dvfsPowerExponent?: number;
  /** Lowest frequency DVFS may set, as a fraction of the maximum. Default 0.5. */
  dvfsMinFrequency?: number;
  /** One second of downtime costs this many seconds of full slowdown. Default 1. */
  downtimeCostFactor?: number;
}

interface Shed {
  vm: CapVm;
  shedW: number;
}

/** A cap: one host or a group of hosts. `tl` is its predicted power per second under the decisions so far. */
interface Scope {
  id: string;
  kind: 'host' | 'group';
  groupKind: string;
  capW: number;
  limit: number;
  hostIds: readonly string[];
  hostSet: ReadonlySet<string>;
  tl: Float64Array;
  table: RangeMax;
  max: number;
}

/** A move's cost before its destination is searched. */
interface Probe {
  probe: true;
  cost: number;
  energyJ: number;
}

interface Option {
  status: 'throttle' | 'throttle-then-migrate' | 'infeasible';
  actions: CapAction[];
  cost: number;
  energyJ: number;
  /** Lowest headroom the destination keeps, W (tie-break: more is better). */
  destHeadroomW: number;
  destination?: string;
  source?: string;
  label: string;
  /** Throttles that keep the target under its cap after the VM left (a later move may replace them). */
  residual?: CapAction[];
}

const EPS = 1e-9;
const TOL = 1e-6;
const round3 = (w: number): number => Math.round(w * 1000) / 1000;
/** Rounds up to 1e-3 (watts shed, seconds of a transient): a plan rounded this way is never less safe than computed. */
const ceil3 = (w: number): number => Math.ceil(w * 1000 - 1e-6) / 1000;
/** Rounds down to 1e-3 (CPU quota and frequency fractions): the host never sheds less than planned. */
const floor3 = (x: number): number => Math.floor(x * 1000 + 1e-6) / 1000;
const pct = (f: number): string => `${Math.round(f * 100)} %`;

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
    if (h.forecastW !== undefined) {
      if (!Array.isArray(h.forecastW) || h.forecastW.length < input.horizonS) invalid(`${at}.forecastW`, Array.isArray(h.forecastW) ? `[${h.forecastW.length} values]` : h.forecastW, `must be an array of at least horizonS=${input.horizonS} watts`);
      h.forecastW.forEach((w, t) => {
        if (!(w >= 0) || !Number.isFinite(w)) invalid(`${at}.forecastW[${t}]`, w, 'must be a number of watts ≥ 0');
      });
    }
    for (const [j, m] of (h.throttleMethods ?? []).entries()) if (m !== 'cpu-quota' && m !== 'dvfs') invalid(`${at}.throttleMethods[${j}]`, m, "must be 'cpu-quota' or 'dvfs'");
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
      if (v.workingSetBytes !== undefined && (!(v.workingSetBytes >= 0) || !Number.isFinite(v.workingSetBytes))) invalid(`${vat}.workingSetBytes`, v.workingSetBytes, 'must be a number of bytes ≥ 0');
      if (v.minPowerW !== undefined && (!(v.minPowerW >= 0) || v.minPowerW > v.powerW)) invalid(`${vat}.minPowerW`, v.minPowerW, `must be in [0, powerW=${v.powerW}]`);
      if (v.priority !== undefined && !Number.isFinite(v.priority)) invalid(`${vat}.priority`, v.priority, 'must be a finite number');
      sum += v.powerW;
    });
    if (sum > h.powerW * (1 + 1e-6) + 1e-6) invalid(`${at}.vms[*].powerW`, round3(sum), `sum exceeds the host's measured powerW=${h.powerW}: attributed shares cannot exceed what was measured`);
  });
  const groups = new Set<string>();
  (input.groups ?? []).forEach((g, i) => {
    const at = `groups[${i}]`;
    if (!g.groupId) invalid(`${at}.groupId`, g.groupId, 'must be set');
    if (groups.has(g.groupId) || hosts.has(g.groupId)) invalid(`${at}.groupId`, g.groupId, 'is repeated (group and host ids share one name space)');
    groups.add(g.groupId);
    if (!(g.capW > 0) || !Number.isFinite(g.capW)) invalid(`${at}.capW`, g.capW, 'must be a positive number of watts');
    if (!Array.isArray(g.members) || g.members.length === 0) invalid(`${at}.members`, g.members, 'must be a non-empty array of host or group ids');
    if (g.otherW !== undefined && (!(g.otherW >= 0) || !Number.isFinite(g.otherW))) invalid(`${at}.otherW`, g.otherW, 'must be a number of watts ≥ 0');
  });
}

export function planCaps(input: PlanCapsInput, opts: PlanCapsOptions = {}): CapPlan {
  validate(input);
  const model = opts.model ?? new MigrationTransientModel();
  const marginW = opts.marginW ?? 0;
  const marginFraction = opts.marginFraction ?? 0;
  const lead = opts.throttleLeadS ?? 1;
  const minFrac = opts.defaultMinPowerFraction ?? 0.1;
  const maxNotes = opts.maxNotesPerHost ?? 12;
  const modes = opts.modes ?? [...MIGRATION_MODES];
  const fractions = opts.throttledBandwidthFractions ?? [0.5, 0.25];
  const alpha = opts.dvfsPowerExponent ?? 2;
  const fMin = opts.dvfsMinFrequency ?? 0.5;
  const downtimeFactor = opts.downtimeCostFactor ?? 1;
  const maxMoves = opts.maxMovesPerScope ?? 4;
  if (!(marginW >= 0)) invalid('options.marginW', marginW, 'must be ≥ 0');
  if (!(marginFraction >= 0 && marginFraction < 1)) invalid('options.marginFraction', marginFraction, 'must be in [0, 1)');
  if (!Number.isInteger(lead) || lead < 0) invalid('options.throttleLeadS', lead, 'must be an integer ≥ 0');
  if (!(minFrac >= 0 && minFrac <= 1)) invalid('options.defaultMinPowerFraction', minFrac, 'must be in [0, 1]');
  for (const m of modes) if (!MIGRATION_MODES.includes(m)) invalid('options.modes', m, `must be one of ${MIGRATION_MODES.join(', ')}`);
  for (const f of fractions) if (!(f > 0 && f <= 1)) invalid('options.throttledBandwidthFractions', f, 'must be in (0, 1]');
  if (!(alpha >= 1)) invalid('options.dvfsPowerExponent', alpha, 'must be ≥ 1');
  if (!(fMin > 0 && fMin <= 1)) invalid('options.dvfsMinFrequency', fMin, 'must be in (0, 1]');
  if (!(downtimeFactor >= 0)) invalid('options.downtimeCostFactor', downtimeFactor, 'must be ≥ 0');
  const H = input.horizonS;
  const limitOf = (capW: number): number => capW - marginW - capW * marginFraction;

  // ---- scopes: every host, then every group ----
  const hostsById = new Map(input.hosts.map((h) => [h.hostId, h]));
  const groups: CapGroup[] = input.groups ?? [];
  const members = groupHosts(groups, new Set(hostsById.keys()));
  const otherW = groupOtherW(groups);
  const tls = new Map<string, Float64Array>(input.hosts.map((h) => [h.hostId, baselineOf(h, H)]));
  const scopes: Scope[] = [];
  const scopeOf = (id: string, kind: Scope['kind'], groupKind: string, capW: number, hostIds: string[], tl: Float64Array): Scope => {
    const s: Scope = { id, kind, groupKind, capW, limit: limitOf(capW), hostIds, hostSet: new Set(hostIds), tl, table: new RangeMax(tl), max: Math.max(...tl) };
    scopes.push(s);
    return s;
  };
  const hostScope = new Map(input.hosts.map((h) => [h.hostId, scopeOf(h.hostId, 'host', 'host', h.capW, [h.hostId], tls.get(h.hostId)!)]));
  for (const g of groups) {
    const ids = members.get(g.groupId)!;
    const tl = new Float64Array(H).fill(otherW.get(g.groupId)!);
    for (const id of ids) {
      const htl = tls.get(id)!;
      for (let t = 0; t < H; t++) tl[t] = tl[t]! + htl[t]!;
    }
    scopeOf(g.groupId, 'group', g.kind ?? 'group', g.capW, ids, tl);
  }
  /** Scopes holding each host: its own first, then its groups. */
  const scopesOfHost = new Map(input.hosts.map((h) => [h.hostId, scopes.filter((s) => s.hostSet.has(h.hostId))]));

  // ---- VMs: floors, weights, throttle methods and their slowdowns ----
  const hostOfVm = new Map<string, CapHost>(input.hosts.flatMap((h) => h.vms.map((v) => [v.uuid, h] as const)));
  const minPower = (v: CapVm): number => v.minPowerW ?? v.powerW * minFrac;
  const dyn = (v: CapVm): number => Math.max(0, v.powerW - minPower(v));
  const weight = (v: CapVm): number => 1 + Math.max(0, v.priority ?? 0);
  const dvfsMaxShed = (v: CapVm): number => dyn(v) * (1 - fMin ** alpha);
  const methodFor = (v: CapVm, totalShed: number): ThrottleMethod => ((hostOfVm.get(v.uuid)!.throttleMethods ?? ['cpu-quota']).includes('dvfs') && totalShed <= dvfsMaxShed(v) + EPS ? 'dvfs' : 'cpu-quota');
  /** Fraction of the VM's work lost with `shed` W taken from it. */
  const slowdownOf = (v: CapVm, shed: number): number => {
    const d = dyn(v);
    if (d <= EPS || shed <= EPS) return 0;
    const x = Math.min(1, shed / d);
    return methodFor(v, shed) === 'dvfs' ? 1 - (1 - x) ** (1 / alpha) : x;
  };
  /**
   * Shed committed on each VM, as time pieces [fromS, untilS) (untilS H for "until further notice").
   * Invariant: the shed in force on a VM at second t is the sum of its pieces covering t; a new throttle
   * is split at the committed pieces' edges so that each of its actions states the VM's whole quota
   * there (the actuator applies the lowest fraction in force: overlapping throttles must not under-shed,
   * and one that ends must not leave its shed counted after it).
   */
  const sheds = new Map<string, { fromS: number; untilS: number; shedW: number }[]>();
  const shedAt = (uuid: string, t: number): number => (sheds.get(uuid) ?? []).reduce((a, x) => a + (x.fromS <= t && t < x.untilS ? x.shedW : 0), 0);
  /** The most shed in force on a VM at any second of [fromS, untilS). */
  const shedMax = (uuid: string, fromS = 0, untilS = H): number => {
    let m = 0;
    for (const t of [fromS, ...(sheds.get(uuid) ?? []).map((x) => x.fromS)]) if (t >= fromS && t < untilS) m = Math.max(m, shedAt(uuid, t));
    return m;
  };
  const moved = new Set<string>();
  /** SLA cost of each throttle action the advisor made (its extra slowdown × seconds × weight). */
  const actionCost = new WeakMap<CapAction, number>();

  /** Sheds `need` W from `pool` over [fromS, untilS): lowest priority first, proportionally to what each can give within a priority. */
  const allocate = (need: number, pool: readonly CapVm[], extra: ReadonlyMap<string, number> = new Map(), fromS = 0, untilS = H): Shed[] | undefined => {
    if (need <= EPS) return [];
    const left = (v: CapVm): number => Math.max(0, dyn(v) - shedMax(v.uuid, fromS, untilS) - (extra.get(v.uuid) ?? 0));
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
  /** One VM's sheds of one option, summed (a VM can be asked twice: by its host and by its group). */
  const merge = (...lists: Shed[][]): Shed[] => {
    const by = new Map<string, Shed>();
    for (const s of lists.flat()) {
      const o = by.get(s.vm.uuid);
      if (o) o.shedW += s.shedW;
      else by.set(s.vm.uuid, { vm: s.vm, shedW: s.shedW });
    }
    return [...by.values()];
  };
  /** The actions of shedding `s` over [fromS, untilS): one per stretch of constant committed shed. */
  const throttle = (s: Shed, fromS: number, untilS: number | null, reason: string): ThrottleAction[] => {
    const end = untilS ?? H;
    const cuts = [...new Set([fromS, ...(sheds.get(s.vm.uuid) ?? []).flatMap((x) => [x.fromS, x.untilS]).filter((t) => t > fromS && t < end)])].sort((a, b) => a - b);
    return cuts.map((a, i) => {
      const b = cuts[i + 1] ?? end;
      const base = shedAt(s.vm.uuid, a);
      const total = s.shedW + base;
      const method = methodFor(s.vm, total);
      const x = dyn(s.vm) > EPS ? Math.min(1, total / dyn(s.vm)) : 0;
      const act: ThrottleAction = {
        kind: 'throttle',
        hostId: hostOfVm.get(s.vm.uuid)!.hostId,
        vmUuid: s.vm.uuid,
        tenant: s.vm.tenant,
        shedW: ceil3(s.shedW),
        method,
        cpuQuotaFraction: method === 'dvfs' ? 1 : floor3(Math.max(0, 1 - x)),
        slowdown: round3(slowdownOf(s.vm, total)),
        fromS: a,
        untilS: i + 1 < cuts.length || untilS !== null ? b : null,
        reason,
      };
      if (method === 'dvfs') act.frequencyFraction = floor3((1 - x) ** (1 / alpha));
      actionCost.set(act, (slowdownOf(s.vm, total) - slowdownOf(s.vm, base)) * Math.max(0, b - a) * weight(s.vm));
      return act;
    });
  };
  const costOf = (acts: readonly CapAction[]): number => acts.reduce((a, x) => a + (actionCost.get(x) ?? 0), 0);

  // ---- exact peaks of a scope with some steps added ----
  const cuts = new Float64Array(96);
  /**
   * Highest power of scope `k` over the pieces of [lo, hi) with `steps` (on any hosts; those outside k
   * are ignored) added. `strict` false considers only pieces the steps raise: "does this make k worse
   * anywhere", which for a scope under its limit everywhere is the same as its new peak. -Infinity when
   * no piece is considered.
   */
  const peakWith = (k: Scope, steps: readonly PowerStep[], strict: boolean, lo = 0, hi = H): number => {
    let n = 0;
    const put = (t: number): void => {
      if (t < lo || t > hi || n >= cuts.length) return;
      let i = n;
      while (i > 0 && cuts[i - 1]! > t) i--;
      if (i > 0 && cuts[i - 1] === t) return;
      cuts.copyWithin(i + 1, i, n);
      cuts[i] = t;
      n++;
    };
    put(lo);
    put(hi);
    for (const x of steps) {
      if (!k.hostSet.has(x.hostId)) continue;
      put(x.fromS);
      put(x.untilS);
    }
    let peak = -Infinity;
    for (let i = 0; i + 1 < n; i++) {
      const a = cuts[i]!;
      const b = cuts[i + 1]!;
      if (b <= a) continue;
      let d = 0;
      for (const x of steps) if (x.fromS <= a && a < x.untilS && k.hostSet.has(x.hostId)) d += x.watts;
      if (!strict && d <= TOL) continue;
      peak = Math.max(peak, k.table.max(a, b) + d);
    }
    return peak;
  };
  const stepsOfAll = (acts: readonly CapAction[]): PowerStep[] => acts.flatMap((a) => stepsOf(a, H));

  // ---- notes and statuses ----
  const actions: CapAction[] = [];
  const status = new Map<string, HostPlanStatus>();
  const groupStatus = new Map<string, GroupPlan['status']>();
  const notes = new Map<string, string[]>();
  const note = (id: string, n: string): void => {
    const l = notes.get(id) ?? [];
    if (l.length < maxNotes) l.push(n);
    else if (l.length === maxNotes) l.push('… more options rejected');
    notes.set(id, l);
  };
  /** Switchover seconds (rounded up) of the migrations planned so far: later migrations may start there. */
  const switchovers = new Set<number>();

  const modeSpecs: { mode: MigrationMode; f: number }[] = [];
  for (const m of modes) {
    if (m === 'pre-copy-throttled') for (const f of fractions) modeSpecs.push({ mode: m, f });
    else modeSpecs.push({ mode: m, f: 1 });
  }
  const modeName = (m: MigrationMode, f: number): string => (m === 'pre-copy-throttled' ? `pre-copy at ${pct(f)} bandwidth` : m);

  /** The cheapest safe way to move `v` off `src` and out of `target`, in one mode, or why there is none. */
  const moveOption = (target: Scope, src: CapHost, v: CapVm, mode: MigrationMode, f: number, probe: boolean): Option | Probe | string => {
    const excess = target.max - target.limit;
    const srcScopes = scopesOfHost.get(src.hostId)!;
    const own = hostScope.get(src.hostId)!;
    const others = src.vms.filter((o) => o !== v && !moved.has(o.uuid));
    const unthrottled = model.estimateMode(v, input.linkBps, mode, f);
    /**
     * What the scopes holding the source need shed, with the source's steps of this migration: in the
     * window [0, leave) from the source's VMs (every scope holding it: its transient must fit) and
     * from `leave` on (only the source host and the target: others are not made worse by the VM leaving).
     */
    const needs = (est: ModeEstimate, startS: number, srcExtra: number): { window: number; windowTarget: number; after: number; afterTarget: number; leave: number } => {
      const leave = Math.ceil(startS + est.switchoverAfterS);
      const steps: PowerStep[] = [
        { hostId: src.hostId, fromS: Math.floor(startS), untilS: Math.min(H, Math.ceil(startS + est.durationS)), watts: srcExtra },
        { hostId: src.hostId, fromS: Math.min(H, leave), untilS: H, watts: -v.powerW },
      ].filter((x) => x.untilS > x.fromS && x.watts !== 0);
      let window = 0;
      let windowTarget = 0;
      for (const k of srcScopes) {
        const violatedElsewhere = k !== target && k !== own && k.max > k.limit + TOL;
        const need = peakWith(k, steps, !violatedElsewhere, 0, Math.min(H, leave)) - k.limit;
        if (k === target && k !== own) windowTarget = Math.max(windowTarget, need);
        else window = Math.max(window, need);
      }
      const after = leave < H ? peakWith(own, steps, true, leave, H) - own.limit : 0;
      const afterTarget = target !== own && leave < H ? peakWith(target, steps, true, leave, H) - target.limit : 0;
      return { window: Math.max(0, window), windowTarget: Math.max(0, windowTarget), after: Math.max(0, after), afterTarget: Math.max(0, afterTarget), leave };
    };

    let firstStart = 0;
    let srcExtra = unthrottled.sourceExtraW;
    let n0 = needs(unthrottled, 0, srcExtra);
    // A CPU-saturated source: the copy's CPU comes from the guests, no watts are added, as long as no
    // throttle on the host frees CPU for it (then it takes the freed CPU and its watts come back).
    if (src.cpuSaturated) {
      const quiet = needs(unthrottled, 0, 0);
      if (quiet.window <= EPS) {
        srcExtra = 0;
        n0 = quiet;
      }
    }
    // The group's share of the window comes from its other hosts when the source is saturated and adds no
    // watts (a throttle on the source would free CPU for the copy and bring them back).
    const targetPool =
      target.kind === 'group' ? target.hostIds.flatMap((id) => (srcExtra === 0 && id === src.hostId ? [] : hostsById.get(id)!.vms)).filter((o) => o !== v && !moved.has(o.uuid)) : others;
    if (n0.window + n0.windowTarget > EPS) {
      firstStart = lead;
      n0 = needs(unthrottled, firstStart, srcExtra);
    }
    const ownShed = Math.min(Math.max(0, dyn(v) - shedMax(v.uuid)), n0.window);
    // Throttling the migrating VM also slows its dirtying: pre-copy converges sooner.
    const quotaScale = dyn(v) > EPS ? 1 - Math.min(1, ownShed / dyn(v)) : 1;
    const est = mode === 'post-copy' || ownShed <= EPS ? unthrottled : model.estimateMode({ ...v, dirtyRateBps: (v.dirtyRateBps ?? model.params.defaultDirtyRateBps) * quotaScale }, input.linkBps, mode, f);
    if (!est.converged) return `pre-copy does not converge (dirty rate ≥ usable link rate even at CPU quota ${round3(quotaScale)})`;
    const durationS = ceil3(est.durationS);
    const switchAfter = mode === 'post-copy' ? ceil3(est.switchoverAfterS) : durationS;
    const starts = [firstStart, ...[...switchovers].filter((t) => t > firstStart).sort((a, b) => a - b)].filter((t) => t + durationS <= H).slice(0, 8);
    if (starts.length === 0) return `takes ${round3(est.durationS)} s, the transfer ends after the ${H} s horizon`;

    let closest = -Infinity;
    let lastWhy = '';
    for (const startS of starts) {
      const n = needs({ ...est, durationS, switchoverAfterS: switchAfter }, startS, srcExtra);
      const leave = n.leave;
      // An earlier decision's throttle on the VM must have ended when it leaves (it would leave with it).
      const busyUntil = Math.max(0, ...(sheds.get(v.uuid) ?? []).map((x) => x.untilS));
      if (busyUntil > leave) {
        lastWhy = `an earlier decision throttles it until ${busyUntil} s, after it would leave`;
        continue;
      }
      const ownW = Math.min(ownShed, n.window);
      const otherWindow = allocate(n.window - ownW, others, new Map([[v.uuid, ownW]]), 0, leave);
      if (!otherWindow) return `the source must shed ${round3(n.window)} W to stay under its caps during the +${round3(srcExtra)} W transient; only ${round3(src.vms.reduce((a, o) => a + dyn(o), 0))} W can be throttled`;
      const onSrc = new Map<string, number>([[v.uuid, ownW], ...otherWindow.map((s) => [s.vm.uuid, s.shedW] as const)]);
      const targetWindow = allocate(Math.max(0, n.windowTarget - ownW - otherWindow.reduce((a, s) => a + s.shedW, 0)), targetPool, onSrc, 0, leave);
      if (!targetWindow) return `${target.id} must shed ${round3(n.windowTarget)} W during the transient; its VMs cannot give it`;
      const residual = allocate(n.after, others, new Map(), leave, H);
      if (!residual) return `without it ${src.hostId} still needs ${round3(n.after)} W shed, more than its other VMs can give`;
      const residualTarget = allocate(Math.max(0, n.afterTarget - residual.reduce((a, s) => a + s.shedW, 0)), targetPool, new Map(residual.map((s) => [s.vm.uuid, s.shedW])), leave, H);
      if (!residualTarget) return `without it ${target.id} still needs ${round3(n.afterTarget)} W shed, more than its VMs can give`;
      const why = `keep ${src.hostId}${target.id !== src.hostId ? ` and ${target.id}` : ''} under the cap during the +${round3(srcExtra)} W ${modeName(mode, f)} transient of ${v.uuid}`;
      const base: CapAction[] = [];
      if (ownW > EPS) base.push(...throttle({ vm: v, shedW: ownW }, 0, leave, why));
      for (const s of merge(otherWindow, targetWindow)) base.push(...throttle(s, 0, leave, why));
      const stillWhy = `${target.id} is still over its cap without ${v.uuid}`;
      const residualActs = merge(residual, residualTarget).flatMap((s) => throttle(s, leave, null, stillWhy));
      base.push(...residualActs);
      const satSlow = src.cpuSaturated && srcExtra === 0 && mode !== 'post-copy' ? model.params.saturatedSourceSlowdown : 0;
      const migCost =
        weight(v) * (est.slowdown * est.slowedS + est.downtimeS * downtimeFactor) + others.reduce((a, o) => a + weight(o) * satSlow * durationS, 0);
      const cost = migCost + costOf(base);
      const mig = (toHostId: string): MigrateAction => ({
        kind: 'migrate',
        vmUuid: v.uuid,
        tenant: v.tenant,
        fromHostId: src.hostId,
        toHostId,
        mode,
        bandwidthBps: Math.round(est.bandwidthBps),
        startS,
        durationS,
        switchoverS: round3(startS + switchAfter),
        endS: round3(startS + durationS),
        arriveS: Math.floor((startS + est.earliestSwitchoverAfterS) * 1000) / 1000,
        vmPowerW: v.powerW,
        sourceExtraW: round3(srcExtra),
        destinationExtraW: round3(est.destinationExtraW),
        rounds: est.rounds,
        transferredBytes: Math.round(est.transferredBytes),
        slowdown: round3(est.slowdown),
        slowedS: round3(est.slowedS),
        downtimeS: round3(est.downtimeS),
        slaCost: round3(migCost),
        reason: `${target.id} is ${round3(excess)} W over its ${target.kind === 'group' ? `${target.groupKind} ` : ''}cap; ${v.uuid} takes ${v.powerW} W with it at switchover${startS > firstStart ? ` (starts at ${startS} s, after an earlier migration's switchover, to share no destination transient)` : ''}`,
      });
      // The source side does not depend on the destination: check it once.
      const srcSteps = stepsOfAll([...base, mig('')]);
      for (const k of srcScopes) {
        const violatedElsewhere = k !== target && k.max > k.limit + TOL;
        const peak = peakWith(k, srcSteps, !violatedElsewhere);
        if (peak > k.limit + TOL) return `${k.id} would still exceed its cap by ${round3(peak - k.limit)} W during the migration`;
      }
      // A probe stops here: its cost is known before any destination is searched.
      if (probe) return { probe: true, cost, energyJ: (srcExtra + est.destinationExtraW) * durationS };
      // Every destination costs the same for this VM and start: keep the one left with the most headroom.
      const dTemplate = stepsOfAll([mig('\0dst')]).filter((x) => x.hostId === '\0dst');
      let best: { hostId: string; head: number } | undefined;
      for (const dst of input.hosts) {
        if (dst === src || target.hostSet.has(dst.hostId)) continue;
        const dSteps = dTemplate.map((x) => ({ ...x, hostId: dst.hostId }));
        let head = Infinity;
        for (const k of scopesOfHost.get(dst.hostId)!) {
          const steps = k.hostSet.has(src.hostId) ? [...srcSteps, ...dSteps] : dSteps;
          const peak = peakWith(k, steps, false);
          if (peak > -Infinity) head = Math.min(head, k.limit - peak);
          if (head < -TOL) break;
        }
        if (head < -TOL) closest = Math.max(closest, head);
        else if (!best || head > best.head) best = { hostId: dst.hostId, head };
      }
      if (best) {
        return {
          status: 'throttle-then-migrate',
          actions: [...base, mig(best.hostId)],
          residual: residualActs,
          cost,
          energyJ: (srcExtra + est.destinationExtraW) * durationS,
          destHeadroomW: best.head,
          destination: best.hostId,
          source: src.hostId,
          label: `${modeName(mode, f)} of ${v.uuid} to ${best.hostId}: SLA ${round3(cost)} VM·s (${pct(est.slowdown)} slower for ${round3(est.slowedS)} s, ${round3(est.downtimeS)} s paused, throttles until ${leave} s)`,
        };
      }
      lastWhy = input.hosts.length > 1 && closest > -Infinity ? `no destination has ${round3(v.powerW)} W for the VM plus ${round3(est.destinationExtraW)} W for its transient under its caps (closest misses by ${round3(-closest)} W)` : 'no other host to move it to';
    }
    return lastWhy;
  };

  // ---- the loop: the scope furthest over its limit first, one decision at a time ----
  const settled = new Set<string>();
  const visits = new Map<string, number>();
  let totalCost = 0;
  for (;;) {
    const target = scopes
      .filter((k) => !settled.has(k.id) && k.max > k.limit + TOL)
      .sort((a, b) => b.max - b.limit - (a.max - a.limit) || (a.kind === b.kind ? 0 : a.kind === 'host' ? -1 : 1))[0];
    if (!target) break;
    const visit = (visits.get(target.id) ?? 0) + 1;
    visits.set(target.id, visit);
    const excess = target.max - target.limit;
    // The first second over the limit: a throttle need not start before it (a forecast rise, a later move).
    let firstOver = 0;
    while (firstOver < H && target.tl[firstOver]! <= target.limit + TOL) firstOver++;
    const pool = target.hostIds.flatMap((id) => hostsById.get(id)!.vms).filter((v) => !moved.has(v.uuid));
    const options: Option[] = [];

    // Option A: throttle the excess away for the whole horizon.
    const shedAll = allocate(excess, pool);
    if (shedAll) {
      const acts = shedAll.flatMap((s) => throttle(s, firstOver, null, `${target.kind === 'group' ? `${target.groupKind} ` : 'host '}${target.id} is ${round3(excess)} W over its cap ${target.capW} W${marginW || marginFraction ? ` less the ${round3(target.capW - target.limit)} W margin` : ''}`));
      options.push({ status: 'throttle', actions: acts, cost: costOf(acts), energyJ: 0, destHeadroomW: Infinity, label: 'throttle' });
    }

    // Option B: move one VM out of the scope, in every mode.
    const probes: { src: CapHost; v: CapVm; mode: MigrationMode; f: number; cost: number; energyJ: number }[] = [];
    const triedOf = new Map<string, string[]>();
    for (const hostId of target.hostIds) {
      const src = hostsById.get(hostId)!;
      for (const v of src.vms) {
        // A VM throttled for good by an earlier decision stays: its throttle would leave with it.
        if (v.movable === false || moved.has(v.uuid) || (sheds.get(v.uuid) ?? []).some((x) => x.untilS >= H)) continue;
        const tried: string[] = [];
        for (const { mode, f } of modeSpecs) {
          const o = moveOption(target, src, v, mode, f, true);
          if (typeof o === 'string') tried.push(`${modeName(mode, f)}: ${o}`);
          else if ('probe' in o) probes.push({ src, v, mode, f, cost: o.cost, energyJ: o.energyJ });
        }
        triedOf.set(v.uuid, tried);
      }
    }
    // Destinations are searched cheapest move first: until one is found, then a few more for the notes
    // (the search over every host is what costs; most moves are dearer than the first that fits).
    probes.sort((a, b) => a.cost - b.cost || a.energyJ - b.energyJ);
    let feasible = 0;
    let extra = 0;
    const movable = new Set<string>();
    for (const p of probes) {
      if (feasible > 0 && (feasible >= 3 || extra >= 4)) break;
      if (feasible > 0) extra++;
      const o = moveOption(target, p.src, p.v, p.mode, p.f, false);
      if (typeof o === 'string') triedOf.get(p.v.uuid)!.push(`${modeName(p.mode, p.f)}: ${o}`);
      else if (!('probe' in o)) {
        options.push(o);
        movable.add(p.v.uuid);
        feasible++;
      }
    }
    for (const [uuid, tried] of triedOf) {
      if (movable.has(uuid) || tried.length === 0) continue;
      // One note per VM whose tried modes all failed; the same reason for all modes is said once.
      const reasons = [...new Set(tried.map((t) => t.slice(t.indexOf(': ') + 2)))];
      note(target.id, reasons.length === 1 ? `migrate ${uuid}: ${reasons[0]}` : `migrate ${uuid}: ${tried.join('; ')}`);
    }

    options.sort((a, b) => a.cost - b.cost || a.energyJ - b.energyJ || b.destHeadroomW - a.destHeadroomW);
    let chosen = options[0];
    if (!chosen) {
      // Nothing is safe: throttle everything to its floor and say how far over the scope stays.
      const shed = pool.filter((v) => dyn(v) - shedMax(v.uuid) > EPS).map((v) => ({ vm: v, shedW: dyn(v) - shedMax(v.uuid) }));
      const got = shed.reduce((a, s) => a + s.shedW, 0);
      note(target.id, `infeasible: throttling every VM to its floor sheds ${round3(got)} W of the ${round3(excess)} W needed; ${round3(excess - got)} W over remains`);
      chosen = { status: 'infeasible', actions: shed.flatMap((s) => throttle(s, 0, null, `${target.id} cannot get under its cap; throttled to the floor`)), cost: Infinity, energyJ: 0, destHeadroomW: 0, label: 'infeasible' };
    } else if (chosen.status === 'throttle') {
      const alt = options.find((o) => o.status === 'throttle-then-migrate');
      note(target.id, alt ? `throttling (SLA ${round3(chosen.cost)} VM·s) is cheaper than the best migration, ${alt.label}, over ${H} s` : 'no safe migration exists: throttling instead');
    } else {
      const why = options.filter((o) => o !== chosen && o.status === 'throttle-then-migrate').slice(0, 3);
      const thr = options.find((o) => o.status === 'throttle');
      note(target.id, `chosen: ${chosen.label}${thr ? `; throttling instead would cost ${round3(thr.cost)} VM·s over ${H} s` : ''}${why.length ? `; next best: ${why.map((o) => o.label).join('; ')}` : ''}`);
    }
    // A move that leaves the cap over after the VM left: commit it without the throttles for the rest and
    // decide again (another move may be cheaper than throttling the rest for the whole horizon).
    const partial = chosen.status === 'throttle-then-migrate' && (chosen.residual?.length ?? 0) > 0 && visit < maxMoves;
    if (partial) {
      const rest = new Set(chosen.residual);
      chosen = { ...chosen, actions: chosen.actions.filter((a) => !rest.has(a)), cost: chosen.cost - costOf(chosen.residual!) };
      note(target.id, `${target.id} is still over its cap after that move: deciding again`);
    } else settled.add(target.id);
    actions.push(...chosen.actions);
    totalCost += Number.isFinite(chosen.cost) ? chosen.cost : costOf(chosen.actions);
    for (const a of chosen.actions) {
      if (a.kind === 'migrate') {
        moved.add(a.vmUuid);
        switchovers.add(Math.ceil(a.switchoverS));
        a.reason += `; ${chosen.label}`;
      } else sheds.set(a.vmUuid, [...(sheds.get(a.vmUuid) ?? []), { fromS: a.fromS, untilS: a.untilS ?? H, shedW: a.shedW }]);
    }
    const committed = stepsOfAll(chosen.actions);
    applySteps(tls, committed);
    const touchedScopes = new Set<Scope>();
    for (const x of committed) for (const k of scopesOfHost.get(x.hostId) ?? []) touchedScopes.add(k);
    for (const k of touchedScopes) {
      if (k.kind === 'group') for (const x of committed) if (k.hostSet.has(x.hostId)) for (let t = x.fromS; t < x.untilS; t++) k.tl[t] = k.tl[t]! + x.watts;
      k.table = new RangeMax(k.tl);
      k.max = Math.max(...k.tl);
    }
    if (target.kind === 'group') groupStatus.set(target.id, chosen.status);
    else status.set(target.id, chosen.status);
    for (const a of chosen.actions) if (a.kind === 'throttle' && !status.has(a.hostId)) status.set(a.hostId, chosen.status === 'infeasible' ? 'throttle' : chosen.status);
    if (chosen.source && !status.has(chosen.source)) status.set(chosen.source, 'throttle-then-migrate');
    if (chosen.destination) status.set(chosen.destination, 'destination');
  }

  const overSeconds = (tl: readonly number[], capW: number): number => tl.filter((w) => w > capW + TOL).length;
  const hosts: HostPlan[] = input.hosts
    .filter((h) => status.has(h.hostId) || hostScope.get(h.hostId)!.max > h.capW + TOL)
    .map((h) => {
      const timelineW = Array.from(tls.get(h.hostId)!, (w) => Math.round(w * 1e6) / 1e6);
      return {
        hostId: h.hostId,
        capW: h.capW,
        powerW: h.powerW,
        status: status.get(h.hostId) ?? 'within-cap',
        timelineW,
        peakW: Math.max(...timelineW),
        overCapSeconds: overSeconds(timelineW, h.capW),
        notes: notes.get(h.hostId) ?? [],
      };
    });
  const groupPlans: GroupPlan[] = scopes
    .filter((k) => k.kind === 'group')
    .map((k) => {
      const timelineW = Array.from(k.tl, (w) => Math.round(w * 1e6) / 1e6);
      return {
        groupId: k.id,
        kind: k.groupKind,
        capW: k.capW,
        hostIds: [...k.hostIds],
        status: groupStatus.get(k.id) ?? 'within-cap',
        timelineW,
        peakW: Math.max(...timelineW),
        overCapSeconds: overSeconds(timelineW, k.capW),
        notes: notes.get(k.id) ?? [],
      };
    });
  return {
    actions,
    hosts,
    groups: groupPlans,
    safe: hosts.every((h) => h.overCapSeconds === 0) && groupPlans.every((g) => g.overCapSeconds === 0),
    horizonS: H,
    slaCost: round3(totalCost),
    marginW: round3(marginW),
  };
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

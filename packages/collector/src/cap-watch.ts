/**
 * The live power-cap watch: after a batch of intervals the collector has attributed and stored (at most
 * once per `minIntervalMs`), it
 * evaluates every cap (each host's, and each group's: racks, PDUs, named sets) from those attributions:
 * power now (the mean over the last `windowS` seconds of one method's attributions), a forecast bound
 * over the horizon (each VM's recent trend, from the intervals it keeps), the first second the bound
 * crosses the cap, and the advisor's plan against the bound. It publishes one CapStatus per cap on
 * TOPICS.capping (keyed by the cap's id), keeps gauges for /metrics and the latest statuses for
 * GET /api/v1/caps (the dashboard's cap panel), and logs a warning when a cap is predicted to cross
 * (once per crossing episode, again after it cleared).
 *
 * The math is the capping package's, supplied by the app as a `CapAdvisor` (the CLI passes
 * @wattsplit/capping): the collector does not depend on it. Publishing is best effort: a failed send is
 * logged and counted, never holds the pipeline back (the next evaluation publishes the state again).
 *
 * State (one owner, this object): per host, the last `historyS` seconds of that method's results and
 * the VM memory sizes from the same intervals. Invariant: a host's results are in t1 order and none is
 * older than the newest minus historyS. A host whose newest result is more than `staleS` behind the
 * fleet's newest is left out of evaluations until it reports again, and forgotten once all of its results
 * are more than historyS behind.
 */
import type { AttributionResult, HostInterval } from '@wattsplit/attribution';
import { CapStatus, TOPICS, type BusProducer, type Logger } from '@wattsplit/wire';
import type { CollectorMetrics } from './collector-metrics.js';

/** A cap above the hosts (the capping package's CapGroup). */
export interface CapWatchGroup {
  groupId: string;
  kind?: string;
  capW: number;
  members: string[];
  otherW?: number;
}

export interface CapWatchConfig {
  /** Cap per host id, W. */
  hostCapsW?: Record<string, number>;
  /** Cap of every host not in hostCapsW, W; unset: such hosts have no cap of their own. */
  defaultHostCapW?: number;
  groups?: CapWatchGroup[];
  /** Attribution method whose shares give VM power. Default: additive_model when the collector runs it, else cpu_share. */
  method?: string;
  /** Seconds of attributions averaged into "power now". Default 10. */
  windowS?: number;
  /** Seconds of attributions kept per host for the VMs' trends. Default 300. */
  historyS?: number;
  /**
   * A host whose newest interval is this many seconds older than the fleet's newest is not reporting: it is
   * left out (no status of its own, not in its groups' power, never a migration destination with the power
   * it had when it stopped) until it reports again. Default 60.
   */
  staleS?: number;
  horizonS?: number;
  linkGbps?: number;
  marginW?: number;
  /** Standard deviations of the forecast bound. Default 2. */
  z?: number;
  /** Publish CapStatus messages. Default true. */
  publish?: boolean;
  /**
   * At most one evaluation per this many ms of wall time. Default 5000: planning runs on the collector's
   * event loop (about 1.5 s of CPU for 200 hosts × 20 VMs with 40 of them over their caps, docs/capping.md).
   */
  minIntervalMs?: number;
}

interface WatchVm {
  uuid: string;
  tenant: string;
  powerW: number;
  memoryBytes: number;
}
interface WatchHost {
  hostId: string;
  capW: number;
  powerW: number;
  vms: WatchVm[];
  forecastW?: number[];
}
interface WatchAction {
  kind: 'throttle' | 'migrate';
  vmUuid: string;
  hostId?: string;
  fromHostId?: string;
  toHostId?: string;
  mode?: string;
  method?: string;
  shedW?: number;
  cpuQuotaFraction?: number;
  frequencyFraction?: number;
  bandwidthBps?: number;
  fromS?: number;
  untilS?: number | null;
  startS?: number;
  endS?: number;
  reason: string;
}
interface WatchPlan {
  safe: boolean;
  slaCost: number;
  actions: WatchAction[];
  hosts: { hostId: string; timelineW: number[] }[];
  groups: { groupId: string; kind: string; hostIds: string[]; timelineW: number[] }[];
}

/** The capping package's functions the watch uses (structural: the app passes @wattsplit/capping). */
export interface CapAdvisor {
  hostPowerBreakdown(results: AttributionResult[]): { hostId: string; powerW: number; vms: { uuid: string; tenant: string; powerW: number }[] }[];
  /** Opaque to the watch: handed back to hostForecastW. */
  forecastPower(samples: { key: string; tUnixS: number; powerW: number }[], opts: { nowUnixS: number; horizonS: number; recentS?: number; z?: number; minTrendSamples?: number }): ReadonlyMap<string, unknown>;
  hostForecastW(host: WatchHost, forecasts: ReadonlyMap<string, unknown>, horizonS: number): number[];
  planCaps(input: { hosts: WatchHost[]; groups?: CapWatchGroup[]; linkBps: number; horizonS: number }, opts: { marginW: number }): WatchPlan;
  /** Called with no actions: the baseline (forecast bound) of every group. */
  simulateGroups(hosts: WatchHost[], groups: CapWatchGroup[], actions: readonly never[], horizonS: number): Map<string, number[]>;
  groupHosts(groups: CapWatchGroup[], hostIds: Set<string>): Map<string, string[]>;
}

/** One action of the advisor's plan that touches a cap (the CapActionRecord message's fields). */
export interface CapWatchActionRecord {
  kind: 'throttle' | 'migrate';
  vmUuid: string;
  /** throttle: the VM's host; migrate: the source. */
  hostId: string;
  /** migrate only ('' for a throttle). */
  toHostId: string;
  /** migrate: pre-copy | pre-copy-throttled | post-copy; throttle: cpu-quota | dvfs. */
  mode: string;
  /** throttle only (0 for a migration). */
  shedW: number;
  /** throttle: CPU quota (or frequency, dvfs) fraction; migrate: share of the link. */
  fraction: number;
  /** Seconds after tUnixNs. */
  startS: number;
  /** throttle: end (-1 = until further notice); migrate: expected end of the transfer. */
  untilS: number;
  reason: string;
}

/** One cap's status (what is published, exported on /metrics and served by GET /api/v1/caps). */
export interface CapWatchStatus {
  scopeId: string;
  scopeKind: string;
  hostIds: string[];
  /** End of the newest interval the evaluation used; predictedCrossS and the actions' seconds count from it. */
  tUnixNs: number;
  capW: number;
  powerW: number;
  predictedPeakW: number;
  /** First second of the horizon the bound is over the cap; -1 = none. */
  predictedCrossS: number;
  horizonS: number;
  planSafe: boolean;
  planPeakW: number;
  /** The whole plan's SLA cost, VM·s of lost work. */
  planSlaCost: number;
  /** The plan's actions touching this cap. */
  actions: CapWatchActionRecord[];
  method: string;
  marginW: number;
}

const round3 = (w: number): number => Math.round(w * 1000) / 1000;

export class CapWatch {
  private readonly results = new Map<string, AttributionResult[]>();
  private readonly memory = new Map<string, number>();
  private readonly crossing = new Set<string>();
  /** Hosts left out of the last evaluation for not reporting (one log line per episode). */
  private readonly stale = new Set<string>();
  private last: CapWatchStatus[] = [];
  private readonly log: Logger;
  readonly method: string;

  constructor(
    private readonly cfg: CapWatchConfig,
    private readonly advisor: CapAdvisor,
    private readonly deps: { producer: BusProducer; metrics: CollectorMetrics; logger: Logger; methods: readonly string[] },
  ) {
    this.log = deps.logger.child({ component: 'cap-watch' });
    this.method = cfg.method ?? (deps.methods.includes('additive_model') ? 'additive_model' : 'cpu_share');
    const gauge = (name: string, help: string, pick: (s: CapWatchStatus) => number): void =>
      deps.metrics.addGaugeProvider(name, help, () => this.last.map((s) => ({ labels: { cap: s.scopeId, kind: s.scopeKind }, value: pick(s) })));
    gauge('wattsplit_cap_limit_watts', 'The cap of each host or group, W.', (s) => s.capW);
    gauge('wattsplit_cap_power_watts', 'Power of each capped host or group now (mean over the watch window), W.', (s) => s.powerW);
    gauge('wattsplit_cap_predicted_peak_watts', 'Highest forecast upper bound over the horizon with no action, W.', (s) => s.predictedPeakW);
    gauge('wattsplit_cap_predicted_crossing_seconds', 'Seconds until the forecast bound crosses the cap (-1: not within the horizon).', (s) => s.predictedCrossS);
    gauge('wattsplit_cap_plan_safe', "1 when the advisor's plan keeps the cap in every second of the horizon.", (s) => (s.planSafe ? 1 : 0));
  }

  /** One stored interval and its results (all methods; the watch keeps its method's). */
  observe(interval: HostInterval, results: readonly AttributionResult[]): void {
    const r = results.find((x) => x.method === this.method);
    if (!r) return;
    for (const v of interval.vms) this.memory.set(v.uuid, v.memoryBytes);
    const list = this.results.get(r.hostId) ?? [];
    list.push(r);
    list.sort((a, b) => a.t1UnixNs - b.t1UnixNs);
    const floor = list[list.length - 1]!.t1UnixNs - (this.cfg.historyS ?? 300) * 1e9;
    while (list.length > 0 && list[0]!.t1UnixNs < floor) list.shift();
    this.results.set(r.hostId, list);
  }

  /** The latest statuses (for tests and the API). */
  statuses(): readonly CapWatchStatus[] {
    return this.last;
  }

  private lastEvalMs = -Infinity;
  private trailing: ReturnType<typeof setTimeout> | undefined;
  /** The evaluation in progress (evaluate, then its publish), and whether another was asked for meanwhile. */
  private evaluating: Promise<void> | undefined;
  private again = false;

  /**
   * Evaluates when at least minIntervalMs passed since the last evaluation; never throws (logs). A call
   * inside that interval schedules one evaluation at its end, so what arrived last (a host catching up
   * after the others) is always evaluated, not only when another batch follows.
   *
   * One evaluation at a time: partitions' batches are stored concurrently, and two evaluations in flight
   * published their statuses in whichever order their sends completed, so an older status (one that left
   * out a host whose last interval was being stored) could be the last one a consumer read for a cap. A call
   * while one runs returns that evaluation and asks for one more after it, which then sees everything.
   */
  async maybeEvaluate(nowMs = Date.now()): Promise<void> {
    if (this.evaluating) {
      this.again = true;
      return this.evaluating;
    }
    const waitMs = (this.cfg.minIntervalMs ?? 5000) - (nowMs - this.lastEvalMs);
    if (waitMs > 0) {
      if (!this.trailing) {
        this.trailing = setTimeout(() => {
          this.trailing = undefined;
          void this.maybeEvaluate();
        }, waitMs);
        this.trailing.unref();
      }
      return;
    }
    this.lastEvalMs = nowMs;
    this.evaluating = this.evaluate().then(
      () => undefined,
      (e: unknown) => this.log.warn({ err: (e as Error).message }, 'cap watch evaluation failed; the next batch tries again'),
    );
    try {
      await this.evaluating;
    } finally {
      this.evaluating = undefined;
    }
    if (this.again) {
      this.again = false;
      await this.maybeEvaluate();
    }
  }

  /** Evaluates every cap from what was observed; publishes and alerts. */
  async evaluate(): Promise<CapWatchStatus[]> {
    const windowS = this.cfg.windowS ?? 10;
    const H = this.cfg.horizonS ?? 60;
    const hosts: WatchHost[] = [];
    const samples: { key: string; tUnixS: number; powerW: number }[] = [];
    let newest = 0;
    for (const list of this.results.values()) newest = Math.max(newest, list[list.length - 1]!.t1UnixNs);
    for (const [hostId, list] of this.results) {
      const end = list[list.length - 1]!.t1UnixNs;
      if (end < newest - (this.cfg.staleS ?? 60) * 1e9) {
        if (!this.stale.has(hostId)) this.log.info({ host: hostId, behindS: Math.round((newest - end) / 1e9) }, `cap watch: host ${hostId} is not reporting; left out of the caps until it does`);
        // Skipped, its history kept (a host catching up after a lag needs it), until all of it is too old to matter.
        if (end < newest - (this.cfg.historyS ?? 300) * 1e9) {
          this.results.delete(hostId);
          this.stale.delete(hostId);
        } else this.stale.add(hostId);
        continue;
      }
      this.stale.delete(hostId);
      const capW = this.cfg.hostCapsW?.[hostId] ?? this.cfg.defaultHostCapW ?? Infinity;
      const window = list.filter((r) => r.t1UnixNs > end - windowS * 1e9);
      const [now] = this.advisor.hostPowerBreakdown(window);
      if (!now) continue;
      hosts.push({ hostId, capW, powerW: now.powerW, vms: now.vms.map((v) => ({ uuid: v.uuid, tenant: v.tenant, powerW: v.powerW, memoryBytes: this.memory.get(v.uuid) ?? 0 })) });
      // Each interval's VM powers are the trend's samples.
      for (const r of list) {
        const s = (r.t1UnixNs - r.t0UnixNs) / 1e9;
        if (!(s > 0)) continue;
        const byVm = new Map<string, number>();
        for (const sh of r.shares) if (sh.kind === 'vm') byVm.set(sh.vmUuid, (byVm.get(sh.vmUuid) ?? 0) + sh.dynamicJoules + sh.staticJoules);
        for (const [uuid, j] of byVm) samples.push({ key: uuid, tUnixS: r.t1UnixNs / 1e9, powerW: j / s });
      }
    }
    if (hosts.length === 0) return [];
    const known = new Set(hosts.map((h) => h.hostId));
    // Groups whose hosts are not all reporting yet are evaluated over the hosts that are.
    const groups = (this.cfg.groups ?? []).map((g) => ({ ...g, members: g.members.filter((m) => known.has(m) || (this.cfg.groups ?? []).some((o) => o.groupId === m)) })).filter((g) => g.members.length > 0);
    const forecasts = this.advisor.forecastPower(samples, { nowUnixS: newest / 1e9, horizonS: H, recentS: this.cfg.historyS ?? 300, z: this.cfg.z ?? 2 });
    for (const h of hosts) h.forecastW = this.advisor.hostForecastW(h, forecasts, H).map((w, t) => Math.max(w, h.forecastW?.[t] ?? 0));
    // Hosts without a cap of their own are planned with an unreachable one (their groups still count).
    const planHosts = hosts.map((h) => ({ ...h, capW: Number.isFinite(h.capW) ? h.capW : 1e12 }));
    const linkBps = ((this.cfg.linkGbps ?? 10) * 1e9) / 8;
    let plan: WatchPlan;
    try {
      plan = this.advisor.planCaps({ hosts: planHosts, groups, linkBps, horizonS: H }, { marginW: this.cfg.marginW ?? 0 });
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'cap watch: the advisor refused the input; no statuses this round');
      return this.last;
    }
    const baseGroups = this.advisor.simulateGroups(planHosts, groups, [], H);
    const members = this.advisor.groupHosts(groups, known);
    const planHost = new Map(plan.hosts.map((h) => [h.hostId, h.timelineW]));
    const planGroup = new Map(plan.groups.map((g) => [g.groupId, g.timelineW]));
    const statuses: CapWatchStatus[] = [];
    const marginW = this.cfg.marginW ?? 0;
    const scopeStatus = (scopeId: string, scopeKind: string, hostIds: string[], capW: number, powerW: number, bound: number[], planned: number[]): CapWatchStatus => {
      const cross = bound.findIndex((w) => w > capW + 1e-6);
      const ids = new Set(hostIds);
      const actions = plan.actions.filter((a) => ids.has(a.hostId ?? a.fromHostId ?? '') || ids.has(a.toHostId ?? '')).map((a) => actionRecord(a, linkBps));
      return {
        scopeId,
        scopeKind,
        hostIds,
        tUnixNs: newest,
        capW,
        powerW: round3(powerW),
        predictedPeakW: round3(Math.max(...bound)),
        predictedCrossS: cross,
        horizonS: H,
        planSafe: planned.every((w) => w <= capW + 1e-6),
        planPeakW: round3(Math.max(...planned)),
        planSlaCost: plan.slaCost,
        actions,
        method: this.method,
        marginW,
      };
    };
    for (const h of hosts) {
      if (!Number.isFinite(h.capW)) continue;
      const bound = h.forecastW!;
      statuses.push(scopeStatus(h.hostId, 'host', [h.hostId], h.capW, h.powerW, bound, planHost.get(h.hostId) ?? bound));
    }
    for (const g of groups) {
      const ids = members.get(g.groupId) ?? [];
      const bound = baseGroups.get(g.groupId) ?? [];
      const nowW = (g.otherW ?? 0) + ids.reduce((a, id) => a + (hosts.find((h) => h.hostId === id)?.powerW ?? 0), 0);
      statuses.push(scopeStatus(g.groupId, g.kind ?? 'group', ids, g.capW, nowW, bound, planGroup.get(g.groupId) ?? bound));
    }
    this.last = statuses;
    for (const s of statuses) {
      if (s.predictedCrossS >= 0 && !this.crossing.has(s.scopeId)) {
        this.crossing.add(s.scopeId);
        this.log.warn(
          { cap: s.scopeId, kind: s.scopeKind, capW: s.capW, powerW: s.powerW, predictedPeakW: s.predictedPeakW, inS: s.predictedCrossS, planSafe: s.planSafe, actions: s.actions.length },
          `${s.scopeKind} ${s.scopeId} is predicted to cross its ${s.capW} W cap in ${s.predictedCrossS} s (bound ${s.predictedPeakW} W, now ${s.powerW} W); the advisor's plan (${s.actions.length} actions) is ${s.planSafe ? 'safe' : 'NOT safe'}`,
        );
      } else if (s.predictedCrossS < 0 && this.crossing.delete(s.scopeId)) {
        this.log.info({ cap: s.scopeId }, `${s.scopeKind} ${s.scopeId} is no longer predicted to cross its cap`);
      }
    }
    if (this.cfg.publish !== false) {
      const r = await this.deps.producer.send(
        TOPICS.capping,
        statuses.map((s) => ({ key: s.scopeId, value: CapStatus.encode(CapStatus.create(s)).finish() })),
      );
      if (r.kind !== 'ok') {
        this.log.warn({ code: r.error.code }, `cap statuses not published (the next evaluation publishes them again): ${r.error.message}`);
      }
    }
    return statuses;
  }
}

function actionRecord(a: WatchAction, linkBps: number): CapWatchActionRecord {
  if (a.kind === 'migrate') return { kind: 'migrate', vmUuid: a.vmUuid, hostId: a.fromHostId ?? '', toHostId: a.toHostId ?? '', mode: a.mode ?? '', shedW: 0, fraction: (a.bandwidthBps ?? 0) / linkBps, startS: a.startS ?? 0, untilS: a.endS ?? 0, reason: a.reason };
  return { kind: 'throttle', vmUuid: a.vmUuid, hostId: a.hostId ?? '', toHostId: '', mode: a.method ?? 'cpu-quota', shedW: a.shedW ?? 0, fraction: a.method === 'dvfs' ? (a.frequencyFraction ?? 1) : (a.cpuQuotaFraction ?? 1), startS: a.fromS ?? 0, untilS: a.untilS ?? -1, reason: a.reason };
}

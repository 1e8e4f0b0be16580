/**
 * The collector's Prometheus metrics, kept in memory and rendered as text exposition format 0.0.4 (the
 * `/metrics` handler appends prom-client's process_* / nodejs_* defaults and wattsplit_build_info).
 * Energy follows the conventions operators know: joules as counters with `_total`
 * (`wattsplit_vm_energy_joules_total{host,vm,vm_name,tenant,source,part,method}`), power by rate().
 *
 * Series bound: a VM has at most sources (rapl, bmc_rest, gpu) × parts (dynamic, static) × methods series,
 * each created with its first joule; a series not updated for `seriesIdleTtlMs` (a VM stopped, deleted or
 * migrated to a host another collector consumes) is dropped at the next render, so the count follows the
 * VMs running now, not every VM ever seen. Families with a fixed label set are initialised to 0 for every
 * known label value (`initKnownLabels`), so increase() and rate() see their first event.
 */
import { Injectable } from '@nestjs/common';
import type { AttributionResult, AttributionShare } from '@wattsplit/attribution';
import { IngestDelay } from './ingest-delay.js';

type Labels = Record<string, string>;

interface Series {
  labels: Labels;
  value: number;
  /** Date.now() of the last update (per-VM and host-share energy series only: those expire). */
  touchedMs?: number;
}

interface Family {
  help: string;
  type: 'counter' | 'gauge';
  series: Map<string, Series>;
}

/** The two series one share position of a host's results adds to, and the entity they belong to. */
interface ShareSeries {
  kind: string;
  vmUuid: string;
  vmName: string;
  tenant: string;
  source: string;
  series: [Series | undefined, Series | undefined];
}

/**
 * The last `size` attribution records of one method and hardware class: how many of them used the
 * fallback (cold start). Invariant: `fallbacks` = the number of 1s among the first `count` slots of `flags`.
 */
class RecentFallbacks {
  private readonly flags: Uint8Array;
  private next = 0;
  count = 0;
  fallbacks = 0;

  constructor(readonly size: number) {
    this.flags = new Uint8Array(size);
  }

  add(fallback: boolean): void {
    const f = fallback ? 1 : 0;
    if (this.count === this.size) this.fallbacks -= this.flags[this.next]!;
    else this.count++;
    this.flags[this.next] = f;
    this.fallbacks += f;
    this.next = (this.next + 1) % this.size;
  }
}

/** How many recent records per method and class `recentColdStart` looks at. */
export const RECENT_RECORDS = 1000;

/** How far ahead of its position `recordResult` looks for a share's cached series (shares that dropped out before it). */
const SHARE_LOOKAHEAD = 8;

/** Default idle time after which a per-VM or host-share energy series is dropped: one hour. */
export const SERIES_IDLE_TTL_MS = 3_600_000;

/** The expiring families: their series are created per VM or per host share as energy arrives. */
const EXPIRING = ['wattsplit_vm_energy_joules_total', 'wattsplit_host_share_energy_joules_total'] as const;

const escape = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const keyOf = (l: Labels) => Object.entries(l).map(([k, v]) => `${k}=${v}`).join('\u0001');

@Injectable()
export class CollectorMetrics {
  private readonly families = new Map<string, Family>();
  private readonly lastT1 = new Map<string, number>();
  private readonly shareSeries = new Map<string, ShareSeries[]>();
  private readonly lagProviders: (() => number | undefined)[] = [];
  private readonly gaugeProviders = new Map<string, () => { labels: Labels; value: number }[]>();
  private readonly recent = new Map<string, RecentFallbacks>();
  /** Idle time after which a per-VM or host-share energy series is dropped (default SERIES_IDLE_TTL_MS). */
  seriesIdleTtlMs = SERIES_IDLE_TTL_MS;
  /** How far behind ingest is (the pipeline's bus handler calls; training yields to it: training-gate.ts). */
  readonly ingest = new IngestDelay();

  constructor() {
    this.define('wattsplit_vm_energy_joules_total', 'counter', 'Energy attributed to a VM, joules, by source, part (dynamic|static) and method.');
    this.define('wattsplit_host_share_energy_joules_total', 'counter', 'Energy attributed to host overhead or left unallocated, joules.');
    this.define('wattsplit_host_energy_joules_total', 'counter', 'Measured host energy, joules, by source.');
    this.define('wattsplit_collector_frames_total', 'counter', 'Telemetry messages consumed, by result (accepted, rejected, poison).');
    this.define('wattsplit_collector_intervals_total', 'counter', 'Host intervals attributed and stored, by method.');
    this.define('wattsplit_collector_anomalies_total', 'counter', 'Anomalies found while aligning frames, by code.');
    this.define('wattsplit_collector_method_fallbacks_total', 'counter', 'Intervals where a method failed and cpu_share was used instead, by method.');
    this.define('wattsplit_collector_store_failures_total', 'counter', 'Store writes that failed, by kind: retryable (the batch is redelivered), failed (bad intervals dead-lettered), checkpoint_refused.');
    this.define('wattsplit_collector_dead_letters_total', 'counter', 'Messages sent to the dead-letter topic.');
    this.define('wattsplit_collector_store_writes_total', 'counter', 'Grouped interval writes started (each is one insert per table, so its rate is the new parts per second per table a ClickHouse server has to merge).');
    this.define('wattsplit_collector_store_write_intervals_total', 'counter', 'Host intervals in those writes (divided by the writes: intervals per write).');
    this.define('wattsplit_collector_linger_seconds_total', 'counter', 'Time partition handlers held their next batch back to hand it over shortly before the next spaced store write (storeWrites.linger), summed over partitions, seconds.');
    this.define('wattsplit_collector_lag_seconds', 'gauge', 'Wall-clock now minus the end of the newest stored interval, seconds (max over hosts).');
    this.define('wattsplit_collector_bus_lag_messages', 'gauge', 'Telemetry messages not yet committed by the collector group.');
    this.define('wattsplit_model_trainings_total', 'counter', 'Model trainings by hardware class, reason (first, new_class, drift, period, manual) and result (trained, skipped, failed).');
    this.define('wattsplit_collector_cold_start_records_total', 'counter', 'Attribution records of a learned method made with the baseline because the hardware class had no model yet, by method.');
    this.define('wattsplit_collector_conservation_failures_total', 'counter', 'Host intervals where a method\'s shares did not sum to the measured energy, by method (the baseline: the batch is refused; another method: it falls back to the baseline).');
    this.initKnownLabels([]);
    this.addGaugeProvider('wattsplit_collector_ingest_delay_seconds', 'Age of the oldest telemetry frame received and not yet stored, or of the oldest frame of a batch finished in the last 2 s, seconds (bus timestamp to now).', () => [{ labels: {}, value: this.ingest.delayS() }]);
  }

  /**
   * Creates at 0 every series whose label values are known in advance (results, failure kinds, and the
   * configured methods), so a first event is an increase from 0 that increase() and alerts can see.
   */
  initKnownLabels(methods: readonly string[]): void {
    const zero = (name: string, labels: Labels) => this.inc(name, labels, 0);
    for (const result of ['accepted', 'rejected', 'poison']) zero('wattsplit_collector_frames_total', { result });
    for (const kind of ['retryable', 'failed', 'checkpoint_refused']) zero('wattsplit_collector_store_failures_total', { kind });
    for (const name of ['wattsplit_collector_dead_letters_total', 'wattsplit_collector_store_writes_total', 'wattsplit_collector_store_write_intervals_total', 'wattsplit_collector_linger_seconds_total']) zero(name, {});
    for (const method of methods) {
      zero('wattsplit_collector_intervals_total', { method });
      zero('wattsplit_collector_cold_start_records_total', { method });
      zero('wattsplit_collector_conservation_failures_total', { method });
    }
    for (const method of methods.slice(1)) zero('wattsplit_collector_method_fallbacks_total', { method });
  }

  private define(name: string, type: Family['type'], help: string): void {
    this.families.set(name, { help, type, series: new Map() });
  }

  inc(name: string, labels: Labels, by = 1): void {
    const f = this.families.get(name);
    if (!f) throw new Error(`unknown metric ${name}`);
    const k = keyOf(labels);
    const s = f.series.get(k);
    if (s) s.value += by;
    else f.series.set(k, { labels, value: by });
  }

  /** Current value of one series (tests, dashboard). */
  value(name: string, labels: Labels): number {
    return this.families.get(name)?.series.get(keyOf(labels))?.value ?? 0;
  }

  /** Sum over every series of a family. */
  total(name: string): number {
    let t = 0;
    for (const s of this.families.get(name)?.series.values() ?? []) t += s.value;
    return t;
  }

  recordResult(r: AttributionResult): void {
    // A host's shares come in the same order interval after interval: remember each share's two series
    // (dynamic, static) in that order and walk the list alongside the shares. A share can drop out for an
    // interval (host overhead with no CPU time outside the VMs, a VM with no joule) and come back: the walk
    // looks a few entries ahead for the next share, so only the share that changed costs a series lookup
    // (with a positional match alone, every share after it did: a key string and a labels object each, a
    // sixth of the collector's allocations per VM-sample in issue 15's heap profile). The list is rebuilt
    // only when it changed.
    const ck = `${r.hostId}\u0001${r.method}`;
    const old = this.shareSeries.get(ck) ?? [];
    let list = old;
    let rebuilt = false;
    let j = 0;
    const now = Date.now();
    for (let i = 0; i < r.shares.length; i++) {
      const s = r.shares[i]!;
      let c: ShareSeries | undefined;
      for (let k = j; k < old.length && k < j + SHARE_LOOKAHEAD; k++) {
        const o = old[k]!;
        if (o.kind === s.kind && o.vmUuid === s.vmUuid && o.vmName === s.vmName && o.tenant === s.tenant && o.source === s.source) {
          c = o;
          j = k + 1;
          break;
        }
      }
      c ??= { kind: s.kind, vmUuid: s.vmUuid, vmName: s.vmName, tenant: s.tenant, source: s.source, series: [undefined, undefined] };
      if (!rebuilt && old[i] !== c) {
        list = old.slice(0, i);
        rebuilt = true;
      }
      if (rebuilt) list.push(c);
      // A series appears with its first joule.
      if (s.dynamicJoules > 0) {
        const d = (c.series[0] ??= this.seriesOf(r, s, 'dynamic'));
        d.value += s.dynamicJoules;
        d.touchedMs = now;
      }
      if (s.staticJoules > 0) {
        const st = (c.series[1] ??= this.seriesOf(r, s, 'static'));
        st.value += s.staticJoules;
        st.touchedMs = now;
      }
    }
    if (rebuilt) this.shareSeries.set(ck, list);
    else if (old.length > r.shares.length) old.length = r.shares.length;
    this.inc('wattsplit_collector_intervals_total', { method: r.method });
    const fallback = r.modelVersion.startsWith('fallback:');
    if (fallback) this.inc('wattsplit_collector_cold_start_records_total', { method: r.method });
    const rk = `${r.method}\u0001${r.hardwareClass}`;
    let w = this.recent.get(rk);
    if (!w) this.recent.set(rk, (w = new RecentFallbacks(RECENT_RECORDS)));
    w.add(fallback);
  }

  /**
   * Of the last RECENT_RECORDS attribution records (host intervals) of `method` for one hardware class
   * since this process started, how many used the fallback because no model applied (cold start).
   */
  recentColdStart(method: string, hardwareClass: string): { records: number; coldStart: number } {
    const w = this.recent.get(`${method}\u0001${hardwareClass}`);
    return { records: w?.count ?? 0, coldStart: w?.fallbacks ?? 0 };
  }

  /** The series a share's dynamic or static part adds to (created at 0 if new). */
  private seriesOf(r: AttributionResult, s: AttributionShare, part: 'dynamic' | 'static'): Series {
    const [name, labels]: [string, Labels] =
      s.kind === 'vm'
        ? ['wattsplit_vm_energy_joules_total', { host: r.hostId, vm: s.vmUuid, vm_name: s.vmName, tenant: s.tenant, source: s.source, part, method: r.method }]
        : ['wattsplit_host_share_energy_joules_total', { host: r.hostId, kind: s.kind, source: s.source, part, method: r.method }];
    const f = this.families.get(name)!;
    const k = keyOf(labels);
    let series = f.series.get(k);
    if (!series) f.series.set(k, (series = { labels, value: 0 }));
    return series;
  }

  recordMeasured(hostId: string, measured: Record<string, number>, t1UnixNs: number): void {
    for (const [source, j] of Object.entries(measured)) if (j > 0) this.inc('wattsplit_host_energy_joules_total', { host: hostId, source }, j);
    this.lastT1.set(hostId, Math.max(this.lastT1.get(hostId) ?? 0, t1UnixNs));
  }

  /** A gauge family computed at each scrape (model versions, ages, residuals). */
  addGaugeProvider(name: string, help: string, p: () => { labels: Labels; value: number }[]): void {
    this.addProvider(name, 'gauge', help, p);
  }

  /** A family computed at each scrape, gauge or counter (a counter's provider answers its running total). */
  addProvider(name: string, type: Family['type'], help: string, p: () => { labels: Labels; value: number }[]): void {
    this.define(name, type, help);
    this.gaugeProviders.set(name, p);
  }

  addBusLagProvider(p: () => number | undefined): void {
    this.lagProviders.push(p);
  }

  /** Seconds between now and the newest interval end, max over hosts (0 with no data). */
  lagSeconds(nowMs = Date.now()): number {
    let lag = 0;
    for (const t1 of this.lastT1.values()) lag = Math.max(lag, nowMs / 1e3 - t1 / 1e9);
    return lag;
  }

  /**
   * Drops per-VM and host-share energy series idle for longer than `seriesIdleTtlMs`; returns how many.
   * The share cache is cleared when any went, so no cached reference keeps adding to a dropped series.
   */
  expireIdleSeries(nowMs = Date.now()): number {
    let dropped = 0;
    for (const name of EXPIRING) {
      const f = this.families.get(name)!;
      for (const [k, s] of f.series) {
        if (nowMs - (s.touchedMs ?? nowMs) > this.seriesIdleTtlMs) {
          f.series.delete(k);
          dropped++;
        }
      }
    }
    if (dropped > 0) this.shareSeries.clear();
    return dropped;
  }

  /** Series now in a family (tests, the series-count check in docs/monitoring.md). */
  seriesCount(name: string): number {
    return this.families.get(name)?.series.size ?? 0;
  }

  render(nowMs = Date.now()): string {
    this.expireIdleSeries(nowMs);
    const gauges = this.families.get('wattsplit_collector_lag_seconds')!;
    gauges.series.clear();
    if (this.lastT1.size > 0) gauges.series.set('', { labels: {}, value: this.lagSeconds(nowMs) });
    const busLag = this.families.get('wattsplit_collector_bus_lag_messages')!;
    busLag.series.clear();
    let lag: number | undefined;
    for (const p of this.lagProviders) {
      const v = p();
      if (typeof v === 'number' && Number.isFinite(v)) lag = (lag ?? 0) + v;
    }
    if (lag !== undefined) busLag.series.set('', { labels: {}, value: lag });
    for (const [name, p] of this.gaugeProviders) {
      const f = this.families.get(name)!;
      f.series.clear();
      try {
        for (const s of p()) if (Number.isFinite(s.value)) f.series.set(keyOf(s.labels), s);
      } catch {
        // a provider that cannot answer now leaves its family empty for this scrape
      }
    }
    const out: string[] = [];
    for (const [name, f] of this.families) {
      out.push(`# HELP ${name} ${f.help}`, `# TYPE ${name} ${f.type}`);
      for (const s of f.series.values()) {
        const l = Object.entries(s.labels);
        const labels = l.length ? `{${l.map(([k, v]) => `${k}="${escape(v)}"`).join(',')}}` : '';
        out.push(`${name}${labels} ${Number.isInteger(s.value) ? String(s.value) : s.value.toPrecision(15)}`);
      }
    }
    return out.join('\n') + '\n';
  }
}

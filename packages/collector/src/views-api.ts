/**
 * The data behind the dashboard's views (dashboard-page.ts), as REST resources under /api/v1: fleet
 * power, hosts and per-host power stacked by VM, tenants and their energy over time, the fairness
 * comparison, carbon per tenant, bills and pipeline health. Everything is read from the store, so the
 * collector, `wattsplit serve` and `demo --serve` answer alike.
 *
 * Inputs are checked before any query (api-query.ts): unknown parameters, bad times and methods are
 * 400s naming them; an unknown host, tenant or VM is a 404 naming it. Values reach SQL only as escaped
 * literals (`str`, integers checked by `int`). Fleet-wide views (hosts, fleet power, pipeline, fairness
 * over every tenant) need scope admin; a tenant token reads its own tenant's energy, bill and carbon.
 */
import { Controller, Get, Header, Inject, NotFoundException, Optional, Param, Query } from '@nestjs/common';
import type { AttributionMethod } from '@wattsplit/attribution';
import { int, str, type Store } from '@wattsplit/store';
import type { ApiPrincipal } from './api-auth.js';
import { Access, Caller } from './api-guard.js';
import { badParameter, methodParameter, readQuery } from './api-query.js';
import { toHttp } from './api-controllers.js';
import { billReport, BASELINE_METHOD, type BillingOptions } from './billing.js';
import { billHtml } from './bill-render.js';
import { parseRange } from './time-range.js';
import { TelemetryPipeline } from './telemetry-pipeline.js';
import { METHODS, STORE } from './tokens.js';

/** Prices, PUE and carbon inputs the API bills with (serve/collector flags); absent: energy only. */
export const BILLING_INPUTS = Symbol.for('wattsplit.collector.billing-inputs');
export type BillingInputs = Pick<BillingOptions, 'tariff' | 'pue' | 'intensity' | 'regions'>;

const HOST_OR_TENANT = /^[^\s/\\]{1,256}$/;

function stepParameter(raw: string | undefined, rangeS: number): number {
  if (raw === undefined || raw === '') {
    // About 120 points over the range, at least 10 s.
    return Math.max(10, Math.ceil(rangeS / 120 / 10) * 10);
  }
  const n = Number(raw);
  if (!/^\d{1,7}$/.test(raw) || n < 1) throw badParameter('step', raw, 'must be whole seconds ≥ 1');
  if (rangeS / n > 5000) throw badParameter('step', raw, `gives ${Math.ceil(rangeS / n)} points over the range; at most 5000 (use a larger step)`);
  return n;
}

interface Range {
  fromUnixNs: number;
  toUnixNs: number;
}

/** The newest stored interval end, so an idle demo's data is shown (default range ends there, not at now). */
async function latestNs(store: Store): Promise<number | undefined> {
  const r = (await store.query('SELECT count() AS n, max(t1_ns) AS t FROM host_samples', 'JSONEachRow')).rows[0];
  return r && Number(r.n) > 0 ? Number(r.t) : undefined;
}

/** from/to with defaults: the hour up to the newest stored interval (or now). */
async function rangeOf(store: Store, from: string | undefined, to: string | undefined, defaultSpanS = 3600): Promise<Range> {
  if (to === undefined && from === undefined) {
    const end = (await latestNs(store)) ?? Date.now() * 1e6;
    const toNs = Math.ceil(end / 1e9) * 1e9 + 1e9;
    return { fromUnixNs: Math.max(0, toNs - defaultSpanS * 1e9), toUnixNs: toNs };
  }
  return parseRange(from, to);
}

const sec = (ns: number) => int(Math.floor(ns / 1e9), 'seconds');

@Controller('api/v1')
export class ViewsController {
  constructor(
    @Inject(STORE) private readonly store: Store,
    @Inject(METHODS) private readonly methods: AttributionMethod[],
    @Optional() @Inject(BILLING_INPUTS) private readonly billing?: BillingInputs,
    @Optional() private readonly pipeline?: TelemetryPipeline,
  ) {}

  private method(raw: string | undefined): string {
    return methodParameter(raw, this.methods.map((m) => m.name));
  }

  private async knownHosts(): Promise<string[]> {
    return (await this.store.query('SELECT DISTINCT host AS h FROM host_samples ORDER BY h', 'JSONEachRow')).rows.map((r) => String(r.h));
  }

  private async knownTenants(): Promise<string[]> {
    return (await this.store.query(`SELECT DISTINCT tenant AS t FROM tenant_energy_hourly WHERE kind = 'vm' ORDER BY t`, 'JSONEachRow')).rows.map((r) => String(r.t));
  }

  private async checkHost(host: string): Promise<void> {
    if (!HOST_OR_TENANT.test(host) || !(await this.knownHosts()).includes(host)) throw new NotFoundException({ statusCode: 404, code: 'NOT_FOUND', message: `host ${JSON.stringify(host)} is not in the store`, host });
  }

  private async checkTenant(tenant: string): Promise<void> {
    if (!HOST_OR_TENANT.test(tenant) || !(await this.knownTenants()).includes(tenant)) throw new NotFoundException({ statusCode: 404, code: 'NOT_FOUND', message: `tenant ${JSON.stringify(tenant)} has no VM in the store`, tenant });
  }

  /** Every host: hardware class, last interval, power over its last minute. */
  @Get('hosts')
  @Access('admin')
  async hosts(@Query() query: unknown): Promise<Record<string, unknown>> {
    try {
      readQuery(query, []);
      const rows = (
        await this.store.query(
          `SELECT host, any(hardware_class) AS hardware_class, max(t1_ns) AS last_t1_ns, count() AS intervals FROM host_samples GROUP BY host ORDER BY host`,
          'JSONEachRow',
        )
      ).rows;
      return { hosts: rows.map((r) => ({ host: String(r.host), hardware_class: String(r.hardware_class), last_interval_end: new Date(Number(r.last_t1_ns) / 1e6).toISOString(), intervals: Number(r.intervals) })) };
    } catch (e) {
      throw toHttp(e);
    }
  }

  /** Measured fleet power (W) per step: RAPL, GPU and the rest of the wall (BMC), summed over hosts. */
  @Get('fleet/power')
  @Access('admin')
  async fleetPower(@Query() query: unknown): Promise<Record<string, unknown>> {
    try {
      const q = readQuery(query, ['from', 'to', 'step']);
      const r = await rangeOf(this.store, q.from, q.to);
      const step = stepParameter(q.step, (r.toUnixNs - r.fromUnixNs) / 1e9);
      const rows = (
        await this.store.query(
          `SELECT intDiv(intDiv(t1_ns, 1000000000), ${step}) * ${step} AS t, sum(rapl_j) AS rapl, sum(gpu_j) AS gpu, sum(bmc_rest_j) AS bmc_rest, uniqExact(host) AS hosts
           FROM host_samples FINAL WHERE t1_ns >= ${sec(r.fromUnixNs)} * 1000000000 AND t1_ns < ${sec(r.toUnixNs)} * 1000000000 GROUP BY t ORDER BY t`,
          'JSONEachRow',
        )
      ).rows;
      const points = rows.map((x) => ({ t: Number(x.t), rapl_w: Number(x.rapl) / step, gpu_w: Number(x.gpu) / step, bmc_rest_w: Number(x.bmc_rest) / step, hosts: Number(x.hosts) }));
      // "Now": the last complete step (the newest one may still be filling).
      const now = points.length > 1 ? points[points.length - 2] : points[points.length - 1];
      return { from: new Date(r.fromUnixNs / 1e6).toISOString(), to: new Date(r.toUnixNs / 1e6).toISOString(), step_s: step, now: now ? { t: now.t, total_w: now.rapl_w + now.gpu_w + now.bmc_rest_w } : null, points };
    } catch (e) {
      throw toHttp(e);
    }
  }

  /** One host's attributed power (W) per step, stacked by VM (plus host overhead and unallocated). */
  @Get('hosts/:host/power')
  @Access('admin')
  async hostPower(@Param('host') host: string, @Query() query: unknown): Promise<Record<string, unknown>> {
    try {
      const q = readQuery(query, ['from', 'to', 'step', 'method']);
      const method = this.method(q.method);
      await this.checkHost(host);
      const r = await rangeOf(this.store, q.from, q.to);
      const step = stepParameter(q.step, (r.toUnixNs - r.fromUnixNs) / 1e9);
      const rows = (
        await this.store.query(
          `SELECT intDiv(intDiv(t1_ns, 1000000000), ${step}) * ${step} AS t, if(kind = 'vm', vm_uuid, concat('[', kind, ']')) AS entity, any(vm_name) AS name, any(tenant) AS tenant, sum(dynamic_j + static_j) AS j
           FROM attributions FINAL WHERE host = ${str(host)} AND method = ${str(method)} AND t1_ns >= ${sec(r.fromUnixNs)} * 1000000000 AND t1_ns < ${sec(r.toUnixNs)} * 1000000000
           GROUP BY t, entity ORDER BY t, entity`,
          'JSONEachRow',
        )
      ).rows;
      const times = [...new Set(rows.map((x) => Number(x.t)))].sort((a, b) => a - b);
      const index = new Map(times.map((t, i) => [t, i]));
      const series = new Map<string, { entity: string; vm_name: string; tenant: string; watts: number[] }>();
      for (const x of rows) {
        const entity = String(x.entity);
        let s = series.get(entity);
        if (!s) series.set(entity, (s = { entity, vm_name: String(x.name) || entity, tenant: String(x.tenant), watts: times.map(() => 0) }));
        s.watts[index.get(Number(x.t))!] = Number(x.j) / step;
      }
      return { host, method, step_s: step, times, series: [...series.values()] };
    } catch (e) {
      throw toHttp(e);
    }
  }

  /** Tenants with VM energy in the store. */
  @Get('tenants')
  @Access('tenant-data')
  async tenants(@Query() query: unknown, @Caller() who: ApiPrincipal): Promise<Record<string, unknown>> {
    try {
      readQuery(query, []);
      const all = await this.knownTenants();
      const scope = who.scope;
      return { tenants: scope.kind === 'tenant' ? all.filter((t) => t === scope.tenant) : all };
    } catch (e) {
      throw toHttp(e);
    }
  }

  /** kWh per tenant per hour (the rollups). */
  @Get('tenants-energy')
  @Access('tenant-data')
  async tenantEnergy(@Query() query: unknown, @Caller() who: ApiPrincipal): Promise<Record<string, unknown>> {
    try {
      const q = readQuery(query, ['from', 'to', 'method']);
      const method = this.method(q.method);
      const r = await rangeOf(this.store, q.from, q.to, 7 * 86_400);
      const scope = who.scope;
      const rows = await this.store.energyRollup({ ...r, by: ['hour', 'tenant'], methods: [method], kinds: ['vm'], ...(scope.kind === 'tenant' ? { tenants: [scope.tenant] } : {}) });
      const hours = [...new Set(rows.map((x) => x.hour!))].sort();
      const index = new Map(hours.map((h, i) => [h, i]));
      const series = new Map<string, number[]>();
      for (const x of rows) {
        let s = series.get(x.tenant!);
        if (!s) series.set(x.tenant!, (s = hours.map(() => 0)));
        s[index.get(x.hour!)!] = (x.dynamicJoules + x.staticJoules) / 3.6e6;
      }
      return { method, hours, tenants: [...series].map(([tenant, kwh]) => ({ tenant, kwh })) };
    } catch (e) {
      throw toHttp(e);
    }
  }

  private async report(q: { from?: string; to?: string; method?: string }, tenants: readonly string[] | undefined) {
    const method = this.method(q.method);
    const r = await rangeOf(this.store, q.from, q.to, 30 * 86_400);
    return billReport(this.store, { ...r, method, ...(this.billing ?? {}), ...(tenants ? { tenants } : {}) });
  }

  /** Learned method vs cpu_share per tenant, with the difference (kWh, money, gCO2e). */
  @Get('fairness')
  @Access('admin')
  async fairness(@Query() query: unknown): Promise<Record<string, unknown>> {
    try {
      const q = readQuery(query, ['from', 'to', 'method']);
      const rep = await this.report(q, undefined);
      if (rep.method === BASELINE_METHOD) throw badParameter('method', rep.method, `is the baseline; the fairness report compares another method with ${BASELINE_METHOD}`);
      return { from: rep.from, to: rep.to, method: rep.method, currency: rep.currency, ...rep.fairness };
    } catch (e) {
      throw toHttp(e);
    }
  }

  /** Bills of every tenant (admin) or the caller's tenant: kWh, facility kWh, cost, gCO2e, with the cpu_share comparison. */
  @Get('bills')
  @Access('tenant-data')
  async bills(@Query() query: unknown, @Caller() who: ApiPrincipal): Promise<Record<string, unknown>> {
    try {
      const q = readQuery(query, ['from', 'to', 'method', 'tenant']);
      const scope = who.scope;
      let tenants: string[] | undefined = q.tenant === undefined ? undefined : [q.tenant];
      if (q.tenant !== undefined) await this.checkTenant(q.tenant);
      if (scope.kind === 'tenant') {
        if (tenants && tenants[0] !== scope.tenant) throw badParameter('tenant', q.tenant, `is not readable with scope tenant:${scope.tenant}`);
        tenants = [scope.tenant];
      }
      const rep = await this.report(q, tenants);
      if (scope.kind === 'tenant' && rep.fairness) rep.fairness.tenants = rep.fairness.tenants.filter((t) => t.tenant === scope.tenant);
      return rep as unknown as Record<string, unknown>;
    } catch (e) {
      throw toHttp(e);
    }
  }

  /** A tenant's printable statement (HTML). */
  @Get('tenants/:tenant/statement')
  @Access('tenant-data')
  @Header('Content-Type', 'text/html; charset=utf-8')
  async statement(@Param('tenant') tenant: string, @Query() query: unknown, @Caller() who: ApiPrincipal): Promise<string> {
    try {
      const q = readQuery(query, ['from', 'to', 'method']);
      if (who.scope.kind === 'tenant' && who.scope.tenant !== tenant) throw badParameter('tenant', tenant, `is not readable with scope tenant:${who.scope.tenant}`);
      await this.checkTenant(tenant);
      const method = this.method(q.method);
      const r = await rangeOf(this.store, q.from, q.to, 30 * 86_400);
      return billHtml(await billReport(this.store, { ...r, method, ...(this.billing ?? {}), tenants: [tenant], vmLines: true }));
    } catch (e) {
      throw toHttp(e);
    }
  }

  /** gCO2e per tenant (needs grid intensity and regions: serve / demo --serve --intensity, --regions; the collector sets none). */
  @Get('carbon')
  @Access('tenant-data')
  async carbon(@Query() query: unknown, @Caller() who: ApiPrincipal): Promise<Record<string, unknown>> {
    try {
      const q = readQuery(query, ['from', 'to', 'method']);
      if (!this.billing?.intensity) return { configured: false, message: 'no grid intensity configured (`wattsplit serve` / `wattsplit demo --serve` take --intensity FILE --regions FILE; `wattsplit collector` does not compute carbon)', tenants: [] };
      const scope = who.scope;
      const rep = await this.report(q, scope.kind === 'tenant' ? [scope.tenant] : undefined);
      const cpu = new Map((rep.fairness?.tenants ?? []).map((f) => [f.tenant, f.cpu_share.co2e_g]));
      return {
        configured: true,
        method: rep.method,
        source: rep.carbon,
        from: rep.from,
        to: rep.to,
        tenants: rep.tenants.map((t) => ({ tenant: t.tenant, co2e_g: t.co2e_g, cpu_share_co2e_g: cpu.get(t.tenant) ?? null, facility_kwh: t.facility_kwh, regions: Object.fromEntries(Object.entries(t.regions).map(([k, a]) => [k, a.co2e_g])) })),
      };
    } catch (e) {
      throw toHttp(e);
    }
  }

  /** Pipeline health from the store (lag per host, anomalies by code) and this process's counters when it consumes. */
  @Get('pipeline')
  @Access('admin')
  async pipelineHealth(@Query() query: unknown): Promise<Record<string, unknown>> {
    try {
      const q = readQuery(query, ['from', 'to']);
      const r = await rangeOf(this.store, q.from, q.to);
      const nowS = Date.now() / 1000;
      const hosts = (await this.store.query('SELECT host, max(t1_ns) AS t FROM host_samples GROUP BY host ORDER BY host', 'JSONEachRow')).rows.map((x) => ({ host: String(x.host), lag_s: nowS - Number(x.t) / 1e9 }));
      const anomalies = (
        await this.store.query(
          `SELECT code, count() AS n FROM anomalies FINAL WHERE ts >= toDateTime(${sec(r.fromUnixNs)}, 'UTC') AND ts < toDateTime(${sec(r.toUnixNs)}, 'UTC') GROUP BY code ORDER BY n DESC, code`,
          'JSONEachRow',
        )
      ).rows.map((x) => ({ code: String(x.code), count: Number(x.n) }));
      const intervals = (
        await this.store.query(
          `SELECT count() AS n FROM host_samples FINAL WHERE t1_ns >= ${sec(r.fromUnixNs)} * 1000000000 AND t1_ns < ${sec(r.toUnixNs)} * 1000000000`,
          'JSONEachRow',
        )
      ).rows[0];
      return {
        mode: this.pipeline ? 'collector' : 'serve (no telemetry consumed)',
        from: new Date(r.fromUnixNs / 1e6).toISOString(),
        to: new Date(r.toUnixNs / 1e6).toISOString(),
        intervals_stored: Number(intervals?.n ?? 0),
        hosts,
        anomalies,
        collector: this.pipeline ? { ...this.pipeline.stats, lag_seconds: this.pipeline.metrics.lagSeconds() } : null,
      };
    } catch (e) {
      throw toHttp(e);
    }
  }
}

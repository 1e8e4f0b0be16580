/**
 * REST API over platform-express: health, Prometheus metrics, per-VM energy, per-tenant bills, dashboard.
 * Each route says what it serves (`@Access`, api-guard.ts); routes with tenant data filter by the caller's
 * scope, so a tenant:<name> token never gets another tenant's rows. Query strings are checked first
 * (api-query.ts): unknown or repeated parameters, bad times and unknown methods are 400s.
 */
import { Controller, ForbiddenException, Get, Header, HttpException, HttpStatus, Inject, Param, Query } from '@nestjs/common';
import type { AttributionMethod } from '@wattsplit/attribution';
import type { Store, TenantTotal } from '@wattsplit/store';
import { isWattsplitError } from '@wattsplit/wire';
import { scopeText, type ApiPrincipal } from './api-auth.js';
import { Access, Caller } from './api-guard.js';
import { methodParameter, readQuery } from './api-query.js';
import { CollectorMetrics } from './collector-metrics.js';
import { TelemetryPipeline } from './telemetry-pipeline.js';
import { parseRange } from './time-range.js';
import { METHODS, STORE } from './tokens.js';
import { renderDashboard } from './dashboard.js';

/** WattsplitError → HTTP: bad input 400 (naming the parameter and value), store down 503, the rest 500. */
export function toHttp(e: unknown): HttpException {
  if (e instanceof HttpException) return e;
  if (isWattsplitError(e)) {
    const status =
      e.code === 'STORE_INVALID_INPUT' || e.code === 'CONFIG_INVALID' ? HttpStatus.BAD_REQUEST : e.code === 'STORE_UNAVAILABLE' ? HttpStatus.SERVICE_UNAVAILABLE : HttpStatus.INTERNAL_SERVER_ERROR;
    const named = status === HttpStatus.BAD_REQUEST && e.details.parameter !== undefined ? { parameter: e.details.parameter, value: e.details.value } : {};
    return new HttpException({ statusCode: status, code: e.code, message: e.message, ...named }, status);
  }
  return new HttpException({ statusCode: 500, code: 'INTERNAL', message: e instanceof Error ? e.message : String(e) }, 500);
}

const RANGE_PARAMETERS = ['from', 'to', 'method'] as const;

/** The checked from/to/method of a query string. */
function rangeQuery(query: unknown, methods: readonly AttributionMethod[]): { fromUnixNs: number; toUnixNs: number; method: string } {
  const q = readQuery(query, RANGE_PARAMETERS);
  const range = parseRange(q.from, q.to);
  return { ...range, method: methodParameter(q.method, methods.map((m) => m.name)) };
}

const iso = (ns: number) => new Date(ns / 1e6).toISOString();

function notYours(who: ApiPrincipal, what: string): ForbiddenException {
  return new ForbiddenException({ statusCode: 403, code: 'FORBIDDEN', message: `${what} is not readable with scope ${scopeText(who.scope)}` });
}

@Controller()
export class HealthController {
  constructor(private readonly pipeline: TelemetryPipeline) {}

  @Get('healthz')
  @Access('open')
  health(): Record<string, unknown> {
    return { status: 'ok', store: this.pipeline.store.backend, methods: this.pipeline.methods.map((m) => m.name), ...this.pipeline.stats, lagSeconds: this.pipeline.metrics.lagSeconds() };
  }
}

@Controller()
export class MetricsController {
  constructor(private readonly metrics: CollectorMetrics) {}

  /** Per-tenant energy series are bill data: admin or the `metrics` scope (a Prometheus scrape token). */
  @Get('metrics')
  @Access('metrics')
  @Header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8')
  metricsText(): string {
    return this.metrics.render();
  }
}

@Controller('api/v1')
export class EnergyController {
  constructor(
    @Inject(STORE) private readonly store: Store,
    @Inject(METHODS) private readonly methods: AttributionMethod[],
  ) {}

  @Get('vms/:uuid/energy')
  @Access('tenant-data')
  async vmEnergy(@Param('uuid') uuid: string, @Query() query: unknown, @Caller() who: ApiPrincipal): Promise<Record<string, unknown>> {
    try {
      const q = rangeQuery(query, this.methods);
      let rows = await this.store.vmEnergy(uuid, q);
      const scope = who.scope;
      if (scope.kind === 'tenant') {
        const own = rows.filter((r) => r.tenant === scope.tenant);
        if (own.length === 0 && rows.length > 0) throw notYours(who, `VM ${JSON.stringify(uuid)}`);
        rows = own;
      }
      const totalJoules = rows.reduce((a, r) => a + r.dynamicJoules + r.staticJoules, 0);
      return { vmUuid: uuid, method: q.method, from: iso(q.fromUnixNs), to: iso(q.toUnixNs), totalJoules, totalKWh: totalJoules / 3.6e6, hours: rows };
    } catch (e) {
      throw toHttp(e);
    }
  }

  @Get('tenants/:tenant/bill')
  @Access('tenant-data')
  async tenantBill(@Param('tenant') tenant: string, @Query() query: unknown, @Caller() who: ApiPrincipal): Promise<Record<string, unknown>> {
    try {
      if (who.scope.kind === 'tenant' && who.scope.tenant !== tenant) throw notYours(who, `the bill of tenant ${JSON.stringify(tenant)}`);
      const q = rangeQuery(query, this.methods);
      const lines = await this.store.tenantBill(tenant, q);
      const dynamicJoules = lines.reduce((a, l) => a + l.dynamicJoules, 0);
      const staticJoules = lines.reduce((a, l) => a + l.staticJoules, 0);
      return {
        tenant,
        method: q.method,
        from: iso(q.fromUnixNs),
        to: iso(q.toUnixNs),
        dynamicJoules,
        staticJoules,
        totalJoules: dynamicJoules + staticJoules,
        totalKWh: (dynamicJoules + staticJoules) / 3.6e6,
        lines,
      };
    } catch (e) {
      throw toHttp(e);
    }
  }
}

@Controller()
export class DashboardController {
  constructor(
    @Inject(STORE) private readonly store: Store,
    @Inject(METHODS) private readonly methods: AttributionMethod[],
  ) {}

  /** Admin: every tenant plus host overhead and unallocated idle; tenant:<name>: that tenant's row only. */
  @Get()
  @Access('tenant-data')
  @Header('Content-Type', 'text/html; charset=utf-8')
  async dashboard(@Query() query: unknown, @Caller() who: ApiPrincipal): Promise<string> {
    try {
      const q = rangeQuery(query, this.methods);
      let totals: TenantTotal[] = await this.store.tenantTotals(q);
      const scope = who.scope;
      if (scope.kind === 'tenant') totals = totals.filter((t) => t.kind === 'vm' && t.tenant === scope.tenant);
      return renderDashboard(totals, { method: q.method, fromUnixNs: q.fromUnixNs, toUnixNs: q.toUnixNs, ...(scope.kind === 'tenant' ? { tenant: scope.tenant } : {}) });
    } catch (e) {
      throw toHttp(e);
    }
  }
}

/**
 * REST API over platform-express: health, Prometheus metrics, per-VM energy, per-tenant bills, models
 * (fleet metadata: scope admin or metrics), dashboard.
 * Each route says what it serves (`@Access`, api-guard.ts); routes with tenant data filter by the caller's
 * scope, so a tenant:<name> token never gets another tenant's rows. Query strings are checked first
 * (api-query.ts): unknown or repeated parameters, bad times and unknown methods are 400s.
 */
import { Controller, ForbiddenException, Get, Header, HttpException, HttpStatus, Inject, NotFoundException, Optional, Param, Query } from '@nestjs/common';
import type { AttributionMethod } from '@wattsplit/attribution';
import type { Store, TenantTotal } from '@wattsplit/store';
import { isWattsplitError, processMetricsText } from '@wattsplit/wire';
import { scopeText, type ApiPrincipal } from './api-auth.js';
import { Access, Caller } from './api-guard.js';
import { badParameter, methodParameter, readQuery } from './api-query.js';
import { CollectorMetrics, RECENT_RECORDS } from './collector-metrics.js';
import { describeModel, listModels, type ModelDetail, type ModelListEntry } from './model-report.js';
import { TrainingService } from './training-service.js';
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
  constructor(
    @Inject(STORE) private readonly store: Store,
    @Inject(METHODS) private readonly methods: AttributionMethod[],
    @Optional() private readonly pipeline?: TelemetryPipeline,
  ) {}

  /** Without a pipeline (`wattsplit serve`): the API over a store, consuming nothing. */
  @Get('healthz')
  @Access('open')
  health(): Record<string, unknown> {
    const base = { status: 'ok', store: this.store.backend, methods: this.methods.map((m) => m.name) };
    if (!this.pipeline) return { ...base, mode: 'serve' };
    // consuming: false while the bus cannot be reached (the collector retries subscribing; TelemetryPipeline.start).
    // storeWrites.ok false while the store refuses writes transiently: status "degraded", still HTTP 200 — the
    // process is alive and retrying, a liveness probe must not restart it (it would only re-read the backlog).
    const storeWrites = this.pipeline.storeWriteState();
    return { ...base, status: storeWrites.ok ? 'ok' : 'degraded', mode: 'collector', consuming: this.pipeline.consuming, storeWrites, ...this.pipeline.stats, lagSeconds: this.pipeline.metrics.lagSeconds() };
  }
}

@Controller()
export class MetricsController {
  constructor(private readonly metrics: CollectorMetrics) {}

  /** Per-tenant energy series are bill data: admin or the `metrics` scope (a Prometheus scrape token). */
  @Get('metrics')
  @Access('metrics')
  @Header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8')
  async metricsText(): Promise<string> {
    return this.metrics.render() + (await processMetricsText('collector'));
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

/** A class's model as the collector sees it now: the store's view plus this process's drift and cold-start figures. */
export interface ModelStatus extends ModelListEntry {
  /** Recent residual / training residual of the model in force at the scheduler's last check (null: not checked here). */
  drift_ratio: number | null;
  /** Share of this collector's last `cold_start.window` additive_model records of the class that used the fallback (null: none yet). */
  cold_start_share: number | null;
  cold_start: { records: number; fallback_records: number; window: number };
}

const LEARNED_METHOD = 'additive_model';

function modelStatus(e: ModelListEntry, metrics: CollectorMetrics, training: TrainingService | undefined): ModelStatus {
  const cs = metrics.recentColdStart(LEARNED_METHOD, e.hardware_class);
  return {
    ...e,
    drift_ratio: training?.driftAtLastCheck(e.hardware_class) ?? null,
    cold_start_share: cs.records > 0 ? cs.coldStart / cs.records : null,
    cold_start: { records: cs.records, fallback_records: cs.coldStart, window: RECENT_RECORDS },
  };
}

async function modelStatuses(store: Store, metrics: CollectorMetrics, training: TrainingService | undefined): Promise<ModelStatus[]> {
  return (await listModels(store)).map((e) => modelStatus(e, metrics, training));
}

/** Models are fleet metadata (no tenant's data): scope admin or metrics, like /metrics. */
@Controller('api/models')
export class ModelsController {
  constructor(
    @Inject(STORE) private readonly store: Store,
    private readonly metrics: CollectorMetrics,
    @Optional() private readonly training?: TrainingService,
  ) {}

  @Get()
  @Access('metrics')
  async list(@Query() query: unknown): Promise<Record<string, unknown>> {
    try {
      readQuery(query, []);
      return {
        now: new Date().toISOString(),
        training: this.training ? (this.training.enabled ? 'on' : 'apply-only') : 'off',
        models: await modelStatuses(this.store, this.metrics, this.training),
        cold_start_records_total: this.metrics.value('wattsplit_collector_cold_start_records_total', { method: LEARNED_METHOD }),
        intervals_total: this.metrics.value('wattsplit_collector_intervals_total', { method: LEARNED_METHOD }),
      };
    } catch (e) {
      throw toHttp(e);
    }
  }

  @Get(':hardwareClass')
  @Access('metrics')
  async show(@Param('hardwareClass') hardwareClass: string, @Query() query: unknown): Promise<ModelDetail & { drift_ratio: number | null }> {
    try {
      const q = readQuery(query, ['version']);
      let version: number | undefined;
      if (q.version !== undefined) {
        version = Number(q.version);
        if (!/^\d{1,9}$/.test(q.version) || version < 1) throw badParameter('version', q.version, 'must be a version number ≥ 1');
      }
      const d = await describeModel(this.store, hardwareClass, version === undefined ? {} : { version });
      return { ...d, drift_ratio: this.training?.driftAtLastCheck(hardwareClass) ?? null };
    } catch (e) {
      // An unknown class or version is a missing resource, named with what exists.
      if (isWattsplitError(e, 'CONFIG_INVALID')) throw new NotFoundException({ statusCode: 404, code: 'NOT_FOUND', message: e.message });
      throw toHttp(e);
    }
  }
}

@Controller()
export class DashboardController {
  constructor(
    @Inject(STORE) private readonly store: Store,
    @Inject(METHODS) private readonly methods: AttributionMethod[],
    private readonly metrics: CollectorMetrics,
    @Optional() private readonly training?: TrainingService,
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
      // Models are fleet metadata: shown to admin only, not on a tenant's page.
      const models = scope.kind === 'tenant' ? undefined : await modelStatuses(this.store, this.metrics, this.training);
      return renderDashboard(totals, { method: q.method, fromUnixNs: q.fromUnixNs, toUnixNs: q.toUnixNs, ...(scope.kind === 'tenant' ? { tenant: scope.tenant } : {}), ...(models ? { models } : {}) });
    } catch (e) {
      throw toHttp(e);
    }
  }
}

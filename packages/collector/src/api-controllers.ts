/** REST API over platform-express: health, Prometheus metrics, per-VM energy, per-tenant bills, dashboard. */
import { BadRequestException, Controller, Get, Header, HttpException, HttpStatus, Inject, Param, Query } from '@nestjs/common';
import type { Store, TenantTotal } from '@wattsplit/store';
import { isWattsplitError } from '@wattsplit/wire';
import { CollectorMetrics } from './collector-metrics.js';
import { TelemetryPipeline } from './telemetry-pipeline.js';
import { parseRange } from './time-range.js';
import { STORE } from './tokens.js';
import { renderDashboard } from './dashboard.js';

/** WattsplitError → HTTP: bad input 400, store down 503, the rest 500; the body names the code. */
export function toHttp(e: unknown): HttpException {
  if (isWattsplitError(e)) {
    const status =
      e.code === 'STORE_INVALID_INPUT' || e.code === 'CONFIG_INVALID' ? HttpStatus.BAD_REQUEST : e.code === 'STORE_UNAVAILABLE' ? HttpStatus.SERVICE_UNAVAILABLE : HttpStatus.INTERNAL_SERVER_ERROR;
    return new HttpException({ statusCode: status, code: e.code, message: e.message }, status);
  }
  return new HttpException({ statusCode: 500, code: 'INTERNAL', message: e instanceof Error ? e.message : String(e) }, 500);
}

const METHOD_NAME = /^[a-z0-9_.:-]{1,64}$/;
function methodParam(method: string | undefined): string {
  const m = method ?? 'cpu_share';
  if (!METHOD_NAME.test(m)) throw new BadRequestException({ statusCode: 400, code: 'STORE_INVALID_INPUT', message: `query parameter method=${JSON.stringify(m)} must match ${METHOD_NAME.source}` });
  return m;
}

@Controller()
export class HealthController {
  constructor(private readonly pipeline: TelemetryPipeline) {}

  @Get('healthz')
  health(): Record<string, unknown> {
    return { status: 'ok', store: this.pipeline.store.backend, methods: this.pipeline.methods.map((m) => m.name), ...this.pipeline.stats, lagSeconds: this.pipeline.metrics.lagSeconds() };
  }
}

@Controller()
export class MetricsController {
  constructor(private readonly metrics: CollectorMetrics) {}

  @Get('metrics')
  @Header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8')
  metricsText(): string {
    return this.metrics.render();
  }
}

@Controller('api/v1')
export class EnergyController {
  constructor(@Inject(STORE) private readonly store: Store) {}

  @Get('vms/:uuid/energy')
  async vmEnergy(@Param('uuid') uuid: string, @Query('from') from?: string, @Query('to') to?: string, @Query('method') method?: string): Promise<Record<string, unknown>> {
    try {
      const range = parseRange(from, to);
      const m = methodParam(method);
      const rows = await this.store.vmEnergy(uuid, { ...range, method: m });
      const totalJoules = rows.reduce((a, r) => a + r.dynamicJoules + r.staticJoules, 0);
      return { vmUuid: uuid, method: m, from: new Date(range.fromUnixNs / 1e6).toISOString(), to: new Date(range.toUnixNs / 1e6).toISOString(), totalJoules, totalKWh: totalJoules / 3.6e6, hours: rows };
    } catch (e) {
      if (e instanceof HttpException) throw e;
      throw toHttp(e);
    }
  }

  @Get('tenants/:tenant/bill')
  async tenantBill(@Param('tenant') tenant: string, @Query('from') from?: string, @Query('to') to?: string, @Query('method') method?: string): Promise<Record<string, unknown>> {
    try {
      const range = parseRange(from, to);
      const m = methodParam(method);
      const lines = await this.store.tenantBill(tenant, { ...range, method: m });
      const dynamicJoules = lines.reduce((a, l) => a + l.dynamicJoules, 0);
      const staticJoules = lines.reduce((a, l) => a + l.staticJoules, 0);
      return {
        tenant,
        method: m,
        from: new Date(range.fromUnixNs / 1e6).toISOString(),
        to: new Date(range.toUnixNs / 1e6).toISOString(),
        dynamicJoules,
        staticJoules,
        totalJoules: dynamicJoules + staticJoules,
        totalKWh: (dynamicJoules + staticJoules) / 3.6e6,
        lines,
      };
    } catch (e) {
      if (e instanceof HttpException) throw e;
      throw toHttp(e);
    }
  }
}

@Controller()
export class DashboardController {
  constructor(@Inject(STORE) private readonly store: Store) {}

  @Get()
  @Header('Content-Type', 'text/html; charset=utf-8')
  async dashboard(@Query('from') from?: string, @Query('to') to?: string, @Query('method') method?: string): Promise<string> {
    try {
      const range = parseRange(from, to);
      const m = methodParam(method);
      const totals: TenantTotal[] = await this.store.tenantTotals({ ...range, method: m });
      return renderDashboard(totals, { method: m, fromUnixNs: range.fromUnixNs, toUnixNs: range.toUnixNs });
    } catch (e) {
      if (e instanceof HttpException) throw e;
      throw toHttp(e);
    }
  }
}

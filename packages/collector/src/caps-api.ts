/**
 * GET /api/v1/caps: the live power-cap watch's latest statuses (cap-watch.ts), for the dashboard's cap
 * panel and for scripts. One entry per cap (a host's own, a rack, a PDU, any named group): power now, the
 * cap, the forecast bound's peak and the first second it crosses the cap (with that time as ISO 8601),
 * and the advisor's plan against the bound (safe or not, its peak, SLA cost, the actions touching the cap).
 *
 * Served from memory, not the store: the watch runs in the collector process (`wattsplit collector
 * --caps`), where the pipeline supplies it; `wattsplit demo --caps --serve` hands its watch to the API
 * server (CAP_STATUSES). Without a watch the answer is `configured: false` with how to start one.
 * Scope admin, like the fleet views: the actions name hosts and VMs.
 */
import { Controller, Get, Inject, Optional, Query } from '@nestjs/common';
import { Access } from './api-guard.js';
import { toHttp } from './api-controllers.js';
import { readQuery } from './api-query.js';
import type { CapWatchStatus } from './cap-watch.js';
import { TelemetryPipeline } from './telemetry-pipeline.js';

/** Something that holds the latest cap statuses (a CapWatch). */
export interface CapStatusSource {
  statuses(): readonly CapWatchStatus[];
}

/** Injection token: the cap watch of an API server that has no pipeline of its own (demo --serve). */
export const CAP_STATUSES = Symbol.for('wattsplit.collector.cap-statuses');

const iso = (ns: number): string => new Date(ns / 1e6).toISOString();

/** One status as the API spells it (snake_case like the other views; times as ISO 8601 too). */
export function capStatusJson(s: CapWatchStatus): Record<string, unknown> {
  return {
    cap: s.scopeId,
    kind: s.scopeKind,
    hosts: s.hostIds,
    as_of: iso(s.tUnixNs),
    cap_w: s.capW,
    power_w: s.powerW,
    predicted_peak_w: s.predictedPeakW,
    predicted_cross_s: s.predictedCrossS,
    predicted_cross_at: s.predictedCrossS >= 0 ? iso(s.tUnixNs + s.predictedCrossS * 1e9) : null,
    horizon_s: s.horizonS,
    plan: {
      safe: s.planSafe,
      peak_w: s.planPeakW,
      sla_cost_vm_s: s.planSlaCost,
      actions: s.actions.map((a) => ({
        kind: a.kind,
        vm: a.vmUuid,
        host: a.hostId,
        ...(a.kind === 'migrate' ? { to_host: a.toHostId, mode: a.mode, bandwidth_fraction: a.fraction } : { method: a.mode, shed_w: a.shedW, fraction: a.fraction }),
        start_s: a.startS,
        until_s: a.kind === 'throttle' && a.untilS < 0 ? null : a.untilS,
        reason: a.reason,
      })),
    },
    method: s.method,
    margin_w: s.marginW,
  };
}

@Controller('api/v1')
export class CapsController {
  constructor(
    @Optional() private readonly pipeline?: TelemetryPipeline,
    @Optional() @Inject(CAP_STATUSES) private readonly source?: CapStatusSource,
  ) {}

  @Get('caps')
  @Access('admin')
  caps(@Query() query: unknown): Record<string, unknown> {
    try {
      readQuery(query, []);
      const watch = this.pipeline?.capWatch ?? this.source;
      if (!watch) return { configured: false, message: 'no power-cap watch here: start the collector (or the demo) with --caps FILE (docs/capping.md, "Live watch")', caps: [] };
      const statuses = watch.statuses();
      return {
        configured: true,
        evaluated: statuses.length > 0,
        ...(statuses.length === 0 ? { message: 'the cap watch has not evaluated yet (it needs attributed intervals)' } : {}),
        caps: statuses.map(capStatusJson),
      };
    } catch (e) {
      throw toHttp(e);
    }
  }
}

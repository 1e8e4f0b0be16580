/**
 * The gateway's operator endpoint, on its own HTTP port (never the gRPC one): `GET /metrics` (Prometheus
 * text exposition 0.0.4: the gateway's families, then `process_*`, `nodejs_*` and
 * `wattsplit_build_info{role="gateway"}`) and `GET /healthz` (200 `SERVING` while the producer is ready,
 * else 503 `NOT_SERVING`, the same answer as grpc.health.v1.Health/Check). Anything else is 404.
 */
import { serveMetricsHttp, type Logger, type MetricsHttp } from '@wattsplit/wire';
import type { Gateway } from './gateway-server.js';

export interface GatewayHttpOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 = chosen by the OS (default). */
  port?: number;
  /** Added to every sample, e.g. `{ gateway: 'gw-1' }`. */
  labels?: Record<string, string>;
  logger?: Logger;
}

export type GatewayHttp = MetricsHttp;

export async function serveGatewayHttp(gw: Pick<Gateway, 'metricsText' | 'health'>, opts: GatewayHttpOptions = {}): Promise<GatewayHttp> {
  return serveMetricsHttp({
    role: 'gateway',
    metricsText: () => gw.metricsText(opts.labels),
    health: () => {
      const h = gw.health();
      return { ok: h === 'SERVING', text: h };
    },
    ...(opts.host !== undefined ? { host: opts.host } : {}),
    ...(opts.port !== undefined ? { port: opts.port } : {}),
    ...(opts.logger ? { logger: opts.logger } : {}),
  });
}

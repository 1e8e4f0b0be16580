/**
 * A process's operator endpoint on its own HTTP port (never a data port): `GET /metrics` (Prometheus text
 * exposition 0.0.4: the process's own families, then `process_*`, `nodejs_*` and `wattsplit_build_info`)
 * and `GET /healthz` (200 with the health word when healthy, else 503). HEAD is answered like GET,
 * another method is 405, another path 404. Loopback by default; the caller decides whether a network
 * address is allowed.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WattsplitError } from './errors.js';
import { silentLogger, type Logger } from './logger.js';
import { processMetricsText, type ProcessMetricsOptions } from './process-metrics.js';

export interface MetricsHttpOptions {
  /** The `role` label of wattsplit_build_info, and the name in log lines and errors (agent, gateway). */
  role: string;
  /** The process's own families, text format 0.0.4. */
  metricsText(): string;
  /** `/healthz`: ok → 200, else 503; the body is `text`. Without it `/healthz` always answers 200 `SERVING`. */
  health?: () => { ok: boolean; text: string };
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 = chosen by the OS (default). */
  port?: number;
  logger?: Logger;
  processMetrics?: ProcessMetricsOptions;
}

export interface MetricsHttp {
  readonly port: number;
  readonly address: string;
  close(): Promise<void>;
}

export async function serveMetricsHttp(opts: MetricsHttpOptions): Promise<MetricsHttp> {
  const log = opts.logger ?? silentLogger;
  const host = opts.host ?? '127.0.0.1';
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      let own: string;
      try {
        own = opts.metricsText();
      } catch (e) {
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`metrics unavailable: ${(e as Error).message}\n`);
        return;
      }
      processMetricsText(opts.role, opts.processMetrics).then(
        (common) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(own + common),
        (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`process metrics unavailable: ${(e as Error).message}\n`),
      );
    } else if (path === '/healthz') {
      const h = opts.health?.() ?? { ok: true, text: 'SERVING' };
      res.writeHead(h.ok ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8' }).end(`${h.text}\n`);
    } else res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: try /metrics or /healthz\n');
  });
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  server.maxConnections = 64;
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', (e) =>
      reject(new WattsplitError('TRANSPORT_UNAVAILABLE', `${opts.role} metrics: cannot listen on ${host}:${opts.port ?? 0}: ${e.message}`, { cause: e, details: { host, port: opts.port ?? 0 } })),
    );
    server.listen({ host, port: opts.port ?? 0 }, () => resolve((server.address() as AddressInfo).port));
  });
  log.info({ host, metricsPort: port }, `${opts.role} metrics on http://${host.includes(':') ? `[${host}]` : host}:${port}/metrics`);
  return {
    port,
    address: `${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

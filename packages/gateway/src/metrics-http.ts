/**
 * The gateway's operator endpoint, on its own HTTP port (never the gRPC one): `GET /metrics` (Prometheus
 * text exposition 0.0.4) and `GET /healthz` (200 `SERVING` while the producer is ready, else 503
 * `NOT_SERVING`, the same answer as grpc.health.v1.Health/Check). Anything else is 404.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WattsplitError, silentLogger, type Logger } from '@wattsplit/wire';
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

export interface GatewayHttp {
  readonly port: number;
  readonly address: string;
  close(): Promise<void>;
}

export async function serveGatewayHttp(gw: Pick<Gateway, 'metricsText' | 'health'>, opts: GatewayHttpOptions = {}): Promise<GatewayHttp> {
  const log = opts.logger ?? silentLogger;
  const host = opts.host ?? '127.0.0.1';
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(gw.metricsText(opts.labels));
    } else if (path === '/healthz') {
      const h = gw.health();
      res.writeHead(h === 'SERVING' ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8' }).end(`${h}\n`);
    } else res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: try /metrics or /healthz\n');
  });
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  server.maxConnections = 64;
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', (e) => reject(new WattsplitError('TRANSPORT_UNAVAILABLE', `gateway metrics: cannot listen on ${host}:${opts.port ?? 0}: ${e.message}`, { cause: e, details: { host, port: opts.port ?? 0 } })));
    server.listen({ host, port: opts.port ?? 0 }, () => resolve((server.address() as AddressInfo).port));
  });
  log.info({ host, metricsPort: port }, `gateway metrics on http://${host.includes(':') ? `[${host}]` : host}:${port}/metrics`);
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

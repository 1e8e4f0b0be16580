/**
 * The gRPC ingest server: a real @grpc/grpc-js server implementing wattsplit.telemetry.v1.TelemetryIngest
 * (bidi stream: FrameBatch in, one BatchAck out per batch, in order) over an IngestPipeline.
 *
 * Back-pressure, so gateway memory stays bounded whatever agents send:
 * - one message is at most `maxBatchBytes` (grpc `max_receive_message_length`; bigger → RESOURCE_EXHAUSTED);
 * - per stream, batches received and not yet acked are bounded by `maxInFlightBatchesPerStream` and
 *   `maxInFlightBytesPerStream`: above either bound the gateway stops reading that stream
 *   (`call.pause()`: HTTP/2 flow control then stops the agent) until acks bring it under again;
 * - across all streams, above `maxInFlightBatches` / `maxInFlightBytes` a new batch is not kept: it is
 *   answered RETRY with `retry_after_ms = overloadRetryAfterMs` (the agent keeps it in its spool).
 * Batches of one stream are processed one after the other, so one host's frames reach the bus in order.
 *
 * Connections, before grpc-js sees them: the gateway owns the listening socket (a `net.Server`, or a
 * `tls.Server` that does the TLS handshake itself) and hands each connection to grpc-js through
 * `createConnectionInjector`, so that what an unauthenticated peer can hold is bounded:
 * - at most `maxConnections` open connections (more are refused at accept), at most
 *   `maxStreamsPerConnection` concurrent streams each (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS);
 * - TLS: the handshake must finish within `tlsHandshakeTimeoutMs` (checked by the sweep); TLS 1.2 minimum with ECDHE + AEAD
 *   (AES-GCM, ChaCha20-Poly1305) cipher suites only, TLS 1.3 preferred;
 * - a connection is unauthenticated until one of its streams presents a good token in its metadata
 *   (or a verified client certificate, or the auth mode is none), or sends a batch whose token is good;
 *   until then it may read at most `maxPreAuthBytes` (TLS records included) and must authenticate
 *   within `authTimeoutMs`, else it is closed;
 * - a connection that reads nothing for `idleTimeoutMs` is closed (agents reconnect on their next send).
 * These are checked every `SWEEP_MS` against the socket's own byte counter, and counted by reason; the
 * pre-auth byte bound is also checked on every DATA chunk of an unauthenticated stream, so a fast peer
 * cannot get megabytes in between two sweeps.
 */
import { readFile as fsReadFile } from 'node:fs/promises';
import * as net from 'node:net';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { AckStatus, RepeatGate, WattsplitError, silentLogger, type IBatchAck, type Logger } from '@wattsplit/wire';
import { IngestPipeline, type IngestPipelineOptions } from './ingest-pipeline.js';
import { gatewayMetricsText, newGatewayMetrics, snapshotMetrics, type GatewayMetrics } from './metrics.js';
import { SAFE_TELEMETRY_INGEST_SERVICE, type IncomingItem } from './safe-ingest-service.js';
import { HEALTH_SERVICE, ServingStatus, healthCheckResponse, type HealthCheckRequest } from './health-service.js';

/**
 * TLS 1.2 suites the gateway accepts: forward-secret key exchange (ECDHE) with an AEAD cipher only.
 * TLS 1.3 suites (all AEAD and forward-secret) are always enabled by Node and preferred.
 */
export const GATEWAY_TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
] as const;
const TLS13_CIPHERS = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'];

/** How often connection limits (pre-auth bytes, auth and idle timeouts) are checked. */
export const SWEEP_MS = 100;

/**
 * The HTTP/2 stream under a grpc-js server call, or undefined where grpc-js's internals differ from
 * 1.14's (`call.call` is the intercepting call, each interceptor's `nextCall` leads to the base call,
 * whose `stream` is the `ServerHttp2Stream`). Used only to check the pre-auth byte bound on every
 * DATA chunk of an unauthenticated stream instead of only every SWEEP_MS: a peer on a fast link can
 * send megabytes between two sweeps (libuv reads up to 32 × 64 KiB per connection per loop turn).
 */
export function http2StreamOf(call: unknown): NodeJS.EventEmitter | undefined {
  let c = (call as { call?: unknown } | undefined)?.call as { stream?: unknown; nextCall?: unknown } | undefined;
  for (let depth = 0; c && depth < 16; depth++) {
    const s = c.stream as { on?: unknown; session?: unknown } | undefined;
    if (s && typeof s.on === 'function' && typeof s.session === 'object') return s as NodeJS.EventEmitter;
    c = c.nextCall as typeof c;
  }
  return undefined;
}

export interface GatewayTlsOptions {
  /** PEM server certificate chain. */
  certFile: string;
  /** PEM private key of the server certificate. */
  keyFile: string;
  /** PEM CA bundle that client certificates must chain to (mTLS). */
  caFile?: string;
  /** Refuse clients without a certificate signed by `caFile`. Default true when caFile is set. */
  requireClientCert?: boolean;
}

export interface GatewayOptions extends Omit<IngestPipelineOptions, 'metrics'> {
  /** Interface to bind. Default 127.0.0.1. */
  host?: string;
  /** Port to bind; 0 = chosen by the OS (default). */
  port?: number;
  /** Plaintext when absent. */
  tls?: GatewayTlsOptions;
  /** Largest accepted FrameBatch, bytes. Default 8 MiB. */
  maxBatchBytes?: number;
  /** Default 4 batches. */
  maxInFlightBatchesPerStream?: number;
  /** Default 16 MiB. */
  maxInFlightBytesPerStream?: number;
  /** Default 1024 batches. */
  maxInFlightBatches?: number;
  /** Default 256 MiB. */
  maxInFlightBytes?: number;
  /** retry_after_ms of batches refused because the global bound was exceeded. Default 500. */
  overloadRetryAfterMs?: number;
  /** Reads the TLS files; injectable for tests. Default node:fs/promises readFile. */
  readFile?: (path: string) => Promise<Buffer>;
  /** Extra grpc-js server options (keepalive, ...). */
  grpcOptions?: grpc.ServerOptions;
  /** Open connections at most; more are refused at accept. Default 4096. */
  maxConnections?: number;
  /** Concurrent HTTP/2 streams per connection (clients of one process share a connection). Default 100. */
  maxStreamsPerConnection?: number;
  /** Bytes a connection may read before it authenticated (TLS records included). Default 64 KiB. */
  maxPreAuthBytes?: number;
  /** A connection must authenticate within this long after it was accepted. Default 10 000 ms. */
  authTimeoutMs?: number;
  /** A connection that reads nothing for this long is closed. Default 300 000 ms. */
  idleTimeoutMs?: number;
  /** The TLS handshake must finish within this long. Default 5 000 ms. */
  tlsHandshakeTimeoutMs?: number;
  /**
   * Checks that the bus producer can reach its broker (e.g. a metadata request). Run at start and every
   * `readinessIntervalMs`; until one succeeds the gRPC health service answers NOT_SERVING. Without it the
   * producer counts as ready until a produce fails transiently. Produce outcomes update readiness too.
   */
  readinessProbe?: () => Promise<void>;
  /** Default 5 000 ms. */
  readinessIntervalMs?: number;
}

export interface Gateway {
  readonly port: number;
  /** host:port the server listens on. */
  readonly address: string;
  /** A snapshot of the counters. */
  stats(): GatewayMetrics;
  /** Prometheus text exposition of the counters. */
  metricsText(labels?: Record<string, string>): string;
  /** What grpc.health.v1.Health/Check answers: SERVING while the producer is ready and the gateway not closing. */
  health(): 'SERVING' | 'NOT_SERVING';
  /**
   * Stops accepting streams, lets batches already being produced finish and be acked (at most
   * `graceMs`, default 2000), then closes every stream. Does not close the producer (the app owns it).
   */
  close(graceMs?: number): Promise<void>;
}

interface StreamState {
  queue: Queued[];
  bytes: number;
  busy: boolean;
  paused: boolean;
  ended: boolean;
  gone: boolean;
  idle: Promise<void>;
  markIdle: () => void;
  /** Drops batches not yet being processed (at shutdown); their agents resend them. */
  dropQueued: () => void;
}

type Queued = { item: IncomingItem; overloaded: false } | { batchId: number; bytes: number; overloaded: true; why: string };

function positiveInt(field: string, v: number): number {
  if (!Number.isFinite(v) || v <= 0) throw new WattsplitError('CONFIG_INVALID', `gateway: ${field}=${JSON.stringify(v)} must be a positive number`, { details: { field, value: v } });
  return v;
}

async function readPem(read: (p: string) => Promise<Buffer>, field: string, path: string): Promise<Buffer> {
  try {
    const b = await read(path);
    if (!b.toString('latin1').includes('-----BEGIN')) throw new Error('no PEM block (-----BEGIN ...) in the file');
    return b;
  } catch (e) {
    throw new WattsplitError('CONFIG_INVALID', `gateway tls.${field}=${JSON.stringify(path)}: ${(e as Error).message}`, { cause: e, details: { field: `tls.${field}`, value: path } });
  }
}

interface TlsMaterial {
  key: Buffer;
  cert: Buffer;
  ca: Buffer | undefined;
  requestCert: boolean;
}

async function tlsMaterial(tlsOpts: GatewayTlsOptions, read: (p: string) => Promise<Buffer>): Promise<TlsMaterial> {
  const cert = await readPem(read, 'certFile', tlsOpts.certFile);
  const key = await readPem(read, 'keyFile', tlsOpts.keyFile);
  const ca = tlsOpts.caFile === undefined ? undefined : await readPem(read, 'caFile', tlsOpts.caFile);
  const requestCert = tlsOpts.requireClientCert ?? ca !== undefined;
  if (requestCert && !ca) throw new WattsplitError('CONFIG_INVALID', 'gateway tls.requireClientCert=true needs tls.caFile to check client certificates against', { details: { field: 'tls.caFile' } });
  try {
    tls.createSecureContext({ key, cert, ...(ca ? { ca } : {}) });
  } catch (e) {
    throw new WattsplitError('CONFIG_INVALID', `gateway tls: the key ${JSON.stringify(tlsOpts.keyFile)} and certificate ${JSON.stringify(tlsOpts.certFile)} cannot be used: ${(e as Error).message}`, { cause: e, details: { field: 'tls' } });
  }
  return { key, cert, ca, requestCert };
}

interface Conn {
  readonly socket: net.Socket;
  readonly openedAt: number;
  authenticated: boolean;
  /** TLS handshake done (always true in plaintext). */
  secured: boolean;
  lastBytesRead: number;
  lastReadAt: number;
}

/** grpc-js's `call.getPeer()` of a connection: `${remoteAddress}:${remotePort}`. */
const peerKey = (s: net.Socket): string => `${s.remoteAddress ?? ''}:${s.remotePort ?? ''}`;

export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const log: Logger = opts.logger ?? silentLogger;
  const metrics = newGatewayMetrics();
  const pipeline = new IngestPipeline({ ...opts, metrics, logger: log });
  const maxBatchBytes = positiveInt('maxBatchBytes', opts.maxBatchBytes ?? 8 * 1024 * 1024);
  const perStreamBatches = positiveInt('maxInFlightBatchesPerStream', opts.maxInFlightBatchesPerStream ?? 4);
  const perStreamBytes = positiveInt('maxInFlightBytesPerStream', opts.maxInFlightBytesPerStream ?? 16 * 1024 * 1024);
  const globalBatches = positiveInt('maxInFlightBatches', opts.maxInFlightBatches ?? 1024);
  const globalBytes = positiveInt('maxInFlightBytes', opts.maxInFlightBytes ?? 256 * 1024 * 1024);
  const overloadRetryAfterMs = positiveInt('overloadRetryAfterMs', opts.overloadRetryAfterMs ?? 500);
  const maxConnections = positiveInt('maxConnections', opts.maxConnections ?? 4096);
  const maxStreams = positiveInt('maxStreamsPerConnection', opts.maxStreamsPerConnection ?? 100);
  const maxPreAuthBytes = positiveInt('maxPreAuthBytes', opts.maxPreAuthBytes ?? 64 * 1024);
  const authTimeoutMs = positiveInt('authTimeoutMs', opts.authTimeoutMs ?? 10_000);
  const idleTimeoutMs = positiveInt('idleTimeoutMs', opts.idleTimeoutMs ?? 300_000);
  const handshakeTimeoutMs = positiveInt('tlsHandshakeTimeoutMs', opts.tlsHandshakeTimeoutMs ?? 5_000);
  const readinessIntervalMs = positiveInt('readinessIntervalMs', opts.readinessIntervalMs ?? 5_000);
  if (opts.auth?.mode === 'client-cert' && !opts.tls?.caFile) {
    throw new WattsplitError('CONFIG_INVALID', 'gateway auth.mode="client-cert" needs tls.caFile (mTLS) to verify client certificates', { details: { field: 'auth.mode', value: 'client-cert' } });
  }
  const material = opts.tls ? await tlsMaterial(opts.tls, opts.readFile ?? ((p) => fsReadFile(p))) : undefined;
  const authMode = opts.auth?.mode ?? 'none';

  const server = new grpc.Server({ 'grpc.max_receive_message_length': maxBatchBytes, 'grpc.max_concurrent_streams': maxStreams, ...opts.grpcOptions });
  const streams = new Set<StreamState>();
  const calls = new Set<grpc.ServerDuplexStream<IncomingItem, IBatchAck>>();
  let closing = false;

  const ingest = (call: grpc.ServerDuplexStream<IncomingItem, IBatchAck>): void => {
    if (closing) {
      call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'gateway is shutting down' });
      return;
    }
    const auth = call.metadata.get('authorization')[0];
    const authorization = typeof auth === 'string' ? auth : auth?.toString('utf8');
    const peer = call.getPeer();
    const cn = call.getAuthContext().sslPeerCertificate?.subject?.CN;
    const certHost = typeof cn === 'string' && cn ? cn : undefined;
    const conn = conns.get(peer);
    // A connection is trusted once a stream shows good credentials before sending anything.
    if (conn && !conn.authenticated && (authMode === 'none' || pipeline.authenticates(authorization, undefined, certHost))) conn.authenticated = true;
    if (conn && !conn.authenticated) watchPreAuthBytes(call, conn);
    metrics.streams++;
    calls.add(call);
    const release = (q: Queued): void => {
      if (q.overloaded) return; // its bytes were never counted as in flight
      st.bytes -= q.item.bytes;
      metrics.inFlightBatches--;
      metrics.inFlightBytes -= q.item.bytes;
    };
    const st: StreamState = {
      queue: [],
      bytes: 0,
      busy: false,
      paused: false,
      ended: false,
      gone: false,
      idle: Promise.resolve(),
      markIdle: () => undefined,
      dropQueued: () => {
        for (const q of st.queue.splice(st.busy ? 1 : 0)) release(q);
      },
    };
    streams.add(st);

    const finish = (): void => {
      if (st.gone) return;
      st.gone = true;
      for (const q of st.queue.splice(0)) release(q);
      streams.delete(st);
      calls.delete(call);
      metrics.streams--;
      st.markIdle();
    };

    const drain = async (): Promise<void> => {
      st.busy = true;
      st.idle = new Promise<void>((r) => (st.markIdle = r));
      try {
        while (st.queue.length && !st.gone) {
          const q = st.queue[0]!;
          let ack: IBatchAck;
          try {
            if (q.overloaded) ack = pipeline.overloaded(q.batchId, q.bytes, overloadRetryAfterMs, q.why);
            else if (q.item.kind === 'undecodable') ack = pipeline.undecodable(q.item.error, q.item.bytes, peer);
            else ack = await pipeline.process({ batch: q.item.batch, bytes: q.item.bytes, frameBytes: q.item.frameBytes, authorization, peer, certHost });
          } catch (e) {
            // The pipeline does not throw by contract; if it does, the batch is retried, never lost.
            log.error({ code: 'INTERNAL', peer, err: (e as Error).message }, `ingest pipeline threw: ${(e as Error).message}`);
            ack = { batchId: !q.overloaded && q.item.kind === 'batch' ? q.item.batch.batchId : 0, status: AckStatus.ACK_STATUS_RETRY, retryAfterMs: overloadRetryAfterMs, message: `INTERNAL: ${(e as Error).message}` };
          }
          if (st.gone) break;
          st.queue.shift();
          release(q);
          call.write(ack);
          if (st.paused && st.queue.length < perStreamBatches && st.bytes <= perStreamBytes) {
            st.paused = false;
            call.resume();
          }
        }
        if (st.ended && !st.gone) {
          call.end();
          finish();
        }
      } finally {
        st.busy = false;
        st.markIdle();
      }
    };

    call.on('data', (item: IncomingItem) => {
      if (st.gone) return;
      if (conn && !conn.authenticated && item.kind === 'batch' && pipeline.authenticates(authorization, item.batch.token, certHost)) conn.authenticated = true;
      if (item.kind === 'batch' && (metrics.inFlightBatches + 1 > globalBatches || metrics.inFlightBytes + item.bytes > globalBytes)) {
        // Over the global bound: keep only the batch id, answer RETRY in order.
        st.queue.push({ batchId: item.batch.batchId, bytes: item.bytes, overloaded: true, why: `gateway has ${metrics.inFlightBatches} batches / ${metrics.inFlightBytes} bytes in flight (bounds ${globalBatches} / ${globalBytes})` });
      } else {
        st.queue.push({ item, overloaded: false });
        st.bytes += item.bytes;
        metrics.inFlightBatches++;
        metrics.inFlightBytes += item.bytes;
      }
      if (!st.paused && (st.queue.length >= perStreamBatches || st.bytes > perStreamBytes)) {
        st.paused = true;
        metrics.streamPauses++;
        call.pause();
      }
      if (!st.busy) void drain();
    });
    call.on('end', () => {
      st.ended = true;
      if (!st.busy) void drain();
    });
    call.on('cancelled', finish);
    call.on('error', (e: Error) => {
      log.warn({ peer, err: e.message }, `ingest stream error: ${e.message}`);
      finish();
    });
    call.on('close', finish);
  };

  // Readiness of the producer, for grpc.health.v1 and /healthz.
  let ready = opts.readinessProbe === undefined;
  const setReady = (r: boolean): void => {
    if (r !== ready) log[r ? 'info' : 'warn']({ ready: r }, r ? 'bus producer ready' : 'bus producer not ready');
    ready = r;
    metrics.producerReady = r ? 1 : 0;
  };
  metrics.producerReady = ready ? 1 : 0;
  pipeline.onProduce = (r) => {
    if (r.kind === 'ok') setReady(true);
    else if (r.kind === 'retryable' || r.error.retriable || r.error.code === 'TRANSPORT_UNAVAILABLE' || r.error.code === 'TRANSPORT_TIMEOUT') setReady(false);
  };
  const probe = opts.readinessProbe;
  let probeTimer: NodeJS.Timeout | undefined;
  let probing = false;
  const runProbe = (): void => {
    if (!probe || probing || closing) return;
    probing = true;
    probe().then(
      () => setReady(true),
      (e: unknown) => {
        if (ready) log.warn({ err: (e as Error).message }, `bus readiness probe failed: ${(e as Error).message}`);
        setReady(false);
      },
    ).finally(() => (probing = false));
  };
  if (probe) {
    runProbe();
    probeTimer = setInterval(runProbe, readinessIntervalMs);
    probeTimer.unref();
  }
  const health = (): 'SERVING' | 'NOT_SERVING' => (ready && !closing ? 'SERVING' : 'NOT_SERVING');

  server.addService(SAFE_TELEMETRY_INGEST_SERVICE, { ingest });
  server.addService(HEALTH_SERVICE, {
    check: (call: grpc.ServerUnaryCall<HealthCheckRequest, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const service = call.request.service;
      if (service !== '' && service !== 'wattsplit.telemetry.v1.TelemetryIngest') {
        cb({ code: grpc.status.NOT_FOUND, details: `unknown service ${JSON.stringify(service)}` });
        return;
      }
      cb(null, healthCheckResponse(health() === 'SERVING' ? ServingStatus.SERVING : ServingStatus.NOT_SERVING));
    },
  });

  // Our own listener: connection limits and TLS live here; grpc-js gets the connections through an injector.
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const conns = new Map<string, Conn>();
  // Connections closed for not authenticating, a failed handshake or a timeout: one line per reason and peer
  // address (not port) per 30 s, the rest at debug, every one counted in metrics.connectionsClosed.
  const connRefusals = new RepeatGate(30_000);
  const closeConn = (c: Conn, reason: string, detail: string): void => {
    if (c.socket.destroyed) return;
    metrics.connectionsClosed[reason] = (metrics.connectionsClosed[reason] ?? 0) + 1;
    // the code says what went wrong: a peer that did not authenticate (in time, or before sending too much) or a timeout
    const code = reason === 'auth_timeout' || reason === 'pre_auth_bytes' ? 'FRAME_AUTH_FAILED' : 'TRANSPORT_TIMEOUT';
    connRefusals.write(log, 'warn', `${reason}\u0000${c.socket.remoteAddress ?? ''}`, { code, peer: peerKey(c.socket), reason, bytesRead: c.socket.bytesRead }, `connection ${peerKey(c.socket)} closed: ${detail}`);
    c.socket.destroy();
  };
  const closePreAuth = (c: Conn): void =>
    closeConn(c, 'pre_auth_bytes', `read ${c.socket.bytesRead} bytes before authenticating (maxPreAuthBytes ${maxPreAuthBytes}); send the token as "authorization: Bearer" metadata`);
  // Every DATA chunk of an unauthenticated Ingest stream checks the connection's bytes (TLS records
  // included), so for Ingest DATA the bound holds to a chunk whatever the link's speed; other methods and
  // frames are checked by the sweep only.
  let noStreamHook = false;
  const watchPreAuthBytes = (call: unknown, c: Conn): void => {
    const s = http2StreamOf(call);
    if (!s) {
      if (!noStreamHook) {
        noStreamHook = true;
        log.warn({ code: 'INTERNAL' }, `gateway: grpc-js's HTTP/2 stream is not reachable from a call (its internals changed): maxPreAuthBytes is checked every ${SWEEP_MS} ms only`);
      }
      return;
    }
    const onData = (): void => {
      if (c.authenticated) s.removeListener('data', onData);
      else if (c.socket.bytesRead > maxPreAuthBytes) {
        s.removeListener('data', onData);
        closePreAuth(c);
      }
    };
    s.on('data', onData);
  };
  const listener: net.Server = material
    ? tls.createServer({
        key: material.key,
        cert: material.cert,
        ...(material.ca ? { ca: material.ca } : {}),
        requestCert: material.requestCert,
        rejectUnauthorized: material.requestCert,
        minVersion: 'TLSv1.2',
        ciphers: [...TLS13_CIPHERS, ...GATEWAY_TLS12_CIPHERS].join(':'),
        honorCipherOrder: true,
        handshakeTimeout: handshakeTimeoutMs,
        ALPNProtocols: ['h2'],
      })
    : net.createServer();
  listener.maxConnections = maxConnections;
  listener.on('drop', (d?: { remoteAddress?: string; remotePort?: number }) => {
    metrics.connectionsClosed.max_connections = (metrics.connectionsClosed.max_connections ?? 0) + 1;
    log.warn({ code: 'TRANSPORT_BACKPRESSURE', peer: `${d?.remoteAddress ?? ''}:${d?.remotePort ?? ''}`, maxConnections }, `connection refused: ${maxConnections} connections open (maxConnections)`);
  });
  listener.on('connection', (socket: net.Socket) => {
    if (closing) {
      socket.destroy();
      return;
    }
    const now = Date.now();
    const key = peerKey(socket);
    const c: Conn = { socket, openedAt: now, authenticated: false, secured: !material, lastBytesRead: 0, lastReadAt: now };
    conns.set(key, c);
    metrics.connections++;
    metrics.connectionsAccepted++;
    socket.on('error', () => undefined); // the TLS or HTTP/2 layer above reports it
    socket.once('close', () => {
      if (conns.get(key) === c) conns.delete(key);
      metrics.connections--;
    });
    if (!material) injector.injectConnection(socket);
  });
  if (material) {
    const tlsListener = listener as tls.Server;
    tlsListener.on('secureConnection', (s: tls.TLSSocket) => {
      s.on('error', () => undefined);
      const c = conns.get(peerKey(s));
      if (c) c.secured = true;
      injector.injectConnection(s);
    });
    tlsListener.on('tlsClientError', (e: Error & { code?: string }, s: tls.TLSSocket) => {
      if (e.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return; // counted by the sweep, which closes it first
      const reason = 'tls_handshake_failed';
      metrics.connectionsClosed[reason] = (metrics.connectionsClosed[reason] ?? 0) + 1;
      connRefusals.write(log, 'warn', `${reason}\u0000${s.remoteAddress ?? ''}`, { code: 'FRAME_AUTH_FAILED', peer: peerKey(s), reason, err: e.message }, `TLS handshake with ${peerKey(s)} failed: ${e.message}`);
    });
  }
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const c of conns.values()) {
      const read = c.socket.bytesRead;
      if (read !== c.lastBytesRead) {
        c.lastBytesRead = read;
        c.lastReadAt = now;
      }
      if (!c.secured && now - c.openedAt > handshakeTimeoutMs) closeConn(c, 'handshake_timeout', `TLS handshake not finished within ${handshakeTimeoutMs} ms (tlsHandshakeTimeoutMs)`);
      else if (!c.authenticated && read > maxPreAuthBytes) closePreAuth(c);
      else if (!c.authenticated && now - c.openedAt > authTimeoutMs) closeConn(c, 'auth_timeout', `not authenticated within ${authTimeoutMs} ms (authTimeoutMs)`);
      else if (now - c.lastReadAt > idleTimeoutMs) closeConn(c, 'idle_timeout', `nothing read for ${idleTimeoutMs} ms (idleTimeoutMs)`);
    }
  }, SWEEP_MS);
  sweep.unref();

  const host = opts.host ?? '127.0.0.1';
  const port = await new Promise<number>((resolve, reject) => {
    const onError = (err: Error): void => {
      clearInterval(sweep);
      clearInterval(probeTimer);
      reject(new WattsplitError('TRANSPORT_UNAVAILABLE', `gateway: cannot listen on ${host}:${opts.port ?? 0}: ${err.message}`, { cause: err, details: { host, port: opts.port ?? 0 } }));
    };
    listener.once('error', onError);
    listener.listen({ host, port: opts.port ?? 0 }, () => {
      listener.off('error', onError);
      listener.on('error', (e: Error) => log.error({ err: e.message }, `gateway listener error: ${e.message}`));
      resolve((listener.address() as net.AddressInfo).port);
    });
  });
  log.info({ host, port, tls: Boolean(opts.tls), maxConnections, maxStreamsPerConnection: maxStreams, maxPreAuthBytes, authTimeoutMs, idleTimeoutMs }, `gateway listening on ${host}:${port}`);

  return {
    port,
    address: `${host}:${port}`,
    stats: () => snapshotMetrics(metrics),
    metricsText: (labels) => gatewayMetricsText(metrics, labels),
    health,
    close: async (graceMs = 2000) => {
      closing = true;
      clearInterval(probeTimer);
      listener.close();
      for (const st of streams) st.dropQueued();
      const deadline = Date.now() + graceMs;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all([...streams].map((s) => s.idle)),
        new Promise<void>((r) => (timer = setTimeout(r, graceMs))),
      ]);
      clearTimeout(timer);
      // End every stream with status OK (acks already written are flushed first), then let HTTP/2
      // sessions close gracefully; whatever is still open at the deadline is cut.
      for (const c of calls) c.end();
      await new Promise<void>((resolve) => {
        const cut = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, Math.max(0, deadline - Date.now()));
        server.tryShutdown(() => {
          clearTimeout(cut);
          resolve();
        });
      });
      clearInterval(sweep);
      for (const c of conns.values()) c.socket.destroy();
    },
  };
}

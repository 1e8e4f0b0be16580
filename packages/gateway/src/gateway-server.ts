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
 */
import { readFile as fsReadFile } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { AckStatus, WattsplitError, silentLogger, type IBatchAck, type Logger } from '@wattsplit/wire';
import { IngestPipeline, type IngestPipelineOptions } from './ingest-pipeline.js';
import { gatewayMetricsText, newGatewayMetrics, snapshotMetrics, type GatewayMetrics } from './metrics.js';
import { SAFE_TELEMETRY_INGEST_SERVICE, type IncomingItem } from './safe-ingest-service.js';

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
}

export interface Gateway {
  readonly port: number;
  /** host:port the server listens on. */
  readonly address: string;
  /** A snapshot of the counters. */
  stats(): GatewayMetrics;
  /** Prometheus text exposition of the counters. */
  metricsText(labels?: Record<string, string>): string;
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

async function credentials(tls: GatewayTlsOptions | undefined, read: (p: string) => Promise<Buffer>): Promise<grpc.ServerCredentials> {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  const cert = await readPem(read, 'certFile', tls.certFile);
  const key = await readPem(read, 'keyFile', tls.keyFile);
  const ca = tls.caFile === undefined ? null : await readPem(read, 'caFile', tls.caFile);
  const require = tls.requireClientCert ?? ca !== null;
  if (require && !ca) throw new WattsplitError('CONFIG_INVALID', 'gateway tls.requireClientCert=true needs tls.caFile to check client certificates against', { details: { field: 'tls.caFile' } });
  return grpc.ServerCredentials.createSsl(ca, [{ private_key: key, cert_chain: cert }], require);
}

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
  if (opts.auth?.mode === 'client-cert' && !opts.tls?.caFile) {
    throw new WattsplitError('CONFIG_INVALID', 'gateway auth.mode="client-cert" needs tls.caFile (mTLS) to verify client certificates', { details: { field: 'auth.mode', value: 'client-cert' } });
  }
  const creds = await credentials(opts.tls, opts.readFile ?? ((p) => fsReadFile(p)));

  const server = new grpc.Server({ 'grpc.max_receive_message_length': maxBatchBytes, ...opts.grpcOptions });
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

  server.addService(SAFE_TELEMETRY_INGEST_SERVICE, { ingest });
  const host = opts.host ?? '127.0.0.1';
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host.includes(':') ? `[${host}]` : host}:${opts.port ?? 0}`, creds, (err, p) => {
      if (err) reject(new WattsplitError('TRANSPORT_UNAVAILABLE', `gateway: cannot listen on ${host}:${opts.port ?? 0}: ${err.message}`, { cause: err, details: { host, port: opts.port ?? 0 } }));
      else resolve(p);
    });
  });
  log.info({ host, port, tls: Boolean(opts.tls) }, `gateway listening on ${host}:${port}`);

  return {
    port,
    address: `${host}:${port}`,
    stats: () => snapshotMetrics(metrics),
    metricsText: (labels) => gatewayMetricsText(metrics, labels),
    close: async (graceMs = 2000) => {
      closing = true;
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
    },
  };
}

/**
 * GrpcIngestClient: the transport from agent to gateway. One long-lived bidirectional `Ingest` stream
 * (wattsplit.telemetry.v1.TelemetryIngest); each FrameBatch is answered by one BatchAck, in order, once
 * the gateway made the batch durable. Returns a TransportResult, never throws: retry, spooling and
 * batching live in SpoolingSender around it.
 *
 * A batch is either a FrameBatch object or an EncodedFrameBatch (frames already encoded, as spooled: its bytes
 * are assembled around them, never decoded and re-encoded); the stream carries the batch's bytes as they are.
 *
 * Auth: the host token goes as gRPC metadata "authorization: Bearer <token>" and in FrameBatch.token.
 * TLS: server CA (or the system roots), optional client cert/key for mTLS; plaintext only when asked.
 */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import {
  AckStatus,
  ERROR_CODES,
  FrameBatch,
  OK,
  type ErrorCode,
  TELEMETRY_INGEST_SERVICE,
  WattsplitError,
  backoffMs,
  failed,
  retryable,
  type BatchAck,
  type IFrameBatch,
  type Logger,
  type TransportResult,
} from '@wattsplit/wire';
import { encodeFrameBatchBytes } from './frame-batch-bytes.js';

export interface IngestTlsOptions {
  /** PEM file of the CA that signed the gateway's certificate; system roots when omitted. */
  caFile?: string;
  /** PEM files of this agent's client certificate and key, for mTLS. */
  certFile?: string;
  keyFile?: string;
  /** Expected server name when it differs from the address host (test certificates). */
  serverName?: string;
}

export interface GrpcIngestClientOptions {
  /** "host:port" */
  address: string;
  /** false = plaintext (loopback, tests); otherwise TLS with these options. */
  tls: IngestTlsOptions | false;
  token?: string;
  /** Time to wait for one batch's ack. Default 30 s. */
  ackTimeoutMs?: number;
  /**
   * Base and cap of the exponential back-off (with jitter) after failures: default 200 ms and 10 s, the
   * channel's own reconnect cap. A gateway back from an outage is used again within 10 s; the jitter
   * spreads a fleet's reconnections over that time.
   */
  backoffBaseMs?: number;
  backoffCapMs?: number;
  logger: Logger;
}

/** A FrameBatch whose frames are TelemetryFrame encodings already (the spool's records). */
export interface EncodedFrameBatch {
  batchId: number;
  encodedFrames: readonly Uint8Array[];
}

/** What SpoolingSender needs from a transport. */
export interface FrameBatchTransport {
  send(batch: IFrameBatch | EncodedFrameBatch): Promise<TransportResult>;
  close(): Promise<void>;
}

type IngestStream = grpc.ClientDuplexStream<Buffer, BatchAck>;
type IngestClient = grpc.Client & { ingest(md: grpc.Metadata, opts?: grpc.CallOptions): IngestStream };

// The same method as TELEMETRY_INGEST_SERVICE's, but the stream is written the batch's bytes: send() encodes.
const INGEST_CLIENT_SERVICE = { ingest: { ...TELEMETRY_INGEST_SERVICE.ingest, requestSerialize: (b: Buffer): Buffer => b } };
const IngestClientCtor = grpc.makeGenericClientConstructor(INGEST_CLIENT_SERVICE, 'TelemetryIngest') as unknown as new (
  address: string,
  creds: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => IngestClient;

function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new WattsplitError('CONFIG_INVALID', `${what} file ${file} unreadable: ${(e as Error).message}`, { cause: e, details: { field: what, value: file } });
  }
}

export function ingestCredentials(tls: IngestTlsOptions | false): grpc.ChannelCredentials {
  if (tls === false) return grpc.credentials.createInsecure();
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    throw new WattsplitError('CONFIG_INVALID', `mTLS needs both certFile and keyFile (got certFile=${JSON.stringify(tls.certFile ?? null)}, keyFile=${JSON.stringify(tls.keyFile ?? null)})`, { details: { field: 'tls' } });
  }
  return grpc.credentials.createSsl(
    tls.caFile ? readPem(tls.caFile, 'tls.caFile') : null,
    tls.keyFile ? readPem(tls.keyFile, 'tls.keyFile') : null,
    tls.certFile ? readPem(tls.certFile, 'tls.certFile') : null,
  );
}

/** Rejections about who the host is, not about the frames: keep the frames, retry slowly. */
const KEEP_ON_REJECT = new Set<ErrorCode>(['FRAME_AUTH_FAILED', 'FRAME_UNKNOWN_HOST']);

interface Waiter {
  batchId: number;
  resolve: (r: TransportResult) => void;
  timer: NodeJS.Timeout;
}

export class GrpcIngestClient implements FrameBatchTransport {
  private readonly client: IngestClient;
  private stream: IngestStream | undefined;
  private readonly waiters: Waiter[] = [];
  private failures = 0;
  private readonly log: Logger;
  private closed = false;

  constructor(private readonly opts: GrpcIngestClientOptions) {
    this.log = opts.logger.child({ transport: 'grpc', gateway: opts.address });
    const channelOpts: grpc.ChannelOptions = {
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 10_000,
      // retries are SpoolingSender's (same bytes, same seqs); grpc-js' own retry layer only costs CPU per message
      'grpc.enable_retries': 0,
    };
    if (opts.tls && opts.tls.serverName) channelOpts['grpc.ssl_target_name_override'] = opts.tls.serverName;
    this.client = new IngestClientCtor(opts.address, ingestCredentials(opts.tls), channelOpts);
  }

  private openStream(): IngestStream {
    if (this.stream) return this.stream;
    const md = new grpc.Metadata();
    if (this.opts.token) md.set('authorization', `Bearer ${this.opts.token}`);
    const s = this.client.ingest(md);
    s.on('data', (ack: BatchAck) => this.onAck(ack));
    s.on('error', (e: grpc.ServiceError) => this.onStreamEnd(s, e));
    s.on('end', () => this.onStreamEnd(s, undefined));
    this.stream = s;
    return s;
  }

  private onAck(ack: BatchAck): void {
    const w = this.waiters.shift();
    if (!w) {
      this.log.warn({ batchId: ack.batchId }, 'ack for no batch in flight: ignored');
      return;
    }
    clearTimeout(w.timer);
    if (Number(ack.batchId) !== w.batchId) {
      this.log.warn({ expected: w.batchId, got: ack.batchId }, 'gateway acked batches out of order: resetting the stream');
      w.resolve(this.retry(new WattsplitError('TRANSPORT_UNAVAILABLE', `ack for batch ${String(ack.batchId)} while waiting for ${w.batchId}`, { retriable: true })));
      this.resetStream();
      return;
    }
    switch (ack.status) {
      case AckStatus.ACK_STATUS_OK:
        this.failures = 0;
        if (ack.rejected > 0) {
          this.log.warn({ batchId: w.batchId, rejected: ack.rejected, rejections: ack.rejections.map((r) => `${String(r.seq)}:${r.code}`) }, `gateway rejected ${ack.rejected} frames of batch ${w.batchId}: ${ack.rejections.map((r) => r.message).join('; ')}`);
        }
        w.resolve(OK);
        return;
      case AckStatus.ACK_STATUS_RETRY:
        this.failures++;
        w.resolve(retryable(new WattsplitError('TRANSPORT_BACKPRESSURE', `gateway asked to retry batch ${w.batchId}: ${ack.message}`, { retriable: true }), ack.retryAfterMs || backoffMs(this.failures - 1, this.opts.backoffBaseMs, this.opts.backoffCapMs)));
        return;
      case AckStatus.ACK_STATUS_REJECTED: {
        // the gateway prefixes its message with the stable error code ("FRAME_AUTH_FAILED: ...")
        const prefix = /^([A-Z][A-Z_]+):/.exec(ack.message)?.[1];
        const code = (ERROR_CODES as readonly string[]).includes(prefix ?? '') ? (prefix as ErrorCode) : /auth|token/i.test(ack.message) ? 'FRAME_AUTH_FAILED' : 'FRAME_INVALID_FIELD';
        const err = new WattsplitError(code, `gateway rejected batch ${w.batchId}: ${ack.message}`, { details: { batchId: w.batchId } });
        if (KEEP_ON_REJECT.has(code)) {
          // the host's identity is refused (token, unknown host): a configuration problem an operator
          // fixes; the frames are kept and retried slowly rather than lost
          this.failures++;
          w.resolve(retryable(err, Math.max(30_000, backoffMs(this.failures - 1, 1000, 300_000))));
        } else w.resolve(failed(err));
        return;
      }
      case AckStatus.ACK_STATUS_UNSPECIFIED:
        w.resolve(this.retry(new WattsplitError('TRANSPORT_UNAVAILABLE', `ack for batch ${w.batchId} without a status`, { retriable: true })));
        return;
    }
  }

  private retry(e: WattsplitError): TransportResult {
    this.failures++;
    return retryable(e, backoffMs(this.failures - 1, this.opts.backoffBaseMs ?? 200, this.opts.backoffCapMs ?? 10_000));
  }

  private onStreamEnd(s: IngestStream, e: grpc.ServiceError | undefined): void {
    if (this.stream !== s) return;
    this.stream = undefined;
    const unauth = e?.code === grpc.status.UNAUTHENTICATED || e?.code === grpc.status.PERMISSION_DENIED;
    const err = new WattsplitError(unauth ? 'FRAME_AUTH_FAILED' : 'TRANSPORT_UNAVAILABLE', e ? `ingest stream to ${this.opts.address} failed: ${e.details || e.message}` : `ingest stream to ${this.opts.address} ended`, {
      retriable: !unauth,
      cause: e,
      details: { grpcCode: e?.code },
    });
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      // An auth failure is still kept in the spool; it is retried slowly until the token is fixed.
      w.resolve(unauth ? retryable(err, Math.max(30_000, backoffMs(this.failures++, 1000, 300_000))) : this.retry(err));
    }
  }

  private resetStream(): void {
    const s = this.stream;
    this.stream = undefined;
    s?.cancel();
  }

  send(batch: IFrameBatch | EncodedFrameBatch): Promise<TransportResult> {
    if (this.closed) return Promise.resolve(failed(new WattsplitError('TRANSPORT_UNAVAILABLE', 'client closed')));
    const batchId = Number(batch.batchId ?? 0);
    const bytes =
      'encodedFrames' in batch
        ? encodeFrameBatchBytes(batch.batchId, batch.encodedFrames, this.opts.token)
        : Buffer.from(FrameBatch.encode({ ...batch, token: batch.token || this.opts.token || '' }).finish());
    return new Promise<TransportResult>((resolve) => {
      let s: IngestStream;
      try {
        s = this.openStream();
      } catch (e) {
        resolve(this.retry(new WattsplitError('TRANSPORT_UNAVAILABLE', `cannot open ingest stream: ${(e as Error).message}`, { cause: e, retriable: true })));
        return;
      }
      const timeout = this.opts.ackTimeoutMs ?? 30_000;
      const timer = setTimeout(() => {
        const i = this.waiters.findIndex((w) => w.timer === timer);
        if (i >= 0) this.waiters.splice(i, 1);
        // Acks come in order: one lost ack means the stream is unusable.
        this.resetStream();
        resolve(this.retry(new WattsplitError('TRANSPORT_TIMEOUT', `no ack for batch ${batchId} within ${timeout} ms`, { retriable: true })));
      }, timeout);
      this.waiters.push({ batchId, resolve, timer });
      s.write(bytes);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const s = this.stream;
    this.stream = undefined;
    if (s) s.end();
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.resolve(retryable(new WattsplitError('TRANSPORT_UNAVAILABLE', 'client closed', { retriable: true }), 0));
    }
    this.client.close();
  }
}

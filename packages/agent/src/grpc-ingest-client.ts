/**
 * GrpcIngestClient: the transport from agent to gateway. One long-lived bidirectional `Ingest` stream
 * (wattsplit.telemetry.v1.TelemetryIngest); each FrameBatch is answered by one BatchAck, in order, once
 * the gateway made the batch durable. Returns a TransportResult, never throws: retry, spooling and
 * batching live in SpoolingSender around it.
 *
 * gRPC over Node's own http2 (the agent's one call does not need @grpc/grpc-js: its channel, resolver, retry and
 * service-config layers cost the agent ~CPU and RSS every second; the gateway stays on grpc-js). What the call
 * needs from the protocol (grpc/grpc PROTOCOL-HTTP2.md):
 *   Request-Headers  ":method POST", ":scheme", ":path /wattsplit.telemetry.v1.TelemetryIngest/Ingest",
 *                    ":authority", "te: trailers", "content-type: application/grpc", custom metadata
 *                    ("authorization: Bearer <token>")
 *   Length-Prefixed-Message  Compressed-Flag (1 byte, 0) Message-Length (4 bytes, big-endian) Message
 *   Response  Response-Headers (":status 200", "content-type") *Length-Prefixed-Message Trailers
 *             ("grpc-status", "grpc-message" percent-encoded), or Trailers-Only (grpc-status in the headers)
 *   an HTTP status other than 200 without grpc-status maps to a gRPC code ("HTTP to gRPC Status Code Mapping":
 *   401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED, 429/502/503/504 UNAVAILABLE, else UNKNOWN).
 * Keepalive as the grpc-js channel had it: an HTTP/2 PING every 30 s while connected, the connection dropped when
 * none is answered within 10 s. Reconnection is on the next send, paced by the back-off of the retryable results
 * (SpoolingSender sleeps `afterMs`): 200 ms doubling to 10 s, with jitter.
 *
 * A batch is either a FrameBatch object or an EncodedFrameBatch (frames already encoded, as spooled: its bytes
 * are assembled around them, never decoded and re-encoded); the stream carries the batch's bytes as they are.
 *
 * Auth: the host token goes as gRPC metadata "authorization: Bearer <token>" and in FrameBatch.token.
 * TLS: server CA (or the system roots), optional client cert/key for mTLS; plaintext only when asked.
 */
import { readFileSync } from 'node:fs';
import * as http2 from 'node:http2';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import {
  AckStatus,
  BatchAck,
  ERROR_CODES,
  FrameBatch,
  INGEST_METHOD_PATH,
  OK,
  type ErrorCode,
  WattsplitError,
  backoffMs,
  failed,
  retryable,
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

/** Rejections about who the host is, not about the frames: keep the frames, retry slowly. */
const KEEP_ON_REJECT = new Set<ErrorCode>(['FRAME_AUTH_FAILED', 'FRAME_UNKNOWN_HOST']);

/** gRPC status codes this client tells apart (grpc/grpc doc/statuscodes.md). */
export const GRPC_STATUS = { OK: 0, UNKNOWN: 2, PERMISSION_DENIED: 7, UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, UNAUTHENTICATED: 16 } as const;

/** How a call ended: its gRPC status and message (absent: the stream ended without an error). */
interface CallEnd {
  code: number;
  details: string;
  cause?: unknown;
}

function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new WattsplitError('CONFIG_INVALID', `${what} file ${file} unreadable: ${(e as Error).message}`, { cause: e, details: { field: what, value: file } });
  }
}

/** The TLS options of the connection (false: plaintext), files read and checked: CONFIG_INVALID naming the field. */
export function ingestCredentials(tls: IngestTlsOptions | false): ConnectionOptions | false {
  if (tls === false) return false;
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    throw new WattsplitError('CONFIG_INVALID', `mTLS needs both certFile and keyFile (got certFile=${JSON.stringify(tls.certFile ?? null)}, keyFile=${JSON.stringify(tls.keyFile ?? null)})`, { details: { field: 'tls' } });
  }
  const o: ConnectionOptions = { ALPNProtocols: ['h2'] };
  if (tls.caFile) o.ca = readPem(tls.caFile, 'tls.caFile');
  if (tls.certFile) o.cert = readPem(tls.certFile, 'tls.certFile');
  if (tls.keyFile) o.key = readPem(tls.keyFile, 'tls.keyFile');
  // the name the gateway's certificate must carry (SNI and the identity check): grpc-js' ssl_target_name_override
  if (tls.serverName) o.servername = tls.serverName;
  return o;
}

/** "HTTP to gRPC Status Code Mapping" (grpc/grpc doc/http-grpc-status-mapping.md). */
function grpcCodeOfHttp(status: number): number {
  switch (status) {
    case 400:
      return GRPC_STATUS.INTERNAL;
    case 401:
      return GRPC_STATUS.UNAUTHENTICATED;
    case 403:
      return GRPC_STATUS.PERMISSION_DENIED;
    case 404:
      return GRPC_STATUS.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GRPC_STATUS.UNAVAILABLE;
    default:
      return GRPC_STATUS.UNKNOWN;
  }
}

/** grpc-message is percent-encoded (PROTOCOL-HTTP2.md, "Status-Message"). */
function grpcMessage(v: string | string[] | undefined): string {
  const s = Array.isArray(v) ? v.join(',') : (v ?? '');
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

const KEEPALIVE_MS = 30_000;
const KEEPALIVE_TIMEOUT_MS = 10_000;

interface Waiter {
  batchId: number;
  resolve: (r: TransportResult) => void;
  timer: NodeJS.Timeout;
}

/** The one Ingest call: its HTTP/2 stream and the response bytes not yet a whole message. */
interface IngestCall {
  stream: http2.ClientHttp2Stream;
  pending: Buffer | undefined;
  ended: boolean;
}

export class GrpcIngestClient implements FrameBatchTransport {
  private session: http2.ClientHttp2Session | undefined;
  private keepalive: NodeJS.Timeout | undefined;
  private call: IngestCall | undefined;
  private readonly waiters: Waiter[] = [];
  private failures = 0;
  private readonly log: Logger;
  private closed = false;
  private readonly tls: ConnectionOptions | false;
  private readonly headers: http2.OutgoingHttpHeaders;

  constructor(private readonly opts: GrpcIngestClientOptions) {
    this.log = opts.logger.child({ transport: 'grpc', gateway: opts.address });
    this.tls = ingestCredentials(opts.tls);
    this.headers = {
      [http2.constants.HTTP2_HEADER_METHOD]: 'POST',
      [http2.constants.HTTP2_HEADER_PATH]: INGEST_METHOD_PATH,
      [http2.constants.HTTP2_HEADER_AUTHORITY]: opts.address.startsWith('unix:') ? 'localhost' : opts.address,
      [http2.constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
      [http2.constants.HTTP2_HEADER_TE]: 'trailers',
      [http2.constants.HTTP2_HEADER_USER_AGENT]: 'wattsplit-agent',
      'grpc-accept-encoding': 'identity',
    };
    if (opts.token) this.headers.authorization = `Bearer ${opts.token}`;
  }

  /** The connection, opened on first use (a refused or failed one surfaces as the call's error). */
  private connect(): http2.ClientHttp2Session {
    if (this.session && !this.session.closed && !this.session.destroyed) return this.session;
    clearInterval(this.keepalive); // a session that closed before its 'close' event reached onSessionGone
    const addr = this.opts.address;
    const tls = this.tls;
    const options: http2.ClientSessionOptions & http2.SecureClientSessionOptions = { settings: { enablePush: false } };
    let authority: string;
    if (addr.startsWith('unix:')) {
      const path = addr.slice('unix:'.length).replace(/^\/\/(?=\/)/, '');
      authority = `${tls ? 'https' : 'http'}://localhost`;
      options.createConnection = () => (tls ? tlsConnect({ ...tls, socket: netConnect(path) }) : netConnect(path));
    } else {
      authority = `${tls ? 'https' : 'http'}://${addr}`;
      if (tls) Object.assign(options, tls);
    }
    const session = http2.connect(authority, options);
    this.session = session;
    session.on('error', (e: Error) => this.onSessionGone(session, { code: GRPC_STATUS.UNAVAILABLE, details: e.message, cause: e }));
    session.on('goaway', () => this.onSessionGone(session, { code: GRPC_STATUS.UNAVAILABLE, details: 'the gateway closed the connection (GOAWAY)' }));
    session.on('close', () => this.onSessionGone(session, { code: GRPC_STATUS.UNAVAILABLE, details: 'connection closed' }));
    this.keepalive = setInterval(() => this.ping(session), KEEPALIVE_MS);
    this.keepalive.unref();
    return session;
  }

  private ping(session: http2.ClientHttp2Session): void {
    if (session.destroyed || !session.socket) return;
    const timer = setTimeout(() => {
      this.log.warn({}, `no keepalive PING answer from ${this.opts.address} within ${KEEPALIVE_TIMEOUT_MS} ms: dropping the connection`);
      this.onSessionGone(session, { code: GRPC_STATUS.UNAVAILABLE, details: 'keepalive timeout' });
    }, KEEPALIVE_TIMEOUT_MS);
    timer.unref();
    try {
      session.ping(() => clearTimeout(timer));
    } catch {
      clearTimeout(timer);
    }
  }

  private onSessionGone(session: http2.ClientHttp2Session, end: CallEnd): void {
    if (this.session !== session) return;
    this.session = undefined;
    clearInterval(this.keepalive);
    this.keepalive = undefined;
    if (!session.destroyed) session.destroy();
    if (this.call) this.onCallEnd(this.call, end);
  }

  private openCall(): IngestCall {
    if (this.call && !this.call.ended) return this.call;
    const session = this.connect();
    const stream = session.request(this.headers, { endStream: false });
    const call: IngestCall = { stream, pending: undefined, ended: false };
    stream.on('response', (h: http2.IncomingHttpHeaders) => {
      const status = Number(h[http2.constants.HTTP2_HEADER_STATUS]);
      const gs = h['grpc-status'];
      if (gs !== undefined) this.onCallEnd(call, Number(gs) === GRPC_STATUS.OK ? undefined : { code: Number(gs), details: grpcMessage(h['grpc-message']) }); // Trailers-Only
      else if (status !== 200) this.onCallEnd(call, { code: grpcCodeOfHttp(status), details: `HTTP status ${status}` });
      else if (!String(h[http2.constants.HTTP2_HEADER_CONTENT_TYPE] ?? '').startsWith('application/grpc')) {
        this.onCallEnd(call, { code: GRPC_STATUS.UNKNOWN, details: `content-type ${String(h[http2.constants.HTTP2_HEADER_CONTENT_TYPE])}, not application/grpc` });
      }
    });
    stream.on('data', (b: Buffer) => this.onData(call, b));
    stream.on('trailers', (h: http2.IncomingHttpHeaders) => {
      const gs = Number(h['grpc-status'] ?? GRPC_STATUS.UNKNOWN);
      this.onCallEnd(call, gs === GRPC_STATUS.OK ? undefined : { code: gs, details: grpcMessage(h['grpc-message']) || `grpc-status ${gs}` });
    });
    stream.on('error', (e: Error) => this.onCallEnd(call, { code: GRPC_STATUS.UNAVAILABLE, details: e.message, cause: e }));
    stream.on('close', () => this.onCallEnd(call, stream.rstCode && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR ? { code: GRPC_STATUS.UNAVAILABLE, details: `stream reset (HTTP/2 error ${stream.rstCode})` } : undefined));
    this.call = call;
    return call;
  }

  /** Length-Prefixed-Messages from the response bytes; each one a BatchAck. */
  private onData(call: IngestCall, chunk: Buffer): void {
    if (call.ended) return; // a late ack on a call already cancelled or ended must not settle the next call's batch
    let b = call.pending ? Buffer.concat([call.pending, chunk]) : chunk;
    while (b.length >= 5) {
      const len = b.readUInt32BE(1);
      if (b.length < 5 + len) break;
      if (b[0] !== 0) {
        this.onCallEnd(call, { code: GRPC_STATUS.INTERNAL, details: 'compressed message without negotiated compression' });
        call.stream.close(http2.constants.NGHTTP2_CANCEL);
        return;
      }
      let ack: BatchAck;
      try {
        ack = BatchAck.decode(b.subarray(5, 5 + len));
      } catch (e) {
        this.onCallEnd(call, { code: GRPC_STATUS.INTERNAL, details: `undecodable BatchAck: ${(e as Error).message}`, cause: e });
        call.stream.close(http2.constants.NGHTTP2_CANCEL);
        return;
      }
      b = b.subarray(5 + len);
      this.onAck(ack);
      if (call.ended) return;
    }
    call.pending = b.length > 0 ? b : undefined;
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
      this.resetCall();
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

  private onCallEnd(call: IngestCall, e: CallEnd | undefined): void {
    if (call.ended) return;
    call.ended = true;
    if (this.call === call) this.call = undefined;
    const unauth = e?.code === GRPC_STATUS.UNAUTHENTICATED || e?.code === GRPC_STATUS.PERMISSION_DENIED;
    const err = new WattsplitError(unauth ? 'FRAME_AUTH_FAILED' : 'TRANSPORT_UNAVAILABLE', e ? `ingest stream to ${this.opts.address} failed: ${e.details}` : `ingest stream to ${this.opts.address} ended`, {
      retriable: !unauth,
      cause: e?.cause,
      details: { grpcCode: e?.code },
    });
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      // An auth failure is still kept in the spool; it is retried slowly until the token is fixed.
      w.resolve(unauth ? retryable(err, Math.max(30_000, backoffMs(this.failures++, 1000, 300_000))) : this.retry(err));
    }
  }

  /** Cancels the call (RST_STREAM CANCEL); the connection stays. */
  private resetCall(): void {
    const c = this.call;
    if (!c) return;
    this.call = undefined;
    c.ended = true;
    if (!c.stream.destroyed) c.stream.close(http2.constants.NGHTTP2_CANCEL);
  }

  send(batch: IFrameBatch | EncodedFrameBatch): Promise<TransportResult> {
    if (this.closed) return Promise.resolve(failed(new WattsplitError('TRANSPORT_UNAVAILABLE', 'client closed')));
    const batchId = Number(batch.batchId ?? 0);
    const bytes =
      'encodedFrames' in batch
        ? encodeFrameBatchBytes(batch.batchId, batch.encodedFrames, this.opts.token)
        : FrameBatch.encode({ ...batch, token: batch.token || this.opts.token || '' }).finish();
    return new Promise<TransportResult>((resolve) => {
      let call: IngestCall;
      try {
        call = this.openCall();
      } catch (e) {
        resolve(this.retry(new WattsplitError('TRANSPORT_UNAVAILABLE', `cannot open ingest stream: ${(e as Error).message}`, { cause: e, retriable: true })));
        return;
      }
      const timeout = this.opts.ackTimeoutMs ?? 30_000;
      const timer = setTimeout(() => {
        const i = this.waiters.findIndex((w) => w.timer === timer);
        if (i >= 0) this.waiters.splice(i, 1);
        // Acks come in order: one lost ack means the stream is unusable.
        this.resetCall();
        resolve(this.retry(new WattsplitError('TRANSPORT_TIMEOUT', `no ack for batch ${batchId} within ${timeout} ms`, { retriable: true })));
      }, timeout);
      this.waiters.push({ batchId, resolve, timer });
      // Length-Prefixed-Message: not compressed, 4-byte big-endian length, the FrameBatch
      const prefix = Buffer.allocUnsafe(5);
      prefix[0] = 0;
      prefix.writeUInt32BE(bytes.length, 1);
      call.stream.write(prefix);
      call.stream.write(bytes);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const c = this.call;
    this.call = undefined;
    if (c) {
      c.ended = true;
      if (!c.stream.destroyed) c.stream.end();
    }
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.resolve(retryable(new WattsplitError('TRANSPORT_UNAVAILABLE', 'client closed', { retriable: true }), 0));
    }
    const session = this.session;
    this.session = undefined;
    clearInterval(this.keepalive);
    this.keepalive = undefined;
    if (session && !session.destroyed) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          session.destroy();
          resolve();
        }, 1000);
        t.unref();
        session.close(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}

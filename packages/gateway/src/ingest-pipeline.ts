/**
 * The gateway's per-batch logic, independent of gRPC: auth → validation → allow-list → duplicate seq
 * → counters-backwards flag → produce (one bus message per frame, key = host id) → ack. An OK ack is
 * only ever returned after the producer's send resolved ok, so an agent may drop a batch from its spool
 * exactly when the frames are durable on the bus.
 *
 * Ack statuses (wattsplit.telemetry.v1.AckStatus):
 * - OK: every accepted frame is durable; frames that can never be accepted (invalid, unknown host,
 *   wrong host for the token) are listed in `rejections` and must not be resent.
 * - RETRY: the bus failed transiently (down, slow, timed out) or the gateway is over its in-flight bound;
 *   resend the same batch after `retry_after_ms`. Frames a resend carries that did become durable are
 *   acked, not produced twice.
 * - REJECTED: the batch itself is bad (token refused, not a FrameBatch), or the bus refused every new
 *   frame of it for good (`TRANSPORT_REJECTED`: message too large, topic not authorised...); do not
 *   resend it unchanged.
 *
 * Producer errors are classified (`isPermanentProduceFailure`): `retryable`, and `failed` with a transient
 * code (unavailable, timeout, back-pressure) or a retriable flag, are answered RETRY; any other `failed`
 * (the Kafka bus reports the broker's non-retriable errors as `TRANSPORT_REJECTED`) is permanent. A
 * permanent failure of a multi-frame send is bisected (halves sent in order, down to single frames), so
 * one bad frame, or a batch larger than the topic's `max.message.bytes` as a whole, does not take the
 * good frames with it: frames refused alone are listed in `rejections` with code TRANSPORT_REJECTED,
 * counted and logged with host and seq; when no new frame was durable the ack is REJECTED.
 */
import {
  AckStatus,
  WattsplitError,
  encodeFrame,
  normaliseError,
  silentLogger,
  RepeatGate,
  validateFrame,
  type BusMessageIn,
  type BusProducer,
  type FrameBatch,
  type FrameBatchView,
  type IBatchAck,
  type IFrameRejection,
  type ITelemetryFrame,
  type Logger,
  type TransportResult,
} from '@wattsplit/wire';
import { HostAuthenticator, pickToken, type HostAuthConfig } from './host-auth.js';
import { HostHistory, lastFrameOf, lastFrameWentBackwards, type HostState, type LastFrame } from './host-history.js';
import { observeLatency, type GatewayMetrics } from './metrics.js';

export const TELEMETRY_TOPIC = 'wattsplit.telemetry.v1';
/** Header set on frames whose counters went backwards within one boot; the value lists the counters. */
export const ANOMALY_HEADER = 'wattsplit-anomaly';

/** Error codes of a `failed` produce that a later retry can still fix (the agent is told RETRY). */
const TRANSIENT_PRODUCE_CODES: ReadonlySet<string> = new Set(['TRANSPORT_UNAVAILABLE', 'TRANSPORT_TIMEOUT', 'TRANSPORT_BACKPRESSURE', 'INTERNAL']);

type ProduceFailure = Exclude<TransportResult, { kind: 'ok' }>;

/** True when the bus refused the messages for good: resending them unchanged cannot succeed. */
export function isPermanentProduceFailure(r: TransportResult): r is { kind: 'failed'; error: WattsplitError } {
  return r.kind === 'failed' && !r.error.retriable && !TRANSIENT_PRODUCE_CODES.has(r.error.code);
}

export interface IngestPipelineOptions {
  producer: BusProducer;
  metrics: GatewayMetrics;
  /** Bus topic of telemetry frames. Default `wattsplit.telemetry.v1`. */
  topic?: string;
  /** Default `{ mode: 'none' }`. */
  auth?: HostAuthConfig;
  /** When set, frames of any other host are rejected with FRAME_UNKNOWN_HOST. */
  allowedHosts?: Iterable<string>;
  /** How many recent seqs per host (and boot) are remembered for duplicate detection, one bit each. Default 4096. */
  seqsPerHost?: number;
  /** How many hosts' history is kept (LRU). Default 50 000. */
  maxHosts?: number;
  /** retry_after_ms when the producer failed without saying when to retry. Default 1000. */
  failedRetryAfterMs?: number;
  logger?: Logger;
  /** Monotonic clock in ms, for produce latency. Default `performance.now`. */
  nowMs?: () => number;
}

export interface IncomingBatch {
  /**
   * The batch: decoded by protobufjs (`decodeBatch`), or wire's `scanFrameBatch` view of it (frames already
   * checked as validateFrame checks them, each with its bytes; `frameBytes` is then not used).
   */
  batch: FrameBatch | FrameBatchView;
  /** Size of the encoded batch, bytes. */
  bytes: number;
  /**
   * Each frame's bytes as received, parallel to batch.frames: produced as they are, so fields this gateway's
   * generated code does not know (a newer agent) reach the collector. Absent = frames are re-encoded.
   */
  frameBytes?: readonly Uint8Array[] | undefined;
  /** The `authorization` metadata value, if any. */
  authorization?: string | undefined;
  /** Who sent it (peer address), for logs. */
  peer?: string | undefined;
  /** Subject CN of the client certificate the TLS layer verified, if any (auth mode client-cert). */
  certHost?: string | undefined;
}

/** What the pipeline reads of one frame of the batch, from either form of it. */
interface IncomingFrame {
  host: string;
  /** Number(seq) (0 when unset). */
  seq: number;
  boot: string;
  /** What validateFrame found (undefined: valid). */
  problems: WattsplitError[] | undefined;
  /** The frame's counters for the history (a valid frame's). */
  last: LastFrame | undefined;
  /** The bytes to produce: as received, or the decoded frame re-encoded on demand. */
  bytes: Uint8Array | undefined;
  decoded: ITelemetryFrame | undefined;
}

/** The frames of a batch in either form, in order. */
function incomingFrames(input: IncomingBatch): IncomingFrame[] {
  const { batch } = input;
  if ('scanned' in batch) {
    const out = new Array<IncomingFrame>(batch.frames.length);
    for (let i = 0; i < out.length; i++) {
      const v = batch.frames[i]!;
      out[i] = { host: v.hostId, seq: v.seq, boot: v.bootId, problems: undefined, last: v, bytes: batch.frameBytes[i], decoded: undefined };
    }
    return out;
  }
  return batch.frames.map((f, i) => {
    const problems = validateFrame(f);
    return {
      host: f.hostId ?? '',
      seq: Number(f.seq ?? 0),
      boot: f.bootId ?? '',
      problems: problems.length ? problems : undefined,
      last: problems.length ? undefined : lastFrameOf(f),
      bytes: input.frameBytes?.[i],
      decoded: f,
    };
  });
}

interface Planned {
  frame: IncomingFrame;
  host: string;
  seq: number;
  boot: string;
  state: HostState;
  anomalies: string[];
  last: LastFrame;
}

const status = AckStatus;

export class IngestPipeline {
  private readonly producer: BusProducer;
  private readonly metrics: GatewayMetrics;
  private readonly topic: string;
  private readonly auth: HostAuthenticator;
  private readonly allowed: Set<string> | undefined;
  private readonly history: HostHistory;
  private readonly failedRetryAfterMs: number;
  private readonly log: Logger;
  /** Batches acked RETRY because the bus could not take them: logged once per kind and code per 30 s. */
  private readonly produceFailures = new RepeatGate(30_000);
  /**
   * Batches refused for their credentials or bytes: logged once per code and peer address (the port left out:
   * an agent reconnects from a new one) per 30 s, the rest at debug and counted in the next line's `repeated`
   * and in the metrics; a misconfigured fleet or a scanner does not write a line per batch.
   */
  private readonly peerRefusals = new RepeatGate(30_000);
  private readonly nowMs: () => number;
  /** Called with every producer result (the server derives the producer's readiness from it). */
  onProduce: ((r: TransportResult) => void) | undefined;

  constructor(opts: IngestPipelineOptions) {
    this.producer = opts.producer;
    this.metrics = opts.metrics;
    this.topic = opts.topic ?? TELEMETRY_TOPIC;
    this.auth = new HostAuthenticator(opts.auth ?? { mode: 'none' });
    this.allowed = opts.allowedHosts === undefined ? undefined : new Set(opts.allowedHosts);
    this.history = new HostHistory(positive('maxHosts', opts.maxHosts ?? 50_000), positive('seqsPerHost', opts.seqsPerHost ?? 4096));
    this.failedRetryAfterMs = positive('failedRetryAfterMs', opts.failedRetryAfterMs ?? 1000);
    this.log = opts.logger ?? silentLogger;
    this.nowMs = opts.nowMs ?? (() => performance.now());
  }

  /** True when this token (metadata or batch) or verified client certificate is accepted; never throws. */
  authenticates(authorization: string | undefined, batchToken: string | null | undefined, certHost: string | undefined): boolean {
    return this.auth.authenticate(pickToken(authorization, batchToken), certHost).ok;
  }

  /** The ack for bytes that are not a FrameBatch (the wrapped gRPC deserializer caught it). */
  undecodable(error: WattsplitError, bytes: number, peer?: string): IBatchAck {
    this.metrics.batches++;
    this.metrics.bytesReceived += bytes;
    this.count(error.code);
    this.peerRefusals.write(this.log, 'warn', `${error.code}\u0000${peerAddress(peer)}`, { code: error.code, peer, bytes }, error.message);
    return this.ack({ batchId: 0, status: status.ACK_STATUS_REJECTED, message: `${error.code}: ${error.message}` });
  }

  /** The ack for a batch refused before processing because the gateway is over its global in-flight bound. */
  overloaded(batchId: number, bytes: number, retryAfterMs: number, why: string): IBatchAck {
    this.metrics.batches++;
    this.metrics.bytesReceived += bytes;
    this.metrics.backpressureRetries++;
    return this.ack({ batchId, status: status.ACK_STATUS_RETRY, retryAfterMs, message: `TRANSPORT_BACKPRESSURE: ${why}` });
  }

  async process(input: IncomingBatch): Promise<IBatchAck> {
    const { batch } = input;
    this.metrics.batches++;
    this.metrics.bytesReceived += input.bytes;
    const batchId = batch.batchId;
    const who = this.auth.authenticate(pickToken(input.authorization, batch.token), input.certHost);
    if (!who.ok) {
      this.metrics.authFailures++;
      this.count(who.error.code, batch.frames.length);
      this.peerRefusals.write(this.log, 'warn', `${who.error.code}\u0000${peerAddress(input.peer)}`, { code: who.error.code, peer: input.peer, batchId, frames: batch.frames.length }, who.error.message);
      return this.ack({ batchId, status: status.ACK_STATUS_REJECTED, rejected: batch.frames.length, message: `${who.error.code}: ${who.error.message}` });
    }

    const rejections: IFrameRejection[] = [];
    const reject = (f: IncomingFrame, e: WattsplitError): void => {
      rejections.push({ seq: f.seq, hostId: f.host, code: e.code, message: e.message });
      this.count(e.code);
      this.log.warn({ code: e.code, peer: input.peer, batchId, host: f.host, seq: f.seq, ...e.details }, e.message);
    };

    const planned: Planned[] = [];
    let duplicates = 0;
    const working = new Map<string, LastFrame | undefined>(); // last frame per host as of this batch
    const inBatch = new Set<string>(); // host \0 boot \0 seq planned in this batch
    const frames = incomingFrames(input);
    for (let index = 0; index < frames.length; index++) {
      const f = frames[index]!;
      if (!f.last) {
        const [first, ...more] = f.problems!;
        reject(f, more.length ? new WattsplitError(first!.code, [first!, ...more].map((p) => p.message).join('; '), { details: first!.details }) : first!);
        continue;
      }
      const host = f.host;
      const seq = f.seq;
      const where = `frame host=${JSON.stringify(host)} seq=${seq}`;
      if (who.host !== undefined && host !== who.host) {
        reject(f, new WattsplitError('FRAME_AUTH_FAILED', `${where}: host_id=${JSON.stringify(host)} is not the host this ${input.certHost !== undefined && who.host === input.certHost ? 'client certificate' : 'token'} belongs to (${JSON.stringify(who.host)})`, { details: { field: 'host_id', value: host } }));
        continue;
      }
      if (this.allowed && !this.allowed.has(host)) {
        reject(f, new WattsplitError('FRAME_UNKNOWN_HOST', `${where}: host_id=${JSON.stringify(host)} is not in the gateway's host allow-list`, { details: { field: 'host_id', value: host } }));
        continue;
      }
      const boot = f.boot;
      const key = `${host}\0${boot}\0${seq}`;
      const state = this.history.get(host);
      if (state.produced.has(boot, seq) || inBatch.has(key)) {
        duplicates++;
        continue;
      }
      const pending = state.pending.get(`${boot}\0${seq}`);
      if (pending) {
        // The same frame is being produced by another stream of this host (a reconnect): wait for it.
        await pending;
        if (state.produced.has(boot, seq)) {
          duplicates++;
          continue;
        }
      }
      const prev = working.has(host) ? working.get(host) : state.last;
      const last = f.last;
      const anomalies = prev ? lastFrameWentBackwards(prev, last) : [];
      if (!prev || seq > prev.seq) working.set(host, last);
      inBatch.add(key);
      planned.push({ frame: f, host, seq, boot, state, anomalies, last });
    }

    if (planned.length === 0) {
      this.metrics.framesDuplicate += duplicates;
      return this.ack({ batchId, status: status.ACK_STATUS_OK, accepted: duplicates, rejected: rejections.length, rejections });
    }

    // Another stream waiting on one of these frames re-checks `produced` once this settles.
    let settle!: (settled: boolean) => void;
    const done = new Promise<boolean>((r) => (settle = r));
    for (const p of planned) p.state.pending.set(`${p.boot}\0${p.seq}`, done);
    const messages: BusMessageIn[] = planned.map((p) => {
      const headers: Record<string, string> = { host: p.host, seq: String(p.seq), boot: p.boot };
      if (p.anomalies.length) headers[ANOMALY_HEADER] = `COUNTER_WENT_BACKWARDS ${p.anomalies.join('; ')}`;
      return { key: p.host, value: p.frame.bytes ?? encodeFrame(p.frame.decoded!), headers };
    });

    const out = await this.produceIsolating(messages);
    for (const [i, p] of planned.entries()) {
      const k = `${p.boot}\0${p.seq}`;
      if (p.state.pending.get(k) === done) p.state.pending.delete(k);
      if (out.produced[i]) p.state.produced.add(p.boot, p.seq);
    }
    settle(true);

    // The last produced frame per host moves on only with frames that are durable.
    const durable = new Map<string, LastFrame>();
    for (const [i, p] of planned.entries()) {
      if (!out.produced[i]) continue;
      const prev = durable.get(p.host);
      if (!prev || prev.bootId !== p.boot || p.seq > prev.seq) durable.set(p.host, p.last);
    }
    for (const [host, last] of durable) {
      const s = this.history.get(host);
      if (!s.last || s.last.bootId !== last.bootId || last.seq > s.last.seq) s.last = last;
    }
    let anomalous = 0;
    let producedFrames = 0;
    for (const [i, p] of planned.entries()) {
      const refused = out.refused[i];
      if (refused) {
        reject(p.frame, new WattsplitError('TRANSPORT_REJECTED', `frame host=${JSON.stringify(p.host)} seq=${p.seq}: the bus refused it for good (${messages[i]!.value.length} bytes): ${refused.message}`, { details: { bytes: messages[i]!.value.length } }));
        continue;
      }
      if (!out.produced[i]) continue;
      producedFrames++;
      this.metrics.bytesProduced += messages[i]!.value.length;
      if (!p.anomalies.length) continue;
      anomalous++;
      this.log.warn({ code: 'COUNTER_WENT_BACKWARDS', host: p.host, seq: p.seq, boot: p.boot }, `frame host=${JSON.stringify(p.host)} seq=${p.seq}: counters went backwards within boot ${JSON.stringify(p.boot)}: ${p.anomalies.join('; ')} (produced with header ${ANOMALY_HEADER})`);
    }
    this.metrics.framesAccepted += producedFrames;
    this.metrics.framesAnomalous += anomalous;

    if (out.stop) {
      const result = out.stop;
      const after = result.kind === 'retryable' ? Math.max(1, Math.round(result.afterMs)) : this.failedRetryAfterMs;
      // While the broker is down every agent's every batch lands here (a thousand agents: a thousand lines a
      // second): one warning per kind and error code per 30 s, the rest at debug and counted in the next warning.
      const fields = { code: result.error.code, batchId, frames: planned.length, produced: producedFrames, retryAfterMs: after, peer: input.peer };
      this.produceFailures.write(this.log, 'warn', `${result.kind}\u0000${result.error.code}`, fields, `bus produce ${result.kind}: ${result.error.message}; batch acked RETRY`);
      return this.ack({
        batchId,
        status: status.ACK_STATUS_RETRY,
        retryAfterMs: after,
        rejected: rejections.length,
        rejections,
        message: `${result.error.code}: ${result.error.message}`,
      });
    }
    this.metrics.framesDuplicate += duplicates;
    const firstRefused = out.refused.find((e) => e !== undefined);
    if (producedFrames === 0 && firstRefused) {
      // Nothing new became durable and the bus will never take these frames: the agent keeps the batch
      // aside (dead letter) instead of resending it forever.
      return this.ack({ batchId, status: status.ACK_STATUS_REJECTED, accepted: duplicates, rejected: rejections.length, rejections, message: `TRANSPORT_REJECTED: the bus refused ${out.refused.filter(Boolean).length} of ${planned.length} frames for good: ${firstRefused.message}` });
    }
    return this.ack({ batchId, status: status.ACK_STATUS_OK, accepted: producedFrames + duplicates, rejected: rejections.length, rejections });
  }

  /** One producer send; a throw is a transient failure (the batch is retried, never lost). */
  private async sendOnce(messages: readonly BusMessageIn[]): Promise<TransportResult> {
    const t0 = this.nowMs();
    let result: TransportResult;
    try {
      result = await this.producer.send(this.topic, messages);
    } catch (e) {
      result = { kind: 'failed', error: normaliseError(e, 'TRANSPORT_UNAVAILABLE', true) };
    }
    this.onProduce?.(result);
    if (result.kind === 'ok') observeLatency(this.metrics.produceLatency, (this.nowMs() - t0) / 1000);
    else {
      this.metrics.produceFailures++;
      const kind = isPermanentProduceFailure(result) ? 'permanent' : 'transient';
      const key = `${kind}:${result.error.code}`;
      this.metrics.produceErrors[key] = (this.metrics.produceErrors[key] ?? 0) + 1;
    }
    return result;
  }

  /**
   * Sends the messages in order. A permanent failure of several messages is bisected (first half, then
   * second half) so only the messages the bus refuses on their own are refused; the first transient
   * failure stops everything not yet sent (`stop`), keeping one host's frames in order on a resend.
   */
  private async produceIsolating(messages: readonly BusMessageIn[]): Promise<{ produced: boolean[]; refused: (WattsplitError | undefined)[]; stop?: ProduceFailure }> {
    const produced = messages.map(() => false);
    const refused: (WattsplitError | undefined)[] = messages.map(() => undefined);
    const send = async (a: number, b: number): Promise<ProduceFailure | undefined> => {
      const r = await this.sendOnce(messages.slice(a, b));
      if (r.kind === 'ok') {
        produced.fill(true, a, b);
        return undefined;
      }
      if (!isPermanentProduceFailure(r)) return r;
      if (b - a === 1) {
        refused[a] = r.error;
        return undefined;
      }
      const mid = a + Math.floor((b - a) / 2);
      return (await send(a, mid)) ?? (await send(mid, b));
    };
    const stop = await send(0, messages.length);
    return stop ? { produced, refused, stop } : { produced, refused };
  }

  private count(code: string, n = 1): void {
    this.metrics.framesRejected[code] = (this.metrics.framesRejected[code] ?? 0) + n;
  }

  private ack(a: IBatchAck): IBatchAck {
    if (a.status === status.ACK_STATUS_OK) this.metrics.acks.ok++;
    else if (a.status === status.ACK_STATUS_RETRY) this.metrics.acks.retry++;
    else this.metrics.acks.rejected++;
    return a;
  }
}

function positive(field: string, v: number): number {
  if (!Number.isFinite(v) || v <= 0) throw new WattsplitError('CONFIG_INVALID', `gateway: ${field}=${JSON.stringify(v)} must be a positive number`, { details: { field, value: v } });
  return v;
}

/** A peer's address without its port ("ipv4:10.0.0.7:53122" → "ipv4:10.0.0.7", "[::1]:5" → "[::1]"). */
export function peerAddress(peer: string | undefined): string {
  if (peer === undefined) return '';
  const i = peer.lastIndexOf(':');
  return i > 0 && /^\d+$/.test(peer.slice(i + 1)) ? peer.slice(0, i) : peer;
}

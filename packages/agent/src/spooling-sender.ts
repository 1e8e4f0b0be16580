/**
 * SpoolingSender: durability, batching and retry around a FrameBatchTransport.
 *
 * Every frame is appended to the FrameSpool before anything is sent, so a frame handed to `enqueue`
 * survives an agent crash and a gateway outage; a frame still unacked after the spool's syncAfterMs is
 * fsync'd by a timer here, so it survives a power loss too (see FrameSpool). One sender loop takes the
 * oldest pending frames (up to maxFrames / maxBytes, waiting up to lingerMs for a batch to fill), sends
 * them as they were encoded (the batch is assembled around the spooled bytes), and acks them in the spool
 * only when the gateway acked the batch. A resent frame is the same bytes, so it keeps its seq; the
 * gateway drops a seq it already has. Retryable results wait (back-off with jitter from the
 * transport) and resend the same frames; a batch the gateway rejects outright (resending it unchanged
 * cannot succeed: not decodable, refused for good by the bus) is moved out of the way into the dead-letter
 * directory `<spool dir>/rejected/` (one file per batch, see `writeDeadLetter`), counted and logged, and the
 * rest of the spool goes on; auth / unknown-host rejections come back from the transport as retryable with
 * a long delay, so those frames are kept until the operator fixes the token.
 */
import { WattsplitError, failed, type ITelemetryFrame, type Logger, type TransportResult, decodeFrame } from '@wattsplit/wire';
import { closeSync, fsyncSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { FrameSpool, type FrameSpoolOptions, type SpoolMetrics, type SpoolRecord } from './frame-spool.js';
import type { EncodedFrameBatch, FrameBatchTransport } from './grpc-ingest-client.js';
import { encodeTelemetryFrame } from './telemetry-frame-encoder.js';

export interface BatchingOptions {
  /** Frames per batch at most. Default 64. */
  maxFrames?: number;
  /** Encoded bytes per batch at most (one oversized frame still goes alone). Default 1 MiB. */
  maxBytes?: number;
  /** How long to wait for more frames before sending a partial batch. Default 0 (send at once). */
  lingerMs?: number;
  /** A single frame larger than this is never sent (kept in rejected/). Default 8 MiB − 64 KiB: the gateway's default --max-batch-bytes, less the batch's own fields. */
  maxFrameBytes?: number;
}

export interface SpoolingSenderOptions {
  spool: Omit<FrameSpoolOptions, 'logger'>;
  transport: FrameBatchTransport;
  batching?: BatchingOptions;
  logger: Logger;
}

export interface SenderMetrics extends SpoolMetrics {
  sentBatches: number;
  sentFrames: number;
  retries: number;
  rejectedBatches: number;
  rejectedFrames: number;
  lastError: string | undefined;
}

export class SpoolingSender {
  readonly spool: FrameSpool;
  private readonly transport: FrameBatchTransport;
  private readonly maxFrames: number;
  private readonly maxBytes: number;
  private readonly maxFrameBytes: number;
  private readonly lingerMs: number;
  private readonly log: Logger;
  private batchId = 0;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private sleepTimer: NodeJS.Timeout | undefined;
  private syncTimer: NodeJS.Timeout | undefined;
  private closing = false;
  private readonly drainWaiters: (() => void)[] = [];
  private readonly m = { sentBatches: 0, sentFrames: 0, retries: 0, rejectedBatches: 0, rejectedFrames: 0, lastError: undefined as string | undefined };
  /** When sends began to fail (the first retryable result since the last sent batch): the outage's length, said when it ends. */
  private failingSinceMs: number | undefined;

  constructor(opts: SpoolingSenderOptions) {
    this.log = opts.logger.child({ component: 'spooling-sender' });
    this.spool = FrameSpool.open({ ...opts.spool, logger: opts.logger });
    this.transport = opts.transport;
    this.maxFrames = opts.batching?.maxFrames ?? 64;
    this.maxBytes = opts.batching?.maxBytes ?? 1024 * 1024;
    this.maxFrameBytes = opts.batching?.maxFrameBytes ?? 8 * 1024 * 1024 - 64 * 1024;
    this.lingerMs = opts.batching?.lingerMs ?? 0;
    if (!(this.maxFrames >= 1)) throw new WattsplitError('CONFIG_INVALID', `batching.maxFrames=${this.maxFrames} must be ≥ 1`, { details: { field: 'batching.maxFrames', value: this.maxFrames } });
  }

  /** Starts the sender loop (replaying what the spool kept from before). */
  start(): void {
    this.loop ??= this.run();
  }

  /** Spools one frame durably and wakes the sender. Throws only if the disk write fails. */
  enqueue(frame: ITelemetryFrame): void {
    if (this.closing) throw new WattsplitError('TRANSPORT_UNAVAILABLE', 'sender closed: frame not spooled');
    this.spool.append(encodeTelemetryFrame(frame));
    this.scheduleSync();
    this.poke();
  }

  /** fsyncs the spool's unacked records once they are syncAfterMs old (a timer, unref'd: it never keeps the process up). */
  private scheduleSync(): void {
    if (this.syncTimer) return;
    const due = this.spool.syncDueInMs();
    if (due === undefined) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      if (this.spool.syncDueInMs() === 0) {
        try {
          this.spool.sync();
        } catch (e) {
          this.log.error({ code: 'SPOOL_FULL', err: (e as Error).message }, `spool fsync failed: ${(e as Error).message}`);
        }
      }
      this.scheduleSync();
    }, due);
    this.syncTimer.unref();
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private idle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = () => {
        if (this.sleepTimer) clearTimeout(this.sleepTimer);
        this.sleepTimer = undefined;
        resolve();
      };
      if (Number.isFinite(ms)) this.sleepTimer = setTimeout(() => this.poke(), ms);
    });
  }

  private async run(): Promise<void> {
    while (!this.closing) {
      let recs = this.spool.peek(this.maxFrames, this.maxBytes);
      if (recs.length === 0) {
        for (const d of this.drainWaiters.splice(0)) d();
        await this.idle(Infinity);
        continue;
      }
      if (recs.length < this.maxFrames && this.lingerMs > 0) {
        await this.idle(this.lingerMs);
        if (this.closing) break;
        recs = this.spool.peek(this.maxFrames, this.maxBytes);
      }
      const last = recs[recs.length - 1];
      if (!last) continue;
      const batch: EncodedFrameBatch = { batchId: ++this.batchId, encodedFrames: recs.map((r) => r.payload) };
      // A frame alone larger than a batch may be (the gateway's --max-batch-bytes) would be refused by
      // gRPC itself, before the gateway sees it, as a broken stream: retried forever. It goes to the
      // dead-letter directory at once; the frames after it flow.
      const oversize = recs.length === 1 && last.payload.length > this.maxFrameBytes;
      const res: TransportResult = oversize
        ? failed(new WattsplitError('TRANSPORT_REJECTED', `frame seq ${seqOf(last)} is ${last.payload.length} bytes, more than the ${this.maxFrameBytes} a batch may have`, { details: { bytes: last.payload.length, max: this.maxFrameBytes } }))
        : await this.transport.send(batch);
      switch (res.kind) {
        case 'ok':
          this.spool.ack(last.index);
          this.m.sentBatches++;
          this.m.sentFrames += recs.length;
          if (this.failingSinceMs !== undefined) {
            // After sends that failed and were retried (not after a batch the gateway rejected for good: it was
            // reachable then, and that batch is in the dead-letter directory, logged as such): say what the outage
            // cost and where the backlog stands (an audit read "replaying" next to pending 0: the whole backlog had
            // gone in this one batch).
            const pending = this.spool.metrics().pendingFrames;
            const downS = Math.round((Date.now() - this.failingSinceMs) / 1000);
            this.log.info(
              { downS, sentFrames: recs.length, pending },
              `gateway reachable again after ${downS} s: ${recs.length} spooled frames sent in order${pending > 0 ? `, ${pending} more to send` : ', the spool is empty'}`,
            );
          }
          this.m.lastError = undefined;
          this.failingSinceMs = undefined;
          break;
        case 'retryable':
          this.m.retries++;
          this.failingSinceMs ??= Date.now();
          if (this.m.lastError !== res.error.message) {
            const needsOperator = res.error.code === 'FRAME_AUTH_FAILED' || res.error.code === 'FRAME_UNKNOWN_HOST';
            const fields = { code: res.error.code, afterMs: res.afterMs, pending: this.spool.metrics().pendingFrames };
            if (needsOperator) this.log.error(fields, `send failed, frames stay spooled: ${res.error.message} (fix the host token / gateway host list; frames are kept and retried)`);
            else this.log.warn(fields, `send failed, frames stay spooled: ${res.error.message}`);
          }
          this.m.lastError = res.error.message;
          {
            // a poke from enqueue must not shorten the back-off: wait it out
            const until = Date.now() + res.afterMs;
            while (!this.closing && Date.now() < until) await this.idle(until - Date.now());
          }
          break;
        case 'failed': {
          this.m.rejectedBatches++;
          this.m.rejectedFrames += recs.length;
          this.m.lastError = res.error.message;
          let file: string;
          try {
            file = writeDeadLetter(this.spool.dir, recs, res.error);
          } catch (e) {
            // Never forget a batch that was not kept: leave it spooled and try again later.
            this.log.error({ code: 'SPOOL_FULL', err: (e as Error).message }, `batch rejected by the gateway (${res.error.message}) and its dead-letter file cannot be written, kept in the spool: ${(e as Error).message}`);
            const until = Date.now() + 5_000;
            while (!this.closing && Date.now() < until) await this.idle(until - Date.now());
            break;
          }
          this.log.error({ code: res.error.code, frames: recs.length, firstSeq: seqOf(recs[0]), lastSeq: seqOf(last), file }, `batch rejected by the gateway, kept in ${file} (resending it unchanged cannot succeed): ${res.error.message}`);
          this.spool.ack(last.index);
          break;
        }
      }
    }
  }

  /** Resolves when everything spooled so far was acked, or after `timeoutMs` (false then). */
  drain(timeoutMs = 30_000): Promise<boolean> {
    if (this.spool.metrics().pendingFrames === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        const i = this.drainWaiters.indexOf(ok);
        if (i >= 0) this.drainWaiters.splice(i, 1);
        resolve(false);
      }, timeoutMs);
      const ok = () => {
        clearTimeout(t);
        resolve(true);
      };
      this.drainWaiters.push(ok);
      this.poke();
    });
  }

  /** seq of the newest frame in the spool (0 when empty): a restarted agent continues after it. */
  lastSpooledSeq(): number {
    const p = this.spool.lastRecord();
    if (!p) return 0;
    try {
      return Number(decodeFrame(p, 'last spool record').seq ?? 0);
    } catch {
      return 0;
    }
  }

  metrics(): SenderMetrics {
    return { ...this.spool.metrics(), ...this.m };
  }

  /** Stops the loop after the batch in flight, closes the transport and the spool. Pending frames stay on disk. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.syncTimer) clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
    this.poke();
    await this.transport.close();
    await this.loop;
    this.spool.close();
  }
}

/** The seq of a spooled frame, for log lines (decoded only there). */
function seqOf(r: SpoolRecord | undefined): string {
  if (!r) return '?';
  try {
    return String(decodeFrame(r.payload, `spool record ${r.index}`).seq ?? '?');
  } catch {
    return '?';
  }
}

/**
 * Writes a batch the gateway refused for good to `<spoolDir>/rejected/<ms>-<first index>.frames`, fsync'd,
 * before the spool forgets it: a JSON line `{code, message, frames}` then, per frame, u32 LE length and the
 * frame's protobuf bytes exactly as spooled. Returns the file's path.
 */
export function writeDeadLetter(spoolDir: string, recs: readonly SpoolRecord[], error: WattsplitError): string {
  const dir = join(spoolDir, 'rejected');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${Date.now()}-${String(recs[0]?.index ?? 0).padStart(16, '0')}.frames`);
  const fd = openSync(file, 'wx');
  try {
    writeSync(fd, JSON.stringify({ code: error.code, message: error.message, frames: recs.length }) + '\n');
    for (const r of recs) {
      const len = Buffer.alloc(4);
      len.writeUInt32LE(r.payload.length);
      writeSync(fd, len);
      writeSync(fd, r.payload);
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return file;
}

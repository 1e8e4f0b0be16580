/**
 * The producer half of a Kafka bus as a wrapper around the client-specific send: the transport only
 * sends (and throws on failure); this wrapper owns open/closed state, back-pressure (a cap on messages
 * awaiting broker acks, beyond which send() answers retryable at once), the ack timeout, and turning a
 * client's throw into a TransportResult with one log line. Both KafkaBus (kafkajs) and
 * PlatformaticKafkaBus use it, so the two clients behave the same towards the gateway.
 */
import { OK, RepeatGate, WattsplitError, failed, markReported, retryable, type BusMessageIn, type BusProducer, type Logger, type TransportResult } from '@wattsplit/wire';
import { sendFailure } from './kafka-errors.js';

/** Counts messages between send() and the broker's ack; a send that would exceed the cap is refused. */
export class PendingGauge {
  private n = 0;
  constructor(private readonly cap: number) {}
  tryAdd(k: number): boolean {
    if (this.n > 0 && this.n + k > this.cap) return false;
    this.n += k;
    return true;
  }
  done(k: number): void {
    this.n -= k;
  }
  get value(): number {
    return this.n;
  }
}

/** Races a send against a timeout; the send keeps running (a resend's duplicates are dropped downstream by host + seq). */
export async function withSendTimeout(p: Promise<TransportResult>, ms: number, where: string): Promise<TransportResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<TransportResult>((resolve) => {
    timer = setTimeout(() => resolve(retryable(new WattsplitError('TRANSPORT_TIMEOUT', `${where}: no broker ack within ${ms} ms`, { retriable: true, details: { where, timeoutMs: ms } }), 1_000)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export interface BoundedProducerOptions {
  /** Sends to the broker and resolves when it acked; throws the client's error otherwise. */
  send(topic: string, messages: readonly BusMessageIn[]): Promise<void>;
  /** Disconnects the client. */
  close(): Promise<void>;
  maxPendingMessages: number;
  sendTimeoutMs: number;
  logger: Logger;
  /** Called once when the producer is closed (the bus forgets it). */
  onClose?: () => void;
  /** Retriable send failures: one warning per topic and error code per this many ms (default 30 000), the rest at debug. */
  repeatWindowMs?: number;
}

export function boundedProducer(o: BoundedProducerOptions): BusProducer {
  const gauge = new PendingGauge(o.maxPendingMessages);
  const repeats = new RepeatGate(o.repeatWindowMs ?? 30_000);
  let open = true;
  const sendOnce = async (topic: string, messages: readonly BusMessageIn[]): Promise<TransportResult> => {
    try {
      await o.send(topic, messages);
      return OK;
    } catch (e) {
      const r = sendFailure(e, `kafka send to ${topic} (${messages.length} messages)`);
      if (r.kind === 'ok') return r;
      const fields = { topic, messages: messages.length, code: r.error.code, retriable: r.kind === 'retryable' };
      // A broker that is down fails every send (about one a second from a busy gateway): one warning per topic and
      // error code per 30 s, the rest at debug and counted in the next warning. A refusal for good is always written.
      if (r.kind === 'retryable') repeats.write(o.logger, 'warn', `${topic}\u0000${r.error.code}`, fields, r.error.message);
      else o.logger.warn(fields, r.error.message);
      // logged here: a caller that passes it on (the collector's pipeline, the bus) says so at debug (wasReported)
      markReported(r.error);
      return r;
    }
  };
  return {
    send: async (topic, messages) => {
      if (!open) return failed(new WattsplitError('TRANSPORT_UNAVAILABLE', `producer is closed (send to ${topic})`));
      if (messages.length === 0) return OK;
      if (!gauge.tryAdd(messages.length)) {
        return retryable(new WattsplitError('TRANSPORT_BACKPRESSURE', `kafka producer has ${gauge.value} messages awaiting broker acks (max ${o.maxPendingMessages})`, { retriable: true, details: { pending: gauge.value } }), 200);
      }
      try {
        return await withSendTimeout(sendOnce(topic, messages), o.sendTimeoutMs, `kafka send to ${topic}`);
      } finally {
        gauge.done(messages.length);
      }
    },
    close: async () => {
      if (!open) return;
      open = false;
      o.onClose?.();
      await o.close();
    },
  };
}

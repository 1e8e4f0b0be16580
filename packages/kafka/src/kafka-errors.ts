/**
 * Turns what a Kafka client throws into a TransportResult. Both clients flag their errors: kafkajs
 * `retriable` (KafkaJSProtocolError, KafkaJSConnectionError...) and wraps the last one in
 * `originalError` when its retrier gives up; @platformatic/kafka sets `canRetry` and nests `cause` or
 * `errors` (MultipleErrors). A broker that is down, slow or electing a leader is retryable; a message
 * too large, an unknown/invalid topic, an authorisation failure or a bad configuration is not.
 */
import { WattsplitError, failed, retryable, type TransportResult } from '@wattsplit/wire';

interface ErrorLike {
  name?: unknown;
  message?: unknown;
  code?: unknown;
  type?: unknown;
  retriable?: unknown;
  canRetry?: unknown;
  originalError?: unknown;
  cause?: unknown;
  errors?: unknown;
}

/** Kafka protocol error names that no retry can fix (Kafka protocol guide, "Error Codes"). */
const FATAL_TYPES = new Set([
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_TOPIC_EXCEPTION',
  'TOPIC_AUTHORIZATION_FAILED',
  'CLUSTER_AUTHORIZATION_FAILED',
  'GROUP_AUTHORIZATION_FAILED',
  'SASL_AUTHENTICATION_FAILED',
  'UNSUPPORTED_SASL_MECHANISM',
  'INVALID_REQUIRED_ACKS',
  'UNSUPPORTED_VERSION',
  'INVALID_RECORD',
  'UNSUPPORTED_COMPRESSION_TYPE',
]);

function chain(e: unknown): ErrorLike[] {
  const out: ErrorLike[] = [];
  const seen = new Set<unknown>();
  const walk = (x: unknown, depth: number) => {
    if (depth > 8 || x === null || typeof x !== 'object' || seen.has(x)) return;
    seen.add(x);
    const el = x as ErrorLike;
    out.push(el);
    walk(el.originalError, depth + 1);
    walk(el.cause, depth + 1);
    if (Array.isArray(el.errors)) for (const inner of el.errors) walk(inner, depth + 1);
  };
  walk(e, 0);
  return out;
}

/** True when the error (or what it wraps) is one that retrying cannot fix. */
export function isFatalKafkaError(e: unknown): boolean {
  for (const el of chain(e)) {
    if (typeof el.type === 'string' && FATAL_TYPES.has(el.type)) return true;
    if (typeof el.code === 'string' && FATAL_TYPES.has(el.code)) return true;
    if (el.name === 'KafkaJSProtocolError' && el.retriable === false) return true;
    if (el.name === 'KafkaJSInvalidVarIntError' || el.name === 'KafkaJSInvalidLongError') return true;
    if (el.code === 'PLT_KFK_USER' || el.code === 'PLT_KFK_AUTHENTICATION' || el.code === 'PLT_KFK_UNSUPPORTED_COMPRESSION') return true;
    if (el.code === 'PLT_KFK_PROTOCOL' && el.canRetry === false) return true;
  }
  return false;
}

function describe(e: unknown): string {
  const parts: string[] = [];
  for (const el of chain(e)) {
    const m = typeof el.message === 'string' ? el.message : '';
    if (m && !parts.includes(m)) parts.push(m);
    if (parts.length >= 3) break;
  }
  return parts.join(': ') || String(e);
}

/** The result of a failed send: `failed` for fatal errors, else `retryable` after `afterMs`. */
export function sendFailure(e: unknown, where: string, afterMs = 1_000): TransportResult {
  const fatal = isFatalKafkaError(e);
  const err = new WattsplitError(fatal ? 'TRANSPORT_REJECTED' : 'TRANSPORT_UNAVAILABLE', `${where}: ${describe(e)}`, {
    retriable: !fatal,
    cause: e,
    details: { where },
  });
  return fatal ? failed(err) : retryable(err, afterMs);
}

/** Normalises anything a Kafka client threw into a WattsplitError (retriable unless fatal). */
export function kafkaError(e: unknown, where: string): WattsplitError {
  if (e instanceof WattsplitError) return e;
  const fatal = isFatalKafkaError(e);
  return new WattsplitError(fatal ? 'TRANSPORT_REJECTED' : 'TRANSPORT_UNAVAILABLE', `${where}: ${describe(e)}`, { retriable: !fatal, cause: e, details: { where } });
}

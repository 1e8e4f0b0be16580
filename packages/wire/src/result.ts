/**
 * What every transport (gRPC client, Kafka producer, store writer) returns instead of throwing:
 * retry, batching and back-pressure are wrappers around a transport, not code inside it.
 */
import type { WattsplitError } from './errors.js';

export type TransportResult =
  | { readonly kind: 'ok' }
  | { readonly kind: 'failed'; readonly error: WattsplitError }
  | { readonly kind: 'retryable'; readonly afterMs: number; readonly error: WattsplitError };

export const OK: TransportResult = Object.freeze({ kind: 'ok' });

export function failed(error: WattsplitError): TransportResult {
  return { kind: 'failed', error };
}

export function retryable(error: WattsplitError, afterMs: number): TransportResult {
  return { kind: 'retryable', error, afterMs };
}

/** Exponential back-off with full jitter, capped. `attempt` starts at 0. */
export function backoffMs(attempt: number, baseMs = 100, capMs = 30_000, random: () => number = Math.random): number {
  const exp = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(exp / 2 + (random() * exp) / 2);
}

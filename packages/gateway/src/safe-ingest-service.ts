/**
 * The TelemetryIngest service definition with a deserializer that never throws. grpc-js would answer a
 * request it cannot deserialize by ending the whole call with `INTERNAL: Error deserializing request`,
 * which tells the agent nothing and drops the batches queued behind it. Here a bad message becomes an
 * `undecodable` item that the stream answers, in order, with a REJECTED ack naming the problem; the
 * stream and the server go on.
 */
import type { ServiceDefinition } from '@grpc/grpc-js';
import { TELEMETRY_INGEST_SERVICE, WattsplitError, decodeBatch, type FrameBatch, type IBatchAck } from '@wattsplit/wire';

export type IncomingItem =
  | { readonly kind: 'batch'; readonly batch: FrameBatch; readonly bytes: number }
  | { readonly kind: 'undecodable'; readonly error: WattsplitError; readonly bytes: number };

export function deserializeBatch(buf: Buffer): IncomingItem {
  try {
    return { kind: 'batch', batch: decodeBatch(buf, 'ingest stream message'), bytes: buf.length };
  } catch (e) {
    const error = e instanceof WattsplitError ? e : new WattsplitError('FRAME_DECODE_FAILED', `ingest stream message: ${String(e)}`, { cause: e });
    return { kind: 'undecodable', error, bytes: buf.length };
  }
}

const ingest = TELEMETRY_INGEST_SERVICE.ingest;

export const SAFE_TELEMETRY_INGEST_SERVICE: ServiceDefinition = {
  ingest: {
    path: ingest.path,
    requestStream: true,
    responseStream: true,
    requestSerialize: (_: IncomingItem): Buffer => {
      throw new WattsplitError('INTERNAL', 'SAFE_TELEMETRY_INGEST_SERVICE is server-side only');
    },
    requestDeserialize: deserializeBatch,
    responseSerialize: (a: IBatchAck): Buffer => ingest.responseSerialize(a),
    responseDeserialize: (b: Buffer): IBatchAck => ingest.responseDeserialize(b),
    originalName: ingest.originalName,
  },
};

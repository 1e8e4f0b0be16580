/**
 * The TelemetryIngest service definition with a deserializer that never throws. grpc-js would answer a
 * request it cannot deserialize by ending the whole call with `INTERNAL: Error deserializing request`,
 * which tells the agent nothing and drops the batches queued behind it. Here a bad message becomes an
 * `undecodable` item that the stream answers, in order, with a REJECTED ack naming the problem; the
 * stream and the server go on.
 */
import type { ServiceDefinition } from '@grpc/grpc-js';
import { TELEMETRY_INGEST_SERVICE, WattsplitError, decodeBatch, scanFrameBatch, type FrameBatch, type FrameBatchView, type IBatchAck } from '@wattsplit/wire';

export type IncomingItem =
  | {
      readonly kind: 'batch';
      /** wire's scanFrameBatch view when the scan took the bytes, else the protobufjs decode (see deserializeBatch). */
      readonly batch: FrameBatch | FrameBatchView;
      readonly bytes: number;
      /** Each frame's bytes exactly as the agent encoded them (unknown newer fields included), or undefined if they could not be located. */
      readonly frameBytes: readonly Uint8Array[] | undefined;
    }
  | { readonly kind: 'undecodable'; readonly error: WattsplitError; readonly bytes: number };

/**
 * Byte ranges of the `frames` entries (field 2, length-delimited) of an encoded FrameBatch, in order.
 * Protobuf encoding (protobuf.dev/programming-guides/encoding): each field is a varint key
 * (field_number << 3 | wire_type) followed by a varint (0), 8 bytes (1), a varint length and that many
 * bytes (2) or 4 bytes (5). Only called on bytes that already decoded as a FrameBatch.
 */
export function frameByteRanges(buf: Uint8Array): [number, number][] | undefined {
  const out: [number, number][] = [];
  let i = 0;
  const varint = (): number => {
    let v = 0;
    let mul = 1;
    for (let k = 0; k < 10; k++) {
      if (i >= buf.length) throw new RangeError('truncated varint');
      const b = buf[i++]!;
      v += (b & 0x7f) * mul;
      if (b < 0x80) return v;
      mul *= 128;
    }
    throw new RangeError('varint too long');
  };
  try {
    while (i < buf.length) {
      const key = varint();
      const field = Math.floor(key / 8);
      switch (key % 8) {
        case 0:
          varint();
          break;
        case 1:
          i += 8;
          break;
        case 2: {
          const len = varint();
          if (field === 2) out.push([i, i + len]);
          i += len;
          break;
        }
        case 5:
          i += 4;
          break;
        default:
          return undefined;
      }
    }
    return i === buf.length ? out : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The gateway's deserializer. Most batches are taken by wire's one-pass `scanFrameBatch` (only what the
 * gateway reads, every frame already checked as validateFrame checks it); a batch the scan declines (bad
 * bytes, an invalid frame, an encoding protobufjs reads leniently) is decoded by protobufjs as before, so
 * what is accepted, and every rejection's code and message, are the full decoder's.
 */
export function deserializeBatch(buf: Buffer): IncomingItem {
  const view = scanFrameBatch(buf);
  if (view) return { kind: 'batch', batch: view, bytes: buf.length, frameBytes: view.frameBytes };
  return decodeBatchItem(buf);
}

/** The full path: protobufjs's decodeBatch, each frame's bytes located by frameByteRanges. Never throws. */
export function decodeBatchItem(buf: Buffer): IncomingItem {
  try {
    const batch = decodeBatch(buf, 'ingest stream message');
    const ranges = frameByteRanges(buf);
    const frameBytes = ranges && ranges.length === batch.frames.length ? ranges.map(([a, b]) => buf.slice(a, b)) : undefined;
    return { kind: 'batch', batch, bytes: buf.length, frameBytes };
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

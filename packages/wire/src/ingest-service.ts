/**
 * The gRPC service definition of wattsplit.telemetry.v1.TelemetryIngest, as a plain object that
 * @grpc/grpc-js accepts (`server.addService(TELEMETRY_INGEST_SERVICE, impl)`,
 * `makeGenericClientConstructor(TELEMETRY_INGEST_SERVICE, 'TelemetryIngest')`). Serialisation uses the
 * generated protobufjs code, so agent and gateway cannot disagree on the wire.
 */
import { BatchAck, FrameBatch, type IBatchAck, type IFrameBatch } from './telemetry.js';

export const INGEST_METHOD_PATH = '/wattsplit.telemetry.v1.TelemetryIngest/Ingest';

export const TELEMETRY_INGEST_SERVICE = {
  ingest: {
    path: INGEST_METHOD_PATH,
    requestStream: true,
    responseStream: true,
    requestSerialize: (b: IFrameBatch): Buffer => Buffer.from(FrameBatch.encode(b).finish()),
    requestDeserialize: (buf: Buffer): FrameBatch => FrameBatch.decode(buf),
    responseSerialize: (a: IBatchAck): Buffer => Buffer.from(BatchAck.encode(a).finish()),
    responseDeserialize: (buf: Buffer): BatchAck => BatchAck.decode(buf),
    originalName: 'Ingest',
  },
} as const;

/**
 * The standard gRPC health service, `grpc.health.v1.Health/Check` (grpc/grpc-proto
 * grpc/health/v1/health.proto), hand-encoded: its two messages are one field each.
 *
 *   message HealthCheckRequest { string service = 1; }
 *   message HealthCheckResponse { enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
 *                                 ServingStatus status = 1; }
 *
 * Protobuf encoding (protobuf.dev/programming-guides/encoding): field 1 of a string is key 0x0a, a varint
 * length, the UTF-8 bytes; field 1 of an enum is key 0x08 and a varint.
 */
import type { ServiceDefinition } from '@grpc/grpc-js';

export const ServingStatus = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;
export type ServingStatus = (typeof ServingStatus)[keyof typeof ServingStatus];

/** The `service` field of a HealthCheckRequest ('' = the server as a whole); unknown fields are skipped. */
export function decodeHealthCheckRequest(buf: Buffer): string {
  let i = 0;
  const varint = (): number => {
    let v = 0;
    let mul = 1;
    for (let k = 0; k < 10 && i < buf.length; k++) {
      const b = buf[i++]!;
      v += (b & 0x7f) * mul;
      if (b < 0x80) return v;
      mul *= 128;
    }
    throw new RangeError('bad varint');
  };
  let service = '';
  while (i < buf.length) {
    const key = varint();
    const wire = key % 8;
    if (wire === 0) varint();
    else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else if (wire === 2) {
      const len = varint();
      if (key === 0x0a) service = buf.subarray(i, i + len).toString('utf8');
      i += len;
    } else throw new RangeError(`wire type ${wire}`);
  }
  return service;
}

export function healthCheckResponse(status: ServingStatus): Buffer {
  return status === ServingStatus.UNKNOWN ? Buffer.alloc(0) : Buffer.from([0x08, status]);
}

export function decodeHealthCheckResponse(buf: Buffer): ServingStatus {
  return buf.length >= 2 && buf[0] === 0x08 ? (buf[1] as ServingStatus) : ServingStatus.UNKNOWN;
}

export interface HealthCheckRequest {
  service: string;
}

export const HEALTH_SERVICE: ServiceDefinition = {
  check: {
    path: '/grpc.health.v1.Health/Check',
    requestStream: false,
    responseStream: false,
    requestSerialize: (req: HealthCheckRequest): Buffer => {
      const b = Buffer.from(req.service, 'utf8');
      if (b.length > 127) throw new RangeError('service name longer than 127 bytes');
      return b.length ? Buffer.concat([Buffer.from([0x0a, b.length]), b]) : Buffer.alloc(0);
    },
    // An object, never a falsy value: grpc-js takes a falsy request for "no request message".
    requestDeserialize: (b: Buffer): HealthCheckRequest => {
      try {
        return { service: decodeHealthCheckRequest(b) };
      } catch {
        return { service: '\0invalid' };
      }
    },
    responseSerialize: (b: Buffer): Buffer => b,
    responseDeserialize: (b: Buffer): Buffer => b,
  },
};

/**
 * 64-bit varint readers for protobufjs's Reader that return plain numbers without allocating.
 *
 * Protocol Buffers encoding (https://protobuf.dev/programming-guides/encoding/#varints): "Each byte in the
 * varint has a continuation bit that indicates if the byte that follows it is part of the varint. This is
 * the most significant bit (MSB) of the byte ... The lower 7 bits of each byte are used to store the
 * two's complement representation of the number in groups of 7 bits, least significant group first."
 * A 64-bit value takes at most 10 bytes; int64 negatives are their 64-bit two's complement (10 bytes).
 *
 * protobufjs reads every uint64/int64 through a `new LongBits(lo, hi)` and converts it with
 * `LongBits.toNumber` (util.Long is off: see telemetry.ts). A frame carries ~15 such fields per VM, so
 * that is one short-lived object per field on the collector's and the gateway's hot path (garbage
 * collection was a quarter of the collector's thread). These read the same bytes into two local 32-bit
 * halves and return exactly what `toNumber` returns (`lo + hi * 2^32`, negated two's complement for a
 * signed value with the top bit set) for every well-formed varint. A varint cut short by the end of its
 * message is a RangeError here wherever it is cut (protobufjs returned a value for some such cuts in its
 * last four bytes and read past the message's end in others); decodeFrame reports it as FRAME_DECODE_FAILED.
 */
import protobuf from 'protobufjs/minimal.js';

type ReaderState = Pick<protobuf.Reader, 'buf' | 'pos' | 'len'>;

const TWO_32 = 4294967296;

function outOfRange(r: ReaderState): RangeError {
  return new RangeError(`index out of range: ${r.pos} + 1 > ${r.len}`);
}

/**
 * Reads one varint into `halves` ([lo, hi] as unsigned 32-bit values), advancing `r.pos`. Bits beyond
 * the 64th (a malformed 10th byte) are dropped, as protobufjs drops them.
 */
function readHalves(r: ReaderState, halves: Uint32Array): void {
  const buf = r.buf;
  const len = r.len;
  let pos = r.pos;
  let lo = 0;
  let hi = 0;
  let b: number;
  // bytes 1-4: bits 0-27 of lo
  for (let shift = 0; shift < 28; shift += 7) {
    if (pos >= len) {
      r.pos = pos;
      throw outOfRange(r);
    }
    b = buf[pos++]!;
    lo |= (b & 127) << shift;
    if (b < 128) {
      r.pos = pos;
      halves[0] = lo;
      halves[1] = 0;
      return;
    }
  }
  // byte 5: bits 28-31 of lo, bits 0-2 of hi
  if (pos >= len) {
    r.pos = pos;
    throw outOfRange(r);
  }
  b = buf[pos++]!;
  lo |= (b & 127) << 28;
  hi = (b & 127) >> 4;
  if (b >= 128) {
    // bytes 6-10: bits 3-31 of hi
    for (let shift = 3; ; shift += 7) {
      if (shift > 31) {
        r.pos = pos;
        throw new Error('invalid varint encoding');
      }
      if (pos >= len) {
        r.pos = pos;
        throw outOfRange(r);
      }
      b = buf[pos++]!;
      hi |= (b & 127) << shift;
      if (b < 128) break;
    }
  }
  r.pos = pos;
  halves[0] = lo;
  halves[1] = hi;
}

const scratch = new Uint32Array(2);

/** uint64 as a number: lo + hi·2^32 (exact below 2^53). */
export function readUint64(this: ReaderState): number {
  readHalves(this, scratch);
  return scratch[0]! + scratch[1]! * TWO_32;
}

/** An int64's unsigned 32-bit halves as a number: two's complement, negative when the top bit is set (exact within ±2^53). */
export function int64FromHalves(lo: number, hi: number): number {
  if (hi >>> 31) {
    const nlo = (~lo + 1) >>> 0;
    let nhi = ~hi >>> 0;
    if (!nlo) nhi = (nhi + 1) >>> 0;
    return -(nlo + nhi * TWO_32);
  }
  return lo + hi * TWO_32;
}

/** int64 as a number: two's complement, negative when the top bit is set (exact within ±2^53). */
export function readInt64(this: ReaderState): number {
  readHalves(this, scratch);
  return int64FromHalves(scratch[0]!, scratch[1]!);
}

/**
 * Installs the readers on protobufjs's Reader (BufferReader inherits them). Call after
 * `protobuf.configure()`, which would put protobufjs's own back.
 */
export function installVarint64Readers(): void {
  // protobufjs types these as Long; with util.Long off they return numbers (telemetry.ts), as these do
  const proto = protobuf.Reader.prototype as unknown as { uint64: () => number; int64: () => number };
  proto.uint64 = readUint64;
  proto.int64 = readInt64;
}

/**
 * A wattsplit.telemetry.v1.FrameBatch built from frames that are already encoded (as the spool holds them),
 * so a batch is never decoded and re-encoded on its way out.
 *
 * proto/wattsplit/telemetry/v1: message FrameBatch { uint64 batch_id = 1; repeated TelemetryFrame frames = 2;
 * string token = 3; }. Protobuf encoding (protobuf.dev/programming-guides/encoding): each field is a varint key
 * (field_number << 3 | wire_type), then a varint for wire type 0 (batch_id), or a varint length and the bytes
 * for wire type 2 (an embedded message's encoding, a string's UTF-8). Default values (0, "") are left out.
 */

const KEY_BATCH_ID = (1 << 3) | 0;
const KEY_FRAME = (2 << 3) | 2;
const KEY_TOKEN = (3 << 3) | 2;

function varintSize(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function writeVarint(buf: Buffer, at: number, v: number): number {
  while (v >= 0x80) {
    buf[at++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[at++] = v;
  return at;
}

/** The FrameBatch's bytes: `encodedFrames` are TelemetryFrame encodings, copied as they are. `batchId` ≤ 2^53. */
export function encodeFrameBatchBytes(batchId: number, encodedFrames: readonly Uint8Array[], token = ''): Buffer {
  if (!Number.isSafeInteger(batchId) || batchId < 0) throw new RangeError(`batchId=${batchId} must be a non-negative safe integer`);
  const tok = token ? Buffer.from(token, 'utf8') : undefined;
  let size = batchId > 0 ? 1 + varintSize(batchId) : 0;
  for (const f of encodedFrames) size += 1 + varintSize(f.length) + f.length;
  if (tok) size += 1 + varintSize(tok.length) + tok.length;
  const buf = Buffer.allocUnsafe(size);
  let at = 0;
  if (batchId > 0) {
    buf[at++] = KEY_BATCH_ID;
    at = writeVarint(buf, at, batchId);
  }
  for (const f of encodedFrames) {
    buf[at++] = KEY_FRAME;
    at = writeVarint(buf, at, f.length);
    buf.set(f, at);
    at += f.length;
  }
  if (tok) {
    buf[at++] = KEY_TOKEN;
    at = writeVarint(buf, at, tok.length);
    tok.copy(buf, at);
    at += tok.length;
  }
  return buf;
}

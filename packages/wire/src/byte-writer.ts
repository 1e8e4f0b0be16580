/**
 * A growable byte buffer for hand-written encoders (RowBinary rows, AttributionBatch records): callers
 * `ensure` room, then write into `buf` at `off` themselves. `bytes()` is a view, not a copy.
 */
export class ByteWriter {
  buf: Buffer;
  off = 0;
  constructor(size = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(Math.max(16, size));
  }
  /** Room for n more bytes (grows by doubling, copying what was written). */
  ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    const b = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.off + n));
    this.buf.copy(b, 0, 0, this.off);
    this.buf = b;
  }
  /** LEB128 unsigned varint of a non-negative integer up to 2^53 (ensures its own room). */
  varUInt(n: number): void {
    this.ensure(10);
    const b = this.buf;
    if (n < 0x80000000) {
      while (n > 0x7f) {
        b[this.off++] = (n & 0x7f) | 0x80;
        n >>>= 7;
      }
    } else {
      while (n >= 0x80) {
        b[this.off++] = (n % 128) | 0x80;
        n = Math.floor(n / 128);
      }
    }
    b[this.off++] = n;
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.off);
  }
}

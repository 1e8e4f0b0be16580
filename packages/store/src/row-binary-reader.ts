/**
 * RowBinary decoding of query answers, for the store's bulk reads (a training's history: hundreds of
 * thousands of VM rows). Pure: no I/O. The counterpart of row-binary.ts (which encodes inserts).
 *
 * ClickHouse docs, formats/RowBinary: "Formats and parses data by row in binary format. Rows and
 * values are listed consecutively, without separators. [...] Integers use fixed-length little-endian
 * representation. [...] Float32 and Float64 use little-endian. String is represented as a varint
 * length (unsigned LEB128), followed by the bytes of the string. Array is represented as a varint
 * length (unsigned LEB128), followed by successive elements of the array." Nullable(T): one byte, 1
 * for NULL (then no value), 0 followed by the T. LowCardinality(T) is sent as T.
 *
 * RowBinary carries no column names or types (RowBinaryWithNamesAndTypes does, but ClickHouse 18.16
 * does not know it), so the reader is given the types of the SELECT's columns; callers make those
 * types certain with CAST. 64-bit integers become JS numbers (exact up to 2^53, correctly rounded above,
 * as Number() of the decimal text would be).
 */
import { WattsplitError } from '@wattsplit/wire';

/** Reads one value of a column type at the reader's offset. */
export type Get = (r: RowBinaryReader) => unknown;

const TWO32 = 4294967296;

export class RowBinaryReader {
  readonly buf: Buffer;
  off = 0;

  constructor(bytes: Uint8Array) {
    this.buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get done(): boolean {
    return this.off >= this.buf.length;
  }

  /** Throws when `n` more bytes are not there (a truncated or mistyped answer). */
  need(n: number): void {
    if (this.off + n > this.buf.length) {
      throw new WattsplitError('STORE_QUERY_FAILED', `RowBinary answer ends inside a value (offset ${this.off}, ${n} byte(s) needed, ${this.buf.length} in all): truncated, or the column types are not what the query said`, {
        details: { offset: this.off, need: n, length: this.buf.length },
      });
    }
  }

  varUInt(): number {
    let x = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      this.need(1);
      const b = this.buf[this.off++]!;
      x += (b & 0x7f) * mul;
      if (b < 0x80) return x;
      mul *= 128;
    }
    throw new WattsplitError('STORE_QUERY_FAILED', `RowBinary varint longer than 10 bytes at offset ${this.off}`, { details: { offset: this.off } });
  }

  string(): string {
    const len = this.varUInt();
    this.need(len);
    const start = this.off;
    this.off += len;
    return this.buf.toString('utf8', start, start + len);
  }

  /**
   * A string through a cache of the ones seen before in this column: ids and labels repeat on every
   * row (a host-day is ~870 000 VM rows of 50 uuids), and one shared string per value saves building
   * (and keeping) a copy per row. The cache is keyed by a hash of the bytes and checked byte for byte.
   */
  internedString(cache: Map<number, string>): string {
    const len = this.varUInt();
    this.need(len);
    const b = this.buf;
    const start = this.off;
    this.off += len;
    if (len > 64) return b.toString('utf8', start, start + len);
    let h = 2166136261 ^ len; // FNV-1a
    for (let i = start; i < start + len; i++) h = Math.imul(h ^ b[i]!, 16777619);
    const hit = cache.get(h);
    if (hit !== undefined && hit.length === len) {
      let same = true;
      for (let i = 0; i < len; i++) {
        if (hit.charCodeAt(i) !== b[start + i]) {
          same = false;
          break;
        }
      }
      if (same) return hit;
    }
    const s = b.toString('utf8', start, start + len);
    if (cache.size >= 65_536) cache.clear();
    cache.set(h, s);
    return s;
  }

  u8(): number {
    this.need(1);
    return this.buf[this.off++]!;
  }

  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16LE(this.off);
    this.off += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32LE(this.off);
    this.off += 4;
    return v;
  }

  u64(): number {
    this.need(8);
    const lo = this.buf.readUInt32LE(this.off);
    const hi = this.buf.readUInt32LE(this.off + 4);
    this.off += 8;
    return hi * TWO32 + lo; // both terms exact doubles: one rounding, the correctly rounded value
  }

  i8(): number {
    this.need(1);
    return this.buf.readInt8(this.off++);
  }

  i16(): number {
    this.need(2);
    const v = this.buf.readInt16LE(this.off);
    this.off += 2;
    return v;
  }

  i32(): number {
    this.need(4);
    const v = this.buf.readInt32LE(this.off);
    this.off += 4;
    return v;
  }

  i64(): number {
    this.need(8);
    const lo = this.buf.readUInt32LE(this.off);
    const hi = this.buf.readInt32LE(this.off + 4);
    this.off += 8;
    return hi * TWO32 + lo;
  }

  f32(): number {
    this.need(4);
    const v = this.buf.readFloatLE(this.off);
    this.off += 4;
    return v;
  }

  f64(): number {
    this.need(8);
    const v = this.buf.readDoubleLE(this.off);
    this.off += 8;
    return v;
  }
}

const SCALARS: Record<string, Get> = {
  Bool: (r) => r.u8(),
  UInt8: (r) => r.u8(),
  UInt16: (r) => r.u16(),
  UInt32: (r) => r.u32(),
  UInt64: (r) => r.u64(),
  Int8: (r) => r.i8(),
  Int16: (r) => r.i16(),
  Int32: (r) => r.i32(),
  Int64: (r) => r.i64(),
  Float32: (r) => r.f32(),
  Float64: (r) => r.f64(),
  Date: (r) => r.u16(),
  DateTime: (r) => r.u32(),
};

/**
 * The reader of one column type, or undefined when the type is not covered. Each call gives a reader
 * with its own string cache (one per column of a decode).
 */
export function getterFor(type: string): Get | undefined {
  const t = type.trim();
  if (t === 'String') {
    const cache = new Map<number, string>();
    return (r) => r.internedString(cache);
  }
  const inner = (prefix: string) => (t.startsWith(`${prefix}(`) && t.endsWith(')') ? t.slice(prefix.length + 1, -1) : undefined);
  const lc = inner('LowCardinality');
  if (lc !== undefined) return getterFor(lc);
  const nullable = inner('Nullable');
  if (nullable !== undefined) {
    const g = getterFor(nullable);
    return g && ((r) => (r.u8() === 1 ? null : g(r)));
  }
  const arr = inner('Array');
  if (arr !== undefined) {
    const g = getterFor(arr);
    if (!g) return undefined;
    // Float64 arrays are the common case (per-vCPU seconds, per-GPU readings): read them without a call per element.
    if (arr.trim() === 'Float64') {
      return (r) => {
        const n = r.varUInt();
        r.need(n * 8);
        const out = new Array<number>(n);
        for (let i = 0; i < n; i++) out[i] = r.buf.readDoubleLE(r.off + i * 8);
        r.off += n * 8;
        return out;
      };
    }
    return (r) => {
      const n = r.varUInt();
      const out = new Array<unknown>(n);
      for (let i = 0; i < n; i++) out[i] = g(r);
      return out;
    };
  }
  return SCALARS[t] ?? (/^DateTime\('[^']*'\)$/.test(t) ? SCALARS.DateTime : undefined);
}

/** The readers of these column types; STORE_INVALID_INPUT for a type the reader does not cover. */
function gettersFor(types: readonly string[]): Get[] {
  return types.map((t) => {
    const g = getterFor(t);
    if (!g) throw new WattsplitError('STORE_INVALID_INPUT', `RowBinary: column type ${JSON.stringify(t)} is not one the reader covers`, { details: { field: 'type', value: t } });
    return g;
  });
}

/**
 * Calls `each` with every row of a RowBinary answer whose columns have these types, the row an array in
 * column order that is reused for the next row (copy what is kept). Returns the number of rows. Throws
 * STORE_INVALID_INPUT for a type it does not read, STORE_QUERY_FAILED when the bytes end inside a row
 * (the answer is not what the types say).
 */
export function forEachRowBinary(bytes: Uint8Array, types: readonly string[], each: (row: readonly unknown[]) => void): number {
  const gets = gettersFor(types);
  const r = new RowBinaryReader(bytes);
  const n = gets.length;
  const row = new Array<unknown>(n);
  let rows = 0;
  while (!r.done) {
    for (let c = 0; c < n; c++) row[c] = gets[c]!(r);
    each(row);
    rows++;
  }
  return rows;
}

/** Every row of a RowBinary answer (see forEachRowBinary), each an array of its own. */
export function decodeRowBinary(bytes: Uint8Array, types: readonly string[]): unknown[][] {
  const rows: unknown[][] = [];
  forEachRowBinary(bytes, types, (row) => rows.push([...row]));
  return rows;
}

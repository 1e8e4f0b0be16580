/**
 * RowBinary encoding of the store's rows for the ClickHouse server transport. The server parses it
 * about twice as fast as JSONEachRow (no text to scan, no key names: a third of the bytes), and the
 * encoder writes into one growing Buffer instead of building a JSON string per row. Pure: no I/O.
 *
 * A RowBinary insert names its columns (`INSERT INTO t (a, b) FORMAT RowBinary`) and sends every named
 * column of every row, so a key missing from a row is refused, never defaulted silently. Types covered
 * are those of the schema (sql/): (U)Int8-64, Float32/64, String, LowCardinality(T), Nullable(T),
 * Array(T), Date and DateTime (as epoch numbers). Anything else makes `rowBinaryCodec` return undefined
 * and the transport sends that table as JSONEachRow.
 */
import { ByteWriter as Writer, WattsplitError } from '@wattsplit/wire';

/** Writes one value; false (and nothing useful written) when the value does not fit the type. */
export type Put = (w: Writer, v: unknown) => boolean;

const TWO32 = 4294967296;

/**
 * A number handed to a column putter through a slot instead of as its argument (RowProjection.put): a
 * double passed to a putter V8 did not inline is boxed into a heap number, garbage per value (≈ 330 bytes
 * per VM-sample of the projected rows, issue 15); one stored into a Float64Array is not. `slot(x)` stores x
 * and returns IN_SLOT, which the integer and float putters read back as x (every double, −0 included; a NaN
 * stays NaN, which they refuse); any other putter refuses IN_SLOT. The next slot(x) overwrites it: pass
 * slot(x) straight to the putter, as the argument of the call.
 */
const NUMBER_SLOT = new Float64Array(1);
export const IN_SLOT: unique symbol = Symbol('a number in the putters\' slot');
export function slot(x: number): typeof IN_SLOT {
  NUMBER_SLOT[0] = x;
  return IN_SLOT;
}

function shown(v: unknown): string {
  if (typeof v === 'number' || typeof v === 'boolean' || v === undefined || v === null) return String(v);
  try {
    return JSON.stringify(v).slice(0, 200);
  } catch {
    return typeof v;
  }
}

function intPut(bytes: 1 | 2 | 4 | 8, signed: boolean): Put {
  const min = signed ? -(2 ** (bytes * 8 - 1)) : 0;
  const max = signed ? 2 ** (bytes * 8 - 1) : 2 ** (bytes * 8);
  const bits = BigInt(bytes * 8);
  // A number from the slot goes to put() in a branch of its own (no phi with a tagged value: that made
  // V8 box the slot's double again).
  return (w, v) => {
    if (v === IN_SLOT) return put(w, NUMBER_SLOT[0]!);
    if (typeof v === 'number') return put(w, v);
    if (typeof v === 'boolean') return put(w, Number(v));
    // Integers also come as bigint or as decimal strings (the SQL literal helpers give Int64 that way);
    // those are range-checked exactly and written through BigInt.
    if (typeof v === 'bigint' || (typeof v === 'string' && /^-?\d{1,20}$/.test(v))) {
      const x = BigInt(v);
      if (signed ? x !== BigInt.asIntN(Number(bits), x) : x < 0n || x !== BigInt.asUintN(Number(bits), x)) return false;
      if (bytes !== 8) return put(w, Number(x));
      w.ensure(bytes);
      if (signed) w.buf.writeBigInt64LE(x, w.off);
      else w.buf.writeBigUInt64LE(x, w.off);
      w.off += 8;
      return true;
    }
    return false;
  };
  function put(w: Writer, n: number): boolean {
    if (!Number.isInteger(n) || n < min || n >= max) return false;
    w.ensure(bytes);
    // Byte stores, little endian, instead of Buffer's write*LE (their argument checks cost more than the
    // stores here; the range is checked above). The same bytes (row-binary.test.ts compares with them).
    const b = w.buf;
    const o = w.off;
    switch (bytes) {
      case 1:
        b[o] = n & 0xff;
        break;
      case 2:
        b[o] = n & 0xff;
        b[o + 1] = (n >>> 8) & 0xff;
        break;
      case 4:
        putWord(b, o, n >>> 0);
        break;
      case 8: {
        // Exact for every integer double: n / 2^32 is exact, its floor is the high word.
        const hi = Math.floor(n / TWO32);
        putWord(b, o, n - hi * TWO32);
        putWord(b, o + 4, hi >>> 0);
        break;
      }
    }
    w.off = o + bytes;
    return true;
  }
}

/** A 32-bit word (0 ≤ x < 2^32) at b[o … o+3], little endian. */
function putWord(b: Buffer, o: number, x: number): void {
  b[o] = x & 0xff;
  b[o + 1] = (x >>> 8) & 0xff;
  b[o + 2] = (x >>> 16) & 0xff;
  b[o + 3] = x >>> 24;
}

const putString: Put = (w, v) => {
  if (typeof v !== 'string') return false;
  const len = v.length;
  if (len < 128) {
    // Short strings (ids, names, labels): byte by byte while ASCII, no native call per string.
    w.ensure(len + 1);
    const b = w.buf;
    const start = w.off;
    b[start] = len;
    let i = 0;
    for (; i < len; i++) {
      const ch = v.charCodeAt(i);
      if (ch > 0x7f) break;
      b[start + 1 + i] = ch;
    }
    if (i === len) {
      w.off = start + 1 + len;
      return true;
    }
  }
  const n = Buffer.byteLength(v, 'utf8');
  w.varUInt(n);
  w.ensure(n);
  w.off += w.buf.write(v, w.off, n, 'utf8');
  return true;
};

/** A double's 8 bytes in platform order (what Buffer.writeDoubleLE copies from too, without its checks). */
const f64 = new Float64Array(1);
const f64Bytes = new Uint8Array(f64.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function floatPut(bytes: 4 | 8): Put {
  // The slot's number in a branch of its own (see intPut).
  return (w, v) => {
    if (v === IN_SLOT) return put(w, NUMBER_SLOT[0]!);
    if (typeof v === 'number') return put(w, v);
    return false;
  };
  function put(w: Writer, x: number): boolean {
    if (Number.isNaN(x)) return false;
    w.ensure(bytes);
    if (bytes === 8 && LITTLE_ENDIAN) {
      f64[0] = x;
      const b = w.buf;
      const o = w.off;
      b[o] = f64Bytes[0]!;
      b[o + 1] = f64Bytes[1]!;
      b[o + 2] = f64Bytes[2]!;
      b[o + 3] = f64Bytes[3]!;
      b[o + 4] = f64Bytes[4]!;
      b[o + 5] = f64Bytes[5]!;
      b[o + 6] = f64Bytes[6]!;
      b[o + 7] = f64Bytes[7]!;
    } else if (bytes === 8) w.buf.writeDoubleLE(x, w.off);
    else w.buf.writeFloatLE(x, w.off);
    w.off += bytes;
    return true;
  }
}

/** Column types whose putter reads a number from the slot. */
const NUMBER_TYPE = /^(?:U?Int(?:8|16|32|64)|Float(?:32|64)|Bool|Date|DateTime(?:\('[^']*'\))?)$/;

/**
 * Array(T) of a number type T: each number element goes to T's putter through the slot (a function of its
 * own, so that V8's feedback for its element loads is that of number arrays only: loaded from a double array
 * and passed as the argument, every element was boxed).
 */
function numberArrayPut(p: Put): Put {
  return (w, v) => {
    if (!Array.isArray(v)) return false;
    w.varUInt(v.length);
    for (let i = 0; i < v.length; i++) {
      const x: unknown = v[i];
      if (!(typeof x === 'number' ? p(w, slot(x)) : p(w, x))) return false;
    }
    return true;
  };
}

/** The encoder of one column type, or undefined when the type is not covered. */
export function putterFor(type: string): Put | undefined {
  const t = type.trim();
  const inner = (prefix: string) => (t.startsWith(`${prefix}(`) && t.endsWith(')') ? t.slice(prefix.length + 1, -1) : undefined);
  const lc = inner('LowCardinality');
  if (lc !== undefined) return putterFor(lc); // RowBinary carries LowCardinality(T) as T
  const nullable = inner('Nullable');
  if (nullable !== undefined) {
    const p = putterFor(nullable);
    if (!p) return undefined;
    return (w, v) => {
      w.ensure(1);
      if (v === null || v === undefined) {
        w.buf[w.off++] = 1;
        return true;
      }
      w.buf[w.off++] = 0;
      return p(w, v);
    };
  }
  const arr = inner('Array');
  if (arr !== undefined) {
    const p = putterFor(arr);
    if (!p) return undefined;
    return NUMBER_TYPE.test(arr) ? numberArrayPut(p) : (w, v) => {
      if (!Array.isArray(v)) return false;
      w.varUInt(v.length);
      for (let i = 0; i < v.length; i++) if (!p(w, v[i])) return false;
      return true;
    };
  }
  switch (t) {
    case 'String':
      return putString;
    case 'Bool':
      return intPut(1, false);
    case 'UInt8':
      return intPut(1, false);
    case 'UInt16':
    case 'Date': // days since epoch
      return intPut(2, false);
    case 'UInt32':
    case 'DateTime': // seconds since epoch
      return intPut(4, false);
    case 'UInt64':
      return intPut(8, false);
    case 'Int8':
      return intPut(1, true);
    case 'Int16':
      return intPut(2, true);
    case 'Int32':
      return intPut(4, true);
    case 'Int64':
      return intPut(8, true);
    case 'Float32':
      return floatPut(4);
    case 'Float64':
      return floatPut(8);
    default:
      return /^DateTime\('[^']*'\)$/.test(t) ? intPut(4, false) : undefined;
  }
}

export interface RowBinaryCodec {
  /** The columns each encoded row carries, in order (the INSERT's column list). */
  readonly columns: readonly string[];
  encode(rows: readonly Record<string, unknown>[]): Buffer;
  /** The rows of `items` as `p` projects them, without a row object per item (see RowProjection). */
  encodeProjected<T>(items: readonly T[], p: RowProjection<T>): Buffer;
}

/**
 * Rows taken straight from the caller's objects: the hot tables (a row per VM, two per share) are
 * encoded without building a row object per item, which was most of the garbage of a store write.
 * Contract: for an item `plain` accepts, `put` passes exactly the values `row` would give to the column
 * putters `p` (p[c] for columns[c], in columns order, each from a call site of its own so V8 can inline
 * it, a number as `slot(x)` so that it goes to its putter unboxed) and returns false at the first one refused; for any other
 * item (a value to convert or refuse) `row` builds the checked row, throwing STORE_INVALID_INPUT naming
 * the field. The same bytes either way (row-binary.test.ts, chdb-insert.test.ts).
 */
export interface RowProjection<T> {
  readonly columns: readonly string[];
  plain(x: T): boolean;
  put(x: T, w: Writer, p: readonly Put[]): boolean;
  row(x: T): Record<string, unknown>;
}

/**
 * A codec for rows with exactly the keys of `rows[0]`, given the table's column types (name → type).
 * Undefined when a key is not a column or a column type is not covered.
 */
export function rowBinaryCodec(table: string, types: ReadonlyMap<string, string>, columns: readonly string[]): RowBinaryCodec | undefined {
  const puts: Put[] = [];
  const typeOf: string[] = [];
  for (const c of columns) {
    const type = types.get(c);
    const p = type === undefined ? undefined : putterFor(type);
    if (!p) return undefined;
    puts.push(p);
    typeOf.push(type!);
  }
  /** The checked loop: names the row, column and value that do not fit. */
  const encodeChecked = (w: Writer, row: Record<string, unknown>, r: number): void => {
    for (let c = 0; c < columns.length; c++) {
      const name = columns[c]!;
      const v = row[name];
      if (v === undefined && !(name in row)) {
        throw new WattsplitError('STORE_INVALID_INPUT', `${table} row ${r} has no ${name} (every row of one insert needs the same columns)`, { details: { table, row: r, column: name } });
      }
      if (!puts[c]!(w, v)) {
        throw new WattsplitError('STORE_INVALID_INPUT', `${table} row ${r} ${name}=${shown(v)} is not a valid ${typeOf[c]!}`, { details: { table, row: r, column: name, value: shown(v), type: typeOf[c]! } });
      }
    }
  };
  const encodeFast = rowEncoder(columns, puts, typeOf);
  // Bytes per row of the previous insert: the next buffer is sized from it, so a large insert (a group
  // commit of hundreds of intervals: megabytes) is not built by doubling and copying from 64 KiB.
  let bytesPerRow = 0;
  return {
    columns,
    encode(rows) {
      const w = new Writer(Math.max(64 * 1024, Math.ceil(rows.length * bytesPerRow * 1.1)));
      for (let r = 0; r < rows.length; r++) {
        const row = rows[r]!;
        const start = w.off;
        if (!encodeFast(w, row)) {
          // Something does not fit (or a column is missing): redo the row the checked way, which throws
          // naming it. A missing key reads as undefined, which no putter accepts, so it lands here too.
          w.off = start;
          encodeChecked(w, row, r);
        }
      }
      if (rows.length > 0) bytesPerRow = w.off / rows.length;
      return w.bytes();
    },
    encodeProjected<T>(items: readonly T[], p: RowProjection<T>): Buffer {
      if (p.columns.length !== columns.length || p.columns.some((c, i) => c !== columns[i])) {
        throw new WattsplitError('INTERNAL', `${table}: projection columns ${p.columns.join(',')} are not the codec's ${columns.join(',')}`, { details: { table } });
      }
      const w = new Writer(Math.max(64 * 1024, Math.ceil(items.length * bytesPerRow * 1.1)));
      for (let r = 0; r < items.length; r++) {
        const x = items[r]!;
        const start = w.off;
        if (p.plain(x)) {
          if (p.put(x, w, puts)) continue;
          w.off = start;
        }
        const row = p.row(x);
        if (!encodeFast(w, row)) {
          w.off = start;
          encodeChecked(w, row, r);
        }
      }
      if (items.length > 0) bytesPerRow = w.off / items.length;
      return w.bytes();
    },
  };
}

/**
 * One row's encoder with the column names as constant property loads (generated once per insert
 * shape): a keyed load `row[name]` over 20-30 names per row is what made the plain loop slow.
 * Returns false at the first value its putter refuses.
 */
function rowEncoder(columns: readonly string[], puts: readonly Put[], types: readonly string[]): (w: Writer, row: Record<string, unknown>) => boolean {
  const locals = puts.map((_, i) => `const p${i} = p[${i}];`).join('\n');
  const body = columns
    .map((c, i) => {
      const k = JSON.stringify(c);
      // Nullable putters accept undefined (as NULL): a missing key must still be refused, as the checked loop does.
      const missing = /Nullable\(/.test(types[i]!) ? `if (row[${k}] === undefined && !(${k} in row)) return false;\n` : '';
      return `${missing}if (!p${i}(w, row[${k}])) return false;`;
    })
    .join('\n');
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- column names enter only as JSON-quoted literals
  const make = new Function('p', `${locals}\nreturn function encodeRow(w, row) {\n${body}\nreturn true;\n};`) as (p: readonly Put[]) => (w: Writer, row: Record<string, unknown>) => boolean;
  return make(puts);
}

/** A table's RowBinary codec for one column list, with the column types it was built from. */
export interface CachedCodec {
  codec: RowBinaryCodec;
  types: ReadonlyMap<string, string>;
}

/**
 * The codecs a transport inserts with, per table and column list, built from the table's column types
 * (read once per table through `columnTypes`; a failed read is retried at the next insert). `undefined`
 * from `get`: a column type RowBinary does not cover, reported once through `uncovered`, and that insert
 * goes as JSON. `clear` after DDL that may change a table.
 */
export class RowBinaryCodecCache {
  private readonly types = new Map<string, Promise<Map<string, string>>>();
  private readonly codecs = new Map<string, CachedCodec | null>();

  constructor(
    private readonly columnTypes: (table: string) => Promise<Map<string, string>>,
    private readonly uncovered: (table: string) => void,
  ) {}

  async get(table: string, columns: readonly string[]): Promise<CachedCodec | undefined> {
    const key = `${table}\u0000${columns.join('\u0000')}`;
    const known = this.codecs.get(key);
    if (known !== undefined) return known ?? undefined;
    let types = this.types.get(table);
    if (!types) {
      types = this.columnTypes(table);
      this.types.set(table, types);
      types.catch(() => this.types.delete(table)); // a failed lookup is retried at the next insert
    }
    const t = await types;
    const codec = rowBinaryCodec(table, t, columns);
    if (!codec) this.uncovered(table);
    const entry = codec ? { codec, types: t } : null;
    this.codecs.set(key, entry);
    return entry ?? undefined;
  }

  clear(): void {
    this.types.clear();
    this.codecs.clear();
  }
}

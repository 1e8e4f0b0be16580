/**
 * The gateway's view of an encoded FrameBatch, in one pass over its bytes, without building the
 * protobufjs objects: per frame the header fields the gateway checks and routes by (host id, seq, boot
 * id, mono and wall time), the ids, values and wrap ranges of its counters and the uuid, CPU time and
 * start time of its VMs (what the counters-backwards check compares), and the frame's byte range. Every
 * other field is walked and checked, never turned into a string or an object.
 *
 * Contract: `scanFrameBatch(buf)` returns a view only when `decodeBatch(buf)` (the generated protobufjs
 * decoder, with varint64-reader's 64-bit readers) decodes the same bytes without error, `validateFrame`
 * finds no problem in any frame, and every value in the view equals what those give. Anything else
 * (bad bytes, an invalid frame, and encodings the full decoder reads in its own lenient way) returns
 * `undefined`: the caller then takes the full path (decodeBatch + validateFrame), which says what is wrong
 * in its own words. So the scan only ever accepts a subset of what the full path accepts, and rejects
 * nothing itself. `frame-batch-scan.test.ts` checks this differentially on random and mutated batches.
 *
 * Protobuf encoding (protobuf.dev/programming-guides/encoding): "each key in the streamed message is a
 * varint with the value (field_number << 3) | wire_type"; wire types: 0 VARINT (int32, int64, uint32,
 * uint64, bool, enum), 1 I64 (double), 2 LEN (string, bytes, embedded messages, packed repeated fields),
 * 3/4 SGROUP/EGROUP (deprecated), 5 I32. What the full decoder does, and what the scan accepts of it:
 * - a known field is read by its declared type whatever its wire type: the scan takes only the declared
 *   wire type (and, for the repeated uint64 `vcpu_time_ns`, packed or not, as protobufjs);
 * - 32-bit varints (keys, lengths, uint32/int32/enum/bool) through `Reader.uint32`: up to 5 bytes, the
 *   fifth's low 4 bits kept, or 10 bytes of which the last 5 are skipped unread (a negative int32): the
 *   scan computes the same value and takes the 10-byte form only when bytes 6-10 are a proper varint tail;
 * - 64-bit varints through varint64-reader (`readHalves`): at most 10 bytes within the message, bits
 *   beyond the 64th dropped: the scan reads them the same way;
 * - a string or nested message longer than what is left: protobufjs cuts a string short at the end of its
 *   message without error; the scan declines both;
 * - unknown fields are skipped by wire type (0, 1, 2, 5; a varint of any length): the scan skips them
 *   too (varints up to 10 bytes) and declines groups (3, 4) and wire types 6 and 7;
 * - a non-repeated field given twice: the last one wins, in both;
 * - strings are Node's utf8Slice of the bytes, as protobufjs's BufferReader makes them (the gateway gets
 *   Buffers from grpc-js); counter ids and VM uuids must be ASCII here (others are declined), so that
 *   comparing them by bytes is comparing the strings validateFrame compares.
 * The scan keeps its position in module state: it is synchronous and not re-entrant.
 */
import { Buffer } from 'node:buffer';
import { int64FromHalves } from './varint64-reader.js';

/** What the gateway reads of one TelemetryFrame (the full decoder's values; defaults 0 and ''). */
export interface FrameView {
  hostId: string;
  seq: number;
  bootId: string;
  monoNs: number;
  wallUnixNs: number;
  /** Counters with an id and no error, in the frame's order. */
  counterIds: string[];
  counterValues: Float64Array;
  /** max_range of each counter (0 = 64-bit, never wraps). */
  counterRanges: Float64Array;
  /** VMs in the frame's order (every VM of a valid frame has a uuid). */
  vmUuids: string[];
  vmCpuNs: Float64Array;
  vmStartedNs: Float64Array;
}

export interface FrameBatchView {
  /** Tells this view from a decoded FrameBatch. */
  readonly scanned: true;
  batchId: number;
  /** FrameBatch.token ('' when absent). */
  token: string;
  frames: FrameView[];
  /** Each frame's bytes as sent (views into the batch's buffer), parallel to `frames`. */
  frameBytes: Buffer[];
}

/** Thrown inside the scan when the bytes are not in the subset it takes; caught in scanFrameBatch. */
const DECLINE = new Error('scanFrameBatch declined the bytes');
const TWO_32 = 4294967296;

/** The scan's state: the batch's bytes, the read position, the high half of the last 64-bit varint. */
/** Node's Buffer methods behind toString('utf8' | 'latin1', a, b), without its argument checks (protobufjs calls utf8Slice too). */
type SlicingBuffer = Buffer & { utf8Slice(start: number, end: number): string; latin1Slice(start: number, end: number): string };
const EMPTY_BYTES = Buffer.alloc(0) as SlicingBuffer;
const S: { buf: SlicingBuffer; pos: number; hi: number } = { buf: EMPTY_BYTES, pos: 0, hi: 0 };


function decline(): never {
  throw DECLINE;
}

/** Reader.uint32's value and length (see the header); declines a varint protobufjs reads differently. */
function u32(end: number): number {
  const buf = S.buf;
  let p = S.pos;
  if (p >= end) decline();
  let b = buf[p++]!;
  if (b < 128) {
    S.pos = p;
    return b;
  }
  let v = b & 127;
  for (let shift = 7; shift < 28; shift += 7) {
    if (p >= end) decline();
    b = buf[p++]!;
    v |= (b & 127) << shift;
    if (b < 128) {
      S.pos = p;
      return v >>> 0;
    }
  }
  if (p >= end) decline();
  b = buf[p++]!;
  v = (v | ((b & 15) << 28)) >>> 0;
  if (b >= 128) {
    // the 10-byte form (a negative int32): protobufjs skips 5 more bytes unread
    if (p + 5 > end) decline();
    for (let k = 0; k < 4; k++) if (buf[p + k]! < 128) decline();
    if (buf[p + 4]! >= 128) decline();
    p += 5;
  }
  S.pos = p;
  return v;
}

/** varint64-reader's readHalves: returns the low 32 bits, leaves the high 32 in S.hi. */
function halves(end: number): number {
  const buf = S.buf;
  let p = S.pos;
  let lo = 0;
  let hi = 0;
  let b: number;
  for (let shift = 0; shift < 28; shift += 7) {
    if (p >= end) decline();
    b = buf[p++]!;
    lo |= (b & 127) << shift;
    if (b < 128) {
      S.pos = p;
      S.hi = 0;
      return lo >>> 0;
    }
  }
  if (p >= end) decline();
  b = buf[p++]!;
  lo |= (b & 127) << 28;
  hi = (b & 127) >> 4;
  if (b >= 128) {
    for (let shift = 3; ; shift += 7) {
      if (shift > 31) decline();
      if (p >= end) decline();
      b = buf[p++]!;
      hi |= (b & 127) << shift;
      if (b < 128) break;
    }
  }
  S.pos = p;
  S.hi = hi >>> 0;
  return lo >>> 0;
}

/** A 64-bit varint whose value the gateway does not read: what readHalves takes, at most 10 bytes within the message. */
function skip64(end: number): void {
  const buf = S.buf;
  let p = S.pos;
  const last = Math.min(end, p + 10);
  while (p < last) {
    if (buf[p++]! < 128) {
      S.pos = p;
      return;
    }
  }
  decline();
}

/** uint64 as varint64-reader's readUint64 returns it. */
function u64(end: number): number {
  const lo = halves(end);
  return lo + S.hi * TWO_32;
}

/** int64 as varint64-reader's readInt64 returns it. */
function i64(end: number): number {
  const lo = halves(end);
  return int64FromHalves(lo, S.hi);
}

/** The end of a LEN field's bytes (S.pos at their start); declines one that runs past `end`. */
function lenEnd(end: number): number {
  const n = u32(end);
  const e = S.pos + n;
  if (e > end) decline();
  return e;
}

function str(end: number): string {
  const e = lenEnd(end);
  const s = S.buf.utf8Slice(S.pos, e);
  S.pos = e;
  return s;
}

function skipLen(end: number): void {
  S.pos = lenEnd(end);
}

function skipFixed(n: number, end: number): void {
  if (S.pos + n > end) decline();
  S.pos += n;
}

/** An unknown field's value, by wire type, as Reader.skipType skips it (groups and wire types 6, 7 declined). */
function skipUnknown(wireType: number, end: number): void {
  switch (wireType) {
    case 0:
      skip64(end);
      return;
    case 1:
      return skipFixed(8, end);
    case 2:
      return skipLen(end);
    case 5:
      return skipFixed(4, end);
    default:
      decline();
  }
}

/** A key with the declared wire type `want` is read as its field; any other wire type is declined. */
function expect(wireType: number, want: number): void {
  if (wireType !== want) decline();
}

// Growable scratch for one frame's counters and VMs, copied into the view at its exact size.
const scratchIds: string[] = [];
let scratchA = new Float64Array(64);
let scratchB = new Float64Array(64);
const vmIds: string[] = [];
let vmA = new Float64Array(256);
let vmB = new Float64Array(256);
/**
 * The ids of one frame seen so far, by their bytes in the batch (an open-addressing table of FNV-1a hashes,
 * emptied by bumping a generation): validateFrame refuses a repeated counter id or uuid. Ids are ASCII here
 * (the scan declines others), so equal bytes and equal strings are the same thing: two different invalid
 * UTF-8 sequences would decode to the same U+FFFD string.
 */
class SeenIds {
  private gen = 1;
  private count = 0;
  private slotGen = new Int32Array(128);
  private slotStart = new Int32Array(128);
  private slotEnd = new Int32Array(128);

  clear(): void {
    this.count = 0;
    if (++this.gen === 0x7fffffff) {
      this.slotGen.fill(0);
      this.gen = 1;
    }
  }

  /** Adds the id at S.buf[start, end) with its hash; false when the frame already has it. */
  add(start: number, end: number, hash: number): boolean {
    if (2 * (this.count + 1) > this.slotGen.length) this.grow();
    const buf = S.buf;
    const mask = this.slotGen.length - 1;
    const n = end - start;
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      if (this.slotGen[i] !== this.gen) {
        this.slotGen[i] = this.gen;
        this.slotStart[i] = start;
        this.slotEnd[i] = end;
        this.count++;
        return true;
      }
      const a = this.slotStart[i]!;
      if (this.slotEnd[i]! - a !== n) continue;
      let k = 0;
      while (k < n && buf[a + k] === buf[start + k]) k++;
      if (k === n) return false;
    }
  }

  private grow(): void {
    const { slotGen, slotStart, slotEnd, gen } = this;
    this.slotGen = new Int32Array(slotGen.length * 2);
    this.slotStart = new Int32Array(slotGen.length * 2);
    this.slotEnd = new Int32Array(slotGen.length * 2);
    this.count = 0;
    for (let i = 0; i < slotGen.length; i++) if (slotGen[i] === gen) this.add(slotStart[i]!, slotEnd[i]!, fnv1a(slotStart[i]!, slotEnd[i]!));
  }
}

/** FNV-1a of S.buf[start, end), or -1 when a byte is not ASCII. */
function fnv1a(start: number, end: number): number {
  const buf = S.buf;
  let h = 0x811c9dc5;
  let or = 0;
  for (let i = start; i < end; i++) {
    const b = buf[i]!;
    or |= b;
    h = Math.imul(h ^ b, 0x01000193);
  }
  return or >= 128 ? -1 : h >>> 1;
}

const seenCounterIds = new SeenIds();
const seenUuids = new SeenIds();

/** An ASCII id field's bytes as a string (what utf8Slice gives for ASCII); declines an empty, repeated or non-ASCII one. */
function idOnce(seen: SeenIds, start: number, end: number): string {
  if (end === start) decline();
  const h = fnv1a(start, end);
  if (h < 0 || !seen.add(start, end, h)) decline();
  return S.buf.latin1Slice(start, end);
}

function grow(a: Float64Array<ArrayBuffer>, n: number): Float64Array<ArrayBuffer> {
  if (n < a.length) return a;
  const b = new Float64Array(a.length * 2);
  b.set(a);
  return b;
}

/** Host ids validateFrame takes: /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, checked on the UTF-8 bytes (all ASCII). */
function hostIdOk(start: number, end: number): boolean {
  const n = end - start;
  if (n < 1 || n > 128) return false;
  for (let i = start; i < end; i++) {
    const c = S.buf[i]!;
    const alnum = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
    if (alnum) continue;
    if (i === start || !(c === 46 || c === 95 || c === 58 || c === 45)) return false;
  }
  return true;
}

/** EnergyCounter: appends it (id set, no error) to the scratch arrays; declines an invalid one. Returns the new count. */
function scanCounter(end: number, n: number): number {
  let idStart = 0;
  let idEnd = 0;
  let source = 0;
  let unit = 0;
  let value = 0;
  let maxRange = 0;
  let errored = false;
  while (S.pos < end) {
    const t = u32(end);
    const wt = t & 7;
    switch (t >>> 3) {
      case 1:
        expect(wt, 2);
        idEnd = lenEnd(end);
        idStart = S.pos;
        S.pos = idEnd;
        break;
      case 2:
        expect(wt, 0);
        source = u32(end);
        break;
      case 4:
        expect(wt, 0);
        u32(end);
        break;
      case 5:
        expect(wt, 0);
        value = u64(end);
        break;
      case 6:
        expect(wt, 0);
        unit = u32(end);
        break;
      case 7:
        expect(wt, 0);
        maxRange = u64(end);
        break;
      case 9:
        expect(wt, 0);
        skip64(end);
        break;
      case 11: {
        expect(wt, 2);
        const e = lenEnd(end);
        errored = e > S.pos;
        S.pos = e;
        break;
      }
      case 3:
      case 8:
      case 10:
        expect(wt, 2);
        skipLen(end);
        break;
      default:
        skipUnknown(wt, end);
    }
  }
  // validateFrame: id set and not repeated, unit and source set (int32 of the same 32 bits: zero iff zero)
  const id = idOnce(seenCounterIds, idStart, idEnd);
  if (unit === 0 || source === 0) decline();
  if (errored) return n;
  if (n >= scratchIds.length) scratchIds.length = n + 1;
  scratchA = grow(scratchA, n);
  scratchB = grow(scratchB, n);
  scratchIds[n] = id;
  scratchA[n] = value;
  scratchB[n] = maxRange;
  return n + 1;
}

function scanPerf(end: number): void {
  while (S.pos < end) {
    const t = u32(end);
    const wt = t & 7;
    const field = t >>> 3;
    if (field === 1) {
      expect(wt, 0);
      u32(end);
    } else if (field >= 2 && field <= 5) {
      expect(wt, 0);
      skip64(end);
    } else skipUnknown(wt, end);
  }
}

function scanGpuActivity(end: number): void {
  while (S.pos < end) {
    const t = u32(end);
    const wt = t & 7;
    switch (t >>> 3) {
      case 1:
      case 8:
        expect(wt, 2);
        skipLen(end);
        break;
      case 2:
      case 3:
        expect(wt, 1);
        skipFixed(8, end);
        break;
      case 4:
      case 6:
      case 7:
      case 9:
      case 10:
        expect(wt, 0);
        u32(end);
        break;
      case 5:
        expect(wt, 0);
        skip64(end);
        break;
      default:
        skipUnknown(wt, end);
    }
  }
}

/** VmSample: appends uuid, cpu_time_ns and started_mono_ns to the VM scratch; declines an invalid one. */
function scanVm(end: number, n: number): void {
  let uuidStart = 0;
  let uuidEnd = 0;
  let cpu = 0;
  let started = 0;
  while (S.pos < end) {
    const t = u32(end);
    const wt = t & 7;
    switch (t >>> 3) {
      case 1:
        expect(wt, 2);
        uuidEnd = lenEnd(end);
        uuidStart = S.pos;
        S.pos = uuidEnd;
        break;
      case 7:
        expect(wt, 0);
        cpu = u64(end);
        break;
      case 17:
        expect(wt, 0);
        started = u64(end);
        break;
      case 2:
      case 3:
      case 18:
        expect(wt, 2);
        skipLen(end);
        break;
      case 4:
      case 6:
        expect(wt, 0);
        u32(end);
        break;
      case 5:
      case 9:
      case 10:
      case 11:
      case 12:
      case 13:
      case 16:
      case 19:
      case 20:
        expect(wt, 0);
        skip64(end);
        break;
      case 8:
        if (wt === 2) {
          const e = lenEnd(end);
          while (S.pos < e) skip64(e);
        } else {
          expect(wt, 0);
          skip64(end);
        }
        break;
      case 14: {
        expect(wt, 2);
        const e = lenEnd(end);
        scanPerf(e);
        break;
      }
      case 15: {
        expect(wt, 2);
        const e = lenEnd(end);
        scanGpuActivity(e);
        break;
      }
      default:
        skipUnknown(wt, end);
    }
  }
  const uuid = idOnce(seenUuids, uuidStart, uuidEnd);
  if (n >= vmIds.length) vmIds.length = n + 1;
  vmA = grow(vmA, n);
  vmB = grow(vmB, n);
  vmIds[n] = uuid;
  vmA[n] = cpu;
  vmB[n] = started;
}

function scanHostCpu(end: number): void {
  while (S.pos < end) {
    const t = u32(end);
    const wt = t & 7;
    const field = t >>> 3;
    if (field === 1 || field === 2) {
      expect(wt, 0);
      skip64(end);
    } else if (field === 3 || field === 4) {
      expect(wt, 0);
      u32(end);
    } else skipUnknown(wt, end);
  }
}

function scanGpuDevice(end: number): void {
  while (S.pos < end) {
    const t = u32(end);
    const wt = t & 7;
    const field = t >>> 3;
    if (field === 1 || field === 3 || field === 11) {
      expect(wt, 2);
      skipLen(end);
    } else if (field === 12) {
      expect(wt, 1);
      skipFixed(8, end);
    } else if ((field >= 2 && field <= 10) || field === 13) {
      expect(wt, 0);
      u32(end);
    } else skipUnknown(wt, end);
  }
}

function scanFrame(end: number): FrameView {
  let hostStart = 0;
  let hostEnd = 0;
  let seq = 0;
  let bootId = '';
  let monoNs = 0;
  let wallUnixNs = 0;
  let nc = 0;
  let nv = 0;
  seenCounterIds.clear();
  seenUuids.clear();
  while (S.pos < end) {
    const t = u32(end);
    const wt = t & 7;
    switch (t >>> 3) {
      case 1:
        expect(wt, 2);
        hostEnd = lenEnd(end);
        hostStart = S.pos;
        S.pos = hostEnd;
        break;
      case 3:
        expect(wt, 0);
        seq = u64(end);
        break;
      case 4:
        expect(wt, 2);
        bootId = str(end);
        break;
      case 5:
        expect(wt, 0);
        monoNs = u64(end);
        break;
      case 6:
        expect(wt, 0);
        wallUnixNs = i64(end);
        break;
      case 7:
        expect(wt, 0);
        u32(end);
        break;
      case 8: {
        expect(wt, 2);
        const e = lenEnd(end);
        nc = scanCounter(e, nc);
        break;
      }
      case 9: {
        expect(wt, 2);
        const e = lenEnd(end);
        scanVm(e, nv++);
        break;
      }
      case 10: {
        expect(wt, 2);
        const e = lenEnd(end);
        scanHostCpu(e);
        break;
      }
      case 11: {
        expect(wt, 2);
        const e = lenEnd(end);
        scanGpuDevice(e);
        break;
      }
      case 2:
      case 12:
        expect(wt, 2);
        skipLen(end);
        break;
      default:
        skipUnknown(wt, end);
    }
  }
  // validateFrame's header checks (the counters' and VMs' were made as they were read)
  if (!hostIdOk(hostStart, hostEnd)) decline();
  if (seq < 1 || !Number.isSafeInteger(seq) || monoNs <= 0 || wallUnixNs <= 0) decline();
  return {
    hostId: S.buf.latin1Slice(hostStart, hostEnd),
    seq,
    bootId,
    monoNs,
    wallUnixNs,
    counterIds: scratchIds.slice(0, nc),
    counterValues: scratchA.slice(0, nc),
    counterRanges: scratchB.slice(0, nc),
    vmUuids: vmIds.slice(0, nv),
    vmCpuNs: vmA.slice(0, nv),
    vmStartedNs: vmB.slice(0, nv),
  };
}

/**
 * The gateway's view of the FrameBatch in `bytes`, or undefined when the full decoder must look at them
 * (see the header: undefined is not a rejection).
 */
export function scanFrameBatch(bytes: Buffer): FrameBatchView | undefined {
  S.buf = bytes as SlicingBuffer;
  S.pos = 0;
  const end = bytes.length;
  let batchId = 0;
  let token = '';
  const frames: FrameView[] = [];
  const frameBytes: Buffer[] = [];
  try {
    while (S.pos < end) {
      const t = u32(end);
      const wt = t & 7;
      switch (t >>> 3) {
        case 1:
          expect(wt, 0);
          batchId = u64(end);
          break;
        case 2: {
          expect(wt, 2);
          const e = lenEnd(end);
          const start = S.pos;
          frames.push(scanFrame(e));
          frameBytes.push(bytes.subarray(start, e));
          break;
        }
        case 3:
          expect(wt, 2);
          token = str(end);
          break;
        default:
          skipUnknown(wt, end);
      }
    }
  } catch (e) {
    if (e === DECLINE) return undefined;
    throw e;
  } finally {
    S.buf = EMPTY_BYTES;
  }
  return { scanned: true, batchId, token, frames, frameBytes };
}


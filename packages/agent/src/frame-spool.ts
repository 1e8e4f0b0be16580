/**
 * FrameSpool: a bounded, append-only on-disk queue of encoded frames that survives agent crashes.
 *
 * Layout of the spool dir:
 *   <first record index, 16 digits>.seg   segment files of records, appended, fsync'd
 *   acked                                 JSON {"next": <index of the first record not yet acked>}, replaced atomically (not fsync'd: advisory)
 * Record: u32 LE payload length | u32 LE CRC-32 of (appendedAt ‖ payload) | f64 LE appendedAt (ms since epoch) | payload
 *
 * On open, every segment is scanned; a record whose header or payload is cut short or whose CRC does
 * not match (the tail of a write the crash interrupted) is cut off with a log line, and so is anything
 * after it in that segment. Records older than `maxAgeMs`, and the oldest records while the pending
 * bytes exceed `maxBytes`, are dropped — only then, counted in `droppedFrames` and logged.
 */
import { closeSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, readdirSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { WattsplitError, type Logger } from '@wattsplit/wire';
import { crc32 } from './crc32.js';

export const RECORD_HEADER_BYTES = 16;
const SEG_RE = /^(\d{16})\.seg$/;

export interface FrameSpoolOptions {
  dir: string;
  /** Pending (unacked) bytes kept at most; the oldest records are dropped past it. Default 256 MiB. */
  maxBytes?: number;
  /** Records older than this are dropped. Default 7 days. */
  maxAgeMs?: number;
  /** A segment is closed and a new one started past this size. Default 8 MiB. */
  segmentBytes?: number;
  /** fsync every append (default true). */
  fsync?: boolean;
  logger: Logger;
  now?: () => number;
}

export interface SpoolRecord {
  index: number;
  appendedAtMs: number;
  payload: Uint8Array;
}

interface Pending {
  index: number;
  seg: number;
  offset: number;
  length: number;
  appendedAtMs: number;
}

interface Segment {
  start: number;
  file: string;
  /** byte offset of its last record, -1 when empty */
  lastOffset: number;
  /** index one past its last record */
  end: number;
  bytes: number;
}

export interface SpoolMetrics {
  pendingFrames: number;
  pendingBytes: number;
  droppedFrames: number;
  truncatedBytes: number;
  appendedFrames: number;
  ackedFrames: number;
  segments: number;
}

export class FrameSpool {
  readonly dir: string;
  private readonly maxBytes: number;
  private readonly maxAgeMs: number;
  private readonly segmentBytes: number;
  private readonly doFsync: boolean;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly segments: Segment[] = [];
  private pending: Pending[] = [];
  private pendingHead = 0;
  private pendingBytes = 0;
  private nextIndex = 0;
  private ackedNext = 0;
  private fd: number | undefined;
  private readonly m = { droppedFrames: 0, truncatedBytes: 0, appendedFrames: 0, ackedFrames: 0 };

  private constructor(opts: FrameSpoolOptions) {
    this.dir = opts.dir;
    this.maxBytes = opts.maxBytes ?? 256 * 1024 * 1024;
    this.maxAgeMs = opts.maxAgeMs ?? 7 * 24 * 3600 * 1000;
    this.segmentBytes = opts.segmentBytes ?? 8 * 1024 * 1024;
    this.doFsync = opts.fsync ?? true;
    this.log = opts.logger.child({ spool: opts.dir });
    this.now = opts.now ?? Date.now;
    for (const [k, v] of Object.entries({ maxBytes: this.maxBytes, maxAgeMs: this.maxAgeMs, segmentBytes: this.segmentBytes })) {
      if (!Number.isFinite(v) || v <= 0) throw new WattsplitError('CONFIG_INVALID', `spool ${k}=${JSON.stringify(v)} must be a positive number`, { details: { field: k, value: v } });
    }
  }

  /** Opens (creating) the spool dir, recovers pending records and truncates a torn tail. */
  static open(opts: FrameSpoolOptions): FrameSpool {
    const s = new FrameSpool(opts);
    s.recover();
    return s;
  }

  private ackFile(): string {
    return join(this.dir, 'acked');
  }

  private recover(): void {
    mkdirSync(this.dir, { recursive: true });
    try {
      const j = JSON.parse(readFileSync(this.ackFile(), 'utf8')) as { next?: unknown };
      if (typeof j.next !== 'number' || !Number.isSafeInteger(j.next) || j.next < 0) throw new Error(`next=${JSON.stringify(j.next)} is not a record index`);
      this.ackedNext = j.next;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.log.warn({ code: 'SPOOL_CORRUPT', file: this.ackFile() }, `spool ack file ${this.ackFile()} unreadable (${(e as Error).message}): replaying every record kept (the gateway drops duplicate seqs)`);
      }
    }
    const segs = readdirSync(this.dir).filter((f) => SEG_RE.test(f)).sort();
    for (const f of segs) {
      const start = Number(SEG_RE.exec(f)?.[1]);
      if (start < this.nextIndex) {
        this.log.warn({ code: 'SPOOL_CORRUPT', file: f }, `spool segment ${f} overlaps the previous one: ignored`);
        continue;
      }
      this.scanSegment(join(this.dir, f), start);
    }
    this.nextIndex = Math.max(this.nextIndex, this.ackedNext);
    this.gc();
    this.enforceLimits(0);
    if (this.pendingCount() > 0) this.log.info({ pending: this.pendingCount(), bytes: this.pendingBytes }, 'spool recovered frames not yet acked: they will be sent first, in order');
  }

  private scanSegment(file: string, start: number): void {
    const buf = readFileSync(file);
    let off = 0;
    let idx = start;
    let lastOffset = -1;
    while (off < buf.length) {
      const bad = (why: string) => {
        this.m.truncatedBytes += buf.length - off;
        this.log.warn({ code: 'SPOOL_CORRUPT', file, offset: off, bytes: buf.length - off }, `spool ${file}: ${why} at byte ${off}: truncating ${buf.length - off} bytes (the tail of a write cut short by a crash)`);
        const fd = openSync(file, 'r+');
        try {
          ftruncateSync(fd, off);
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
      };
      if (buf.length - off < RECORD_HEADER_BYTES) {
        bad('short record header');
        break;
      }
      const len = buf.readUInt32LE(off);
      const crc = buf.readUInt32LE(off + 4);
      if (off + RECORD_HEADER_BYTES + len > buf.length) {
        bad(`record of ${len} bytes runs past the end of the file`);
        break;
      }
      if (crc32(buf, off + 8, off + RECORD_HEADER_BYTES + len) !== crc) {
        bad('record checksum mismatch');
        break;
      }
      const at = buf.readDoubleLE(off + 8);
      if (idx >= this.ackedNext) {
        this.pending.push({ index: idx, seg: start, offset: off, length: len, appendedAtMs: at });
        this.pendingBytes += len + RECORD_HEADER_BYTES;
      }
      lastOffset = off;
      off += RECORD_HEADER_BYTES + len;
      idx++;
    }
    this.segments.push({ start, file, end: idx, bytes: off, lastOffset });
    this.nextIndex = idx;
  }

  private pendingCount(): number {
    return this.pending.length - this.pendingHead;
  }

  /** Appends one encoded frame durably; drops the oldest pending records first if the limit needs it. */
  append(payload: Uint8Array): number {
    const need = payload.length + RECORD_HEADER_BYTES;
    if (need > this.maxBytes) {
      throw new WattsplitError('SPOOL_FULL', `frame of ${payload.length} bytes is larger than the spool limit maxBytes=${this.maxBytes}`, { details: { field: 'maxBytes', value: this.maxBytes } });
    }
    this.enforceLimits(need);
    let seg = this.segments[this.segments.length - 1];
    if (!seg || seg.bytes >= this.segmentBytes || this.fd === undefined) {
      if (this.fd !== undefined) closeSync(this.fd);
      this.fd = undefined;
      if (!seg || seg.bytes >= this.segmentBytes) {
        const file = join(this.dir, `${String(this.nextIndex).padStart(16, '0')}.seg`);
        seg = { start: this.nextIndex, file, end: this.nextIndex, bytes: 0, lastOffset: -1 };
        this.segments.push(seg);
      }
      this.fd = openSync(seg.file, 'a');
      if (seg.bytes === 0 && this.doFsync) fsyncDir(this.dir);
    }
    const at = this.now();
    const rec = Buffer.allocUnsafe(need);
    rec.writeUInt32LE(payload.length, 0);
    rec.writeDoubleLE(at, 8);
    rec.set(payload, RECORD_HEADER_BYTES);
    rec.writeUInt32LE(crc32(rec, 8), 4);
    writeSync(this.fd, rec);
    if (this.doFsync) fsyncSync(this.fd);
    const index = this.nextIndex++;
    this.pending.push({ index, seg: seg.start, offset: seg.bytes, length: payload.length, appendedAtMs: at });
    seg.lastOffset = seg.bytes;
    seg.bytes += need;
    seg.end = this.nextIndex;
    this.pendingBytes += need;
    this.m.appendedFrames++;
    return index;
  }

  /** Drops expired records, then the oldest while pending + `incoming` bytes exceed the limit. */
  private enforceLimits(incoming: number): void {
    const cutoff = this.now() - this.maxAgeMs;
    let aged = 0;
    let full = 0;
    while (this.pendingCount() > 0) {
      const p = this.pending[this.pendingHead];
      if (!p) break;
      if (p.appendedAtMs < cutoff) aged++;
      else if (this.pendingBytes + incoming > this.maxBytes) full++;
      else break;
      this.pendingBytes -= p.length + RECORD_HEADER_BYTES;
      this.pendingHead++;
      this.ackedNext = p.index + 1;
    }
    if (aged + full > 0) {
      this.m.droppedFrames += aged + full;
      this.log.warn({ code: 'SPOOL_FULL', droppedAged: aged, droppedFull: full, droppedTotal: this.m.droppedFrames, maxBytes: this.maxBytes, maxAgeMs: this.maxAgeMs }, `spool over its limits: dropped the ${aged + full} oldest frames (${aged} older than maxAgeMs, ${full} past maxBytes)`);
      this.writeAck();
      this.gc();
    }
  }

  /** The first `max` pending records (at most `maxBytes` payload bytes, at least one), oldest first. */
  peek(max: number, maxBytes = Infinity): SpoolRecord[] {
    this.enforceLimits(0);
    const out: SpoolRecord[] = [];
    let bytes = 0;
    const fds = new Map<number, { fd: number; file: string }>();
    try {
      for (let i = this.pendingHead; i < this.pending.length && out.length < max; i++) {
        const p = this.pending[i];
        if (!p) break;
        if (out.length > 0 && bytes + p.length > maxBytes) break;
        let h = fds.get(p.seg);
        if (!h) {
          const seg = this.segments.find((s) => s.start === p.seg);
          if (!seg) throw new WattsplitError('SPOOL_CORRUPT', `spool record ${p.index}: segment ${p.seg} missing`, { details: { index: p.index } });
          h = { fd: openSync(seg.file, 'r'), file: seg.file };
          fds.set(p.seg, h);
        }
        const buf = Buffer.allocUnsafe(p.length);
        const n = readSync(h.fd, buf, 0, p.length, p.offset + RECORD_HEADER_BYTES);
        if (n !== p.length) throw new WattsplitError('SPOOL_CORRUPT', `spool ${h.file}: record ${p.index} at byte ${p.offset} is short (${n} of ${p.length} bytes)`, { details: { file: h.file, index: p.index } });
        out.push({ index: p.index, appendedAtMs: p.appendedAtMs, payload: buf });
        bytes += p.length;
      }
    } finally {
      for (const h of fds.values()) closeSync(h.fd);
    }
    return out;
  }

  /** Marks every record up to and including `index` as delivered; deletes segments no longer needed. */
  ack(index: number): void {
    let n = 0;
    while (this.pendingCount() > 0) {
      const p = this.pending[this.pendingHead];
      if (!p || p.index > index) break;
      this.pendingBytes -= p.length + RECORD_HEADER_BYTES;
      this.pendingHead++;
      n++;
    }
    if (n === 0) return;
    this.m.ackedFrames += n;
    this.ackedNext = index + 1;
    this.writeAck();
    this.gc();
  }

  /**
   * Replaces the ack file atomically (write + rename: a crashed process leaves the old or the new one),
   * without fsync: the ack point is advisory. After a power loss that cost it, the spool replays frames the
   * gateway already has and the gateway drops their seqs; an fsync per batch would cost as much CPU as
   * the frame append's own (the one that makes frames durable, which stays).
   */
  private writeAck(): void {
    const tmp = `${this.ackFile()}.tmp`;
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, JSON.stringify({ next: this.ackedNext }));
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.ackFile());
  }

  /** Deletes segments entirely before the ack point (never the one being appended to). */
  private gc(): void {
    if (this.pendingHead > 1024 && this.pendingHead > this.pending.length / 2) {
      this.pending = this.pending.slice(this.pendingHead);
      this.pendingHead = 0;
    }
    while (this.segments.length > 1) {
      const s = this.segments[0];
      if (!s || s.end > this.ackedNext) break;
      try {
        unlinkSync(s.file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
      this.segments.shift();
    }
  }

  /** The payload of the newest record still on disk (acked or not), or undefined for an empty spool. */
  lastRecord(): Uint8Array | undefined {
    for (let i = this.segments.length - 1; i >= 0; i--) {
      const s = this.segments[i];
      if (!s || s.lastOffset < 0) continue;
      const fd = openSync(s.file, 'r');
      try {
        const head = Buffer.alloc(RECORD_HEADER_BYTES);
        readSync(fd, head, 0, RECORD_HEADER_BYTES, s.lastOffset);
        const body = Buffer.alloc(head.readUInt32LE(0));
        readSync(fd, body, 0, body.length, s.lastOffset + RECORD_HEADER_BYTES);
        return body;
      } finally {
        closeSync(fd);
      }
    }
    return undefined;
  }

  metrics(): SpoolMetrics {
    return { pendingFrames: this.pendingCount(), pendingBytes: this.pendingBytes, segments: this.segments.length, ...this.m };
  }

  /** Bytes the segment files use on disk now. */
  diskBytes(): number {
    let n = 0;
    for (const s of this.segments) {
      try {
        const fd = openSync(s.file, 'r');
        n += fstatSync(fd).size;
        closeSync(fd);
      } catch {
        /* deleted */
      }
    }
    return n;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* some file systems refuse fsync on a directory */
  }
}

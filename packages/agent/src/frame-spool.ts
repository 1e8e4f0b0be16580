/**
 * FrameSpool: a bounded, append-only on-disk queue of encoded frames that survives agent crashes.
 *
 * Layout of the spool dir:
 *   <first record index, 16 digits>.seg   segment files of records, appended
 *   acked                                 JSON {"next": <index of the first record not yet acked>}, padded to a fixed
 *                                         width and overwritten in place (one pwrite, not fsync'd: advisory)
 * Record: u32 LE payload length | u32 LE CRC-32 of (appendedAt ‖ payload) | f64 LE appendedAt (ms since epoch) | payload
 *
 * Durability: every record is written to its segment at once (write(2): it survives the agent process
 * crashing or being killed, the page cache keeps it). It is fsync'd (survives a kernel crash or power loss)
 * once it has been pending — not acked — for `syncAfterMs` (default 1 s; `sync()` does it, the sender calls
 * it from a timer), and on close. A record the gateway acked sooner is never fsync'd: it is in Kafka already.
 * So a power loss can cost at most the records appended in the last `syncAfterMs` that the gateway had not
 * acked yet (normally none or one); `syncAfterMs: 0` fsyncs every append, as this spool did before.
 *
 * The payloads appended by this process are also kept in memory (up to `memoryBytes`) until acked, so the
 * sender reads them without a disk read; records recovered from disk, or past that bound, are read back.
 *
 * On open, every segment is scanned; a record whose header or payload is cut short or whose CRC does
 * not match (the tail of a write the crash interrupted) is cut off with a log line, and so is anything
 * after it in that segment. Records older than `maxAgeMs`, and the oldest records while the pending
 * bytes exceed `maxBytes`, are dropped — only then, counted in `droppedFrames` and logged.
 */
import { closeSync, constants, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, readdirSync, readSync, unlinkSync, writeSync, writevSync } from 'node:fs';
import { join } from 'node:path';
import { WattsplitError, type Logger } from '@wattsplit/wire';
import { crc32 } from './crc32.js';

export const RECORD_HEADER_BYTES = 16;
/** Width of the ack file's record (JSON padded with spaces, then a newline). */
const ACK_RECORD_BYTES = 64;
const SEG_RE = /^(\d{16})\.seg$/;

export interface FrameSpoolOptions {
  dir: string;
  /** Pending (unacked) bytes kept at most; the oldest records are dropped past it. Default 256 MiB. */
  maxBytes?: number;
  /** Records older than this are dropped. Default 7 days. */
  maxAgeMs?: number;
  /** A segment is closed and a new one started past this size. Default 8 MiB. */
  segmentBytes?: number;
  /** Make records durable with fsync (default true); false: never fsync (tests, tmpfs). */
  fsync?: boolean;
  /** A pending (unacked) record is fsync'd once it is this old (default 1000 ms; 0 = fsync every append). */
  syncAfterMs?: number;
  /** Payloads of this process's appends kept in memory until acked, at most (default 8 MiB). */
  memoryBytes?: number;
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
  /** The payload, while it is held in memory (this process appended it and memoryBytes allowed). */
  payload: Uint8Array | undefined;
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
  private readonly syncAfterMs: number;
  private readonly memoryBytes: number;
  private heldBytes = 0;
  /** appendedAt of the oldest record written since the last fsync while records are pending; undefined: nothing to sync. */
  private unsyncedSince: number | undefined;
  private ackFd: number | undefined;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly segments: Segment[] = [];
  private pending: Pending[] = [];
  private pendingHead = 0;
  private pendingBytes = 0;
  private nextIndex = 0;
  private ackedNext = 0;
  private fd: number | undefined;
  private readonly header = Buffer.alloc(RECORD_HEADER_BYTES);
  private readonly m = { droppedFrames: 0, truncatedBytes: 0, appendedFrames: 0, ackedFrames: 0 };

  private constructor(opts: FrameSpoolOptions) {
    this.dir = opts.dir;
    this.maxBytes = opts.maxBytes ?? 256 * 1024 * 1024;
    this.maxAgeMs = opts.maxAgeMs ?? 7 * 24 * 3600 * 1000;
    this.segmentBytes = opts.segmentBytes ?? 8 * 1024 * 1024;
    this.doFsync = opts.fsync ?? true;
    this.syncAfterMs = opts.syncAfterMs ?? 1000;
    this.memoryBytes = opts.memoryBytes ?? 8 * 1024 * 1024;
    this.log = opts.logger.child({ spool: opts.dir });
    this.now = opts.now ?? Date.now;
    for (const [k, v] of Object.entries({ maxBytes: this.maxBytes, maxAgeMs: this.maxAgeMs, segmentBytes: this.segmentBytes })) {
      if (!Number.isFinite(v) || v <= 0) throw new WattsplitError('CONFIG_INVALID', `spool ${k}=${JSON.stringify(v)} must be a positive number`, { details: { field: k, value: v } });
    }
    for (const [k, v] of Object.entries({ syncAfterMs: this.syncAfterMs, memoryBytes: this.memoryBytes })) {
      if (!Number.isFinite(v) || v < 0) throw new WattsplitError('CONFIG_INVALID', `spool ${k}=${JSON.stringify(v)} must be a number ≥ 0`, { details: { field: k, value: v } });
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
    // a process that crashed may have left its last records in the page cache only: make them durable now
    if (this.doFsync && this.pendingCount() > 0) for (const seg of this.segments) if (seg.end > this.ackedNext) fsyncFile(seg.file);
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
        this.pending.push({ index: idx, seg: start, offset: off, length: len, appendedAtMs: at, payload: undefined });
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

  /**
   * Appends one encoded frame (written at once, fsync'd now when syncAfterMs is 0, else by `sync()` once it
   * waited that long unacked); drops the oldest pending records first if the limits need it. The spool may
   * keep `payload` until it is acked: do not modify it afterwards.
   */
  append(payload: Uint8Array): number {
    const need = payload.length + RECORD_HEADER_BYTES;
    if (need > this.maxBytes) {
      throw new WattsplitError('SPOOL_FULL', `frame of ${payload.length} bytes is larger than the spool limit maxBytes=${this.maxBytes}`, { details: { field: 'maxBytes', value: this.maxBytes } });
    }
    this.enforceLimits(need);
    let seg = this.segments[this.segments.length - 1];
    if (!seg || seg.bytes >= this.segmentBytes || this.fd === undefined) {
      if (this.fd !== undefined) {
        // records of the segment being closed that still wait for their fsync get it now
        if (this.unsyncedSince !== undefined) fsyncSync(this.fd);
        closeSync(this.fd);
      }
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
    const header = this.header;
    header.writeUInt32LE(payload.length, 0);
    header.writeDoubleLE(at, 8);
    header.writeUInt32LE(crc32(payload, 0, payload.length, crc32(header, 8, RECORD_HEADER_BYTES)), 4);
    writevSync(this.fd, [header, payload]);
    if (this.doFsync && this.syncAfterMs === 0) fsyncSync(this.fd);
    else if (this.doFsync) this.unsyncedSince ??= at;
    const index = this.nextIndex++;
    const held = this.heldBytes + payload.length <= this.memoryBytes;
    if (held) this.heldBytes += payload.length;
    this.pending.push({ index, seg: seg.start, offset: seg.bytes, length: payload.length, appendedAtMs: at, payload: held ? payload : undefined });
    seg.lastOffset = seg.bytes;
    seg.bytes += need;
    seg.end = this.nextIndex;
    this.pendingBytes += need;
    this.m.appendedFrames++;
    return index;
  }

  /** Milliseconds until `sync()` has something to do (0: now), or undefined when every pending record is durable. */
  syncDueInMs(): number | undefined {
    if (this.unsyncedSince === undefined) return undefined;
    return Math.max(0, this.unsyncedSince + this.syncAfterMs - this.now());
  }

  /** fsyncs the records written since the last fsync if any is still pending. */
  sync(): void {
    if (this.unsyncedSince === undefined) return;
    if (this.fd !== undefined) fsyncSync(this.fd);
    this.unsyncedSince = undefined;
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
      this.release(p);
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
        if (p.payload) {
          out.push({ index: p.index, appendedAtMs: p.appendedAtMs, payload: p.payload });
          bytes += p.length;
          continue;
        }
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
      this.release(p);
      this.pendingHead++;
      n++;
    }
    if (n === 0) return;
    this.m.ackedFrames += n;
    this.ackedNext = index + 1;
    // everything written is delivered: nothing left that a power loss could cost
    if (this.pendingCount() === 0) this.unsyncedSince = undefined;
    this.writeAck();
    this.gc();
  }

  /**
   * Overwrites the ack file in place: one pwrite of a fixed-width record on a kept-open fd. Not fsync'd, and
   * a power loss may even tear it: the ack point is advisory. After a crash that cost it, the spool replays
   * frames the gateway already has (or, unreadable, every record kept) and the gateway drops their seqs.
   */
  private writeAck(): void {
    if (this.ackFd === undefined) {
      // an ack file of the older format (replaced by rename, unpadded) is overwritten in place from now on
      this.ackFd = openSync(this.ackFile(), constants.O_WRONLY | constants.O_CREAT, 0o644);
      ftruncateSync(this.ackFd, ACK_RECORD_BYTES);
    }
    writeSync(this.ackFd, JSON.stringify({ next: this.ackedNext }).padEnd(ACK_RECORD_BYTES - 1, ' ') + '\n', 0, 'latin1');
  }

  private release(p: Pending): void {
    this.pendingBytes -= p.length + RECORD_HEADER_BYTES;
    if (p.payload) this.heldBytes -= p.length;
    p.payload = undefined;
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

  /** fsyncs what is pending (see `sync`) and closes the files. Pending records stay on disk for the next open. */
  close(): void {
    if (this.fd !== undefined) {
      this.sync();
      closeSync(this.fd);
    }
    this.fd = undefined;
    if (this.ackFd !== undefined) closeSync(this.ackFd);
    this.ackFd = undefined;
  }
}

function fsyncFile(file: string): void {
  try {
    const fd = openSync(file, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* gone or unreadable: the scan that follows says so */
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

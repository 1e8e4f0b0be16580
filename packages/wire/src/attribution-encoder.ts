/**
 * A direct encoder of AttributionBatch (wattsplit.attribution.v1's payload) from attribution results,
 * byte for byte what the generated `AttributionBatch.encode(toObject(...))` writes, without building
 * a record object per share. The collector publishes one batch per host interval with a record per
 * (method, source, entity): at 50 VMs that is 100-200 records, each repeating the host, interval and
 * method fields. Here those fields are encoded once per result and copied into each of its records;
 * only the share's own fields (kind, VM, tenant, source, joules) are encoded per record.
 *
 * Field presence follows the generated code: a field is written when its value is not null or
 * undefined, in field-number order; map entries of measured_joules in the object's key order.
 */
import protobuf from 'protobufjs/minimal.js';
import { ByteWriter } from './byte-writer.js';

export interface ShareToEncode {
  /** EntityKind wire value (AttributionRecord.kind). */
  kind?: number | null | undefined;
  vmUuid?: string | null | undefined;
  vmName?: string | null | undefined;
  tenant?: string | null | undefined;
  source?: string | null | undefined;
  dynamicJoules?: number | null | undefined;
  staticJoules?: number | null | undefined;
  lowJoules?: number | null | undefined;
  highJoules?: number | null | undefined;
}

export interface ResultToEncode<S> {
  hostId?: string | null | undefined;
  seq?: number | null | undefined;
  t0UnixNs?: number | null | undefined;
  t1UnixNs?: number | null | undefined;
  method?: string | null | undefined;
  modelVersion?: string | null | undefined;
  hardwareClass?: string | null | undefined;
  note?: string | null | undefined;
  shares: readonly S[];
}

/** ByteWriter plus the record fields' writers; callers ensure room for a whole record first. */
class Out extends ByteWriter {
  raw(bytes: Uint8Array): void {
    this.buf.set(bytes, this.off);
    this.off += bytes.length;
  }
  str(tag: number, s: string, byteLen: number): void {
    this.buf[this.off++] = tag;
    this.varint(byteLen);
    if (byteLen === s.length) {
      // ASCII: one byte per char, no native call
      const b = this.buf;
      const o = this.off;
      for (let i = 0; i < byteLen; i++) b[o + i] = s.charCodeAt(i);
    } else this.buf.write(s, this.off, byteLen, 'utf8');
    this.off += byteLen;
  }
  dbl(tag: number, v: number): void {
    this.buf[this.off++] = tag;
    this.buf.writeDoubleLE(v, this.off);
    this.off += 8;
  }
  /** Varint below 2^31 (tags, lengths, small enum values) into room already ensured. */
  varint(n: number): void {
    const b = this.buf;
    while (n > 0x7f) {
      b[this.off++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    b[this.off++] = n;
  }
}

const varintSize = (n: number): number => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5);

/** UTF-8 byte length, without a native call for ASCII. */
function utf8Len(s: string): number {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return Buffer.byteLength(s, 'utf8');
  return s.length;
}

/** Fields 1-4 (host_id, seq, t0, t1): the same numbers in AttributionBatch and AttributionRecord. */
function headerBytes(r: ResultToEncode<unknown>): Uint8Array {
  const w = protobuf.Writer.create();
  if (r.hostId != null) w.uint32(10).string(r.hostId);
  if (r.seq != null) w.uint32(16).uint64(r.seq);
  if (r.t0UnixNs != null) w.uint32(24).int64(r.t0UnixNs);
  if (r.t1UnixNs != null) w.uint32(32).int64(r.t1UnixNs);
  return w.finish();
}

/** Fields 14-17 of AttributionRecord (method, model_version, hardware_class, note). */
function methodBytes(r: ResultToEncode<unknown>): Uint8Array {
  const w = protobuf.Writer.create();
  if (r.method != null) w.uint32(114).string(r.method);
  if (r.modelVersion != null) w.uint32(122).string(r.modelVersion);
  if (r.hardwareClass != null) w.uint32(130).string(r.hardwareClass);
  if (r.note != null) w.uint32(138).string(r.note);
  return w.finish();
}

/**
 * The AttributionBatch of `results` (one host interval, every method): header fields from the first
 * result, one record per share of each result, measured_joules from `measured`. `kindOf` maps a share
 * to its EntityKind wire value.
 */
export function encodeAttributionResults<S extends Omit<ShareToEncode, 'kind'>>(
  results: readonly ResultToEncode<S>[],
  measured: Readonly<Record<string, number>> | undefined,
  kindOf: (share: S) => number | null | undefined,
): Uint8Array {
  const first = results[0];
  if (!first) throw new Error('encodeAttributionResults needs at least one result');
  const head = headerBytes(first);
  let shares = 0;
  for (const r of results) shares += r.shares.length;
  const out = new Out(head.length + 64 + shares * 192);
  out.raw(head);
  for (const r of results) {
    const pre = r === first ? head : headerBytes(r);
    const post = methodBytes(r);
    for (const s of r.shares) {
      const kind = kindOf(s);
      const uuidLen = s.vmUuid != null ? utf8Len(s.vmUuid) : -1;
      const nameLen = s.vmName != null ? utf8Len(s.vmName) : -1;
      const tenantLen = s.tenant != null ? utf8Len(s.tenant) : -1;
      const sourceLen = s.source != null ? utf8Len(s.source) : -1;
      let len = pre.length + post.length;
      if (kind != null) len += 1 + (kind < 0 ? 10 : varintSize(kind));
      if (uuidLen >= 0) len += 1 + varintSize(uuidLen) + uuidLen;
      if (nameLen >= 0) len += 1 + varintSize(nameLen) + nameLen;
      if (tenantLen >= 0) len += 1 + varintSize(tenantLen) + tenantLen;
      if (sourceLen >= 0) len += 1 + varintSize(sourceLen) + sourceLen;
      if (s.dynamicJoules != null) len += 9;
      if (s.staticJoules != null) len += 9;
      if (s.lowJoules != null) len += 9;
      if (s.highJoules != null) len += 9;
      out.ensure(len + 6);
      out.buf[out.off++] = 42; // records = 5, length-delimited
      out.varint(len);
      out.raw(pre);
      if (kind != null) {
        out.buf[out.off++] = 40;
        if (kind < 0) {
          // int32 enum values below 0 are sign-extended to 10 bytes, as protobufjs writes them
          const w = protobuf.Writer.create();
          w.int32(kind);
          out.raw(w.finish());
        } else out.varint(kind);
      }
      if (uuidLen >= 0) out.str(50, s.vmUuid!, uuidLen);
      if (nameLen >= 0) out.str(58, s.vmName!, nameLen);
      if (tenantLen >= 0) out.str(66, s.tenant!, tenantLen);
      if (sourceLen >= 0) out.str(74, s.source!, sourceLen);
      if (s.dynamicJoules != null) out.dbl(81, s.dynamicJoules);
      if (s.staticJoules != null) out.dbl(89, s.staticJoules);
      if (s.lowJoules != null) out.dbl(97, s.lowJoules);
      if (s.highJoules != null) out.dbl(105, s.highJoules);
      out.raw(post);
    }
  }
  if (measured != null) {
    for (const k of Object.keys(measured)) {
      const kl = utf8Len(k);
      const entry = 1 + varintSize(kl) + kl + 9;
      out.ensure(entry + 6);
      out.buf[out.off++] = 50; // measured_joules = 6, map entry
      out.varint(entry);
      out.str(10, k, kl);
      out.dbl(17, measured[k]!);
    }
  }
  return out.bytes();
}

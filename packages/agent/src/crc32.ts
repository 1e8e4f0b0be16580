/**
 * CRC-32 (IEEE 802.3, the zlib polynomial), for spool record checksums: zlib's own (native) where Node has
 * it (≥ 20.15), else this table-driven one, which gives the same values. `seed` chains: crc32(b, crc32(a)) is
 * the CRC of a ‖ b.
 */
import * as zlib from 'node:zlib';

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32Js(buf: Uint8Array, start = 0, end = buf.length, seed = 0): number {
  let c = (seed ^ 0xffffffff) >>> 0;
  for (let i = start; i < end; i++) c = (TABLE[(c ^ (buf[i] ?? 0)) & 0xff] ?? 0) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const native = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

export function crc32(buf: Uint8Array, start = 0, end = buf.length, seed = 0): number {
  if (!native) return crc32Js(buf, start, end, seed);
  return native(start === 0 && end === buf.length ? buf : buf.subarray(start, end), seed) >>> 0;
}

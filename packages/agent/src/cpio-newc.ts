/**
 * Minimal writer of the cpio "newc" format (what the Linux kernel unpacks as an initramfs,
 * Documentation/driver-api/early-userspace/buffer-format.rst): per entry a 110-byte ASCII header
 * "070701" + 13 fields of 8 hex digits (ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
 * devminor, rdevmajor, rdevminor, namesize, check), the NUL-terminated name padded to 4 bytes, the data
 * padded to 4 bytes; ends with the entry "TRAILER!!!". Used by the guest smoke test to build a busybox initramfs.
 */
export interface CpioEntry {
  name: string;
  /** full st_mode, e.g. 0o100755 for an executable file, 0o040755 for a directory */
  mode: number;
  data?: Uint8Array;
}

export function cpioNewc(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  const pad4 = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  const add = (e: CpioEntry) => {
    const data = Buffer.from(e.data ?? new Uint8Array());
    const name = Buffer.from(`${e.name}\0`);
    const f = [ino++, e.mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, name.length, 0];
    const header = Buffer.from(`070701${f.map((x) => x.toString(16).padStart(8, '0')).join('')}`);
    parts.push(header, name, pad4(header.length + name.length), data, pad4(data.length));
  };
  for (const e of entries) add(e);
  add({ name: 'TRAILER!!!', mode: 0 });
  return Buffer.concat(parts);
}

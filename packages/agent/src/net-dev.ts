/**
 * Byte counters of many network interfaces from one read of /proc/<pid>/net/dev, instead of two sysfs
 * files (/sys/class/net/<iface>/statistics/{rx,tx}_bytes) per tap: one syscall a round for every VM's taps.
 *
 * proc(5) /proc/net/dev (the network namespace of the process; /proc/1/net/dev: the host's, where libvirt
 * creates the taps, also when the host's /proc is mounted in a container): two header lines, then one line
 * per interface, "<name>: " then 16 unsigned decimal fields, receive (bytes packets errs drop fifo frame
 * compressed multicast) then transmit (bytes packets errs drop fifo colls carrier compressed). The kernel
 * fills both this file and the sysfs statistics from dev_get_stats(), so the values are the same.
 */

/** rx and tx bytes of the interfaces in `wanted` that the file lists (others are left out). */
export function parseNetDev(text: string, wanted: ReadonlySet<string>): Map<string, { rx: number; tx: number }> {
  const out = new Map<string, { rx: number; tx: number }>();
  let i = text.indexOf('\n');
  i = i < 0 ? text.length : text.indexOf('\n', i + 1); // skip the two header lines
  if (i < 0) return out;
  i++;
  while (i < text.length) {
    let end = text.indexOf('\n', i);
    if (end < 0) end = text.length;
    const colon = text.indexOf(':', i);
    if (colon > 0 && colon < end) {
      const name = text.slice(i, colon).trim();
      if (wanted.has(name)) {
        let rx = NaN;
        let tx = NaN;
        let field = 0;
        let k = colon + 1;
        while (k < end && field <= 8) {
          while (k < end && text.charCodeAt(k) === 0x20) k++;
          let v = 0;
          const start = k;
          for (let c = text.charCodeAt(k); k < end && c >= 0x30 && c <= 0x39; c = text.charCodeAt(++k)) v = v * 10 + (c - 0x30);
          if (k === start) break; // not a number: the line is not what proc(5) describes
          if (k - start > 15) v = Number(text.slice(start, k));
          if (field === 0) rx = v;
          else if (field === 8) tx = v;
          field++;
        }
        if (Number.isFinite(rx) && Number.isFinite(tx)) out.set(name, { rx, tx });
      }
    }
    i = end + 1;
  }
  return out;
}

/** The host's network namespace's interface counters (pid 1's), under the agent's sysfs root. */
export const NET_DEV_FILE = '/proc/1/net/dev';

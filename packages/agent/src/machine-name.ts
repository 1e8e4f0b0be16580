/**
 * Where libvirt puts a qemu domain's cgroup.
 *
 * libvirt (src/hypervisor/domain_driver.c, virDomainDriverGenerateMachineName): the machine name is
 * "qemu-<id>-<name>" where <name> keeps only hostname characters [A-Za-z0-9-], skips leading dots and
 * stops at 64 characters; trailing '-' are trimmed.
 * cgroup v2 with systemd (machined): /sys/fs/cgroup/machine.slice/machine-<escaped>.scope, where
 * <escaped> is systemd's unit-name escaping (systemd-escape): '-' → "\x2d", and every byte outside
 * [A-Za-z0-9:_.] (and a leading '.') → "\xNN".
 * cgroup v1 without systemd: /sys/fs/cgroup/<controller>/machine/<machine name>.libvirt-qemu
 */
const HOSTNAME_CHARS = /[A-Za-z0-9-]/;

export function libvirtMachineName(id: number, name: string): string {
  let out = `qemu-${id}-`;
  let skip = true;
  for (const ch of name) {
    if (out.length >= 64) break;
    if (ch === '.' && skip) continue;
    skip = false;
    if (!HOSTNAME_CHARS.test(ch)) continue;
    out += ch;
  }
  return out.replace(/-+$/, '');
}

/** systemd's unit-name escaping of one path component (systemd-escape without --path). */
export function systemdEscape(s: string): string {
  let out = '';
  const bytes = Buffer.from(s, 'utf8');
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] ?? 0;
    const c = String.fromCharCode(b);
    const plain = /[A-Za-z0-9:_]/.test(c) || (c === '.' && i > 0);
    out += plain && b < 0x80 ? c : `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** The inverse of systemdEscape. */
export function systemdUnescape(s: string): string {
  return Buffer.from(
    s.replace(/\\x([0-9a-fA-F]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))),
    'latin1',
  ).toString('utf8');
}

/** cgroup path of the VM relative to the cgroup v2 root ("/machine.slice/machine-qemu\x2d3\x2dweb.scope"). */
export function cgroupV2Path(id: number, name: string): string {
  return `/machine.slice/machine-${systemdEscape(libvirtMachineName(id, name))}.scope`;
}

/** cgroup path relative to a v1 controller root ("/machine/qemu-3-web.libvirt-qemu"). */
export function cgroupV1Path(id: number, name: string): string {
  return `/machine/${libvirtMachineName(id, name)}.libvirt-qemu`;
}

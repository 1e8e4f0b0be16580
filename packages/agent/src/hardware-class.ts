/**
 * Hardware class the models are keyed by, derived from the CPU model (/proc/cpuinfo "model name",
 * sockets from "physical id") and the GPU names: "xeon-platinum-8480+x2+h100-80gb-hbm3x8".
 */
import type { HostFs } from '@wattsplit/wire';

export function slugModel(s: string): string {
  return s
    .toLowerCase()
    .replace(/\((r|tm)\)/g, '')
    .replace(/@.*$/, '')
    .replace(/\b(intel|amd|nvidia|cpu|processor|\d+-core)\b/g, '')
    .trim()
    .replace(/[^a-z0-9+]+/g, '-')
    .replace(/^-+|-+$/g, '');
}

export function deriveHardwareClass(fs: HostFs, gpuNames: string[]): string {
  let cpu = 'unknown-cpu';
  let sockets = 1;
  try {
    const text = fs.readText('/proc/cpuinfo');
    const m = /^model name\s*:\s*(.+)$/m.exec(text);
    if (m?.[1]) cpu = slugModel(m[1]) || cpu;
    const ids = new Set<string>();
    for (const x of text.matchAll(/^physical id\s*:\s*(\d+)$/gm)) ids.add(x[1] ?? '0');
    sockets = Math.max(1, ids.size);
  } catch {
    /* no /proc/cpuinfo (fixture without it): unknown CPU */
  }
  let cls = sockets > 1 ? `${cpu}x${sockets}` : cpu;
  const counts = new Map<string, number>();
  for (const n of gpuNames) counts.set(slugModel(n), (counts.get(slugModel(n)) ?? 0) + 1);
  for (const [g, n] of [...counts].sort()) cls += `+${g}x${n}`;
  return cls;
}

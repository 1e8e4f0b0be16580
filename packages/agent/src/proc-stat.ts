/**
 * Host CPU accounting from /proc/stat and CPU frequency from cpufreq.
 *
 * proc(5): the first line "cpu  user nice system idle iowait irq softirq steal guest guest_nice" sums
 * all CPUs, in USER_HZ ticks (100 per second); "cpuN ..." lines follow, one per online CPU. guest and
 * guest_nice are already included in user and nice, so they are not added again.
 * cpufreq (Documentation/admin-guide/pm/cpufreq.rst): /sys/devices/system/cpu/cpu<N>/cpufreq/
 * scaling_cur_freq is the current frequency in kHz; optional (see CpuFreqReader for how many are read a round).
 */
import { WattsplitError, type HostFs, type IHostCpu } from '@wattsplit/wire';
import { readUint } from './host-fs.js';

const NS_PER_TICK = 10_000_000; // USER_HZ = 100

/** /\s/ over latin1: space, \t \n \v \f \r, no-break space */
function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d) || c === 0xa0;
}

/**
 * One pass over the "cpu" line's characters, no regex, no arrays: it runs every second, and the split/map version
 * was TurboFan-compiled 45 s after start (8–20 ms on the main thread) and deoptimised at once (docs/benchmarks.md,
 * "JIT warm-up"). A field that is not plain digits is read as Number(text) reads it, or named in the error.
 */
export function parseProcStat(text: string, file = '/proc/stat'): IHostCpu {
  let eol = text.indexOf('\n');
  if (eol < 0) eol = text.length;
  let user = 0;
  let nice = 0;
  let system = 0;
  let idle = 0;
  let iowait = 0;
  let irq = 0;
  let softirq = 0;
  let steal = 0;
  let badField = 0;
  let badValue = '';
  let tokens = 0;
  let isCpu = false;
  for (let i = 0; ; ) {
    while (i < eol && isSpace(text.charCodeAt(i))) i++;
    if (i >= eol) break;
    const start = i;
    let v = 0;
    let digits = true;
    for (; i < eol; i++) {
      const c = text.charCodeAt(i);
      if (isSpace(c)) break;
      if (c >= 0x30 && c <= 0x39) v = v * 10 + (c - 0x30);
      else digits = false;
    }
    if (tokens === 0) isCpu = i - start === 3 && text.startsWith('cpu', start);
    else {
      if (!digits || i - start > 15) {
        // not plain digits, or past a double's exact digits: as Number(text) reads it
        const p = text.slice(start, i);
        v = Number(p);
        if ((!Number.isFinite(v) || v < 0) && badField === 0) {
          badField = tokens;
          badValue = p;
        }
      }
      switch (tokens) {
        case 1: user = v; break;
        case 2: nice = v; break;
        case 3: system = v; break;
        case 4: idle = v; break;
        case 5: iowait = v; break;
        case 6: irq = v; break;
        case 7: softirq = v; break;
        case 8: steal = v; break;
        default: // guest, guest_nice: already in user and nice
      }
    }
    tokens++;
  }
  if (!isCpu || tokens < 5) {
    const first = text.slice(0, eol);
    throw new WattsplitError('SENSOR_READ_FAILED', `${file}: first line must be "cpu user nice system idle ...", got ${JSON.stringify(first.slice(0, 80))}`, { details: { file, value: first.slice(0, 80) } });
  }
  if (badField > 0) throw new WattsplitError('SENSOR_READ_FAILED', `${file}: field ${badField} of the cpu line is ${JSON.stringify(badValue)}, not a tick count`, { details: { file, field: badField, value: badValue } });
  // "cpuN " lines (one per online CPU) follow the first; counted without splitting the file into lines
  let online = 0;
  for (let i = text.indexOf('\ncpu'); i >= 0; i = text.indexOf('\ncpu', i + 4)) {
    let k = i + 4;
    while (k < text.length && text.charCodeAt(k) >= 0x30 && text.charCodeAt(k) <= 0x39) k++;
    const after = text.charCodeAt(k);
    if (k > i + 4 && (after === 0x20 || after === 0x09 || after === 0x0b || after === 0x0c || after === 0x0d)) online++;
  }
  return {
    busyNs: (user + nice + system + irq + softirq + steal) * NS_PER_TICK,
    idleNs: (idle + iowait) * NS_PER_TICK,
    onlineCpus: online,
    avgFreqMhz: 0,
  };
}

const CPU_DIR = '/sys/devices/system/cpu';

/** Files of scaling_cur_freq that exist, found once. */
export function discoverFreqFiles(fs: HostFs): string[] {
  if (!fs.exists(CPU_DIR)) return [];
  const out: string[] = [];
  for (const e of fs.readDir(CPU_DIR)) {
    if (!/^cpu\d+$/.test(e)) continue;
    const f = `${CPU_DIR}/${e}/cpufreq/scaling_cur_freq`;
    if (fs.exists(f)) out.push(f);
  }
  return out;
}

/**
 * Mean CPU frequency from scaling_cur_freq, reading at most `perRound` CPUs a round (all of them the first
 * time): the mean is over every CPU's latest reading, each at most ⌈CPUs / perRound⌉ rounds old. The files
 * are instantaneous readings, not interval means, so the value was a sample anyway; reading all 64 (or 256)
 * every second was an eighth of the agent's file reads at 50 VMs, and on some drivers each read interrupts
 * that CPU.
 */
export class CpuFreqReader {
  private readonly khz: Float64Array;
  private next = 0;
  private first = true;

  constructor(
    private readonly fs: HostFs,
    readonly files: readonly string[],
    private readonly perRound = 16,
  ) {
    this.khz = new Float64Array(files.length);
  }

  /** Reads this round's share of CPUs; the mean of the latest readings, MHz (0 when none readable). */
  read(): number {
    const n = this.files.length;
    const count = this.first ? n : Math.min(n, this.perRound);
    this.first = false;
    for (let j = 0; j < count; j++) {
      const i = this.next;
      this.next = (i + 1) % n;
      let v = 0;
      try {
        v = readUint(this.fs, this.files[i] as string);
      } catch {
        /* CPU went offline: no reading */
      }
      this.khz[i] = Number.isFinite(v) && v > 0 ? v : 0;
    }
    let sum = 0;
    let known = 0;
    for (let i = 0; i < n; i++) {
      const v = this.khz[i] as number;
      if (v > 0) {
        sum += v;
        known++;
      }
    }
    return known === 0 ? 0 : Math.round(sum / known / 1000);
  }
}

/** Mean of scaling_cur_freq over `files`, MHz; 0 when none readable. */
export function readAvgFreqMhz(fs: HostFs, files: string[]): number {
  let sum = 0;
  let n = 0;
  for (const f of files) {
    try {
      const khz = Number(fs.readText(f).trim());
      if (Number.isFinite(khz) && khz > 0) {
        sum += khz;
        n++;
      }
    } catch {
      /* CPU went offline: skip it this round */
    }
  }
  return n === 0 ? 0 : Math.round(sum / n / 1000);
}

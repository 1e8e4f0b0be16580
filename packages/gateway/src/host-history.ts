/**
 * What the gateway remembers per host, bounded: which of the last N seqs were produced, per boot id (to
 * ack resends without producing them again), and the counters of the last produced frame (to flag
 * counters that went backwards within one boot). Hosts are kept in an LRU of `maxHosts`.
 *
 * Memory: N bits per (host, boot), at most MAX_BOOTS_PER_HOST boots per host: with the defaults
 * (N = 4096, 50 000 hosts) 25 MiB for one boot per host, whatever agents send.
 */
import type { FrameView, ITelemetryFrame } from '@wattsplit/wire';

/**
 * Which seqs in the window (maxSeq - size, maxSeq] were produced: a ring of `size` bits. Seqs older than
 * the window are forgotten (a resend that old is produced again: at-least-once, the aligner drops it).
 */
export class SeqWindow {
  private readonly bits: Uint32Array;
  private maxSeq = 0;
  constructor(readonly size: number) {
    this.bits = new Uint32Array(Math.ceil(size / 32));
  }
  private bit(seq: number): [number, number] {
    const i = seq % this.size;
    return [i >>> 5, 1 << (i & 31)];
  }
  has(seq: number): boolean {
    if (seq > this.maxSeq || seq <= this.maxSeq - this.size) return false;
    const [w, m] = this.bit(seq);
    return (this.bits[w]! & m) !== 0;
  }
  add(seq: number): void {
    if (seq <= this.maxSeq - this.size) return;
    if (seq > this.maxSeq) {
      const steps = Math.min(seq - this.maxSeq, this.size);
      for (let k = 0; k < steps; k++) {
        const [w, m] = this.bit(seq - k);
        this.bits[w] = this.bits[w]! & ~m;
      }
      this.maxSeq = seq;
    }
    const [w, m] = this.bit(seq);
    this.bits[w] = this.bits[w]! | m;
  }
}

/** Boots remembered per host: an agent restart starts a new boot; replays of older boots stay deduplicated. */
export const MAX_BOOTS_PER_HOST = 4;

/** Produced seqs of one host, per boot id (a host reinstalled without its seq state restarts at 1 under a new boot). */
export class ProducedSeqs {
  private readonly boots = new Map<string, SeqWindow>();
  constructor(readonly size: number) {}
  has(boot: string, seq: number): boolean {
    return this.boots.get(boot)?.has(seq) ?? false;
  }
  add(boot: string, seq: number): void {
    let w = this.boots.get(boot);
    if (w) this.boots.delete(boot);
    else w = new SeqWindow(this.size);
    this.boots.set(boot, w);
    w.add(seq);
    while (this.boots.size > MAX_BOOTS_PER_HOST) {
      const oldest = this.boots.keys().next();
      if (oldest.done) break;
      this.boots.delete(oldest.value);
    }
  }
}

/**
 * The counters of a host's last produced frame, enough to compare the next one: ids and values in arrays
 * in the frame's order (an agent sends its counters and VMs in the same order frame after frame, so the
 * next frame is matched by position; a lookup map is built only when an id is not where it was). Per
 * host this is three arrays per kind instead of a Map entry and an object per counter and VM. wire's
 * `FrameView` (a scanned frame) has this layout, so a scanned frame's view is kept as its LastFrame as it is;
 * a decoded frame's is built by `lastFrameOf`.
 */
export interface LastFrame extends Pick<FrameView, 'seq' | 'bootId' | 'counterIds' | 'counterValues' | 'counterRanges' | 'vmUuids' | 'vmCpuNs' | 'vmStartedNs'> {
  /** Built on the first lookup that misses by position. */
  counterIndex?: Map<string, number>;
  vmIndex?: Map<string, number>;
}

export interface HostState {
  produced: ProducedSeqs;
  /** Frames being produced right now (maybe by another stream of the same host), by `boot \0 seq`: resolves true once durable. */
  pending: Map<string, Promise<boolean>>;
  last: LastFrame | undefined;
}

export class HostHistory {
  private readonly hosts = new Map<string, HostState>();
  constructor(
    readonly maxHosts: number,
    readonly seqsPerHost: number,
  ) {}

  get(host: string): HostState {
    let s = this.hosts.get(host);
    if (s) {
      this.hosts.delete(host);
    } else {
      s = { produced: new ProducedSeqs(this.seqsPerHost), pending: new Map(), last: undefined };
    }
    this.hosts.set(host, s);
    while (this.hosts.size > this.maxHosts) {
      const oldest = this.hosts.keys().next();
      if (oldest.done) break;
      this.hosts.delete(oldest.value);
    }
    return s;
  }

  get size(): number {
    return this.hosts.size;
  }
}

export function lastFrameOf(f: ITelemetryFrame): LastFrame {
  const cs = f.counters ?? [];
  let nc = 0;
  for (let i = 0; i < cs.length; i++) if (cs[i]!.id && !cs[i]!.error) nc++;
  const counterIds = new Array<string>(nc);
  const counterValues = new Float64Array(nc);
  const counterRanges = new Float64Array(nc);
  for (let i = 0, k = 0; i < cs.length; i++) {
    const c = cs[i]!;
    if (!c.id || c.error) continue;
    counterIds[k] = c.id;
    counterValues[k] = Number(c.value ?? 0);
    counterRanges[k] = Number(c.maxRange ?? 0);
    k++;
  }
  const vs = f.vms ?? [];
  let nv = 0;
  for (let i = 0; i < vs.length; i++) if (vs[i]!.uuid) nv++;
  const vmUuids = new Array<string>(nv);
  const vmCpuNs = new Float64Array(nv);
  const vmStartedNs = new Float64Array(nv);
  for (let i = 0, k = 0; i < vs.length; i++) {
    const vm = vs[i]!;
    if (!vm.uuid) continue;
    vmUuids[k] = vm.uuid;
    vmCpuNs[k] = Number(vm.cpuTimeNs ?? 0);
    vmStartedNs[k] = Number(vm.startedMonoNs ?? 0);
    k++;
  }
  return { seq: Number(f.seq ?? 0), bootId: f.bootId ?? '', counterIds, counterValues, counterRanges, vmUuids, vmCpuNs, vmStartedNs };
}

/** Position of each id (ids are unique within a frame: validateFrame refuses repeated counter ids and VM uuids). */
function positions(ids: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i < ids.length; i++) m.set(ids[i]!, i);
  return m;
}

/** Index of counter `id` in the last frame: at `hint` when it is there (the same order as then), else through a map built once. */
function counterAt(prev: LastFrame, hint: number, id: string): number {
  if (hint < prev.counterIds.length && prev.counterIds[hint] === id) return hint;
  return (prev.counterIndex ??= positions(prev.counterIds)).get(id) ?? -1;
}

/** Index of VM `uuid` in the last frame, like counterAt. */
function vmAt(prev: LastFrame, hint: number, uuid: string): number {
  if (hint < prev.vmUuids.length && prev.vmUuids[hint] === uuid) return hint;
  return (prev.vmIndex ??= positions(prev.vmUuids)).get(uuid) ?? -1;
}

/**
 * Counters of frame `cur` (its LastFrame: `lastFrameOf` of a decoded frame, or wire's FrameView of a scanned
 * one) that went backwards against the previous frame `prev` of the same host and boot.
 * Returns a short description per counter, e.g. `intel-rapl:0 5000000->4000000` (empty = none).
 *
 * A counter with a wrap range (RAPL `max_energy_range_uj`) that decreases is a wrap, not an anomaly,
 * when the delta implied by the wrap (`max_range - prev + cur`) is under half the range: at 1 Hz
 * sampling a real wrap moves the counter by a small fraction of its range. 64-bit counters
 * (`max_range` 0) and per-VM CPU time never legitimately decrease within a boot (a VM restart is seen
 * by its `started_mono_ns` changing). Counters with an error and VMs without a uuid are not in a LastFrame,
 * so they are never compared.
 */
export function lastFrameWentBackwards(prev: LastFrame, cur: LastFrame): string[] {
  if (prev.bootId !== cur.bootId || cur.seq <= prev.seq) return [];
  const out: string[] = [];
  const ids = cur.counterIds;
  for (let i = 0, hint = 0; i < ids.length; i++) {
    const id = ids[i]!;
    const k = counterAt(prev, hint, id);
    if (k < 0) continue;
    hint = k + 1;
    const pValue = prev.counterValues[k]!;
    const value = cur.counterValues[i]!;
    if (value >= pValue) continue;
    const range = cur.counterRanges[i]! || prev.counterRanges[k]!;
    if (range > 0 && range - pValue + value < range / 2) continue; // a wrap
    out.push(`${id} ${pValue}->${value}`);
  }
  const uuids = cur.vmUuids;
  for (let i = 0, hint = 0; i < uuids.length; i++) {
    const uuid = uuids[i]!;
    const k = vmAt(prev, hint, uuid);
    if (k < 0) continue;
    hint = k + 1;
    const cpu = cur.vmCpuNs[i]!;
    if (prev.vmStartedNs[k] !== cur.vmStartedNs[i] || cpu >= prev.vmCpuNs[k]!) continue;
    out.push(`vm:${uuid}:cpu_time_ns ${prev.vmCpuNs[k]}->${cpu}`);
  }
  return out;
}

/** lastFrameWentBackwards for a decoded frame. */
export function countersWentBackwards(prev: LastFrame, f: ITelemetryFrame): string[] {
  return lastFrameWentBackwards(prev, lastFrameOf(f));
}

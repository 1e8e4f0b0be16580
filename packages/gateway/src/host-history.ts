/**
 * What the gateway remembers per host, bounded: which of the last N seqs were produced, per boot id (to
 * ack resends without producing them again), and the counters of the last produced frame (to flag
 * counters that went backwards within one boot). Hosts are kept in an LRU of `maxHosts`.
 *
 * Memory: N bits per (host, boot), at most MAX_BOOTS_PER_HOST boots per host: with the defaults
 * (N = 4096, 50 000 hosts) 25 MiB for one boot per host, whatever agents send.
 */
import type { ITelemetryFrame } from '@wattsplit/wire';

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

/** The counters of a host's last produced frame, enough to compare the next one. */
export interface LastFrame {
  seq: number;
  bootId: string;
  counters: Map<string, { value: number; maxRange: number }>;
  vmCpu: Map<string, { cpuTimeNs: number; startedMonoNs: number }>;
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
  const counters = new Map<string, { value: number; maxRange: number }>();
  for (const c of f.counters ?? []) if (c.id && !c.error) counters.set(c.id, { value: Number(c.value ?? 0), maxRange: Number(c.maxRange ?? 0) });
  const vmCpu = new Map<string, { cpuTimeNs: number; startedMonoNs: number }>();
  for (const vm of f.vms ?? []) if (vm.uuid) vmCpu.set(vm.uuid, { cpuTimeNs: Number(vm.cpuTimeNs ?? 0), startedMonoNs: Number(vm.startedMonoNs ?? 0) });
  return { seq: Number(f.seq ?? 0), bootId: f.bootId ?? '', counters, vmCpu };
}

/**
 * Counters of `f` that went backwards against the previous frame `prev` of the same host and boot.
 * Returns a short description per counter, e.g. `intel-rapl:0 5000000->4000000` (empty = none).
 *
 * A counter with a wrap range (RAPL `max_energy_range_uj`) that decreases is a wrap, not an anomaly,
 * when the delta implied by the wrap (`max_range - prev + cur`) is under half the range: at 1 Hz
 * sampling a real wrap moves the counter by a small fraction of its range. 64-bit counters
 * (`max_range` 0) and per-VM CPU time never legitimately decrease within a boot (a VM restart is seen
 * by its `started_mono_ns` changing).
 */
export function countersWentBackwards(prev: LastFrame, f: ITelemetryFrame): string[] {
  if (prev.bootId !== (f.bootId ?? '') || Number(f.seq ?? 0) <= prev.seq) return [];
  const out: string[] = [];
  for (const c of f.counters ?? []) {
    if (!c.id || c.error) continue;
    const p = prev.counters.get(c.id);
    const cur = Number(c.value ?? 0);
    if (!p || cur >= p.value) continue;
    const range = Number(c.maxRange ?? 0) || p.maxRange;
    if (range > 0 && range - p.value + cur < range / 2) continue; // a wrap
    out.push(`${c.id} ${p.value}->${cur}`);
  }
  for (const vm of f.vms ?? []) {
    if (!vm.uuid) continue;
    const p = prev.vmCpu.get(vm.uuid);
    const cur = Number(vm.cpuTimeNs ?? 0);
    if (!p || p.startedMonoNs !== Number(vm.startedMonoNs ?? 0) || cur >= p.cpuTimeNs) continue;
    out.push(`vm:${vm.uuid}:cpu_time_ns ${p.cpuTimeNs}->${cur}`);
  }
  return out;
}

/**
 * What the gateway remembers per host, bounded: the last N produced seqs (to ack resends without
 * producing them again) and the counters of the last produced frame (to flag counters that went
 * backwards within one boot). Hosts themselves are kept in an LRU of `maxHosts`.
 */
import type { ITelemetryFrame } from '@wattsplit/wire';

/** A Set that forgets its least recently added/touched members beyond `capacity`. */
export class BoundedLru<K> {
  private readonly items = new Map<K, true>();
  constructor(readonly capacity: number) {}
  has(k: K): boolean {
    return this.items.has(k);
  }
  add(k: K): void {
    this.items.delete(k);
    this.items.set(k, true);
    while (this.items.size > this.capacity) {
      const oldest = this.items.keys().next();
      if (oldest.done) break;
      this.items.delete(oldest.value);
    }
  }
  get size(): number {
    return this.items.size;
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
  produced: BoundedLru<number>;
  /** Seqs being produced right now (maybe by another stream of the same host): resolves true once durable. */
  pending: Map<number, Promise<boolean>>;
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
      s = { produced: new BoundedLru<number>(this.seqsPerHost), pending: new Map(), last: undefined };
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

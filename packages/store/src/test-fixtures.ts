/** Hand-built host intervals and attribution results for the store's tests (and the collector's). */
import type { AttributionResult, AttributionShare, HostInterval, SourceName, VmInterval } from '@wattsplit/attribution';
import type { HostResumeState, Store, StoredInterval, StoredRange } from './store.js';

export const HOUR_NS = 3_600_000_000_000;

export function sampleVm(uuid: string, tenant: string, cpuSeconds: number): VmInterval {
  return {
    uuid,
    name: `vm-${uuid.slice(0, 4)}`,
    tenant,
    vcpus: 4,
    memoryBytes: 8 * 2 ** 30,
    cpuSeconds,
    vcpuSeconds: [cpuSeconds / 2, cpuSeconds / 2],
    memoryUsedBytes: 2 ** 30,
    blockReadBytes: 4096,
    blockWriteBytes: 8192,
    netRxBytes: 100,
    netTxBytes: 200,
    perf: { cycles: 1e9, instructions: 2e9, llcMisses: 1e6, llcReferences: 1e7 },
    gpus: [{ device: '0000:17:00.0', smUtilPct: 50.5, memUtilPct: 20, utilSamples: 6, usedMemoryBytes: 2 ** 32, holdsContext: true, passthrough: false }],
    presence: 1,
    state: 'running',
  };
}

export function sampleInterval(hostId: string, seq: number, t1UnixNs: number): HostInterval {
  return {
    hostId,
    hardwareClass: 'xeon-test+h100x1',
    seq,
    prevSeq: seq - 1,
    t0UnixNs: t1UnixNs - 1e9,
    t1UnixNs,
    durationS: 1,
    measured: { rapl: 200 + seq, gpu: 300, bmc_rest: 50 },
    raplZones: { 'intel-rapl:0': 150 + seq, 'intel-rapl:1': 50 },
    gpus: [{ device: '0000:17:00.0', joules: 300, contexts: 2, meanPowerW: 300, gpuUtilPct: 60, gpuUtilMeanPct: 57.5, gpuUtilSamples: 6, memUtilPct: 20, smClockMhz: 1755 }],
    hostCpu: { busySeconds: 3.5, idleSeconds: 60.5, onlineCpus: 64, avgFreqMhz: 2100 },
    vms: [sampleVm(`aaaa-${hostId}`, 'acme', 1.5), sampleVm(`bbbb-${hostId}`, 'globex', 0.5)],
    anomalies: [{ code: 'COUNTER_RESET', message: 'intel-rapl:1 went from 5 to 1', counterId: 'intel-rapl:1' }],
  };
}

/** A conserving CPU-share-like split: VMs by cpuSeconds, 10 % static to unallocated. */
export function sampleResult(i: HostInterval, method = 'cpu_share'): AttributionResult {
  const shares: AttributionShare[] = [];
  const total = i.vms.reduce((a, v) => a + v.cpuSeconds, 0);
  for (const source of ['rapl', 'gpu', 'bmc_rest'] as SourceName[]) {
    const m = i.measured[source];
    const st = m * 0.1;
    for (const v of i.vms) {
      const d = ((m - st) * v.cpuSeconds) / total;
      shares.push({ kind: 'vm', vmUuid: v.uuid, vmName: v.name, tenant: v.tenant, source, dynamicJoules: d, staticJoules: 0, lowJoules: d * 0.9, highJoules: d * 1.1 });
    }
    shares.push({ kind: 'unallocated', vmUuid: '', vmName: '', tenant: '', source, dynamicJoules: 0, staticJoules: st, lowJoules: st, highJoules: st });
  }
  return { hostId: i.hostId, seq: i.seq, t0UnixNs: i.t0UnixNs, t1UnixNs: i.t1UnixNs, method, modelVersion: 'v0', hardwareClass: i.hardwareClass, note: '', shares, measured: { ...i.measured } };
}

/**
 * Store.resumeState(hosts) against the single-host calls it replaces, for every host asked for (the same host
 * twice, hosts with nothing stored included): the same checkpoint and stored floor, field by field.
 */
export async function resumeStateMatchesSingleCalls(
  store: Pick<Store, 'resumeState' | 'loadCheckpoint' | 'highestStoredSeq'>,
  hosts: readonly string[],
): Promise<{ host: string; want: HostResumeState; got: HostResumeState | undefined }[]> {
  const got = await store.resumeState(hosts);
  const out: { host: string; want: HostResumeState; got: HostResumeState | undefined }[] = [];
  for (const host of new Set(hosts)) {
    const checkpoint = await store.loadCheckpoint(host);
    const floor = await store.highestStoredSeq(host);
    out.push({ host, want: { ...(checkpoint ? { checkpoint } : {}), ...(floor ? { floor } : {}) }, got: got.get(host) });
  }
  return out;
}

/**
 * Store.storedIntervalRanges against storedIntervals asked seq by seq over the same ranges: the batched
 * lookup of a resume must answer what the per-frame checks would (a seq storedIntervals does not list is
 * not stored).
 */
export async function storedRangesMatchSingleCalls(
  store: Pick<Store, 'storedIntervalRanges' | 'storedIntervals'>,
  ranges: readonly StoredRange[],
): Promise<{ host: string; want: StoredInterval[]; got: StoredInterval[] | undefined }[]> {
  const got = await store.storedIntervalRanges(ranges);
  const out: { host: string; want: StoredInterval[]; got: StoredInterval[] | undefined }[] = [];
  for (const r of ranges) {
    const seqs: number[] = [];
    for (let q = r.afterSeq + 1; q <= r.toSeq; q++) seqs.push(q);
    out.push({ host: r.hostId, want: await store.storedIntervals(r.hostId, seqs), got: got.get(r.hostId) });
  }
  return out;
}

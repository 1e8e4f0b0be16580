import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkConservation, type AttributionContext, type GpuInterval, type HostInterval } from '@wattsplit/attribution';
import { GpuTimeSliceMethod, deviceBusyFraction } from './index.js';
import { synthHost } from './test-hosts.js';

const ctx: AttributionContext = { policy: 'equal', staticPower: { watts: { rapl: 123, gpu: 150, bmc_rest: 42 }, origin: 'configured' } };

test('time-sliced GPU: each VM\'s dynamic GPU energy within 3 % of truth after warm-up (SM-time share is far off); passthrough goes whole to its VM', () => {
  const { intervals, truthGpu } = synthHost({ seed: 21, seconds: 1500, gpu: { dynW: [560, 300], idleW: 130, passthroughW: 400 } });
  const m = new GpuTimeSliceMethod({ minWindows: 100 });
  const got: Record<string, number> = {};
  const base: Record<string, number> = {};
  const truth: Record<string, number> = {};
  intervals.forEach((iv, i) => {
    // causal: each interval is split with what the learner saw before it, then observed
    const r = m.attribute(iv, ctx);
    m.observe(iv);
    assert.deepEqual(checkConservation(r), []);
    if (i < 100) {
      assert.match(r.note, /gpu 0000:17:00\.0: warming up/);
      return;
    }
    assert.equal(r.note, '');
    const a = iv.vms[0]!.gpus[0]!.smUtilPct;
    const b = iv.vms[1]!.gpus[0]!.smUtilPct;
    const dyn = iv.gpus[0]!.joules - (m.fitOf('h1', '0000:17:00.0')!.staticW * iv.durationS);
    for (const s of r.shares) if (s.source === 'gpu' && (s.vmUuid === 'vm-0' || s.vmUuid === 'vm-1')) got[s.vmUuid] = (got[s.vmUuid] ?? 0) + s.dynamicJoules;
    if (a + b > 0) {
      base['vm-0'] = (base['vm-0'] ?? 0) + (dyn * a) / (a + b);
      base['vm-1'] = (base['vm-1'] ?? 0) + (dyn * b) / (a + b);
    }
    // passthrough: the whole device to vm-2
    const vm2 = r.shares.filter((s) => s.source === 'gpu' && s.vmUuid === 'vm-2').reduce((x, s) => x + s.dynamicJoules + s.staticJoules, 0);
    assert.ok(Math.abs(vm2 - 400) < 1e-6, `vm-2 got ${vm2}`);
  });
  for (const k of ['vm-0', 'vm-1']) truth[k] = truthGpu[k]!;
  const fit = m.fitOf('h1', '0000:17:00.0')!;
  assert.ok(Math.abs(fit.staticW - 130) < 5, `static ${fit.staticW}`);
  assert.ok(Math.abs(fit.signatures['vm-0']! - 560 / 0.99) / (560 / 0.99) < 0.03, JSON.stringify(fit.signatures));
  assert.ok(Math.abs(fit.signatures['vm-1']! - 300 / 0.99) / (300 / 0.99) < 0.03, JSON.stringify(fit.signatures));
  const ratioGot = got['vm-0']! / (got['vm-0']! + got['vm-1']!);
  const ratioBase = base['vm-0']! / (base['vm-0']! + base['vm-1']!);
  const ratioTrue = truth['vm-0']! / (truth['vm-0']! + truth['vm-1']!);
  assert.ok(Math.abs(ratioGot / ratioTrue - 1) < 0.03, `model ${ratioGot} vs true ${ratioTrue}`);
  assert.ok(Math.abs(ratioBase / ratioTrue - 1) > 0.05, `baseline ${ratioBase} vs true ${ratioTrue}`);
});

test('a host without GPUs passes the base method through, named gpu_signature', () => {
  const { intervals } = synthHost({ seed: 1, seconds: 2 });
  const r = new GpuTimeSliceMethod().attribute(intervals[0]!, ctx);
  assert.equal(r.method, 'gpu_signature');
  assert.equal(r.modelVersion, 'cpu_share:1');
  assert.deepEqual(checkConservation(r), []);
});

test('the device\'s busy fraction: the mean of its utilisation samples when the interval has any, else the closing point read', () => {
  const g: GpuInterval = { device: 'd', joules: 1, contexts: 1, meanPowerW: 1, gpuUtilPct: 100, memUtilPct: 0, smClockMhz: 0 };
  assert.equal(deviceBusyFraction(g), 1);
  assert.equal(deviceBusyFraction({ ...g, gpuUtilMeanPct: 37.5, gpuUtilSamples: 6 }), 0.375);
  assert.equal(deviceBusyFraction({ ...g, gpuUtilMeanPct: 37.5, gpuUtilSamples: 0 }), 1, 'no samples: the point read');
  assert.equal(deviceBusyFraction({ ...g, gpuUtilMeanPct: Number.NaN, gpuUtilSamples: 3 }), 1);
  assert.equal(deviceBusyFraction({ ...g, gpuUtilPct: 140 }), 1);
  assert.equal(deviceBusyFraction({ ...g, gpuUtilMeanPct: -5, gpuUtilSamples: 2 }), 0);
});

/**
 * A time-sliced GPU whose two VMs are each busy a varying part of every 1 s interval: the energy is
 * 100 W static + 500 W × busy(a) + 250 W × busy(b). The closing utilisation read is one driver sample
 * (100 % or 0 % as the GPU happened to be busy at that instant); the interval's mean over its samples is the
 * busy fraction. Process samples split the busy time in proportion.
 */
function slicedIntervals(n: number, withMean: boolean): { ivs: HostInterval[]; truth: Array<{ a: number; b: number }> } {
  let x = 12345;
  const r = (): number => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648;
  const truth: Array<{ a: number; b: number }> = [];
  const ivs: HostInterval[] = [];
  for (let i = 0; i < n; i++) {
    const ba = 0.5 * r();
    const bb = 0.5 * r();
    const busy = ba + bb;
    truth.push({ a: 500 * ba, b: 250 * bb });
    const joules = 100 + 500 * ba + 250 * bb;
    const point = r() < busy ? 100 : 0;
    const vm = (uuid: string, b: number): HostInterval['vms'][number] => ({
      uuid, name: uuid, tenant: uuid, vcpus: 1, memoryBytes: 0, cpuSeconds: 0, vcpuSeconds: [0], memoryUsedBytes: 0, blockReadBytes: 0, blockWriteBytes: 0, netRxBytes: 0, netTxBytes: 0,
      gpus: [{ device: 'g', smUtilPct: 99, memUtilPct: 0, utilSamples: Math.max(1, Math.round((1000 * b) / busy)), usedMemoryBytes: 1e9, holdsContext: true, passthrough: false }],
      presence: 1, state: 'running',
    });
    ivs.push({
      hostId: 'h', hardwareClass: 'c', seq: i + 1, prevSeq: i, t0UnixNs: i * 1e9, t1UnixNs: (i + 1) * 1e9, durationS: 1,
      measured: { rapl: 0, gpu: joules, bmc_rest: 0 }, raplZones: {},
      gpus: [{ device: 'g', joules, contexts: 2, meanPowerW: joules, gpuUtilPct: point, ...(withMean ? { gpuUtilMeanPct: 100 * busy, gpuUtilSamples: 6 } : {}), memUtilPct: 0, smClockMhz: 1980 }],
      hostCpu: { busySeconds: 0, idleSeconds: 0, onlineCpus: 1, avgFreqMhz: 0 },
      vms: [vm('a', ba), vm('b', bb)],
      anomalies: [],
    });
  }
  return { ivs, truth };
}

test('GpuTimeSliceMethod uses the interval\'s mean device utilisation: signatures and bills within 2 %; from the closing point read alone they are far off', () => {
  const warm = 200;
  const run = (withMean: boolean): { sig: Record<string, number>; err: { a: number; b: number } } => {
    const { ivs, truth } = slicedIntervals(1200, withMean);
    const m = new GpuTimeSliceMethod({ minWindows: warm });
    const got = { a: 0, b: 0 };
    const want = { a: 0, b: 0 };
    ivs.forEach((iv, i) => {
      // causal: split with what was learned before, then observed
      const res = m.attribute(iv, ctx);
      m.observe(iv);
      assert.deepEqual(checkConservation(res), []);
      if (i < warm) return;
      want.a += truth[i]!.a;
      want.b += truth[i]!.b;
      for (const s of res.shares) if (s.source === 'gpu' && (s.vmUuid === 'a' || s.vmUuid === 'b')) got[s.vmUuid] += s.dynamicJoules;
    });
    return { sig: m.fitOf('h', 'g')!.signatures, err: { a: got.a / want.a - 1, b: got.b / want.b - 1 } };
  };
  const mean = run(true);
  const point = run(false);
  const show = JSON.stringify({ mean, point });
  assert.ok(Math.abs(mean.sig.a! / 500 - 1) < 0.02 && Math.abs(mean.sig.b! / 250 - 1) < 0.02, show);
  assert.ok(Math.abs(mean.err.a) < 0.02 && Math.abs(mean.err.b) < 0.02, show);
  assert.ok(Math.max(Math.abs(point.err.a), Math.abs(point.err.b)) > 5 * Math.max(Math.abs(mean.err.a), Math.abs(mean.err.b)), show);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { EnergySource, EnergyUnit, memoryLogger, type GpuReading, type GpuSource } from '@wattsplit/wire';
import { GpuSampler, normalisePciAddress } from './gpu-sampler.js';
import { NvmlTraceGpuSource, nvmlTraceProcessOwners } from './nvml-trace-gpu-source.js';
import type { FrameUnderConstruction, RoundContext } from './sampler.js';
import { domainInfo } from './static-domain-source.js';

const TRACE = process.env.WATTSPLIT_GPU_TRACE ?? '/work/shared/data/gpu/h100-mix-dev.jsonl';

function round(s: GpuSampler, domains = [domainInfo({ uuid: 'vm-a', name: 'a', id: 1 })], owners?: RoundContext['processOwners']): FrameUnderConstruction {
  const frame: FrameUnderConstruction = { monoNs: 1, counters: [], vms: [], gpus: [], hostCpu: undefined };
  const ctx: RoundContext = { domains, domainsAvailable: true, vmsByUuid: new Map(), cgroupPathByUuid: new Map(), processOwners: owners, monoNs: () => 7 };
  for (const d of domains) {
    const v = { uuid: d.uuid, name: d.name };
    frame.vms.push(v);
    ctx.vmsByUuid.set(d.uuid, v);
  }
  s.sample(frame, ctx);
  return frame;
}

const reading = (over: Partial<GpuReading> = {}): GpuReading => ({
  index: 0, pciBusId: '00000000:17:00.0', name: 'NVIDIA H100 80GB HBM3', uuid: 'GPU-1', energyMj: 1234, powerMw: 300000, gpuUtilPct: 90, memUtilPct: 20,
  smClockMhz: 1980, memClockMhz: 2619, tempC: 50, processUtil: [], running: [], migProfile: '', ...over,
});
class FixedGpus implements GpuSource {
  constructor(public readings: GpuReading[]) {}
  read(): GpuReading[] {
    return this.readings;
  }
}

test('PCI addresses normalise to 0000:bb:dd.f', () => {
  assert.equal(normalisePciAddress('00000000:17:00.0'), '0000:17:00.0');
  assert.equal(normalisePciAddress('17:00.0'), '0000:17:00.0');
  assert.equal(normalisePciAddress('0000:B3:00.1'), '0000:b3:00.1');
});

test('passthrough GPU (hostdev PCI address) goes whole to its VM', () => {
  const s = new GpuSampler(new FixedGpus([reading({ running: [{ pid: 1, usedGpuMemoryBytes: 5 }] })]), memoryLogger());
  const f = round(s, [domainInfo({ uuid: 'vm-a', name: 'a', id: 1, gpuPciAddresses: ['0000:17:00.0'] }), domainInfo({ uuid: 'vm-b', name: 'b', id: 2 })]);
  assert.deepEqual(f.counters[0], { id: 'gpu:0000:17:00.0', source: EnergySource.ENERGY_SOURCE_GPU, domain: 'gpu', index: 0, value: 1234, unit: EnergyUnit.ENERGY_UNIT_MILLIJOULE, maxRange: 0, readMonoNs: 7, device: '0000:17:00.0' });
  assert.equal(f.gpus[0]?.contexts, 1);
  assert.deepEqual(f.vms[0]?.gpus, [{ device: '0000:17:00.0', smUtilPct: 90, memUtilPct: 20, utilSamples: 1, usedMemoryBytes: 5, holdsContext: true, passthrough: true }]);
  assert.equal(f.vms[1]?.gpus, undefined);
});

test('recorded H100 trace replays through the sampler; per-process samples map to VMs by pid', (t) => {
  if (!existsSync(TRACE)) {
    t.skip(`trace ${TRACE} not present`);
    return;
  }
  const src = NvmlTraceGpuSource.fromFile(TRACE);
  const owners = nvmlTraceProcessOwners(src.trace, (tenant) => `vm-${tenant}`);
  const domains = src.trace.header.tenants.map((x, i) => domainInfo({ uuid: `vm-${x}`, name: x, id: i + 1 }));
  const s = new GpuSampler(src, memoryLogger());
  let prevEnergy = -1;
  let withActivity = 0;
  const seenVms = new Set<string>();
  for (let i = 0; i < 400; i++) {
    const f = round(s, domains, owners);
    const c = f.counters[0]!;
    assert.equal(c.unit, EnergyUnit.ENERGY_UNIT_MILLIJOULE);
    assert.ok((c.value as number) >= prevEnergy, 'energy counter never goes back');
    prevEnergy = c.value as number;
    assert.equal(f.gpus[0]?.name, 'NVIDIA H100 80GB HBM3');
    for (const v of f.vms) {
      for (const g of v.gpus ?? []) {
        assert.equal(g.passthrough, false);
        assert.ok((g.smUtilPct ?? 0) >= 0 && (g.smUtilPct ?? 0) <= 100);
        if ((g.utilSamples ?? 0) > 0) {
          withActivity++;
          seenVms.add(v.uuid!);
        }
      }
    }
  }
  assert.equal(src.position, 400);
  assert.ok(withActivity > 50, `GPU activity attached to VMs (${withActivity})`);
  assert.deepEqual([...seenVms].sort(), domains.map((d) => d.uuid).sort(), 'every tenant VM gets activity during its solo phase');
});

test('a trace that runs out says so (no crash), and a failed GPU read marks the sampler unavailable', () => {
  const src = new NvmlTraceGpuSource({ header: { gpu: 'G', driver: 'd', tenants: [], pids: {}, sampleHz: 10 }, samples: [{ t: 0, energyMj: 5, powerMw: 1, gpuUtil: 0, memUtil: 0, smClockMhz: 0, memClockMhz: 0, tempC: 0, procUtil: [], running: [] }] });
  const log = memoryLogger();
  const s = new GpuSampler(src, log);
  assert.equal(round(s).counters.length, 1);
  assert.equal(round(s).counters.length, 0);
  assert.equal(s.status().state, 'unavailable');
  assert.match(s.status().detail, /NVML trace exhausted after 1 samples/);
  const looped = new NvmlTraceGpuSource({ ...src.trace, samples: [...src.trace.samples, { ...src.trace.samples[0]!, energyMj: 9 }] }, { loop: true });
  assert.deepEqual([0, 1, 2, 3].map(() => looped.read()[0]!.energyMj), [5, 9, 9, 13]);
});

test('the device\'s utilisation samples since the last read go out as their mean and count; none → the fields are left out (the collector uses the point read)', () => {
  const src = new FixedGpus([reading({ gpuUtilPct: 100, utilSamples: [{ timeStampUs: 1, utilPct: 20 }, { timeStampUs: 2, utilPct: 50 }, { timeStampUs: 3, utilPct: 80 }] })]);
  const s = new GpuSampler(src, memoryLogger());
  const f = round(s);
  assert.equal(f.gpus[0]?.gpuUtilPct, 100, 'the point read stays');
  assert.equal(f.gpus[0]?.gpuUtilMeanPct, 50);
  assert.equal(f.gpus[0]?.gpuUtilSamples, 3);
  for (const utilSamples of [[], undefined]) {
    src.readings = [utilSamples ? reading({ utilSamples }) : reading()];
    const g = round(s).gpus[0]!;
    assert.ok(!('gpuUtilMeanPct' in g) && !('gpuUtilSamples' in g), JSON.stringify(g));
  }
});

test('recorded trace source: each read carries its gpu_util as one utilisation sample', (t) => {
  if (!existsSync(TRACE)) {
    t.skip(`trace ${TRACE} not present`);
    return;
  }
  const src = NvmlTraceGpuSource.fromFile(TRACE);
  for (let i = 0; i < 50; i++) {
    const s = src.trace.samples[i]!;
    const r = src.read()[0]!;
    assert.deepEqual(r.utilSamples, [{ timeStampUs: Math.round(s.t * 1e6), utilPct: s.gpuUtil }]);
  }
});

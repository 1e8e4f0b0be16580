import { test } from 'node:test';
import assert from 'node:assert/strict';
import { memoryLogger, type PerfSource } from '@wattsplit/wire';
import { PerfEventSource } from './perf-event-source.js';
import { PerfSampler } from './perf-sampler.js';
import type { FrameUnderConstruction, RoundContext } from './sampler.js';

function round(s: PerfSampler): FrameUnderConstruction {
  const frame: FrameUnderConstruction = { monoNs: 1, counters: [], vms: [{ uuid: 'a' }, { uuid: 'b' }], gpus: [], hostCpu: undefined };
  const ctx: RoundContext = { domains: [], domainsAvailable: true, vmsByUuid: new Map(), cgroupPathByUuid: new Map([['a', '/machine.slice/a.scope']]), processOwners: undefined, monoNs: () => 1 };
  s.sample(frame, ctx);
  return frame;
}

test('PerfEventSource on this machine: either counts a real cgroup or says unsupported with the errno', (t) => {
  const log = memoryLogger();
  const src = new PerfEventSource({ cgroupRoot: '/sys/fs/cgroup', logger: log });
  t.after(() => src.close());
  if (!src.supported()) {
    assert.match(src.reason, /perf_event_open\(cycles\) failed with (EACCES|EPERM|ENOENT|EOPNOTSUPP|ENODEV|ENOSYS|EINVAL|errno \d+)/);
    assert.equal(src.read('/'), undefined);
    const s = new PerfSampler(src, log);
    const f = round(s);
    round(s);
    assert.equal(f.vms[0]?.perf, undefined, 'no perf block rather than zeros');
    assert.equal(log.entries.filter((e) => /perf counters unsupported/.test(e.msg)).length, 1, 'said once');
    assert.equal(s.status().state, 'unavailable');
    return;
  }
  // PMU available: count the root cgroup twice, counters must not go back
  const a = src.read('/');
  for (let i = 0; i < 2e6; i++) Math.sqrt(i);
  const b = src.read('/');
  if (a === undefined || b === undefined) {
    assert.ok(log.entries.some((e) => /perf_event_open\(cycles, cgroup/.test(e.msg)), 'a refused cgroup is logged');
    return;
  }
  assert.ok(b.cycles >= a.cycles && b.instructions >= a.instructions);
  assert.equal(src.read('/no/such/cgroup'), undefined);
});

test('PerfSampler attaches counters to VMs with a cgroup path', () => {
  const seen: string[] = [];
  const fake: PerfSource = { supported: () => true, read: (p) => (seen.push(p), { cycles: 10, instructions: 20, llcMisses: 1, llcReferences: 5 }) };
  const s = new PerfSampler(fake, memoryLogger());
  const f = round(s);
  assert.deepEqual(f.vms[0]?.perf, { supported: true, cycles: 10, instructions: 20, llcMisses: 1, llcReferences: 5 });
  assert.equal(f.vms[1]?.perf, undefined);
  assert.deepEqual(seen, ['/machine.slice/a.scope']);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AttributionResult, AttributionShare } from '@wattsplit/attribution';
import { isWattsplitError } from '@wattsplit/wire';
import { attributedVmPowerW, hostPowerBreakdown, measuredHostPowerW } from './index.js';

const share = (vmUuid: string, source: AttributionShare['source'], dyn: number, stat: number, kind: AttributionShare['kind'] = 'vm'): AttributionShare => ({
  kind,
  vmUuid,
  vmName: vmUuid,
  tenant: vmUuid === 'gpu-vm' ? 'ai' : 'web',
  source,
  dynamicJoules: dyn,
  staticJoules: stat,
  lowJoules: dyn + stat,
  highJoules: dyn + stat,
});

function result(seq: number, seconds: number, shares: AttributionShare[]): AttributionResult {
  const measured = { rapl: 0, gpu: 0, bmc_rest: 0 };
  for (const s of shares) measured[s.source] += s.dynamicJoules + s.staticJoules;
  return { hostId: 'hv-1', seq, t0UnixNs: seq * 1e10, t1UnixNs: seq * 1e10 + seconds * 1e9, method: 'cpu_share', modelVersion: 'v0', hardwareClass: 'x', note: '', shares, measured };
}

test('VM power is its attributed joules over all sources, over the same seconds as the host\'s measured power', () => {
  const r1 = result(1, 10, [share('gpu-vm', 'rapl', 500, 100), share('gpu-vm', 'gpu', 5000, 700), share('web-vm', 'rapl', 200, 100), share('', 'rapl', 0, 400, 'unallocated')]);
  const r2 = result(2, 10, [share('gpu-vm', 'rapl', 600, 100), share('gpu-vm', 'gpu', 6000, 700), share('', 'rapl', 0, 500, 'unallocated')]);
  const p = attributedVmPowerW([r1, r2]);
  assert.deepEqual([...p.keys()].sort(), ['gpu-vm', 'web-vm']);
  assert.equal(p.get('gpu-vm')!.powerW, (600 + 5700 + 700 + 6700) / 20);
  assert.equal(p.get('gpu-vm')!.tenant, 'ai');
  assert.equal(p.get('web-vm')!.powerW, 300 / 20, 'present in one 10 s interval of the 20 s window: its mean power over the window');
  assert.equal(p.get('web-vm')!.seconds, 10);
  assert.equal(measuredHostPowerW([r1, r2]), (1300 + 5700 + 1200 + 6700) / 20, 'rapl 600+300+400 and gpu 5700, then rapl 700+500 and gpu 6700, over 20 s');
});

test('an interval that ends before it starts is refused, naming host, seq and field', () => {
  const bad = { ...result(3, 10, []), t1UnixNs: 0 };
  assert.throws(() => attributedVmPowerW([bad]), (e) => isWattsplitError(e, 'CAP_INPUT_INVALID') && /results\[0\] host="hv-1" seq=3: t1UnixNs=0 must be after t0UnixNs=30000000000/.test(e.message));
  assert.throws(() => measuredHostPowerW([bad]), /t1UnixNs=0/);
});

test('host power = Σ VM power + non-VM power, over one divisor, per host; a VM that comes and goes cannot outweigh its host', () => {
  // web-vm is present in one interval only and draws most of that interval's power: over its own 10 s it
  // would be 900 W, more than the host's 20 s mean (700 W).
  const a1 = result(1, 10, [share('web-vm', 'rapl', 800, 100), share('gpu-vm', 'rapl', 50, 50), share('', 'rapl', 0, 100, 'unallocated')]);
  const a2 = result(2, 10, [share('gpu-vm', 'rapl', 100, 50), share('', 'rapl', 20, 30, 'host_overhead'), share('', 'rapl', 0, 100, 'unallocated')]);
  const b1 = { ...result(1, 5, [share('gpu-vm', 'gpu', 400, 100), share('', 'gpu', 0, 0, 'unallocated')]), hostId: 'hv-2' };
  const [h1, h2] = hostPowerBreakdown([a1, b1, a2]);
  assert.equal(h1!.hostId, 'hv-1');
  assert.equal(h1!.seconds, 20);
  assert.equal(h1!.powerW, (1100 + 300) / 20);
  assert.equal(h1!.vms.find((v) => v.uuid === 'web-vm')!.powerW, 900 / 20);
  assert.equal(h1!.vmW, (900 + 250) / 20);
  assert.equal(h1!.nonVmW, (100 + 150) / 20);
  assert.ok(Math.abs(h1!.powerW - (h1!.vmW + h1!.nonVmW)) < 1e-9);
  assert.equal(h2!.hostId, 'hv-2');
  assert.equal(h2!.seconds, 5);
  assert.equal(h2!.powerW, 100);
  assert.equal(h2!.vmW, 100);
  assert.throws(() => hostPowerBreakdown([{ ...a1, t1UnixNs: a1.t0UnixNs }]), (e) => isWattsplitError(e, 'CAP_INPUT_INVALID'));
});

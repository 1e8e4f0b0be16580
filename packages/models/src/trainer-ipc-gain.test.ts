import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HostInterval } from '@wattsplit/attribution';
import { checkModelJson, intervalFeatures, ipcFactor, termPowers, trainAdditiveModel } from './index.js';
import { prng, synthHost, TEST_CLASSES } from './test-hosts.js';

const fast = { steps: 300, maxIntervals: 1500 };
/** vm-1 (web) has phases: its IPC × k and its power per core × (1 + 2 (k − 1)); vm-0 (batch): IPC × k', power unchanged. */
const PHASE_GAIN = 2;

function phasedHost(seconds: number, seed: number, levels: readonly number[]): { ivs: HostInterval[]; truthW: number[] } {
  const { intervals } = synthHost({ seed, seconds, vms: 8 });
  const r = prng(seed + 100);
  let k = 1;
  let k0 = 1;
  const truthW: number[] = [];
  const ivs = intervals.map((iv, i) => {
    if (i % 60 === 0) {
      k = levels[Math.floor(r() * levels.length)]!;
      k0 = r() < 0.5 ? 0.5 : 1;
    }
    const vms = iv.vms.map((v) => {
      if (!v.perf || (v.uuid !== 'vm-1' && v.uuid !== 'vm-0')) return v;
      const s = v.uuid === 'vm-1' ? k : k0;
      return { ...v, perf: { ...v.perf, instructions: v.perf.instructions * s } };
    });
    const web = iv.vms.find((v) => v.uuid === 'vm-1')!;
    const base = web.cpuSeconds * TEST_CLASSES.web.coreW;
    const extra = base * PHASE_GAIN * (k - 1);
    truthW.push(base + extra);
    return { ...iv, vms, measured: { ...iv.measured, rapl: iv.measured.rapl + extra * iv.durationS } };
  });
  return { ivs, truthW };
}

test('IPC gain: a VM whose power follows its IPC gets its own gain, one whose IPC moves alone does not; its power is followed in billing', async () => {
  const train = phasedHost(1500, 21, [0.8, 1, 1.25]);
  const m = await trainAdditiveModel(train.ivs, fast);
  const w = m.sources.rapl;
  assert.ok(w.vmIpcRef?.['vm-1'] !== undefined && w.vmIpcGain?.['vm-1'] !== undefined, 'per-VM reference and gain stored');
  assert.ok(w.vmIpcGain['vm-1'] > 1, `phased VM's gain ${w.vmIpcGain['vm-1'].toFixed(2)}`);
  assert.ok(w.vmIpcGain['vm-0']! < 0.5 * w.vmIpcGain['vm-1'], `IPC-only VM's gain ${w.vmIpcGain['vm-0']!.toFixed(2)} vs ${w.vmIpcGain['vm-1'].toFixed(2)}`);
  checkModelJson(JSON.parse(JSON.stringify(m)), 'model.json');
  // billing with another phase mix (mostly the high phase): the web VM's modelled power with and without the gain
  const bill = phasedHost(600, 22, [1.25, 1.25, 1]);
  const plain = await trainAdditiveModel(train.ivs, { ...fast, ipcGain: false });
  assert.equal(plain.sources.rapl.vmIpcGain, undefined);
  const err = (model: typeof m): number => {
    let e = 0;
    let t = 0;
    bill.ivs.forEach((iv, i) => {
      const terms = intervalFeatures(iv);
      const j = terms.findIndex((f) => f.id === 'vm-1');
      e += termPowers(model, 'rapl', terms)[j]!;
      t += bill.truthW[i]!;
    });
    return Math.abs(e / t - 1);
  };
  assert.ok(err(m) < err(plain) - 0.02, `web VM's billed-period power error with the gain ${(100 * err(m)).toFixed(1)} % vs without ${(100 * err(plain)).toFixed(1)} %`);
});

test('IPC factor: 1 without a gain, a reference or perf; clamped', () => {
  const f = { id: 'a', host: 'h', cores: 8, cpu: 1, load: 0.5, shape: [0.5, 0, 2, 1, 1, 0.2, 0, 0], io: [] };
  assert.equal(ipcFactor({}, f), 1);
  assert.equal(ipcFactor({ ipcGain: 1 }, f), 1);
  assert.equal(ipcFactor({ ipcGain: 1, vmIpcRef: { a: 1 } }, f), 2);
  assert.equal(ipcFactor({ ipcGain: 1, vmIpcRef: { a: 1 }, vmIpcGain: { a: 0 } }, f), 1);
  assert.equal(ipcFactor({ ipcGain: 1, vmIpcRef: { a: 1 } }, { ...f, shape: [0.5, 0, 0, 0, 0, 0.2, 0, 0] }), 1);
  assert.equal(ipcFactor({ ipcGain: 4, vmIpcRef: { a: 0.5 } }, f), 4);
  assert.equal(ipcFactor({ ipcGain: 4, vmIpcRef: { a: 8 } }, f), 0.25);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HostInterval } from '@wattsplit/attribution';
import { IO_FEATURES, intervalFeatures, trainAdditiveModel } from './index.js';
import { synthHost } from './test-hosts.js';

const fast = { steps: 300, maxIntervals: 1500 };
const DRAM_K = IO_FEATURES.indexOf('dram_gbs');
/** True DRAM power per GB/s of LLC-miss traffic, and DRAM idle, W. */
const DRAM_W_PER_GBS = 0.9;
const DRAM_IDLE_W = 4;

/**
 * The synthetic host with a DRAM zone: DRAM power = idle + 0.9 W per GB/s of memory traffic, in a sub-zone that
 * the measured RAPL total counts (packages + DRAM, as the agent bills them). The package's power per core of the
 * memory-heavy class is what the host total alone confuses with the DRAM weight.
 */
function dramHost(billedSubZone: boolean): HostInterval[] {
  const { intervals } = synthHost({ seed: 11, seconds: 1500, vms: 8 });
  return intervals.map((iv) => {
    let gbs = 0;
    for (const f of intervalFeatures(iv)) gbs += f.io[DRAM_K] ?? 0;
    const dramJ = (DRAM_IDLE_W + DRAM_W_PER_GBS * gbs) * iv.durationS;
    const pkgJ = iv.measured.rapl;
    return billedSubZone
      ? { ...iv, measured: { ...iv.measured, rapl: pkgJ + dramJ }, raplZones: { 'intel-rapl:0': pkgJ, 'intel-rapl:0:0': dramJ } }
      : // a core sub-zone (inside the package, not billed): its energy is not part of the measured total
        { ...iv, raplZones: { 'intel-rapl:0': pkgJ, 'intel-rapl:0:0': 0.6 * pkgJ } };
  });
}

test('DRAM weight: fitted to the DRAM zone where the host exposes one (the host total alone lets it trade against memory-heavy VMs)', async () => {
  const ivs = dramHost(true);
  const zoned = await trainAdditiveModel(ivs, fast);
  const w = zoned.sources.rapl.io[DRAM_K]!;
  assert.ok(Math.abs(w - DRAM_W_PER_GBS) < 0.02, `DRAM weight from the zone ${w.toFixed(3)} W per GB/s, true ${DRAM_W_PER_GBS}`);
  // the other RAPL I/O weights stay as the source allows (only dram_gbs on RAPL)
  zoned.sources.rapl.io.forEach((x, k) => k !== DRAM_K && assert.equal(x, 0, `${IO_FEATURES[k]} weight on RAPL`));
  const joint = await trainAdditiveModel(ivs, { ...fast, dramFromZones: false });
  assert.ok(Number.isFinite(joint.sources.rapl.io[DRAM_K]), 'the joint fit still yields a weight');
});

test('DRAM weight: a sub-zone that the measured total does not count (core, uncore) is not taken for DRAM', async () => {
  const ivs = dramHost(false);
  const a = await trainAdditiveModel(ivs, fast);
  const b = await trainAdditiveModel(ivs, { ...fast, dramFromZones: false });
  assert.equal(a.sources.rapl.io[DRAM_K], b.sources.rapl.io[DRAM_K], 'same weight as the joint fit');
});

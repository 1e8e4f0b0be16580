import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AttributionBatch } from '@wattsplit/wire';
import type { AttributionResult, AttributionShare } from '@wattsplit/attribution';
import { encodeAttributionBatch, toAttributionBatch } from './attribution-batch.js';

/** Deterministic pseudo-random numbers (xorshift32). */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

test('attribution batch: the direct encoder writes, byte for byte, the generated encoding of toAttributionBatch', () => {
  const r = rng(7);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const strings = ['', 'a', 'tenant-42', 'vm-é中文-😀', 'x'.repeat(130), 'y'.repeat(20_000), 'bmc_rest'];
  for (let round = 0; round < 200; round++) {
    const hostId = pick(['hv-1', 'rack7-hv-0042', 'hôte-ü', '']);
    const seq = pick([0, 1, 300, 2 ** 31 + 5, 2 ** 40 + 3, Number.MAX_SAFE_INTEGER]);
    const t0 = pick([0, 1.7e18, 1_795_430_400_123_456_789, -5e9]);
    const measured = pick([{ rapl: 250.5, gpu: 0, bmc_rest: 120 }, { rapl: 1, gpu: 2.5, bmc_rest: Number.NaN }]);
    const results: AttributionResult[] = Array.from({ length: 1 + Math.floor(r() * 3) }, (_, k) => ({
      hostId,
      seq,
      t0UnixNs: t0,
      t1UnixNs: t0 + 1e9,
      method: pick(['cpu_share', 'additive_model', '']),
      modelVersion: pick(['1', 'fallback:cpu_share/1', '']),
      hardwareClass: pick(['xeon-8480', '']),
      note: k === 0 ? '' : pick(strings),
      measured,
      shares: Array.from(
        { length: Math.floor(r() * 60) },
        (): AttributionShare => ({
          kind: pick(['vm', 'vm', 'host_overhead', 'unallocated'] as const),
          vmUuid: pick(strings),
          vmName: pick(strings),
          tenant: pick(strings),
          source: pick(['rapl', 'gpu', 'bmc_rest'] as const),
          dynamicJoules: pick([0, -0, 1.5, 123.456789, 1e-300, Number.NaN, Infinity]),
          staticJoules: r() * 100,
          lowJoules: r() * 10,
          highJoules: r() * 1000,
        }),
      ),
    }));
    const reference = AttributionBatch.encode(toAttributionBatch(results)).finish();
    assert.deepEqual(Buffer.from(encodeAttributionBatch(results)), Buffer.from(reference), `round ${round}`);
  }
});

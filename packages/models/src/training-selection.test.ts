import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HostInterval } from '@wattsplit/attribution';
import { selectTrainingIntervals, trainAdditiveModel } from './index.js';
import { synthHost } from './test-hosts.js';

function clone(iv: HostInterval): HostInterval {
  return structuredClone(iv);
}

test('training selection: a VM vanishing and coming back, a held frame, an anomaly are left out; clean intervals and migrating-out VMs kept', () => {
  const ivs = synthHost({ seed: 3, seconds: 40 }).intervals.map(clone);
  // seq 10: vm-1's cgroup vanishes (gone, half presence, no CPU time); seq 11: it is back with two seconds of CPU time
  const gone = ivs[9]!.vms[1]!;
  gone.state = 'gone';
  gone.presence = 0.5;
  gone.cpuSeconds = 0;
  ivs[10]!.vms[1]!.cpuSeconds *= 2;
  // seq 20 is held: seq 21 spans two seconds
  ivs[20]!.durationS = 2;
  ivs[20]!.prevSeq = 19;
  ivs.splice(19, 1);
  // an anomaly flagged by the aligner
  const an = ivs.find((iv) => iv.seq === 30)!;
  an.anomalies.push({ code: 'COUNTER_WENT_BACKWARDS', message: 'x' });
  // a VM missing from the list for one interval (absent cgroup, not reported at all), back in the next
  const missing = ivs.find((iv) => iv.seq === 35)!;
  missing.vms.splice(2, 1);
  // migrating out: the pre-copy transient is not learned from
  ivs.find((iv) => iv.seq === 5)!.vms[0]!.state = 'migrating_out';

  const sel = selectTrainingIntervals(ivs);
  const left = new Set(ivs.map((iv) => iv.seq));
  for (const iv of sel.intervals) left.delete(iv.seq);
  assert.deepEqual([...left].sort((a, b) => a - b), [5, 10, 11, 21, 30, 35, 36]);
  assert.deepEqual(sel.excluded, { unusable: 0, anomaly: 1, long: 1, partial_vm: 1, after_partial: 3, migrating: 1 });
  // input order kept
  assert.deepEqual(
    sel.intervals.map((iv) => iv.seq),
    [...sel.intervals.map((iv) => iv.seq)].sort((a, b) => a - b),
  );
});

test('training selection: without the previous interval (sampled history) only the own checks apply; unusable RAPL counted', () => {
  const ivs = synthHost({ seed: 4, seconds: 20 }).intervals.map(clone);
  const sampled = ivs.filter((iv) => iv.seq % 2 === 0);
  sampled[0]!.unusableSources = ['rapl'];
  const sel = selectTrainingIntervals(sampled);
  assert.equal(sel.intervals.length, sampled.length - 1);
  assert.equal(sel.excluded.unusable, 1);
});

test('additive model: trains on the clean intervals, and on every usable one when fewer than 30 are clean', async () => {
  const ivs = synthHost({ seed: 5, seconds: 60 }).intervals.map(clone);
  for (const iv of ivs.slice(0, 40)) iv.anomalies.push({ code: 'COUNTER_WENT_BACKWARDS', message: 'x' });
  const fallback = await trainAdditiveModel(ivs, { steps: 20 });
  assert.equal(fallback.trainIntervals, 60);
  for (const iv of ivs.slice(0, 20)) iv.anomalies.length = 0;
  const clean = await trainAdditiveModel(ivs, { steps: 20 });
  assert.equal(clean.trainIntervals, 40);
  const all = await trainAdditiveModel(ivs, { steps: 20, cleanOnly: false });
  assert.equal(all.trainIntervals, 60);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeFrame, encodeFrame, validateFrame, EnergySource, EnergyUnit, isWattsplitError, type ITelemetryFrame } from './index.js';

const frame: ITelemetryFrame = {
  hostId: 'hv-01',
  hardwareClass: 'xeon-8480',
  seq: 7,
  bootId: 'b1',
  monoNs: 123_456_789_000,
  wallUnixNs: 1_763_900_000_000_000_000,
  intervalMs: 1000,
  counters: [{ id: 'intel-rapl:0', source: EnergySource.ENERGY_SOURCE_RAPL, domain: 'package', index: 0, value: 262_143_328_850, unit: EnergyUnit.ENERGY_UNIT_MICROJOULE, maxRange: 262_143_328_850 }],
  vms: [{ uuid: 'u1', name: 'vm1', tenant: 't', vcpus: 4, memoryBytes: 8 << 30, cpuTimeNs: 9_007_199_254_740_000, vcpuTimeNs: [1, 2, 3, 4] }],
};

test('a frame survives encode → decode with 64-bit counters intact below 2^53', () => {
  const back = decodeFrame(encodeFrame(frame));
  assert.equal(back.hostId, 'hv-01');
  assert.equal(back.seq, 7);
  assert.equal(back.counters[0]!.value, 262_143_328_850);
  assert.equal(back.vms[0]!.cpuTimeNs, 9_007_199_254_740_000);
  assert.deepEqual(back.vms[0]!.vcpuTimeNs, [1, 2, 3, 4]);
  assert.deepEqual(validateFrame(back), []);
});

test('garbage bytes give FRAME_DECODE_FAILED naming where they came from', () => {
  assert.throws(() => decodeFrame(Uint8Array.from([0x0a, 0xff, 0xff, 0xff]), 'topic p0@12'), (e) => isWattsplitError(e, 'FRAME_DECODE_FAILED') && e.message.includes('topic p0@12'));
});

test('validation names the field and the value', () => {
  const errs = validateFrame({ ...frame, hostId: 'bad host!', seq: 0, counters: [{ id: 'x', value: 5, maxRange: 3, unit: EnergyUnit.ENERGY_UNIT_MICROJOULE, source: EnergySource.ENERGY_SOURCE_RAPL }] });
  const msgs = errs.map((e) => e.message).join('\n');
  assert.match(msgs, /host_id="bad host!"/);
  assert.match(msgs, /seq=0/);
  assert.doesNotMatch(msgs, /max_range/, 'a counter above its range is the aligner\'s business (one source unusable), not a reason to drop the frame');
  assert.ok(errs.every((e) => e.code === 'FRAME_INVALID_FIELD'));
});

test('validation names each counter and VM by its index: unset and repeated ids, unset unit and source, unset and repeated uuids, in order', () => {
  const rapl = { source: EnergySource.ENERGY_SOURCE_RAPL, unit: EnergyUnit.ENERGY_UNIT_MICROJOULE };
  const errs = validateFrame({
    ...frame,
    counters: [{ id: 'a', ...rapl }, { id: '', ...rapl }, { id: 'a', unit: EnergyUnit.ENERGY_UNIT_MICROJOULE }, { id: 'b', source: EnergySource.ENERGY_SOURCE_RAPL }],
    vms: [{ uuid: 'u1' }, { uuid: '' }, { uuid: 'u2' }, { uuid: 'u1' }],
  });
  assert.deepEqual(
    errs.map((e) => e.message.replace(/^frame host="hv-01" seq=7: /, '')),
    ['counters[1].id="" must be set', 'counters[2].id="a" is repeated in the frame', 'counters[2].source=0 must be set', 'counters[3].unit=0 must be set', 'vms[1].uuid="" must be set', 'vms[3].uuid="u1" is repeated in the frame'],
  );
});

test('unset 64-bit fields decode as the number 0, never a Long object', () => {
  const back = decodeFrame(encodeFrame({ hostId: 'hv-01', seq: 1, monoNs: 1, wallUnixNs: 1, vms: [{ uuid: 'u' }], counters: [{ id: 'c', source: EnergySource.ENERGY_SOURCE_RAPL, unit: EnergyUnit.ENERGY_UNIT_MICROJOULE }] }));
  assert.equal(back.vms[0]!.cpuTimeNs, 0);
  assert.equal(typeof back.vms[0]!.memoryBytes, 'number');
  assert.equal(back.counters[0]!.value, 0);
  assert.equal(back.counters[0]!.maxRange, 0);
});

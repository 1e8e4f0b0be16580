import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { decodeBatch, encodeBatch, validateFrame } from './frame-codec.js';
import { scanFrameBatch } from './frame-batch-scan.js';
import { EnergySource, EnergyUnit, type ITelemetryFrame } from './telemetry.js';

function frame(over: Partial<ITelemetryFrame> = {}): ITelemetryFrame {
  return {
    hostId: 'hv-1',
    hardwareClass: 'xeon',
    seq: 7,
    bootId: 'böot-1',
    monoNs: 5e12,
    wallUnixNs: 1.7e18,
    intervalMs: 1000,
    counters: [
      { id: 'intel-rapl:0', source: EnergySource.ENERGY_SOURCE_RAPL, domain: 'package', index: 0, value: 2 ** 40 + 3, unit: EnergyUnit.ENERGY_UNIT_MICROJOULE, maxRange: 262_143_328_850 },
      { id: 'gpu:0', source: EnergySource.ENERGY_SOURCE_GPU, domain: 'gpu', index: -1, value: 5, unit: EnergyUnit.ENERGY_UNIT_MILLIJOULE, error: 'NVML_ERROR_UNKNOWN' },
      { id: 'bmc', source: EnergySource.ENERGY_SOURCE_BMC, domain: 'chassis', index: -1, value: 900, unit: EnergyUnit.ENERGY_UNIT_JOULE },
    ],
    vms: [
      { uuid: 'vm-a', name: 'a', tenant: 'ténant', cpuTimeNs: 2 ** 53 - 1, vcpuTimeNs: [1, 2 ** 60], startedMonoNs: 9, perf: { supported: true, cycles: 1 } },
      { uuid: 'vm-b', cpuTimeNs: 0, gpus: [{ device: 'x', smUtilPct: 1.5, holdsContext: true }] },
    ],
    hostCpu: { busyNs: 1, idleNs: 2, onlineCpus: 8 },
    ...over,
  };
}

test('scanFrameBatch reads what the gateway uses, as decodeBatch gives it, and each frame`s bytes', () => {
  const frames = [frame(), frame({ hostId: 'hv-2', seq: 8, vms: [] })];
  const buf = Buffer.from(encodeBatch({ batchId: 2 ** 33, token: 'tök', frames }));
  const view = scanFrameBatch(buf)!;
  const full = decodeBatch(buf);
  assert.ok(full.frames.every((f) => validateFrame(f).length === 0));
  assert.equal(view.batchId, 2 ** 33);
  assert.equal(view.token, 'tök');
  const [a, b] = view.frames;
  assert.deepEqual({ hostId: a!.hostId, seq: a!.seq, bootId: a!.bootId, monoNs: a!.monoNs, wallUnixNs: a!.wallUnixNs }, { hostId: 'hv-1', seq: 7, bootId: 'böot-1', monoNs: 5e12, wallUnixNs: 1.7e18 });
  assert.deepEqual(a!.counterIds, ['intel-rapl:0', 'bmc'], 'the errored counter is not compared, so not kept');
  assert.deepEqual([...a!.counterValues], [2 ** 40 + 3, 900]);
  assert.deepEqual([...a!.counterRanges], [262_143_328_850, 0]);
  assert.deepEqual(a!.vmUuids, ['vm-a', 'vm-b']);
  assert.deepEqual([...a!.vmCpuNs], [2 ** 53 - 1, 0]);
  assert.deepEqual([...a!.vmStartedNs], [9, 0]);
  assert.equal(b!.hostId, 'hv-2');
  assert.deepEqual(b!.vmUuids, []);
  assert.equal(view.frameBytes.length, 2);
  assert.ok(Buffer.concat(view.frameBytes).length < buf.length && decodeBatch(buf).frames[1]!.seq === 8);
  assert.deepEqual(scanFrameBatch(Buffer.alloc(0)), { scanned: true, batchId: 0, token: '', frames: [], frameBytes: [] }, 'an empty batch, as decodeBatch reads it');
});

test('scanFrameBatch declines invalid frames and bytes protobufjs reads its own way; the full path decides those', () => {
  const scan = (f: Partial<ITelemetryFrame>): boolean => scanFrameBatch(Buffer.from(encodeBatch({ frames: [frame(f)] }))) !== undefined;
  assert.equal(scan({}), true);
  for (const bad of [{ hostId: '' }, { hostId: '-hv' }, { hostId: 'h'.repeat(129) }, { seq: 0 }, { monoNs: 0 }, { wallUnixNs: -1 }, { vms: [{ uuid: 'x' }, { uuid: 'x' }] }, { vms: [{ uuid: '' }] }, { counters: [{ id: 'c', source: 1 }] }, { counters: [{ id: 'c', unit: 1 }] }, { counters: [{ id: 'c', source: 1, unit: 1 }, { id: 'c', source: 1, unit: 1, error: 'x' }] }])
    assert.equal(scan(bad), false, JSON.stringify(bad));
  assert.equal(scan({ hostId: 'h'.repeat(128) }), true);
  assert.equal(scan({ vms: [{ uuid: 'vm-ü' }] }), false, 'non-ASCII uuids go the full path (bytes compare only ASCII the way strings do)');
  const good = Buffer.from(encodeBatch({ frames: [frame()] }));
  // field 1 of the batch (batch_id, a varint) sent as LEN: protobufjs reads a varint there anyway; declined
  assert.equal(scanFrameBatch(Buffer.concat([Buffer.from([0x0a, 0x01, 0x05]), good])), undefined);
  // a token longer than the message: protobufjs cuts it short without error; declined
  const cut = Buffer.concat([good, Buffer.from([0x1a, 0x05, 0x41])]);
  assert.equal(decodeBatch(cut).token, 'A');
  assert.equal(scanFrameBatch(cut), undefined);
  // an unknown varint field and an unknown LEN field are skipped as protobufjs skips them
  assert.ok(scanFrameBatch(Buffer.concat([good, Buffer.from([0xf8, 0x01, 0x96, 0x01, 0x82, 0x02, 0x02, 0x41, 0x42])])));
  // a group (wire type 3; protobufjs skips it) is declined
  const group = Buffer.concat([good, Buffer.from([0xfb, 0x01, 0xfc, 0x01])]);
  assert.equal(decodeBatch(group).frames.length, 1);
  assert.equal(scanFrameBatch(group), undefined);
});

test('scanFrameBatch on a frame of 1 000 VMs and 300 counters (the id tables grow mid-frame): all taken; a repeat found across the growth', () => {
  const vms = Array.from({ length: 1000 }, (_, i) => ({ uuid: `vm-${i}`, cpuTimeNs: i, startedMonoNs: 1 }));
  const counters = Array.from({ length: 300 }, (_, i) => ({ id: `c-${i}`, source: EnergySource.ENERGY_SOURCE_RAPL, unit: EnergyUnit.ENERGY_UNIT_MICROJOULE, value: i }));
  const view = scanFrameBatch(Buffer.from(encodeBatch({ frames: [frame({ vms, counters }), frame({ seq: 8, vms: vms.slice(0, 3) })] })))!;
  assert.deepEqual(view.frames[0]!.vmUuids, vms.map((v) => v.uuid));
  assert.deepEqual([...view.frames[0]!.counterValues], counters.map((c) => c.value));
  assert.deepEqual(view.frames[1]!.vmUuids, ['vm-0', 'vm-1', 'vm-2'], 'the next frame starts with empty tables');
  // the tables keep their size from frame to frame: each of these is larger than any before it, so its
  // table grows while it is read, after the uuid that comes again at its end
  for (const [n, at] of [[1500, 1], [3000, 2000], [6000, 4000]] as const) {
    const repeated = [...Array.from({ length: n }, (_, i) => ({ uuid: `vm-${i}` })), { uuid: `vm-${at}` }];
    assert.equal(validateFrame(frame({ vms: repeated })).length, 1);
    assert.equal(scanFrameBatch(Buffer.from(encodeBatch({ frames: [frame({ vms: repeated })] }))), undefined, `vm-${at} of ${n} repeated at the end`);
  }
  const repeatedCounter = [...counters, { ...counters[299]! }];
  assert.equal(scanFrameBatch(Buffer.from(encodeBatch({ frames: [frame({ counters: repeatedCounter })] }))), undefined);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VmState, decodeFrame, encodeFrame, isWattsplitError } from '@wattsplit/wire';
import { IntervalAligner } from './interval-aligner.js';
import { frame, gpuCounter, bmcCounter, raplCounter, prng, vm, WALL0_NS } from './test-fixtures.js';

const close = (a: number, b: number, eps = 1e-6) => assert.ok(Math.abs(a - b) <= eps, `${a} ≉ ${b}`);

test('the first frame of a host gives no interval; the second gives deltas of every counter', () => {
  const al = new IntervalAligner();
  const r0 = al.push(frame({ seq: 1, t: 0, vms: [vm('a', 10, { blockReadBytes: 100, netTxBytes: 5, perf: { supported: true, cycles: 1e9, instructions: 2e9, llcMisses: 10, llcReferences: 100 } })] }));
  assert.equal(r0.interval, undefined);
  assert.equal(r0.rejected, undefined);
  const r1 = al.push(frame({ seq: 2, t: 1, vms: [vm('a', 10.5, { blockReadBytes: 1100, netTxBytes: 55, perf: { supported: true, cycles: 3e9, instructions: 5e9, llcMisses: 30, llcReferences: 300 } })] }));
  const iv = r1.interval!;
  assert.ok(iv);
  assert.equal(iv.seq, 2);
  assert.equal(iv.prevSeq, 1);
  close(iv.durationS, 1);
  close(iv.measured.rapl, 110);
  close(iv.measured.bmc_rest, 90);
  assert.equal(iv.measured.gpu, 0);
  close(iv.raplZones['intel-rapl:0']!, 100);
  close(iv.hostCpu.busySeconds, 2);
  close(iv.hostCpu.idleSeconds, 62);
  const v = iv.vms[0]!;
  close(v.cpuSeconds, 0.5);
  assert.deepEqual(v.vcpuSeconds.map((x) => Math.round(x * 100) / 100), [0.25, 0.25]);
  assert.equal(v.blockReadBytes, 1000);
  assert.equal(v.netTxBytes, 50);
  assert.deepEqual(v.perf, { cycles: 2e9, instructions: 3e9, llcMisses: 20, llcReferences: 200 });
  assert.equal(v.presence, 1);
  assert.equal(v.state, 'running');
  assert.deepEqual(iv.anomalies, []);
  assert.equal(iv.unusableSources, undefined);
});

test('a RAPL wrap between frames is unwrapped with the counter range', () => {
  const al = new IntervalAligner();
  const range = 65_712_999_613;
  al.push(frame({ seq: 1, t: 0, counters: [raplCounter('intel-rapl:0', 'package', range - 50_000_000, range)] }));
  const iv = al.push(frame({ seq: 2, t: 1, counters: [raplCounter('intel-rapl:0', 'package', 70_000_000, range)] })).interval!;
  close(iv.measured.rapl, 120);
  assert.deepEqual(iv.anomalies, []);
});

test('psys, core and uncore are reported per zone but not summed into the host RAPL total', () => {
  const al = new IntervalAligner();
  const cs = (k: number) => [
    raplCounter('intel-rapl:0', 'package', k * 100e6),
    raplCounter('intel-rapl:0:0', 'core', k * 60e6),
    raplCounter('intel-rapl:0:1', 'dram', k * 10e6),
    raplCounter('intel-rapl:1', 'psys', k * 150e6),
  ];
  al.push(frame({ seq: 1, t: 0, counters: cs(1) }));
  const iv = al.push(frame({ seq: 2, t: 1, counters: cs(2) })).interval!;
  close(iv.measured.rapl, 110);
  close(iv.raplZones['intel-rapl:1']!, 150);
  close(iv.raplZones['intel-rapl:0:0']!, 60);
});

test('a duplicate seq is rejected with FRAME_DUPLICATE_SEQ and an older seq with FRAME_OUT_OF_ORDER; state is kept', () => {
  const al = new IntervalAligner();
  al.push(frame({ seq: 1, t: 0 }));
  assert.ok(al.push(frame({ seq: 2, t: 1 })).interval);
  const dup = al.push(frame({ seq: 2, t: 1 }));
  assert.ok(isWattsplitError(dup.rejected, 'FRAME_DUPLICATE_SEQ'));
  assert.match(dup.rejected.message, /hv-01: seq 2 already accepted/);
  const old = al.push(frame({ seq: 1, t: 0 }));
  assert.ok(isWattsplitError(old.rejected, 'FRAME_OUT_OF_ORDER'));
  assert.match(old.rejected.message, /seq 1 is older than the last seen seq 2/);
  const next = al.push(frame({ seq: 3, t: 2 })).interval!;
  assert.equal(next.prevSeq, 2);
  close(next.measured.rapl, 110);
});

test('a seq gap gives one interval spanning the gap, with nothing lost', () => {
  const al = new IntervalAligner();
  al.push(frame({ seq: 1, t: 0, vms: [vm('a', 0)] }));
  const r = al.push(frame({ seq: 5, t: 4, vms: [vm('a', 2)] }));
  const iv = r.interval!;
  close(iv.durationS, 4);
  close(iv.measured.rapl, 440);
  close(iv.vms[0]!.cpuSeconds, 2);
  assert.ok(r.anomalies.some((a) => a.code === 'FRAME_SEQ_GAP' && /3 frame\(s\) missing between seq 1 and 5/.test(a.message)));
});

test('a host reboot (new boot_id, monotonic clock restarted) gives no interval, a COUNTER_RESET anomaly, and a fresh start', () => {
  const al = new IntervalAligner();
  al.push(frame({ seq: 10, t: 0 }));
  const r = al.push(frame({ seq: 11, t: 60, monoOffsetS: -1050, boot: 'boot-2', raplJ: 3 }));
  assert.equal(r.interval, undefined);
  assert.equal(r.rejected, undefined);
  assert.equal(r.anomalies[0]?.code, 'COUNTER_RESET');
  assert.match(r.anomalies[0].message, /boot_id changed "boot-1" → "boot-2" .*host reboot/);
  const iv = al.push(frame({ seq: 12, t: 61, monoOffsetS: -1050, boot: 'boot-2', raplJ: 103 })).interval!;
  close(iv.measured.rapl, 100 + 10); // package 100 J + dram 10 J
});

test('an agent restart (a made-up boot_id, monotonic clock continuous) bills the interval across it: nothing lost; a new kernel boot id is a reboot whatever the clock', () => {
  const kernel = new IntervalAligner();
  kernel.push(frame({ seq: 10, t: 0 }));
  assert.equal(kernel.push(frame({ seq: 11, t: 5, boot: '0a9b8c7d-1111-2222-3333-444455556666' })).anomalies[0]?.code, 'COUNTER_RESET');
  const al = new IntervalAligner();
  al.push(frame({ seq: 10, t: 0, boot: 'agent-1', vms: [vm('a', 0)] }));
  const r = al.push(frame({ seq: 11, t: 5, boot: 'agent-2', vms: [vm('a', 5)] }));
  const iv = r.interval!;
  assert.ok(iv, 'the restart interval is attributed');
  assert.equal(iv.prevSeq, 10);
  close(iv.durationS, 5);
  close(iv.measured.rapl, 5 * 110);
  close(iv.measured.bmc_rest, 5 * 90);
  close(iv.vms[0]!.cpuSeconds, 5);
  assert.equal(r.anomalies[0]?.code, 'AGENT_RESTARTED');
  close(al.push(frame({ seq: 12, t: 6, boot: 'agent-2', vms: [vm('a', 6)] })).interval!.measured.rapl, 110);
});

test('a new boot_id reusing a seq at or below the host\'s last is FRAME_SEQ_REUSED (billed history is never rewritten); state is kept', () => {
  const al = new IntervalAligner();
  al.push(frame({ seq: 10, t: 0 }));
  al.push(frame({ seq: 11, t: 1 }));
  for (const seq of [1, 11]) {
    const r = al.push(frame({ seq, t: 2, monoOffsetS: -900, boot: 'reinstalled' }));
    assert.ok(isWattsplitError(r.rejected, 'FRAME_SEQ_REUSED'), `seq ${seq}`);
    assert.match(r.rejected.message, /boot "reinstalled" sent seq \d+, at or below seq 11 of boot "boot-1"/);
  }
  close(al.push(frame({ seq: 12, t: 2 })).interval!.measured.rapl, 110);
});

test('a second agent claiming the host while its agent still sends is FRAME_HOST_CONFLICT, state kept; once the host has been silent it is a reboot', () => {
  const al = new IntervalAligner();
  al.push(frame({ seq: 10, t: 0 }));
  al.push(frame({ seq: 11, t: 1 }));
  // A twin (its own kernel boot id, a higher first-install seq) sends interleaved with the host's agent.
  for (const [seq, t] of [[5000, 1.5], [5001, 2.5]] as const) {
    const r = al.push(frame({ seq, t, boot: 'twin-boot' }));
    assert.ok(isWattsplitError(r.rejected, 'FRAME_HOST_CONFLICT'), `seq ${seq}`);
    assert.match(r.rejected.message, /two agents claim this host/);
  }
  for (const [seq, t] of [[12, 2], [13, 3]] as const) close(al.push(frame({ seq, t })).interval!.measured.rapl, 110);
  // The host's agent goes quiet; the other boot, 30 s later, is a reboot.
  const r = al.push(frame({ seq: 5002, t: 33, monoOffsetS: -1000, boot: 'twin-boot' }));
  assert.equal(r.rejected, undefined);
  assert.equal(r.anomalies[0]?.code, 'COUNTER_RESET');
});

test('a counter that restarts and counts on (BMC reset on a 64-bit counter) is held one frame, then only that source loses the interval: the host never stalls', () => {
  const al = new IntervalAligner();
  const fr = (seq: number, bmcJ: number) => frame({ seq, t: seq, bmcJ });
  al.push(fr(1, 200));
  al.push(fr(2, 400));
  const held = al.push(fr(3, 50));
  assert.equal(held.interval, undefined, 'a reset may be a one-off glitch: held once');
  assert.ok(held.anomalies.some((a) => a.code === 'COUNTER_RESET' && a.counterId === 'bmc'));
  const r = al.push(fr(4, 250));
  const iv = r.interval!;
  assert.ok(iv, 'it counts on from its new value: accepted at once');
  assert.equal(iv.prevSeq, 2);
  close(iv.measured.rapl, 2 * 110, 1e-6);
  assert.deepEqual(iv.unusableSources, ['bmc_rest']);
  for (let seq = 5; seq <= 20; seq++) {
    const next = al.push(fr(seq, 250 + (seq - 4) * 200)).interval!;
    assert.ok(next, `seq ${seq} attributed`);
    close(next.measured.bmc_rest, 90);
  }
});

test('a counter value above its max_range makes that source unusable, never the frame (every other source is billed)', () => {
  const al = new IntervalAligner({ maxHeldFrames: 0 });
  al.push(frame({ seq: 1, t: 0 }));
  const bad = frame({ seq: 2, t: 1 });
  bad.counters![0] = { ...bad.counters![0]!, value: bad.counters![0]!.maxRange! + 5 };
  const r = al.push(bad);
  assert.equal(r.rejected, undefined);
  assert.equal(r.interval!.measured.rapl, 0);
  assert.ok(r.anomalies.some((a) => /exceeds its max_range/.test(a.message)));
});

test('wall clock going backwards is FRAME_CLOCK_SKEW; the duration comes from the monotonic clock', () => {
  const al = new IntervalAligner();
  al.push(frame({ seq: 1, t: 0 }));
  const r = al.push(frame({ seq: 2, t: 1, wallOffsetS: -30 }));
  const iv = r.interval!;
  close(iv.durationS, 1);
  assert.ok(r.anomalies.some((a) => a.code === 'FRAME_CLOCK_SKEW' && /wall clock moved -29\.000 s while the monotonic clock moved 1\.000 s/.test(a.message)));
  assert.equal(iv.t1UnixNs - iv.t0UnixNs, 1e9);
  // a wall step forward much larger than the monotonic delta is skew too
  const r2 = al.push(frame({ seq: 3, t: 2, wallOffsetS: 60 }));
  assert.ok(r2.anomalies.some((a) => a.code === 'FRAME_CLOCK_SKEW'));
  // a small NTP slew is not
  const r3 = al.push(frame({ seq: 4, t: 3, wallOffsetS: 60.01 }));
  assert.ok(!r3.anomalies.some((a) => a.code === 'FRAME_CLOCK_SKEW'));
});

test('monotonic time not advancing under the same boot is rejected naming mono_ns', () => {
  const al = new IntervalAligner();
  al.push(frame({ seq: 1, t: 5 }));
  const r = al.push(frame({ seq: 2, t: 4 }));
  assert.ok(isWattsplitError(r.rejected, 'FRAME_CLOCK_SKEW'));
  assert.match(r.rejected.message, /mono_ns=1004000000000 is not after/);
});

test('a vanished VM is attributed once as gone; if it comes back, its delta spans the gap', () => {
  const al = new IntervalAligner();
  al.push(frame({ seq: 1, t: 0, vms: [vm('a', 1), vm('b', 1)] }));
  const r2 = al.push(frame({ seq: 2, t: 1, vms: [vm('a', 2)] }));
  const gone = r2.interval!.vms.find((v) => v.uuid === 'b')!;
  assert.equal(gone.state, 'gone');
  assert.equal(gone.presence, 0.5);
  assert.equal(gone.cpuSeconds, 0);
  assert.ok(r2.anomalies.some((a) => a.code === 'VM_VANISHED' && a.vmUuid === 'b'));
  // next interval: b is not listed again
  const r3 = al.push(frame({ seq: 3, t: 2, vms: [vm('a', 3)] }));
  assert.deepEqual(r3.interval!.vms.map((v) => v.uuid), ['a']);
  // b comes back (its cgroup was briefly absent): the delta covers everything since its last sample
  const r4 = al.push(frame({ seq: 4, t: 3, vms: [vm('a', 4), vm('b', 3.5)] }));
  const back = r4.interval!.vms.find((v) => v.uuid === 'b')!;
  close(back.cpuSeconds, 2.5);
  assert.equal(back.presence, 1);
});

test('a VM reported GONE by the agent is attributed with its last deltas and not again', () => {
  const al = new IntervalAligner();
  al.push(frame({ seq: 1, t: 0, vms: [vm('a', 1)] }));
  const r = al.push(frame({ seq: 2, t: 1, vms: [vm('a', 1.4, { state: VmState.VM_STATE_GONE })] }));
  const v = r.interval!.vms[0]!;
  assert.equal(v.state, 'gone');
  close(v.cpuSeconds, 0.4);
  assert.equal(v.presence, 0.5);
  const r2 = al.push(frame({ seq: 3, t: 2, vms: [] }));
  assert.deepEqual(r2.interval!.vms, []);
  assert.ok(!r2.anomalies.some((a) => a.code === 'VM_VANISHED'));
});

test('an appearing VM gets presence from its start time and zero deltas (no earlier end)', () => {
  const al = new IntervalAligner();
  al.push(frame({ seq: 1, t: 0, vms: [] }));
  const r = al.push(frame({ seq: 2, t: 1, vms: [vm('n', 0.3, { startedMonoNs: Math.round((1000 + 0.75) * 1e9) })] }));
  const v = r.interval!.vms[0]!;
  close(v.presence, 0.25);
  assert.equal(v.cpuSeconds, 0);
  assert.equal(v.state, 'running');
});

test('a VM whose cpu counter went backwards (restarted) counts the new value, with an anomaly', () => {
  const al = new IntervalAligner();
  al.push(frame({ seq: 1, t: 0, vms: [vm('a', 100)] }));
  const r = al.push(frame({ seq: 2, t: 1, vms: [vm('a', 0.2)] }));
  close(r.interval!.vms[0]!.cpuSeconds, 0.2);
  assert.ok(r.anomalies.some((a) => a.code === 'COUNTER_WENT_BACKWARDS' && a.vmUuid === 'a' && /cpu_time_ns went 100000000000 → 200000000/.test(a.message)));
});

test('a counter reset that persists past maxHeldFrames makes that source unusable (not billed), not a negative delta', () => {
  const al = new IntervalAligner({ maxHeldFrames: 0 });
  al.push(frame({ seq: 1, t: 0, counters: [raplCounter('intel-rapl:0', 'package', 150_000_000_000), gpuCounter('0000:17:00.0', 5e6), bmcCounter(1000)] }));
  const r = al.push(frame({ seq: 2, t: 1, counters: [raplCounter('intel-rapl:0', 'package', 1_000_000), gpuCounter('0000:17:00.0', 5.3e6), bmcCounter(1700)] }));
  const iv = r.interval!;
  assert.equal(iv.measured.rapl, 0);
  close(iv.measured.gpu, 300);
  assert.equal(iv.measured.bmc_rest, 0);
  assert.deepEqual(iv.unusableSources, ['bmc_rest', 'rapl']);
  assert.ok(r.anomalies.some((a) => a.code === 'COUNTER_RESET' && a.counterId === 'intel-rapl:0'));
  assert.equal(iv.gpus[0]!.device, '0000:17:00.0');
  close(iv.gpus[0]!.meanPowerW, 300);
});

test('an implausible forward jump is COUNTER_IMPLAUSIBLE_DELTA and the source is not billed', () => {
  const al = new IntervalAligner({ maxWatts: { gpu: 1000 }, maxHeldFrames: 0 });
  al.push(frame({ seq: 1, t: 0, counters: [gpuCounter('0000:17:00.0', 0)] }));
  const r = al.push(frame({ seq: 2, t: 1, counters: [gpuCounter('0000:17:00.0', 2e6)] }));
  assert.equal(r.interval!.measured.gpu, 0);
  assert.deepEqual(r.interval!.unusableSources, ['bmc_rest', 'gpu']);
  assert.ok(r.anomalies.some((a) => a.code === 'COUNTER_IMPLAUSIBLE_DELTA' && /2000 W > max 1000 W/.test(a.message)));
});

test('with holding off, a counter with a read error on either end makes its source unusable', () => {
  const al = new IntervalAligner({ maxHeldFrames: 0 });
  const base = (k: number, err = '') => [{ ...raplCounter('intel-rapl:0', 'package', k * 1e8), error: err }, raplCounter('intel-rapl:0:0', 'dram', k * 1e7)];
  al.push(frame({ seq: 1, t: 0, counters: base(1) }));
  const r = al.push(frame({ seq: 2, t: 1, counters: base(2, 'EIO') }));
  assert.equal(r.interval!.measured.rapl, 0);
  assert.ok(r.anomalies.some((a) => a.code === 'SENSOR_READ_FAILED' && /intel-rapl:0: read failed \(EIO\)/.test(a.message)));
  const r2 = al.push(frame({ seq: 3, t: 2, counters: base(3) }));
  assert.equal(r2.interval!.measured.rapl, 0);
  const r3 = al.push(frame({ seq: 4, t: 3, counters: base(4) }));
  close(r3.interval!.measured.rapl, 110);
});

test('a frame with a failed read is held and the next good interval spans it: no energy or CPU time lost', () => {
  const al = new IntervalAligner();
  const base = (k: number, err = '') => [{ ...raplCounter('intel-rapl:0', 'package', k * 1e8), error: err }, raplCounter('intel-rapl:0:0', 'dram', k * 1e7)];
  al.push(frame({ seq: 1, t: 0, counters: base(1), vms: [vm('a', 0)] }));
  const held = al.push(frame({ seq: 2, t: 1, counters: base(2, 'EIO'), vms: [vm('a', 1)] }));
  assert.equal(held.interval, undefined);
  assert.ok(held.anomalies.some((a) => a.code === 'SENSOR_READ_FAILED' && /intel-rapl:0: read failed \(EIO\); frame held/.test(a.message)));
  assert.ok(isWattsplitError(al.push(frame({ seq: 2, t: 1, counters: base(2, 'EIO') })).rejected, 'FRAME_DUPLICATE_SEQ'), 'a redelivered held frame is a duplicate');
  const r = al.push(frame({ seq: 3, t: 2, counters: base(3), vms: [vm('a', 2)] }));
  const iv = r.interval!;
  assert.equal(iv.prevSeq, 1);
  close(iv.durationS, 2);
  close(iv.measured.rapl, 220); // both seconds of package + DRAM energy are in the spanning interval
  close(iv.vms[0]!.cpuSeconds, 2);
  assert.equal(iv.unusableSources, undefined);
  assert.ok(!r.anomalies.some((a) => a.code === 'FRAME_SEQ_GAP'), 'a held frame is not a missing frame');
});

test('an implausible glitch value is held, and a sensor broken for longer than maxHeldFrames is then billed as unusable', () => {
  const al = new IntervalAligner({ maxWatts: { gpu: 1000 }, maxHeldFrames: 2 });
  al.push(frame({ seq: 1, t: 0, counters: [gpuCounter('0000:17:00.0', 0)] }));
  const glitch = al.push(frame({ seq: 2, t: 1, counters: [gpuCounter('0000:17:00.0', 9e9)] }));
  assert.equal(glitch.interval, undefined);
  assert.ok(glitch.anomalies.some((a) => a.code === 'COUNTER_IMPLAUSIBLE_DELTA'));
  const ok = al.push(frame({ seq: 3, t: 2, counters: [gpuCounter('0000:17:00.0', 6e5)] })).interval!;
  close(ok.measured.gpu, 600);
  // now a read that stays broken: held twice, then accepted as unusable so the pipeline moves on
  const err = (seq: number) => al.push(frame({ seq, t: seq - 1, counters: [{ ...gpuCounter('0000:17:00.0', 0), error: 'NVML_ERROR_GPU_IS_LOST' }] }));
  assert.equal(err(4).interval, undefined);
  assert.equal(err(5).interval, undefined);
  const given = err(6).interval!;
  assert.equal(given.measured.gpu, 0);
  assert.deepEqual(given.unusableSources, ['bmc_rest', 'gpu']);
});

test('BMC wall below RAPL + GPU gives bmc_rest 0 with an anomaly', () => {
  const al = new IntervalAligner();
  al.push(frame({ seq: 1, t: 0, bmcJ: 0 }));
  const r = al.push(frame({ seq: 2, t: 1, bmcJ: 50 }));
  assert.equal(r.interval!.measured.bmc_rest, 0);
  assert.ok(r.anomalies.some((a) => a.code === 'COUNTER_IMPLAUSIBLE_DELTA' && /BMC wall energy 50\.0 J < RAPL 110\.0 J/.test(a.message)));
});

test('an invalid frame is rejected naming the field and value, and does not touch state', () => {
  const al = new IntervalAligner();
  const r = al.push({ ...frame({ seq: 1, t: 0 }), hostId: 'bad host!' });
  assert.ok(isWattsplitError(r.rejected, 'FRAME_INVALID_FIELD'));
  assert.match(r.rejected.message, /host_id="bad host!"/);
  assert.equal(al.hostCount, 0);
});

test('vanished VM memory is bounded per host', () => {
  const al = new IntervalAligner({ maxVanishedPerHost: 3 });
  const many = Array.from({ length: 10 }, (_, i) => vm(`v${i}`, 1));
  al.push(frame({ seq: 1, t: 0, vms: many }));
  al.push(frame({ seq: 2, t: 1, vms: [] }));
  // only the 3 newest vanished samples are kept: v7..v9 come back spanning, v0 comes back as new (zero delta)
  const r = al.push(frame({ seq: 3, t: 2, vms: [vm('v0', 5), vm('v9', 5)] }));
  const byId = new Map(r.interval!.vms.map((v) => [v.uuid, v]));
  assert.equal(byId.get('v0')!.cpuSeconds, 0);
  close(byId.get('v9')!.cpuSeconds, 4);
});

test('t0/t1 are the wall times of the two frames', () => {
  const al = new IntervalAligner();
  al.push(frame({ seq: 1, t: 0 }));
  const iv = al.push(frame({ seq: 2, t: 1 })).interval!;
  assert.equal(iv.t0UnixNs, WALL0_NS);
  assert.equal(iv.t1UnixNs, WALL0_NS + 1e9);
});

test('the device\'s mean utilisation over the interval (nvmlDeviceGetSamples) reaches the GPU interval through the wire; a frame without it leaves it out', () => {
  const al = new IntervalAligner();
  const dev = { device: '0000:17:00.0', index: 0, name: 'NVIDIA H100 80GB HBM3', powerMw: 300000, gpuUtilPct: 100, memUtilPct: 10, smClockMhz: 1980, contexts: 2 };
  const wire = (seq: number, t: number, e: number, g: typeof dev & { gpuUtilMeanPct?: number; gpuUtilSamples?: number }) =>
    decodeFrame(encodeFrame({ ...frame({ seq, t, counters: [gpuCounter('0000:17:00.0', e)] }), gpus: [g] }));
  al.push(wire(1, 0, 5e6, dev));
  const a = al.push(wire(2, 1, 5.3e6, { ...dev, gpuUtilMeanPct: 42.5, gpuUtilSamples: 6 })).interval!;
  assert.equal(a.gpus[0]!.gpuUtilPct, 100);
  assert.equal(a.gpus[0]!.gpuUtilMeanPct, 42.5);
  assert.equal(a.gpus[0]!.gpuUtilSamples, 6);
  const b = al.push(wire(3, 2, 5.6e6, dev)).interval!;
  assert.equal(b.gpus[0]!.gpuUtilPct, 100);
  assert.ok(!('gpuUtilMeanPct' in b.gpus[0]!) && !('gpuUtilSamples' in b.gpus[0]!), JSON.stringify(b.gpus[0]));
});

test('a GPU counter without a device sample in the closing frame is marked gpuUtilMissing (its 0 % is not a read); with one, the mark is absent', () => {
  const al = new IntervalAligner();
  const dev = { device: '0000:17:00.0', index: 0, name: 'NVIDIA H100 80GB HBM3', powerMw: 300000, gpuUtilPct: 70, memUtilPct: 10, smClockMhz: 1980, contexts: 2 };
  const wire = (seq: number, t: number, e: number, gpus: Array<typeof dev>) => decodeFrame(encodeFrame({ ...frame({ seq, t, counters: [gpuCounter('0000:17:00.0', e)] }), gpus }));
  al.push(wire(1, 0, 5e6, [dev]));
  const missing = al.push(wire(2, 1, 5.3e6, [])).interval!;
  assert.equal(missing.gpus[0]!.gpuUtilMissing, true);
  assert.equal(missing.gpus[0]!.gpuUtilPct, 0);
  close(missing.gpus[0]!.joules, 300);
  // another device's sample does not stand in for it
  const other = al.push(wire(3, 2, 5.6e6, [{ ...dev, device: '0000:65:00.0' }])).interval!;
  assert.equal(other.gpus[0]!.gpuUtilMissing, true);
  const read = al.push(wire(4, 3, 5.9e6, [dev])).interval!;
  assert.equal(read.gpus[0]!.gpuUtilPct, 70);
  assert.ok(!('gpuUtilMissing' in read.gpus[0]!), JSON.stringify(read.gpus[0]));
});

test('VMs reported in another order from frame to frame, some leaving and some arriving, align as when kept in order (the previous sample is looked up by position first)', () => {
  const rnd = prng(15);
  // one host's VMs over 40 frames: each frame a shuffled subset of 12, counters growing, now and then an I/O counter going back
  const uuids = Array.from({ length: 12 }, (_, i) => `u${String(i).padStart(2, '0')}`);
  const cpu = new Map(uuids.map((u) => [u, 0]));
  const frames = [];
  for (let seq = 1; seq <= 40; seq++) {
    const here = uuids.filter(() => rnd() < 0.85);
    const samples = here.map((u) => {
      cpu.set(u, cpu.get(u)! + rnd());
      return vm(u, cpu.get(u)!, { blockReadBytes: rnd() < 0.05 ? 7 : seq * 1000, netTxBytes: seq * 10 });
    });
    frames.push({ seq, t: seq - 1, vms: samples });
  }
  const inOrder = new IntervalAligner();
  const shuffled = new IntervalAligner();
  let compared = 0;
  let vanished = 0;
  let backwards = 0;
  for (const f of frames) {
    const a = inOrder.push(frame(f));
    const b = shuffled.push(frame({ ...f, vms: [...f.vms].sort(() => rnd() - 0.5) }));
    assert.equal(b.rejected, undefined);
    // the same interval; its anomalies follow the frames' order, so they are compared as a set
    const bySet = (iv: typeof a.interval) => iv && { ...iv, anomalies: [...iv.anomalies].sort((x, y) => x.message.localeCompare(y.message)) };
    assert.deepEqual(bySet(b.interval), bySet(a.interval), `seq ${f.seq}`);
    if (a.interval) compared++;
    vanished += a.anomalies.filter((x) => x.code === 'VM_VANISHED').length;
    // the I/O restart anomaly names the one VM whose counter went back, never the VMs aligned after it
    for (const x of a.anomalies.filter((y) => y.code === 'COUNTER_WENT_BACKWARDS')) {
      backwards++;
      const v = a.interval!.vms.find((w) => w.uuid === x.vmUuid)!;
      assert.equal(v.blockReadBytes, 7, `seq ${f.seq} ${x.vmUuid}`);
    }
  }
  assert.equal(compared, 39);
  assert.ok(vanished > 10 && backwards > 3, `vanished ${vanished}, backwards ${backwards}`);
});

test('counters read every few rounds (vcpu_read_mono_ns, slow_read_mono_ns) are spread as the rate over their newest read window: each kept until the next read, the two rates apart', () => {
  const al = new IntervalAligner();
  // VM a: vCPUs read at t = 0, 3, 6, 9, block I/O read at t = 0, 2, 4, 6, 8, each window at another rate
  // (vCPUs 0.5/0.25 → 0.75/0.375 → 0.25/1 cores; I/O read/written 1000/500 → 3000/1500 → 2000/0 → 500/250
  // B/s); between reads a frame repeats the last read's values and time. VM b: every counter every round.
  // Every rate, count and duration is a binary fraction or an integer, so each division and product below
  // is exact: the values are compared with assert.equal.
  const vcpuRead = new Map([[0, [0, 0]], [3, [1.5e9, 0.75e9]], [6, [3.75e9, 1.875e9]], [9, [4.5e9, 4.875e9]]]); // ns
  const ioRead = new Map([[0, [0, 0]], [2, [2000, 1000]], [4, [8000, 4000]], [6, [12000, 4000]], [8, [13000, 4500]]]); // bytes
  const a = (t: number) => {
    const v = Math.floor(t / 3) * 3;
    const io = Math.floor(t / 2) * 2;
    return vm('a', t, {
      vcpuTimeNs: vcpuRead.get(v)!,
      vcpuReadMonoNs: (1000 + v) * 1e9,
      blockReadBytes: ioRead.get(io)![0]!,
      blockWriteBytes: ioRead.get(io)![1]!,
      slowReadMonoNs: (1000 + io) * 1e9,
    });
  };
  const b = (t: number) => vm('b', 0.5 * t, { blockReadBytes: 70 * t });
  al.push(frame({ seq: 1, t: 0, vms: [a(0), b(0)] }));
  const got: Array<{ vcpu: number[]; read: number; write: number; b: number[]; bRead: number }> = [];
  for (let t = 1; t <= 9; t++) {
    const iv = al.push(frame({ seq: t + 1, t, vms: [a(t), b(t)] })).interval!;
    assert.deepEqual(iv.anomalies, [], `t=${t}`);
    assert.equal(iv.durationS, 1);
    const [va, vb] = iv.vms;
    got.push({ vcpu: va!.vcpuSeconds, read: va!.blockReadBytes, write: va!.blockWriteBytes, b: vb!.vcpuSeconds, bRead: vb!.blockReadBytes });
  }
  const want = [
    { vcpu: [0, 0], read: 0, write: 0 }, // t 0→1: no read since t = 0, no rate yet
    { vcpu: [0, 0], read: 1000, write: 500 }, // I/O read at 2: 2000 and 1000 B over 2 s
    { vcpu: [0.5, 0.25], read: 1000, write: 500 }, // vCPUs read at 3: 1.5 s and 0.75 s over 3 s; I/O's rate kept
    { vcpu: [0.5, 0.25], read: 3000, write: 1500 }, // I/O read at 4: 6000 and 3000 B over [2, 4]; vCPUs' rate kept
    { vcpu: [0.5, 0.25], read: 3000, write: 1500 },
    { vcpu: [0.75, 0.375], read: 2000, write: 0 }, // both read at 6: vCPUs over [3, 6], I/O over [4, 6]
    { vcpu: [0.75, 0.375], read: 2000, write: 0 },
    { vcpu: [0.75, 0.375], read: 500, write: 250 }, // I/O read at 8
    { vcpu: [0.25, 1], read: 500, write: 250 }, // vCPUs read at 9
  ];
  assert.equal(got.length, want.length);
  want.forEach((w, k) => {
    const g = got[k]!;
    assert.deepEqual(g.vcpu, w.vcpu, `interval ${k}→${k + 1}: vCPU seconds`);
    assert.equal(g.read, w.read, `interval ${k}→${k + 1}: bytes read`);
    assert.equal(g.write, w.write, `interval ${k}→${k + 1}: bytes written`);
    assert.deepEqual(g.b, [0.25, 0.25], `interval ${k}→${k + 1}: VM b`);
    assert.equal(g.bRead, 70, `interval ${k}→${k + 1}: VM b bytes read`);
  });
  // each interval's VMs have their own vcpuSeconds (spread in place, never a shared rate array)
  assert.equal(new Set(got.map((g) => g.vcpu)).size, got.length);
});

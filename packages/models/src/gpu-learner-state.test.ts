import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWattsplitError, type WattsplitError } from '@wattsplit/wire';
import { checkConservation, type AttributionContext, type HostInterval } from '@wattsplit/attribution';
import { AdditiveModelMethod, GpuSignatureLearner, GpuTimeSliceMethod, type GpuTimeSliceHostState } from './index.js';
import { laggedSlicedIntervals, synthHost } from './test-hosts.js';

const ctx: AttributionContext = { policy: 'equal', staticPower: { watts: { rapl: 123, gpu: 150, bmc_rest: 42 }, origin: 'configured' } };
const DEV = '0000:17:00.0';

/** Two hosts' intervals (the synthetic host under two ids, different seeds). */
function twoHosts(seconds: number): HostInterval[] {
  const a = synthHost({ seed: 21, seconds, gpu: { dynW: [560, 300], idleW: 130, passthroughW: 400 } }).intervals;
  const b = synthHost({ seed: 4, seconds, gpu: { dynW: [200, 450], idleW: 90 } }).intervals.map((iv) => ({ ...iv, hostId: 'h2' }));
  return a.flatMap((iv, i) => [iv, b[i]!]);
}

/** Every number of a JSON value is a plain finite number in an array or object (no typed arrays, no null for NaN). */
function assertPlainJson(v: unknown, path = '$'): void {
  if (typeof v === 'number') return assert.ok(Number.isFinite(v), `${path} = ${v}`);
  if (typeof v === 'string' || typeof v === 'boolean') return;
  assert.ok(v !== null && typeof v === 'object', `${path} is ${String(v)}`);
  assert.ok(Array.isArray(v) || Object.getPrototypeOf(v) === Object.prototype, `${path} is a ${v.constructor.name}`);
  for (const [k, x] of Object.entries(v)) assertPlainJson(x, `${path}.${k}`);
}

test('GpuSignatureLearner: export → JSON → fromState gives a bit-identical fit, and both go on identically', () => {
  const { intervals } = synthHost({ seed: 3, seconds: 400, gpu: { dynW: [500, 250], idleW: 110 } });
  const opts = { halfLifeWindows: 300, minActivity: 3 };
  const a = new GpuSignatureLearner(opts);
  const win = (iv: HostInterval) => ({
    durationS: iv.durationS,
    joules: iv.gpus[0]!.joules,
    activity: Object.fromEntries(iv.vms.slice(0, 2).map((v) => [v.uuid, (v.gpus[0]!.smUtilPct / 100) * iv.durationS])),
    contexts: Object.fromEntries(iv.vms.slice(0, 2).filter((v) => v.gpus[0]!.holdsContext).map((v) => [v.uuid, 1])),
  });
  intervals.slice(0, 200).forEach((iv) => a.observe(win(iv)));
  const st = a.exportState();
  assertPlainJson(st);
  const b = GpuSignatureLearner.fromState(JSON.parse(JSON.stringify(st)), opts);
  assert.deepStrictEqual(b.fit(), a.fit());
  assert.deepStrictEqual(b.exportState(), st);
  intervals.slice(200).forEach((iv) => {
    a.observe(win(iv));
    b.observe(win(iv));
  });
  assert.deepStrictEqual(b.fit(), a.fit());
  // an empty learner round-trips too
  const e = GpuSignatureLearner.fromState(JSON.parse(JSON.stringify(new GpuSignatureLearner().exportState())));
  assert.deepStrictEqual(e.fit(), new GpuSignatureLearner().fit());
});

test('GpuTimeSliceMethod: attribute only reads (same result twice, state unchanged); observe learns', () => {
  const ivs = twoHosts(120);
  const m = new GpuTimeSliceMethod({ minWindows: 50 });
  for (const iv of ivs.slice(0, 160)) m.observe(iv);
  const before = JSON.stringify(m.exportState('h1'));
  const iv = ivs[160]!;
  const r1 = m.attribute(iv, ctx);
  const r2 = m.attribute(iv, ctx);
  assert.deepStrictEqual(r2, r1);
  assert.equal(JSON.stringify(m.exportState('h1')), before);
  assert.equal(m.lastSeq('h1'), 80);
  m.observe(iv);
  assert.equal(m.lastSeq('h1'), 81);
  assert.notEqual(JSON.stringify(m.exportState('h1')), before);
  assert.deepEqual(m.hosts().sort(), ['h1', 'h2']);
});

test('GpuTimeSliceMethod: a re-observed (redelivered) interval changes nothing', () => {
  const ivs = twoHosts(100);
  const m = new GpuTimeSliceMethod({ minWindows: 20 });
  for (const iv of ivs) m.observe(iv);
  const s1 = JSON.stringify(m.exportState('h1'));
  const s2 = JSON.stringify(m.exportState('h2'));
  for (const iv of ivs.slice(-20)) m.observe(iv); // the last batch again
  m.observe(ivs[0]!); // and a very old one
  assert.equal(JSON.stringify(m.exportState('h1')), s1);
  assert.equal(JSON.stringify(m.exportState('h2')), s2);
});

test('GpuTimeSliceMethod: export per host → import into a fresh method → identical fits and attribution results, also after more intervals', () => {
  const ivs = twoHosts(300);
  const a = new GpuTimeSliceMethod({ minWindows: 60, halfLifeWindows: 200 });
  for (const iv of ivs.slice(0, 300)) a.observe(iv);
  const b = new GpuTimeSliceMethod({ minWindows: 60, halfLifeWindows: 200 });
  for (const host of a.hosts()) {
    const st = a.exportState(host)!;
    assertPlainJson(st);
    assert.equal(st.v, 1);
    assert.equal(st.learner, 'gpu_signature');
    assert.equal(st.hostId, host);
    assert.equal(st.lastSeq, 150);
    b.importState(host, JSON.stringify(st)); // as text, the way a store row holds it
  }
  // the learner holds 149 windows: the 150th waits for the next interval's utilisation (lag alignment), in the state
  assert.equal(a.fitOf('h1', DEV)!.windows, 149);
  const dev = a.exportState('h1')!.devices[0]!;
  assert.equal(dev.pending?.seq, 150);
  assert.equal(dev.lag?.n, 149, 'one pair per learned window (each was followed by a contiguous interval)');
  assert.equal(dev.state.sampleVar?.length, 2);
  assert.deepStrictEqual(b.fitOf('h1', DEV), a.fitOf('h1', DEV));
  assert.deepStrictEqual(b.fitOf('h2', DEV), a.fitOf('h2', DEV));
  // the passthrough device has no learner: not in the state
  assert.deepEqual(a.exportState('h1')!.devices.map((d) => d.device), [DEV]);
  for (const iv of ivs.slice(300)) {
    assert.deepStrictEqual(b.attribute(iv, ctx), a.attribute(iv, ctx));
    a.observe(iv);
    b.observe(iv);
  }
  assert.deepStrictEqual(b.exportState('h1'), a.exportState('h1'));
  // restoring a host on a method that already holds it replaces what it held (a partition coming back)
  const old = a.exportState('h2')!;
  const c = new GpuTimeSliceMethod({ minWindows: 60, halfLifeWindows: 200 });
  for (const iv of ivs) c.observe(iv);
  c.importState('h2', old);
  assert.deepStrictEqual(c.exportState('h2'), old);
  assert.equal(c.exportState('unknown-host'), undefined);
});

test('GpuTimeSliceMethod: a corrupted or foreign state is refused with LEARNER_STATE_INVALID naming the field, and nothing changes', () => {
  const ivs = twoHosts(60);
  const a = new GpuTimeSliceMethod({ minWindows: 20 });
  for (const iv of ivs) a.observe(iv);
  const good = a.exportState('h1')!;
  const m = new GpuTimeSliceMethod({ minWindows: 20 });
  for (const iv of ivs.slice(0, 40)) m.observe(iv);
  const kept = JSON.stringify(m.exportState('h1'));
  const refuse = (state: unknown, re: RegExp): void => {
    assert.throws(() => m.importState('h1', state), (e: WattsplitError) => isWattsplitError(e, 'LEARNER_STATE_INVALID') && re.test(e.message), String(re));
    assert.equal(JSON.stringify(m.exportState('h1')), kept);
  };
  const edit = (f: (s: GpuTimeSliceHostState) => void): GpuTimeSliceHostState => {
    const s = JSON.parse(JSON.stringify(good)) as GpuTimeSliceHostState;
    f(s);
    return s;
  };
  refuse('{"v":1,', /gpu_signature state of host "h1": not valid JSON/);
  refuse('[]', /field "\(state\)" must be an object, got \[\]/);
  refuse(edit((s) => ((s as { v: number }).v = 2)), /field "v" must be 1 .*got 2/);
  refuse(edit((s) => ((s as { learner: string }).learner = 'static_power')), /field "learner" must be "gpu_signature", got "static_power"/);
  refuse(edit((s) => (s.hostId = 'h2')), /field "hostId" must be "h1" \(the host it is imported for\), got "h2"/);
  refuse(edit((s) => ((s as { lastSeq: unknown }).lastSeq = '7')), /field "lastSeq" must be a finite number, got "7"/);
  refuse(edit((s) => s.devices[0]!.state.AtA[1]!.pop()), /devices\[0\] \(0000:17:00\.0\)\.state: field "AtA\[1\]" must have 4 elements \(has 3\)/);
  refuse(JSON.stringify(good).replace(/"bb":[0-9.e+]+/, '"bb":null'), /field "bb" must be a finite number, got null/);
  refuse(edit((s) => ((s.devices[0]!.state.Atb as unknown) = { 0: 1 })), /field "Atb" must be an array/);
  refuse(edit((s) => s.devices.push(s.devices[0]!)), /field "devices\[1\]\.device" must name each device once/);
  refuse(edit((s) => (s.devices[0]!.state.contextRange = null)), /field "contextRange" must be \[min, max\] when windows=\d+ > 0/);
  refuse(edit((s) => ((s as { base?: unknown }).base = { v: 1 })), /field "base" is state for a base method, but cpu_share keeps none/);
  refuse(edit((s) => ((s.devices[0]!.lag as { sxx: number }).sxx = -1)), /field "devices\[0\]\.lag\.sxx" must be ≥ 0, got -1/);
  refuse(edit((s) => ((s.devices[0]!.pending as { busy: number }).busy = 1.5)), /field "devices\[0\]\.pending\.busy" must be a fraction in \[0, 1\], got 1\.5/);
  refuse(edit((s) => ((s.devices[0]!.pending as { activity: unknown }).activity = { a: 1 })), /field "devices\[0\]\.pending\.activity" must be an array/);
  refuse(edit((s) => ((s.devices[0]!.pending as { prevPoint: number }).prevPoint = 2)), /field "devices\[0\]\.pending\.prevPoint" must be a fraction in \[0, 1\], got 2/);
  refuse(edit((s) => ((s.devices[0]!.pending as { point: unknown }).point = 'x')), /field "devices\[0\]\.pending\.point" must be a finite number, got "x"/);
  refuse(edit((s) => (s.devices[0]!.state.sampleVar = [1, -1])), /field "sampleVar" must be \[Σ v ≥ 0, count ≥ 0\]/);
});

test('GpuTimeSliceMethod: a state written before the lag estimator, the pending window and the sampling-variance sums imports and goes on learning', () => {
  const ivs = twoHosts(120);
  const a = new GpuTimeSliceMethod({ minWindows: 20 });
  for (const iv of ivs.slice(0, 160)) a.observe(iv);
  const st = a.exportState('h1')!;
  const old = JSON.parse(JSON.stringify(st)) as GpuTimeSliceHostState;
  for (const d of old.devices) {
    delete d.lag;
    delete d.pending;
    delete d.state.sampleVar;
  }
  const b = new GpuTimeSliceMethod({ minWindows: 20 });
  b.importState('h1', JSON.stringify(old));
  assert.deepStrictEqual(b.fitOf('h1', DEV), a.fitOf('h1', DEV), 'the same sums: the same fit');
  for (const iv of ivs.slice(160).filter((x) => x.hostId === 'h1')) {
    assert.deepEqual(checkConservation(b.attribute(iv, ctx)), []);
    b.observe(iv);
  }
  const after = b.exportState('h1')!.devices[0]!;
  assert.equal(after.pending?.seq, ivs.filter((x) => x.hostId === 'h1').at(-1)!.seq);
  assert.ok((after.lag?.n ?? 0) > 0);
  assert.equal(b.fitOf('h1', DEV)!.windows, a.fitOf('h1', DEV)!.windows + 39, 'the 40 intervals after it, the last one pending');
});

test('GpuTimeSliceMethod: a pending window written before the boundary alignment (no closing reads, no sample count) imports and is learned with the interval alignment, the window after it too; the boundary alignment resumes after', () => {
  // intervals that carry the device's mean utilisation (the boundary path) and a 0.15 s lag
  const { ivs } = laggedSlicedIntervals(13, 400, 0.15);
  const a = new GpuTimeSliceMethod({ minWindows: 20 });
  for (const iv of ivs.slice(0, 200)) a.observe(iv);
  const st = a.exportState('h')!;
  const p = st.devices[0]!.pending!;
  assert.ok(p.point !== undefined && p.prevPoint !== undefined && (p.utilSamples ?? 0) > 0, 'written now: with them');
  const old = JSON.parse(JSON.stringify(st)) as GpuTimeSliceHostState;
  for (const d of old.devices) {
    delete d.pending!.point;
    delete d.pending!.utilSamples;
    delete d.pending!.prevPoint;
  }
  const b = new GpuTimeSliceMethod({ minWindows: 20 });
  const c = new GpuTimeSliceMethod({ minWindows: 20, utilAlignment: 'interval' });
  b.importState('h', JSON.stringify(old));
  c.importState('h', JSON.stringify(old));
  const next = ivs.slice(200);
  // the old pending window (no closing read) and the one after it (no previous closing read to carry): both
  // learned with the interval alignment, so the fit is bit-identical to the same import under 'interval'
  b.observe(next[0]!);
  c.observe(next[0]!);
  assert.equal(b.exportState('h')!.devices[0]!.pending!.prevPoint, undefined, 'no closing read is made up from the old window');
  b.observe(next[1]!);
  c.observe(next[1]!);
  assert.equal(b.fitOf('h', 'g')!.windows, a.fitOf('h', 'g')!.windows + 2);
  assert.deepStrictEqual(b.fitOf('h', 'g'), c.fitOf('h', 'g'));
  assert.equal(b.exportState('h')!.devices[0]!.pending!.prevPoint, next[0]!.gpus[0]!.gpuUtilPct / 100, 'the boundary alignment resumes once a closing read is known');
  for (const iv of next.slice(2)) {
    b.observe(iv);
    c.observe(iv);
  }
  assert.notDeepStrictEqual(b.fitOf('h', 'g'), c.fitOf('h', 'g'), 'from the third interval on, the boundary path');
});

test('GpuTimeSliceMethod on the boundary path: export mid-stream → import → identical attribution results and state after more intervals (closing reads and busy-time variances round-trip)', () => {
  const { ivs } = laggedSlicedIntervals(17, 500, 0.2);
  const opts = { minWindows: 60, halfLifeWindows: 300 };
  const a = new GpuTimeSliceMethod(opts);
  for (const iv of ivs.slice(0, 250)) a.observe(iv);
  const st = a.exportState('h')!;
  assertPlainJson(st);
  const p = st.devices[0]!.pending!;
  assert.ok(p.point !== undefined && p.prevPoint !== undefined && (p.utilSamples ?? 0) > 0, JSON.stringify(p));
  // the boundary path ran: windows carried a busy-time variance into the weighting's sums, and it differs from the interval alignment
  assert.ok((st.devices[0]!.state.sampleVar?.[1] ?? 0) > 0);
  const byInterval = new GpuTimeSliceMethod({ ...opts, utilAlignment: 'interval' });
  for (const iv of ivs.slice(0, 250)) byInterval.observe(iv);
  assert.notDeepStrictEqual(byInterval.fitOf('h', 'g'), a.fitOf('h', 'g'));
  const b = new GpuTimeSliceMethod(opts);
  b.importState('h', JSON.stringify(st));
  assert.deepStrictEqual(b.exportState('h'), st);
  assert.deepStrictEqual(b.fitOf('h', 'g'), a.fitOf('h', 'g'));
  for (const iv of ivs.slice(250)) {
    assert.deepStrictEqual(b.attribute(iv, ctx), a.attribute(iv, ctx));
    a.observe(iv);
    b.observe(iv);
  }
  assert.deepStrictEqual(b.exportState('h'), a.exportState('h'));
});

test('GpuTimeSliceMethod: an interval without the device\'s closing read (gpuUtilMissing) keeps no point; the next window is not boundary-aligned with a made-up 0, and the state round-trips without it', () => {
  const { ivs } = laggedSlicedIntervals(19, 60, 0.15);
  const k = 30;
  const marked = ivs.map((iv, i) => (i === k ? { ...iv, gpus: [{ ...iv.gpus[0]!, gpuUtilPct: 0, gpuUtilMissing: true as const }] } : iv));
  const m = new GpuTimeSliceMethod({ minWindows: 20 });
  for (const iv of marked.slice(0, k + 1)) m.observe(iv);
  const atK = m.exportState('h')!;
  assert.ok(!('point' in atK.devices[0]!.pending!), JSON.stringify(atK.devices[0]!.pending));
  const r = new GpuTimeSliceMethod({ minWindows: 20 });
  r.importState('h', JSON.stringify(atK));
  assert.deepStrictEqual(r.exportState('h'), atK);
  m.observe(marked[k + 1]!);
  assert.equal(m.exportState('h')!.devices[0]!.pending!.prevPoint, undefined);
  m.observe(marked[k + 2]!);
  assert.equal(m.exportState('h')!.devices[0]!.pending!.prevPoint, marked[k + 1]!.gpus[0]!.gpuUtilPct / 100);
  // unmarked, the default 0 would have been carried as the previous closing read
  const u = new GpuTimeSliceMethod({ minWindows: 20 });
  ivs.slice(0, k + 2).forEach((iv, i) => u.observe(i === k ? { ...iv, gpus: [{ ...iv.gpus[0]!, gpuUtilPct: 0 }] } : iv));
  assert.equal(u.exportState('h')!.devices[0]!.pending!.prevPoint, 0);
});

test('AdditiveModelMethod forwards observe and state to its GPU method (cold start and with a model alike)', () => {
  const ivs = twoHosts(90);
  const gpu = new GpuTimeSliceMethod({ minWindows: 30 });
  const m = new AdditiveModelMethod({ models: { get: () => undefined }, gpu });
  for (const iv of ivs.slice(0, 120)) {
    m.attribute(iv, ctx);
    m.observe(iv);
  }
  assert.equal(gpu.lastSeq('h1'), 60);
  assert.deepStrictEqual(m.exportState('h1'), gpu.exportState('h1'));
  const fresh = new AdditiveModelMethod({ models: { get: () => undefined }, gpu: new GpuTimeSliceMethod({ minWindows: 30 }) });
  fresh.importState('h1', JSON.stringify(m.exportState('h1')));
  fresh.importState('h2', JSON.stringify(m.exportState('h2')));
  for (const iv of ivs.slice(120)) assert.deepStrictEqual(fresh.attribute(iv, ctx), m.attribute(iv, ctx));
});

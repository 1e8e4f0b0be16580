import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AckStatus, InProcessBus, WattsplitError, memoryLogger, retryable, failed, encodeBatch, encodeFrame, type BusMessageIn, type BusProducer } from '@wattsplit/wire';
import { ANOMALY_HEADER, TELEMETRY_TOPIC, startGateway, type GatewayOptions } from './index.js';
import { ScriptedProducer, drainTopic, frame, openStream, type IngestStream } from './test-helpers.js';

async function setup(t: { after(fn: () => Promise<void> | void): void }, opts: Partial<GatewayOptions> = {}) {
  const bus = new InProcessBus();
  const producer = new ScriptedProducer(bus);
  const logger = memoryLogger();
  const gw = await startGateway({ producer, logger, ...opts });
  const streams: IngestStream[] = [];
  const open = (o: Parameters<typeof openStream>[1] = {}): IngestStream => {
    const st = openStream(gw.address, o);
    streams.push(st);
    return st;
  };
  t.after(async () => {
    producer.release();
    // Agents hang up first, as they do when a gateway drains; then the gateway closes gracefully.
    await Promise.all(streams.map((st) => st.end()));
    await gw.close(2000);
    await bus.close();
  });
  return { bus, producer, gw, logger, open };
}

let groups = 0;
const topicFrames = (bus: InProcessBus) => drainTopic(bus, TELEMETRY_TOPIC, `g${++groups}`);

test('a good batch is acked OK only after the producer resolved, one keyed message per frame', async (t) => {
  const { bus, producer, gw, open } = await setup(t);
  const s = open();
  producer.hold();
  let acked = false;
  const ackP = s.send({ batchId: 1, frames: [frame('hv-1', 1), frame('hv-1', 2)] }).then((a) => ((acked = true), a));
  await producer.sendsStarted(1);
  // The producer has the batch and has not resolved: no ack may have been sent.
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  assert.equal(acked, false, 'acked before the bus acked');
  assert.equal(gw.stats().inFlightBatches, 1);
  producer.release();
  const ack = await ackP;
  assert.equal(ack.status, AckStatus.ACK_STATUS_OK);
  assert.equal(ack.batchId, 1);
  assert.equal(ack.accepted, 2);
  assert.equal(ack.rejected, 0);
  const got = await topicFrames(bus);
  assert.deepEqual(got.map((g) => g.frame.seq), [1, 2]);
  for (const g of got) {
    assert.equal(g.msg.key, 'hv-1');
    assert.deepEqual(g.msg.headers, { host: 'hv-1', seq: String(g.frame.seq), boot: 'boot-1' });
    assert.equal(g.frame.counters[0]!.value, 1_000_000 * g.frame.seq);
  }
  const st = gw.stats();
  assert.equal(st.framesAccepted, 2);
  assert.equal(st.acks.ok, 1);
  assert.equal(st.inFlightBatches, 0);
  assert.equal(st.inFlightBytes, 0);
  assert.equal(st.produceLatency.count, 1);
});

test('producer retryable/failed → RETRY with retry_after_ms, nothing produced; the resend is produced exactly once', async (t) => {
  const { bus, producer, gw, open } = await setup(t, { failedRetryAfterMs: 1234 });
  const s = open();
  producer.script.push(retryable(new WattsplitError('TRANSPORT_UNAVAILABLE', 'broker down', { retriable: true }), 250));
  producer.script.push(failed(new WattsplitError('TRANSPORT_TIMEOUT', 'request timed out')));
  const batch = { batchId: 7, frames: [frame('hv-2', 10), frame('hv-2', 11)] };
  const a1 = await s.send(batch);
  assert.equal(a1.status, AckStatus.ACK_STATUS_RETRY);
  assert.equal(a1.retryAfterMs, 250);
  assert.match(a1.message, /TRANSPORT_UNAVAILABLE: broker down/);
  const a2 = await s.send(batch);
  assert.equal(a2.status, AckStatus.ACK_STATUS_RETRY);
  assert.equal(a2.retryAfterMs, 1234);
  assert.match(a2.message, /TRANSPORT_TIMEOUT/);
  assert.equal((await topicFrames(bus)).length, 0, 'a RETRY batch must not be on the bus');
  const a3 = await s.send(batch);
  assert.equal(a3.status, AckStatus.ACK_STATUS_OK);
  assert.equal(a3.accepted, 2);
  assert.deepEqual((await topicFrames(bus)).map((g) => g.frame.seq), [10, 11]);
  assert.equal(gw.stats().produceFailures, 2);
  assert.equal(gw.stats().acks.retry, 2);
});

test('a broker down for many batches: one warning per kind and code per 30 s, the other RETRY acks at debug', async (t) => {
  const { producer, open, logger } = await setup(t);
  const s = open();
  for (let i = 0; i < 6; i++) producer.script.push(retryable(new WattsplitError('TRANSPORT_UNAVAILABLE', 'kafka send to wattsplit.telemetry.v1 (1 messages): Connection error: connect ECONNREFUSED 127.0.0.1:9092', { retriable: true }), 10));
  producer.script.push(failed(new WattsplitError('TRANSPORT_TIMEOUT', 'request timed out')));
  for (let i = 0; i < 7; i++) assert.equal((await s.send({ batchId: 100 + i, frames: [frame('hv-9', 100 + i)] })).status, AckStatus.ACK_STATUS_RETRY, 'every batch is still acked RETRY');
  const lines = logger.entries.filter((e) => /batch acked RETRY/.test(e.msg));
  assert.deepEqual(lines.map((e) => [e.level, e.fields.code]), [
    ['warn', 'TRANSPORT_UNAVAILABLE'],
    ...Array.from({ length: 5 }, () => ['debug', 'TRANSPORT_UNAVAILABLE']),
    ['warn', 'TRANSPORT_TIMEOUT'],
  ]);
  assert.equal(lines[0]!.fields.peer !== undefined && lines[0]!.fields.batchId, 100, 'the warning says which batch and peer');
  assert.ok(lines.slice(1, 6).every((e) => e.fields.heldBack === true));
});

test('a producer that throws is treated as retryable, not as a crash', async (t) => {
  const bus = new InProcessBus();
  const throwing: BusProducer = { send: () => Promise.reject(new Error('socket hang up')), close: () => Promise.resolve() };
  const gw = await startGateway({ producer: throwing });
  t.after(async () => { await gw.close(200); await bus.close(); });
  const s = openStream(gw.address);
  t.after(() => s.end());
  const a = await s.send({ batchId: 1, frames: [frame('hv-3', 1)] });
  assert.equal(a.status, AckStatus.ACK_STATUS_RETRY);
  assert.match(a.message, /TRANSPORT_UNAVAILABLE: socket hang up/);
});

test('bad protobuf bytes → REJECTED ack naming the decode failure; the stream and other clients go on', async (t) => {
  const { bus, gw, logger, open } = await setup(t);
  const bad = open();
  const a1 = await bad.send(Buffer.from([0x12, 0xff, 0xff, 0xff, 0x0f, 0x01]));
  assert.equal(a1.status, AckStatus.ACK_STATUS_REJECTED);
  assert.match(a1.message, /FRAME_DECODE_FAILED: ingest stream message: not a wattsplit\.telemetry\.v1\.FrameBatch .*6 bytes/);
  // Same stream, raw bytes of a good batch: still served.
  const a2 = await bad.send(Buffer.from(encodeBatch({ batchId: 2, frames: [frame('hv-4', 1)] })));
  assert.equal(a2.status, AckStatus.ACK_STATUS_OK);
  const other = open();
  const a3 = await other.send({ batchId: 1, frames: [frame('hv-5', 1)] });
  assert.equal(a3.status, AckStatus.ACK_STATUS_OK);
  assert.deepEqual((await topicFrames(bus)).map((g) => g.frame.hostId).sort(), ['hv-4', 'hv-5']);
  assert.equal(gw.stats().framesRejected.FRAME_DECODE_FAILED, 1);
  assert.ok(logger.entries.some((e) => e.level === 'warn' && e.fields.code === 'FRAME_DECODE_FAILED' && e.msg.includes('FrameBatch')));
});

test('frames reach the bus byte for byte as the agent sent them, fields unknown to this gateway included', async (t) => {
  const { bus, open } = await setup(t);
  const s = open();
  // A newer agent's frame: field 99 (varint 1) that this gateway's generated code does not know.
  const newer = Buffer.concat([Buffer.from(encodeFrame(frame('hv-15', 1))), Buffer.from([0x98, 0x06, 0x01])]);
  const older = Buffer.from(encodeFrame(frame('hv-15', 2)));
  const len = (n: number) => (n < 128 ? [n] : [(n & 0x7f) | 0x80, n >> 7]);
  const raw = Buffer.concat([Buffer.from([0x08, 0x05]), Buffer.from([0x12, ...len(newer.length)]), newer, Buffer.from([0x12, ...len(older.length)]), older]);
  const a = await s.send(raw);
  assert.equal(a.status, AckStatus.ACK_STATUS_OK);
  assert.equal(a.batchId, 5);
  const got = await topicFrames(bus);
  assert.deepEqual(Buffer.from(got[0]!.msg.value), newer);
  assert.deepEqual(Buffer.from(got[1]!.msg.value), older);
});

test('invalid frames are rejected by field and value; valid frames of the same batch are produced', async (t) => {
  const { bus, gw, logger, open } = await setup(t);
  const s = open();
  const a = await s.send({ batchId: 3, frames: [frame('hv-6', 1), frame('hv-6', 0), frame('bad host!', 2)] });
  assert.equal(a.status, AckStatus.ACK_STATUS_OK);
  assert.equal(a.accepted, 1);
  assert.equal(a.rejected, 2);
  assert.equal(a.rejections[0]!.code, 'FRAME_INVALID_FIELD');
  assert.match(a.rejections[0]!.message ?? '', /seq=0 must be a positive integer/);
  assert.match(a.rejections[1]!.message ?? '', /host_id="bad host!" must be 1-128 chars/);
  assert.equal((await topicFrames(bus)).length, 1);
  assert.equal(gw.stats().framesRejected.FRAME_INVALID_FIELD, 2);
  assert.equal(logger.entries.filter((e) => e.fields.code === 'FRAME_INVALID_FIELD').length, 2, 'each rejection logged once');
});

test('unknown host (allow-list) → FRAME_UNKNOWN_HOST naming the host', async (t) => {
  const { bus, open } = await setup(t, { allowedHosts: ['hv-7'] });
  const s = open();
  const a = await s.send({ batchId: 1, frames: [frame('hv-7', 1), frame('rogue-1', 1)] });
  assert.equal(a.status, AckStatus.ACK_STATUS_OK);
  assert.equal(a.accepted, 1);
  assert.deepEqual(a.rejections.map((r) => [r.hostId, r.code]), [['rogue-1', 'FRAME_UNKNOWN_HOST']]);
  assert.match(a.rejections[0]!.message ?? '', /host_id="rogue-1" is not in the gateway's host allow-list/);
  assert.deepEqual((await topicFrames(bus)).map((g) => g.frame.hostId), ['hv-7']);
});

test('per-host tokens: wrong token → REJECTED batch; right token, other host in a frame → FRAME_AUTH_FAILED; batch.token works too', async (t) => {
  const { bus, gw, open } = await setup(t, { auth: { mode: 'per-host', tokens: { 'hv-8': 'secret-8', 'hv-9': 'secret-9' } } });
  const wrong = open({ token: 'nope' });
  const a1 = await wrong.send({ batchId: 1, frames: [frame('hv-8', 1)] });
  assert.equal(a1.status, AckStatus.ACK_STATUS_REJECTED);
  assert.match(a1.message, /FRAME_AUTH_FAILED: batch refused: token belongs to no known host/);
  assert.ok(!a1.message.includes('nope'), 'the token itself is never echoed');
  const none = open();
  const a2 = await none.send({ batchId: 1, frames: [frame('hv-8', 1)] });
  assert.equal(a2.status, AckStatus.ACK_STATUS_REJECTED);
  assert.match(a2.message, /no token/);
  const good = open({ token: 'secret-8' });
  const a3 = await good.send({ batchId: 2, frames: [frame('hv-8', 1), frame('hv-9', 1)] });
  assert.equal(a3.status, AckStatus.ACK_STATUS_OK);
  assert.equal(a3.accepted, 1);
  assert.equal(a3.rejections[0]!.code, 'FRAME_AUTH_FAILED');
  assert.match(a3.rejections[0]!.message ?? '', /host_id="hv-9" is not the host this token belongs to \("hv-8"\)/);
  const inBatch = open();
  const a4 = await inBatch.send({ batchId: 3, token: 'secret-9', frames: [frame('hv-9', 1)] });
  assert.equal(a4.status, AckStatus.ACK_STATUS_OK);
  assert.deepEqual((await topicFrames(bus)).map((g) => g.frame.hostId).sort(), ['hv-8', 'hv-9']);
  assert.equal(gw.stats().framesRejected.FRAME_AUTH_FAILED, 3);
});

test('shared token mode accepts any host with the fleet token', async (t) => {
  const { open } = await setup(t, { auth: { mode: 'shared', token: 'fleet' } });
  const s = open({ token: 'fleet' });
  assert.equal((await s.send({ batchId: 1, frames: [frame('hv-a', 1), frame('hv-b', 1)] })).accepted, 2);
  const w = open({ token: 'fleet2' });
  assert.equal((await w.send({ batchId: 1, frames: [frame('hv-a', 2)] })).status, AckStatus.ACK_STATUS_REJECTED);
});

test('a resent seq is acked OK and produced once (also within one batch and across streams)', async (t) => {
  const { bus, gw, open } = await setup(t);
  const s1 = open();
  const batch = { batchId: 1, frames: [frame('hv-10', 1), frame('hv-10', 2)] };
  assert.equal((await s1.send(batch)).accepted, 2);
  const again = await s1.send({ ...batch, batchId: 2 });
  assert.equal(again.status, AckStatus.ACK_STATUS_OK);
  assert.equal(again.accepted, 2);
  // A reconnecting agent replays its spool on a new stream, overlapping what was produced.
  const s2 = open();
  const replay = await s2.send({ batchId: 1, frames: [frame('hv-10', 2), frame('hv-10', 3), frame('hv-10', 3)] });
  assert.equal(replay.status, AckStatus.ACK_STATUS_OK);
  assert.equal(replay.accepted, 3);
  assert.deepEqual((await topicFrames(bus)).map((g) => g.frame.seq), [1, 2, 3]);
  assert.equal(gw.stats().framesDuplicate, 4);
  assert.equal(gw.stats().framesAccepted, 3);
});

test('a seq restarted under a new boot id is new data, not a duplicate', async (t) => {
  const { bus, gw, open } = await setup(t);
  const s = open();
  await s.send({ batchId: 1, frames: [frame('hv-14', 1), frame('hv-14', 2)] });
  const a = await s.send({ batchId: 2, frames: [frame('hv-14', 1, { bootId: 'boot-2' })] });
  assert.equal(a.accepted, 1);
  assert.deepEqual((await topicFrames(bus)).map((g) => [g.frame.bootId, g.frame.seq]), [['boot-1', 1], ['boot-1', 2], ['boot-2', 1]]);
  assert.equal(gw.stats().framesDuplicate, 0);
});

test('the duplicate window is bounded: seqs older than seqsPerHost are produced again', async (t) => {
  const { bus, open } = await setup(t, { seqsPerHost: 2 });
  const s = open();
  await s.send({ batchId: 1, frames: [1, 2, 3].map((q) => frame('hv-11', q)) });
  await s.send({ batchId: 2, frames: [frame('hv-11', 3), frame('hv-11', 1)] });
  assert.deepEqual((await topicFrames(bus)).map((g) => g.frame.seq), [1, 2, 3, 1]);
});

test('counters going backwards within a boot are produced with the anomaly header and counted; wraps and new boots are not', async (t) => {
  const { bus, gw, logger, open } = await setup(t);
  const s = open();
  const f1 = frame('hv-12', 1);
  const back = frame('hv-12', 2, { counters: [{ ...f1.counters![0]!, value: 2_000_000 }, { ...f1.counters![1]!, value: 100 }] }); // bmc 300 → 100: backwards
  const fine = frame('hv-12', 3, { counters: [{ ...f1.counters![0]!, value: 3_000_000 }, { ...f1.counters![1]!, value: 400 }] });
  const nearTop = frame('hv-12', 4, { counters: [{ ...f1.counters![0]!, value: 262_143_000_000 }, { ...f1.counters![1]!, value: 500 }] });
  const wrapped = frame('hv-12', 5, { counters: [{ ...f1.counters![0]!, value: 2_000_000 }, { ...f1.counters![1]!, value: 600 }] }); // a real RAPL wrap
  const reboot = frame('hv-12', 6, { bootId: 'boot-2', counters: [{ ...f1.counters![0]!, value: 10 }, { ...f1.counters![1]!, value: 1 }] });
  const vmBack = frame('hv-12', 7, { bootId: 'boot-2', counters: reboot.counters!, vms: [{ ...f1.vms![0]!, cpuTimeNs: 1 }] });
  const a = await s.send({ batchId: 1, frames: [f1, back, fine, nearTop, wrapped, reboot, vmBack] });
  assert.equal(a.status, AckStatus.ACK_STATUS_OK);
  assert.equal(a.accepted, 7);
  const got = await topicFrames(bus);
  const flagged = got.filter((g) => g.msg.headers[ANOMALY_HEADER] !== undefined).map((g) => [g.frame.seq, g.msg.headers[ANOMALY_HEADER]]);
  assert.deepEqual(flagged, [
    [2, 'COUNTER_WENT_BACKWARDS bmc 300->100'],
    [7, 'COUNTER_WENT_BACKWARDS vm:vm-a:cpu_time_ns 3000000000->1'],
  ]);
  assert.equal(gw.stats().framesAnomalous, 2);
  assert.ok(logger.entries.some((e) => e.fields.code === 'COUNTER_WENT_BACKWARDS' && e.msg.includes('bmc 300->100')));
  // Against the previous batch too.
  const a2 = await s.send({ batchId: 2, frames: [frame('hv-12', 8, { bootId: 'boot-2', counters: [{ ...f1.counters![0]!, value: 20 }, { ...f1.counters![1]!, value: 0 }] })] });
  assert.equal(a2.status, AckStatus.ACK_STATUS_OK);
  const last = (await topicFrames(bus)).at(-1)!;
  assert.equal(last.msg.headers[ANOMALY_HEADER], 'COUNTER_WENT_BACKWARDS bmc 1->0');
});

test('many concurrent streams: every batch acked OK in order, every host\'s frames in seq order on the bus', async (t) => {
  const { bus, gw, open } = await setup(t);
  const hosts = Array.from({ length: 24 }, (_, i) => `hv-c${i}`);
  const streams = hosts.map((h) => ({ h, s: open() }));
  const acks = await Promise.all(
    streams.map(async ({ h, s }) => {
      // Pipelined: all batches written before the first ack arrives.
      const ps = Array.from({ length: 8 }, (_, b) => s.send({ batchId: b + 1, frames: [frame(h, 2 * b + 1), frame(h, 2 * b + 2)] }));
      return Promise.all(ps);
    }),
  );
  for (const list of acks) {
    assert.deepEqual(list.map((a) => a.batchId), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.ok(list.every((a) => a.status === AckStatus.ACK_STATUS_OK && a.accepted === 2));
  }
  const got = await topicFrames(bus);
  assert.equal(got.length, 24 * 16);
  for (const h of hosts) assert.deepEqual(got.filter((g) => g.frame.hostId === h).map((g) => g.frame.seq), Array.from({ length: 16 }, (_, i) => i + 1));
  assert.equal(gw.stats().inFlightBatches, 0);
});

test('back-pressure: a stream over its in-flight bound is paused; over the global bound a batch gets RETRY', async (t) => {
  const { bus, producer, gw, open } = await setup(t, { maxInFlightBatchesPerStream: 2, maxInFlightBatches: 3, overloadRetryAfterMs: 321 });
  producer.hold();
  const s1 = open();
  const p1 = Array.from({ length: 6 }, (_, b) => s1.send({ batchId: b + 1, frames: [frame('hv-bp1', b + 1)] }));
  await producer.sendsStarted(1);
  for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
  const st = gw.stats();
  assert.ok(st.inFlightBatches <= 2, `in flight ${st.inFlightBatches} > per-stream bound 2`);
  assert.ok(st.streamPauses >= 1);
  // Fill the global bound with two more streams; the next batch is refused with RETRY.
  const s2 = open();
  const s3 = open();
  const p2 = s2.send({ batchId: 1, frames: [frame('hv-bp2', 1)] });
  while (gw.stats().inFlightBatches < 3) await new Promise((r) => setTimeout(r, 5));
  const refused = await s3.send({ batchId: 9, frames: [frame('hv-bp3', 1)] });
  assert.equal(refused.status, AckStatus.ACK_STATUS_RETRY);
  assert.equal(refused.batchId, 9);
  assert.equal(refused.retryAfterMs, 321);
  assert.match(refused.message, /TRANSPORT_BACKPRESSURE/);
  producer.release();
  const acks = await Promise.all(p1);
  assert.deepEqual(acks.map((a) => [a.batchId, a.status]), [1, 2, 3, 4, 5, 6].map((b) => [b, AckStatus.ACK_STATUS_OK]));
  assert.equal((await p2).status, AckStatus.ACK_STATUS_OK);
  assert.equal((await s3.send({ batchId: 9, frames: [frame('hv-bp3', 1)] })).status, AckStatus.ACK_STATUS_OK);
  assert.equal((await topicFrames(bus)).length, 8);
  assert.equal(gw.stats().backpressureRetries, 1);
});

test('a batch over maxBatchBytes ends that stream with RESOURCE_EXHAUSTED; the server keeps serving', async (t) => {
  const { open } = await setup(t, { maxBatchBytes: 2048 });
  const big = open();
  const vms = Array.from({ length: 200 }, (_, i) => ({ uuid: `vm-${i}`, name: `vm-${i}`, tenant: 't', cpuTimeNs: i }));
  await assert.rejects(big.send({ batchId: 1, frames: [frame('hv-big', 1, { vms })] }), /stream ended before ack: 8 /);
  await big.end();
  const ok = open();
  assert.equal((await ok.send({ batchId: 1, frames: [frame('hv-big', 1)] })).status, AckStatus.ACK_STATUS_OK);
});

test('metrics text exposes counters by code, the latency histogram and in-flight gauges', async (t) => {
  const { gw, open } = await setup(t, { allowedHosts: ['hv-m'] });
  const s = open();
  await s.send({ batchId: 1, frames: [frame('hv-m', 1), frame('hv-x', 1)] });
  const text = gw.metricsText({ gateway: 'gw-test' });
  assert.match(text, /^wattsplit_gateway_frames_accepted_total\{gateway="gw-test"\} 1$/m);
  assert.match(text, /^wattsplit_gateway_frames_rejected_total\{gateway="gw-test",code="FRAME_UNKNOWN_HOST"\} 1$/m);
  assert.match(text, /^wattsplit_gateway_acks_total\{gateway="gw-test",status="ok"\} 1$/m);
  assert.match(text, /^wattsplit_gateway_produce_latency_seconds_bucket\{gateway="gw-test",le="\+Inf"\} 1$/m);
  assert.match(text, /^wattsplit_gateway_produce_latency_seconds_count\{gateway="gw-test"\} 1$/m);
  assert.match(text, /^# TYPE wattsplit_gateway_inflight_bytes gauge$/m);
  assert.match(text, /^wattsplit_gateway_inflight_batches\{gateway="gw-test"\} 0$/m);
});

test('bad configuration names the option and the value', async () => {
  const producer: BusProducer = { send: (_t: string, _m: readonly BusMessageIn[]) => Promise.resolve({ kind: 'ok' }), close: () => Promise.resolve() };
  await assert.rejects(startGateway({ producer, maxInFlightBatches: 0 }), /CONFIG_INVALID|maxInFlightBatches=0 must be a positive number/);
  await assert.rejects(startGateway({ producer, tls: { certFile: '/nonexistent/server.pem', keyFile: '/nonexistent/key.pem' } }), (e) => e instanceof WattsplitError && e.code === 'CONFIG_INVALID' && e.message.includes('tls.certFile="/nonexistent/server.pem"'));
  await assert.rejects(startGateway({ producer, auth: { mode: 'per-host', tokens: { a: 'same', b: 'same' } } }), /hosts "a" and "b" share one token/);
  await assert.rejects(startGateway({ producer, auth: { mode: 'shared', token: '' } }), /shared token is empty/);
});

test('a RAPL counter that decreases by most of its range is flagged (not a plausible wrap)', async (t) => {
  const { bus, gw, open } = await setup(t);
  const s = open();
  const f1 = frame('hv-13', 1);
  const f2 = frame('hv-13', 2, { counters: [{ ...f1.counters![0]!, value: 1 }, f1.counters![1]!] });
  assert.equal((await s.send({ batchId: 1, frames: [f1, f2] })).accepted, 2);
  const got = await topicFrames(bus);
  assert.equal(got[1]!.msg.headers[ANOMALY_HEADER], 'COUNTER_WENT_BACKWARDS intel-rapl:0 1000000->1');
  assert.equal(gw.stats().framesAnomalous, 1);
});

test('close() lets a batch already being produced finish and be acked OK, then ends the streams', async () => {
  const bus = new InProcessBus();
  const producer = new ScriptedProducer(bus);
  const gw = await startGateway({ producer });
  const s = openStream(gw.address);
  producer.hold();
  const ackP = s.send({ batchId: 1, frames: [frame('hv-16', 1)] });
  await producer.sendsStarted(1);
  const closing = gw.close(5000);
  producer.release();
  const ack = await ackP;
  assert.equal(ack.status, AckStatus.ACK_STATUS_OK);
  await closing;
  const status = await s.closed;
  assert.equal(status.code, 0, `stream ended with ${status.code} ${status.details}`);
  assert.deepEqual((await topicFrames(bus)).map((g) => g.frame.seq), [1]);
  await s.end();
});

test('a producer refusing frames for good (Kafka MESSAGE_TOO_LARGE) → those frames rejected TRANSPORT_REJECTED, the rest produced, never RETRY', async (t) => {
  const bus = new InProcessBus();
  const inner = bus.producer();
  // Like a topic with max.message.bytes=1500: any one send over it is refused, not retriable.
  const limited: BusProducer = {
    send: (topic, ms: readonly BusMessageIn[]) => (ms.reduce((n, m) => n + m.value.length, 0) > 1500 ? Promise.resolve(failed(new WattsplitError('TRANSPORT_REJECTED', 'produce: MESSAGE_TOO_LARGE'))) : inner.send(topic, ms)),
    close: () => Promise.resolve(),
  };
  const logger = memoryLogger();
  const gw = await startGateway({ producer: limited, logger });
  const s = openStream(gw.address);
  t.after(async () => {
    await s.end();
    await gw.close(500);
    await bus.close();
  });
  const big = (seq: number) => frame('hv-big', seq, { vms: Array.from({ length: 30 }, (_, v) => ({ uuid: `vm-${v}-${'x'.repeat(40)}`, name: 'x', tenant: 't', vcpus: 1, memoryBytes: 1, cpuTimeNs: 1, startedMonoNs: 1 })) });
  const a = await s.send({ batchId: 1, frames: [frame('hv-big', 1), big(2), frame('hv-big', 3), frame('hv-big', 4), frame('hv-big', 5)] });
  assert.equal(a.status, AckStatus.ACK_STATUS_OK);
  assert.equal(a.accepted, 4);
  assert.deepEqual(a.rejections.map((r) => [Number(r.seq), r.code]), [[2, 'TRANSPORT_REJECTED']]);
  const b = await s.send({ batchId: 2, frames: [big(6)] });
  assert.equal(b.status, AckStatus.ACK_STATUS_REJECTED);
  assert.match(b.message, /^TRANSPORT_REJECTED: .*MESSAGE_TOO_LARGE/);
  assert.deepEqual((await topicFrames(bus)).map((g) => g.frame.seq), [1, 3, 4, 5]);
  const st = gw.stats();
  assert.equal(st.acks.retry, 0);
  assert.equal(st.framesRejected.TRANSPORT_REJECTED, 2);
  assert.ok((st.produceErrors['permanent:TRANSPORT_REJECTED'] ?? 0) >= 2);
  assert.ok(logger.entries.some((e) => e.fields.code === 'TRANSPORT_REJECTED' && e.fields.host === 'hv-big' && e.fields.seq === 2));
});

test('a client with the token only in its batches: a small first batch, then a 1 MiB one sent right behind it, is not cut as unauthenticated', async (t) => {
  const { open, gw, logger } = await setup(t, { auth: { mode: 'per-host', tokens: { 'hv-7': 'secret-7' } } });
  const st = open();
  const vms = (n: number, seq: number) => Array.from({ length: n }, (_, v) => ({ uuid: `vm-${v}-${'x'.repeat(480)}`, name: 'x', tenant: 't', vcpus: 1, memoryBytes: 1, cpuTimeNs: seq, startedMonoNs: 1 }));
  const first = Buffer.from(encodeBatch({ batchId: 1, token: 'secret-7', frames: [frame('hv-7', 1, { vms: vms(40, 1) })] }));
  const second = Buffer.from(encodeBatch({ batchId: 2, token: 'secret-7', frames: Array.from({ length: 24 }, (_, i) => frame('hv-7', i + 2, { vms: vms(100, i + 2) })) }));
  assert.ok(first.length < 64 * 1024 && first.length > 16 * 1024, `first batch ${first.length} B`);
  assert.ok(second.length > 1024 * 1024, `second batch ${second.length} B`);
  // Both written at once: the second's bytes reach the gateway before the first batch's token is read.
  const [a1, a2] = await Promise.all([st.send(first), st.send(second)]);
  assert.equal(a1.status, AckStatus.ACK_STATUS_OK, a1.message);
  assert.equal(a2.status, AckStatus.ACK_STATUS_OK, a2.message);
  assert.equal(a2.accepted, 24);
  assert.equal(gw.stats().connectionsClosed.pre_auth_bytes ?? 0, 0);
  assert.ok(!logger.entries.some((e) => e.fields.reason === 'pre_auth_bytes'), 'no connection was cut');
});

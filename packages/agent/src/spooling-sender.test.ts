import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, closeSync, openSync, readFileSync, readdirSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { AckStatus, decodeFrame, memoryLogger, type ITelemetryFrame } from '@wattsplit/wire';
import { FrameSpool } from './frame-spool.js';
import { GrpcIngestClient } from './grpc-ingest-client.js';
import { SpoolingSender } from './spooling-sender.js';
import { startIngestServer, tempDir } from './test-helpers.js';

function frame(seq: number): ITelemetryFrame {
  return { hostId: 'h1', seq, bootId: 'b', monoNs: seq * 1e9, wallUnixNs: 1.7e18 + seq * 1e9, intervalMs: 1000, counters: [{ id: 'intel-rapl:0', source: 1, unit: 1, value: seq * 1000, maxRange: 1e12 }] };
}
const seqs = (fs: ITelemetryFrame[]) => fs.map((f) => Number(f.seq));
const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('frames flow to a real gRPC server in order with per-batch acks and the Bearer token', async (t) => {
  const { dir, cleanup } = tempDir('spool');
  const srv = await startIngestServer();
  const log = memoryLogger();
  const client = new GrpcIngestClient({ address: `127.0.0.1:${srv.port}`, tls: false, token: 'tok-1', logger: log });
  const sender = new SpoolingSender({ spool: { dir }, transport: client, batching: { maxFrames: 4 }, logger: log });
  t.after(async () => {
    await sender.close();
    await srv.stop();
    cleanup();
  });
  for (let i = 1; i <= 10; i++) sender.enqueue(frame(i));
  sender.start();
  assert.equal(await sender.drain(10_000), true);
  assert.deepEqual(seqs(srv.frames), range(1, 10));
  assert.ok(srv.batches.every((b) => b.frames.length <= 4 && b.token === 'tok-1'));
  assert.equal(srv.authHeaders[0], 'Bearer tok-1');
  const m = sender.metrics();
  assert.equal(m.pendingFrames, 0);
  assert.equal(m.sentFrames, 10);
});

test('gateway down for a while, then back: every frame arrives, in order, once', async (t) => {
  const { dir, cleanup } = tempDir('spool');
  let srv = await startIngestServer();
  const port = srv.port;
  const log = memoryLogger();
  const client = new GrpcIngestClient({ address: `127.0.0.1:${port}`, tls: false, logger: log, backoffBaseMs: 20, backoffCapMs: 200 });
  const sender = new SpoolingSender({ spool: { dir }, transport: client, batching: { maxFrames: 8 }, logger: log });
  const all: ITelemetryFrame[] = [];
  t.after(async () => {
    await sender.close();
    await srv.stop();
    cleanup();
  });
  sender.start();
  for (let i = 1; i <= 5; i++) sender.enqueue(frame(i));
  assert.equal(await sender.drain(10_000), true);
  all.push(...srv.frames);
  await srv.stop(); // gateway goes away
  for (let i = 6; i <= 30; i++) sender.enqueue(frame(i));
  await until(() => sender.metrics().retries >= 2);
  assert.ok(sender.metrics().pendingFrames >= 25, 'frames wait in the spool');
  assert.ok(log.entries.some((e) => /send failed, frames stay spooled/.test(e.msg)));
  srv = await startIngestServer({ port }); // back on the same address
  assert.equal(await sender.drain(15_000), true);
  all.push(...srv.frames);
  assert.deepEqual(seqs(all), range(1, 30));
  // the end of the outage is said once: how long, how many frames the first batch carried, how many remain
  const back = log.entries.filter((e) => e.level === 'info' && e.msg.startsWith('gateway reachable again'));
  assert.equal(back.length, 1, JSON.stringify(back));
  const sent = Number(back[0]!.fields.sentFrames);
  assert.ok(sent >= 1 && sent <= 8 && sent + Number(back[0]!.fields.pending) === 25, JSON.stringify(back[0]!.fields));
  assert.match(back[0]!.msg, new RegExp(`^gateway reachable again after \\d+ s: ${sent} spooled frames sent in order, ${25 - sent} more to send$`));
});

test('RETRY acks resend the same batch (same seqs); REJECTED batches are kept in rejected/ (dead letter), counted, and the rest flows', async (t) => {
  const { dir, cleanup } = tempDir('spool');
  let n = 0;
  const srv = await startIngestServer({
    decide: (b) => {
      n++;
      if (n <= 2) return { status: AckStatus.ACK_STATUS_RETRY, retryAfterMs: 10, message: 'kafka busy' };
      if (b.frames.some((f) => Number(f.seq) === 3)) return { status: AckStatus.ACK_STATUS_REJECTED, message: 'TRANSPORT_REJECTED: the bus refused 2 of 2 frames for good: MESSAGE_TOO_LARGE' };
      return {};
    },
  });
  const log = memoryLogger();
  const client = new GrpcIngestClient({ address: `127.0.0.1:${srv.port}`, tls: false, logger: log });
  const sender = new SpoolingSender({ spool: { dir }, transport: client, batching: { maxFrames: 2 }, logger: log });
  t.after(async () => {
    await sender.close();
    await srv.stop();
    cleanup();
  });
  for (let i = 1; i <= 6; i++) sender.enqueue(frame(i));
  sender.start();
  assert.equal(await sender.drain(10_000), true);
  assert.deepEqual(seqs(srv.frames), [1, 2, 5, 6]);
  const m = sender.metrics();
  assert.equal(m.retries, 2);
  assert.equal(m.rejectedFrames, 2);
  const entry = log.entries.find((e) => e.level === 'error' && /MESSAGE_TOO_LARGE/.test(e.msg));
  assert.ok(entry, 'the rejection is logged');
  assert.equal(entry.fields.code, 'TRANSPORT_REJECTED');
  // Nothing is lost: the rejected batch's frames are in the dead-letter file, byte for byte.
  const files = readdirSync(join(dir, 'rejected'));
  assert.equal(files.length, 1);
  assert.equal(entry.fields.file, join(dir, 'rejected', files[0]!));
  const buf = readFileSync(join(dir, 'rejected', files[0]!));
  const nl = buf.indexOf(0x0a);
  assert.deepEqual(JSON.parse(buf.subarray(0, nl).toString()), { code: 'TRANSPORT_REJECTED', message: 'gateway rejected batch 4: TRANSPORT_REJECTED: the bus refused 2 of 2 frames for good: MESSAGE_TOO_LARGE', frames: 2 });
  const kept: number[] = [];
  for (let i = nl + 1; i < buf.length; ) {
    const len = buf.readUInt32LE(i);
    kept.push(Number(decodeFrame(buf.subarray(i + 4, i + 4 + len), 'dead letter').seq));
    i += 4 + len;
  }
  assert.deepEqual(kept, [3, 4]);
  // "reachable again" follows the retried sends only: the rejected batch came from a reachable gateway
  const back = log.entries.filter((e) => e.msg.startsWith('gateway reachable again'));
  assert.deepEqual(back.map((e) => e.fields.sentFrames), [2]);
});

test('a frame larger than a batch may be is kept in rejected/ without being sent (gRPC would refuse it as a broken stream, retried forever); the rest flows', async (t) => {
  const { dir, cleanup } = tempDir('spool-big');
  const srv = await startIngestServer({ decide: () => ({}) });
  const log = memoryLogger();
  const client = new GrpcIngestClient({ address: `127.0.0.1:${srv.port}`, tls: false, logger: log });
  const sender = new SpoolingSender({ spool: { dir }, transport: client, batching: { maxFrames: 1, maxFrameBytes: 4096 }, logger: log });
  t.after(async () => {
    await sender.close();
    await srv.stop();
    cleanup();
  });
  const big = frame(2);
  big.vms = Array.from({ length: 200 }, (_, i) => ({ uuid: `vm-${i}`, name: `vm-${i}`, tenant: 't', vcpus: 1, cpuTimeNs: 1 }));
  for (const f of [frame(1), big, frame(3)]) sender.enqueue(f);
  sender.start();
  assert.equal(await sender.drain(10_000), true);
  assert.deepEqual(seqs(srv.frames), [1, 3]);
  assert.equal(sender.metrics().rejectedFrames, 1);
  assert.ok(log.entries.some((e) => e.level === 'error' && /frame seq 2 is \d+ bytes, more than the 4096 a batch may have/.test(e.msg)));
  assert.equal(readdirSync(join(dir, 'rejected')).length, 1);
});

test('spool full: the oldest frames are dropped only past maxBytes, counted and logged', () => {
  const { dir, cleanup } = tempDir('spool');
  try {
    const log = memoryLogger();
    const rec8 = (i: number) => Buffer.from(String(i).padStart(8, '0'));
    const rec = 8 + 16;
    const spool = FrameSpool.open({ dir, maxBytes: rec * 10, segmentBytes: rec * 3, logger: log });
    for (let i = 1; i <= 10; i++) spool.append(rec8(i));
    assert.equal(spool.metrics().droppedFrames, 0, 'exactly at the limit: nothing dropped');
    for (let i = 11; i <= 13; i++) spool.append(rec8(i));
    const m = spool.metrics();
    assert.equal(m.droppedFrames, 3);
    assert.equal(m.pendingFrames, 10);
    assert.deepEqual(spool.peek(100).map((r) => Number(Buffer.from(r.payload).toString())), range(4, 13));
    assert.ok(log.entries.some((e) => e.fields.code === 'SPOOL_FULL' && e.fields.droppedFull === 1));
    assert.ok(spool.diskBytes() <= rec * 13, `disk use bounded: ${spool.diskBytes()}`);
    assert.throws(() => spool.append(Buffer.alloc(rec * 10)), /frame of 240 bytes is larger than the spool limit maxBytes=240/);
    spool.close();
  } finally {
    cleanup();
  }
});

test('age limit: frames older than maxAgeMs are dropped and counted', () => {
  const { dir, cleanup } = tempDir('spool');
  try {
    let now = 1_000_000;
    const log = memoryLogger();
    const spool = FrameSpool.open({ dir, maxAgeMs: 60_000, logger: log, now: () => now });
    spool.append(Buffer.from('a'));
    now += 30_000;
    spool.append(Buffer.from('b'));
    now += 40_000;
    assert.deepEqual(spool.peek(10).map((r) => Buffer.from(r.payload).toString()), ['b']);
    assert.equal(spool.metrics().droppedFrames, 1);
    spool.close();
  } finally {
    cleanup();
  }
});

test('restart: acked frames are not replayed, pending ones are, and a torn tail is truncated with a log line', () => {
  const { dir, cleanup } = tempDir('spool');
  try {
    const a = FrameSpool.open({ dir, logger: memoryLogger() });
    for (let i = 1; i <= 5; i++) a.append(Buffer.from(`f${i}`));
    const recs = a.peek(2);
    a.ack(recs[1]!.index);
    a.close();
    const seg = readdirSync(dir).find((f) => f.endsWith('.seg'))!;
    const before = statSync(join(dir, seg)).size;
    appendFileSync(join(dir, seg), Buffer.from([7, 0, 0, 0, 1, 2])); // half a record header
    const log = memoryLogger();
    const b = FrameSpool.open({ dir, logger: log });
    assert.deepEqual(b.peek(10).map((r) => Buffer.from(r.payload).toString()), ['f3', 'f4', 'f5']);
    assert.equal(statSync(join(dir, seg)).size, before);
    assert.ok(log.entries.some((e) => e.fields.code === 'SPOOL_CORRUPT' && /truncating 6 bytes/.test(e.msg)));
    b.append(Buffer.from('f6'));
    assert.deepEqual(b.peek(10).map((r) => Buffer.from(r.payload).toString()), ['f3', 'f4', 'f5', 'f6']);
    b.close();
  } finally {
    cleanup();
  }
});

test('a corrupt record (bad checksum) is cut off with the rest of its segment, naming the file and offset', () => {
  const { dir, cleanup } = tempDir('spool');
  try {
    const a = FrameSpool.open({ dir, logger: memoryLogger() });
    for (let i = 1; i <= 3; i++) a.append(Buffer.from(`frame-${i}`));
    a.close();
    const seg = join(dir, readdirSync(dir).find((f) => f.endsWith('.seg'))!);
    const fd = openSync(seg, 'r+');
    writeSync(fd, Buffer.from('X'), 0, 1, 16 + 7 + 16 + 2); // flip a payload byte of record 2
    closeSync(fd);
    const log = memoryLogger();
    const b = FrameSpool.open({ dir, logger: log });
    assert.deepEqual(b.peek(10).map((r) => Buffer.from(r.payload).toString()), ['frame-1']);
    assert.ok(log.entries.some((e) => /checksum mismatch at byte 23/.test(e.msg) && String(e.msg).includes(seg)));
    b.close();
  } finally {
    cleanup();
  }
});

test('agent killed with SIGKILL mid-spool: a new sender on the same dir delivers every frame the dead one spooled, in order', async (t) => {
  const { dir, cleanup } = tempDir('spool-kill');
  const child = spawn(process.execPath, [fileURLToPath(new URL('./spool-writer.fixture.js', import.meta.url)), dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  await until(() => /spooled 40\n/.test(out), 20_000);
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const lastReported = Math.max(...[...out.matchAll(/spooled (\d+)/g)].map((m) => Number(m[1])));
  const srv = await startIngestServer();
  const log = memoryLogger();
  const sender = new SpoolingSender({ spool: { dir }, transport: new GrpcIngestClient({ address: `127.0.0.1:${srv.port}`, tls: false, logger: log }), logger: log });
  t.after(async () => {
    await sender.close();
    await srv.stop();
    cleanup();
  });
  sender.start();
  assert.equal(await sender.drain(15_000), true);
  const got = seqs(srv.frames);
  // everything the child reported as spooled (fsync'd) arrives; maybe a few more it wrote but had not reported
  assert.ok(got.length >= lastReported, `${got.length} ≥ ${lastReported}`);
  assert.deepEqual(got, range(1, got.length), 'in order, no gaps, no duplicates');
});


test('fsync policy: a record is due for fsync once it waited syncAfterMs unacked, never once acked; syncAfterMs 0 fsyncs every append', () => {
  const { dir, cleanup } = tempDir('spool-sync');
  try {
    let now = 1_000_000;
    const s = FrameSpool.open({ dir, logger: memoryLogger(), now: () => now });
    assert.equal(s.syncDueInMs(), undefined);
    const i1 = s.append(Buffer.from('a'));
    assert.equal(s.syncDueInMs(), 1000);
    now += 400;
    s.append(Buffer.from('b'));
    assert.equal(s.syncDueInMs(), 600, 'counted from the oldest record not yet durable');
    s.ack(i1);
    assert.equal(s.syncDueInMs(), 600, 'one record still pending: still due');
    s.ack(i1 + 1);
    assert.equal(s.syncDueInMs(), undefined, 'every record acked: nothing a power loss could cost');
    s.append(Buffer.from('c'));
    now += 1500;
    assert.equal(s.syncDueInMs(), 0);
    s.sync();
    assert.equal(s.syncDueInMs(), undefined);
    s.close();
    const every = FrameSpool.open({ dir, logger: memoryLogger(), now: () => now, syncAfterMs: 0 });
    every.append(Buffer.from('d'));
    assert.equal(every.syncDueInMs(), undefined, 'fsync\'d at once');
    assert.deepEqual(every.peek(10).map((r) => Buffer.from(r.payload).toString()), ['c', 'd']);
    every.close();
    assert.throws(() => FrameSpool.open({ dir, logger: memoryLogger(), syncAfterMs: -1 }), /syncAfterMs=-1 must be a number ≥ 0/);
  } finally {
    cleanup();
  }
});

test('payloads held in memory up to memoryBytes, the rest read back from disk: the same bytes either way; the ack file is rewritten in place and an older one is read', () => {
  const { dir, cleanup } = tempDir('spool-mem');
  try {
    writeFileSync(join(dir, 'acked'), '{"next":0}'); // the older format (replaced by rename, unpadded)
    const s = FrameSpool.open({ dir, logger: memoryLogger(), memoryBytes: 10 });
    const payloads = ['first', 'second', 'third!', 'x'].map((t) => Buffer.from(t));
    for (const p of payloads) s.append(p);
    const got = s.peek(10);
    assert.deepEqual(got.map((r) => Buffer.from(r.payload).toString()), ['first', 'second', 'third!', 'x']);
    assert.equal(got[0]!.payload, payloads[0], 'held: the very buffer appended');
    assert.notEqual(got[1]!.payload, payloads[1], 'past memoryBytes: read back from the segment');
    assert.equal(got[3]!.payload, payloads[3], 'fits again after the big ones');
    s.ack(got[1]!.index);
    assert.equal(statSync(join(dir, 'acked')).size, 64);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'acked'), 'utf8')), { next: got[1]!.index + 1 });
    s.close();
    const t = FrameSpool.open({ dir, logger: memoryLogger() });
    assert.deepEqual(t.peek(10).map((r) => Buffer.from(r.payload).toString()), ['third!', 'x']);
    t.close();
  } finally {
    cleanup();
  }
});

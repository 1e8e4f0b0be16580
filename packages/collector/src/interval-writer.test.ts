import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IntervalWrite, StoredInterval } from '@wattsplit/store';
import { OK, WattsplitError, failed, retryable, silentLogger, type BusMessage, type TelemetryFrame, type TransportResult } from '@wattsplit/wire';
import { BatchEntry } from './batch-entry.js';
import { GroupCommit } from './group-commit.js';
import { IntervalWriter, type IntervalStore } from './interval-writer.js';

const entry = (hostId: string, seq: number) => new BatchEntry({ interval: { hostId, seq } } as IntervalWrite, {} as TelemetryFrame, {} as BusMessage);
const name = (w: IntervalWrite) => `${w.interval.hostId}@${w.interval.seq}`;
const down = () => retryable(new WattsplitError('STORE_UNAVAILABLE', 'down'), 0);
const bad = () => failed(new WattsplitError('STORE_INVALID_INPUT', 'bad value'));

/** A store whose writes answer from a script (OK once it runs out), and which lands what it is told. */
function scriptedStore(answers: (TransportResult | Promise<TransportResult>)[] = []) {
  const writes: string[][] = [];
  const landed = new Set<string>();
  const store: IntervalStore = {
    writeIntervals: (ws) => {
      writes.push(ws.map(name));
      return Promise.resolve(answers.shift() ?? OK);
    },
    writeInterval: (w) => {
      writes.push([name(w)]);
      return Promise.resolve(answers.shift() ?? OK);
    },
    storedIntervals: (host, seqs) => Promise.resolve(seqs.filter((s) => landed.has(`${host}@${s}`)).map((seq): StoredInterval => ({ seq, bootId: 'b', attributed: true }))),
  };
  const groups = new GroupCommit<BatchEntry>((es) => store.writeIntervals(es.map((e) => e.write)));
  return { store, writes, landed, writer: new IntervalWriter({ store, groups, logger: silentLogger }) };
}

test('interval writer: a stored batch is not written again', async () => {
  const s = scriptedStore();
  const batch = [entry('a', 1), entry('a', 2)];
  assert.deepEqual(await s.writer.write(batch), { kind: 'stored' });
  assert.deepEqual(await s.writer.write(batch), { kind: 'stored' });
  assert.deepEqual(s.writes, [['a@1', 'a@2']]);
  assert.ok(batch.every((e) => e.stored));
});

test('interval writer: after a transient failure only what did not land is written again', async () => {
  const s = scriptedStore([down()]);
  const batch = [entry('a', 1), entry('a', 2), entry('b', 1)];
  const w = await s.writer.write(batch);
  assert.equal(w.kind, 'retryable');
  assert.ok(batch.every((e) => e.needsLandedCheck), 'the write may have landed');
  s.landed.add('a@1');
  s.landed.add('b@1');
  assert.deepEqual(await s.writer.write(batch), { kind: 'stored' });
  assert.deepEqual(s.writes, [['a@1', 'a@2', 'b@1'], ['a@2']]);
});

test('interval writer: a shared group write that failed transiently is retried as that group, verbatim', async () => {
  let release!: (r: TransportResult) => void;
  const s = scriptedStore([new Promise<TransportResult>((r) => (release = r)), down()]);
  const first = s.writer.write([entry('x', 1)]);
  const p0 = [entry('a', 1), entry('a', 2)];
  const p1 = [entry('b', 7)];
  const w0 = s.writer.write(p0);
  const w1 = s.writer.write(p1);
  release(OK);
  await first;
  assert.equal((await w0).kind, 'retryable');
  assert.equal((await w1).kind, 'retryable');
  assert.deepEqual(s.writes[1], ['a@1', 'a@2', 'b@7'], 'both partitions in one write');
  assert.equal(p0[0]!.failedGroup, p1[0]!.failedGroup);
  // Partition 0 is redelivered first: it writes the whole group again, so the deduplication token matches.
  assert.deepEqual(await s.writer.write(p0), { kind: 'stored' });
  assert.deepEqual(s.writes[2], ['a@1', 'a@2', 'b@7']);
  assert.ok(p1.every((e) => e.stored), "the other partition's entries were stored with the group");
  assert.deepEqual(await s.writer.write(p1), { kind: 'stored' });
  assert.equal(s.writes.length, 3, 'and are not written again');
});

test('interval writer: a shared write refused for good is tried with this batch alone first', async () => {
  let release!: (r: TransportResult) => void;
  const s = scriptedStore([new Promise<TransportResult>((r) => (release = r)), bad(), bad(), OK]);
  const first = s.writer.write([entry('x', 1)]);
  const p0 = [entry('a', 1)];
  const p1 = [entry('b', 1)];
  const w0 = s.writer.write(p0);
  const w1 = s.writer.write(p1);
  release(OK);
  await first;
  const [r0, r1] = await Promise.all([w0, w1]);
  assert.equal(r0.kind, 'refused', 'refused alone too: the culprit is in this batch');
  assert.deepEqual(r1, { kind: 'stored' });
  assert.deepEqual(s.writes.slice(1), [['a@1', 'b@1'], ['a@1'], ['b@1']]);
  assert.equal(p0[0]!.stored, false);
});

test('interval writer: one by one, each refused entry is handed over in order and the rest kept', async () => {
  const s = scriptedStore([OK, bad(), OK, bad()]);
  const entries = [entry('a', 1), entry('a', 2), entry('b', 1), entry('b', 2)];
  const refused: string[] = [];
  const r = await s.writer.writeOneByOne(entries, (e) => Promise.resolve(void refused.push(name(e.write))));
  assert.equal(r.kind, 'stored');
  assert.deepEqual(r.kind === 'stored' && r.kept.map((e) => name(e.write)), ['a@1', 'b@1']);
  assert.deepEqual(refused, ['a@2', 'b@2']);
  assert.ok(entries.every((e) => e.stored), 'every entry is settled: stored or handed over');
});

test('interval writer: one by one stops at a transient failure; the failed one may have landed', async () => {
  const s = scriptedStore([OK, down()]);
  const entries = [entry('a', 1), entry('a', 2), entry('b', 1)];
  const r = await s.writer.writeOneByOne(entries, () => Promise.reject(new Error('nothing is refused')));
  assert.equal(r.kind, 'retryable');
  if (r.kind !== 'retryable') return;
  assert.deepEqual(r.kept.map((e) => name(e.write)), ['a@1']);
  assert.deepEqual(r.unsettled.map((e) => name(e.write)), ['a@2', 'b@1']);
  assert.equal(entries[1]!.needsLandedCheck, true);
  assert.equal(entries[2]!.needsLandedCheck, false, 'never written');
  assert.equal(s.writes.length, 2);
});

test('interval writer: two partitions redelivered at once retry their failed group once, not twice', async () => {
  let release!: (r: TransportResult) => void;
  let releaseRetry!: (r: TransportResult) => void;
  const s = scriptedStore([new Promise<TransportResult>((r) => (release = r)), down(), new Promise<TransportResult>((r) => (releaseRetry = r))]);
  const first = s.writer.write([entry('x', 1)]);
  const p0 = [entry('a', 1), entry('a', 2)];
  const p1 = [entry('b', 7)];
  const w0 = s.writer.write(p0);
  const w1 = s.writer.write(p1);
  release(OK);
  await first;
  assert.equal((await w0).kind, 'retryable');
  assert.equal((await w1).kind, 'retryable');
  // Both partitions come back at the same moment; the first retry's answer is slow.
  const r0 = s.writer.write(p0);
  const r1 = s.writer.write(p1);
  await new Promise((r) => setTimeout(r, 20));
  releaseRetry(OK);
  assert.deepEqual(await r0, { kind: 'stored' });
  assert.deepEqual(await r1, { kind: 'stored' });
  assert.deepEqual(s.writes.slice(2), [['a@1', 'a@2', 'b@7']], 'the group is written again once (a server without deduplication would count a second write twice)');
});

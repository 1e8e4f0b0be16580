import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OK, WattsplitError, failed, type TransportResult } from '@wattsplit/wire';
import { GroupCommit } from './group-commit.js';

/** A write that waits until released, recording what each call wrote. */
function gatedWriter(result: () => TransportResult = () => OK) {
  const calls: string[][] = [];
  const gates: (() => void)[] = [];
  const write = (items: readonly string[]) => {
    calls.push([...items]);
    return new Promise<TransportResult>((resolve) => gates.push(() => resolve(result())));
  };
  const release = async () => {
    while (gates.length === 0) await new Promise((r) => setImmediate(r));
    gates.shift()!();
    await new Promise((r) => setImmediate(r));
  };
  return { calls, write, release };
}

test('group commit: the first caller writes at once; callers arriving meanwhile share the next write', async () => {
  const w = gatedWriter();
  const g = new GroupCommit(w.write);
  const a = g.submit(['a1', 'a2']);
  const b = g.submit(['b1']);
  const c = g.submit(['c1', 'c2']);
  assert.deepEqual(w.calls, [['a1', 'a2']]);
  await w.release();
  const oa = await a;
  assert.equal(oa.result.kind, 'ok');
  assert.equal(oa.callers, 1);
  assert.deepEqual(w.calls[1], ['b1', 'c1', 'c2']);
  await w.release();
  const [ob, oc] = await Promise.all([b, c]);
  assert.equal(ob.callers, 2);
  assert.strictEqual(ob.group, oc.group);
  assert.deepEqual(ob.group, ['b1', 'c1', 'c2']);
  assert.deepEqual(g.stats, { writes: 2, callers: 3, items: 5 });
});

test('group commit: maxItems bounds a write without splitting a caller', async () => {
  const w = gatedWriter();
  const g = new GroupCommit(w.write, { maxItems: 3 });
  const subs = [g.submit(['a']), g.submit(['b']), g.submit(['c1', 'c2']), g.submit(['d1', 'd2', 'd3', 'd4'])];
  assert.deepEqual(w.calls, [['a']]);
  await w.release();
  assert.deepEqual(w.calls[1], ['b', 'c1', 'c2']);
  await w.release();
  // A caller larger than maxItems still goes in whole, alone.
  assert.deepEqual(w.calls[2], ['d1', 'd2', 'd3', 'd4']);
  await w.release();
  const outs = await Promise.all(subs);
  assert.deepEqual(outs.map((o) => o.callers), [1, 2, 2, 1]);
});

test('group commit: maxInFlight writes run side by side, the rest wait for the first to finish', async () => {
  const w = gatedWriter();
  const g = new GroupCommit(w.write, { maxInFlight: 2 });
  const subs = [g.submit(['a']), g.submit(['b']), g.submit(['c']), g.submit(['d'])];
  assert.deepEqual(w.calls, [['a'], ['b']]);
  await w.release();
  assert.deepEqual(w.calls[2], ['c', 'd']);
  await w.release();
  await w.release();
  assert.deepEqual((await Promise.all(subs)).map((o) => o.callers), [1, 1, 2, 2]);
});

test('group commit: a failure reaches every caller of the write; a throwing writer becomes retryable', async () => {
  const refused = new WattsplitError('STORE_INVALID_INPUT', 'refused');
  const g = new GroupCommit<string>(async (items) => (items.includes('bad') ? failed(refused) : OK));
  const [x, y] = await Promise.all([g.submit(['ok']), g.submit(['bad'])]);
  assert.equal(x.result.kind, 'ok');
  assert.equal(y.result.kind, 'failed');
  const thrower = new GroupCommit<string>(() => Promise.reject(new Error('socket hang up')));
  const t = await thrower.submit(['z']);
  assert.equal(t.result.kind, 'retryable');
  assert.ok(t.result.kind === 'retryable' && t.result.error.code === 'STORE_UNAVAILABLE' && /socket hang up/.test(t.result.error.message));
});

test('group commit: minIntervalMs spaces the starts of writes; what arrives meanwhile shares the next write', async () => {
  const starts: number[] = [];
  const calls: string[][] = [];
  const g = new GroupCommit<string>(
    async (items) => {
      starts.push(performance.now());
      calls.push([...items]);
      return OK;
    },
    { minIntervalMs: 60 },
  );
  // The first write starts at once: nothing was written before.
  await g.submit(['a']);
  assert.deepEqual(calls, [['a']]);
  // The next ones arrive right after it: they wait for the interval and go out together.
  const outs = await Promise.all([g.submit(['b']), g.submit(['c1', 'c2']), g.submit(['d'])]);
  assert.deepEqual(calls, [['a'], ['b', 'c1', 'c2', 'd']]);
  assert.deepEqual(outs.map((o) => o.callers), [3, 3, 3]);
  assert.ok(starts[1]! - starts[0]! >= 59, `second write started ${(starts[1]! - starts[0]!).toFixed(1)} ms after the first (≥ 60 expected)`);
  // Once the interval has passed, a lone submission is written at once.
  await new Promise((r) => setTimeout(r, 70));
  const t = performance.now();
  await g.submit(['e']);
  assert.deepEqual(calls.at(-1), ['e']);
  assert.ok(starts.at(-1)! - t < 50, 'a submission after a quiet spell does not wait');
  assert.deepEqual(g.stats, { writes: 3, callers: 5, items: 6 });
});

test('group commit: with minIntervalMs, maxItems waiting start the write without waiting out the interval', async () => {
  const calls: string[][] = [];
  const g = new GroupCommit<string>(
    async (items) => {
      calls.push([...items]);
      return OK;
    },
    { minIntervalMs: 10_000, maxItems: 3 },
  );
  await g.submit(['a']);
  const t = performance.now();
  // Three items are waiting: the write goes now, not 10 s after the first.
  await Promise.all([g.submit(['b1', 'b2']), g.submit(['c'])]);
  assert.ok(performance.now() - t < 5_000);
  assert.deepEqual(calls, [['a'], ['b1', 'b2', 'c']]);
});

test('group commit: gather holds a due write while more submissions are on their way, until poke() or its cap', async () => {
  const calls: string[][] = [];
  let pending = false;
  const g = new GroupCommit<string>(
    async (items) => {
      calls.push([...items]);
      return OK;
    },
    { minIntervalMs: 40, gather: { pending: () => pending, maxMs: 10_000 } },
  );
  // The first write is never held (no write before it to be spaced from).
  pending = true;
  await g.submit(['a']);
  assert.deepEqual(calls, [['a']]);
  // Due after 40 ms, but another caller is still preparing its items: held past the spacing...
  const b = g.submit(['b']);
  await new Promise((r) => setTimeout(r, 120));
  assert.deepEqual(calls, [['a']], 'held while pending() says more is coming');
  // ...and that caller's items go into the same write once it submits and nothing else is pending.
  pending = false;
  const c = g.submit(['c']);
  const [ob, oc] = await Promise.all([b, c]);
  assert.deepEqual(calls, [['a'], ['b', 'c']]);
  assert.equal(ob.callers, 2);
  assert.strictEqual(ob.group, oc.group);
  // A caller that had nothing to submit after all: poke() lets the held write go.
  await new Promise((r) => setTimeout(r, 50));
  pending = true;
  const d = g.submit(['d']);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(calls.length, 2, 'held');
  pending = false;
  g.poke();
  await d;
  assert.deepEqual(calls.at(-1), ['d']);
});

test('group commit: a gather hold ends at its cap even if pending() never clears', async () => {
  const starts: number[] = [];
  const g = new GroupCommit<string>(
    async () => {
      starts.push(performance.now());
      return OK;
    },
    { minIntervalMs: 30, gather: { pending: () => true, maxMs: 80 } },
  );
  await g.submit(['a']);
  await g.submit(['b']);
  const gap = starts[1]! - starts[0]!;
  // spacing 30 + cap 80: never sooner than the spacing plus the cap, and not held for ever
  assert.ok(gap >= 105, `second write ${gap.toFixed(1)} ms after the first (≥ 110 expected)`);
  assert.ok(gap < 5_000, `second write ${gap.toFixed(1)} ms after the first: the cap did not end the hold`);
});

test('group commit: without spacing gather is never asked (writes start as they always did)', async () => {
  let asked = 0;
  const calls: string[][] = [];
  const g = new GroupCommit<string>(
    async (items) => {
      calls.push([...items]);
      return OK;
    },
    { gather: { pending: () => (asked++, true), maxMs: 10_000 } },
  );
  await g.submit(['a']);
  await g.submit(['b']);
  assert.deepEqual(calls, [['a'], ['b']]);
  assert.equal(asked, 0);
  assert.equal(g.nextStartAt(), undefined);
});

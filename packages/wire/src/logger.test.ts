import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RepeatGate, memoryLogger } from './logger.js';

test('memoryLogger, like pino, needs `this`: a method called unbound throws instead of passing in tests', () => {
  const log = memoryLogger();
  const child = log.child({ component: 'c' });
  child.warn({ a: 1 }, 'kept');
  assert.deepEqual(log.entries, [{ level: 'warn', msg: 'kept', fields: { component: 'c', a: 1 } }]);
  // eslint-disable-next-line @typescript-eslint/unbound-method -- the mistake this test pins down
  const unbound = child.error;
  assert.throws(() => unbound('lost'), TypeError);
});

test('RepeatGate: one line of a kind per window, the repeats counted, kinds apart, a quiet kind written again', () => {
  let t = 0;
  const g = new RepeatGate(1000, () => t, 2);
  assert.deepEqual(g.pass('a'), { write: true, repeated: 0 });
  t = 500;
  assert.deepEqual(g.pass('a'), { write: false, repeated: 1 });
  assert.deepEqual(g.pass('a'), { write: false, repeated: 2 });
  assert.deepEqual(g.pass('b'), { write: true, repeated: 0 }, 'another kind');
  t = 1000;
  assert.deepEqual(g.pass('a'), { write: true, repeated: 2 }, 'after the window: written, with the count held back');
  t = 5000;
  assert.deepEqual(g.pass('a'), { write: true, repeated: 0 }, 'quiet for a window: written, nothing held back');
  // at most two kinds remembered: a third makes the gate forget the least recently written ("a", at 5000)
  t = 5100;
  assert.deepEqual(g.pass('b'), { write: true, repeated: 0 });
  assert.deepEqual(g.pass('a'), { write: false, repeated: 1 }, 'within its window');
  assert.deepEqual(g.pass('c'), { write: true, repeated: 0 });
  assert.deepEqual(g.pass('a'), { write: true, repeated: 0 }, 'forgotten: written again within its window');
});

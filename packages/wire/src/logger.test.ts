import { test } from 'node:test';
import assert from 'node:assert/strict';
import { memoryLogger } from './logger.js';

test('memoryLogger, like pino, needs `this`: a method called unbound throws instead of passing in tests', () => {
  const log = memoryLogger();
  const child = log.child({ component: 'c' });
  child.warn({ a: 1 }, 'kept');
  assert.deepEqual(log.entries, [{ level: 'warn', msg: 'kept', fields: { component: 'c', a: 1 } }]);
  // eslint-disable-next-line @typescript-eslint/unbound-method -- the mistake this test pins down
  const unbound = child.error;
  assert.throws(() => unbound('lost'), TypeError);
});

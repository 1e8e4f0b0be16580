import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { currentThreadId, lowerThisThreadPriority, threadNice, type ThreadPriorityIo } from './thread-priority.js';

const io = (over: Partial<ThreadPriorityIo>): ThreadPriorityIo => ({ platform: 'linux', readlink: () => '4242/task/4250', setPriority: () => undefined, ...over });

test('lowerThisThreadPriority renices the task named by /proc/thread-self, and says why not where it cannot', () => {
  const calls: [number, number][] = [];
  assert.deepEqual(lowerThisThreadPriority(19, io({ setPriority: (tid, nice) => void calls.push([tid, nice]) })), { kind: 'lowered', tid: 4250, nice: 19 });
  assert.deepEqual(calls, [[4250, 19]]);
  assert.deepEqual(lowerThisThreadPriority(19, io({ platform: 'darwin' })), { kind: 'unchanged', why: 'per-thread priorities are Linux-only here (platform darwin)' });
  const noProc = lowerThisThreadPriority(19, io({ readlink: () => { throw new Error('ENOENT'); } }));
  assert.equal(noProc.kind, 'unchanged');
  assert.match(noProc.kind === 'unchanged' ? noProc.why : '', /no \/proc\/thread-self/);
  const refused = lowerThisThreadPriority(-5, io({ setPriority: () => { throw new Error('EACCES: permission denied'); } }));
  assert.deepEqual(refused, { kind: 'unchanged', tid: 4250, why: 'setpriority(4250, -5) refused: EACCES: permission denied' });
  assert.deepEqual(lowerThisThreadPriority(0, io({ setPriority: () => assert.fail('nice 0 must not call setpriority') })), { kind: 'unchanged', why: 'nice 0 configured' });
  assert.equal(lowerThisThreadPriority(25, io({})).kind, 'unchanged');
  assert.equal(currentThreadId({ readlink: () => 'self' }), undefined);
});

test('a worker thread that lowers its priority changes only its own nice value (/proc/<pid>/task/<tid>/stat)', { skip: process.platform !== 'linux' }, async () => {
  assert.equal(currentThreadId(), process.pid, 'the main thread\'s tid is the pid');
  const tasks = () => new Map(readdirSync(`/proc/${process.pid}/task`).map((t) => [Number(t), threadNice(process.pid, Number(t))]));
  const before = tasks();
  const src = `
    import { parentPort, workerData } from 'node:worker_threads';
    const { lowerThisThreadPriority } = await import(workerData.lib);
    parentPort.postMessage(lowerThisThreadPriority(19));
    parentPort.once('message', () => process.exit(0));
  `;
  const w = new Worker(src, { eval: true, workerData: { lib: new URL('./thread-priority.js', import.meta.url).href } });
  try {
    const r = await new Promise<ReturnType<typeof lowerThisThreadPriority>>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    assert.equal(r.kind, 'lowered', JSON.stringify(r));
    if (r.kind !== 'lowered') return;
    assert.ok(!before.has(r.tid), `the worker's tid ${r.tid} is a new task`);
    assert.equal(threadNice(process.pid, r.tid), 19, 'the worker thread');
    for (const [tid, nice] of tasks()) if (tid !== r.tid) assert.equal(nice, before.get(tid) ?? 0, `thread ${tid}`);
    assert.equal(threadNice(process.pid, process.pid), 0, 'the main thread');
  } finally {
    w.postMessage('exit');
    await new Promise((r) => w.once('exit', r));
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chdbDirHolder, describeHolder, type ChdbDirLockProbe } from './chdb-dir-lock.js';

function probe(files: Record<string, string>, inodes: Record<string, number>, selfPid = 4242): ChdbDirLockProbe {
  return {
    readText: (p) => {
      const t = files[p];
      if (t === undefined) throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
      return t;
    },
    inode: (p) => {
      const i = inodes[p];
      if (i === undefined) throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
      return i;
    },
    selfPid,
  };
}

const STATUS = 'PID: 1185\nStarted at: 2026-12-05 13:22:07\nRevision: 54513\n';
const LOCKS = '1: POSIX  ADVISORY  WRITE 77 fe:00:111 0 EOF\n2: FLOCK  ADVISORY  WRITE 1185 fe:00:9977858 0 EOF\n2: -> FLOCK  ADVISORY  WRITE 999 fe:00:9977858 0 EOF\n';

test('the holder is the process with the flock on <dir>/status, named with its command line and start time', () => {
  const h = chdbDirHolder('/d', probe({ '/proc/locks': LOCKS, '/d/status': STATUS, '/proc/1185/cmdline': 'node\0collector.js\0' }, { '/d/status': 9977858 }));
  assert.deepEqual(h, { pid: 1185, since: '2026-12-05 13:22:07', command: 'node collector.js' });
  assert.equal(describeHolder(h), 'another process (PID 1185: node collector.js, since 2026-12-05 13:22:07)');
});

test('no holder: no status file, a stale status file nobody locks, our own lock, or no /proc/locks', () => {
  assert.equal(chdbDirHolder('/d', probe({ '/proc/locks': LOCKS }, {})), undefined);
  assert.equal(chdbDirHolder('/d', probe({ '/proc/locks': LOCKS, '/d/status': STATUS }, { '/d/status': 5 })), undefined, 'stale file after a kill');
  assert.equal(chdbDirHolder('/d', probe({ '/proc/locks': LOCKS, '/d/status': STATUS }, { '/d/status': 9977858 }, 1185)), undefined, 'this process');
  assert.equal(chdbDirHolder('/d', probe({ '/d/status': STATUS }, { '/d/status': 9977858 })), undefined);
});

test('a holder in another pid namespace (pid 0 in /proc/locks) is named by the status file', () => {
  const h = chdbDirHolder('/d', probe({ '/proc/locks': '1: FLOCK  ADVISORY  WRITE 0 fe:00:7 0 EOF\n', '/d/status': STATUS }, { '/d/status': 7 }));
  assert.equal(h?.pid, 1185);
});

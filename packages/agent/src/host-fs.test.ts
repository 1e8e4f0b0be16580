import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RootedHostFs } from './host-fs.js';
import { tempDir } from './test-helpers.js';

test('keepOpen: files stay open and pread at 0 sees in-place updates; release closes a subtree', (t) => {
  const { dir, cleanup } = tempDir('hostfs');
  t.after(cleanup);
  writeFileSync(join(dir, 'a'), '1\n');
  writeFileSync(join(dir, 'b'), 'x\n');
  const fs = new RootedHostFs(dir, { keepOpen: true, maxOpenFiles: 1 });
  assert.equal(fs.readText('/a'), '1\n');
  writeFileSync(join(dir, 'a'), '22\n');
  assert.equal(fs.readText('/a'), '22\n');
  assert.equal(fs.openFiles(), 1);
  assert.equal(fs.readText('/b'), 'x\n');
  assert.equal(fs.openFiles(), 1, 'bounded by maxOpenFiles');
  fs.release('/');
  assert.equal(fs.openFiles(), 0);
  assert.throws(() => fs.readText('/missing'), (e: NodeJS.ErrnoException) => e.code === 'ENOENT' && e.message.includes(join(dir, 'missing')));
  fs.close();
});

test('keepOpen on the real /proc: pread at offset 0 regenerates the file', () => {
  const fs = new RootedHostFs('/', { keepOpen: true });
  const a = fs.readText('/proc/self/stat');
  for (let i = 0; i < 1e6; i++) Math.sqrt(i);
  const b = fs.readText('/proc/self/stat');
  assert.match(a, /^\d+ \(/);
  assert.match(b, /^\d+ \(/);
  assert.equal(fs.openFiles(), 1);
  assert.ok(fs.readText('/proc/stat').startsWith('cpu '));
  fs.close();
});

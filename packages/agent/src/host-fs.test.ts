import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CounterFile, RootedHostFs, flatString } from './host-fs.js';
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

test('keepOpen: a held file (keep / CounterFile) reopens after release or eviction, one fd per path, and reports a removed file', (t) => {
  const { dir, cleanup } = tempDir('hostfs-keep');
  t.after(cleanup);
  writeFileSync(join(dir, 'a'), '7\n');
  writeFileSync(join(dir, 'b'), '8\n');
  const fs = new RootedHostFs(dir, { keepOpen: true, maxOpenFiles: 1 });
  const a = new CounterFile(fs, '/a');
  const b = new CounterFile(fs, '/b');
  assert.equal(a.uint(), 7);
  assert.equal(fs.openFiles(), 1);
  writeFileSync(join(dir, 'a'), '77\n');
  assert.equal(a.uint(), 77, 'pread at 0 sees the new content');
  assert.equal(b.uint(), 8, 'a evicted by maxOpenFiles');
  assert.equal(fs.openFiles(), 1);
  assert.equal(a.uint(), 77, 'the evicted holder opens it again');
  assert.equal(a.text(), '77\n');
  // by path and held: the same fd
  assert.equal(fs.readUint('/a'), 77);
  assert.equal(fs.openFiles(), 1);
  fs.release('/a');
  assert.equal(fs.openFiles(), 0);
  rmSync(join(dir, 'a'));
  assert.throws(() => a.uint(), (e: NodeJS.ErrnoException) => e.code === 'ENOENT' && e.message.includes(join(dir, 'a')));
  writeFileSync(join(dir, 'a'), 'x1\n');
  assert.ok(Number.isNaN(a.uint()), 'not a number file');
  fs.close();
  assert.equal(fs.openFiles(), 0);
  // without keepOpen it reads by path
  const plain = new CounterFile(new RootedHostFs(dir), '/b');
  assert.equal(plain.uint(), 8);
  assert.equal(plain.text(), '8\n');
});

test('flatString: the same text for every string (cons chains, non-Latin-1, lone surrogates, JSON specials), and a held file keeps it', (t) => {
  const dir = '/sys/fs/cgroup/cpuacct/machine/qemu-12-vm\u00e9\u4e2d.libvirt-qemu';
  const cases = [`${dir}/vcpu${3}/${'cpuacct.usage'}`, '', 'a', '\ud800x\udfff', 'quote " back \\ nl \n tab \t nul \u0000', '\u{1f600}'.repeat(40)];
  for (const s of cases) assert.equal(flatString(s), s);
  const { dir: root, cleanup } = tempDir('hostfs-flat');
  t.after(cleanup);
  writeFileSync(join(root, 'n'), '7\n');
  const fs = new RootedHostFs(root, { keepOpen: true });
  const built = `/${'n'}`;
  const f = new CounterFile(fs, built);
  assert.equal(f.path, '/n');
  assert.equal(f.uint(), 7);
  fs.close();
});

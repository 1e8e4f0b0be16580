#!/usr/bin/env node
// Makes a fresh clone runnable with nothing but Node 20 and npm: installs the workspace with pnpm
// (fetched by npx at the version pinned in package.json) when node_modules is missing or stale, then
// builds incrementally with tsc -b. Quiet when there is nothing to do.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const pnpmSpec = pkg.packageManager; // "pnpm@x.y.z"
const env = { ...process.env };
// Native addons (@unraid/libvirt) build with node-gyp: use the machine's Node headers instead of downloading them.
if (!env.npm_config_nodedir && existsSync('/usr/include/node/node.h')) env.npm_config_nodedir = '/usr';
env.npm_config_update_notifier = 'false';

const marker = join(root, 'node_modules/.modules.yaml');
const lock = join(root, 'pnpm-lock.yaml');
const stale = !existsSync(marker) || (existsSync(lock) && statSync(lock).mtimeMs > statSync(marker).mtimeMs);
if (stale) {
  process.stderr.write(`wattsplit: installing dependencies with ${pnpmSpec} (first run only)...\n`);
  const args = ['--yes', pnpmSpec, 'install', '--reporter=append-only'];
  if (env.CI) args.push('--frozen-lockfile');
  execFileSync('npx', args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], env });
}
try {
  execFileSync(join(root, 'node_modules/.bin/tsc'), ['-b'], { cwd: root, stdio: 'inherit', env });
} catch {
  process.stderr.write('wattsplit: TypeScript build failed (see above)\n');
  process.exit(1);
}

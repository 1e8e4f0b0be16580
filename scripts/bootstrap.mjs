#!/usr/bin/env node
// Makes a fresh clone runnable with nothing but Node 20 and npm: installs the workspace with pnpm
// (fetched by npx at the version pinned in package.json) when node_modules is missing or stale, then
// builds incrementally with tsc -b. Quiet when there is nothing to do.
// Also builds the libvirt binding's native addon when libvirt's headers are there but the addon is not
// (the workspace was installed before libvirt-dev: pnpm skips a failed optional build silently).
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

// @unraid/libvirt (optional dependency of the agent) compiles build/Release/libvirt.node with node-gyp at
// install time, and only where libvirt's headers are. Headers there now, addon missing: build it.
const libvirtPkg = join(root, 'packages/agent/node_modules/@unraid/libvirt');
const libvirtAddon = join(libvirtPkg, 'build/Release/libvirt.node');
const haveLibvirtHeaders = () => {
  if (existsSync('/usr/include/libvirt/libvirt.h')) return true;
  try {
    execFileSync('pkg-config', ['--exists', 'libvirt'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
if (existsSync(join(libvirtPkg, 'package.json')) && !existsSync(libvirtAddon) && haveLibvirtHeaders()) {
  process.stderr.write('wattsplit: libvirt headers found but the libvirt binding is not built; building it (pnpm rebuild @unraid/libvirt)...\n');
  try {
    execFileSync('npx', ['--yes', pnpmSpec, '--filter', '@wattsplit/agent', 'rebuild', '@unraid/libvirt'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], env });
  } catch {
    // reported below
  }
  if (!existsSync(libvirtAddon)) {
    process.stderr.write(`wattsplit: the libvirt binding did not build (see above); the agent runs without libvirt until it does. Retry: npm_config_nodedir=/usr npx ${pnpmSpec} --filter @wattsplit/agent rebuild @unraid/libvirt\n`);
  }
}

try {
  execFileSync(join(root, 'node_modules/.bin/tsc'), ['-b'], { cwd: root, stdio: 'inherit', env });
} catch {
  process.stderr.write('wattsplit: TypeScript build failed (see above)\n');
  process.exit(1);
}

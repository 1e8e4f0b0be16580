// `wattsplit agent` on a machine where the workspace was installed before libvirt-dev: the
// @unraid/libvirt package is there but its native addon was never built. The real CLI runs with a
// module resolve hook that points @unraid/libvirt at such a package (entry point, no build/).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const main = join(here, 'main.js');
const fixture = join(here, '..', '..', 'agent', 'test-fixtures', 'single-socket-v2');

function unbuiltLibvirt(dir: string): string {
  const pkg = join(dir, 'unbuilt-libvirt');
  mkdirSync(join(pkg, 'dist'), { recursive: true });
  writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: '@unraid/libvirt', type: 'module', main: './dist/index.js' }));
  // like the real package: the addon is required only when a Hypervisor is made
  writeFileSync(join(pkg, 'dist', 'index.js'), "import { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);\nexport class Hypervisor { constructor(o) { this.n = new (require('../build/Release/libvirt').Hypervisor)(o); } }\n");
  const entry = pathToFileURL(join(pkg, 'dist', 'index.js')).href;
  writeFileSync(join(dir, 'hooks.mjs'), `export async function resolve(specifier, context, next) {\n  return specifier === '@unraid/libvirt' ? { url: ${JSON.stringify(entry)}, shortCircuit: true } : next(specifier, context);\n}\n`);
  writeFileSync(join(dir, 'register.mjs'), `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)});\n`);
  return join(dir, 'register.mjs');
}

test('libvirt addon not built: agent --check lists it with how to build it; an explicit --libvirt-uri stops with that line', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-nolibvirt-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const register = unbuiltLibvirt(dir);
  const agent = (args: string[]) => spawnSync(process.execPath, ['--import', register, main, 'agent', '--sysfs-root', fixture, '--no-nvml', '--no-perf', '--spool-dir', join(dir, 'spool'), ...args], { encoding: 'utf8', timeout: 60_000 });

  const check = agent(['--check']);
  assert.match(check.stdout, /^\[MISS\] libvirt: libvirt support is not built: the native addon of @unraid\/libvirt \(build\/Release\/libvirt.node\) is missing.*apt-get install libvirt-dev.*pnpm --filter @wattsplit\/agent rebuild @unraid\/libvirt; using the 0 VMs listed in the config instead$/m, check.stdout + check.stderr);
  assert.doesNotMatch(check.stdout + check.stderr, /MODULE_NOT_FOUND|Require stack|\n\s+at /);

  const run = agent(['--libvirt-uri', 'qemu:///system', '--gateway', '127.0.0.1:9', '--insecure', '--log-level', 'silent']);
  assert.equal(run.status, 1, run.stderr);
  assert.match(run.stderr, /^wattsplit: SENSOR_UNAVAILABLE: libvirt support is not built: .*apt-get install libvirt-dev/);
  assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
});

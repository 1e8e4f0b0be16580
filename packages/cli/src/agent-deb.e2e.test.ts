// The Debian package (scripts/package-deb.mjs): its metadata (version, Depends: nodejs, the conffile,
// maintainer scripts that parse), FHS layout and modes; then unpacked into a throwaway root
// (`dpkg-deb -x`, so no user or unit is created on the test machine) and the installed
// /usr/bin/wattsplit-agent run with only Node: `--check` on a fixture host and a short stream to a real
// gateway on loopback. Skips where dpkg-deb or esbuild is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway } from '@wattsplit/gateway';
import { InProcessBus } from '@wattsplit/wire';
import { REPO_ROOT, packagingUnavailable, runToEnd, runUntil, writeFixtureAgentConfig } from './agent-artefact.fixture.js';

const noDpkg = spawnSync('dpkg-deb', ['--version']).status === 0 ? undefined : 'dpkg-deb not installed (apt-get install dpkg)';
const skip = packagingUnavailable() ?? noDpkg;
const bareEnv = (): NodeJS.ProcessEnv => ({ PATH: `${join(process.execPath, '..')}:/usr/bin:/bin`, HOME: tmpdir() });

test('wattsplit-agent_<version>_amd64.deb: FHS layout, conffile, scripts; the installed agent checks a host and streams', { skip }, async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'wattsplit-deb-'));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  const built = JSON.parse(execFileSync(process.execPath, [join(REPO_ROOT, 'scripts/package-deb.mjs'), '--out', out, '--json'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim().split('\n').pop()!) as { deb: string; version: string };
  assert.match(built.deb, /\/wattsplit-agent_\d+\.\d+\.\d+\+g[0-9a-f]+(\.dirty)?_amd64\.deb$/);
  execFileSync('sha256sum', ['-c', `${built.deb}.sha256`], { cwd: out, stdio: 'pipe' });

  const field = (f: string) => execFileSync('dpkg-deb', ['-f', built.deb, f], { encoding: 'utf8' }).trim();
  assert.equal(field('Package'), 'wattsplit-agent');
  assert.equal(field('Version'), built.version);
  assert.equal(field('Architecture'), 'amd64');
  assert.match(field('Depends'), /\bnodejs \(>= 20\)/);
  const control = mkdtempSync(join(out, 'control-'));
  execFileSync('dpkg-deb', ['-e', built.deb, control]);
  assert.equal(readFileSync(join(control, 'conffiles'), 'utf8'), '/etc/wattsplit/agent.json\n');
  for (const s of ['postinst', 'prerm', 'postrm']) {
    assert.equal(statSync(join(control, s)).mode & 0o777, 0o755, `${s} executable`);
    execFileSync('sh', ['-n', join(control, s)]);
  }
  assert.match(readFileSync(join(control, 'postinst'), 'utf8'), /adduser --system .*wattsplit/);
  assert.match(readFileSync(join(control, 'postrm'), 'utf8'), /purge[\s\S]*rm -rf \/var\/lib\/wattsplit/);

  // installed tree
  const rootfs = mkdtempSync(join(out, 'root-'));
  execFileSync('dpkg-deb', ['-x', built.deb, rootfs]);
  assert.equal(readlinkSync(join(rootfs, 'usr/bin/wattsplit-agent')), '../lib/wattsplit-agent/bin/wattsplit-agent');
  const unit = readFileSync(join(rootfs, 'lib/systemd/system/wattsplit-agent.service'), 'utf8');
  assert.match(unit, /^ExecStart=\/usr\/bin\/wattsplit-agent --config \/etc\/wattsplit\/agent\.json$/m);
  assert.match(unit, /^User=wattsplit$/m);
  assert.doesNotMatch(unit, /^(AmbientCapabilities|CapabilityBoundingSet)=.*CAP_DAC_READ_SEARCH/m, 'RAPL access by the udev rule, not a read-everything capability');
  assert.match(readFileSync(join(rootfs, 'lib/udev/rules.d/90-wattsplit-rapl.rules'), 'utf8'), /SUBSYSTEM=="powercap".*chgrp wattsplit .*energy_uj.*chmod 0440/);
  JSON.parse(readFileSync(join(rootfs, 'etc/wattsplit/agent.json'), 'utf8'));
  execFileSync('sha256sum', ['--quiet', '-c', 'SHA256SUMS'], { cwd: join(rootfs, 'usr/lib/wattsplit-agent'), stdio: 'pipe' });

  // the installed agent, with only Node
  const bin = join(rootfs, 'usr/bin/wattsplit-agent');
  const dir = mkdtempSync(join(out, 'run-'));
  const check = await runToEnd(bin, ['--config', writeFixtureAgentConfig(dir, '127.0.0.1:1', 'hv-deb'), '--check'], { env: bareEnv() });
  assert.equal(check.code, 0, `${check.stdout}\n${check.stderr}`);
  assert.match(check.stdout, /^\[ok {2}\] rapl: 6 zones/m);
  assert.match(check.stdout, /^VMs seen: 1$/m);

  const bus = new InProcessBus({ partitions: 1 });
  const gw = await startGateway({ producer: bus.producer() });
  t.after(() => gw.close(0));
  const r = await runUntil(bin, ['--config', writeFixtureAgentConfig(dir, gw.address, 'hv-deb'), '--log-level', 'warn'], () => gw.stats().framesAccepted >= 3, { env: bareEnv() });
  assert.equal(r.code, 0, `clean exit on SIGTERM:\n${r.stderr}`);
});

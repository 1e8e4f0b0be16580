// The agent artefact (`npm run package:agent`): built by the repository's script, copied where no
// workspace node_modules can be reached, run with nothing but the system's Node: its size budget, its
// checksums, `--version`, `--check` on a fixture host (and how it degrades without libvirt, NVML and
// perf), and a short stream to a real gateway on loopback (without loading node:zlib or node:worker_threads), plaintext and TLS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startGateway } from '@wattsplit/gateway';
import { makeTestPki } from '@wattsplit/gateway/test-pki';
import { InProcessBus } from '@wattsplit/wire';
import { buildAgentArtefact, packagingUnavailable, runToEnd, runUntil, writeFixtureAgentConfig } from './agent-artefact.fixture.js';

const BUDGET_BYTES = 25 * 1024 * 1024;
const skip = packagingUnavailable();

/** PATH with only the directory of the Node running the tests: the artefact gets nothing else. */
const bareEnv = (): NodeJS.ProcessEnv => ({ PATH: `${join(process.execPath, '..')}:/usr/bin:/bin`, HOME: tmpdir() });

test('npm run package:agent: a self-contained, versioned, checksummed agent within budget', { skip }, async (t) => {
  const m = buildAgentArtefact();
  const work = mkdtempSync(join(tmpdir(), 'wattsplit-agent-installed-'));
  t.after(() => {
    rmSync(m.outDir, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });
  assert.match(m.version, /^\d+\.\d+\.\d+\+g[0-9a-f]{4,}(\.dirty)?$/);
  assert.ok(m.unpackedBytes <= BUDGET_BYTES, `unpacked ${m.unpackedBytes} bytes, budget ${BUDGET_BYTES}`);
  assert.ok(m.natives.koffi, 'koffi (NVML, perf FFI) ships beside the bundle');

  // the tarball and its checksum file, as an operator verifies them
  assert.ok(m.tarball && m.sha256);
  execFileSync('sha256sum', ['-c', `${m.tarball}.sha256`], { cwd: m.outDir, stdio: 'pipe' });
  execFileSync('tar', ['-xzf', m.tarball, '-C', work]);
  const tree = join(work, m.tree.split('/').pop()!);
  execFileSync('sha256sum', ['--quiet', '-c', 'SHA256SUMS'], { cwd: tree, stdio: 'pipe' });
  // nothing chDB / tfjs / NestJS sized came along (the node_modules beside the bundle: natives only)
  const listed = readFileSync(join(tree, 'SHA256SUMS'), 'utf8');
  assert.doesNotMatch(listed, /chdb|tensorflow|@nestjs|kafkajs|darwin|win32/);

  // moved away from the repository: lib/node_modules is all it can resolve
  const bin = join(tree, 'bin/wattsplit-agent');
  const v = await runToEnd(bin, ['--version'], { env: bareEnv() });
  assert.equal(v.code, 0, v.stderr);
  assert.match(v.stdout, new RegExp(`wattsplit-agent ${m.version.replace(/[+.]/g, '\\$&')} `));

  const dir = mkdtempSync(join(work, 'run-'));
  const cfg = writeFixtureAgentConfig(dir, '127.0.0.1:1', 'hv-pkg');
  const check = await runToEnd(bin, ['--config', cfg, '--check'], { env: bareEnv() });
  t.diagnostic(`--check: first output after ${check.firstOutputMs?.toFixed(0)} ms wall (measured, not asserted; see docs/benchmarks.md)`);
  assert.equal(check.code, 0, `${check.stdout}\n${check.stderr}`);
  assert.match(check.stdout, /^host hv-pkg .*cgroup v1$/m);
  assert.match(check.stdout, /^\[ok {2}\] rapl: 6 zones/m);
  assert.match(check.stdout, /^VMs seen: 1$/m);
  assert.match(check.stdout, /^ {2}- batch-a .* tenant=acme/m);
  assert.match(check.stdout, /^\[MISS\] libvirt: libvirt disabled/m);
  assert.match(check.stdout, /^\[MISS\] (nvml|perf): /m);
  // the fixture config leaves the counter schedule to the defaults (docs/agent.md): per-vCPU time on the 5 s schedule
  assert.match(check.stdout, /^counters: each VM's CPU time and block I\/O every 200 ms; memory and per-vCPU CPU time every 5000 ms per VM, staggered \(slowCountersEveryMs 5000, slowVcpuCounters true, slowBlockIo false\)$/m);
  // libvirt asked for where the binding or the daemon is not usable: said, not crashed
  const lv = await runToEnd(bin, ['--config', cfg, '--check', '--libvirt-uri', 'qemu+unix:///system?socket=/nonexistent', '--json'], { env: bareEnv() });
  const report = JSON.parse(lv.stdout) as { sensors: { name: string; state: string; detail: string }[] };
  const lvs = report.sensors.find((s) => s.name === 'libvirt' || s.name === 'domains');
  assert.ok(lvs, lv.stdout);

  // a short stream to a real gateway on loopback
  const bus = new InProcessBus({ partitions: 1 });
  const gw = await startGateway({ producer: bus.producer(), auth: { mode: 'none' } });
  t.after(() => gw.close(0));
  const cfg2 = writeFixtureAgentConfig(dir, gw.address, 'hv-pkg');
  // with a preload that writes, at exit, which of node:zlib and node:worker_threads the bundle loaded (docs/benchmarks.md
  // "RSS at 500 VMs": +0.48 and +0.59 MB RSS; the CRC-32 is in JS and pino's transports are stubbed out of the bundle)
  const preload = join(dir, 'module-list.mjs');
  const loaded = join(dir, 'module-list.json');
  writeFileSync(preload, `import { writeFileSync } from 'node:fs';
process.on('exit', () => writeFileSync(${JSON.stringify(loaded)}, JSON.stringify(process.moduleLoadList.filter((m) => /^NativeModule (zlib|worker_threads)$/.test(m)))));
`);
  const env = { ...bareEnv(), NODE_OPTIONS: `--import=${pathToFileURL(preload).href}` };
  const r = await runUntil(bin, ['--config', cfg2, '--log-level', 'warn'], () => gw.stats().framesAccepted >= 5, { env });
  assert.equal(r.code, 0, `clean exit on SIGTERM:\n${r.stderr}`);
  assert.ok(gw.stats().framesAccepted >= 5);
  assert.doesNotMatch(r.stderr, /TypeError|Dynamic require|Cannot find (module|package)/);
  assert.deepEqual(JSON.parse(readFileSync(loaded, 'utf8')), [], 'after 5 rounds the bundle has loaded neither node:zlib nor node:worker_threads');

  // and over TLS: the bundle requires node:tls instead of importing it as an ES module (scripts/package-agent.mjs,
  // builtinsViaRequire), so this is the path that must still connect, verify the gateway against the CA and stream
  const pki = makeTestPki(join(dir, 'pki'));
  const tlsGw = await startGateway({ producer: bus.producer(), auth: { mode: 'none' }, tls: { certFile: pki.serverCert, keyFile: pki.serverKey } });
  t.after(() => tlsGw.close(0));
  const tlsDir = mkdtempSync(join(work, 'run-tls-'));
  const cfg3 = writeFixtureAgentConfig(tlsDir, tlsGw.address, 'hv-pkg-tls');
  const j = JSON.parse(readFileSync(cfg3, 'utf8')) as { gateway: Record<string, unknown> };
  j.gateway.tls = { caFile: pki.ca };
  writeFileSync(cfg3, JSON.stringify(j));
  const rt = await runUntil(bin, ['--config', cfg3, '--log-level', 'warn'], () => tlsGw.stats().framesAccepted >= 3, { env: bareEnv() });
  assert.equal(rt.code, 0, `clean exit on SIGTERM:\n${rt.stderr}`);
  assert.ok(tlsGw.stats().framesAccepted >= 3, `frames over TLS: ${tlsGw.stats().framesAccepted}`);
  assert.doesNotMatch(rt.stderr, /TypeError|Dynamic require|Cannot find (module|package)|self.signed|unable to verify|handshake|ERR_TLS/i);
});


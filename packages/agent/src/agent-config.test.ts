import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type AddressInfo } from 'node:net';
import { AckStatus } from '@wattsplit/wire';
import { SHIPPED_SCHEDULE, loadAgentConfig } from './agent-config.js';
import { checkAgent, counterSchedule, startAgent } from './agent-runtime.js';
import { FIXTURES, startIngestServer, tempDir } from './test-helpers.js';
import { memoryLogger } from '@wattsplit/wire';

test('config file + flags: flags win, defaults fill the rest', (t) => {
  const { dir, cleanup } = tempDir('cfg');
  t.after(cleanup);
  const file = join(dir, 'agent.json');
  writeFileSync(file, JSON.stringify({ hostId: 'hv-01', gateway: { address: 'gw:7443', tls: { caFile: '/etc/ca.pem' }, tokenFile: '/etc/tok' }, spool: { dir: '/var/spool/x', maxBytes: 1e6 }, nvml: { enabled: false }, libvirt: false, vms: [{ uuid: 'u', name: 'n', id: 3, taps: ['vnet0'] }] }));
  const c = loadAgentConfig(file, { gateway: 'gw2:9000', intervalMs: 500, tlsCertFile: '/c.pem', tlsKeyFile: '/k.pem' });
  assert.equal(c.hostId, 'hv-01');
  assert.equal(c.gateway.address, 'gw2:9000');
  assert.deepEqual(c.gateway.tls, { caFile: '/etc/ca.pem', certFile: '/c.pem', keyFile: '/k.pem' });
  assert.equal(c.intervalMs, 500);
  assert.equal(c.spool.maxBytes, 1e6);
  assert.equal(c.spool.maxAgeMs, 7 * 24 * 3600 * 1000);
  assert.equal(c.nvml.enabled, false);
  assert.equal(c.libvirt, false);
  assert.equal(c.vms[0]?.id, 3);
  assert.deepEqual(loadAgentConfig(undefined, { insecure: true, hostId: 'x' }).gateway.tls, false);
});

test('bad config names the file, field and value', (t) => {
  const { dir, cleanup } = tempDir('cfg');
  t.after(cleanup);
  const file = join(dir, 'a.json');
  const bad = (o: unknown, re: RegExp) => {
    writeFileSync(file, JSON.stringify(o));
    assert.throws(() => loadAgentConfig(file), re);
  };
  bad({ intervalMs: 'fast' }, /a\.json: intervalMs="fast" must be a number ≥ 10/);
  bad({ spool: { maxBytes: 10 } }, /a\.json: spool\.maxBytes=10 must be a number ≥ 4096/);
  bad({ gatway: {} }, /a\.json: gatway=\{\} is not a known setting/);
  bad({ hostId: 'has space' }, /hostId="has space" must be 1-128 chars/);
  bad({ gateway: { address: 'nohostport' } }, /gateway\.address="nohostport" must be host:port/);
  bad({ vms: [{ name: 'x', id: 1 }] }, /vms\[0\]\.uuid=undefined is required/);
  bad({ redfish: { caFile: '/x' } }, /redfish\.url=undefined is required when redfish is configured/);
  writeFileSync(file, '{ not json');
  assert.throws(() => loadAgentConfig(file), /agent config .*a\.json: not valid JSON/);
  assert.throws(() => loadAgentConfig(join(dir, 'missing.json')), /agent config .*missing\.json unreadable/);
  assert.throws(() => loadAgentConfig(undefined, { redfishCaFile: '/x' }), /flags: --redfishCaFile="\/x" needs --redfishUrl/);
  assert.throws(() => loadAgentConfig(undefined, { intervalMs: -1 }), /flags: --intervalMs=-1 must be a number/);
});

test('checkAgent on a fixture host: which sensors and VMs it sees, and why any is missing', async (t) => {
  const { dir, cleanup } = tempDir('check');
  t.after(cleanup);
  const cfg = loadAgentConfig(undefined, {
    hostId: 'hv-fx',
    sysfsRoot: join(FIXTURES, 'single-socket-v2'),
    noLibvirt: true,
    nvml: false,
    spoolDir: dir,
    tokenFile: join(dir, 'no-token'),
  });
  cfg.vms = [{ uuid: 'u-web', name: 'web-1', id: 1, state: 'running', vcpus: 2, memoryBytes: 0, tenant: 'acme', flavor: '', taps: ['vnet0'], gpuPciAddresses: [] }, { uuid: 'u-x', name: 'ghost', id: 9, state: 'running', vcpus: 1, memoryBytes: 0, tenant: '', flavor: '', taps: [], gpuPciAddresses: [] }];
  const r = await checkAgent(cfg);
  const text = r.lines.join('\n');
  assert.match(text, /\[ok  \] rapl: 5 zones: intel-rapl:0 package-0/);
  assert.match(text, /\[MISS\] nvml: NVML disabled in the config/);
  assert.match(text, /\[MISS\] bmc: no BMC configured/);
  assert.match(text, /\[WARN\] vms: cgroup v2; 1 VMs reported; VM ghost \(u-x, id 9, running\) has no qemu cgroup/);
  assert.match(text, /web-1 u-web running tenant=acme cpu=5\.0s/);
  assert.match(text, /\[MISS\] gateway 127\.0\.0\.1:7443: .*token gateway\.tokenFile .*no-token unreadable/);
  assert.match(text, /^counters: each VM's CPU time and block I\/O every 1000 ms; memory and per-vCPU CPU time every 5000 ms per VM/m);
  assert.equal(r.ok, false);
  assert.equal(r.vms.length, 1);
  assert.equal(r.cgroupVersion, 2);
  assert.ok(JSON.stringify(r).length > 0, 'JSON-serialisable');
});

test('checkAgent reports a Redfish credentials file it cannot read as a missing BMC; the running agent refuses it', async (t) => {
  const { dir, cleanup } = tempDir('check-bmc');
  t.after(cleanup);
  const cfg = loadAgentConfig(undefined, { hostId: 'hv-bmc', sysfsRoot: join(FIXTURES, 'single-socket-v2'), noLibvirt: true, nvml: false, spoolDir: dir, insecure: true });
  cfg.redfish = { url: 'https://127.0.0.1:1', credentialsFile: join(dir, 'no-bmc.json'), insecureSkipVerify: false };
  const r = await checkAgent(cfg);
  const text = r.lines.join('\n');
  assert.match(text, /\[MISS\] bmc: Redfish https:\/\/127\.0\.0\.1:1: Redfish credentials file .*no-bmc\.json unreadable/);
  assert.match(text, /\[ok  \] rapl: /, 'the other sensors are still checked');
  assert.equal(r.ok, false);
  await assert.rejects(startAgent(cfg, memoryLogger()), (e: Error & { code?: string }) => e.code === 'CONFIG_INVALID' && /no-bmc\.json unreadable/.test(e.message));
});

test('checkAgent says whether the gateway answers now (a TCP connect, nothing sent), without failing the check on it', async (t) => {
  const { dir, cleanup } = tempDir('check-gw');
  t.after(cleanup);
  const server = createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const open = (server.address() as AddressInfo).port;
  const closed = await new Promise<number>((r) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => r(p));
    });
  });
  const cfgFor = (port: number) => loadAgentConfig(undefined, { hostId: 'hv-gw', sysfsRoot: join(FIXTURES, 'single-socket-v2'), noLibvirt: true, nvml: false, spoolDir: dir, insecure: true, gateway: `127.0.0.1:${port}` });
  const up = await checkAgent(cfgFor(open));
  assert.match(up.lines.join('\n'), new RegExp(`^\\[ok  \\] gateway 127\\.0\\.0\\.1:${open} reachable: TCP connect in \\d+ ms \\(nothing sent`, 'm'));
  assert.equal(up.gateway.reachable, true);
  const down = await checkAgent(cfgFor(closed));
  assert.match(down.lines.join('\n'), new RegExp(`^\\[WARN\\] gateway 127\\.0\\.0\\.1:${closed} not reachable now: connect ECONNREFUSED \\(the agent spools`, 'm'));
  assert.equal(down.gateway.reachable, false);
  // reported, not required: the rest of the check decides ok (rapl is there, the config is plaintext without a token)
  assert.equal(down.ok, up.ok);
  assert.equal(up.ok, true);
});

test('the counter schedule defaults are the ones docs/agent.md states, and --check says which schedule runs', () => {
  // the Configuration table: "| `key`: what it does | flag | default |"
  const doc = readFileSync(join(FIXTURES, '..', '..', '..', 'docs', 'agent.md'), 'utf8');
  const documented = (key: string): string => {
    const row = doc.split('\n').find((l) => l.startsWith(`| \`${key}\``));
    assert.ok(row, `docs/agent.md has a Configuration row for ${key}`);
    const cells = row.split('|').map((c) => c.trim());
    return cells[cells.length - 2]!;
  };
  const c = loadAgentConfig(undefined, { hostId: 'hv-doc' });
  assert.equal(String(c.slowCountersEveryMs), documented('slowCountersEveryMs'));
  assert.equal(String(c.slowVcpuCounters), documented('slowVcpuCounters'));
  assert.equal(String(c.slowBlockIo), documented('slowBlockIo'));
  assert.equal(c.slowBlockIo, false, 'block I/O every interval by default');
  assert.equal(String(c.intervalMs), documented('intervalMs'));
  assert.equal(c.slowVcpuCounters, true, 'per-vCPU counters on the slow schedule by default');
  // what the demo, the accuracy protocol and the pipeline benchmarks give their Agents: this config's defaults
  assert.deepEqual({ ...SHIPPED_SCHEDULE }, { slowCountersEveryMs: c.slowCountersEveryMs, slowVcpuCounters: c.slowVcpuCounters, slowBlockIo: c.slowBlockIo });
  assert.ok(Object.isFrozen(SHIPPED_SCHEDULE));
  assert.equal(counterSchedule(c), "counters: each VM's CPU time and block I/O every 1000 ms; memory and per-vCPU CPU time every 5000 ms per VM, staggered (slowCountersEveryMs 5000, slowVcpuCounters true, slowBlockIo false)");
  assert.match(counterSchedule({ ...c, slowVcpuCounters: false }), /^counters: each VM's CPU time, whole and per vCPU and block I\/O every 1000 ms; memory every 5000 ms/);
  assert.match(counterSchedule({ ...c, slowBlockIo: true }), /^counters: each VM's CPU time every 1000 ms; memory, block I\/O and per-vCPU CPU time every 5000 ms/);
  // rounded to whole intervals, as the Agent applies it; at or below the interval: every counter every round
  assert.match(counterSchedule({ ...c, intervalMs: 2000 }), / every 6000 ms per VM/);
  assert.match(counterSchedule({ ...c, slowCountersEveryMs: 500 }), /^counters: every 1000 ms, all of them/);
});

test('startAgent: samples, spools and delivers to a gateway; stop() leaves nothing pending', async (t) => {
  const { dir, cleanup } = tempDir('run');
  const srv = await startIngestServer({ decide: (_b, md) => (md.get('authorization')[0] === 'Bearer s3cret' ? {} : { status: AckStatus.ACK_STATUS_REJECTED, message: 'auth' }) });
  t.after(async () => {
    await srv.stop();
    cleanup();
  });
  writeFileSync(join(dir, 'token'), 's3cret\n');
  const cfg = loadAgentConfig(undefined, { hostId: 'hv-run', sysfsRoot: join(FIXTURES, 'single-socket-v2'), noLibvirt: true, nvml: false, perf: false, spoolDir: join(dir, 'spool'), gateway: `127.0.0.1:${srv.port}`, insecure: true, tokenFile: join(dir, 'token'), intervalMs: 20 });
  const run = await startAgent(cfg, memoryLogger());
  const until = Date.now() + 10_000;
  while (srv.frames.length < 5 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  await run.sender.drain(5000);
  await run.stop();
  assert.ok(srv.frames.length >= 5);
  const seq0 = Number(srv.frames[0]?.seq);
  assert.ok(seq0 >= Date.now() - 60_000, `a first start numbers frames from the wall clock in ms: ${seq0}`);
  assert.deepEqual(srv.frames.map((f) => Number(f.seq)), srv.frames.map((_, i) => seq0 + i), "consecutive");
  assert.equal(srv.frames[0]?.hostId, 'hv-run');
  assert.equal(run.sender.metrics().pendingFrames, 0);
});

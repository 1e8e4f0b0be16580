import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { EnergyUnit, isWattsplitError, memoryLogger } from '@wattsplit/wire';
import { BmcSampler } from './bmc-sampler.js';
import { IpmiDcmiBmcSource, parseDcmiPowerReading } from './ipmi-dcmi-bmc-source.js';
import { RedfishBmcSource, loadRedfishCredentials } from './redfish-bmc-source.js';
import type { FrameUnderConstruction, RoundContext } from './sampler.js';
import { selfSignedCert, tempDir } from './test-helpers.js';

/** Real-shaped Redfish responses (trimmed from a Dell iDRAC 9 / OpenBMC). */
function redfishRoutes(mode: 'legacy' | 'env'): Record<string, unknown> {
  const r: Record<string, unknown> = {
    '/redfish/v1/Chassis': { '@odata.id': '/redfish/v1/Chassis', Members: [{ '@odata.id': '/redfish/v1/Chassis/System.Embedded.1' }], 'Members@odata.count': 1 },
    '/redfish/v1/Chassis/System.Embedded.1/Power': {
      '@odata.id': '/redfish/v1/Chassis/System.Embedded.1/Power',
      PowerControl: [{ '@odata.id': '/redfish/v1/Chassis/System.Embedded.1/Power#/PowerControl/0', MemberId: '0', Name: 'System Power Control', PowerConsumedWatts: 412, PowerCapacityWatts: 1600, PowerMetrics: { AverageConsumedWatts: 405, IntervalInMin: 1 } }],
    },
  };
  if (mode === 'env') {
    r['/redfish/v1/Chassis/System.Embedded.1/PowerSubsystem'] = { '@odata.id': '/redfish/v1/Chassis/System.Embedded.1/PowerSubsystem', CapacityWatts: 1600, PowerSupplies: { '@odata.id': '/redfish/v1/Chassis/System.Embedded.1/PowerSubsystem/PowerSupplies' } };
    r['/redfish/v1/Chassis/System.Embedded.1/EnvironmentMetrics'] = {
      '@odata.id': '/redfish/v1/Chassis/System.Embedded.1/EnvironmentMetrics',
      PowerWatts: { DataSourceUri: '/redfish/v1/Chassis/System.Embedded.1/Sensors/TotalPower', Reading: 398.5 },
      EnergykWh: { DataSourceUri: '/redfish/v1/Chassis/System.Embedded.1/Sensors/TotalEnergy', Reading: 1234.5 },
    };
  }
  return r;
}

async function startRedfish(t: { after: (f: () => unknown) => void }, mode: 'legacy' | 'env', dir: string) {
  const cert = selfSignedCert(dir, 'bmc');
  if (!cert) return undefined;
  const routes = redfishRoutes(mode);
  const auths: string[] = [];
  const srv = https.createServer({ cert: cert.cert, key: cert.key }, (req, res) => {
    auths.push(req.headers.authorization ?? '');
    if (req.headers.authorization !== `Basic ${Buffer.from('root:calvin').toString('base64')}`) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":{"code":"Base.1.8.NoValidSession"}}');
      return;
    }
    const body = routes[req.url ?? ''];
    if (body === undefined) res.writeHead(404).end();
    else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => srv.close(() => r())));
  return { url: `https://127.0.0.1:${(srv.address() as AddressInfo).port}`, caFile: cert.certFile, auths, routes };
}

function roundCtx(mono: { v: number }): { frame: FrameUnderConstruction; ctx: RoundContext } {
  return {
    frame: { monoNs: mono.v, counters: [], vms: [], gpus: [], hostCpu: undefined },
    ctx: { domains: [], domainsAvailable: true, vmsByUuid: new Map(), cgroupPathByUuid: new Map(), processOwners: undefined, monoNs: () => mono.v },
  };
}

test('Redfish (legacy Power) over HTTPS with a self-signed CA: power only, integrated by the agent into joules', async (t) => {
  const { dir, cleanup } = tempDir('redfish');
  t.after(cleanup);
  const srv = await startRedfish(t, 'legacy', dir);
  if (!srv) return t.skip('openssl CLI not available for a test certificate');
  const credFile = join(dir, 'cred.json');
  writeFileSync(credFile, JSON.stringify({ username: 'root', password: 'calvin' }));
  const log = memoryLogger();
  const src = new RedfishBmcSource({ baseUrl: srv.url, credentialsFile: credFile, caFile: srv.caFile, logger: log });
  t.after(() => src.close());
  assert.deepEqual(await src.read(), { energyJoules: undefined, powerWatts: 412 });
  const s = new BmcSampler(src, log);
  const mono = { v: 1e9 };
  for (let i = 0; i < 3; i++) {
    const { frame, ctx } = roundCtx(mono);
    await s.sample(frame, ctx);
    assert.equal(frame.counters[0]?.unit, EnergyUnit.ENERGY_UNIT_JOULE);
    assert.equal(frame.counters[0]?.value, 412 * 2 * i, 'trapezoid over 2 s steps');
    mono.v += 2e9;
  }
  assert.equal(log.entries.filter((e) => /integrates PowerConsumedWatts/.test(e.msg)).length, 1, 'said once');
  assert.ok(srv.auths.every((a) => a.startsWith('Basic ')));
});

test('Redfish EnvironmentMetrics EnergykWh (PowerSubsystem model): the BMC energy counter is carried in joules', async (t) => {
  const { dir, cleanup } = tempDir('redfish');
  t.after(cleanup);
  const srv = await startRedfish(t, 'env', dir);
  if (!srv) return t.skip('openssl CLI not available for a test certificate');
  writeFileSync(join(dir, 'cred'), 'root:calvin\n');
  const log = memoryLogger();
  const src = new RedfishBmcSource({ baseUrl: srv.url, credentialsFile: join(dir, 'cred'), caFile: srv.caFile, logger: log });
  t.after(() => src.close());
  assert.deepEqual(await src.read(), { energyJoules: 1234.5 * 3.6e6, powerWatts: 398.5 });
  const s = new BmcSampler(src, log);
  const { frame, ctx } = roundCtx({ v: 5 });
  await s.sample(frame, ctx);
  assert.equal(frame.counters[0]?.value, 4444200000);
  assert.ok(log.entries.some((e) => /PowerSubsystem model/.test(e.msg)));
});

test('Redfish errors: bad credentials, untrusted certificate, malformed credentials file, missing field', async (t) => {
  const { dir, cleanup } = tempDir('redfish');
  t.after(cleanup);
  const srv = await startRedfish(t, 'legacy', dir);
  if (!srv) return t.skip('openssl CLI not available for a test certificate');
  const bad = new RedfishBmcSource({ baseUrl: srv.url, credentials: { username: 'root', password: 'nope' }, caFile: srv.caFile, logger: memoryLogger() });
  await assert.rejects(bad.read(), (e) => isWattsplitError(e, 'SENSOR_PERMISSION_DENIED') && /HTTP 401: check the credentials file/.test(e.message));
  await bad.close();
  const untrusted = new RedfishBmcSource({ baseUrl: srv.url, credentials: { username: 'root', password: 'calvin' }, logger: memoryLogger() });
  await assert.rejects(untrusted.read(), /Redfish GET https:\/\/127\.0\.0\.1:\d+\/redfish\/v1\/Chassis failed: .*(self.signed|certificate)/i);
  await untrusted.close();
  writeFileSync(join(dir, 'c1'), '{"username": "root"}');
  assert.throws(() => loadRedfishCredentials(join(dir, 'c1')), /c1: needs string fields "username" and "password"/);
  writeFileSync(join(dir, 'c2'), 'no-colon-here');
  assert.throws(() => loadRedfishCredentials(join(dir, 'c2')), /c2: expected "user:password"/);
  assert.throws(() => loadRedfishCredentials(join(dir, 'missing')), /Redfish credentials file .*missing unreadable/);
  assert.throws(() => new RedfishBmcSource({ baseUrl: 'not a url', logger: memoryLogger() }), /redfish url "not a url" is not a URL/);
  (srv.routes['/redfish/v1/Chassis/System.Embedded.1/Power'] as { PowerControl: Record<string, unknown>[] }).PowerControl[0]!.PowerConsumedWatts = null;
  const src = new RedfishBmcSource({ baseUrl: srv.url, credentials: { username: 'root', password: 'calvin' }, caFile: srv.caFile, logger: memoryLogger() });
  await assert.rejects(src.read(), /PowerControl\[0\]\.PowerConsumedWatts is null, not a number/);
  // the sampler keeps the round and marks the counter
  const s = new BmcSampler(src, memoryLogger());
  const { frame, ctx } = roundCtx({ v: 1 });
  await s.sample(frame, ctx);
  assert.match(frame.counters[0]?.error ?? '', /PowerConsumedWatts is null/);
  assert.equal(s.status().state, 'unavailable');
  await src.close();
});

const DCMI = `
    Instantaneous power reading:                   220 Watts
    Minimum during sampling period:                 64 Watts
    Maximum during sampling period:                384 Watts
    Average power reading over sample period:      216 Watts
    IPMI timestamp:                           Mon Nov 23 10:00:00 2026
    Sampling period:                          00000001 Seconds.
    Power reading state is:                   activated
`;

test('IPMI DCMI: parses ipmitool output (a real process), deactivated state and absent tool are clear errors', async (t) => {
  assert.equal(parseDcmiPowerReading(DCMI), 220);
  assert.throws(() => parseDcmiPowerReading(DCMI.replace('activated', 'deactivated')), /deactivated on this BMC \(enable with: ipmitool dcmi power activate\)/);
  assert.throws(() => parseDcmiPowerReading('garbage'), /no "Instantaneous power reading: N Watts" line in "garbage"/);
  const { dir, cleanup } = tempDir('ipmi');
  t.after(cleanup);
  const fake = join(dir, 'ipmitool');
  writeFileSync(fake, `#!/bin/sh\n[ "$1 $2 $3 $4 $5" = "-I open dcmi power reading" ] || { echo "bad args: $*" >&2; exit 1; }\ncat <<'X'\n${DCMI}\nX\n`);
  chmodSync(fake, 0o755);
  assert.deepEqual(await new IpmiDcmiBmcSource({ command: fake, extraArgs: ['-I', 'open'] }).read(), { energyJoules: undefined, powerWatts: 220 });
  await assert.rejects(new IpmiDcmiBmcSource({ command: fake }).read(), /failed: bad args: dcmi power reading/);
  const log = memoryLogger();
  const s = new BmcSampler(new IpmiDcmiBmcSource({ command: join(dir, 'no-ipmitool') }), log);
  for (let i = 0; i < 3; i++) {
    const { frame, ctx } = roundCtx({ v: i });
    await s.sample(frame, ctx);
    assert.match(frame.counters[0]?.error ?? '', /IPMI unsupported here: .*no-ipmitool not found/);
  }
  assert.equal(log.entries.filter((e) => e.level === 'warn').length, 1, 'said once');
});

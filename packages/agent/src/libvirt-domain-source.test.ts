import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWattsplitError, memoryLogger } from '@wattsplit/wire';
import { parseDomainXml } from './domain-xml.js';
import { LibvirtDomainSource, libvirtSupportError, type LibvirtConnection, type LibvirtModule } from './libvirt-domain-source.js';

const GPU_VM = `<domain type='test'>
  <name>train-1</name>
  <uuid>2c3d1f4e-0000-4000-8000-000000000001</uuid>
  <metadata>
    <wattsplit:vm xmlns:wattsplit="https://wattsplit.dev/xmlns/vm/1"><tenant>acme &amp; co</tenant><flavor>g1.h100</flavor></wattsplit:vm>
  </metadata>
  <memory unit='KiB'>4194304</memory>
  <vcpu placement='static'>4</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <interface type='network'><mac address='52:54:00:00:00:01'/><source network='default'/><target dev='vnet7'/></interface>
    <interface type='network'><mac address='52:54:00:00:00:02'/><source network='default'/><target dev='vnet8'/></interface>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source><address domain='0x0000' bus='0x17' slot='0x00' function='0x0'/></source>
      <address type='pci' domain='0x0000' bus='0x05' slot='0x00' function='0x0'/>
    </hostdev>
    <hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/><product id='0xbeef'/></source></hostdev>
  </devices>
</domain>`;

test('domain XML: tenant/flavor metadata, hostdev PCI addresses (not the guest-side address), tap names', () => {
  assert.deepEqual(parseDomainXml(GPU_VM), { tenant: 'acme & co', flavor: 'g1.h100', gpuPciAddresses: ['0000:17:00.0'], taps: ['vnet7', 'vnet8'] });
  assert.deepEqual(parseDomainXml('<domain><name>x</name></domain>'), { tenant: '', flavor: '', gpuPciAddresses: [], taps: [] });
  // another prefix for the same namespace
  assert.equal(parseDomainXml(`<metadata><ws:vm xmlns:ws='https://wattsplit.dev/xmlns/vm/1'><ws:tenant>t2</ws:tenant></ws:vm></metadata>`).tenant, 't2');
});

test("libvirt test:///default driver: the built-in domain plus one we define with metadata and a GPU", async (t) => {
  let Hypervisor: new (o: { uri: string }) => LibvirtConnection & { domainDefineXML(x: string): Promise<{ create(): Promise<void>; destroy(): Promise<void> }> };
  try {
    ({ Hypervisor } = (await import('@unraid/libvirt')) as unknown as { Hypervisor: typeof Hypervisor });
  } catch (e) {
    t.skip(`@unraid/libvirt not loadable here: ${(e as Error).message}`);
    return;
  }
  const conn = new Hypervisor({ uri: 'test:///default' });
  await conn.connectOpen();
  const dom = await conn.domainDefineXML(GPU_VM);
  await dom.create();
  const src = await LibvirtDomainSource.open({ connection: conn, logger: memoryLogger() });
  t.after(() => src.close());
  const list = await src.listDomains();
  const byName = new Map(list.map((d) => [d.name, d]));
  const builtin = byName.get('test');
  assert.equal(builtin?.uuid, '6695eb01-f6a4-8304-79aa-97f2502e193f');
  assert.equal(builtin?.state, 'running');
  assert.equal(builtin?.vcpus, 2);
  assert.equal(builtin?.memoryBytes, 8388608 * 1024);
  assert.deepEqual(builtin?.taps, ['testnet0']);
  const gpu = byName.get('train-1');
  assert.equal(gpu?.tenant, 'acme & co');
  assert.equal(gpu?.flavor, 'g1.h100');
  assert.deepEqual(gpu?.gpuPciAddresses, ['0000:17:00.0']);
  assert.equal(gpu?.vcpus, 4);
  assert.ok((gpu?.id ?? -1) > 0);
  // the VM stops: no longer listed (the VM sampler then reports it GONE once)
  await dom.destroy();
  assert.equal((await src.listDomains()).some((d) => d.name === 'train-1'), false);
});

test('libvirt unreachable: SENSOR_UNAVAILABLE naming the URI', async () => {
  await assert.rejects(LibvirtDomainSource.open({ uri: 'qemu+unix:///system?socket=/nonexistent/libvirt-sock', logger: memoryLogger() }), (e: Error) => /cannot connect to libvirt at qemu\+unix:\/\/\/system\?socket=\/nonexistent\/libvirt-sock/.test(e.message) || /not installed/.test(e.message));
});

test('a failed list marks the connection broken; the next list reconnects', async () => {
  let opens = 0;
  let fail = true;
  const conn: LibvirtConnection = {
    connectOpen: async () => void opens++,
    connectClose: async () => undefined,
    connectListAllDomains: async () => {
      if (fail) throw new Error('End of file while reading data: Input/output error');
      return [];
    },
  };
  const log = memoryLogger();
  const src = await LibvirtDomainSource.open({ connection: conn, logger: log });
  await assert.rejects(src.listDomains(), /libvirt list of domains failed: End of file while reading data.*\(will reconnect\)/);
  fail = false;
  assert.deepEqual(await src.listDomains(), []);
  assert.equal(opens, 1);
  assert.ok(log.entries.some((e) => e.msg === 'reconnected to libvirt'));
});

// A workspace installed before libvirt-dev: the package is there, its native addon is not (pnpm skips
// a failed optional build silently). The agent must say so and how to build it, in one line.
const notFound = (what: string) => Object.assign(new Error(`Cannot find module '${what}'\nRequire stack:\n- /x/dist/hypervisor.js`), { code: 'MODULE_NOT_FOUND' });

test('libvirt addon not built or not installed: one line saying so and how to build it, not a raw MODULE_NOT_FOUND', async () => {
  const logger = memoryLogger();
  const notBuilt = async (loader: () => Promise<LibvirtModule>) => {
    await assert.rejects(LibvirtDomainSource.open({ logger, loader }), (e) => {
      assert.ok(isWattsplitError(e, 'SENSOR_UNAVAILABLE'));
      assert.equal(e.details.reason, 'not-built');
      assert.match(e.message, /^libvirt support is not built: the native addon of @unraid\/libvirt \(build\/Release\/libvirt.node\) is missing/);
      assert.match(e.message, /apt-get install libvirt-dev/);
      assert.match(e.message, /npm_config_nodedir=\/usr pnpm --filter @wattsplit\/agent rebuild @unraid\/libvirt/);
      assert.doesNotMatch(e.message, /\n|Require stack/);
      return true;
    });
  };
  // the default loader's check of the addon
  await notBuilt(() => Promise.reject(notFound('../build/Release/libvirt.node')));
  // a loader returning the bare package: the package requires its addon in `new Hypervisor()`
  await notBuilt(() => Promise.resolve({ Hypervisor: class { constructor() { throw notFound('../build/Release/libvirt'); } } as unknown as LibvirtModule['Hypervisor'] }));
  // the package itself unresolvable
  const missing = await libvirtSupportError(async () => (await import(['@unraid', 'no-such-libvirt'].join('/'))) as LibvirtModule);
  assert.equal(missing?.details.reason, 'not-installed');
  assert.match(missing?.message ?? '', /^libvirt support is not installed: the optional dependency @unraid\/libvirt is missing .*apt-get install libvirt-dev/);
  // the addon there but its shared library not
  const dl = await libvirtSupportError(() => Promise.reject(new Error('libvirt.so.0: cannot open shared object file: No such file or directory')));
  assert.equal(dl?.details.reason, 'load-failed');
  assert.match(dl?.message ?? '', /libvirt support failed to load: libvirt.so.0: .*libvirt0/);
});

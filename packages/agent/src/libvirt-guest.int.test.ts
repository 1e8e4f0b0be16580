/**
 * Real guest smoke test: a qemu guest (software emulation, <domain type='qemu'>: KVM hangs at early boot
 * on these machines) booting the Debian kernel with a busybox initramfs whose init spins a CPU loop;
 * the agent's LibvirtDomainSource and cgroup reader must see it and its CPU time must grow.
 * Skipped, with the reason, unless we are root with virsh, qemu-system-x86_64, a /boot/vmlinuz-* and
 * /bin/busybox. Starts virtlogd and libvirtd when they are not running.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VmState, memoryLogger } from '@wattsplit/wire';
import { cpioNewc } from './cpio-newc.js';
import { RootedHostFs } from './host-fs.js';
import { LibvirtDomainSource, type LibvirtConnection } from './libvirt-domain-source.js';
import type { FrameUnderConstruction, RoundContext } from './sampler.js';
import { tempDir } from './test-helpers.js';
import { VmSampler } from './vm-sampler.js';

const which = (c: string) => spawnSync('sh', ['-c', `command -v ${c}`], { encoding: 'utf8' }).stdout.trim();

function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root';
  for (const c of ['virsh', 'qemu-system-x86_64', 'libvirtd', 'virtlogd']) if (!which(c)) return `${c} not installed (scripts/provision.sh installs it)`;
  if (!existsSync('/bin/busybox')) return '/bin/busybox (busybox-static) missing';
  if (!readdirSync('/boot').some((f) => f.startsWith('vmlinuz-'))) return 'no /boot/vmlinuz-* (linux-image-amd64)';
  return undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function ensureDaemons(): Promise<string | undefined> {
  const up = () => spawnSync('virsh', ['-c', 'qemu:///system', 'version'], { encoding: 'utf8', timeout: 10_000 }).status === 0;
  if (up()) return undefined;
  if (spawnSync('pgrep', ['-x', 'virtlogd']).status !== 0) spawnSync('virtlogd', ['-d']);
  if (spawnSync('pgrep', ['-x', 'libvirtd']).status !== 0) spawnSync('libvirtd', ['-d']);
  for (let i = 0; i < 40; i++) {
    if (up()) return undefined;
    await sleep(250);
  }
  return 'libvirtd did not come up (virsh -c qemu:///system version fails)';
}

function round(s: VmSampler, domains: Awaited<ReturnType<LibvirtDomainSource['listDomains']>>) {
  const frame: FrameUnderConstruction = { monoNs: Number(process.hrtime.bigint()), counters: [], vms: [], gpus: [], hostCpu: undefined };
  const ctx: RoundContext = { domains, domainsAvailable: true, vmsByUuid: new Map(), cgroupPathByUuid: new Map(), processOwners: undefined, monoNs: () => Number(process.hrtime.bigint()) };
  s.sample(frame, ctx);
  return { frame, ctx };
}

test('a real qemu guest under libvirt: discovered, its cgroup found, its CPU time grows', { timeout: 120_000 }, async (t) => {
  const why = skipReason();
  if (why) return t.skip(why);
  const daemons = await ensureDaemons();
  if (daemons) return t.skip(daemons);
  let Hypervisor: new (o: { uri: string }) => LibvirtConnection & {
    domainDefineXML(x: string): Promise<{ create(): Promise<void>; destroy(): Promise<void>; undefine(): Promise<void> }>;
  };
  try {
    ({ Hypervisor } = (await import('@unraid/libvirt')) as unknown as { Hypervisor: typeof Hypervisor });
  } catch (e) {
    return t.skip(`@unraid/libvirt not loadable: ${(e as Error).message}`);
  }
  const { dir, cleanup } = tempDir('guest');
  t.after(cleanup);
  chmodSync(dir, 0o755);
  const kernel = join('/boot', readdirSync('/boot').filter((f) => f.startsWith('vmlinuz-')).sort().pop() ?? '');
  const init = '#!/bin/busybox sh\n/bin/busybox echo wattsplit-guest-up\nwhile :; do :; done\n';
  const initrd = join(dir, 'initrd.cpio');
  writeFileSync(initrd, cpioNewc([
    { name: 'bin', mode: 0o040755 },
    { name: 'bin/busybox', mode: 0o100755, data: readFileSync('/bin/busybox') },
    { name: 'dev', mode: 0o040755 },
    { name: 'init', mode: 0o100755, data: Buffer.from(init) },
  ]));
  chmodSync(initrd, 0o644);
  const name = `wattsplit-smoke-${process.pid}`;
  const xml = `<domain type='qemu'>
  <name>${name}</name>
  <metadata><wattsplit:vm xmlns:wattsplit="https://wattsplit.dev/xmlns/vm/1"><tenant>smoke</tenant><flavor>tiny</flavor></wattsplit:vm></metadata>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>${kernel}</kernel><initrd>${initrd}</initrd><cmdline>console=ttyS0 panic=-1 quiet</cmdline></os>
  <on_poweroff>destroy</on_poweroff><on_crash>destroy</on_crash>
  <devices><emulator>${which('qemu-system-x86_64')}</emulator><serial type='pty'/><console type='pty'/></devices>
</domain>`;
  const conn = new Hypervisor({ uri: 'qemu:///system' });
  await conn.connectOpen();
  const dom = await conn.domainDefineXML(xml);
  t.after(async () => {
    await dom.destroy().catch(() => undefined);
    await dom.undefine().catch(() => undefined);
    await conn.connectClose().catch(() => undefined);
  });
  await dom.create();
  const src = await LibvirtDomainSource.open({ uri: 'qemu:///system', logger: memoryLogger() });
  t.after(() => src.close());
  const log = memoryLogger();
  const sampler = new VmSampler(new RootedHostFs('/'), log);
  const d1 = (await src.listDomains()).filter((d) => d.name === name);
  assert.equal(d1.length, 1, 'libvirt lists the guest');
  assert.equal(d1[0]?.tenant, 'smoke');
  assert.equal(d1[0]?.state, 'running');
  const a = round(sampler, d1);
  const v1 = a.frame.vms.find((v) => v.name === name);
  assert.ok(v1, `cgroup found: ${sampler.status().detail}`);
  const path = a.ctx.cgroupPathByUuid.get(d1[0]?.uuid ?? '');
  assert.match(path ?? '', sampler.cgroupVersion === 1 ? new RegExp(`^/machine/qemu-\\d+-${name}\\.libvirt-qemu$`) : /^\/machine\.slice\/machine-qemu\\x2d\d+\\x2d/);
  await sleep(2500);
  const b = round(sampler, (await src.listDomains()).filter((d) => d.name === name));
  const v2 = b.frame.vms.find((v) => v.name === name);
  assert.equal(v2?.state, VmState.VM_STATE_RUNNING);
  const grew = Number(v2?.cpuTimeNs ?? 0) - Number(v1.cpuTimeNs ?? 0);
  assert.ok(grew > 0.5e9, `guest CPU time grew by ${grew / 1e9} s over 2.5 s of a spinning vCPU`);
  assert.ok(Number(v2?.memoryUsedBytes ?? 0) > 0);
  assert.ok((v2?.vcpuTimeNs?.length ?? 0) >= 1, 'per-vCPU thread time');
  await dom.destroy();
  const c = round(sampler, (await src.listDomains()).filter((d) => d.name === name));
  assert.equal(c.frame.vms.find((v) => v.name === name)?.state, VmState.VM_STATE_GONE, 'destroyed guest reported GONE once');
});

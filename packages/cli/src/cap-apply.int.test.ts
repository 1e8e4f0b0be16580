/**
 * `wattsplit cap-apply` on a real qemu guest under libvirt (software emulation, <domain type='qemu'>,
 * the Debian kernel with a busybox initramfs whose init spins a CPU loop), as the shipped CLI process:
 * the dry run prints the virsh schedinfo / migrate commands and changes nothing; --execute sets the
 * CPU quota (the guest's CPU time rate falls to about the planned fraction) and lifts it when the plan
 * says (the rate comes back, the quota is the one read before). Skipped, with the reason, unless we are
 * root with virsh, libvirtd, qemu-system-x86_64, /boot/vmlinuz-* and /bin/busybox.
 *
 * Migration is only dry-run here: a second libvirtd on this machine would need its own qemu:///system
 * (a second root daemon with separate run/state directories and its own socket, plus a migration URI
 * between them sharing one /var/lib/libvirt); not attempted (see docs/capping.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CapPlan, MigrateAction, ThrottleAction } from '@wattsplit/capping';

const main = join(dirname(fileURLToPath(import.meta.url)), 'main.js');
const which = (c: string): string => spawnSync('sh', ['-c', `command -v ${c}`], { encoding: 'utf8' }).stdout.trim();
const virsh = (...args: string[]) => spawnSync('virsh', ['-c', 'qemu:///system', ...args], { encoding: 'utf8', timeout: 20_000 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root';
  for (const c of ['virsh', 'qemu-system-x86_64', 'libvirtd', 'virtlogd']) if (!which(c)) return `${c} not installed (scripts/provision.sh installs it)`;
  if (!existsSync('/bin/busybox')) return '/bin/busybox (busybox-static) missing';
  if (!readdirSync('/boot').some((f) => f.startsWith('vmlinuz-'))) return 'no /boot/vmlinuz-* (linux-image-amd64)';
  return undefined;
}

async function ensureDaemons(): Promise<string | undefined> {
  const up = () => virsh('version').status === 0;
  if (up()) return undefined;
  if (spawnSync('pgrep', ['-x', 'virtlogd']).status !== 0) spawnSync('virtlogd', ['-d']);
  if (spawnSync('pgrep', ['-x', 'libvirtd']).status !== 0) spawnSync('libvirtd', ['-d']);
  for (let i = 0; i < 40; i++) {
    if (up()) return undefined;
    await sleep(250);
  }
  return 'libvirtd did not come up (virsh -c qemu:///system version fails)';
}

/** Cores the guest's CPU time grows by, over `ms`. */
async function cores(name: string, ms = 1500): Promise<number> {
  const read = (): number => Number(/cpu\.time=(\d+)/.exec(virsh('domstats', name, '--cpu-total').stdout)?.[1] ?? NaN);
  const a = read();
  const ta = performance.now();
  await sleep(ms);
  return (read() - a) / 1e6 / (performance.now() - ta);
}

test('cap-apply on a real guest: dry run changes nothing; --execute sets the CPU quota (CPU time falls) and lifts it when the plan says', { timeout: 180_000 }, async (t) => {
  const why = skipReason();
  if (why) return t.skip(why);
  const daemons = await ensureDaemons();
  if (daemons) return t.skip(daemons);
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-cap-apply-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  chmodSync(dir, 0o755);
  // initramfs: busybox and an init that spins one CPU (busybox's own cpio writes the newc archive).
  const root = join(dir, 'root');
  mkdirSync(join(root, 'bin'), { recursive: true });
  mkdirSync(join(root, 'dev'));
  spawnSync('cp', ['/bin/busybox', join(root, 'bin/busybox')]);
  writeFileSync(join(root, 'init'), '#!/bin/busybox sh\nwhile :; do :; done\n', { mode: 0o755 });
  const initrd = join(dir, 'initrd.cpio');
  const cpio = spawnSync('sh', ['-c', `cd ${root} && printf 'bin\\nbin/busybox\\ndev\\ninit\\n' | /bin/busybox cpio -o -H newc > ${initrd}`]);
  if (cpio.status !== 0) return t.skip(`busybox cpio failed: ${String(cpio.stderr)}`);
  chmodSync(initrd, 0o644);
  const kernel = join('/boot', readdirSync('/boot').filter((f) => f.startsWith('vmlinuz-')).sort().pop() ?? '');
  const name = `wattsplit-cap-${process.pid}`;
  const xmlFile = join(dir, 'domain.xml');
  writeFileSync(
    xmlFile,
    `<domain type='qemu'><name>${name}</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>${kernel}</kernel><initrd>${initrd}</initrd><cmdline>console=ttyS0 panic=-1 quiet</cmdline></os>
  <on_poweroff>destroy</on_poweroff><on_crash>destroy</on_crash>
  <devices><emulator>${which('qemu-system-x86_64')}</emulator><serial type='pty'/><console type='pty'/></devices></domain>`,
  );
  assert.equal(virsh('define', xmlFile).status, 0);
  t.after(() => {
    virsh('destroy', name);
    virsh('undefine', name);
  });
  const started = virsh('start', name);
  assert.equal(started.status, 0, started.stderr);
  const uuid = virsh('domuuid', name).stdout.trim();
  await sleep(3000); // boot to the spinning init
  const before = await cores(name);
  assert.ok(before > 0.2, `the spinning guest uses ${before} cores`);
  const quotaBefore = /global_quota\s*:\s*(-?\d+)/.exec(virsh('schedinfo', name, '--live').stdout)?.[1];

  const throttle: ThrottleAction = { kind: 'throttle', hostId: 'local', vmUuid: uuid, tenant: 'smoke', shedW: 10, method: 'cpu-quota', cpuQuotaFraction: 0.3, slowdown: 0.7, fromS: 0, untilS: 12, reason: 'test: local is over its cap' };
  const migrate = { kind: 'migrate', vmUuid: uuid, tenant: 'smoke', fromHostId: 'local', toHostId: 'other', mode: 'post-copy', bandwidthBps: 2 ** 20 * 500, startS: 30, durationS: 8, switchoverS: 32.12, endS: 38, arriveS: 32, vmPowerW: 10, sourceExtraW: 12, destinationExtraW: 12, rounds: 1, transferredBytes: 0, slowdown: 0.1, slowedS: 6, downtimeS: 0.12, slaCost: 1, reason: 'test' } satisfies MigrateAction;
  const plan: Pick<CapPlan, 'actions' | 'horizonS'> = { actions: [throttle], horizonS: 10 };
  const planFile = join(dir, 'plan.json');
  writeFileSync(planFile, JSON.stringify(plan));
  const dryFile = join(dir, 'dry.json');
  writeFileSync(dryFile, JSON.stringify({ ...plan, actions: [throttle, migrate] }));

  // Dry run: the commands, nothing changed.
  const dry = spawnSync(process.execPath, [main, 'cap-apply', dryFile, '--connect', 'local=qemu:///system', '--connect', 'other=qemu+ssh://other/system'], { encoding: 'utf8' });
  assert.equal(dry.status, 0, dry.stderr);
  assert.match(dry.stdout, new RegExp(`virsh -c qemu:///system schedinfo ${uuid} --live --set global_period=100000 --set global_quota=<0.3 × cores used × 100000>`));
  assert.match(dry.stdout, new RegExp(`virsh -c qemu:///system migrate --live --persistent --undefinesource --postcopy --bandwidth 500 ${uuid} qemu\\+ssh://other/system`));
  assert.match(dry.stdout, /migrate-postcopy/);
  assert.match(dry.stdout, /t=12s {2}local {2}lift the CPU quota/);
  assert.equal(/global_quota\s*:\s*(-?\d+)/.exec(virsh('schedinfo', name, '--live').stdout)?.[1], quotaBefore, 'the dry run changed nothing');

  // --execute, as the shipped process: quota set (after 1 s of measurement), lifted at t = 12 s.
  const child = spawn(process.execPath, [main, 'cap-apply', planFile, '--execute', '--connect', 'local=qemu:///system', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number>((r) => child.on('close', (c) => r(c ?? 1)));
  // Wait for the set (the process starts and measures first; on a loaded machine that takes seconds).
  let quotaDuring = -1;
  for (let i = 0; i < 100 && quotaDuring <= 0; i++) {
    await sleep(100);
    quotaDuring = Number(/global_quota\s*:\s*(-?\d+)/.exec(virsh('schedinfo', name, '--live').stdout)?.[1]);
  }
  const during = await cores(name, 3000);
  assert.ok(quotaDuring > 0 && quotaDuring < 100_000, `global_quota during the throttle: ${quotaDuring}`);
  assert.ok(during < 0.5 * before, `throttled to 0.3 × ${before.toFixed(3)} cores: ${during.toFixed(3)} cores`);
  assert.equal(await exited, 0, `cap-apply: ${err}${out}`);
  const result = JSON.parse(out.trim().split('\n').pop()!) as { ok: boolean; steps: { kind: string; ok: boolean; detail: string }[] };
  assert.equal(result.ok, true);
  assert.deepEqual(result.steps.map((s) => s.kind), ['set-cpu-quota', 'restore-cpu-quota']);
  assert.equal(/global_quota\s*:\s*(-?\d+)/.exec(virsh('schedinfo', name, '--live').stdout)?.[1], quotaBefore, 'the quota read before is back');
  const after = await cores(name);
  // The machine is shared (other builds): the guest's unthrottled rate varies, so compare with the throttled one.
  assert.ok(after > 1.5 * during, `after the lift: ${after.toFixed(3)} cores vs ${during.toFixed(3)} throttled (${before.toFixed(3)} before)`);
  t.diagnostic(`guest cores: ${before.toFixed(3)} before, ${during.toFixed(3)} under global_quota=${quotaDuring}, ${after.toFixed(3)} after; ${result.steps.map((s) => s.detail).join(' | ')}`);
});

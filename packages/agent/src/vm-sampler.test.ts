import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VmState, WattsplitError, memoryLogger } from '@wattsplit/wire';
import { parseBlkioServiceBytes, parseCpuStatUsageNs, parseIoStat, scanBlkioServiceBytes } from './cgroup-reader.js';
import { RootedHostFs } from './host-fs.js';
import { cgroupV2Path, libvirtMachineName, systemdEscape, systemdUnescape } from './machine-name.js';
import { CpuFreqReader, parseProcStat } from './proc-stat.js';
import { parseNetDev } from './net-dev.js';
import type { FrameUnderConstruction, RoundContext } from './sampler.js';
import { domainInfo } from './static-domain-source.js';
import { FIXTURES, copyFixture, tempDir } from './test-helpers.js';
import { VmSampler } from './vm-sampler.js';
import type { DomainInfo } from '@wattsplit/wire';

let mono = 100;
function round(s: VmSampler, domains: DomainInfo[], available = true): { frame: FrameUnderConstruction; ctx: RoundContext } {
  const frame: FrameUnderConstruction = { monoNs: mono, counters: [], vms: [], gpus: [], hostCpu: undefined };
  const ctx: RoundContext = { domains, domainsAvailable: available, vmsByUuid: new Map(), cgroupPathByUuid: new Map(), processOwners: undefined, monoNs: () => mono };
  s.sample(frame, ctx);
  mono += 1000;
  return { frame, ctx };
}

const WEB = domainInfo({ uuid: 'u-web', name: 'web-1', id: 1, vcpus: 2, memoryBytes: 2 ** 31, tenant: 'acme', taps: ['vnet0'], flavor: 'm1.small' });
const DB = domainInfo({ uuid: 'u-db', name: 'db', id: 2, vcpus: 4, taps: ['vnet1'] });

test('machine names and systemd escaping follow libvirt and systemd', () => {
  assert.equal(libvirtMachineName(3, 'web-1'), 'qemu-3-web-1');
  assert.equal(libvirtMachineName(3, '.hidden_vm.x-'), 'qemu-3-hiddenvmx');
  assert.equal(libvirtMachineName(12, 'a'.repeat(100)).length, 64);
  assert.equal(systemdEscape('qemu-3-web-1'), 'qemu\\x2d3\\x2dweb\\x2d1');
  assert.equal(systemdUnescape(systemdEscape('qemu-3-wéb 1')), 'qemu-3-wéb 1');
  assert.equal(cgroupV2Path(3, 'web-1'), '/machine.slice/machine-qemu\\x2d3\\x2dweb\\x2d1.scope');
});

test('cgroup v2: CPU, per-vCPU, memory, block and tap net per VM; host /proc/stat and cpufreq', () => {
  const s = new VmSampler(new RootedHostFs(join(FIXTURES, 'single-socket-v2')), memoryLogger());
  assert.equal(s.cgroupVersion, 2);
  const { frame, ctx } = round(s, [WEB, DB]);
  assert.equal(frame.vms.length, 2);
  const w = frame.vms[0]!;
  assert.equal(w.uuid, 'u-web');
  assert.equal(w.tenant, 'acme');
  assert.equal(w.hardwareClass, 'm1.small');
  assert.equal(w.state, VmState.VM_STATE_RUNNING);
  assert.equal(w.cpuTimeNs, 5_000_000_000);
  assert.deepEqual(w.vcpuTimeNs, [1_666_666_000, 1_666_666_000]);
  assert.equal(w.memoryUsedBytes, 1073741825);
  assert.equal(w.blockReadBytes, 1010);
  assert.equal(w.blockWriteBytes, 2020);
  assert.equal(w.netTxBytes, 1000, 'tap rx = guest tx');
  assert.equal(w.netRxBytes, 2000);
  assert.equal(frame.vms[1]!.vcpuTimeNs?.length, 4);
  assert.equal(ctx.cgroupPathByUuid.get('u-web'), '/machine.slice/machine-qemu\\x2d1\\x2dweb\\x2d1.scope');
  assert.equal(frame.hostCpu?.onlineCpus, 4);
  assert.equal(frame.hostCpu?.busyNs, (4705 + 356 + 584 + 0 + 18 + 0) * 1e7);
  assert.equal(frame.hostCpu?.idleNs, (3699176 + 23) * 1e7);
  assert.equal(frame.hostCpu?.avgFreqMhz, 2150);
});

test('cgroup v1 without systemd: cpuacct, memory and blkio controllers', () => {
  const s = new VmSampler(new RootedHostFs(join(FIXTURES, 'dual-socket-v1')), memoryLogger());
  assert.equal(s.cgroupVersion, 1);
  const d = domainInfo({ uuid: 'u-b', name: 'batch-a', id: 3, vcpus: 2, taps: ['vnet5'] });
  const { frame, ctx } = round(s, [d]);
  const v = frame.vms[0]!;
  assert.equal(v.cpuTimeNs, 7_000_000_000);
  assert.deepEqual(v.vcpuTimeNs, [2333333333, 2333333333]);
  assert.equal(v.memoryUsedBytes, 536870915);
  assert.equal(v.blockReadBytes, 4096);
  assert.equal(v.blockWriteBytes, 8192);
  assert.equal(ctx.cgroupPathByUuid.get('u-b'), '/machine/qemu-3-batch-a.libvirt-qemu');
  assert.equal(frame.hostCpu?.onlineCpus, 8);
});

test('cgroup v1 hybrid (cpuacct left at the root by libvirt): CPU time from the unified hierarchy', () => {
  const s = new VmSampler(new RootedHostFs(join(FIXTURES, 'dual-socket-v1')), memoryLogger());
  const { frame, ctx } = round(s, [domainInfo({ uuid: 'u-h', name: 'hyb', id: 4, vcpus: 1 })]);
  assert.equal(frame.vms[0]?.cpuTimeNs, 3_000_000_000);
  assert.deepEqual(frame.vms[0]?.vcpuTimeNs, [2_500_000_000]);
  assert.equal(frame.vms[0]?.memoryUsedBytes, 268435456);
  assert.equal(ctx.cgroupPathByUuid.get('u-h'), '/machine/qemu-4-hyb.libvirt-qemu');
});

test('VM lifecycle: appears, vanishes from libvirt (GONE once), cgroup vanishes mid-interval (GONE), shut off, migrating', () => {
  const fx = copyFixture('single-socket-v2');
  try {
    const log = memoryLogger();
    const s = new VmSampler(new RootedHostFs(fx.root), log);
    const r1 = round(s, [WEB]);
    assert.equal(r1.frame.vms.length, 1);
    const started = r1.frame.vms[0]!.startedMonoNs;
    const r2 = round(s, [WEB, DB]);
    assert.equal(r2.frame.vms[0]!.startedMonoNs, started, 'same VM keeps its start');
    assert.notEqual(r2.frame.vms[1]!.startedMonoNs, started, 'new VM starts now');
    // web vanishes from the inventory: one GONE sample with its last counters, then nothing
    const r3 = round(s, [DB]);
    const gone = r3.frame.vms.find((v) => v.uuid === 'u-web');
    assert.equal(gone?.state, VmState.VM_STATE_GONE);
    assert.equal(gone?.cpuTimeNs, 5_000_000_000);
    assert.equal(round(s, [DB]).frame.vms.find((v) => v.uuid === 'u-web'), undefined);
    // db's cgroup disappears while libvirt still lists it (qemu died mid-interval)
    rmSync(join(fx.root, 'sys/fs/cgroup/machine.slice/machine-qemu\\x2d2\\x2ddb.scope'), { recursive: true });
    const r5 = round(s, [DB]);
    assert.equal(r5.frame.vms[0]?.state, VmState.VM_STATE_GONE);
    assert.equal(r5.frame.vms[0]?.cpuTimeNs, 9_000_000_000);
    // and then it has no cgroup: not reported, reason kept for --check
    assert.equal(round(s, [DB]).frame.vms.length, 0);
    assert.match(s.status().detail, /VM db \(u-db, id 2, running\) has no qemu cgroup/);
    // migrating out and shut off
    const r7 = round(s, [{ ...WEB, state: 'migrating_out' }]);
    assert.equal(r7.frame.vms[0]?.state, VmState.VM_STATE_MIGRATING_OUT);
    const r8 = round(s, [{ ...WEB, state: 'shutoff', id: -1 }]);
    assert.equal(r8.frame.vms[0]?.state, VmState.VM_STATE_SHUTOFF);
    assert.equal(round(s, [{ ...WEB, state: 'shutoff', id: -1 }]).frame.vms.length, 0);
    // inventory unavailable: nothing is declared gone
    round(s, [WEB]);
    assert.equal(round(s, [], false).frame.vms.length, 0);
    assert.equal(round(s, [WEB]).frame.vms[0]?.state, VmState.VM_STATE_RUNNING);
  } finally {
    fx.cleanup();
  }
});

test('a restarted domain (same uuid, new id) is a new VM instance', () => {
  const fx = copyFixture('single-socket-v2');
  try {
    const s = new VmSampler(new RootedHostFs(fx.root), memoryLogger());
    const a = round(s, [WEB]).frame.vms[0]!;
    // qemu-1-web-1 → qemu-7-web-1
    renameSync(join(fx.root, 'sys/fs/cgroup/machine.slice/machine-qemu\\x2d1\\x2dweb\\x2d1.scope'), join(fx.root, 'sys/fs/cgroup/machine.slice/machine-qemu\\x2d7\\x2dweb\\x2d1.scope'));
    const b = round(s, [{ ...WEB, id: 7 }]).frame.vms[0]!;
    assert.notEqual(a.startedMonoNs, b.startedMonoNs);
  } finally {
    fx.cleanup();
  }
});

test('a shortened libvirt machine name is found by scanning for qemu-<id>-', () => {
  const s = new VmSampler(new RootedHostFs(join(FIXTURES, 'single-socket-v2')), memoryLogger());
  const { frame } = round(s, [domainInfo({ uuid: 'x', name: 'web-1-with-a-name-libvirt-would-shorten', id: 1 })]);
  assert.equal(frame.vms[0]?.cpuTimeNs, 5_000_000_000);
});

test('malformed cgroup and proc files name the file, field and value', () => {
  assert.throws(() => parseCpuStatUsageNs('user_usec 1\n', '/x/cpu.stat'), /\/x\/cpu.stat: no "usage_usec" line/);
  assert.throws(() => parseCpuStatUsageNs('usage_usec abc\n', '/x/cpu.stat'), /\/x\/cpu.stat: usage_usec is "abc"/);
  assert.throws(() => parseIoStat('253:0 rbytes=-5 wbytes=1\n', '/x/io.stat'), /\/x\/io.stat: rbytes is "-5"/);
  assert.throws(() => parseBlkioServiceBytes('253:0 Read x\n', '/b'), /\/b: 253:0 Read is "x"/);
  assert.throws(() => parseProcStat('intr 1 2\n'), /\/proc\/stat: first line must be/);
  assert.throws(() => parseProcStat('cpu  1 2 x 4 5\n'), /field 3 of the cpu line is "x"/);
  const fx = copyFixture('single-socket-v2');
  try {
    writeFileSync(join(fx.root, 'sys/fs/cgroup/machine.slice/machine-qemu\\x2d1\\x2dweb\\x2d1.scope/memory.current'), 'lots\n');
    const s = new VmSampler(new RootedHostFs(fx.root), memoryLogger());
    assert.equal(round(s, [WEB]).frame.vms.length, 0);
    assert.match(s.status().detail, /memory.current: memory.current is "lots"/);
  } finally {
    fx.cleanup();
  }
});

test('tap counters from one read of /proc/1/net/dev (the host netns); a tap it does not list from sysfs; same values either way', (t) => {
  const { root, cleanup } = copyFixture('single-socket-v2');
  t.after(cleanup);
  const viaSysfs = round(new VmSampler(new RootedHostFs(root), memoryLogger()), [WEB, DB]).frame.vms;
  mkdirSync(join(root, 'proc/1/net'), { recursive: true });
  // vnet0 as sysfs has it (rx 1000, tx 2000), vnet1 left out: read from sysfs
  writeFileSync(
    join(root, 'proc/1/net/dev'),
    'Inter-|   Receive                                                |  Transmit\n' +
      ' face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n' +
      '    lo: 9999999      10    0    0    0     0          0         0  9999999      10    0    0    0     0       0          0\n' +
      ' vnet0:    1000       7    0    0    0     0          0         0     2000       9    0    0    0     0       0          0\n',
  );
  const s = new VmSampler(new RootedHostFs(root, { keepOpen: true }), memoryLogger());
  const a = round(s, [WEB, DB]).frame.vms;
  assert.deepEqual(a.map((v) => [v.netTxBytes, v.netRxBytes]), viaSysfs.map((v) => [v.netTxBytes, v.netRxBytes]));
  writeFileSync(join(root, 'proc/1/net/dev'), readFileSync(join(root, 'proc/1/net/dev'), 'latin1').replace(' vnet0:    1000 ', ' vnet0:    5000 '));
  assert.equal(round(s, [WEB, DB]).frame.vms[0]!.netTxBytes, 5000, 'read from /proc/1/net/dev, not sysfs');
});

test('/proc/net/dev parsing: only the wanted interfaces, rx bytes field 1 and tx bytes field 9, 64-bit values', () => {
  const text =
    'Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n' +
    'vnet12: 18446744073709551615 1 2 3 4 5 6 7 42 1 2 3 4 5 6 7\n' +
    '  eth0: 5 1 2 3 4 5 6 7 6 1 2 3 4 5 6 7\n' +
    ' vnet3: garbage\n';
  const m = parseNetDev(text, new Set(['vnet12', 'vnet3', 'absent']));
  assert.deepEqual([...m.keys()], ['vnet12'], 'eth0 not wanted, vnet3 malformed, absent not listed');
  assert.equal(m.get('vnet12')?.rx, Number('18446744073709551615'));
  assert.equal(m.get('vnet12')?.tx, 42);
});

test('cpufreq: all CPUs the first round, then at most perRound a round in turn; the mean is over every CPU\'s latest reading', (t) => {
  const { dir, cleanup } = tempDir('cpufreq');
  t.after(cleanup);
  const files: string[] = [];
  for (let c = 0; c < 5; c++) {
    mkdirSync(join(dir, `cpu${c}`), { recursive: true });
    writeFileSync(join(dir, `cpu${c}/f`), '1000000\n');
    files.push(`/cpu${c}/f`);
  }
  const r = new CpuFreqReader(new RootedHostFs(dir), files, 2);
  assert.equal(r.read(), 1000);
  for (let c = 0; c < 5; c++) writeFileSync(join(dir, `cpu${c}/f`), '2000000\n');
  assert.equal(r.read(), 1400, 'cpu0 and cpu1 read again: (2+2+1+1+1)/5 GHz');
  assert.equal(r.read(), 1800);
  assert.equal(r.read(), 2000);
  rmSync(join(dir, 'cpu4/f'));
  r.read();
  r.read();
  assert.equal(r.read(), 2000, 'an offline CPU (file gone) drops out of the mean');
});

test('blkio.throttle.io_service_bytes from bytes: Read and Write summed over devices as Number(text) reads them, Total lines left out', () => {
  const devs = [
    ['8:0', 4096, 8192],
    ['253:0', 2 ** 53 + 2, 7], // past a double's exact digits: rounded as Number("9007199254740994") rounds
    ['253:1', 0, 123456789012345],
  ] as const;
  let text = '';
  for (const [dev, r, w] of devs) text += `${dev} Read ${r}\n${dev} Write ${w}\n${dev} Sync 5\n${dev} Async 6\n${dev} Discard 0\n${dev} Total ${r + w}\n`;
  text += `Total ${devs.reduce((s, [, r, w]) => s + r + w, 0)}\n`;
  const want = { read: devs.reduce((s, [, r]) => s + Number(String(r)), 0), write: devs.reduce((s, [, , w]) => s + w, 0) };
  assert.deepEqual(parseBlkioServiceBytes(text, '/b'), want);
  // from a buffer longer than the file (the read buffer): only the first n bytes count
  const buf = Buffer.alloc(4096, 0x37);
  const n = buf.write(text, 'latin1');
  const out = { read: -1, write: -1 };
  scanBlkioServiceBytes(buf, n, '/b', out);
  assert.deepEqual(out, want);
  // what is not plain digits is read as the text says it, or named
  assert.deepEqual(parseBlkioServiceBytes('8:0 Read 12  \n8:0 Write 1e3\n', '/b'), { read: 12, write: 1000 });
  assert.deepEqual(parseBlkioServiceBytes('8:0 Read 5', '/b'), { read: 5, write: 0 }, 'no newline at the end');
  assert.deepEqual(parseBlkioServiceBytes('', '/b'), { read: 0, write: 0 });
  assert.throws(() => parseBlkioServiceBytes('8:0 Write -1\n', '/b'), /\/b: 8:0 Write is "-1"/);
});

test('parseProcStat counts the "cpuN" lines that follow the total (online CPUs), nothing else', () => {
  const cpuLines = Array.from({ length: 70 }, (_, c) => `cpu${c} 100 5 10 90000 1 0 1 0 0 0`);
  const text = ['cpu  4705 356 584 3699176 23 0 18 0 0 0', ...cpuLines, 'cpufreq 3', 'cpu 1 2 3 4', 'intr 1 cpu7 2', 'cpu9', 'ctxt 123', ''].join('\n');
  const byLines = text.split('\n').slice(1).filter((l) => /^cpu\d+\s/.test(l)).length;
  const hc = parseProcStat(text);
  assert.equal(hc.onlineCpus, byLines);
  assert.equal(hc.onlineCpus, 70);
  assert.equal(hc.busyNs, (4705 + 356 + 584 + 0 + 18 + 0) * 10_000_000);
  assert.equal(hc.idleNs, (3699176 + 23) * 10_000_000);
  assert.equal(parseProcStat('cpu  1 2 3 4').onlineCpus, 0, 'the total line alone, no newline');
});

test('parseProcStat (one pass over the first line) reads what the regex/split version at bbde98a read, and fails where it failed', () => {
  const T = 10_000_000; // ns a USER_HZ tick
  // [input, busy ticks (user+nice+system+irq+softirq+steal), idle ticks (idle+iowait)]; every case checked against
  // bbde98a's parseProcStat (trim, split(/\s+/), Number, 0 for missing fields).
  const cases: [string, string, number, number][] = [
    ['4 fields only (older kernels): the rest read as 0', 'cpu 1 2 3 4', 1 + 2 + 3, 4],
    ['10 fields: guest and guest_nice not added (already in user and nice)', 'cpu  1 2 3 4 5 6 7 8 9 10\n', 1 + 2 + 3 + 6 + 7 + 8, 4 + 5],
    ['11 fields: a later kernel field ignored', 'cpu  1 2 3 4 5 6 7 8 9 10 11\n', 1 + 2 + 3 + 6 + 7 + 8, 4 + 5],
    ['17 digits: Number() rounding to a double', 'cpu  12345678901234567 0 0 1 0 0 0 0 0 0\n', Number('12345678901234567'), 1],
    ['20 digits (over 2^64 / 1000): Number() rounding to a double', 'cpu  12345678901234567890 0 0 1 0 0 0 0 0 0\n', Number('12345678901234567890'), 1],
    ['1e3, 0x1f and -0 are numbers to Number()', 'cpu  1e3 0x1f -0 4 5\n', 1000 + 31 + 0, 4 + 5],
    ['tabs and a \\r before the newline', 'cpu\t1\t2\t3\t4\r\n', 1 + 2 + 3, 4],
    ['\\xa0 separates like a space (\\s)', 'cpu 1\xa02 3 4\n', 1 + 2 + 3, 4],
    ['leading and trailing blanks', '  cpu 1 2 3 4 \n', 1 + 2 + 3, 4],
  ];
  for (const [what, text, busy, idle] of cases) {
    const hc = parseProcStat(text);
    assert.equal(hc.busyNs, busy * T, `${what}: busy`);
    assert.equal(hc.idleNs, idle * T, `${what}: idle`);
    assert.equal(hc.onlineCpus, 0, what);
  }
  const fails: [string, RegExp, Record<string, unknown>][] = [
    ['cpu  1 2 3 4 5 6 7 8 x 10\n', /^\/proc\/stat: field 9 of the cpu line is "x", not a tick count$/, { file: '/proc/stat', field: 9, value: 'x' }],
    ['cpu  1 2 3 4 5 6 7 8 -1 10\n', /^\/proc\/stat: field 9 of the cpu line is "-1", not a tick count$/, { file: '/proc/stat', field: 9, value: '-1' }],
    ['cpu  1 2 3\n', /^\/proc\/stat: first line must be "cpu user nice system idle \.\.\.", got "cpu  1 2 3"$/, { file: '/proc/stat', value: 'cpu  1 2 3' }],
  ];
  for (const [text, message, details] of fails) {
    assert.throws(
      () => parseProcStat(text),
      (e: unknown) => {
        assert.ok(e instanceof WattsplitError, JSON.stringify(text));
        assert.equal(e.code, 'SENSOR_READ_FAILED');
        assert.match(e.message, message);
        assert.deepEqual(e.details, details);
        return true;
      },
    );
  }
});

test('slowEveryRounds 3 without slowBlock (the default): block I/O every round with no slow read time, memory every 3rd round', () => {
  const fx = copyFixture('single-socket-v2');
  try {
    const dir = (id: number, name: string) => join(fx.root, 'sys/fs/cgroup', cgroupV2Path(id, name));
    const s = new VmSampler(new RootedHostFs(fx.root), memoryLogger(), { slowEveryRounds: 3 });
    const seen: FrameUnderConstruction['vms'][] = [];
    for (let r = 0; r < 7; r++) {
      for (const [id, name] of [[1, 'web-1'], [2, 'db']] as const) {
        writeFileSync(join(dir(id, name), 'cpu.stat'), `usage_usec ${(r + 1) * 1000}\nuser_usec 0\nsystem_usec 0\n`);
        writeFileSync(join(dir(id, name), 'memory.current'), `${(r + 1) * 4096}\n`);
        writeFileSync(join(dir(id, name), 'io.stat'), `253:0 rbytes=${(r + 1) * 100} wbytes=${(r + 1) * 10} rios=1 wios=1 dbytes=0 dios=0\n`);
      }
      seen.push(round(s, [WEB, DB]).frame.vms);
    }
    for (const uuid of ['u-web', 'u-db']) {
      const vs = seen.map((vms) => vms.find((v) => v.uuid === uuid)!);
      vs.forEach((v, r) => {
        assert.equal(v.blockReadBytes, (r + 1) * 100, `${uuid} round ${r}: block reads every round`);
        assert.equal(v.blockWriteBytes, (r + 1) * 10);
        assert.equal(v.slowReadMonoNs ?? 0, 0, `${uuid} round ${r}: no slow read time (block I/O is current)`);
      });
      // memory in use: a level read every 3rd round, repeated in between
      const memRounds = vs.flatMap((v, r) => (v.memoryUsedBytes === (r + 1) * 4096 ? [r] : []));
      assert.equal(memRounds[0], 0, `${uuid}: a new VM is read whole`);
      assert.ok(memRounds.length >= 2 && memRounds.length <= 4, `${uuid}: memory read in rounds ${memRounds.join(',')}`);
      vs.forEach((v, r) => assert.ok(v.memoryUsedBytes! % 4096 === 0 && v.memoryUsedBytes! <= (r + 1) * 4096 && v.memoryUsedBytes! > (r - 3) * 4096, `${uuid} round ${r}: memory ${v.memoryUsedBytes}`));
    }
  } finally {
    fx.cleanup();
  }
});

test('slowEveryRounds 3 with slowBlock: CPU every round; memory and block I/O every 3rd round per VM, staggered, repeated between with their read time', () => {
  const fx = copyFixture('single-socket-v2');
  try {
    const dir = (id: number, name: string) => join(fx.root, 'sys/fs/cgroup', cgroupV2Path(id, name));
    const s = new VmSampler(new RootedHostFs(fx.root), memoryLogger(), { slowEveryRounds: 3, slowBlock: true });
    const rounds: Array<{ mono: number; vms: FrameUnderConstruction['vms'] }> = [];
    for (let r = 0; r < 7; r++) {
      // every round: the CPU, memory and I/O counters of both VMs move
      for (const [id, name] of [[1, 'web-1'], [2, 'db']] as const) {
        writeFileSync(join(dir(id, name), 'cpu.stat'), `usage_usec ${(r + 1) * 1000}\nuser_usec 0\nsystem_usec 0\n`);
        writeFileSync(join(dir(id, name), 'memory.current'), `${(r + 1) * 4096}\n`);
        writeFileSync(join(dir(id, name), 'io.stat'), `253:0 rbytes=${(r + 1) * 100} wbytes=${(r + 1) * 10} rios=1 wios=1 dbytes=0 dios=0\n`);
      }
      const at = mono;
      rounds.push({ mono: at, vms: round(s, [WEB, DB]).frame.vms });
    }
    for (const uuid of ['u-web', 'u-db']) {
      const seen = rounds.map(({ mono: at, vms }) => ({ at, v: vms.find((v) => v.uuid === uuid)! }));
      seen.forEach(({ at, v }, r) => {
        assert.equal(v.cpuTimeNs, (r + 1) * 1e6, `${uuid} round ${r}: CPU time read every round`);
        assert.equal(v.readMonoNs, at);
        const slowAt = v.slowReadMonoNs ?? 0;
        assert.ok(slowAt > 0 && slowAt <= at, `${uuid} round ${r}: slowReadMonoNs ${slowAt}`);
        // the round whose values these are, from their read time: the slow counters are exactly that round's
        const from = seen.findIndex((x) => x.at === slowAt);
        assert.ok(from >= 0 && r - from < 3, `${uuid} round ${r}: values from round ${from}`);
        assert.equal(v.memoryUsedBytes, (from + 1) * 4096);
        assert.equal(v.blockReadBytes, (from + 1) * 100);
        assert.equal(v.blockWriteBytes, (from + 1) * 10);
      });
      const freshRounds = seen.flatMap(({ at, v }, r) => (v.slowReadMonoNs === at ? [r] : []));
      assert.equal(freshRounds[0], 0, `${uuid}: a new VM is read whole`);
      assert.ok(freshRounds.length >= 2 && freshRounds.length <= 4, `${uuid}: read in rounds ${freshRounds.join(',')} of 0-6`);
      for (let i = 2; i < freshRounds.length; i++) assert.equal(freshRounds[i]! - freshRounds[i - 1]!, 3, `${uuid}: every 3rd round (${freshRounds.join(',')})`);
    }
    // staggered: the two VMs are not read in the same rounds after the first
    const freshOf = (uuid: string) => rounds.flatMap(({ mono: at, vms }, r) => (r > 0 && vms.find((v) => v.uuid === uuid)!.slowReadMonoNs === at ? [r] : []));
    assert.notDeepEqual(freshOf('u-web'), freshOf('u-db'));
  } finally {
    fx.cleanup();
  }
});

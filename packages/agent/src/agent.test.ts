import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { EnergySource, VmState, decodeFrame, encodeFrame, memoryLogger, validateFrame, type BmcSource, type DomainSource, type GpuSource } from '@wattsplit/wire';
import { Agent } from './agent.js';
import { SEQ_RESERVATION } from './agent-state.js';
import { RootedHostFs } from './host-fs.js';
import { slugModel } from './hardware-class.js';
import { StaticDomainSource, domainInfo } from './static-domain-source.js';
import { FIXTURES, copyFixture, fakeClock, tempDir } from './test-helpers.js';

const WEB = domainInfo({ uuid: 'u-web', name: 'web-1', id: 1, vcpus: 2, tenant: 'acme', taps: ['vnet0'] });
const DB = domainInfo({ uuid: 'u-db', name: 'db', id: 2, vcpus: 4, taps: ['vnet1'] });

test('one frame: counters, VMs, host CPU, identity; valid on the wire and round-trips', async () => {
  const clock = fakeClock();
  const gpus: GpuSource = {
    read: () => [{ index: 0, pciBusId: '00000000:17:00.0', name: 'NVIDIA H100 80GB HBM3', uuid: 'GPU-x', energyMj: 99, powerMw: 1, gpuUtilPct: 0, memUtilPct: 0, smClockMhz: 0, memClockMhz: 0, tempC: 0, processUtil: [], running: [], migProfile: '' }],
  };
  const bmc: BmcSource = { read: async () => ({ energyJoules: 5000, powerWatts: 400 }) };
  const agent = new Agent({ hostId: 'hv-01', fs: new RootedHostFs(join(FIXTURES, 'single-socket-v2')), domains: new StaticDomainSource([WEB, DB]), gpus, bmc, clock, logger: memoryLogger() });
  const f = await agent.sampleOnce();
  assert.deepEqual(validateFrame(f), []);
  assert.equal(f.hostId, 'hv-01');
  assert.equal(f.seq, 1);
  assert.equal(f.monoNs, 1_000_000_000);
  assert.equal(f.hardwareClass, 'xeon-platinum-8480++h100-80gb-hbm3x1');
  assert.deepEqual(f.counters?.map((c) => c.id), ['gpu:0000:17:00.0', 'intel-rapl:0', 'intel-rapl:0:0', 'intel-rapl:0:1', 'intel-rapl:0:2', 'intel-rapl:1', 'bmc']);
  assert.equal(f.counters?.find((c) => c.id === 'bmc')?.source, EnergySource.ENERGY_SOURCE_BMC);
  assert.deepEqual(f.vms?.map((v) => [v.name, v.state]), [['web-1', VmState.VM_STATE_RUNNING], ['db', VmState.VM_STATE_RUNNING]]);
  assert.equal(f.hostCpu?.onlineCpus, 4);
  const back = decodeFrame(encodeFrame(f));
  assert.equal(back.vms[1]?.vcpuTimeNs?.length, 4);
  clock.advance(1000);
  const g = await agent.sampleOnce();
  assert.equal(g.seq, 2);
  assert.equal(g.monoNs, 2_000_000_000);
  assert.equal(g.bootId, f.bootId);
  assert.deepEqual(agent.status().map((s) => [s.name, s.state]), [['domains', 'ok'], ['vms', 'ok'], ['gpu', 'ok'], ['rapl', 'ok'], ['bmc', 'ok']]);
});

test('restart: the sequence continues from the state dir; without a kernel boot id the boot id is random per start; another host cannot reuse the dir', async () => {
  const { dir, cleanup } = tempDir('state');
  try {
    const mk = (hostId = 'hv-01') => new Agent({ hostId, fs: new RootedHostFs(join(FIXTURES, 'single-socket-v2')), domains: new StaticDomainSource([]), logger: memoryLogger(), stateDir: dir });
    const a = mk();
    for (let i = 0; i < 3; i++) await a.sampleOnce();
    await a.close(); // a clean stop: the next start continues exactly (a crash: see the reservation test)
    const log = memoryLogger();
    const b = new Agent({ hostId: 'hv-01', fs: new RootedHostFs(join(FIXTURES, 'single-socket-v2')), domains: new StaticDomainSource([]), logger: log, stateDir: dir });
    const f = await b.sampleOnce();
    assert.equal(f.seq, a.lastSeq + 1);
    assert.notEqual(f.bootId, a.bootId);
    assert.ok(log.entries.some((e) => /continuing the frame sequence/.test(e.msg)));
    assert.ok(log.entries.some((e) => /boot_id unreadable/.test(e.msg)), 'the fixture has no /proc/sys/kernel/random/boot_id: said once');
    assert.match(f.bootId ?? '', /^agent-/, 'a made-up boot id says so (the collector then checks monotonic-clock continuity)');
    assert.throws(() => mk('hv-02'), /belongs to host "hv-01", not "hv-02"/);
    writeFileSync(join(dir, 'agent-state.json'), '{"seq": -4}');
    assert.throws(() => mk(), /agent-state.json: seq=-4 is not a non-negative integer/);
  } finally {
    cleanup();
  }
});

test('a power loss that cost the state file\'s last writes never makes a seq be reused: a start that is not sure continues after the seqs reserved on disk', async () => {
  const { root, cleanup: cleanRoot } = copyFixture('single-socket-v2');
  const { dir, cleanup } = tempDir('state-reserve');
  try {
    const bootDir = join(root, 'proc/sys/kernel/random');
    mkdirSync(bootDir, { recursive: true });
    writeFileSync(join(bootDir, 'boot_id'), '6f1c2a51-58a8-4c6e-9a2f-0d6c1b2e3f40\n');
    const mk = (log = memoryLogger()) => new Agent({ hostId: 'hv-01', fs: new RootedHostFs(root), domains: new StaticDomainSource([]), logger: log, stateDir: dir });
    const a = mk();
    const first = (await a.sampleOnce()).seq ?? 0;
    // what the disk holds after the first frame: its reservation was fsync'd with it
    const onDisk = readFileSync(join(dir, 'agent-state.json'), 'utf8');
    assert.equal(JSON.parse(onDisk).seqReserved, first + SEQ_RESERVATION);
    for (let i = 0; i < 20; i++) await a.sampleOnce(); // written in place, not fsync'd
    const last = a.lastSeq;
    // same kernel boot, agent killed (no clean stop): the page cache kept the latest state: exact
    const b = mk();
    assert.equal((await b.sampleOnce()).seq, last + 1);
    const sent = b.lastSeq;
    // power loss: the host reboots with the state file as last fsync'd (the 20 later writes lost)
    writeFileSync(join(dir, 'agent-state.json'), onDisk);
    writeFileSync(join(bootDir, 'boot_id'), '0a9b8c7d-1111-2222-3333-444455556666\n');
    const log = memoryLogger();
    const c = mk(log);
    const h = (await c.sampleOnce()).seq ?? 0;
    assert.ok(h > sent, `seq ${h} after the reboot is above every seq sent before it (${sent})`);
    assert.equal(h, first + SEQ_RESERVATION + 1);
    assert.ok(log.entries.some((e) => /seqs reserved on disk/.test(e.msg)));
    await c.close();
    // a clean stop is exact even across a reboot
    writeFileSync(join(bootDir, 'boot_id'), '11111111-2222-4333-8444-555555555555\n');
    const d = mk();
    assert.equal((await d.sampleOnce()).seq, h + 1);
    await d.close();
  } finally {
    cleanRoot();
    cleanup();
  }
});

test('bad hostId is a CONFIG_INVALID naming the value', () => {
  assert.throws(() => new Agent({ hostId: 'bad host!', fs: new RootedHostFs('/'), domains: new StaticDomainSource(), logger: memoryLogger() }), /hostId="bad host!" must be 1-128 chars/);
});

test('VM inventory failure: the frame still carries energy, VMs are not declared gone, the error is reported once', async () => {
  let fail = false;
  const domains: DomainSource = { listDomains: async () => { if (fail) throw new Error('libvirtd went away'); return [WEB]; } };
  const log = memoryLogger();
  const agent = new Agent({ hostId: 'hv-01', fs: new RootedHostFs(join(FIXTURES, 'single-socket-v2')), domains, logger: log });
  assert.equal((await agent.sampleOnce()).vms?.length, 1);
  fail = true;
  const f = await agent.sampleOnce();
  await agent.sampleOnce();
  assert.equal(f.vms?.length, 0);
  assert.equal(f.counters?.length, 5);
  assert.equal(log.entries.filter((e) => /listing VMs failed: libvirtd went away/.test(e.msg)).length, 1);
  assert.equal(agent.status()[0]?.state, 'unavailable');
  fail = false;
  const g = await agent.sampleOnce();
  assert.equal(g.vms?.[0]?.state, VmState.VM_STATE_RUNNING, 'not GONE after the outage');
});

test('run(): maxFrames frames at the interval, seq +1 each; wraparound fixture reads through', async () => {
  const fx = copyFixture('wraparound');
  try {
    const agent = new Agent({ hostId: 'hv-w', fs: new RootedHostFs(fx.root), domains: new StaticDomainSource([]), logger: memoryLogger() });
    const seqs: number[] = [];
    let n = 0;
    await agent.run({
      intervalMs: 5,
      maxFrames: 4,
      onFrame: (f) => {
        seqs.push(Number(f.seq));
        writeFileSync(join(fx.root, 'sys/class/powercap/intel-rapl:0/energy_uj'), `${(999990000 + ++n * 5000) % 1000000000}\n`);
      },
    });
    assert.deepEqual(seqs, [1, 2, 3, 4]);
    const f = await agent.sampleOnce();
    assert.equal(f.counters?.[0]?.value, 10000);
    assert.equal(f.hardwareClass, 'core-i7-8700');
  } finally {
    fx.cleanup();
  }
});

test('hardware class slugs', () => {
  assert.equal(slugModel('Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz'), 'xeon-platinum-8480+');
  assert.equal(slugModel('AMD EPYC 9654 96-Core Processor'), 'epyc-9654');
  assert.equal(slugModel('NVIDIA H100 80GB HBM3'), 'h100-80gb-hbm3');
});

test('after a host crash lost the state file, the sequence continues after the last spooled frame', async () => {
  const { dir, cleanup } = tempDir('state-spool');
  try {
    const { SpoolingSender } = await import('./spooling-sender.js');
    const { rmSync } = await import('node:fs');
    const transport = { send: () => new Promise<never>(() => undefined), close: async () => undefined };
    const s1 = new SpoolingSender({ spool: { dir }, transport, logger: memoryLogger() });
    assert.equal(s1.lastSpooledSeq(), 0);
    const a = new Agent({ hostId: 'hv-01', fs: new RootedHostFs(join(FIXTURES, 'single-socket-v2')), domains: new StaticDomainSource([]), logger: memoryLogger(), stateDir: dir });
    for (let i = 0; i < 5; i++) s1.enqueue(await a.sampleOnce());
    s1.spool.close();
    rmSync(join(dir, 'agent-state.json'));
    const s2 = new SpoolingSender({ spool: { dir }, transport, logger: memoryLogger() });
    assert.equal(s2.lastSpooledSeq(), a.lastSeq);
    const b = new Agent({ hostId: 'hv-01', fs: new RootedHostFs(join(FIXTURES, 'single-socket-v2')), domains: new StaticDomainSource([]), logger: memoryLogger(), stateDir: dir, minSeq: s2.lastSpooledSeq() });
    assert.equal((await b.sampleOnce()).seq, a.lastSeq + 1);
    s2.spool.close();
  } finally {
    cleanup();
  }
});

test('boot id is the kernel\'s: an agent restart keeps it, a host reboot changes it; a first start never reuses an earlier installation\'s seqs', async () => {
  const { root, cleanup: cleanRoot } = copyFixture('single-socket-v2');
  const { dir: state, cleanup: cleanState } = tempDir('state');
  try {
    const bootFile = join(root, 'proc/sys/kernel/random');
    mkdirSync(bootFile, { recursive: true });
    writeFileSync(join(bootFile, 'boot_id'), '6f1c2a51-58a8-4c6e-9a2f-0d6c1b2e3f40\n');
    const clock = fakeClock();
    const bmc: BmcSource = { read: async () => ({ energyJoules: undefined, powerWatts: 400 }) }; // power only: the agent integrates it
    const mk = (log = memoryLogger()) => new Agent({ hostId: 'hv-01', fs: new RootedHostFs(root), domains: new StaticDomainSource([]), logger: log, stateDir: state, clock, bmc });
    const bmcJ = (f: { counters?: { id?: string | null; value?: unknown }[] | null }) => Number(f.counters?.find((c) => c.id === 'bmc')?.value);
    const a = mk();
    const first = await a.sampleOnce();
    assert.equal(first.bootId, '6f1c2a51-58a8-4c6e-9a2f-0d6c1b2e3f40');
    assert.equal(first.seq, Math.floor(clock.wallUnixNs() / 1e6) + 1, 'no state: the sequence starts at the wall clock in ms');
    clock.advance(1000);
    const second = await a.sampleOnce();
    assert.equal(bmcJ(second), 400);
    await a.close();
    clock.advance(5000); // the agent is down for 5 s
    const log = memoryLogger();
    const b = mk(log);
    const g = await b.sampleOnce();
    assert.equal(bmcJ(g), 400 + 5 * 400, 'the BMC power integrator carries on across the restart: no reset, the gap integrated');
    assert.equal(g.bootId, first.bootId, 'an agent restart is the same kernel boot');
    assert.equal(g.seq, first.seq + 2);
    assert.ok(log.entries.some((e) => /agent restarted on the same host boot/.test(e.msg)));
    await b.close();
    writeFileSync(join(bootFile, 'boot_id'), '0a9b8c7d-1111-2222-3333-444455556666\n');
    const c = mk();
    const h = await c.sampleOnce();
    assert.equal(h.bootId, '0a9b8c7d-1111-2222-3333-444455556666', 'a reboot is a new kernel boot id');
    assert.equal(h.seq, g.seq + 1, 'the sequence continues across the reboot');
    assert.equal(bmcJ(h), 0, 'after a reboot the integrator starts afresh (another monotonic clock)');
    await c.close();
  } finally {
    cleanRoot();
    cleanState();
  }
});

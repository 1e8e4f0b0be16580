// The research findings the capping advisor relies on, each reproduced by the migration simulator's
// mechanisms (cores, copy CPU, rounds, remote faults), not by constants: see migration.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simulateMigrations, type MigSimAction, type MigSimHost, type MigSimVm } from './migration.js';

const GiB = 1024 ** 3;
const MB = 1e6;
const TEN_GBE = 1.25e9;
const SMALL = { memoryBytes: 4 * GiB, dirtyRateBps: 5 * MB, workingSetBytes: 5 * MB };
/** A 200 MB working set rewritten every second. */
const WRITE_HEAVY = { memoryBytes: 4 * GiB, dirtyRateBps: 200 * MB, workingSetBytes: 200 * MB };

/** Source with the mover (2 cores) and a neighbour; `saturated`: the neighbour wants more cores than are left. */
function fleet(mover: Omit<MigSimVm, 'uuid' | 'cores' | 'staticW'>, saturated: boolean): MigSimHost[] {
  return [
    { hostId: 'src', cores: 16, idleW: 100, coreW: 8, vms: [{ uuid: 'mv', cores: 2, staticW: 5, ...mover }, { uuid: 'nb', cores: saturated ? 20 : 6, staticW: 10, memoryBytes: 8 * GiB, dirtyRateBps: MB }] },
    { hostId: 'dst', cores: 16, idleW: 100, coreW: 8, vms: [] },
  ];
}
const migrate = (mode: 'pre-copy' | 'pre-copy-throttled' | 'post-copy', bandwidthBps = TEN_GBE): MigSimAction => ({ kind: 'migrate', vmUuid: 'mv', fromHostId: 'src', toHostId: 'dst', startS: 2, mode, bandwidthBps });

test('pre-copy on an unsaturated source: about +12 W on source and destination for the transfer, then the VM moves', () => {
  const r = simulateMigrations(fleet(SMALL, false), [migrate('pre-copy')], 30);
  const m = r.migrations[0]!;
  const src = r.powerW.get('src')!;
  const dst = r.powerW.get('dst')!;
  const before = src[0]!;
  // Whole seconds inside the copy: [start + setup, stop).
  const copy = src.slice(Math.ceil(m.startS + 2), Math.floor(m.stopS));
  assert.ok(copy.length >= 3);
  for (const w of copy) assert.ok(Math.abs(w - before - 12) < 0.5, `source during the copy: ${w} W vs ${before} W before`);
  for (const w of dst.slice(Math.ceil(m.startS + 2), Math.floor(m.stopS))) assert.ok(Math.abs(w - dst[0]! - 12) < 0.5);
  // After the switchover the source has lost the VM (2 cores × 8 W + 5 W), the destination has it.
  assert.ok(Math.abs(src[Math.ceil(m.endS) + 1]! - (before - 21)) < 1e-9);
  assert.ok(Math.abs(dst[Math.ceil(m.endS) + 1]! - (dst[0]! + 21)) < 1e-9);
  assert.ok(m.endS - m.startS >= 6 && m.endS - m.startS <= 20, `4 GiB on 10 GbE: ${m.endS - m.startS} s`);
  assert.ok(m.slowdown < 0.02, `small working set: dirty logging costs little (${m.slowdown})`);
});

test('pre-copy on a CPU-saturated source adds no power, holds the VM\'s power until switchover, and slows the guests', () => {
  const r = simulateMigrations(fleet(SMALL, true), [migrate('pre-copy')], 30);
  const m = r.migrations[0]!;
  const src = r.powerW.get('src')!;
  const before = src[0]!;
  for (const w of src.slice(0, Math.floor(m.stopS))) assert.ok(Math.abs(w - before) < 1e-9, `saturated source: ${w} W, ${before} W before`);
  // The destination still carries the copy's +12 W.
  const dst = r.powerW.get('dst')!;
  assert.ok(Math.abs(dst[5]! - dst[0]! - 12) < 0.5);
  // The 1.5 cores of the copy came from the guests: the neighbour lost work while it ran, not before.
  const lost = r.lostWorkS.get('nb')!;
  assert.ok(lost > 0.05 && lost < 0.2 * (m.endS - m.startS), `neighbour lost ${lost} s of work`);
  assert.ok(m.slowdown > 0.03, `the mover too: ${m.slowdown}`);
  const unsat = simulateMigrations(fleet(SMALL, false), [migrate('pre-copy')], 30);
  assert.equal(unsat.lostWorkS.get('nb'), 0, 'with idle cores nobody is slowed');
});

test('post-copy: the source loses the VM\'s power within 0.12 s; the VM runs ~10 % slower (small working set) to ~68 % (200 MB write-intensive)', () => {
  for (const [vm, lo, hi] of [
    [SMALL, 0.08, 0.12],
    [WRITE_HEAVY, 0.62, 0.74],
  ] as const) {
    const r = simulateMigrations(fleet(vm, false), [migrate('post-copy')], 30);
    const m = r.migrations[0]!;
    assert.ok(m.resumeS - m.stopS <= 0.12 + 1e-9, `stopped at ${m.stopS}, running on the destination at ${m.resumeS}`);
    // Tick power: the VM's 16 W of CPU leave the source at the stop, its 5 W static at the resume.
    const tick = r.tickPowerW.get('src')!;
    const at = (s: number): number => tick[Math.round(s / 0.01)]!;
    const during = at(m.stopS - 0.05);
    assert.ok(during - at(m.stopS + 0.01) >= 16 - 1e-9, `source power drops by the VM's CPU power at the stop: ${during} → ${at(m.stopS + 0.01)}`);
    // 0.12 s later its static 5 W has left too; the source now serves pages: +12 W for the push.
    assert.ok(Math.abs(at(m.resumeS + 0.01) - (during - 21 + 12)) < 0.01, `${at(m.resumeS + 0.01)} W after the resume`);
    assert.ok(m.postCopySlowdown >= lo && m.postCopySlowdown <= hi, `post-copy slowdown ${m.postCopySlowdown}, expected ${lo}–${hi}`);
  }
  // The slowdown grows with the working set: 50 MB lies between.
  const mid = simulateMigrations(fleet({ memoryBytes: 4 * GiB, dirtyRateBps: 50 * MB, workingSetBytes: 50 * MB }, false), [migrate('post-copy')], 30).migrations[0]!;
  assert.ok(mid.postCopySlowdown > 0.12 && mid.postCopySlowdown < 0.62, `50 MB: ${mid.postCopySlowdown}`);
});

test('a 200 MB write-intensive working set: pre-copy resends it (more bytes, a longer pause) where a small one does not', () => {
  const small = simulateMigrations(fleet(SMALL, false), [migrate('pre-copy')], 30).migrations[0]!;
  const heavy = simulateMigrations(fleet(WRITE_HEAVY, false), [migrate('pre-copy')], 30).migrations[0]!;
  assert.ok(heavy.transferredBytes - small.transferredBytes > 150 * MB, `${heavy.transferredBytes} vs ${small.transferredBytes} bytes`);
  assert.ok(heavy.resumeS - heavy.stopS > 5 * (small.resumeS - small.stopS), `downtime ${heavy.resumeS - heavy.stopS} vs ${small.resumeS - small.stopS} s`);
  assert.ok(heavy.slowdown > 3 * small.slowdown, 'dirty logging slows the writing guest more');
  // Faster than the link it does not converge within the rounds: the pause is long.
  const hopeless = simulateMigrations(fleet({ memoryBytes: 4 * GiB, dirtyRateBps: 1.2e9, workingSetBytes: 2 * GiB }, false), [migrate('pre-copy')], 120).migrations[0]!;
  assert.ok(hopeless.rounds >= 30 || hopeless.resumeS - hopeless.stopS > 1, `rounds ${hopeless.rounds}, pause ${hopeless.resumeS - hopeless.stopS} s`);
});

test('bandwidth-throttled pre-copy: half the extra watts, a longer transfer', () => {
  const full = simulateMigrations(fleet(SMALL, false), [migrate('pre-copy')], 40);
  const half = simulateMigrations(fleet(SMALL, false), [migrate('pre-copy-throttled', TEN_GBE / 2)], 40);
  const extra = (r: typeof full): number => r.powerW.get('src')![5]! - r.powerW.get('src')![0]!;
  assert.ok(Math.abs(extra(full) - 12) < 0.5 && Math.abs(extra(half) - 6) < 0.5, `${extra(full)} W vs ${extra(half)} W`);
  const d = (r: typeof full): number => r.migrations[0]!.endS - r.migrations[0]!.startS;
  assert.ok(d(half) > 1.5 * (d(full) - 2), `${d(half)} s vs ${d(full)} s`);
});

test('throttles: a CPU quota cuts power and work in proportion; DVFS cuts power as f² and work as f', () => {
  const hosts: MigSimHost[] = [{ hostId: 'h', cores: 16, idleW: 100, coreW: 8, vms: [{ uuid: 'a', cores: 4, staticW: 6, memoryBytes: GiB, dirtyRateBps: 0 }] }];
  const q = simulateMigrations(hosts, [{ kind: 'throttle', hostId: 'h', vmUuid: 'a', fromS: 1, untilS: 3, method: 'cpu-quota', cpuQuotaFraction: 0.5 }], 4);
  assert.deepEqual(q.powerW.get('h')!.map((w) => Math.round(w * 1e6) / 1e6), [138, 122, 122, 138]);
  assert.ok(Math.abs(q.lostWorkS.get('a')! - 1) < 1e-6);
  const f = simulateMigrations(hosts, [{ kind: 'throttle', hostId: 'h', vmUuid: 'a', fromS: 1, untilS: null, method: 'dvfs', cpuQuotaFraction: 1, frequencyFraction: 0.8 }], 3);
  assert.ok(Math.abs(f.powerW.get('h')![2]! - (106 + 32 * 0.64)) < 1e-6);
  assert.ok(Math.abs(f.lostWorkS.get('a')! - 0.4) < 1e-6, 'two seconds at 80 % speed');
});

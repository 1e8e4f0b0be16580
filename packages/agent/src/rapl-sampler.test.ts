import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EnergySource, EnergyUnit, memoryLogger } from '@wattsplit/wire';
import { RootedHostFs } from './host-fs.js';
import { RaplSampler, compareZoneIds, discoverRaplZones } from './rapl-sampler.js';
import type { FrameUnderConstruction, RoundContext } from './sampler.js';
import { FIXTURES, FaultyHostFs, copyFixture } from './test-helpers.js';

function round(s: RaplSampler): FrameUnderConstruction {
  const frame: FrameUnderConstruction = { monoNs: 1, counters: [], vms: [], gpus: [], hostCpu: undefined };
  const ctx: RoundContext = { domains: [], domainsAvailable: true, vmsByUuid: new Map(), cgroupPathByUuid: new Map(), processOwners: undefined, monoNs: () => 42 };
  s.sample(frame, ctx);
  return frame;
}

test('single socket: package, core, uncore, dram, psys with containment and wrap ranges', () => {
  const fs = new RootedHostFs(join(FIXTURES, 'single-socket-v2'));
  const zones = discoverRaplZones(fs);
  assert.deepEqual(zones.map((z) => [z.id, z.domain, z.index, z.parentId]), [
    ['intel-rapl:0', 'package', 0, ''],
    ['intel-rapl:0:0', 'core', 0, 'intel-rapl:0'],
    ['intel-rapl:0:1', 'uncore', 0, 'intel-rapl:0'],
    ['intel-rapl:0:2', 'dram', 0, ''],
    ['intel-rapl:1', 'psys', -1, ''],
  ]);
  const log = memoryLogger();
  const f = round(new RaplSampler(fs, log));
  const pkg = f.counters.find((c) => c.id === 'intel-rapl:0');
  assert.equal(pkg?.value, 123456789);
  assert.equal(pkg?.unit, EnergyUnit.ENERGY_UNIT_MICROJOULE);
  assert.equal(pkg?.source, EnergySource.ENERGY_SOURCE_RAPL);
  assert.equal(pkg?.maxRange, 262143328850);
  assert.equal(pkg?.readMonoNs, 42);
  assert.equal(f.counters.find((c) => c.id === 'intel-rapl:0:2')?.maxRange, 65712999613);
  assert.ok(f.counters.every((c) => !c.error));
});

test('zone ids sort naturally by vendor, socket and subzone (the order a numeric collator gave) without ICU', () => {
  const ids = ['intel-rapl:10', 'intel-rapl:2:1', 'amd-rapl:1', 'intel-rapl:2', 'intel-rapl:0:10', 'intel-rapl:0:2', 'intel-rapl:0', 'amd-rapl:0:1', 'intel-rapl:1'];
  const sorted = [...ids].sort(compareZoneIds);
  assert.deepEqual(sorted, ['amd-rapl:0:1', 'amd-rapl:1', 'intel-rapl:0', 'intel-rapl:0:2', 'intel-rapl:0:10', 'intel-rapl:1', 'intel-rapl:2', 'intel-rapl:2:1', 'intel-rapl:10']);
  // the same order as the collator the sort used before (kept out of the agent: it loads ICU's collation data)
  assert.deepEqual(sorted, [...ids].sort((a, b) => a.localeCompare(b, 'en', { numeric: true })));
  assert.equal(compareZoneIds('intel-rapl:3', 'intel-rapl:3'), 0);
});

test('dual socket AMD: two packages, per-socket core and dram', () => {
  const fs = new RootedHostFs(join(FIXTURES, 'dual-socket-v1'));
  const f = round(new RaplSampler(fs, memoryLogger()));
  const pk = f.counters.filter((c) => c.domain === 'package');
  assert.deepEqual(pk.map((c) => [c.id, c.index, c.value]), [['amd-rapl:0', 0, 500000000], ['amd-rapl:1', 1, 600000000]]);
  const dram = f.counters.filter((c) => c.domain === 'dram');
  assert.deepEqual(dram.map((c) => [c.id, c.index, c.parentId]), [['amd-rapl:0:1', 0, ''], ['amd-rapl:1:1', 1, '']]);
  const cores = f.counters.filter((c) => c.domain === 'core');
  assert.deepEqual(cores.map((c) => c.parentId), ['amd-rapl:0', 'amd-rapl:1']);
});

test('wraparound: the counter is reported raw with its range, so the delta can be taken across the wrap', () => {
  const fx = copyFixture('wraparound');
  try {
    const fs = new RootedHostFs(fx.root);
    const s = new RaplSampler(fs, memoryLogger());
    const a = round(s).counters[0];
    writeFileSync(join(fx.root, 'sys/class/powercap/intel-rapl:0/energy_uj'), '5000\n');
    const b = round(s).counters[0];
    assert.equal(a?.value, 999990000);
    assert.equal(b?.value, 5000);
    assert.equal(b?.maxRange, 1000000000);
    // what the attribution side computes: (b - a + range) mod range
    assert.equal(((b.value as number) - (a.value as number) + 1000000000) % 1000000000, 15000);
  } finally {
    fx.cleanup();
  }
});

test('permission denied on energy_uj: one clear message naming the file and the fix, counters carry the error, next rounds stay quiet', () => {
  const inner = new RootedHostFs(join(FIXTURES, 'single-socket-v2'));
  const fs = new FaultyHostFs(inner, new Map([['/sys/class/powercap/intel-rapl:0/energy_uj', 'EACCES']]));
  const log = memoryLogger();
  const s = new RaplSampler(fs, log);
  round(s);
  const f = round(s);
  const c = f.counters.find((x) => x.id === 'intel-rapl:0');
  assert.match(c?.error ?? '', /permission denied reading \/sys\/class\/powercap\/intel-rapl:0\/energy_uj/);
  assert.match(c?.error ?? '', /CAP_DAC_READ_SEARCH/);
  assert.match(c?.error ?? '', /CVE-2020-8694/);
  const warns = log.entries.filter((e) => e.fields.code === 'SENSOR_PERMISSION_DENIED');
  assert.equal(warns.length, 1, 'reported once');
  assert.equal(f.counters.find((x) => x.id === 'intel-rapl:0:0')?.error, undefined, 'other zones still read');
  assert.equal(s.status().state, 'degraded');
});

test('a zone that disappears: counter error set, no crash, the rest still read', () => {
  const fx = copyFixture('single-socket-v2');
  try {
    const log = memoryLogger();
    const s = new RaplSampler(new RootedHostFs(fx.root), log);
    round(s);
    rmSync(join(fx.root, 'sys/class/powercap/intel-rapl:0:2'), { recursive: true });
    const f = round(s);
    const dram = f.counters.find((c) => c.id === 'intel-rapl:0:2');
    assert.match(dram?.error ?? '', /intel-rapl:0:2 \(dram\) disappeared/);
    assert.equal(f.counters.find((c) => c.id === 'intel-rapl:0')?.value, 123456789);
    assert.ok(log.entries.some((e) => e.fields.code === 'SENSOR_UNAVAILABLE'));
  } finally {
    fx.cleanup();
  }
});

test('no powercap dir: unavailable with the reason, said once', () => {
  const log = memoryLogger();
  const s = new RaplSampler(new RootedHostFs(join(FIXTURES, 'no-such-tree')), log);
  assert.equal(round(s).counters.length, 0);
  round(s);
  assert.equal(s.status().state, 'unavailable');
  assert.match(s.status().detail, /no RAPL zones under \/sys\/class\/powercap/);
  assert.equal(log.entries.filter((e) => e.level === 'warn').length, 1);
});

test('malformed energy_uj and max_energy_range_uj name the file and the value', () => {
  const fx = copyFixture('wraparound');
  try {
    writeFileSync(join(fx.root, 'sys/class/powercap/intel-rapl:0/energy_uj'), 'garbage\n');
    const s = new RaplSampler(new RootedHostFs(fx.root), memoryLogger());
    const c = round(s).counters[0];
    assert.match(c?.error ?? '', /intel-rapl:0\/energy_uj: expected a non-negative integer, got "garbage"/);
    writeFileSync(join(fx.root, 'sys/class/powercap/intel-rapl:0/max_energy_range_uj'), '-1\n');
    const s2 = new RaplSampler(new RootedHostFs(fx.root), memoryLogger());
    round(s2);
    assert.match(s2.status().detail, /max_energy_range_uj: expected a positive integer, got "-1"/);
  } finally {
    fx.cleanup();
  }
});

test('RootedHostFs errors carry the full path and errno', () => {
  const fs = new RootedHostFs(join(FIXTURES, 'single-socket-v2'));
  assert.throws(() => fs.readText('/nope/file'), (e: NodeJS.ErrnoException) => e.code === 'ENOENT' && e.message.includes(join(FIXTURES, 'single-socket-v2', 'nope/file')));
  assert.equal(new RootedHostFs('/').resolve('/proc/stat'), '/proc/stat');
  assert.ok(new RootedHostFs('/').readText('/proc/stat').startsWith('cpu '));
});

test('zones that appear after start (module loaded later) are found within 60 rounds', (t) => {
  const fx = copyFixture('wraparound');
  t.after(fx.cleanup);
  const hidden = join(fx.root, 'sys/class/powercap');
  const moved = join(fx.root, 'powercap-later');
  renameSync(hidden, moved);
  const s = new RaplSampler(new RootedHostFs(fx.root), memoryLogger());
  assert.equal(round(s).counters.length, 0);
  renameSync(moved, hidden);
  let n = 0;
  for (let i = 0; i < 61; i++) n = round(s).counters.length;
  assert.equal(n, 1);
  assert.equal(s.status().state, 'ok');
});

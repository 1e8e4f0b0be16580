import { test } from 'node:test';
import assert from 'node:assert/strict';
import { forecastPower, hostForecastW, planCaps, simulatePlan, type PowerSample } from './index.js';

const DAY = 86_400;
/** A VM that runs 40 W at night and 100 W from 09:00 to 17:00 UTC, for `days` days, one sample a minute, with ±`noise` W. */
function officeVm(days: number, nowUnixS: number, noise = 0): PowerSample[] {
  const out: PowerSample[] = [];
  let seed = 3;
  const rnd = (): number => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  for (let t = nowUnixS - days * DAY; t <= nowUnixS; t += 60) {
    const h = Math.floor((t % DAY) / 3600);
    out.push({ key: 'vm-office', tUnixS: t, powerW: (h >= 9 && h < 17 ? 100 : 40) + (rnd() - 0.5) * 2 * noise });
  }
  return out;
}

test('hour of day: ten minutes before 09:00 the bound already carries the morning rise that the present does not show', () => {
  const now = 20 * DAY + 9 * 3600 - 600; // 08:50 UTC
  const f = forecastPower(officeVm(7, now), { nowUnixS: now, horizonS: 1200 }).get('vm-office')!;
  assert.equal(f.basis, 'hour-of-day+trend');
  assert.ok(Math.abs(f.levelW - 40) < 1e-6);
  assert.ok(Math.abs(f.expectedW[0]! - 40) < 1e-6);
  assert.ok(Math.abs(f.expectedW[600]! - 100) < 1e-6, `09:00: ${f.expectedW[600]}`);
  assert.ok(f.upperMaxW >= 100);
  // The plan against the bound throttles or moves before 09:00; the plan against the present does nothing.
  const host = { hostId: 'h', capW: 180, powerW: 150, vms: [{ uuid: 'vm-office', powerW: 40, memoryBytes: 2 ** 31, tenant: 'o' }, { uuid: 'other', powerW: 80, memoryBytes: 2 ** 31, tenant: 'p' }] };
  const forecastW = hostForecastW(host, new Map([['vm-office', f]]), 1200);
  assert.equal(forecastW[0], 150);
  assert.equal(forecastW[700], 210);
  const flat = planCaps({ hosts: [host], linkBps: 1.25e9, horizonS: 1200 });
  assert.equal(flat.actions.length, 0);
  const bound = planCaps({ hosts: [{ ...host, forecastW }], linkBps: 1.25e9, horizonS: 1200 });
  assert.ok(bound.actions.length > 0);
  const tl = simulatePlan([{ ...host, forecastW }], bound.actions, 1200).get('h')!;
  assert.ok(Math.max(...tl) <= 180 + 1e-6, `against the bound: peak ${Math.max(...tl)} W`);
});

test('recent trend: a rising VM is extrapolated (damped), a falling one is not banked on; the bound widens with the noise', () => {
  const now = 1_000_000;
  const rising: PowerSample[] = Array.from({ length: 15 }, (_, i) => ({ key: 'up', tUnixS: now - 840 + i * 60, powerW: 50 + i * 0.6 }));
  const falling: PowerSample[] = Array.from({ length: 15 }, (_, i) => ({ key: 'down', tUnixS: now - 840 + i * 60, powerW: 80 - i }));
  const fs = forecastPower([...rising, ...falling], { nowUnixS: now, horizonS: 600, maxTrendS: 300 });
  const up = fs.get('up')!;
  assert.equal(up.basis, 'trend');
  assert.ok(Math.abs(up.trendWPerS - 0.01) < 1e-9);
  assert.ok(Math.abs(up.levelW - 58.4) < 1e-6, `level on the line at now: ${up.levelW}`);
  assert.ok(Math.abs(up.expectedW[300]! - (58.4 + 3)) < 1e-6);
  assert.equal(up.expectedW[599], up.expectedW[300], 'damped after maxTrendS');
  const down = fs.get('down')!;
  assert.ok(down.trendWPerS < 0);
  assert.equal(down.expectedW[599], down.expectedW[0]);
  const quiet = forecastPower(officeVm(3, 20 * DAY + 3 * 3600, 0), { nowUnixS: 20 * DAY + 3 * 3600, horizonS: 60 }).get('vm-office')!;
  const noisy = forecastPower(officeVm(3, 20 * DAY + 3 * 3600, 10), { nowUnixS: 20 * DAY + 3 * 3600, horizonS: 60 }).get('vm-office')!;
  assert.ok(quiet.spreadW < 1e-6 && noisy.spreadW > 3, `spread ${quiet.spreadW} vs ${noisy.spreadW}`);
  assert.ok(noisy.upperW[0]! - noisy.expectedW[0]! > 6);
});

test('causal: samples after now are ignored; bad options name the field', () => {
  const now = 20 * DAY + 9 * 3600 - 600;
  const past = officeVm(7, now);
  const future: PowerSample[] = [{ key: 'vm-office', tUnixS: now + 60, powerW: 1e6 }];
  const a = forecastPower(past, { nowUnixS: now, horizonS: 60 }).get('vm-office')!;
  const b = forecastPower([...past, ...future], { nowUnixS: now, horizonS: 60 }).get('vm-office')!;
  assert.deepEqual(a, b);
  assert.throws(() => forecastPower(past, { nowUnixS: now, horizonS: 0 }), /forecastPower: horizonS=0 must be an integer ≥ 1/);
});

test("a young series is a ramp, not a trend: a GPU VM's first minute (184 → 757 W) is not extrapolated; its spread still widens the bound", () => {
  const now = 1_000_000;
  // One sample a second for 60 s, rising ~9.7 W/s: the collector's view of a GPU warming up.
  const ramp: PowerSample[] = Array.from({ length: 60 }, (_, i) => ({ key: 'gpu-vm', tUnixS: now - 59 + i, powerW: 184 + i * 9.7 }));
  const young = forecastPower(ramp, { nowUnixS: now, horizonS: 60, recentS: 300 }).get('gpu-vm')!;
  assert.equal(young.trendWPerS, 0, 'under minTrendSpanS (120 s): no trend');
  assert.ok(young.spreadW > 100, `the ramp's spread counts: ${young.spreadW}`);
  assert.ok(young.upperMaxW < 757 + 2 * young.spreadW, `bound ${young.upperMaxW} W, not the ramp extrapolated (~1340 W)`);
  // The same ramp with a shorter span requirement is extrapolated, as before.
  const trended = forecastPower(ramp, { nowUnixS: now, horizonS: 60, recentS: 300, minTrendSpanS: 30 }).get('gpu-vm')!;
  assert.ok(Math.abs(trended.trendWPerS - 9.7) < 1e-9);
  assert.ok(trended.upperMaxW > 1300);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { actuationSchedule, planCaps, type ThrottleAction } from './index.js';

const th = (vmUuid: string, q: number, fromS: number, untilS: number | null, method: 'cpu-quota' | 'dvfs' = 'cpu-quota'): ThrottleAction => ({
  kind: 'throttle', hostId: 'h', vmUuid, tenant: 't', shedW: 1, method, cpuQuotaFraction: method === 'dvfs' ? 1 : q, ...(method === 'dvfs' ? { frequencyFraction: q } : {}), slowdown: 0, fromS, untilS, reason: `r${fromS}`,
});

test('overlapping throttles of one VM combine to the lowest; each stretch is one set; a throttle with an end is restored there', () => {
  const s = actuationSchedule([th('a', 0.6, 0, 9), th('a', 0.8, 9, null), th('b', 0.5, 0, 4), th('b', 0.7, 2, 6), th('c', 0.9, 0, 5, 'dvfs')]);
  assert.deepEqual(s.map((x) => [x.atS, x.kind, x.vmUuid, 'fraction' in x ? x.fraction : null]), [
    [0, 'set-cpu-quota', 'a', 0.6],
    [0, 'set-cpu-quota', 'b', 0.5],
    [0, 'set-max-frequency', 'c', 0.9],
    [4, 'set-cpu-quota', 'b', 0.7],
    [5, 'restore-max-frequency', 'c', null],
    [6, 'restore-cpu-quota', 'b', null],
    [9, 'set-cpu-quota', 'a', 0.8],
  ]);
});

test('a plan with a migration: throttles first, the migration at its start, the window throttle lifted at switchover', () => {
  const GiB = 1024 ** 3;
  const plan = planCaps({
    linkBps: 1.25e9,
    horizonS: 300,
    hosts: [
      { hostId: 'src', capW: 300, powerW: 330, vms: [{ uuid: 'mover', powerW: 40, minPowerW: 20, memoryBytes: 2 * GiB, tenant: 't1', dirtyRateBps: 0 }, { uuid: 'pin', powerW: 100, minPowerW: 10, memoryBytes: GiB, tenant: 't2', movable: false }] },
      { hostId: 'dst', capW: 300, powerW: 100, vms: [] },
    ],
  }, { modes: ['pre-copy'] });
  const s = actuationSchedule(plan.actions);
  const m = plan.actions.find((a) => a.kind === 'migrate')!;
  assert.equal(s.find((x) => x.kind === 'migrate')!.atS, m.kind === 'migrate' ? m.startS : -1);
  assert.ok(s.findIndex((x) => x.kind === 'migrate') > s.findIndex((x) => x.kind === 'set-cpu-quota'));
  const mover = s.filter((x) => x.vmUuid === 'mover');
  assert.deepEqual(mover.map((x) => x.kind), ['set-cpu-quota', 'migrate', 'restore-cpu-quota']);
  assert.deepEqual(mover.map((x) => x.hostId), ['src', 'src', 'dst'], 'the restore goes where the VM is then');
});

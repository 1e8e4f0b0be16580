// wattsplit.capping.v1.CapStatus (proto/wattsplit/capping/v1/capping.proto): round trip through the
// generated code, with the fields the collector's cap watch fills.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CapStatus, TOPICS } from './telemetry.js';

test('CapStatus round-trips: scope, powers, the predicted crossing and the plan actions', () => {
  const m = {
    scopeId: 'rack-1',
    scopeKind: 'rack',
    hostIds: ['hv-00', 'hv-01'],
    tUnixNs: 1_764_950_400_000_000_000,
    capW: 760,
    powerW: 742.5,
    predictedPeakW: 790.25,
    predictedCrossS: 17,
    horizonS: 60,
    planSafe: true,
    planPeakW: 759.9,
    planSlaCost: 12.5,
    actions: [{ kind: 'migrate', vmUuid: 'u-1', hostId: 'hv-00', toHostId: 'hv-07', mode: 'post-copy', fraction: 1, startS: 1, untilS: 9.5, reason: 'rack-1 is 30 W over' }],
    method: 'additive_model',
    marginW: 5,
  };
  const back = CapStatus.decode(CapStatus.encode(CapStatus.create(m)).finish());
  assert.deepEqual(CapStatus.toObject(back, { defaults: false }), m);
  const none = CapStatus.decode(CapStatus.encode(CapStatus.create({ scopeId: 'hv-02', predictedCrossS: -1 })).finish());
  assert.equal(none.predictedCrossS, -1, 'no crossing is -1, not the proto3 default 0');
  assert.equal(TOPICS.capping, 'wattsplit.capping.v1');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WattsplitError } from '@wattsplit/wire';
import { attributionRows, vmRows } from './rows.js';
import { sampleInterval, sampleResult } from './test-fixtures.js';

const T1 = 1_763_900_000_000_000_000;

test('rows: the fast path and the checked path give the same rows', () => {
  const i = sampleInterval('hv-1', 7, T1);
  const vms = vmRows(i);
  assert.equal(vms.length, 2);
  assert.equal(vms[0]!.t1_ns, T1);
  assert.deepEqual(vms[0]!.vcpu_s, [0.75, 0.75]);
  // A Long-like counter (protobuf uint64 default) takes the checked path, which converts it.
  const withLong = structuredClone(i);
  (withLong.vms[1] as unknown as { netTxBytes: unknown }).netTxBytes = { toNumber: () => 200 };
  assert.deepEqual(vmRows(withLong), vms);
  const r = sampleResult(i);
  const rows = attributionRows(r);
  assert.equal(rows.length, r.shares.length);
  assert.equal(rows[0]!.measured_j, r.measured.rapl);
  // Negative and fractional unsigned values are clamped and rounded the same way on both paths.
  const odd = structuredClone(i);
  odd.vms[0]!.memoryUsedBytes = -5;
  odd.vms[0]!.blockReadBytes = 10.6;
  assert.equal(vmRows(odd)[0]!.memory_used_bytes, 0);
  assert.equal(vmRows(odd)[0]!.block_read_bytes, 11);
});

test('rows: a non-finite value is refused with the field, the VM or share, and the value', () => {
  const i = sampleInterval('hv-1', 7, T1);
  const bad = structuredClone(i);
  bad.vms[1]!.cpuSeconds = Number.NaN;
  assert.throws(() => vmRows(bad), (e: unknown) => e instanceof WattsplitError && e.code === 'STORE_INVALID_INPUT' && /host=hv-1 seq=7 vms\[1\] uuid=bbbb-hv-1: cpuSeconds=NaN is not a finite number/.test(e.message));
  const r = sampleResult(i);
  r.shares[2]!.highJoules = Number.POSITIVE_INFINITY;
  assert.throws(() => attributionRows(r), (e: unknown) => e instanceof WattsplitError && /shares\[2\] .*: highJoules=Infinity is not a finite number/.test(e.message));
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { isWattsplitError, memoryLogger } from '@wattsplit/wire';
import { NvmlGpuSource } from './nvml-gpu-source.js';
import { FIXTURES, tempDir } from './test-helpers.js';

test('NVML absent: SENSOR_UNAVAILABLE naming the library', () => {
  assert.throws(
    () => NvmlGpuSource.open({ libPath: '/nonexistent/libnvidia-ml.so.1', logger: memoryLogger() }),
    (e) => isWattsplitError(e, 'SENSOR_UNAVAILABLE') && /cannot load \/nonexistent\/libnvidia-ml\.so\.1/.test(e.message),
  );
});

test('FFI bindings against a stub library with the real NVML ABI (struct layouts, out params, lastSeenTimeStamp)', (t) => {
  const gcc = spawnSync('gcc', ['--version']);
  if (gcc.status !== 0) {
    t.skip('gcc not available to build the NVML stub');
    return;
  }
  const { dir, cleanup } = tempDir('nvml-stub');
  t.after(cleanup);
  const so = join(dir, 'libnvidia-ml.so.1');
  const r = spawnSync('gcc', ['-shared', '-fPIC', '-O1', '-o', so, join(FIXTURES, 'nvml-stub', 'nvml-stub.c')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const log = memoryLogger();
  const src = NvmlGpuSource.open({ libPath: so, logger: log });
  t.after(() => src.close());
  assert.deepEqual(src.devices().map((d) => [d.index, d.name, d.uuid, d.pciBusId, d.migProfile]), [
    [0, 'NVIDIA H100 80GB HBM3', 'GPU-stub-0', '00000000:17:00.0', ''],
    [1, 'NVIDIA H100 80GB HBM3', 'GPU-stub-1', '00000000:18:00.0', 'mig'],
  ]);
  const a = src.read();
  assert.equal(a[0]?.energyMj, 5000001000);
  assert.equal(a[1]?.energyMj, 7000001000);
  assert.equal(a[0]?.powerMw, 350000);
  assert.equal(a[1]?.memUtilPct, 41);
  assert.equal(a[0]?.smClockMhz, 1980);
  assert.equal(a[0]?.memClockMhz, 2619);
  assert.equal(a[0]?.tempC, 61);
  assert.equal(a[1]?.tempC, 0, 'NOT_SUPPORTED leaves 0');
  assert.ok(log.entries.some((e) => /nvmlDeviceGetTemperature on GPU 1 .* returned 3 \(Not Supported\)/.test(e.msg)));
  assert.deepEqual(a[0]?.processUtil, [
    { pid: 404, timeStampUs: 1700000000000001, smUtil: 90, memUtil: 30, encUtil: 0, decUtil: 0 },
    { pid: 405, timeStampUs: 1700000000000002, smUtil: 10, memUtil: 70, encUtil: 1, decUtil: 2 },
  ]);
  assert.deepEqual(a[0]?.running, [{ pid: 404, usedGpuMemoryBytes: 1073741824 }, { pid: 405, usedGpuMemoryBytes: 0 }]);
  // nvmlDeviceGetSamples(NVML_GPU_UTILIZATION_SAMPLES): nvmlSample_t layout, value type, lastSeenTimeStamp
  const util = (i: number): { timeStampUs: number; utilPct: number } => ({ timeStampUs: 1700000000100000 + 166666 * i, utilPct: (i * 37) % 101 });
  assert.deepEqual(a[0]?.utilSamples, [0, 1, 2, 3, 4, 5].map(util));
  assert.equal(a[1]?.utilSamples, undefined, 'NOT_SUPPORTED: no utilisation samples, the point read stays');
  assert.equal(a[1]?.gpuUtilPct, 97);
  assert.ok(log.entries.some((e) => /nvmlDeviceGetSamples\(GPU_UTILIZATION\) on GPU 1 .* returned 3 \(Not Supported\)/.test(e.msg)));
  const b = src.read();
  assert.equal(b[0]?.energyMj, 5000002000);
  assert.deepEqual(b[0]?.processUtil, [], 'only samples newer than the last seen timestamp');
  assert.deepEqual(b[0]?.utilSamples, [6, 7, 8, 9, 10, 11].map(util), 'only utilisation samples newer than the last seen');
  const c = src.read();
  assert.deepEqual(c[0]?.utilSamples, [], 'NOT_FOUND (none newer, the buffer ran dry): an empty list');
  assert.equal(c[1]?.utilSamples, undefined);
  assert.equal(log.entries.filter((e) => /nvmlDeviceGetSamples/.test(e.msg)).length, 1, 'NOT_SUPPORTED is said once and not asked again');
});

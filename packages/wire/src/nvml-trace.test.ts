import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { isWattsplitError, parseNvmlTrace, parseNvmlTraceGroundTruth, stripNvmlTraceGroundTruth } from './index.js';

const header = { header: true, gpu: 'NVIDIA H100 80GB HBM3', driver: '580.159.04', tenants: ['a', 'b'], pids: { '404': 'a', '405': 'b' }, seed: 3, schedule: [['idle', 1, []], ['mix', 2.0, ['a']]], sample_hz: 10 };
const sample = (t: number, e: number, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  t, phase: 'mix', active: ['a'], energy_mj: e, power_mw: 300_000, gpu_util: 50, mem_util: 10, sm_clock_mhz: 1980, mem_clock_mhz: 2619, temp_c: 50,
  proc_util: [{ pid: 404, tenant: 'a', sm: 97, mem: 30, enc: 0, dec: 0, ts: t * 1e6 - 50_000 }],
  running: [{ pid: 404, tenant: 'a', used_mem: 1_000_000 }, { pid: 405, tenant: 'b', used_mem: 2_000_000 }],
  work: { a: t * 10, b: 0 }, ...extra,
});
const text = [header, sample(100, 1000), sample(100.1, 1030)].map((o) => JSON.stringify(o)).join('\n') + '\n';

function throwsTrace(src: string, re: RegExp): void {
  assert.throws(() => parseNvmlTrace(src, 'x.jsonl'), (e) => isWattsplitError(e, 'TRACE_INVALID') && re.test(e.message));
}

test('parses header and observable fields, nothing of the ground truth', () => {
  const tr = parseNvmlTrace(text);
  assert.deepEqual(tr.header, { gpu: 'NVIDIA H100 80GB HBM3', driver: '580.159.04', tenants: ['a', 'b'], pids: { 404: 'a', 405: 'b' }, sampleHz: 10 });
  assert.equal(tr.samples.length, 2);
  const s = tr.samples[1]!;
  assert.deepEqual(s, {
    t: 100.1, energyMj: 1030, powerMw: 300_000, gpuUtil: 50, memUtil: 10, smClockMhz: 1980, memClockMhz: 2619, tempC: 50,
    procUtil: [{ pid: 404, sm: 97, mem: 30, enc: 0, dec: 0, tsUs: 100.1 * 1e6 - 50_000 }],
    running: [{ pid: 404, usedMem: 1_000_000 }, { pid: 405, usedMem: 2_000_000 }],
  });
  assert.equal(tr.header.pids[405], 'b');
  assert.ok(!('phase' in s) && !('work' in s) && !('active' in s));
  assert.ok(!('schedule' in tr.header));
});

test('ground truth parser exposes schedule, phase, active, work', () => {
  const g = parseNvmlTraceGroundTruth(text);
  assert.deepEqual(g.schedule, [['idle', 1, []], ['mix', 2, ['a']]]);
  assert.deepEqual(g.samples[0], { t: 100, phase: 'mix', active: ['a'], work: { a: 1000, b: 0 } });
});

test('stripping the ground truth leaves an identical observable parse', () => {
  const stripped = stripNvmlTraceGroundTruth(text);
  assert.ok(!stripped.includes('"work"') && !stripped.includes('"phase"') && !stripped.includes('"schedule"') && !stripped.includes('"tenant":'));
  assert.deepEqual(parseNvmlTrace(stripped), parseNvmlTrace(text));
  assert.throws(() => parseNvmlTraceGroundTruth(stripped), (e) => isWattsplitError(e, 'TRACE_INVALID') && /"schedule" is missing/.test(e.message));
});

test('malformed input names the file, line, field and value', () => {
  throwsTrace('', /x\.jsonl:1: empty trace/);
  throwsTrace(`${JSON.stringify(header)}\n{not json`, /x\.jsonl:2: not valid JSON/);
  throwsTrace(`${JSON.stringify(header)}\n[1,2]`, /x\.jsonl:2: expected a JSON object, got an array/);
  throwsTrace(`${JSON.stringify({ ...header, tenants: 'a' })}`, /x\.jsonl:1: field "tenants" must be an array, got "a"/);
  throwsTrace(`${JSON.stringify({ ...header, pids: { x: 'a' } })}`, /field "pids" has key "x" that is not a pid/);
  throwsTrace(`${JSON.stringify({ ...header, pids: { 1: 2 } })}`, /field "pids\.1" must be a tenant name, got 2/);
  throwsTrace(`${JSON.stringify({ ...header, sample_hz: 0 })}`, /field "sample_hz" must be > 0, got 0/);
  const { energy_mj: _e, ...noEnergy } = sample(1, 1);
  throwsTrace(`${JSON.stringify(header)}\n${JSON.stringify(noEnergy)}`, /x\.jsonl:2: field "energy_mj" is missing/);
  throwsTrace(`${JSON.stringify(header)}\n${JSON.stringify(sample(1, 1, { power_mw: 'high' }))}`, /field "power_mw" must be a finite number, got "high"/);
  throwsTrace(`${JSON.stringify(header)}\n${JSON.stringify(sample(1, 1, { proc_util: [{ pid: 1, sm: 'x', mem: 0, enc: 0, dec: 0, ts: 1 }] }))}`, /field "proc_util\[0\]\.sm" must be a finite number, got "x"/);
  throwsTrace(`${JSON.stringify(header)}\n${JSON.stringify(sample(1, 1, { running: [7] }))}`, /field "running\[0\]" must be an object, got 7/);
  throwsTrace(`${JSON.stringify(header)}\n${JSON.stringify(sample(2, 1))}\n${JSON.stringify(sample(1, 2))}`, /x\.jsonl:3: field "t" went backwards: 1 < 2/);
});

const real = '/work/shared/data/gpu/h100-mix-dev.jsonl';
test('the recorded H100 trace parses', { skip: existsSync(real) ? false : `${real} not present` }, () => {
  const tr = parseNvmlTrace(readFileSync(real, 'utf8'), real);
  assert.equal(tr.header.tenants.length, 4);
  assert.equal(tr.header.pids[404], 'mm_bf16_8k');
  assert.equal(tr.samples.length, 3160);
  assert.ok(tr.samples.every((s, i) => i === 0 || s.energyMj >= tr.samples[i - 1]!.energyMj));
});

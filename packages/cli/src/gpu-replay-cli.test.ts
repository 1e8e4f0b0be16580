// `wattsplit gpu-replay` as a process: the causal replay (--causal) is what the library computes, says
// what kind of number it is, and refuses an interval it cannot honour with a one-line error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gpuCausalReplay, type GpuReplayResult } from '@wattsplit/models';

const main = join(dirname(fileURLToPath(import.meta.url)), 'main.js');
const trace = '/work/shared/data/gpu/h100-mix-dev.jsonl';
const cli = (args: string[]) => spawnSync(process.execPath, [main, 'gpu-replay', ...args], { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 * 2 ** 20 });

test('wattsplit gpu-replay --causal: 1 s intervals split with what was learned before each, as the library does; the text output says so', { skip: existsSync(trace) ? false : `${trace} not present` }, () => {
  const json = cli([trace, '--causal', '--json']);
  assert.equal(json.status, 0, json.stderr);
  const got = JSON.parse(json.stdout) as GpuReplayResult;
  assert.deepEqual(got, JSON.parse(JSON.stringify(gpuCausalReplay(readFileSync(trace, 'utf8'), { source: trace }))));
  assert.ok(got.windows.length > 300 && got.windows.every((w) => w.t1 - w.t0 <= 1 + 1e-9));
  const text = cli([trace, '--causal', '--interval', '0.5']);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /\d+ intervals \(causal: each split with what was learned before it\)/);
  assert.match(text.stdout, /^mm_bf16_8k\s+\d+\s+\d+\s+[\d.]+%\s+\d+$/m);
  const inSample = cli([trace]);
  assert.match(inSample.stdout, /windows \(in-sample: one fit over the whole trace\)/);
});

test('wattsplit gpu-replay --causal --interval 3: CONFIG_INVALID naming the option, no stack', { skip: existsSync(trace) ? false : `${trace} not present` }, () => {
  const r = cli([trace, '--causal', '--interval', '3']);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /CONFIG_INVALID.*intervalS must be in \(0, 2\] seconds, got 3/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});

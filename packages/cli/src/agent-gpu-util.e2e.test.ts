// The shipped agent (`wattsplit agent --nvml-trace`) sends the device's utilisation samples since its
// previous read as their mean and count (GpuDeviceSample.gpu_util_mean_pct / gpu_util_samples), through the
// real gateway, and the collector's interval aligner turns them into the GPU interval's busy fraction that
// GpuTimeSliceMethod splits. The recorded-trace source gives each read's gpu_util as one sample.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IntervalAligner, type HostInterval } from '@wattsplit/attribution';
import { startGateway } from '@wattsplit/gateway';
import { deviceBusyFraction } from '@wattsplit/models';
import { InProcessBus, TOPICS, decodeFrame, type TelemetryFrame } from '@wattsplit/wire';

const main = join(dirname(fileURLToPath(import.meta.url)), 'main.js');

test('wattsplit agent replaying an NVML trace sends the device\'s mean utilisation per frame; the aligner hands it to the GPU method', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-agent-gpu-util-'));
  const reads = 60;
  const util = (i: number): number => (i * 37) % 101;
  const lines = [JSON.stringify({ header: true, gpu: 'NVIDIA H100 80GB HBM3', driver: '580.159.04', tenants: ['a'], pids: { 404: 'a' }, sample_hz: 10 })];
  for (let i = 0; i < reads; i++) {
    lines.push(JSON.stringify({
      t: 1795387920 + i / 10, energy_mj: 2_000_000 + i * 4_000, power_mw: 40_000, gpu_util: util(i), mem_util: 5, sm_clock_mhz: 1980, mem_clock_mhz: 2619, temp_c: 50,
      proc_util: [{ pid: 404, sm: util(i), mem: 1, enc: 0, dec: 0, ts: 1795387920000000 + i * 100000 }], running: [{ pid: 404, used_mem: 1e9 }],
    }));
  }
  const trace = join(dir, 'trace.jsonl');
  writeFileSync(trace, `${lines.join('\n')}\n`);
  writeFileSync(join(dir, 'token'), 'gpu-token\n');
  const bus = new InProcessBus({ partitions: 1 });
  const frames: TelemetryFrame[] = [];
  await bus.subscribe({ topic: TOPICS.telemetry, groupId: 'test', fromBeginning: true, handler: async (ms) => void frames.push(...ms.map((m) => decodeFrame(m.value))) });
  const gw = await startGateway({ producer: bus.producer(), auth: { mode: 'per-host', tokens: { 'hv-gpu': 'gpu-token' } } });
  const child = spawn(process.execPath, [main, 'agent', '--nvml-trace', trace, '--no-perf', '--no-libvirt', '--interval-ms', '100', '--insecure', '--gateway', gw.address,
    '--token-file', join(dir, 'token'), '--spool-dir', join(dir, 'spool'), '--host-id', 'hv-gpu', '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  t.after(async () => {
    child.kill('SIGKILL');
    await gw.close(0);
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const until = Date.now() + 20_000;
  while (frames.length < 12) {
    if (child.exitCode !== null) assert.fail(`agent exited (${child.exitCode}):\n${out.slice(-2000)}`);
    if (Date.now() > until) assert.fail(`timed out with ${frames.length} frames:\n${out.slice(-2000)}`);
    await new Promise((res) => setTimeout(res, 100));
  }
  child.kill('SIGTERM');
  assert.equal(await exited, 0, out.slice(-2000));
  frames.sort((a, b) => Number(a.seq) - Number(b.seq));
  // one trace read per agent round, in order: frame k carries read k's utilisation as a one-sample mean
  frames.forEach((f, k) => {
    const g = f.gpus[0]!;
    assert.equal(g.gpuUtilSamples, 1, `frame ${k}: ${JSON.stringify(g)}`);
    assert.equal(g.gpuUtilMeanPct, util(k), `frame ${k}`);
    assert.equal(g.gpuUtilPct, util(k), `frame ${k}: the point read is sent too`);
  });
  const al = new IntervalAligner();
  const ivs: HostInterval[] = [];
  for (const f of frames) {
    const iv = al.push(f).interval;
    if (iv) ivs.push(iv);
  }
  // the trace source replays one read per round whatever the time between rounds, so on a loaded machine two
  // rounds close together can make a GPU delta implausible (held, then spanned): check the intervals made,
  // each against the frame that closes it
  const readOf = new Map(frames.map((f, k) => [Number(f.seq), k]));
  const withGpu = ivs.filter((iv) => iv.gpus.length > 0);
  assert.ok(withGpu.length >= 5, `GPU intervals: ${withGpu.length} of ${ivs.length} from ${frames.length} frames`);
  for (const iv of withGpu) {
    const k = readOf.get(iv.seq)!;
    const g = iv.gpus[0]!;
    assert.equal(g.gpuUtilSamples, 1, `interval ${iv.prevSeq}→${iv.seq}`);
    assert.equal(g.gpuUtilMeanPct, util(k));
    assert.equal(deviceBusyFraction(g), util(k) / 100);
  }
});

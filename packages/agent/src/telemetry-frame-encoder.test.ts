import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TelemetryFrame, decodeFrame, encodeFrame, type ITelemetryFrame } from '@wattsplit/wire';
import { encodeTelemetryFrame } from './telemetry-frame-encoder.js';

const view = (bytes: Uint8Array) => TelemetryFrame.toObject(decodeFrame(bytes), { defaults: true, arrays: true });

function richFrame(vms: number): ITelemetryFrame {
  return {
    hostId: 'hv-01', hardwareClass: 'xeon-platinum-8480+x2+h100-80gb-hbm3x1', seq: 1796488041766, bootId: '6f1c2a51-58a8-4c6e-9a2f-0d6c1b2e3f40',
    monoNs: 2 ** 53 - 1, wallUnixNs: 1.796e18, intervalMs: 1000, agentVersion: '0.1.0',
    counters: [
      { id: 'intel-rapl:0', source: 1, domain: 'package-0', index: 0, value: 262143328849, unit: 1, maxRange: 262143328850, readMonoNs: 123, device: '' },
      { id: 'intel-rapl:0:0', source: 1, domain: 'core', index: -1, value: 0, unit: 1, maxRange: 1, parentId: 'intel-rapl:0', error: 'EACCES: permission denied, open /sys/class/powercap/intel-rapl:0:0/energy_uj — see CVE-2020-8694 (the udev rule or CAP_DAC_READ_SEARCH)' },
      { id: 'gpu:0000:17:00.0', source: 2, unit: 2, value: 18446744073709551615, maxRange: 18446744073709551615, device: '0000:17:00.0' },
    ],
    vms: Array.from({ length: vms }, (_, i) => ({
      uuid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, name: i % 3 ? `vm-${i}` : `vm-ünïcødé-${'x'.repeat(i)}`, tenant: i % 2 ? `t${i}` : '', vcpus: 4 + i, memoryBytes: 8 * 2 ** 30,
      state: (i % 7) as 0, cpuTimeNs: i * 1e12 + 7, vcpuTimeNs: Array.from({ length: i % 5 }, (_, k) => k * 2 ** 40 + i), memoryUsedBytes: 2 ** 33 + i,
      blockReadBytes: i, blockWriteBytes: 2 ** 52, netRxBytes: 1000 * i, netTxBytes: 0, readMonoNs: 5e15, slowReadMonoNs: i % 2 ? 5e15 - 3e9 : 0, vcpuReadMonoNs: i % 3 ? 5e15 - 2e9 : 0, startedMonoNs: i ? 4e15 : 0, hardwareClass: i % 4 ? 'm1.large' : '',
      ...(i % 2 ? { perf: { supported: i % 3 === 0, cycles: 1e13, instructions: 2e13, llcMisses: 0, llcReferences: 5 } } : {}),
      ...(i % 3 === 1 ? { gpus: [{ device: '0000:17:00.0', smUtilPct: 97.25, memUtilPct: 0, utilSamples: 6, usedMemoryBytes: 8e10, holdsContext: true, passthrough: i % 2 === 0, migInstance: '', encUtilPct: 1, decUtilPct: 0 }] } : {}),
    })),
    hostCpu: { busyNs: 4705e7, idleNs: 3.7e15, onlineCpus: 64, avgFreqMhz: 2400 },
    gpus: [{ device: '0000:17:00.0', index: 0, name: 'NVIDIA H100 80GB HBM3', powerMw: 696000, gpuUtilPct: 97, memUtilPct: 40, smClockMhz: 1980, memClockMhz: 2619, tempC: 61, contexts: 4, migProfile: '', gpuUtilMeanPct: 93.25, gpuUtilSamples: 6 }],
  };
}

test('the hand encoder decodes to exactly what protobufjs encodes, for every field, 64-bit values, UTF-8, long strings and messages, and is no longer', () => {
  for (const n of [0, 1, 7, 200]) {
    const f = richFrame(n);
    const ours = encodeTelemetryFrame(f);
    const theirs = encodeFrame(f);
    assert.deepEqual(view(ours), view(theirs), `${n} VMs`);
    assert.ok(ours.length <= theirs.length, `${ours.length} ≤ ${theirs.length}: only default scalars are left out`);
  }
  assert.deepEqual(view(encodeTelemetryFrame({})), view(encodeFrame({})));
  // an empty perf block stays present (absent = unknown, present = measured)
  const p = decodeFrame(encodeTelemetryFrame({ vms: [{ uuid: 'u', perf: { supported: false } }, { uuid: 'w' }] }));
  assert.ok(p.vms[0]?.perf, 'perf present');
  assert.equal(p.vms[1]?.perf, null);
});

test('each frame gets its own buffer (the writer is reused)', () => {
  const a = encodeTelemetryFrame(richFrame(3));
  const copy = Buffer.from(a);
  encodeTelemetryFrame(richFrame(50));
  assert.deepEqual(a, copy);
});

/**
 * Every field the .proto declares for TelemetryFrame and the messages in it, set to a value that is not its
 * default: built from proto/wattsplit/telemetry/v1/telemetry.proto itself, so a field added there and not to
 * the hand encoder fails here.
 */
function everyFieldFrame(): { frame: ITelemetryFrame; fields: string[] } {
  const proto = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'proto', 'wattsplit', 'telemetry', 'v1', 'telemetry.proto'), 'utf8');
  const messages = new Map<string, { repeated: boolean; type: string; name: string }[]>();
  for (const m of proto.matchAll(/^message (\w+) \{([\s\S]*?)^\}/gm)) {
    const fields = [];
    for (const f of (m[2] ?? '').matchAll(/^\s*(repeated )?([\w.]+) (\w+) = \d+;/gm)) fields.push({ repeated: !!f[1], type: f[2] ?? '', name: f[3] ?? '' });
    messages.set(m[1] ?? '', fields);
  }
  const enums = new Set([...proto.matchAll(/^enum (\w+)/gm)].map((e) => e[1]));
  const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
  const seen: string[] = [];
  const build = (msg: string): Record<string, unknown> => {
    const o: Record<string, unknown> = {};
    for (const f of messages.get(msg) ?? []) {
      seen.push(`${msg}.${f.name}`);
      let v: unknown;
      if (messages.has(f.type)) v = build(f.type);
      else if (enums.has(f.type)) v = 1;
      else if (f.type === 'string') v = `${f.name}-ü`;
      else if (f.type === 'bool') v = true;
      else if (f.type === 'double' || f.type === 'float') v = 12.5;
      else if (f.type === 'int32' || f.type === 'uint32') v = 77;
      else if (f.type === 'int64' || f.type === 'uint64') v = 2 ** 41 + 3;
      else throw new Error(`${msg}.${f.name}: type ${f.type} not handled by this test`);
      o[camel(f.name)] = f.repeated ? [v, v] : v;
    }
    return o;
  };
  return { frame: build('TelemetryFrame'), fields: seen };
}

test('every field the .proto declares is encoded (a field added to the .proto and not to the hand encoder fails here)', () => {
  const { frame, fields } = everyFieldFrame();
  assert.ok(fields.length > 60, `${fields.length} fields found in the .proto`);
  assert.deepEqual(view(encodeTelemetryFrame(frame)), view(encodeFrame(frame)));
  // and the values really are set (not defaults that both encoders would leave out)
  const j = JSON.stringify(TelemetryFrame.toObject(decodeFrame(encodeTelemetryFrame(frame))));
  for (const f of fields) {
    const name = f.split('.')[1] ?? '';
    assert.ok(j.includes(`"${name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())}"`), `${f} is in the decoded frame`);
  }
});

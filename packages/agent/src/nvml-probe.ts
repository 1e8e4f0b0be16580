/**
 * nvml-probe: prints what NvmlGpuSource reads, as JSON lines, 10 reads at 10 Hz.
 *   node packages/agent/dist/nvml-probe.js [--lib /path/libnvidia-ml.so.1] [--reads 10] [--hz 10]
 * Needs only a node binary and this repo's node_modules; meant for checking the FFI bindings on a GPU machine.
 */
import { memoryLogger } from '@wattsplit/wire';
import { NvmlGpuSource } from './nvml-gpu-source.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? (process.argv[i + 1] ?? dflt) : dflt;
}

const out = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
const log = memoryLogger();
const reads = Number(arg('--reads', '10'));
const hz = Number(arg('--hz', '10'));
let src: NvmlGpuSource;
try {
  src = NvmlGpuSource.open({ libPath: arg('--lib', 'libnvidia-ml.so.1'), logger: log });
} catch (e) {
  out({ ok: false, error: (e as Error).message });
  process.exit(2);
}
out({ ok: true, devices: src.devices() });
for (let i = 0; i < reads; i++) {
  const t0 = process.hrtime.bigint();
  const r = src.read();
  const us = Number(process.hrtime.bigint() - t0) / 1000;
  out({ read: i, readUs: Math.round(us), gpus: r });
  await new Promise((res) => setTimeout(res, 1000 / hz));
}
out({ log: log.entries });
src.close();

/**
 * Gateway ingest throughput: real gRPC on loopback, gateway and agents' clients in one process, the
 * embedded InProcessBus behind it (or a producer that takes `--produce-ms` per send, to see
 * back-pressure hold memory). Prints one JSON line.
 *
 *   node packages/gateway/dist/ingest-benchmark.js [--hosts 16] [--batches 200] [--frames 10] [--vms 20] [--window 4] [--produce-ms 0]
 *
 * `--gateway-cpu`: the gateway's own CPU per VM-sample. The agents' clients run in a child process that
 * encodes every batch (agent-like frames: 36-character uuids, names, tenants, perf counters, read and start
 * times) before the timed part; this process runs only the gateway (gRPC server, decode, checks, history)
 * and a producer that takes every message and keeps none. Prints one JSON line with `gatewayCpuUsPerVmSample`
 * (this process's user + system CPU, GC threads included, over the timed part / VM-samples accepted).
 * `--gateway-dist DIR` runs another build's gateway (DIR/index.js) under the same clients, for A/B.
 *
 *   node packages/gateway/dist/ingest-benchmark.js --gateway-cpu [--hosts 16] [--batches 100] [--frames 10] [--vms 50] [--window 4] [--gateway-dist DIR]
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { InProcessBus, encodeBatch, VmState, type BusMessageIn, type BusProducer, type IFrameBatch, type IVmSample, type TransportResult } from '@wattsplit/wire';
import { startGateway } from './gateway-server.js';
import { frame, openStream } from './test-helpers.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

function str(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** VMs as the agent reports them (benchmarks/fleet.mjs's simulated agents, plus perf counters and read/start times). */
function agentVms(host: number, n: number, seq: number): IVmSample[] {
  return Array.from({ length: n }, (_, v) => {
    const cores = 0.2 + (v % 5) * 0.3;
    return {
      uuid: `${String(host).padStart(8, '0')}-${String(v).padStart(4, '0')}-4000-8000-000000000000`,
      name: `instance-${host}-${v}`,
      tenant: `tenant-${v % 10}`,
      vcpus: 4,
      memoryBytes: 8 * 2 ** 30,
      state: VmState.VM_STATE_RUNNING,
      cpuTimeNs: Math.round(seq * cores * 1e9),
      vcpuTimeNs: [Math.round(seq * cores * 0.25e9), Math.round(seq * cores * 0.25e9), Math.round(seq * cores * 0.25e9), Math.round(seq * cores * 0.25e9)],
      memoryUsedBytes: 4 * 2 ** 30,
      blockReadBytes: seq * 1e6,
      blockWriteBytes: seq * 5e5,
      netRxBytes: seq * 2e6,
      netTxBytes: seq * 1e6,
      perf: { supported: true, cycles: seq * 2e9, instructions: seq * 3e9, llcMisses: seq * 1e6, llcReferences: seq * 1e7 },
      readMonoNs: (1000 + seq) * 1e9 + 5e5,
      startedMonoNs: 1e9,
      hardwareClass: 'm5.xlarge',
    };
  });
}

if (process.argv.includes('--gateway-cpu')) {
  await gatewayCpu();
  process.exit(0);
}
if (process.argv.includes('--clients')) {
  await clients();
  process.exit(0);
}

/** The child of --gateway-cpu: encodes every batch, says 'ready', sends them on 'go', says 'done'. */
async function clients(): Promise<void> {
  const address = str('address')!;
  const [hosts, batches, framesPerBatch, vmsPerFrame, window] = ['hosts', 'batches', 'frames', 'vms', 'window'].map((k) => arg(k, 0)) as [number, number, number, number, number];
  const encoded = Array.from({ length: hosts }, (_, h) => {
    let seq = 0;
    return Array.from({ length: batches }, (_, b) =>
      Buffer.from(encodeBatch({ batchId: b + 1, frames: Array.from({ length: framesPerBatch }, () => (seq++, frame(`hv-${h}`, seq, { monoNs: (1000 + seq) * 1e9, vms: agentVms(h, vmsPerFrame, seq) }))) })),
    );
  });
  const bytes = encoded.reduce((a, hs) => a + hs.reduce((b, x) => b + x.length, 0), 0);
  await new Promise<void>((resolve) => {
    process.once('message', () => resolve());
    process.send!({ ready: true, bytes });
  });
  await Promise.all(
    encoded.map(async (hostBatches) => {
      const s = openStream(address);
      const inflight: Promise<unknown>[] = [];
      for (const b of hostBatches) {
        inflight.push(s.send(b));
        if (inflight.length >= window) await inflight.shift();
      }
      await Promise.all(inflight);
      await s.end();
    }),
  );
  await new Promise<void>((resolve) => process.send!({ done: true }, () => resolve()));
}

async function gatewayCpu(): Promise<void> {
  const hosts = arg('hosts', 16);
  const batches = arg('batches', 100);
  const framesPerBatch = arg('frames', 10);
  const vmsPerFrame = arg('vms', 50);
  const window = arg('window', 4);
  const dist = str('gateway-dist');
  const start = dist ? ((await import(`${dist.replace(/\/$/, '')}/index.js`)) as { startGateway: typeof startGateway }).startGateway : startGateway;
  let produced = 0;
  const producer: BusProducer = {
    send: (_topic: string, messages: readonly BusMessageIn[]): Promise<TransportResult> => {
      produced += messages.length;
      return Promise.resolve({ kind: 'ok' });
    },
    close: () => Promise.resolve(),
  };
  const gw = await start({ producer });
  const child = fork(fileURLToPath(import.meta.url), ['--clients', '--address', gw.address, ...Object.entries({ hosts, batches, frames: framesPerBatch, vms: vmsPerFrame, window }).flatMap(([k, v]) => [`--${k}`, String(v)])], { stdio: 'inherit', execArgv: [] });
  const messages: { ready?: boolean; bytes?: number; done?: boolean }[] = [];
  const waiters: (() => void)[] = [];
  child.on('message', (m: { ready?: boolean; done?: boolean }) => {
    messages.push(m);
    for (const w of waiters.splice(0)) w();
  });
  const next = async (): Promise<{ ready?: boolean; bytes?: number; done?: boolean }> => {
    while (!messages.length) await new Promise<void>((r) => waiters.push(r));
    return messages.shift()!;
  };
  const ready = await next();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  child.send({ go: true });
  await next();
  const cpu = process.cpuUsage(cpu0);
  const elapsedS = (performance.now() - t0) / 1000;
  const st = gw.stats();
  await gw.close(500);
  const vmSamples = st.framesAccepted * vmsPerFrame;
  process.stdout.write(
    JSON.stringify({
      mode: 'gateway-cpu',
      gateway: dist ?? 'this build',
      hosts,
      batches,
      framesPerBatch,
      vmsPerFrame,
      window,
      frames: st.framesAccepted,
      produced,
      batchBytes: ready.bytes,
      elapsedS: Math.round(elapsedS * 1000) / 1000,
      gatewayCpuS: Math.round((cpu.user + cpu.system) / 1e3) / 1e3,
      gatewayCpuUsPerVmSample: Math.round(((cpu.user + cpu.system) / vmSamples) * 1000) / 1000,
      gatewayUserUsPerVmSample: Math.round((cpu.user / vmSamples) * 1000) / 1000,
      framesPerS: Math.round(st.framesAccepted / elapsedS),
    }) + '\n',
  );
}

const hosts = arg('hosts', 16);
const batches = arg('batches', 200);
const framesPerBatch = arg('frames', 10);
const vmsPerFrame = arg('vms', 20);
const window = arg('window', 4);
const produceMs = arg('produce-ms', 0);

const bus = new InProcessBus();
const inner = bus.producer();
const producer: BusProducer = {
  send: async (topic: string, messages: readonly BusMessageIn[]): Promise<TransportResult> => {
    if (produceMs > 0) await new Promise((r) => setTimeout(r, produceMs));
    return inner.send(topic, messages);
  },
  close: () => Promise.resolve(),
};
const gw = await startGateway({ producer });
const vms = Array.from({ length: vmsPerFrame }, (_, i) => ({ uuid: `vm-${i}`, name: `vm-${i}`, tenant: `t${i % 4}`, vcpus: 4, memoryBytes: 8 << 30, cpuTimeNs: 1e9 * i, vcpuTimeNs: [1, 2, 3, 4], memoryUsedBytes: 1 << 30, netRxBytes: 1e6, netTxBytes: 1e6 }));
let peakRss = 0;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 20);

const t0 = performance.now();
await Promise.all(
  Array.from({ length: hosts }, async (_, h) => {
    const host = `hv-${h}`;
    const s = openStream(gw.address);
    let seq = 0;
    const inflight: Promise<unknown>[] = [];
    for (let b = 0; b < batches; b++) {
      const batch: IFrameBatch = { batchId: b + 1, frames: Array.from({ length: framesPerBatch }, () => frame(host, ++seq, { vms })) };
      inflight.push(s.send(batch));
      if (inflight.length >= window) await inflight.shift();
    }
    await Promise.all(inflight);
    await s.end();
  }),
);
const elapsedS = (performance.now() - t0) / 1000;
clearInterval(sampler);
const st = gw.stats();
const h = st.produceLatency;
const quantile = (q: number): number | null => {
  const target = q * h.count;
  const bounds = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
  for (let i = 0; i < bounds.length; i++) if ((h.buckets[i] ?? 0) >= target) return bounds[i]!;
  return null;
};
await gw.close(500);
process.stdout.write(
  JSON.stringify({
    hosts,
    batches,
    framesPerBatch,
    vmsPerFrame,
    window,
    produceMs,
    frames: st.framesAccepted,
    elapsedS: Math.round(elapsedS * 1000) / 1000,
    framesPerS: Math.round(st.framesAccepted / elapsedS),
    batchesPerS: Math.round(st.acks.ok / elapsedS),
    receivedMBperS: Math.round((st.bytesReceived / elapsedS / 1e6) * 10) / 10,
    produceLatencyP50LeS: quantile(0.5),
    produceLatencyP99LeS: quantile(0.99),
    peakRssMiB: Math.round(peakRss / 2 ** 20),
    streamPauses: st.streamPauses,
    acksRetry: st.acks.retry,
  }) + '\n',
);

/**
 * Gateway ingest throughput: real gRPC on loopback, gateway and agents' clients in one process, the
 * embedded InProcessBus behind it (or a producer that takes `--produce-ms` per send, to see
 * back-pressure hold memory). Prints one JSON line.
 *
 *   node packages/gateway/dist/ingest-benchmark.js [--hosts 16] [--batches 200] [--frames 10] [--vms 20] [--window 4] [--produce-ms 0]
 */
import { InProcessBus, type BusMessageIn, type BusProducer, type IFrameBatch, type TransportResult } from '@wattsplit/wire';
import { startGateway } from './gateway-server.js';
import { frame, openStream } from './test-helpers.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
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

#!/usr/bin/env node
// The Kafka hop alone, kafkajs vs @platformatic/kafka in the same run: real 50-VM telemetry frames
// (encoded TelemetryFrame, ~5 KB), keyed by host, through a wattsplit Bus (idempotent producer, acks=-1,
// lz4 by default) to a consumer group whose handler only counts (commit after handler, as the collector does).
//
//   node benchmarks/fleet-bus.mjs [--clients kafkajs,platformatic] [--rate 1000] [--seconds 15]
//        [--burst 20000] [--vms 50] [--brokers 127.0.0.1:9092] [--compression lz4]
//
// Two phases per client:
//   paced  --rate frames/s (1 000 = 1 000 hosts at 1 Hz) for --seconds: end-to-end latency p50/p99
//          (send → handler), lag at the end, RSS;
//   burst  --burst frames as fast as the producer takes them (batches of 25 frames, 8 in flight):
//          produce and consume throughput, i.e. how many hosts one gateway/collector pair could carry.
// Without --brokers it starts its own broker (scripts/kafka.sh start bench-bus) and stops it after.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { cpus, totalmem } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const imp = (p) => import(pathToFileURL(join(root, p)).href);
const wire = await imp('packages/wire/dist/index.js');
const kafkaPkg = await imp('packages/kafka/dist/index.js');

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] ? argv[i + 1] : dflt;
};
const clients = opt('clients', 'kafkajs,platformatic').split(',');
const rate = Number(opt('rate', '1000'));
const seconds = Number(opt('seconds', '15'));
const burst = Number(opt('burst', '20000'));
const vms = Number(opt('vms', '50'));
const compression = opt('compression', 'lz4');
const say = (m) => process.stderr.write(`fleet-bus: ${m}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let brokers = opt('brokers', '');
const own = !brokers;
const script = (args) => execFileSync('bash', [join(root, 'scripts/kafka.sh'), ...args], { encoding: 'utf8', timeout: 120_000 }).trim().split('\n').pop();
if (own) brokers = script(['start', 'bench-bus']);

const { encodeFrame, EnergySource, EnergyUnit, VmState } = wire;
function frame(host, seq) {
  return encodeFrame({
    hostId: host,
    hardwareClass: 'bench-xeon',
    seq,
    bootId: 'b1',
    monoNs: (1000 + seq) * 1e9,
    wallUnixNs: Date.now() * 1e6,
    intervalMs: 1000,
    counters: [
      { id: 'intel-rapl:0', source: EnergySource.ENERGY_SOURCE_RAPL, domain: 'package', index: 0, value: seq * 250e6, unit: EnergyUnit.ENERGY_UNIT_MICROJOULE, maxRange: 262_143_328_850 },
      { id: 'intel-rapl:1', source: EnergySource.ENERGY_SOURCE_RAPL, domain: 'package', index: 1, value: seq * 240e6, unit: EnergyUnit.ENERGY_UNIT_MICROJOULE, maxRange: 262_143_328_850 },
      { id: 'bmc', source: EnergySource.ENERGY_SOURCE_BMC, domain: 'chassis', index: -1, value: seq * 450, unit: EnergyUnit.ENERGY_UNIT_JOULE, maxRange: 0 },
    ],
    vms: Array.from({ length: vms }, (_, v) => ({
      uuid: `${host}-vm-${v}-0000-0000-000000000000`,
      name: `instance-${v}`,
      tenant: `tenant-${v % 10}`,
      vcpus: 4,
      memoryBytes: 8 * 2 ** 30,
      state: VmState.VM_STATE_RUNNING,
      cpuTimeNs: seq * (0.2 + (v % 5) * 0.3) * 1e9,
      vcpuTimeNs: [seq * 1e8, seq * 1e8, seq * 1e8, seq * 1e8],
      memoryUsedBytes: 4 * 2 ** 30,
      blockReadBytes: seq * 1e6,
      blockWriteBytes: seq * 5e5,
      netRxBytes: seq * 2e6,
      netTxBytes: seq * 1e6,
    })),
    hostCpu: { busyNs: seq * 20e9, idleNs: seq * 108e9, onlineCpus: 128, avgFreqMhz: 2400 },
  });
}
const pct = (xs, p) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] : NaN);

async function run(kind) {
  const Impl = kind === 'kafkajs' ? kafkaPkg.KafkaBus : kafkaPkg.PlatformaticKafkaBus;
  const bus = new Impl({ brokers: [brokers], partitions: 8, compression, maxBatch: 500, partitionsConcurrently: 8 });
  const topic = `bench.${kind}.${randomUUID().slice(0, 6)}`;
  await bus.ensureTopic(topic, 8);
  const p = bus.producer();
  let received = 0;
  let lat = [];
  const sub = await bus.subscribe({
    topic,
    groupId: 'bench',
    handler: async (msgs) => {
      const now = performance.timeOrigin + performance.now();
      for (const m of msgs) lat.push(now - Number(m.headers.sent));
      received += msgs.length;
    },
  });
  await sleep(2000);
  const hosts = Math.max(rate, 1000);
  const payloads = Array.from({ length: 64 }, (_, i) => frame(`hv-${i}`, 1));
  const size = payloads[0].length;
  const out = { client: kind, frameBytes: size };

  // paced: every 100 ms, rate/10 frames in batches of 25 (one batch per gateway stream)
  let seq = 0;
  let failedSends = 0;
  const mem0 = process.memoryUsage().rss;
  const t0 = performance.now();
  const ticks = seconds * 10;
  for (let k = 0; k < ticks; k++) {
    const due = t0 + k * 100;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const n = Math.round(rate / 10);
    const sends = [];
    for (let b = 0; b < n; b += 25) {
      const msgs = [];
      for (let i = b; i < Math.min(n, b + 25); i++) {
        const h = seq++ % hosts;
        msgs.push({ key: `hv-${h}`, value: payloads[h % payloads.length], headers: { sent: String(performance.timeOrigin + performance.now()) } });
      }
      sends.push(p.send(topic, msgs).then((r) => void (r.kind === 'ok' || failedSends++)));
    }
    void Promise.all(sends);
  }
  await sleep(1500);
  out.pacedRate = rate;
  out.pacedLagEnd = seq - received;
  const steady = lat.slice(Math.floor(lat.length / 5));
  out.pacedP50 = Math.round(pct(steady, 50));
  out.pacedP99 = Math.round(pct(steady, 99));
  out.pacedRssMiB = Math.round(process.memoryUsage().rss / 2 ** 20);
  out.rssGrowthMiB = Math.round((process.memoryUsage().rss - mem0) / 2 ** 20);
  out.failedSends = failedSends;
  const deadline = Date.now() + 60_000;
  while (received < seq && Date.now() < deadline) await sleep(100);

  // burst: closed loop, 8 sends of 25 frames in flight
  lat = [];
  const r0 = received;
  const tb = performance.now();
  let sent = 0;
  let acked = 0;
  const worker = async () => {
    while (sent < burst) {
      const msgs = [];
      for (let i = 0; i < 25 && sent < burst; i++, sent++) {
        const h = sent % hosts;
        msgs.push({ key: `hv-${h}`, value: payloads[h % payloads.length], headers: { sent: String(performance.timeOrigin + performance.now()) } });
      }
      const r = await p.send(topic, msgs);
      if (r.kind === 'ok') acked += msgs.length;
      else failedSends++;
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  const prodS = (performance.now() - tb) / 1000;
  while (received - r0 < acked && Date.now() < deadline + 120_000) await sleep(50);
  const consS = (performance.now() - tb) / 1000;
  out.burstProducePerS = Math.round(acked / prodS);
  out.burstEndToEndPerS = Math.round((received - r0) / consS);
  out.burstMBps = +(((received - r0) * size) / consS / 2 ** 20).toFixed(1);
  await sub.stop();
  await p.close();
  await bus.deleteTopic(topic).catch(() => undefined);
  await bus.close();
  say(JSON.stringify(out));
  return out;
}

const rows = [];
try {
  for (const c of clients) rows.push(await run(c));
} finally {
  if (own) script(['stop', 'bench-bus']);
}
const lines = [
  `machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, Kafka 3.9.1 (1 broker, KRaft, same machine)`,
  `date: ${new Date().toISOString()}`,
  `command: node benchmarks/fleet-bus.mjs ${argv.join(' ')}`.trim(),
  '',
  `| client | frame bytes | paced frames/s | paced p50 ms | paced p99 ms | lag after paced | RSS MiB | burst produce frames/s | burst end-to-end frames/s | burst MB/s |`,
  '|---|---|---|---|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.client} | ${r.frameBytes} | ${r.pacedRate} | ${r.pacedP50} | ${r.pacedP99} | ${r.pacedLagEnd} | ${r.pacedRssMiB} | ${r.burstProducePerS} | ${r.burstEndToEndPerS} | ${r.burstMBps} |`),
];
const a = rows.find((r) => r.client === 'kafkajs');
const b = rows.find((r) => r.client === 'platformatic');
if (a && b) lines.push('', `ratio platformatic / kafkajs: burst end-to-end ${(b.burstEndToEndPerS / a.burstEndToEndPerS).toFixed(2)}, burst produce ${(b.burstProducePerS / a.burstProducePerS).toFixed(2)}, paced p99 ${(b.pacedP99 / a.pacedP99).toFixed(2)}`);
console.log(lines.join('\n'));
process.exit(0);

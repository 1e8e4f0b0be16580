#!/usr/bin/env node
// Fleet-mode sustained throughput: simulated hosts (50 VMs each, 1 frame/s) → gRPC gateway → Kafka →
// collector (NestJS, attribution) → ClickHouse server, with both Kafka clients in the same run.
//
//   node benchmarks/fleet.mjs [--clients kafkajs,platformatic] [--steps 50,100,200,400,800]
//        [--step-seconds 15] [--warmup-seconds 15] [--vms 50] [--brokers 127.0.0.1:9092] [--clickhouse http://127.0.0.1:8123]
//
// Without --brokers / --clickhouse it starts its own broker (scripts/kafka.sh start bench) and
// ClickHouse server (scripts/clickhouse-server.sh start bench) and stops them at the end.
// Everything except the servers runs in this one process (agents, gateway, collector), on purpose:
// it is the single-box number. Per step it reports: frames/s accepted by the gateway, intervals/s
// stored, consumer lag at the end of the step, end-to-end latency (frame wall time → attribution
// published on wattsplit.attribution.v1, which happens after the store write) p50/p99, RSS and heap.
// A step is "sustained" when the lag at its end is < 2 s of frames and p99 < 5 s; the ramp stops at
// the first step that is not. Prints a markdown table (docs/fleet.md keeps the results).
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { cpus, totalmem } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { setInterval, clearInterval } from 'node:timers';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const imp = (p) => import(pathToFileURL(join(root, p)).href);
const wire = await imp('packages/wire/dist/index.js');
const kafkaPkg = await imp('packages/kafka/dist/index.js');
const { startGateway } = await imp('packages/gateway/dist/index.js');
const { GrpcIngestClient } = await imp('packages/agent/dist/index.js');
const { ClickHouseServerStore } = await imp('packages/store/dist/index.js');
const { createCollectorApp } = await imp('packages/collector/dist/index.js');

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] ? argv[i + 1] : dflt;
};
const clients = opt('clients', 'kafkajs,platformatic').split(',');
const steps = opt('steps', '50,100,200,400,800').split(',').map(Number);
const stepSeconds = Number(opt('step-seconds', '15'));
const warmupSeconds = Number(opt('warmup-seconds', '15'));
const vmsPerHost = Number(opt('vms', '50'));
const hostsPerStream = 25;
const say = (m) => process.stderr.write(`fleet-bench: ${m}\n`);

function script(name, args) {
  return execFileSync('bash', [join(root, 'scripts', name), ...args], { encoding: 'utf8', timeout: 120_000 }).trim().split('\n').pop();
}

let brokers = opt('brokers', '');
let chUrl = opt('clickhouse', '');
const ownBroker = !brokers;
const ownCh = !chUrl;
if (ownBroker) brokers = script('kafka.sh', ['start', 'bench']);
if (ownCh) chUrl = script('clickhouse-server.sh', ['start', 'bench']);
const chVersion = await (await globalThis.fetch(`${chUrl}/?query=SELECT%20version()`)).text();

const { EnergySource, EnergyUnit, VmState, AttributionBatch, TOPICS, silentLogger } = wire;

function hostFrame(h, seq, wallNs) {
  const vms = h.vms.map((vm) => ({
    uuid: vm.uuid,
    name: vm.uuid,
    tenant: vm.tenant,
    vcpus: 4,
    memoryBytes: 8 * 2 ** 30,
    state: VmState.VM_STATE_RUNNING,
    cpuTimeNs: Math.round(seq * vm.cores * 1e9),
    vcpuTimeNs: [Math.round(seq * vm.cores * 0.5e9), Math.round(seq * vm.cores * 0.5e9)],
    memoryUsedBytes: 4 * 2 ** 30,
    blockReadBytes: seq * 1e6,
    blockWriteBytes: seq * 5e5,
    netRxBytes: seq * 2e6,
    netTxBytes: seq * 1e6,
  }));
  return {
    hostId: h.id,
    hardwareClass: 'bench-xeon',
    seq,
    bootId: h.boot,
    monoNs: Math.round((1000 + seq) * 1e9),
    wallUnixNs: wallNs,
    intervalMs: 1000,
    counters: [
      { id: 'intel-rapl:0', source: EnergySource.ENERGY_SOURCE_RAPL, domain: 'package', index: 0, value: Math.round(seq * 250 * 1e6), unit: EnergyUnit.ENERGY_UNIT_MICROJOULE, maxRange: 262_143_328_850 },
      { id: 'bmc', source: EnergySource.ENERGY_SOURCE_BMC, domain: 'chassis', index: -1, value: Math.round(seq * 450), unit: EnergyUnit.ENERGY_UNIT_JOULE, maxRange: 0 },
    ],
    vms,
    hostCpu: { busyNs: Math.round(seq * h.busy * 1e9), idleNs: Math.round(seq * (128 - h.busy) * 1e9), onlineCpus: 128, avgFreqMhz: 2400 },
  };
}

function makeHosts(prefix, n) {
  return Array.from({ length: n }, (_, i) => {
    const vms = Array.from({ length: vmsPerHost }, (_, v) => ({ uuid: `${prefix}-${i}-vm${v}`, tenant: `t${v % 10}`, cores: 0.2 + (v % 5) * 0.3 }));
    return { id: `${prefix}-hv-${i}`, boot: 'b1', vms, busy: vms.reduce((a, v) => a + v.cores, 0) + 1, seq: 0 };
  });
}

const pct = (xs, p) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

async function runClient(kind) {
  const ns = `bench-${kind}-${randomUUID().slice(0, 6)}`;
  const database = `bench_${ns.replace(/-/g, '_')}`;
  const Impl = kind === 'kafkajs' ? kafkaPkg.KafkaBus : kafkaPkg.PlatformaticKafkaBus;
  const inner = new Impl({ brokers: [brokers], partitions: 8, maxBatch: 500, partitionsConcurrently: 8 });
  const nsBus = new kafkaPkg.NamespacedBus(inner, ns);
  // Times the collector's handler calls (batch size, duration) to tell bus from store/attribution time.
  const handlerStats = { calls: 0, messages: 0, ms: 0 };
  const bus = {
    producer: () => nsBus.producer(),
    close: () => nsBus.close(),
    topic: (t) => nsBus.topic(t),
    subscribe: (o) =>
      nsBus.subscribe(
        o.groupId !== 'bench'
          ? o
          : {
              ...o,
              handler: async (msgs, part) => {
                const t = performance.now();
                try {
                  await o.handler(msgs, part);
                } finally {
                  handlerStats.calls++;
                  handlerStats.messages += msgs.length;
                  handlerStats.ms += performance.now() - t;
                }
              },
            },
      ),
  };
  const store = new ClickHouseServerStore({ url: chUrl, database, requestTimeoutMs: 30_000 });
  const collector = await createCollectorApp({ bus, store, groupId: 'bench', policy: 'reserved', staticPower: { fallbackWatts: { rapl: 80, gpu: 0, bmc_rest: 120 }, learn: false } });
  const producer = bus.producer();
  const gateway = await startGateway({ producer, port: 0, host: '127.0.0.1', maxInFlightBatches: 4096 });
  let latencies = [];
  let published = 0;
  const latSub = await bus.subscribe({
    topic: TOPICS.attribution,
    groupId: 'bench-latency',
    fromBeginning: false,
    handler: async (msgs) => {
      const now = Date.now();
      for (const m of msgs) {
        const b = AttributionBatch.decode(m.value);
        latencies.push(now - Number(b.t1UnixNs) / 1e6);
        published++;
      }
    },
  });
  const rows = [];
  const hostsAll = makeHosts(ns, Math.max(...steps));
  const streams = [];
  for (let s = 0; s < Math.ceil(hostsAll.length / hostsPerStream); s++) streams.push({ client: new GrpcIngestClient({ address: gateway.address, tls: false, logger: silentLogger }), busy: false, batchId: 0, dropped: 0 });
  for (const n of steps) {
    const hosts = hostsAll.slice(0, n);
    const active = streams.slice(0, Math.ceil(n / hostsPerStream));
    let framesAcked = 0;
    let skippedTicks = 0;
    const tick = () => {
      const wall = Date.now() * 1e6;
      active.forEach((st, si) => {
        if (st.busy) {
          skippedTicks++; // the previous batch of this stream is not acked yet: the agent would spool
          return;
        }
        const mine = hosts.slice(si * hostsPerStream, (si + 1) * hostsPerStream);
        const frames = mine.map((h) => hostFrame(h, ++h.seq, wall));
        st.busy = true;
        void st.client.send({ batchId: ++st.batchId, frames }).then((r) => {
          st.busy = false;
          if (r.kind === 'ok') framesAcked += frames.length;
          else {
            for (const h of mine) h.seq--; // resend the same seqs next tick
            if (process.env.BENCH_DEBUG) say(`send: ${r.kind} ${r.error?.message ?? ""}`);
          }
        });
      });
    };
    tick();
    const timer = setInterval(tick, 1000);
    // Warm-up (not measured): new hosts' first frames cost the collector a checkpoint lookup each.
    await new Promise((r) => setTimeout(r, warmupSeconds * 1000));
    latencies = [];
    framesAcked = 0;
    skippedTicks = 0;
    const cpu0 = process.cpuUsage();
    Object.assign(handlerStats, { calls: 0, messages: 0, ms: 0 });
    const t0 = performance.now();
    const stored0 = published;
    await new Promise((r) => setTimeout(r, stepSeconds * 1000));
    clearInterval(timer);
    const wallS = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const lag = await inner.lag(bus.topic(TOPICS.telemetry), 'bench');
    const lat = latencies;
    const mem = process.memoryUsage();
    const row = {
      client: kind,
      hosts: n,
      vmSamplesPerS: Math.round((framesAcked * vmsPerHost) / wallS),
      framesPerS: Math.round(framesAcked / wallS),
      intervalsPerS: Math.round((published - stored0) / wallS),
      lagEnd: lag,
      p50: Math.round(pct(lat, 50)),
      p99: Math.round(pct(lat, 99)),
      rssMiB: Math.round(mem.rss / 2 ** 20),
      heapMiB: Math.round(mem.heapUsed / 2 ** 20),
      cpuPct: Math.round(((cpu.user + cpu.system) / 1e6 / wallS) * 100),
      skippedTicks,
      handlerCalls: handlerStats.calls,
      meanBatch: +(handlerStats.messages / Math.max(1, handlerStats.calls)).toFixed(1),
      meanHandlerMs: Math.round(handlerStats.ms / Math.max(1, handlerStats.calls)),
    };
    row.sustained = row.lagEnd < 2 * n && row.p99 < 5000 && skippedTicks <= n / hostsPerStream;
    rows.push(row);
    say(JSON.stringify(row));
    // let the backlog drain (bounded) before the next step so steps do not pollute each other
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && (await inner.lag(bus.topic(TOPICS.telemetry), 'bench')) > 0) await new Promise((r) => setTimeout(r, 500));
    if (!row.sustained) break;
  }
  await Promise.all(streams.map((s) => s.client.close()));
  await latSub.stop();
  await gateway.close(1000);
  await producer.close();
  await collector.close();
  await store.query(`DROP DATABASE IF EXISTS ${database}`).catch(() => undefined);
  await store.close();
  for (const t of [TOPICS.telemetry, TOPICS.attribution, TOPICS.deadLetter]) await inner.deleteTopic(bus.topic(t)).catch(() => undefined);
  await bus.close();
  return rows;
}

const all = [];
try {
  for (const c of clients) {
    say(`client ${c}: steps ${steps.join(', ')} hosts × ${vmsPerHost} VMs, ${stepSeconds} s each`);
    all.push(...(await runClient(c)));
  }
} finally {
  if (ownBroker) script('kafka.sh', ['stop', 'bench']);
  if (ownCh) script('clickhouse-server.sh', ['stop', 'bench']);
}

const best = (c) => Math.max(0, ...all.filter((r) => r.client === c && r.sustained).map((r) => r.hosts));
const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, Kafka 3.9.1 (1 broker, KRaft), ClickHouse ${chVersion.trim()}`;
const lines = [
  `machine: ${machine}`,
  `date: ${new Date().toISOString()}`,
  `command: node benchmarks/fleet.mjs ${argv.join(' ')}`.trim(),
  '',
  '| client | hosts | VM-samples/s | frames/s | intervals/s stored | lag at end | e2e p50 ms | e2e p99 ms | RSS MiB | heap MiB | CPU % | collector batch | handler ms | sustained |',
  '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ...all.map((r) => `| ${r.client} | ${r.hosts} | ${r.vmSamplesPerS} | ${r.framesPerS} | ${r.intervalsPerS} | ${r.lagEnd} | ${r.p50} | ${r.p99} | ${r.rssMiB} | ${r.heapMiB} | ${r.cpuPct} | ${r.meanBatch} | ${r.meanHandlerMs} | ${r.sustained ? 'yes' : 'no'} |`),
  '',
  ...clients.map((c) => `${c}: sustained up to ${best(c)} hosts`),
];
if (clients.includes('kafkajs') && clients.includes('platformatic') && best('kafkajs') > 0) lines.push(`ratio platformatic / kafkajs (hosts sustained): ${(best('platformatic') / best('kafkajs')).toFixed(2)}`);
console.log(lines.join('\n'));
process.exit(0);

#!/usr/bin/env node
// What Kafka batch compression costs per VM-sample, per codec, on the fleet's own messages (issue 15):
// the telemetry frames (compressed by the gateway's producer, decompressed by the collector's consumer and
// by the broker, which reads a compressed batch to validate it) and the attribution batches (compressed by
// the collector's producer). Codecs as the clients run them:
//   gzip-sync   zlib.gzipSync / gunzipSync on the calling thread (@platformatic/kafka)
//   gzip-async  zlib.gzip / unzip on libuv's pool (kafkajs's built-in codec)
//   lz4         @platformatic/wasm-utils's LZ4 frame on the calling thread (@platformatic/kafka, and kafkajs
//               through packages/kafka/src/kafkajs-lz4.ts)
// Messages are grouped into record batches of BATCH messages (one producer batch per partition, as a
// produce call of a few hundred messages over 8 partitions makes), each batch compressed as one buffer.
// CPU time is the process's (user + system, every thread: the async codec's pool work included), per
// VM-sample; each repetition runs every codec once, the order rotating; medians over REPS, and each
// codec's ratio to gzip-sync per repetition (the same moment of a noisy box), median.
//
//   node benchmarks/compression.mjs      env: HOSTS (8) VMS (50) SECONDS (60) BATCH (25) REPS (9)
import { gzipSync, gunzipSync, gzip, unzip } from 'node:zlib';
import { promisify } from 'node:util';
import { performance } from 'node:perf_hooks';
import { loadavg, cpus } from 'node:os';
import { encodeFrame, silentLogger } from '@wattsplit/wire';
import { Agent, SHIPPED_SCHEDULE } from '@wattsplit/agent';
import { IntervalAligner, CpuShareMethod } from '@wattsplit/attribution';
import { encodeAttributionBatch } from '@wattsplit/collector';
import { kafkajsLz4Codec } from '@wattsplit/kafka';
import { createFleet } from '@wattsplit/simulator';

const HOSTS = Number(process.env.HOSTS ?? 8);
const VMS = Number(process.env.VMS ?? 50);
const SECONDS = Number(process.env.SECONDS ?? 60);
const BATCH = Number(process.env.BATCH ?? 25);
const REPS = Number(process.env.REPS ?? 9);

const fleet = createFleet({ hosts: HOSTS, vmsPerHost: VMS, seed: 7, events: 'none', noise: true, startUnixMs: Date.now() - SECONDS * 1000 });
const agents = fleet.hosts.map((h) => new Agent({ hostId: h.hostId, hardwareClass: h.hardwareClass, fs: h.fs, domains: h.domains, gpus: h.gpus, perf: h.perf, bmc: h.bmc, processOwners: h.processOwners, clock: h.clock, logger: silentLogger, bootId: 'bench', ...SHIPPED_SCHEDULE }));
const frames = [];
const telemetry = [];
for (let t = 0; t <= SECONDS; t++) {
  if (t > 0) fleet.step(1);
  for (const a of agents) {
    const f = await a.sampleOnce();
    frames.push(f);
    telemetry.push(Buffer.from(encodeFrame(f)));
  }
}
// The attribution topic's messages: one per host interval with both methods' records (the collector
// publishes cpu_share and additive_model; the second is cpu_share's result under the other name here,
// the same number of records and bytes).
const aligner = new IntervalAligner();
const method = new CpuShareMethod();
const ctx = { policy: 'reserved', staticPower: { watts: { rapl: 100, gpu: 70, bmc_rest: 60 }, origin: 'configured' } };
const attribution = [];
let vmSamples = 0;
for (const f of frames) {
  const r = aligner.push(f);
  if (!r.interval) continue;
  vmSamples += r.interval.vms.length;
  const res = method.attribute(r.interval, ctx);
  attribution.push(Buffer.from(encodeAttributionBatch([res, { ...res, method: 'additive_model' }])));
}
const frameVmSamples = frames.reduce((n, f) => n + f.vms.length, 0);

/** Record batches: BATCH messages each, with Kafka's per-record framing approximated by a 16-byte gap. */
function batches(msgs) {
  const out = [];
  for (let i = 0; i < msgs.length; i += BATCH) {
    const part = msgs.slice(i, i + BATCH);
    const buf = Buffer.alloc(part.reduce((n, m) => n + m.length + 16, 0));
    let o = 0;
    for (const m of part) {
      buf.writeUInt32BE(m.length, o);
      o += 16;
      m.copy(buf, o);
      o += m.length;
    }
    out.push(buf);
  }
  return out;
}
const topics = { telemetry: { batches: batches(telemetry), vmSamples: frameVmSamples }, attribution: { batches: batches(attribution), vmSamples } };

const gz = promisify(gzip);
const gunz = promisify(unzip);
const codecs = {
  'gzip-sync': { c: async (b) => gzipSync(b), d: async (b) => gunzipSync(b) },
  'gzip-async': { c: (b) => gz(b), d: (b) => gunz(b) },
  lz4: { c: (b) => kafkajsLz4Codec.compress({ buffer: b }), d: (b) => kafkajsLz4Codec.decompress(b) },
};

function cpuUs() {
  const u = process.cpuUsage();
  return u.user + u.system;
}
async function timeIt(fn, list) {
  const c0 = cpuUs();
  const w0 = performance.now();
  const out = [];
  for (const b of list) out.push(await fn(b));
  return { cpuUs: cpuUs() - c0, wallMs: performance.now() - w0, out };
}

const names = Object.keys(codecs);
const res = {}; // topic → codec → { c: [], d: [], ratio }
for (const t of Object.keys(topics)) {
  res[t] = {};
  for (const n of names) res[t][n] = { c: [], d: [], bytesIn: 0, bytesOut: 0 };
}
// warm-up (JIT, the WASM instance's buffers)
for (const t of Object.keys(topics)) for (const n of names) await timeIt(codecs[n].c, topics[t].batches.slice(0, 20));

for (let rep = 0; rep < REPS; rep++) {
  for (let k = 0; k < names.length; k++) {
    const n = names[(k + rep) % names.length];
    for (const [t, { batches: list, vmSamples: vs }] of Object.entries(topics)) {
      const c = await timeIt(codecs[n].c, list);
      const d = await timeIt(codecs[n].d, c.out);
      for (let i = 0; i < list.length; i++) if (!d.out[i].equals(list[i])) throw new Error(`${n} did not round-trip batch ${i} of ${t}`);
      res[t][n].c.push(c.cpuUs / vs);
      res[t][n].d.push(d.cpuUs / vs);
      res[t][n].bytesIn = list.reduce((s, b) => s + b.length, 0) / vs;
      res[t][n].bytesOut = c.out.reduce((s, b) => s + b.length, 0) / vs;
    }
  }
}
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const f2 = (x) => x.toFixed(2);
console.log(`# compression, ${HOSTS} hosts × ${VMS} VMs × ${SECONDS} s, ${BATCH} messages per batch, ${REPS} reps; ${cpus()[0]?.model ?? '?'} × ${cpus().length}, Node ${process.version}, load ${loadavg().map((x) => x.toFixed(1)).join(' ')}, ${new Date().toISOString()}`);
console.log('| topic | codec | bytes per VM-sample in → out | compress µs per VM-sample (median) | decompress µs | compress + decompress | vs gzip-sync (median of per-rep ratios) |');
console.log('|---|---|---|---:|---:|---:|---:|');
for (const t of Object.keys(topics)) {
  for (const n of names) {
    const r = res[t][n];
    const g = res[t]['gzip-sync'];
    const ratios = r.c.map((c, i) => (c + r.d[i]) / (g.c[i] + g.d[i]));
    console.log(`| ${t} | ${n} | ${f2(r.bytesIn)} → ${f2(r.bytesOut)} | ${f2(median(r.c))} | ${f2(median(r.d))} | ${f2(median(r.c) + median(r.d))} | ${f2(median(ratios))}× |`);
  }
}

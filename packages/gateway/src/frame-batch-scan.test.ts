/**
 * Differential fuzz test of wire's scanFrameBatch (the gateway's one-pass view of a batch) against the full
 * path it stands in for: protobufjs's decodeBatch + validateFrame + lastFrameOf + frameByteRanges, on
 * thousands of random valid batches and on mutated ones (truncation, bit flips, wrong wire types, overlong
 * varints, unknown fields, repeated and missing fields, out-of-range values). Two properties:
 * 1. whenever the scan returns a view, the full path decodes the bytes, finds every frame valid, and gives
 *    the same values (header, counters, VMs, frame bytes); the scan takes every unmutated valid batch;
 * 2. the gateway's pipeline fed through deserializeBatch (scan, else full decode) answers every batch as the
 *    pipeline fed through the full decode alone: same acks (statuses, rejections with code and message),
 *    same produced messages (bytes and headers, anomaly headers included), same metrics and log lines.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  EnergySource,
  EnergyUnit,
  decodeBatch,
  encodeBatch,
  memoryLogger,
  scanFrameBatch,
  validateFrame,
  type BusMessageIn,
  type BusProducer,
  type IEnergyCounter,
  type ITelemetryFrame,
  type IVmSample,
  type TransportResult,
} from '@wattsplit/wire';
import { lastFrameOf } from './host-history.js';
import { IngestPipeline } from './ingest-pipeline.js';
import { newGatewayMetrics } from './metrics.js';
import { decodeBatchItem, deserializeBatch, frameByteRanges, type IncomingItem } from './safe-ingest-service.js';

/** mulberry32: a seeded PRNG, so a failure names a case that can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rand = ReturnType<typeof rng>;
const int = (r: Rand, n: number): number => Math.floor(r() * n);
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[int(r, xs.length)]!;
const chance = (r: Rand, p: number): boolean => r() < p;

const HOSTS = ['hv-1', 'hv-2', 'rack7.hv-03', 'a:b_c-d'];
const UUIDS = Array.from({ length: 12 }, (_, i) => `${String(i).padStart(8, '0')}-0000-4000-8000-00000000abcd`);
const COUNTER_IDS = ['intel-rapl:0', 'intel-rapl:1', 'intel-rapl:0:0', 'gpu:0000:17:00.0', 'bmc'];

/** Per-host state so frames look like an agent's: seqs and counters move on, now and then back or repeated. */
interface HostSim {
  seq: number;
  boot: string;
  counters: Map<string, number>;
  cpu: Map<string, number>;
}

function randomFrame(r: Rand, host: string, sim: HostSim): ITelemetryFrame {
  if (chance(r, 0.03)) sim.boot = `boot-${int(r, 1000)}`;
  const seq = chance(r, 0.08) ? Math.max(1, sim.seq - int(r, 3)) : ++sim.seq; // resends and older frames too
  const counters: IEnergyCounter[] = [];
  const ids = COUNTER_IDS.filter(() => chance(r, 0.6));
  if (chance(r, 0.3)) ids.reverse();
  for (const id of ids) {
    const range = id.startsWith('intel') ? 262_143_328_850 : 0;
    const prev = sim.counters.get(id) ?? int(r, 1e9);
    const next = chance(r, 0.05) ? Math.max(0, prev - int(r, 1e6)) : chance(r, 0.03) && range ? int(r, 1e6) : prev + int(r, 1e8);
    sim.counters.set(id, next);
    const c: IEnergyCounter = {
      id,
      source: id === 'bmc' ? EnergySource.ENERGY_SOURCE_BMC : id.startsWith('gpu') ? EnergySource.ENERGY_SOURCE_GPU : EnergySource.ENERGY_SOURCE_RAPL,
      domain: pick(r, ['package', 'core', 'dram', 'chassis', 'gpu']),
      index: pick(r, [-1, 0, 1, 7]),
      value: next,
      unit: pick(r, [EnergyUnit.ENERGY_UNIT_MICROJOULE, EnergyUnit.ENERGY_UNIT_MILLIJOULE, EnergyUnit.ENERGY_UNIT_JOULE]),
      maxRange: range,
    };
    if (chance(r, 0.3)) c.parentId = 'intel-rapl:0';
    if (chance(r, 0.3)) c.readMonoNs = 1e12 + int(r, 1e9);
    if (chance(r, 0.2)) c.device = '0000:17:00.0';
    if (chance(r, 0.08)) c.error = 'EIO reading energy_uj';
    counters.push(c);
  }
  const vms: IVmSample[] = [];
  for (const uuid of UUIDS.filter(() => chance(r, 0.4))) {
    const prev = sim.cpu.get(uuid) ?? int(r, 1e12);
    const cpu = chance(r, 0.05) ? Math.max(0, prev - int(r, 1e9)) : prev + int(r, 4e9);
    sim.cpu.set(uuid, cpu);
    const vm: IVmSample = { uuid, cpuTimeNs: cpu, startedMonoNs: chance(r, 0.05) ? int(r, 1e12) : 1e9 };
    if (chance(r, 0.8)) Object.assign(vm, { name: `instance-${uuid.slice(0, 8)}`, tenant: pick(r, ['', 'acme', 'globex', 'ünïcode-tenant']), vcpus: 1 + int(r, 64), memoryBytes: int(r, 2 ** 40), state: int(r, 7) });
    if (chance(r, 0.7)) vm.vcpuTimeNs = Array.from({ length: int(r, 5) }, () => int(r, 2 ** 45));
    if (chance(r, 0.7)) Object.assign(vm, { memoryUsedBytes: int(r, 2 ** 36), blockReadBytes: int(r, 2 ** 50), blockWriteBytes: int(r, 2 ** 40), netRxBytes: int(r, 2 ** 40), netTxBytes: int(r, 2 ** 40) });
    if (chance(r, 0.5)) vm.perf = { supported: chance(r, 0.8), cycles: int(r, 2 ** 52), instructions: int(r, 2 ** 52), llcMisses: int(r, 2 ** 40), llcReferences: int(r, 2 ** 44) };
    if (chance(r, 0.15)) vm.gpus = [{ device: '0000:17:00.0', smUtilPct: r() * 100, memUtilPct: r() * 100, utilSamples: int(r, 10), usedMemoryBytes: int(r, 2 ** 36), holdsContext: chance(r, 0.5), passthrough: chance(r, 0.5), migInstance: chance(r, 0.3) ? '1g.10gb' : '', encUtilPct: int(r, 100), decUtilPct: int(r, 100) }];
    if (chance(r, 0.6)) Object.assign(vm, { readMonoNs: 1e12 + int(r, 1e9), hardwareClass: 'm5.xlarge', slowReadMonoNs: chance(r, 0.3) ? 1e12 : 0, vcpuReadMonoNs: chance(r, 0.3) ? 1e12 : 0 });
    vms.push(vm);
  }
  const f: ITelemetryFrame = {
    hostId: host,
    hardwareClass: 'xeon-8480+h100x8',
    seq,
    bootId: sim.boot,
    monoNs: 1e12 + seq * 1e9,
    wallUnixNs: 1_763_900_000_000_000_000 + seq * 1e9,
    intervalMs: 1000,
    counters,
    vms,
  };
  if (chance(r, 0.5)) f.hostCpu = { busyNs: int(r, 2 ** 50), idleNs: int(r, 2 ** 50), onlineCpus: 128, avgFreqMhz: int(r, 4000) };
  if (chance(r, 0.15)) f.gpus = [{ device: '0000:17:00.0', index: 0, name: 'NVIDIA H100 80GB HBM3', powerMw: int(r, 700_000), gpuUtilPct: int(r, 100), memUtilPct: int(r, 100), smClockMhz: 1980, memClockMhz: 2619, tempC: 40 + int(r, 40), contexts: int(r, 4), migProfile: '', gpuUtilMeanPct: r() * 100, gpuUtilSamples: int(r, 6) }];
  if (chance(r, 0.3)) f.agentVersion = '0.1.0';
  return f;
}

/** One value at or past an edge of what validateFrame takes, in place (the frame may stay valid: 128 chars, seq 2^53 - 1). */
function nearTheEdge(r: Rand, f: ITelemetryFrame): void {
  const counters = f.counters ?? [];
  const vms = f.vms ?? [];
  switch (int(r, 8)) {
    case 0:
      f.hostId = pick(r, ['', '-hv', '.hv', ':hv', '_hv', 'hv 1', 'hv/1', 'h'.repeat(128), 'h'.repeat(129), 'hv-ü', 'A', '9', 'hv-1\n']);
      return;
    case 1:
      f.seq = pick(r, [0, 2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2]);
      return;
    case 2:
      f.monoNs = 0;
      return;
    case 3:
      f.wallUnixNs = pick(r, [0, -1, -(2 ** 40)]);
      return;
    case 4:
      if (counters.length) Object.assign(pick(r, counters), pick(r, [{ unit: 0 }, { source: 0 }, { id: '' }, { unit: -1 }, { source: 99 }]));
      return;
    case 5:
      if (counters.length > 1) counters[1]!.id = counters[0]!.id ?? '';
      return;
    case 6:
      if (vms.length) pick(r, vms).uuid = pick(r, ['', vms[0]!.uuid ?? '', 'vm-ü', 'x']);
      return;
    default:
      f.bootId = pick(r, ['', 'bööt', 'b'.repeat(300)]);
  }
}

// ---- A field-level view of encoded bytes, for mutations that keep the rest of the message well-formed ----

/** Which fields hold nested messages, per message type (telemetry.proto). */
const NESTED: Record<string, Record<number, string>> = {
  batch: { 2: 'frame' },
  frame: { 8: 'counter', 9: 'vm', 10: 'hostCpu', 11: 'gpu' },
  vm: { 14: 'perf', 15: 'gpuActivity' },
};

interface Field {
  no: number;
  wt: number;
  /** wt 0: the value; wt 1/5: the raw bytes; wt 2: the bytes or the nested fields. */
  varint?: bigint;
  raw?: Uint8Array;
  children?: Field[];
  /** Extra bytes to pad the key / the varint / the length with (overlong varints). */
  padKey?: number;
  padValue?: number;
}

function readVarint(buf: Uint8Array, p: { i: number }): bigint {
  let v = 0n;
  let shift = 0n;
  for (;;) {
    if (p.i >= buf.length) throw new RangeError('truncated');
    const b = buf[p.i++]!;
    v |= BigInt(b & 127) << shift;
    if (b < 128) return v;
    shift += 7n;
  }
}

/** Parses well-formed protobuf (as encodeBatch writes it) into fields, nested messages too. */
function parse(buf: Uint8Array, type: string): Field[] {
  const out: Field[] = [];
  const p = { i: 0 };
  while (p.i < buf.length) {
    const key = Number(readVarint(buf, p));
    const f: Field = { no: key >>> 3, wt: key & 7 };
    if (f.wt === 0) f.varint = readVarint(buf, p);
    else if (f.wt === 1 || f.wt === 5) {
      const n = f.wt === 1 ? 8 : 4;
      f.raw = buf.slice(p.i, p.i + n);
      p.i += n;
    } else if (f.wt === 2) {
      const n = Number(readVarint(buf, p));
      const bytes = buf.slice(p.i, p.i + n);
      p.i += n;
      const sub = NESTED[type]?.[f.no];
      if (sub) f.children = parse(bytes, sub);
      else f.raw = bytes;
    } else throw new Error(`unexpected wire type ${f.wt}`);
    out.push(f);
  }
  return out;
}

function writeVarint(out: number[], v: bigint, pad = 0): void {
  const bytes: number[] = [];
  do {
    bytes.push(Number(v & 127n));
    v >>= 7n;
  } while (v > 0n);
  for (let k = 0; k < pad; k++) bytes.push(0); // overlong: continuation then zero groups
  for (let k = 0; k < bytes.length - 1; k++) bytes[k]! |= 128;
  out.push(...bytes);
}

function serialize(fields: Field[]): number[] {
  const out: number[] = [];
  for (const f of fields) {
    writeVarint(out, BigInt(((f.no << 3) | f.wt) >>> 0), f.padKey ?? 0);
    if (f.varint !== undefined) writeVarint(out, f.varint, f.padValue ?? 0);
    else {
      const body = f.children ? serialize(f.children) : [...(f.raw ?? [])];
      if (f.wt === 2 || (f.wt !== 1 && f.wt !== 5)) writeVarint(out, BigInt(body.length), f.padValue ?? 0);
      out.push(...body);
    }
  }
  return out;
}

/** Every message (field list) in the tree, with its type. */
function messages(fields: Field[], type: string, acc: { fields: Field[]; type: string }[] = []): { fields: Field[]; type: string }[] {
  acc.push({ fields, type });
  for (const f of fields) if (f.children) messages(f.children, NESTED[type]![f.no]!, acc);
  return acc;
}

const U64_EDGES = [0n, 1n, 127n, 128n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 64n - 2n ** 31n];

/** One field-level mutation of the tree, in place. Returns its name. */
function mutateField(r: Rand, tree: Field[]): string {
  const all = messages(tree, 'batch');
  const m = pick(r, all);
  const kind = int(r, 11);
  if (!m.fields.length && kind !== 3) return 'none';
  const i = int(r, Math.max(1, m.fields.length));
  const f = m.fields[i];
  switch (kind) {
    case 0:
      m.fields.splice(i, 1);
      return `drop ${m.type}.${f?.no}`;
    case 1:
      m.fields.splice(i + int(r, m.fields.length - i + 1), 0, structuredClone(f!));
      return `repeat ${m.type}.${f?.no}`;
    case 2: {
      // a wrong wire type: the key says one thing, the bytes after it are the old encoding
      const wt = pick(r, [0, 1, 2, 3, 4, 5, 6, 7].filter((w) => w !== f!.wt));
      if (f!.children) f!.raw = Uint8Array.from(serialize(f!.children));
      delete f!.children;
      f!.wt = wt;
      return `wire type ${m.type}.${f!.no} -> ${wt}`;
    }
    case 3: {
      const no = pick(r, [0, 13, 21, 99, 1000, 536870911]);
      const wt = pick(r, [0, 0, 1, 2, 2, 5, 3]);
      const uf: Field = { no, wt };
      if (wt === 0) uf.varint = pick(r, U64_EDGES);
      else if (wt === 1) uf.raw = new Uint8Array(8).fill(7);
      else if (wt === 5) uf.raw = new Uint8Array(4).fill(9);
      else if (wt === 2) uf.raw = Uint8Array.from(Array.from({ length: int(r, 20) }, () => int(r, 256)));
      else uf.raw = new Uint8Array(0); // a group start with nothing after it
      m.fields.splice(int(r, m.fields.length + 1), 0, uf);
      return `unknown ${m.type}.${no} wt ${wt}`;
    }
    case 4:
      f!.padKey = 1 + int(r, 10);
      return `overlong key ${m.type}.${f!.no} +${f!.padKey}`;
    case 5:
      if (f!.wt === 1 || f!.wt === 5) return 'none';
      f!.padValue = 1 + int(r, 10);
      return `overlong value/length ${m.type}.${f!.no} +${f!.padValue}`;
    case 6:
      if (f!.varint === undefined) return 'none';
      f!.varint = pick(r, U64_EDGES);
      return `value ${m.type}.${f!.no} = ${f!.varint}`;
    case 7: {
      if (!f!.raw || f!.wt !== 2) return 'none';
      const s = pick(r, ['', 'x'.repeat(129), 'hv 1', '-hv', 'hv-ü', 'hv.1:2_3-4', '\u00ff', 'intel-rapl:0', UUIDS[0]!]);
      f!.raw = pick(r, [Buffer.from(s, 'utf8'), Buffer.from(s, 'latin1'), Uint8Array.from([0xff, 0xfe]), Uint8Array.from([0xc3])]);
      return `string ${m.type}.${f!.no} = ${JSON.stringify(s)}`;
    }
    case 8:
      // a negative int32 (10 bytes) or a 64-bit value where 32 bits are declared
      if (f!.varint === undefined) return 'none';
      f!.varint = pick(r, [2n ** 64n - 1n, 2n ** 64n - 5n, 2n ** 32n + 3n, 2n ** 35n]);
      return `wide value ${m.type}.${f!.no} = ${f!.varint}`;
    case 9: {
      // swap two fields (order does not matter to protobuf, except among repeated ones)
      const j = int(r, m.fields.length);
      [m.fields[i], m.fields[j]] = [m.fields[j]!, m.fields[i]!];
      return `swap ${m.type} ${i} ${j}`;
    }
    default:
      // the packed vcpu_time_ns unpacked, or a nested message emptied
      if (m.type === 'vm' && f!.no === 8 && f!.raw) {
        const p = { i: 0 };
        const vals: bigint[] = [];
        while (p.i < f!.raw.length) vals.push(readVarint(f!.raw, p));
        m.fields.splice(i, 1, ...vals.map((v) => ({ no: 8, wt: 0, varint: v })));
        return 'unpacked vcpu_time_ns';
      }
      if (f!.children) f!.children = [];
      return `empty ${m.type}.${f!.no}`;
  }
}

function mutateBytes(r: Rand, b: Buffer): [Buffer, string] {
  switch (int(r, 4)) {
    case 0: {
      const n = int(r, b.length);
      return [b.subarray(0, n), `truncate at ${n}`];
    }
    case 1: {
      const c = Buffer.from(b);
      const k = 1 + int(r, 3);
      for (let j = 0; j < k; j++) c[int(r, c.length)]! ^= 1 << int(r, 8);
      return [c, `flip ${k} bits`];
    }
    case 2: {
      const at = int(r, b.length + 1);
      return [Buffer.concat([b.subarray(0, at), Buffer.from([int(r, 256)]), b.subarray(at)]), `insert a byte at ${at}`];
    }
    default: {
      const at = int(r, b.length);
      return [Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]), `delete byte ${at}`];
    }
  }
}

/** The full path's reading of the bytes, in the scan's terms, or why it refused them. */
function reference(buf: Buffer): { ok: false; why: string } | { ok: true; batchId: number; token: string; frames: ITelemetryFrame[]; allValid: boolean } {
  try {
    const b = decodeBatch(buf);
    return { ok: true, batchId: b.batchId, token: b.token, frames: b.frames, allValid: b.frames.every((f) => validateFrame(f).length === 0) };
  } catch (e) {
    return { ok: false, why: (e as Error).message };
  }
}

function checkView(buf: Buffer, label: string): 'scanned' | 'declined' {
  const view = scanFrameBatch(buf);
  if (!view) return 'declined';
  const ref = reference(buf);
  assert.ok(ref.ok, `${label}: the scan took bytes the full decoder refuses (${ref.ok ? '' : ref.why})`);
  assert.ok(ref.allValid, `${label}: the scan took a batch with a frame validateFrame refuses`);
  assert.equal(view.batchId, ref.batchId, `${label}: batch_id`);
  assert.equal(view.token, ref.token, `${label}: token`);
  assert.equal(view.frames.length, ref.frames.length, `${label}: frame count`);
  const ranges = frameByteRanges(buf);
  assert.ok(ranges && ranges.length === view.frames.length, `${label}: frame ranges`);
  view.frames.forEach((v, i) => {
    const f = ref.frames[i]!;
    const last = lastFrameOf(f);
    assert.deepEqual(
      { hostId: v.hostId, seq: v.seq, bootId: v.bootId, monoNs: v.monoNs, wallUnixNs: v.wallUnixNs },
      { hostId: f.hostId ?? '', seq: Number(f.seq), bootId: f.bootId ?? '', monoNs: Number(f.monoNs ?? 0), wallUnixNs: Number(f.wallUnixNs ?? 0) },
      `${label}: frame ${i} header`,
    );
    assert.deepEqual(
      [v.counterIds, [...v.counterValues], [...v.counterRanges], v.vmUuids, [...v.vmCpuNs], [...v.vmStartedNs]],
      [last.counterIds, [...last.counterValues], [...last.counterRanges], last.vmUuids, [...last.vmCpuNs], [...last.vmStartedNs]],
      `${label}: frame ${i} counters and VMs`,
    );
    assert.ok(Buffer.from(view.frameBytes[i]!).equals(buf.subarray(...ranges[i]!)), `${label}: frame ${i} bytes`);
  });
  return 'scanned';
}

test('scanFrameBatch takes every valid batch, and only bytes the full path decodes and validates, with the same values (4 000 random batches, 12 000 mutations)', () => {
  const r = rng(15);
  const sims = new Map(HOSTS.map((h) => [h, { seq: 0, boot: 'boot-1', counters: new Map(), cpu: new Map() }]));
  const tally = { valid: 0, invalid: 0, mutated: 0, mutatedScanned: 0, mutatedDecoded: 0 };
  for (let n = 0; n < 4000; n++) {
    const frames = Array.from({ length: 1 + int(r, 3) }, () => {
      const host = pick(r, HOSTS);
      const f = randomFrame(r, host, sims.get(host)!);
      if (chance(r, 0.15)) nearTheEdge(r, f);
      return f;
    });
    const bytes = Buffer.from(encodeBatch({ batchId: n + 1, frames, ...(chance(r, 0.1) ? { token: 'tok-1' } : {}) }));
    const valid = frames.every((f) => validateFrame(f).length === 0);
    const ascii = frames.every((f) => [...(f.counters ?? []).map((c) => c.id ?? ''), ...(f.vms ?? []).map((v) => v.uuid ?? '')].every((id) => /^[\x00-\x7f]*$/.test(id)));
    if (valid) tally.valid++;
    else tally.invalid++;
    const got = checkView(bytes, `batch ${n}`);
    if (valid && ascii) assert.equal(got, 'scanned', `batch ${n}: a valid batch was declined`);
    for (let k = 0; k < 3; k++) {
      const tree = parse(bytes, 'batch');
      const what: string[] = [];
      for (let j = 0, m = 1 + int(r, 3); j < m; j++) what.push(mutateField(r, tree));
      let buf: Buffer = Buffer.from(serialize(tree));
      if (chance(r, 0.3)) {
        const [b, w] = mutateBytes(r, buf);
        buf = b;
        what.push(w);
      }
      tally.mutated++;
      if (checkView(buf, `batch ${n} mutation ${k} (${what.join(', ')})`) === 'scanned') tally.mutatedScanned++;
      if (reference(buf).ok) tally.mutatedDecoded++;
    }
  }
  // the mutations reach both sides of the line: some still decode (and the scan takes some of those), many do not
  assert.ok(tally.mutatedScanned > 1000 && tally.mutatedDecoded - tally.mutatedScanned > 1000 && tally.mutated - tally.mutatedDecoded > 1000, JSON.stringify(tally));
});

/** A producer that records what it is sent; every send succeeds. */
class RecordingProducer implements BusProducer {
  readonly sent: { topic: string; key: string | undefined; value: string; headers: Record<string, string> | undefined }[] = [];
  send(topic: string, messages: readonly BusMessageIn[]): Promise<TransportResult> {
    for (const m of messages) this.sent.push({ topic, key: m.key, value: Buffer.from(m.value).toString('hex'), headers: m.headers });
    return Promise.resolve({ kind: 'ok' });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function gatewayUnderTest(): { pipeline: IngestPipeline; producer: RecordingProducer; log: ReturnType<typeof memoryLogger>; metrics: ReturnType<typeof newGatewayMetrics> } {
  const producer = new RecordingProducer();
  const log = memoryLogger();
  const metrics = newGatewayMetrics();
  const pipeline = new IngestPipeline({ producer, metrics, logger: log, auth: { mode: 'per-host', tokens: { 'hv-1': 'tok-1', 'hv-2': 'tok-2', 'rack7.hv-03': 'tok-3', 'a:b_c-d': 'tok-4' } }, allowedHosts: ['hv-1', 'hv-2', 'rack7.hv-03'], nowMs: () => 0 });
  return { pipeline, producer, log, metrics };
}

async function answer(g: ReturnType<typeof gatewayUnderTest>, item: IncomingItem, authorization: string | undefined): Promise<unknown> {
  if (item.kind === 'undecodable') return g.pipeline.undecodable(item.error, item.bytes);
  return g.pipeline.process({ batch: item.batch, bytes: item.bytes, frameBytes: item.frameBytes, authorization });
}

test('the pipeline answers every batch through deserializeBatch (scan, else full decode) as through the full decode alone: acks, produced bytes and headers, metrics, logs (3 000 batches, a third mutated)', async () => {
  const r = rng(1515);
  const sims = new Map(HOSTS.map((h) => [h, { seq: 0, boot: 'boot-1', counters: new Map(), cpu: new Map() }]));
  const fast = gatewayUnderTest();
  const full = gatewayUnderTest();
  let scanned = 0;
  let anomalous = 0;
  for (let n = 0; n < 3000; n++) {
    const host = pick(r, HOSTS);
    // mostly one host per batch (its token), now and then another host's frame in it
    const frames = Array.from({ length: 1 + int(r, 4) }, () => {
      const h = chance(r, 0.1) ? pick(r, HOSTS) : host;
      const f = randomFrame(r, h, sims.get(h)!);
      if (chance(r, 0.05)) nearTheEdge(r, f);
      return f;
    });
    let bytes: Buffer = Buffer.from(encodeBatch({ batchId: n + 1, frames }));
    let what = 'valid';
    if (chance(r, 0.33)) {
      const tree = parse(bytes, 'batch');
      what = mutateField(r, tree);
      bytes = Buffer.from(serialize(tree));
      if (chance(r, 0.2)) {
        const [b, w] = mutateBytes(r, bytes);
        bytes = b;
        what += `, ${w}`;
      }
    }
    const authorization = chance(r, 0.05) ? 'Bearer nope' : `Bearer tok-${HOSTS.indexOf(host) + 1}`;
    const item = deserializeBatch(bytes);
    if (item.kind === 'batch' && 'scanned' in item.batch) scanned++;
    const got = await answer(fast, item, authorization);
    const want = await answer(full, decodeBatchItem(bytes), authorization);
    assert.deepEqual(got, want, `batch ${n} (${what}): ack`);
  }
  assert.deepEqual(fast.producer.sent, full.producer.sent, 'produced messages');
  assert.deepEqual(fast.metrics, full.metrics, 'metrics');
  assert.deepEqual(fast.log.entries, full.log.entries, 'log lines');
  anomalous = fast.metrics.framesAnomalous;
  const rejected = Object.values(fast.metrics.framesRejected).reduce((a, b) => a + b, 0);
  // the run covers scanned batches, anomalies, rejections of each kind and duplicates
  assert.ok(scanned > 1500 && anomalous > 50 && rejected > 300 && fast.metrics.framesDuplicate > 50, JSON.stringify({ scanned, anomalous, rejected, duplicates: fast.metrics.framesDuplicate, byCode: fast.metrics.framesRejected }));
  for (const code of ['FRAME_DECODE_FAILED', 'FRAME_INVALID_FIELD', 'FRAME_AUTH_FAILED', 'FRAME_UNKNOWN_HOST']) assert.ok((fast.metrics.framesRejected[code] ?? 0) > 0, `no ${code} in the run: ${JSON.stringify(fast.metrics.framesRejected)}`);
});

// The collector's two output encoders, each against the path it replaced, in one run (median of 5
// rounds, interleaved, after a warm-up):
//   - AttributionBatch: wire's direct encoder (encodeAttributionBatch) vs the generated encoder over
//     toAttributionBatch's record objects; one host interval of 50 VMs × 2 sources = 100 records.
//   - RowBinary: the store's codec (generated per-shape row encoder) vs a loop with a keyed load per
//     column through the same putters (the codec's code before); 100 attribution rows.
// Both pairs are checked to give identical bytes first.
//
//   node benchmarks/encoders.mjs          (after `npm run build`)
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { AttributionBatch } from '@wattsplit/wire';
import { putterFor, rowBinaryCodec } from '../packages/store/dist/row-binary.js';
import { encodeAttributionBatch, toAttributionBatch } from '../packages/collector/dist/attribution-batch.js';

const shares = [];
for (let v = 0; v < 50; v++) {
  for (const source of ['rapl', 'bmc_rest']) {
    const id = `bench-platformatic-abc123-17-vm${v}`;
    shares.push({ kind: 'vm', vmUuid: id, vmName: id, tenant: `t${v % 10}`, source, dynamicJoules: 0.1 + v / 7, staticJoules: 1.5, lowJoules: 1, highJoules: 12 });
  }
}
const results = [{ hostId: 'bench-platformatic-abc123-hv-17', seq: 1234, t0UnixNs: 1.795e18, t1UnixNs: 1.795e18 + 1e9, method: 'cpu_share', modelVersion: '1', hardwareClass: 'bench-xeon', note: '', shares, measured: { rapl: 250, gpu: 0, bmc_rest: 200 } }];
const generated = (rs) => AttributionBatch.encode(toAttributionBatch(rs)).finish();

const types = new Map(Object.entries({ host: 'String', seq: 'UInt64', t0_ns: 'Int64', t1_ns: 'Int64', kind: 'String', vm_uuid: 'String', vm_name: 'String', tenant: 'String', source: 'String', dynamic_j: 'Float64', static_j: 'Float64', low_j: 'Float64', high_j: 'Float64', measured_j: 'Float64', method: 'String', model_version: 'String', hardware_class: 'String', note: 'String' }));
const columns = [...types.keys()];
const rows = shares.map((s) => ({ host: results[0].hostId, seq: 1234, t0_ns: 1.795e18, t1_ns: 1.795e18 + 1e9, kind: s.kind, vm_uuid: s.vmUuid, vm_name: s.vmName, tenant: s.tenant, source: s.source, dynamic_j: s.dynamicJoules, static_j: s.staticJoules, low_j: s.lowJoules, high_j: s.highJoules, measured_j: 250, method: 'cpu_share', model_version: '1', hardware_class: 'bench-xeon', note: '' }));
const codec = rowBinaryCodec('attributions', types, columns);
const puts = columns.map((c) => putterFor(types.get(c)));
/** The loop the codec ran before: a keyed load per column, through the same putters. */
function keyedLoop(rs) {
  const w = { buf: Buffer.allocUnsafe(64 * 1024), off: 0, ensure(n) { if (this.off + n > this.buf.length) { const b = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.off + n)); this.buf.copy(b, 0, 0, this.off); this.buf = b; } }, varUInt(n) { this.ensure(10); while (n >= 0x80) { this.buf[this.off++] = (n & 0x7f) | 0x80; n = Math.floor(n / 128); } this.buf[this.off++] = n; } };
  for (let r = 0; r < rs.length; r++) {
    const row = rs[r];
    for (let c = 0; c < columns.length; c++) {
      const v = row[columns[c]];
      if (v === undefined || !puts[c](w, v)) throw new Error(`row ${r} ${columns[c]}`);
    }
  }
  return w.buf.subarray(0, w.off);
}

if (Buffer.compare(Buffer.from(encodeAttributionBatch(results)), Buffer.from(generated(results))) !== 0) throw new Error('AttributionBatch encoders differ');
if (Buffer.compare(codec.encode(rows), keyedLoop(rows)) !== 0) throw new Error('RowBinary encoders differ');

const pairs = [
  ['AttributionBatch, 100 records', ['generated over record objects', () => generated(results)], ['direct (encodeAttributionBatch)', () => encodeAttributionBatch(results)]],
  ['RowBinary, 100 attribution rows', ['keyed load per column', () => keyedLoop(rows)], ['generated row encoder (rowBinaryCodec)', () => codec.encode(rows)]],
];
const N = 5000;
const timeOf = (f) => {
  const t = performance.now();
  for (let i = 0; i < N; i++) f();
  return ((performance.now() - t) * 1000) / N;
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const lines = ['| what | before µs | after µs | speed-up |', '|---|---|---|---|'];
for (const [what, [, before], [, after]] of pairs) {
  for (let i = 0; i < 2000; i++) (before(), after());
  const b = [];
  const a = [];
  for (let round = 0; round < 5; round++) {
    b.push(timeOf(before));
    a.push(timeOf(after));
  }
  lines.push(`| ${what} | ${median(b).toFixed(1)} | ${median(a).toFixed(1)} | ${(median(b) / median(a)).toFixed(2)}× |`);
}
console.log(lines.join('\n'));
console.log(`\nmedian of 5 rounds of ${N}; ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}; node ${process.version}; ${new Date().toISOString()}`);

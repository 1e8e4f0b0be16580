/**
 * TelemetryFrame → protobuf bytes, by hand: the agent encodes one frame a round, and protobufjs' Writer
 * allocates an object per field written (≈ 20 per VM), which the young generation then collects. This
 * writes into one reused buffer and copies the result out once. Decoding is protobufjs' (wire/frame-codec).
 *
 * proto/wattsplit/telemetry/v1/telemetry.proto (TelemetryFrame and the messages in it); encoding
 * (protobuf.dev/programming-guides/encoding): key = field_number << 3 | wire_type; varint (0) for integers,
 * bools and enums (a negative int32 as its 64-bit two's complement: 10 bytes), 64-bit (1) little-endian for
 * doubles, length-delimited (2) for strings (UTF-8), embedded messages and packed repeated scalars
 * (`repeated uint64 vcpu_time_ns`, packed by default in proto3). Scalars at their default (0, "", false) are
 * left out, as proto3 allows; an embedded message that is set is written even when empty (`perf` absent
 * means unknown, present means measured). 64-bit integers are JS numbers here (wire/telemetry.ts: no Long).
 * A field added to the .proto must be added here too: telemetry-frame-encoder.test.ts sets every field the
 * .proto declares and fails on any this encoder leaves out.
 */
import type { IEnergyCounter, IGpuActivity, IGpuDeviceSample, IHostCpu, IPerfCounters, ITelemetryFrame, IVmSample } from '@wattsplit/wire';

type Num = number | null | undefined;
type Str = string | null | undefined;

class FrameWriter {
  buf = Buffer.allocUnsafe(64 * 1024);
  off = 0;

  private ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    const b = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.off + n));
    this.buf.copy(b, 0, 0, this.off);
    this.buf = b;
  }

  varint(n: number): void {
    this.ensure(10);
    const b = this.buf;
    if (n < 0) {
      // int32/int64 below zero: 64-bit two's complement, 10 bytes
      let v = BigInt.asUintN(64, BigInt(Math.trunc(n)));
      while (v >= 0x80n) {
        b[this.off++] = Number(v & 0x7fn) | 0x80;
        v >>= 7n;
      }
      b[this.off++] = Number(v);
      return;
    }
    if (n < 0x80000000) {
      while (n > 0x7f) {
        b[this.off++] = (n & 0x7f) | 0x80;
        n >>>= 7;
      }
    } else {
      n = Math.floor(n) % 18446744073709551616; // uint64 wraps, as protobufjs' LongBits does
      while (n >= 0x80) {
        b[this.off++] = (n % 128) | 0x80;
        n = Math.floor(n / 128);
      }
    }
    b[this.off++] = n;
  }

  key(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  /** An integer field (uint32/uint64/int32/int64/enum), left out at 0. */
  int(field: number, v: Num): void {
    if (!v) return;
    this.key(field, 0);
    this.varint(v);
  }

  bool(field: number, v: boolean | null | undefined): void {
    if (!v) return;
    this.key(field, 0);
    this.varint(1);
  }

  double(field: number, v: Num): void {
    if (v === 0 || v === null || v === undefined) return;
    this.key(field, 1);
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.off);
    this.off += 8;
  }

  str(field: number, v: Str): void {
    if (!v) return;
    this.key(field, 2);
    const max = v.length * 3;
    this.ensure(5 + max);
    if (max < 128) {
      // one length byte: write the text after it, then the length
      const at = this.off++;
      const n = this.buf.write(v, this.off, 'utf8');
      this.buf[at] = n;
      this.off += n;
    } else {
      const n = Buffer.byteLength(v, 'utf8');
      this.varint(n);
      this.off += this.buf.write(v, this.off, 'utf8');
    }
  }

  /** An embedded message (or packed field): key, then room for the length, filled in by `end`. */
  begin(field: number): number {
    this.key(field, 2);
    this.ensure(5);
    const at = this.off;
    this.off += 1; // most messages here are < 128 bytes; `end` moves the body when not
    return at;
  }

  end(at: number): void {
    const len = this.off - at - 1;
    if (len < 0x80) {
      this.buf[at] = len;
      return;
    }
    let size = 1;
    for (let v = len; v >= 0x80; v = Math.floor(v / 128)) size++;
    this.ensure(size - 1);
    this.buf.copyWithin(at + size, at + 1, this.off); // Buffer#copy made a Uint8Array view per call
    const save = this.off + size - 1;
    this.off = at;
    this.varint(len);
    this.off = save;
  }
}

function counter(w: FrameWriter, c: IEnergyCounter): void {
  w.str(1, c.id);
  w.int(2, c.source);
  w.str(3, c.domain);
  w.int(4, c.index);
  w.int(5, c.value);
  w.int(6, c.unit);
  w.int(7, c.maxRange);
  w.str(8, c.parentId);
  w.int(9, c.readMonoNs);
  w.str(10, c.device);
  w.str(11, c.error);
}

function gpuActivity(w: FrameWriter, g: IGpuActivity): void {
  w.str(1, g.device);
  w.double(2, g.smUtilPct);
  w.double(3, g.memUtilPct);
  w.int(4, g.utilSamples);
  w.int(5, g.usedMemoryBytes);
  w.bool(6, g.holdsContext);
  w.bool(7, g.passthrough);
  w.str(8, g.migInstance);
  w.int(9, g.encUtilPct);
  w.int(10, g.decUtilPct);
}

function perf(w: FrameWriter, p: IPerfCounters): void {
  w.bool(1, p.supported);
  w.int(2, p.cycles);
  w.int(3, p.instructions);
  w.int(4, p.llcMisses);
  w.int(5, p.llcReferences);
}

function vm(w: FrameWriter, v: IVmSample): void {
  w.str(1, v.uuid);
  w.str(2, v.name);
  w.str(3, v.tenant);
  w.int(4, v.vcpus);
  w.int(5, v.memoryBytes);
  w.int(6, v.state);
  w.int(7, v.cpuTimeNs);
  const vc = v.vcpuTimeNs;
  if (vc && vc.length > 0) {
    const at = w.begin(8);
    for (let i = 0; i < vc.length; i++) w.varint(vc[i] as number); // indexed: for-of allocated an iterator result per vCPU (allocation profile, 500 VMs)
    w.end(at);
  }
  w.int(9, v.memoryUsedBytes);
  w.int(10, v.blockReadBytes);
  w.int(11, v.blockWriteBytes);
  w.int(12, v.netRxBytes);
  w.int(13, v.netTxBytes);
  if (v.perf) {
    const at = w.begin(14);
    perf(w, v.perf);
    w.end(at);
  }
  if (v.gpus) {
    for (const g of v.gpus) {
      const at = w.begin(15);
      gpuActivity(w, g);
      w.end(at);
    }
  }
  w.int(16, v.readMonoNs);
  w.int(17, v.startedMonoNs);
  w.str(18, v.hardwareClass);
  w.int(19, v.slowReadMonoNs);
  w.int(20, v.vcpuReadMonoNs);
}

function hostCpu(w: FrameWriter, h: IHostCpu): void {
  w.int(1, h.busyNs);
  w.int(2, h.idleNs);
  w.int(3, h.onlineCpus);
  w.int(4, h.avgFreqMhz);
}

function gpuDevice(w: FrameWriter, g: IGpuDeviceSample): void {
  w.str(1, g.device);
  w.int(2, g.index);
  w.str(3, g.name);
  w.int(4, g.powerMw);
  w.int(5, g.gpuUtilPct);
  w.int(6, g.memUtilPct);
  w.int(7, g.smClockMhz);
  w.int(8, g.memClockMhz);
  w.int(9, g.tempC);
  w.int(10, g.contexts);
  w.str(11, g.migProfile);
  w.double(12, g.gpuUtilMeanPct);
  w.int(13, g.gpuUtilSamples);
}

const writer = new FrameWriter();

/** The frame's protobuf bytes (a fresh buffer of exactly that length). */
export function encodeTelemetryFrame(f: ITelemetryFrame): Buffer {
  const w = writer;
  w.off = 0;
  w.str(1, f.hostId);
  w.str(2, f.hardwareClass);
  w.int(3, f.seq);
  w.str(4, f.bootId);
  w.int(5, f.monoNs);
  w.int(6, f.wallUnixNs);
  w.int(7, f.intervalMs);
  for (const c of f.counters ?? []) {
    const at = w.begin(8);
    counter(w, c);
    w.end(at);
  }
  for (const v of f.vms ?? []) {
    const at = w.begin(9);
    vm(w, v);
    w.end(at);
  }
  if (f.hostCpu) {
    const at = w.begin(10);
    hostCpu(w, f.hostCpu);
    w.end(at);
  }
  for (const g of f.gpus ?? []) {
    const at = w.begin(11);
    gpuDevice(w, g);
    w.end(at);
  }
  w.str(12, f.agentVersion);
  const out = Buffer.allocUnsafeSlow(w.off);
  w.buf.copy(out, 0, 0, w.off);
  return out;
}

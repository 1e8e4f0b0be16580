/**
 * Confluent Schema Registry wire format for Protobuf values, optional (off by default: wattsplit's
 * topics carry bare protobuf). Spec (docs.confluent.io, "Wire format"):
 *
 *   byte 0      magic byte 0
 *   bytes 1-4   schema id, big-endian int32, as registered in the Schema Registry
 *   then        message indexes (Protobuf only): the path of the message type inside the .proto file,
 *               as a zig-zag varint count followed by zig-zag varint indexes; the common case [0]
 *               (first message of the file) is written as a single 0 byte
 *   then        the serialized protobuf message
 *
 * Pure code, no wire or client dependency: it frames and unframes bytes.
 */
import { WattsplitError, type Bus, type BusProducer, type BusSubscription, type SubscribeOptions } from '@wattsplit/wire';

export interface ConfluentFrame {
  schemaId: number;
  /** Path of the message type within its .proto file; [0] = the first message. */
  messageIndexes: number[];
  payload: Uint8Array;
}

const MAGIC = 0;

function zigzag(n: number): number {
  return n >= 0 ? n * 2 : -n * 2 - 1;
}

function unzigzag(n: number): number {
  return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
}

function writeVarint(out: number[], value: number): void {
  let v = zigzag(value);
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}

function bad(where: string, why: string, bytes: Uint8Array): WattsplitError {
  return new WattsplitError('FRAME_DECODE_FAILED', `${where}: not a Confluent Schema Registry frame: ${why} (${bytes.length} bytes)`, { details: { where, bytes: bytes.length } });
}

/** Frames a serialized protobuf message with the magic byte, schema id and message indexes. */
export function encodeConfluentFrame(frame: ConfluentFrame): Uint8Array {
  const { schemaId, messageIndexes, payload } = frame;
  if (!Number.isInteger(schemaId) || schemaId < 0 || schemaId > 0x7fffffff) {
    throw new WattsplitError('CONFIG_INVALID', `schemaId=${JSON.stringify(schemaId)} must be an integer in [0, 2^31-1]`, { details: { field: 'schemaId', value: schemaId } });
  }
  for (const [i, ix] of messageIndexes.entries()) {
    if (!Number.isInteger(ix) || ix < 0 || ix > 0xffff) throw new WattsplitError('CONFIG_INVALID', `messageIndexes[${i}]=${JSON.stringify(ix)} must be an integer in [0, 65535]`, { details: { field: `messageIndexes[${i}]`, value: ix } });
  }
  const head: number[] = [MAGIC, (schemaId >>> 24) & 0xff, (schemaId >>> 16) & 0xff, (schemaId >>> 8) & 0xff, schemaId & 0xff];
  if (messageIndexes.length === 0 || (messageIndexes.length === 1 && messageIndexes[0] === 0)) head.push(0);
  else {
    writeVarint(head, messageIndexes.length);
    for (const ix of messageIndexes) writeVarint(head, ix);
  }
  const out = new Uint8Array(head.length + payload.length);
  out.set(head, 0);
  out.set(payload, head.length);
  return out;
}

/** Unframes; throws FRAME_DECODE_FAILED naming `where` (topic/partition/offset) and what is wrong. */
export function decodeConfluentFrame(bytes: Uint8Array, where = 'value'): ConfluentFrame {
  if (bytes.length < 6) throw bad(where, `shorter than the 6-byte minimum (magic, schema id, index)`, bytes);
  if (bytes[0] !== MAGIC) throw bad(where, `magic byte is ${bytes[0]}, expected 0`, bytes);
  const schemaId = ((bytes[1]! << 24) | (bytes[2]! << 16) | (bytes[3]! << 8) | bytes[4]!) >>> 0;
  if (schemaId > 0x7fffffff) throw bad(where, `schema id ${schemaId} is negative as an int32`, bytes);
  let pos = 5;
  const readVarint = (what: string): number => {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 5; i++) {
      if (pos >= bytes.length) throw bad(where, `${what} runs past the end`, bytes);
      const b = bytes[pos++]!;
      result += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return unzigzag(result);
      mul *= 0x80;
    }
    throw bad(where, `${what} is longer than 5 bytes`, bytes);
  };
  const count = readVarint('message index count');
  let messageIndexes: number[];
  if (count === 0) messageIndexes = [0];
  else {
    if (count < 0 || count > 100) throw bad(where, `message index count ${count} is out of range [0, 100]`, bytes);
    messageIndexes = [];
    for (let i = 0; i < count; i++) {
      const ix = readVarint(`message index ${i}`);
      if (ix < 0) throw bad(where, `message index ${i} is negative (${ix})`, bytes);
      messageIndexes.push(ix);
    }
  }
  return { schemaId, messageIndexes, payload: bytes.subarray(pos) };
}

export interface ConfluentFramingOptions {
  /** Schema id per topic, as registered in the Schema Registry (subject "<topic>-value"). Topics not listed pass unframed. */
  schemaIds: Readonly<Record<string, number>>;
  /** Message indexes of the value type in its .proto file; default [0] (TelemetryFrame, AttributionBatch are looked up by id). */
  messageIndexes?: Readonly<Record<string, number[]>>;
}

/**
 * A Bus decorator that writes values in the Confluent wire format on the listed topics and strips it
 * on delivery, so Schema-Registry-aware consumers (ksqlDB, Kafka Connect, Flink) can read wattsplit
 * topics while wattsplit code keeps seeing bare protobuf. A delivered value that is not framed (or
 * carries another schema id) makes the handler call reject with FRAME_DECODE_FAILED naming
 * topic/partition@offset, so it is redelivered and, in the collector, dead-lettered.
 */
export class ConfluentFramedBus implements Bus {
  constructor(
    private readonly inner: Bus,
    private readonly opts: ConfluentFramingOptions,
  ) {
    for (const [topic, id] of Object.entries(opts.schemaIds)) encodeConfluentFrame({ schemaId: id, messageIndexes: opts.messageIndexes?.[topic] ?? [0], payload: new Uint8Array() });
  }

  producer(): BusProducer {
    const p = this.inner.producer();
    return {
      send: (topic, messages) => {
        const id = this.opts.schemaIds[topic];
        if (id === undefined) return p.send(topic, messages);
        const messageIndexes = this.opts.messageIndexes?.[topic] ?? [0];
        return p.send(topic, messages.map((m) => ({ ...m, value: encodeConfluentFrame({ schemaId: id, messageIndexes, payload: m.value }) })));
      },
      close: () => p.close(),
    };
  }

  subscribe(opts: SubscribeOptions): Promise<BusSubscription> {
    const id = this.opts.schemaIds[opts.topic];
    if (id === undefined) return this.inner.subscribe(opts);
    return this.inner.subscribe({
      ...opts,
      handler: (messages, partition) =>
        opts.handler(
          messages.map((m) => {
            const where = `${m.topic}/${m.partition}@${m.offset}`;
            const f = decodeConfluentFrame(m.value, where);
            if (f.schemaId !== id) throw new WattsplitError('FRAME_DECODE_FAILED', `${where}: schema id ${f.schemaId}, expected ${id}`, { details: { where, schemaId: f.schemaId } });
            return { ...m, value: f.payload };
          }),
          partition,
        ),
    });
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * LZ4 for kafkajs. kafkajs 2.2 has gzip built in and throws "LZ4 compression not implemented" for a batch
 * compressed any other way, so a kafkajs collector could not read what a platformatic (or Java,
 * librdkafka) producer sent with lz4, nor send lz4 itself. This registers Kafka's LZ4 codec (the LZ4
 * frame format, KIP-57) in kafkajs's codec table, with the same WebAssembly LZ4 the platformatic client
 * uses (@platformatic/wasm-utils), so both clients read and write the same batches.
 *
 * Why it matters: compression is on every produce and fetch of the telemetry and attribution topics.
 * gzip costs the gateway and the collector several times the CPU of lz4 for the same messages
 * (docs/fleet.md, "Compression"), and the platformatic client runs it on the main thread.
 *
 * The registration is global to the process's kafkajs (its codec table is a module singleton) and
 * idempotent; it is done when this module loads, i.e. whenever the kafkajs bus is imported.
 */
import kafkajs from 'kafkajs';
import { lz4Compress, lz4Decompress } from '@platformatic/wasm-utils';

interface KafkajsEncoder {
  buffer: Buffer;
}

/** kafkajs's codec shape: compress gets its Encoder (the uncompressed records in `buffer`). */
export const kafkajsLz4Codec = {
  compress: (encoder: KafkajsEncoder): Promise<Buffer> => Promise.resolve(lz4Compress(encoder.buffer)),
  decompress: (buffer: Buffer): Promise<Buffer> => Promise.resolve(lz4Decompress(buffer)),
};

export function registerKafkajsLz4(): void {
  // kafkajs is CommonJS and its codec table is not a named export Node can see: reached through the default.
  kafkajs.CompressionCodecs[kafkajs.CompressionTypes.LZ4] = () => kafkajsLz4Codec;
}

registerKafkajsLz4();

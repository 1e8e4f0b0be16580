/**
 * Kafka's default key partitioner hash (org.apache.kafka.common.utils.Utils.murmur2, seed 0x9747b28c)
 * and the partition Java's DefaultPartitioner / BuiltInPartitioner picks for a keyed record:
 *   partition = toPositive(murmur2(keyBytes)) % numPartitions, toPositive(x) = x & 0x7fffffff.
 * kafkajs's DefaultPartitioner computes the same; @platformatic/kafka's default does not mask the sign
 * bit, so the platformatic bus passes this one to stay on the same partition for the same host id.
 */
const SEED = 0x9747b28c;
const M = 0x5bd1e995;
const R = 24;

/** Java-compatible murmur2 of the bytes, as a signed 32-bit integer. */
export function murmur2(data: Uint8Array): number {
  const length = data.length;
  let h = SEED ^ length;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k = (data[i4]! & 0xff) + ((data[i4 + 1]! & 0xff) << 8) + ((data[i4 + 2]! & 0xff) << 16) + ((data[i4 + 3]! & 0xff) << 24);
    k = Math.imul(k, M);
    k ^= k >>> R;
    k = Math.imul(k, M);
    h = Math.imul(h, M);
    h ^= k;
  }
  const tail = length & ~3;
  const rest = length % 4;
  if (rest === 3) h ^= (data[tail + 2]! & 0xff) << 16;
  if (rest >= 2) h ^= (data[tail + 1]! & 0xff) << 8;
  if (rest >= 1) {
    h ^= data[tail]! & 0xff;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** The partition Kafka's Java client (and kafkajs) picks for this key. */
export function kafkaPartitionForKey(key: string | Uint8Array, partitions: number): number {
  const bytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
  return (murmur2(bytes) & 0x7fffffff) % partitions;
}

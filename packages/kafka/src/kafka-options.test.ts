import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WattsplitError } from '@wattsplit/wire';
import { kafkaOptionsFromEnv, parseBrokers, validateKafkaOptions } from './kafka-options.js';

const isConfig = (re: RegExp) => (e: unknown) => e instanceof WattsplitError && e.code === 'CONFIG_INVALID' && re.test(e.message);

test('the environment gives brokers, client and tuning', () => {
  const o = kafkaOptionsFromEnv({
    WATTSPLIT_KAFKA_BROKERS: 'k1:9092, 10.0.0.2:9093',
    WATTSPLIT_KAFKA_CLIENT: 'platformatic',
    WATTSPLIT_KAFKA_PARTITIONS: '16',
    WATTSPLIT_KAFKA_COMPRESSION: 'lz4',
    WATTSPLIT_KAFKA_SSL: '1',
    WATTSPLIT_KAFKA_SASL_MECHANISM: 'scram-sha-512',
    WATTSPLIT_KAFKA_SASL_USERNAME: 'collector',
    WATTSPLIT_KAFKA_SASL_PASSWORD: 's3cret',
    WATTSPLIT_KAFKA_FETCH_MIN_BYTES: '262144',
    WATTSPLIT_KAFKA_FETCH_MAX_WAIT_MS: '300',
  });
  assert.deepEqual(o.brokers, ['k1:9092', '10.0.0.2:9093']);
  assert.equal(o.client, 'platformatic');
  assert.equal(o.partitions, 16);
  assert.equal(o.compression, 'lz4');
  assert.equal(o.ssl, true);
  assert.deepEqual(o.sasl, { mechanism: 'scram-sha-512', username: 'collector', password: 's3cret' });
  assert.equal(o.fetchMinBytes, 262_144);
  assert.equal(o.fetchMaxWaitMs, 300);
  assert.equal(kafkaOptionsFromEnv({ WATTSPLIT_KAFKA_BROKERS: 'k:1' }).fetchMinBytes, undefined); // the client's own default
  assert.equal(kafkaOptionsFromEnv({ WATTSPLIT_KAFKA_BROKERS: 'k:1' }).client, 'kafkajs');
});

test('bad environment values name the variable and the value', () => {
  assert.throws(() => kafkaOptionsFromEnv({}), isConfig(/^WATTSPLIT_KAFKA_BROKERS="" must be set/));
  assert.throws(() => kafkaOptionsFromEnv({ WATTSPLIT_KAFKA_BROKERS: 'k1' }), isConfig(/^WATTSPLIT_KAFKA_BROKERS="k1" is not host:port/));
  assert.throws(() => kafkaOptionsFromEnv({ WATTSPLIT_KAFKA_BROKERS: 'k:1', WATTSPLIT_KAFKA_CLIENT: 'rdkafka' }), isConfig(/WATTSPLIT_KAFKA_CLIENT="rdkafka" must be kafkajs or platformatic/));
  assert.throws(() => kafkaOptionsFromEnv({ WATTSPLIT_KAFKA_BROKERS: 'k:1', WATTSPLIT_KAFKA_PARTITIONS: 'eight' }), isConfig(/WATTSPLIT_KAFKA_PARTITIONS="eight" must be an integer in \[1, 10000\]/));
  assert.throws(() => kafkaOptionsFromEnv({ WATTSPLIT_KAFKA_BROKERS: 'k:1', WATTSPLIT_KAFKA_REPLICATION_FACTOR: '0' }), isConfig(/WATTSPLIT_KAFKA_REPLICATION_FACTOR="0"/));
  assert.throws(() => kafkaOptionsFromEnv({ WATTSPLIT_KAFKA_BROKERS: 'k:1', WATTSPLIT_KAFKA_COMPRESSION: 'brotli' }), isConfig(/WATTSPLIT_KAFKA_COMPRESSION="brotli" must be one of none, gzip, snappy, lz4, zstd/));
  assert.throws(() => kafkaOptionsFromEnv({ WATTSPLIT_KAFKA_BROKERS: 'k:1', WATTSPLIT_KAFKA_SSL: 'yes' }), isConfig(/WATTSPLIT_KAFKA_SSL="yes" must be 0 or 1/));
  assert.throws(() => kafkaOptionsFromEnv({ WATTSPLIT_KAFKA_BROKERS: 'k:1', WATTSPLIT_KAFKA_SASL_MECHANISM: 'plain' }), isConfig(/WATTSPLIT_KAFKA_SASL_USERNAME="" must be set/));
  assert.throws(() => kafkaOptionsFromEnv({ WATTSPLIT_KAFKA_BROKERS: 'k:1', WATTSPLIT_KAFKA_FETCH_MIN_BYTES: '0' }), isConfig(/WATTSPLIT_KAFKA_FETCH_MIN_BYTES="0" must be an integer in \[1, 67108864\]/));
  assert.throws(() => kafkaOptionsFromEnv({ WATTSPLIT_KAFKA_BROKERS: 'k:1', WATTSPLIT_KAFKA_FETCH_MAX_WAIT_MS: '1.5' }), isConfig(/WATTSPLIT_KAFKA_FETCH_MAX_WAIT_MS="1.5" must be an integer in \[1, 30000\]/));
  assert.throws(() => parseBrokers('k:99999'), isConfig(/brokers="k:99999" is not host:port/));
});

test('options given in code are checked too', () => {
  assert.throws(() => validateKafkaOptions({ brokers: [] }), isConfig(/brokers=\[\] must list/));
  assert.throws(() => validateKafkaOptions({ brokers: ['k:1'], maxBatch: 0 }), isConfig(/maxBatch=0 must be a positive integer/));
  assert.throws(() => validateKafkaOptions({ brokers: ['k:1'], compression: 'brotli' as never }), isConfig(/compression="brotli"/));
  assert.throws(() => validateKafkaOptions({ brokers: ['k:1'], fetchMinBytes: -1 }), isConfig(/fetchMinBytes=-1 must be a positive integer/));
});

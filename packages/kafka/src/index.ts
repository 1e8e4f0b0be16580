export * from './kafka-options.js';
export * from './kafka-errors.js';
export * from './kafkajs-bus.js';
export * from './murmur2.js';
export * from './platformatic-bus.js';
export * from './broker-process.js';
export * from './schema-registry-framing.js';
export * from './namespaced-bus.js';

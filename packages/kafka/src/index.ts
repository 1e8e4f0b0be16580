export * from './kafka-options.js';
export * from './kafka-errors.js';
export * from './kafkajs-bus.js';

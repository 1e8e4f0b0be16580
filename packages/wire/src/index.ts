export * from './errors.js';
export * from './logger.js';
export * from './result.js';
export * from './telemetry.js';
export * from './frame-codec.js';
export * from './bus.js';
export * from './in-process-bus.js';
export * from './platform.js';

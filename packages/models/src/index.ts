export * from './nnls.js';
export * from './gpu-signature.js';
export * from './gpu-replay.js';
export * from './gpu-trace-reference.js';

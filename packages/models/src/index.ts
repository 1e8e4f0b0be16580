export * from './nnls.js';
export * from './gpu-signature.js';
export * from './gpu-replay.js';
export * from './gpu-trace-reference.js';
export * from './gpu-time-slice-method.js';
export * from './tf-backend.js';
export * from './additive-model.js';
export * from './additive-trainer.js';

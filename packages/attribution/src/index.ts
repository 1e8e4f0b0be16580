export * from './types.js';
export * from './counter-delta.js';
export * from './interval-aligner.js';
export * from './idle-split.js';
export * from './conservation.js';
export * from './cpu-share-method.js';
export * from './static-power-learner.js';
export * from './tenant-errors.js';

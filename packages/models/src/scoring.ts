/**
 * `@wattsplit/models/scoring`: code that reads ground truth, for benchmarks and tests only. Not exported
 * from the package's main entry, so nothing on the attribution path can import it by accident.
 */
export * from './gpu-trace-reference.js';
export * from './gpu-trace-edit.js';

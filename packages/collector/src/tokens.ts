/** Nest injection tokens for the collector's interface-typed dependencies (interfaces have no runtime identity). */
export const BUS = Symbol.for('wattsplit.collector.bus');
export const STORE = Symbol.for('wattsplit.collector.store');
export const METHODS = Symbol.for('wattsplit.collector.methods');
export const LOGGER = Symbol.for('wattsplit.collector.logger');
export const COLLECTOR_CONFIG = Symbol.for('wattsplit.collector.config');
export const API_AUTH = Symbol.for('wattsplit.collector.api-auth');
export const MODEL_CATALOG = Symbol.for('wattsplit.collector.model-catalog');

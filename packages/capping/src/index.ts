export * from './cap-plan-types.js';
export * from './migration-transient-model.js';
export * from './power-timeline.js';
export * from './cap-planner.js';
export * from './naive-cap-plan.js';
export * from './attributed-power.js';
export * from './power-forecast.js';
export * from './cap-actuation.js';

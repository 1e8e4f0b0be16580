export * from './prng.js';
export * from './vm-classes.js';
export * from './mem-host-fs.js';
export * from './sim-vm.js';
export * from './sim-host.js';
export * from './fleet.js';
export * from './write-host-tree.js';

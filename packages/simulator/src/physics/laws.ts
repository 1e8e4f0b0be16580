/**
 * The pure power laws of the physics families (docs/simulator.md, "Physics families"). Everything here is a
 * function of one socket's state; `host-physics.ts` composes them per host and derives the ground truth.
 *
 *   turbo bins:  f/f_max by the number of active physical cores (a table, like a CPU's turbo-ratio
 *                limits), V = 0.6 + 0.4 f/f_max, per-core power ∝ f·V², normalised to 1 at f = 0.85 f_max
 *   SMT:         logical CPUs = 2 × physical cores; busy threads land on random CPUs, a thread whose sibling
 *                is busy too costs 0.25 of a core: two busy siblings ≈ 1.25 × one
 *   uncore:      memory-bound traffic B (GB/s) on a socket draws UNCORE_W · B^0.8 in the package
 */

/** Turbo-ratio limits: up to `cores` active physical cores the socket runs at `fr` × f_max. */
export const TURBO_BINS: readonly { cores: number; fr: number }[] = Object.freeze([
  { cores: 2, fr: 1.0 },
  { cores: 4, fr: 0.97 },
  { cores: 8, fr: 0.93 },
  { cores: 12, fr: 0.9 },
  { cores: 16, fr: 0.87 },
  { cores: 20, fr: 0.84 },
  { cores: 24, fr: 0.81 },
  { cores: 32, fr: 0.78 },
  { cores: Infinity, fr: 0.75 },
]);

/** Relative frequency of a package without turbo bins (a fixed operating point). */
export const FIXED_FR = 0.85;
/** Extra power of a thread whose SMT sibling is busy, as a fraction of a core's. */
export const SMT_SIBLING_FRACTION = 0.25;
/** Uncore (mesh, memory controller) power per (GB/s)^0.8 of memory traffic, W. */
export const UNCORE_W = 2.0;
export const UNCORE_EXPONENT = 0.8;

/** Relative frequency f/f_max with `activeCores` physical cores busy (fractional counts round up: a core is active or not). */
export function turboFr(activeCores: number): number {
  const n = Math.ceil(activeCores - 1e-9);
  for (const b of TURBO_BINS) if (n <= b.cores) return b.fr;
  return TURBO_BINS[TURBO_BINS.length - 1]!.fr;
}

/** Relative voltage at relative frequency fr. */
export function voltage(fr: number): number {
  return 0.6 + 0.4 * fr;
}

/** Per-core dynamic power multiplier at relative frequency fr (P ∝ f·V²), 1 at FIXED_FR. */
export function corePowerFactor(fr: number): number {
  const v = voltage(fr) / voltage(FIXED_FR);
  return (fr / FIXED_FR) * v * v;
}

/**
 * SMT with `threads` busy threads on a socket of `logicalCpus` (= 2 × physical cores), placed at random:
 * the chance that a busy thread's sibling is busy is p = (T − 1)/(L − 1). Returns the busy physical cores
 * (T − pairs) and the power factor relative to T independent cores (1 − (1 − 0.25) · p / 2).
 */
export function smtPacking(threads: number, logicalCpus: number): { physicalCores: number; powerFactor: number } {
  const p = logicalCpus > 1 ? Math.min(1, Math.max(0, (threads - 1) / (logicalCpus - 1))) : 0;
  const pairs = (threads * p) / 2;
  return { physicalCores: threads - pairs, powerFactor: 1 - ((1 - SMT_SIBLING_FRACTION) * p) / 2 };
}

/** Uncore power of `trafficGBs` of memory traffic on one socket, W. */
export function uncoreW(trafficGBs: number): number {
  return trafficGBs > 0 ? UNCORE_W * Math.pow(trafficGBs, UNCORE_EXPONENT) : 0;
}

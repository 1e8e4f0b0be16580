/**
 * Which physics a fleet's hosts run. 'legacy' is the simulator's original law (docs/simulator.md, "Power
 * model"); the families replace it per host, chosen by seed, so that a model cannot assume one law.
 * Nothing an agent reads names the family: the hardware class and every file stay those of the host kind.
 */
import { WattsplitError } from '@wattsplit/wire';
import type { Prng } from '../prng.js';

export const FAMILY_NAMES = Object.freeze([
  'turbo_bins',
  'smt',
  'phases',
  'memory_bound',
  'idle_spread',
  'interference',
  'bmc_power_only',
] as const);

export type FamilyName = (typeof FAMILY_NAMES)[number];

/**
 * 'legacy' (default): every host runs the original law. 'families': each host draws 2–4 families by seed.
 * A list: every host runs all the listed families (each with its own per-host parameters); [] = the
 * families' base law alone (per-VM energy per CPU-second with jitter, fixed frequency, no g(u)).
 */
export type PhysicsChoice = 'legacy' | 'families' | readonly FamilyName[];

export function isFamilyName(x: unknown): x is FamilyName {
  return typeof x === 'string' && (FAMILY_NAMES as readonly string[]).includes(x);
}

/** The families of host `hostIndex` (undefined = legacy law). Throws CONFIG_INVALID on an unknown name. */
export function familiesForHost(choice: PhysicsChoice, rng: Prng): ReadonlySet<FamilyName> | undefined {
  if (choice === 'legacy') return undefined;
  if (choice === 'families') {
    const k = rng.int(2, 4);
    const pool: FamilyName[] = [...FAMILY_NAMES];
    const out = new Set<FamilyName>();
    while (out.size < k) out.add(pool.splice(rng.int(0, pool.length - 1), 1)[0]!);
    return out;
  }
  if (!Array.isArray(choice)) {
    throw new WattsplitError('CONFIG_INVALID', `fleet physics=${JSON.stringify(choice)} must be 'legacy', 'families' or a list of ${FAMILY_NAMES.join(', ')}`, { details: { field: 'physics', value: choice } });
  }
  for (const f of choice) {
    if (!isFamilyName(f)) throw new WattsplitError('CONFIG_INVALID', `fleet physics family ${JSON.stringify(f)} is not one of ${FAMILY_NAMES.join(', ')}`, { details: { field: 'physics', value: f } });
  }
  return new Set(choice);
}

// What the issue-12 diagnostic scripts in this folder share: the models package, their flags, and a fleet
// cached by benchmarks/accuracy-filter.mjs --cache-dir DIR (fleet-SEED-WARM-BILL.json: warm and billed
// intervals, the simulator's truth, the physics), read back with the class model trained on its warm half.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const models = await import(pathToFileURL(join(root, 'packages/models/dist/index.js')).href);

const argv = process.argv.slice(2);
/** The value after flag `k` on the command line, or `d`. */
export const arg = (k, d) => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : d);

const cacheDir = arg('--cache-dir', undefined);
if (!cacheDir) throw new Error('--cache-dir DIR: a cache written by benchmarks/accuracy-filter.mjs --cache-dir DIR');

/** The cached fleet of `seed` with `len` s of warm-up and `len` s billed, and the additive model trained on its warm half. */
export async function loadFleet(seed, len) {
  const data = JSON.parse(readFileSync(join(cacheDir, `fleet-${seed}-${len}-${len}.json`), 'utf8'));
  const model = await models.trainAdditiveModel(data.warm, { hardwareClass: data.warm[0].hardwareClass });
  return { ...data, model };
}

/** Each host's true static power (W) over a billed period of `len` s, as an AttributionContext's staticPower.watts. */
export function trueStaticWatts(truth, len) {
  const out = {};
  for (const h of truth.hosts) out[h.hostId] = { rapl: h.staticJoules.rapl / len, gpu: 0, bmc_rest: h.staticJoules.bmc_rest / len };
  return out;
}

// A simulator fleet whose hosts' oracle frames go through the real IntervalAligner, one simulated second
// at a time (shared by benchmarks/accuracy.mjs and benchmarks/accuracy-diag.mjs).
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { createFleet } = await import(pathToFileURL(join(root, 'packages/simulator/dist/index.js')).href);
const { IntervalAligner } = await import(pathToFileURL(join(root, 'packages/attribution/dist/index.js')).href);

/** The fleet (with the default events) and `next()`: one more second, the host intervals it closed. */
export function oracleFleet(fleetOpts) {
  const fleet = createFleet({ ...fleetOpts, events: 'default' });
  const aligner = new IntervalAligner();
  let seq = 0;
  const frames = () => {
    seq++;
    const out = [];
    for (const h of fleet.hosts) {
      const r = aligner.push(h.oracleFrame(seq));
      if (r.interval) out.push(r.interval);
    }
    return out;
  };
  frames(); // seeds the aligner
  return {
    fleet,
    next() {
      fleet.step(1);
      return frames();
    },
    /** `seconds` more seconds, every interval they closed. */
    advance(seconds) {
      const out = [];
      for (let s = 0; s < seconds; s++) out.push(...this.next());
      return out;
    },
  };
}

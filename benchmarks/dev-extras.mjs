// `--extra SEED:FAMILY+FAMILY,...` (development-only diagnostic fleets: the development set's families in other
// combinations), shared by the benchmarks that take it (accuracy-filter.mjs, diag/interval-width.mjs). The guard
// lives here once: no evaluation seed, no held-out family, no evaluation combination of any evaluation set.

/** The extra fleets of `spec` (the --extra value) by seed; throws naming an extra the protocol keeps for evaluation. */
export function devExtras(spec, P) {
  const evalFleets = [...P.eval, ...P.fresh, ...P.fresh2, ...P.fresh3];
  const extra = new Map();
  for (const e of (spec || '').split(',').filter(Boolean)) {
    const [sd, fam] = e.split(':');
    const fams = fam === 'families' ? [] : fam.split('+');
    const seedN = Number(sd);
    if (evalFleets.some((x) => x.seed === seedN) || fams.some((x) => P.heldOutFamilies.includes(x))) throw new Error(`--extra ${e}: evaluation seed or held-out family`);
    if (evalFleets.some((x) => Array.isArray(x.physics) && x.physics.length === fams.length && fams.every((y) => x.physics.includes(y)))) throw new Error(`--extra ${e}: an evaluation combination`);
    extra.set(seedN, { seed: seedN, physics: fam === 'families' ? 'families' : fams });
  }
  return extra;
}

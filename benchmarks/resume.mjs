#!/usr/bin/env node
// A collector taking over hosts (issue 15): how long until the first frame of each of N hosts it has not seen is
// stored, when every host must first be resumed from the store (its checkpoint, its stored floor, its learners'
// saved state, and a replay of what was stored after that state). This is what a collector restart or a partition
// moving to another collector costs before anything new is stored for those hosts.
//
//   node benchmarks/resume.mjs [--hosts 500] [--vms 4] [--partitions 8] [--reps 3] [--url http://127.0.0.1:PORT] [--redelivered K]
//
// --redelivered K (since 2026-12-07, checkpoints.everyMs): the restart of a collector on Kafka, which commits offsets
// and saves checkpoints only every few seconds. Both collectors share one in-process bus that redelivers uncommitted
// messages (as Kafka does to a partition's next owner); the first stores seq 1-2 (checkpoints saved, offsets committed),
// then seq 3..K+2 (stored, not committed: within the period), then dies (no checkpoint saved at its stop); the second
// is handed seq K+3 and gets the K stored frames of every host again first, which it must check against the store
// (one storedIntervalRanges lookup per batch) and skip. Timed as above, until every interval K+2→K+3 is stored.
//
// Per repetition, in a fresh database (a new one on the server with --url, else a temporary chDB directory): a first
// collector stores seq 1-2 of every host and stops (saving the checkpoints and the learners' state, as at a shutdown);
// a second collector, on a new in-process bus (partitions as in a Kafka topic), is handed seq 3 of every host and
// the wall time is taken from the send until every interval 2→3 is stored. Also reported: the store queries the
// second collector made (the SELECTs, by kind), so before/after builds can be compared by what they ask too. Run it
// from each build's tree, alternating. Prints one JSON line.
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { InProcessBus, TOPICS, silentLogger } from '@wattsplit/wire';
import { ChdbStore, ClickHouseServerStore } from '@wattsplit/store';
import { createCollectorApp } from '@wattsplit/collector';
import { encoded } from '@wattsplit/collector/test-frames';

const argv = process.argv.slice(2);
const arg = (k, d) => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : d);
const HOSTS = Number(arg('--hosts', '500'));
const VMS = Number(arg('--vms', '4'));
const PARTITIONS = Number(arg('--partitions', '8'));
const REPS = Number(arg('--reps', '3'));
const URL = arg('--url', undefined);
const REDELIVERED = Number(arg('--redelivered', '0'));

const hosts = Array.from({ length: HOSTS }, (_, i) => ({
  hostId: `hv-r${String(i).padStart(5, '0')}`,
  raplW: 300,
  dramW: 40,
  bmcW: 600,
  vms: Object.fromEntries(Array.from({ length: VMS }, (_, v) => [`r${i}-vm${v}`, [`tenant-${v % 5}`, 1 + (v % 3)]])),
}));

/** Counts the SELECTs a collector sends, by the table they read. */
function counting(store) {
  const selects = {};
  const query = store.query.bind(store);
  store.query = (sql, f) => {
    const m = /^\s*SELECT[\s\S]*?\bFROM\s+([a-z_]+)/i.exec(sql);
    if (m) selects[m[1]] = (selects[m[1]] ?? 0) + 1;
    return query(sql, f);
  };
  return selects;
}

/**
 * One collector handed `rounds` of seqs (each round sent and handled before the next); with `shared` (a bus that
 * redelivers, --redelivered) the bus outlives it and `dies` makes its stop save no checkpoint, as a crash would.
 */
async function collectorRun(openStore, rounds, timed, { shared, dies } = {}) {
  const bus = shared ?? new InProcessBus({ partitions: PARTITIONS, logger: silentLogger });
  const store = openStore();
  const selects = counting(store);
  const app = await createCollectorApp({ bus, store, logger: silentLogger, ...(shared ? { checkpoints: { everyMs: 600_000 } } : {}) });
  const stored0 = app.pipeline.stats.intervalsStored;
  const t0 = performance.now();
  for (const seqs of rounds) {
    const msgs = seqs.flatMap((s) => hosts.map((h) => encoded(h, s)));
    for (let i = 0; i < msgs.length; i += 1000) await bus.producer().send(TOPICS.telemetry, msgs.slice(i, i + 1000));
    await bus.idle();
  }
  const ms = performance.now() - t0;
  const stored = app.pipeline.stats.intervalsStored - stored0;
  const replayed = app.pipeline.stats.framesReplayed;
  if (dies) store.saveCheckpoints = () => Promise.resolve({ kind: 'retryable', error: new Error('benchmark: the collector died'), retryAfterMs: 0 });
  await app.close();
  await store.close();
  if (!shared) await bus.close();
  return timed ? { ms, stored, replayed, selects } : { stored };
}

const runs = [];
for (let r = 0; r < REPS; r++) {
  const dir = URL ? undefined : mkdtempSync(join(tmpdir(), 'wattsplit-resume-bench-'));
  const database = `wattsplit_resume_${process.pid}_${r}`;
  const openStore = () => (URL ? new ClickHouseServerStore({ url: URL, database, logger: silentLogger }) : new ChdbStore({ dataDir: join(dir, 'db'), logger: silentLogger }));
  const shared = REDELIVERED > 0 ? new InProcessBus({ partitions: PARTITIONS, redelivers: true, logger: silentLogger }) : undefined;
  const later = Array.from({ length: REDELIVERED }, (_, k) => 3 + k);
  const first = await collectorRun(openStore, shared ? [[1, 2], later] : [[1, 2]], false, { shared, dies: shared !== undefined });
  if (first.stored !== HOSTS * (1 + REDELIVERED)) throw new Error(`first collector stored ${first.stored} intervals, expected ${HOSTS * (1 + REDELIVERED)}`);
  const second = await collectorRun(openStore, [[3 + REDELIVERED]], true, { shared });
  if (second.stored !== HOSTS) throw new Error(`second collector stored ${second.stored} intervals, expected ${HOSTS} (a host not resumed loses its interval, one stored twice counts twice)`);
  // everything after the last commit comes again: the K later seqs, and the frames of seq 1-2 past the first batch of
  // each partition (only the first batch saved checkpoints and committed)
  if (shared && second.replayed < HOSTS * REDELIVERED) throw new Error(`second collector skipped ${second.replayed} redelivered frames, expected at least ${HOSTS * REDELIVERED}`);
  await shared?.close();
  runs.push({ ms: Math.round(second.ms), ms_per_host: Number((second.ms / HOSTS).toFixed(3)), selects: second.selects, ...(shared ? { redelivered_frames: second.replayed } : {}) });
  if (URL) {
    const s = openStore();
    await s.query(`DROP DATABASE IF EXISTS ${database}`).catch(() => undefined);
    await s.close();
  } else rmSync(dir, { recursive: true, force: true });
}
const sorted = runs.map((x) => x.ms).sort((a, b) => a - b);
console.log(JSON.stringify({
  bench: 'resume',
  engine: URL ? 'clickhouse-server' : 'chdb',
  hosts: HOSTS,
  vms_per_host: VMS,
  partitions: PARTITIONS,
  redelivered_per_host: REDELIVERED,
  median_ms: sorted[Math.floor(sorted.length / 2)],
  runs,
  load: loadavg()[0],
  machine: `${cpus().length} × ${cpus()[0]?.model.trim().split(' ').slice(0, 2).join(' ')}`,
  node: process.version,
  date: new Date().toISOString(),
}));

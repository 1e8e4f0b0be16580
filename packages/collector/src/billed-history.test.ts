// Billed history is written once and never rewritten: a new boot that reuses a host's seqs is refused
// (kept on the dead-letter topic), a replay after a crash between the interval write and the checkpoint
// save writes nothing twice (the raw tables AND the rollups fed from them stay exact), and an agent
// restart on the same host boot is billed across the gap.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InProcessBus, TOPICS, encodeFrame, memoryLogger, type BusMessage, type ITelemetryFrame, type Logger } from '@wattsplit/wire';
import { startEmbeddedCollector } from './embedded.js';
import { HOST_A, frameAt } from './test-frames.js';

type Collector = Awaited<ReturnType<typeof startEmbeddedCollector>>;

async function run(dataDir: string, log: Logger, frames: ITelemetryFrame[], before?: (c: Collector) => Promise<void>, after?: (c: Collector, bus: InProcessBus) => Promise<void>): Promise<void> {
  const bus = new InProcessBus({ partitions: 1 });
  const c = await startEmbeddedCollector({ dataDir, bus, logger: log });
  try {
    if (before) await before(c);
    await bus.producer().send(TOPICS.telemetry, frames.map((f) => ({ key: f.hostId!, value: encodeFrame(f) })));
    await bus.idle();
    if (after) await after(c, bus);
  } finally {
    await c.close();
    await bus.close();
  }
}

const num = async (c: Collector, sql: string): Promise<number> => Number(Object.values((await c.store.query(sql)).rows[0]!)[0]);
const frames = (from: number, to: number, boot = 'boot-1') => Array.from({ length: to - from + 1 }, (_, i) => frameAt(HOST_A, from + i, boot));

/** Stored energy three ways: raw host rows, attributions (one method), and both rollup tables. */
async function energy(c: Collector) {
  return {
    raw: await num(c, `SELECT sum(rapl_j + gpu_j + bmc_rest_j) FROM host_samples FINAL WHERE host = 'hv-a'`),
    attributed: await num(c, `SELECT sum(dynamic_j + static_j) FROM attributions FINAL WHERE host = 'hv-a' AND method = 'cpu_share'`),
    vmRollup: await num(c, `SELECT sum(dynamic_j + static_j) FROM vm_energy_hourly WHERE host = 'hv-a' AND method = 'cpu_share'`),
    tenantRollup: await num(c, `SELECT sum(dynamic_j + static_j) FROM tenant_energy_hourly WHERE method = 'cpu_share'`),
    intervals: await num(c, `SELECT count() FROM host_samples FINAL WHERE host = 'hv-a'`),
  };
}

test('a new boot reusing stored seqs is refused and kept; stored rows and rollups are unchanged', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-reuse-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const db = join(dir, 'db');
  const log = memoryLogger();
  await run(db, log, frames(1, 6));
  let before: Awaited<ReturnType<typeof energy>> | undefined;
  // A reinstalled agent (or anyone with the host's token) starts over at seq 1 under a new boot, with
  // other counter values: in the same collector, and in a restarted one (no state but the store's).
  const impostor = frames(1, 4, 'boot-2').map((f) => ({ ...f, monoNs: f.monoNs! - 900e9, counters: f.counters!.map((k) => ({ ...k, value: Math.round(Number(k.value) / 3) })) }));
  await run(db, log, [], async (c) => void (before = await energy(c)));
  await run(db, log, impostor, undefined, async (c, bus) => {
    const after = await energy(c);
    assert.deepEqual(after, before, 'nothing stored was rewritten or added');
    const dead: BusMessage[] = [];
    await bus.subscribe({ topic: TOPICS.deadLetter, groupId: 't-dlq', fromBeginning: true, handler: async (ms) => void dead.push(...ms) });
    await bus.idle();
    assert.equal(dead.length, 4, 'every refused frame is kept on the dead-letter topic');
    assert.ok(dead.every((m) => m.headers?.['x-wattsplit-error-code'] === 'FRAME_SEQ_REUSED'));
    assert.equal(await num(c, `SELECT count() FROM anomalies FINAL WHERE host = 'hv-a' AND code = 'FRAME_SEQ_REUSED'`), 4);
  });
  assert.ok(log.entries.some((e) => e.level === 'error' && /boot "boot-2" sent seq 1, at or below seq 6 of boot "boot-1"; billed history is never rewritten/.test(e.msg)));
});

test('a replay after a crash between the interval write and the checkpoint save stores nothing twice, raw or rollup', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-replay-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const db = join(dir, 'db');
  const log = memoryLogger();
  await run(db, log, frames(1, 10));
  // The crash: intervals up to 10 are stored, the checkpoint is older (seq 4), and the bus redelivers
  // from the last committed offset (frame 4) on.
  await run(db, log, frames(4, 15), async (c) => {
    await c.store.query('TRUNCATE TABLE collector_checkpoints', 'CSV');
    assert.equal((await c.store.saveCheckpoints([{ hostId: 'hv-a', seq: 4, bootId: 'boot-1', frame: encodeFrame(frameAt(HOST_A, 4)) }])).kind, 'ok');
  }, async (c) => {
    const e = await energy(c);
    const expected = 14 * HOST_A.bmcW; // 14 one-second intervals (1→2 … 14→15), each once
    assert.equal(e.intervals, 14);
    for (const [k, v] of Object.entries(e)) if (k !== 'intervals') assert.ok(Math.abs(v - expected) < 1e-6, `${k}: ${v} J, expected ${expected} J`);
  });
  assert.ok(log.entries.some((x) => /checkpoint of hv-a is older than its stored intervals/.test(x.msg)));
});

test('an agent restart with a new boot id on the same host boot is billed across the gap: nothing lost', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-agent-restart-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const log = memoryLogger();
  // seq 1-5 under boot A; the agent is down 5 s (no frames 6-10); it comes back under boot B at seq 11.
  await run(join(dir, 'db'), log, [...frames(1, 5, 'agent-a'), ...frames(11, 14, 'agent-b')], undefined, async (c) => {
    const e = await energy(c);
    assert.equal(e.intervals, 8, '1→2 … 4→5, 5→11 (across the restart), 11→12 … 13→14');
    const expected = 13 * HOST_A.bmcW;
    for (const [k, v] of Object.entries(e)) if (k !== 'intervals') assert.ok(Math.abs(v - expected) < 1e-6, `${k}: ${v} J, expected ${expected} J`);
    assert.equal(await num(c, `SELECT count() FROM anomalies FINAL WHERE host = 'hv-a' AND code = 'AGENT_RESTARTED'`), 1);
  });
});

test('a host clock at 1970 or 2100 is billed when its energy arrived (the bus time), with an anomaly; nothing is lost', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-clock-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const log = memoryLogger();
  const year2100 = Date.UTC(2100, 0, 1) * 1e6;
  const skewed = [...frames(1, 4).map((f) => ({ ...f, wallUnixNs: 86_400e9 + Number(f.seq) * 1e9 })), ...frames(5, 8).map((f) => ({ ...f, wallUnixNs: year2100 + Number(f.seq) * 1e9 }))];
  const sent = Date.now();
  await run(join(dir, 'db'), log, skewed, undefined, async (c) => {
    const e = await energy(c);
    assert.equal(e.intervals, 7);
    for (const [k, v] of Object.entries(e)) if (k !== 'intervals') assert.ok(Math.abs(v - 7 * HOST_A.bmcW) < 1e-6, `${k}: ${v} J`);
    const span = (await c.store.query(`SELECT toUnixTimestamp(min(ts)) AS lo, toUnixTimestamp(max(ts)) AS hi FROM attributions FINAL WHERE host = 'hv-a'`)).rows[0]!;
    for (const x of [Number(span.lo), Number(span.hi)]) assert.ok(Math.abs(x - sent / 1000) < 120, `billed at ${new Date(x * 1000).toISOString()}, not 1970 or 2100`);
    assert.equal(await num(c, `SELECT count() FROM anomalies FINAL WHERE host = 'hv-a' AND code = 'FRAME_CLOCK_IMPLAUSIBLE'`), 8);
  });
  assert.equal(log.entries.filter((e) => /wall clock .* dated by the gateway's time/.test(e.msg)).length, 1, 'logged once per episode, counted every time');
});

test('learner state survives a restart: saved at shutdown, restored before the host\'s next interval, nothing learned twice', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-learners-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const db = join(dir, 'db');
  const log = memoryLogger();
  const opts = (bus: InProcessBus) => ({ dataDir: db, bus, logger: log, staticPower: { fallbackWatts: { rapl: 0, gpu: 0, bmc_rest: 0 }, minSamples: 5 } });
  let bus = new InProcessBus({ partitions: 1 });
  let c = await startEmbeddedCollector(opts(bus));
  await bus.producer().send(TOPICS.telemetry, frames(1, 20).map((f) => ({ key: f.hostId!, value: encodeFrame(f) })));
  await bus.idle();
  await c.close();
  await bus.close();
  const saved = log.entries.length;
  bus = new InProcessBus({ partitions: 1 });
  c = await startEmbeddedCollector(opts(bus));
  try {
    const rows = (await c.store.query(`SELECT learner, key, seq FROM learner_state FINAL ORDER BY learner`)).rows;
    assert.deepEqual(rows.map((r) => [r.learner, r.key, Number(r.seq)]), [['pipeline/static_power', 'hv-a', 20]], 'saved at shutdown with the last observed seq');
    // The restarted collector gets the frames after its checkpoint, plus a redelivered one.
    await bus.producer().send(TOPICS.telemetry, frames(20, 23).map((f) => ({ key: f.hostId!, value: encodeFrame(f) })));
    await bus.idle();
    assert.equal(c.pipeline.learnerState.stats.restored, 1);
    assert.ok(log.entries.slice(saved).some((e) => /restored pipeline\/static_power state of hv-a \(learned up to seq 20\)/.test(e.msg)));
  } finally {
    await c.close();
    await bus.close();
  }
  const after = (await (async () => {
    const b = new InProcessBus({ partitions: 1 });
    const cc = await startEmbeddedCollector(opts(b));
    try {
      return (await cc.store.query(`SELECT seq, state_json FROM learner_state FINAL WHERE key = 'hv-a'`)).rows[0]!;
    } finally {
      await cc.close();
      await b.close();
    }
  })());
  assert.equal(Number(after.seq), 23);
  const st = JSON.parse(String(after.state_json)) as { recs: unknown[] };
  assert.equal(st.recs.length, 22, 'intervals 1→2 … 22→23 learned once each (the redelivered seq 20 was not learned again)');
});

test('learners killed between two saves catch up from the store: they end where an uninterrupted collector ends', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-learner-replay-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const staticPower = { fallbackWatts: { rapl: 0, gpu: 0, bmc_rest: 0 }, minSamples: 5 };
  const stateOf = async (db: string, fs: ITelemetryFrame[], kill: boolean) => {
    const bus = new InProcessBus({ partitions: 1 });
    const c = await startEmbeddedCollector({ dataDir: db, bus, logger: memoryLogger(), staticPower });
    await bus.producer().send(TOPICS.telemetry, fs.map((f) => ({ key: f.hostId!, value: encodeFrame(f) })));
    await bus.idle();
    if (kill) {
      // A SIGKILL: nothing saved at shutdown (the first save is 30 s after the host is first seen).
      c.pipeline.learnerState.saveAll = async () => undefined;
    }
    const before = c.pipeline.learnerState.stats.replayed;
    await c.close();
    await bus.close();
    return before;
  };
  const saved = async (db: string) => {
    const bus = new InProcessBus({ partitions: 1 });
    const c = await startEmbeddedCollector({ dataDir: db, bus, logger: memoryLogger(), staticPower });
    try {
      return (await c.store.query(`SELECT seq, state_json FROM learner_state FINAL WHERE key = 'hv-a'`)).rows[0];
    } finally {
      await c.close();
      await bus.close();
    }
  };
  // Undisturbed: frames 1-30 in one collector.
  await stateOf(join(dir, 'a'), frames(1, 30), false);
  // Disturbed: frames 1-15, killed before any save; a new collector gets 16-30.
  await stateOf(join(dir, 'b'), frames(1, 15), true);
  await stateOf(join(dir, 'b'), frames(16, 30), false);
  const a = await saved(join(dir, 'a'));
  const b = await saved(join(dir, 'b'));
  assert.equal(Number(b!.seq), 30);
  // Intervals read back from the store list their VMs by uuid, the live ones in the agent's order: the
  // same records, per-VM pairs in another order.
  const canon = (j: string) => JSON.stringify(JSON.parse(j), (_k, v: unknown) => (Array.isArray(v) && v.every((x) => Array.isArray(x) && typeof x[0] === 'string') ? [...(v as [string, unknown][])].sort((x, y) => x[0].localeCompare(y[0])) : v));
  assert.equal(canon(String(b!.state_json)), canon(String(a!.state_json)), 'the same learner state as without the kill');
});

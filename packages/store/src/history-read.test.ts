import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { silentLogger } from '@wattsplit/wire';
import { ChdbStore } from './chdb-store.js';
import { seqRanges } from './history-read.js';
import { backgroundReadSettings, hasCapSysNice } from './read-transport.js';
import { HOUR_NS, sampleInterval, sampleResult } from './test-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'wattsplit-history-'));
const store = new ChdbStore({ dataDir: join(dir, 'db'), logger: silentLogger });
after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});
const NOW_NS = Math.floor(Date.now() / 3600_000) * HOUR_NS;

test('seqRanges: every interval in exactly one range, at most perQuery intervals per query, ranges of one host never overlap', () => {
  const ivs = [
    ...[5, 1, 2, 9, 7, 3].map((seq) => ({ hostId: 'b', seq })),
    ...[10, 11, 12].map((seq) => ({ hostId: 'a', seq })),
  ];
  const q = seqRanges(ivs, 4);
  assert.deepEqual(q, [
    [{ host: 'b', from: 1, to: 5 }],
    [{ host: 'b', from: 7, to: 9 }, { host: 'a', from: 10, to: 11 }],
    [{ host: 'a', from: 12, to: 12 }],
  ]);
  for (const perQuery of [1, 2, 3, 5, 100]) {
    const qs = seqRanges(ivs, perQuery);
    const covered = ivs.map((iv) => qs.flat().filter((r) => r.host === iv.hostId && r.from <= iv.seq && iv.seq <= r.to).length);
    assert.deepEqual(covered, ivs.map(() => 1), `perQuery ${perQuery}`);
    for (const one of qs) assert.ok(one.reduce((n, r) => n + ivs.filter((iv) => iv.hostId === r.host && r.from <= iv.seq && iv.seq <= r.to).length, 0) <= perQuery);
  }
  assert.deepEqual(seqRanges([], 10), []);
});

/** Each thread of this process: its nice value (/proc/self/task/<tid>/stat field 19). */
function niceByThread(): Map<string, string | undefined> {
  const out = new Map<string, string | undefined>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      out.set(tid, stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
    } catch {
      // ended meanwhile
    }
  }
  return out;
}

test('a worker thread reads the history through shareReads (chDB: a port to the store worker) and gets what the store reads', async () => {
  await store.init();
  const written = [];
  for (let seq = 1; seq <= 40; seq++) {
    for (const host of ['host-a', 'host-b']) {
      const i = sampleInterval(host, seq, NOW_NS + seq * 1e9);
      if (seq === 3) i.anomalies.push({ code: 'COUNTER_WENT_BACKWARDS', message: 'test', vmUuid: i.vms[0]!.uuid });
      written.push({ interval: i, results: [sampleResult(i)] });
    }
  }
  assert.equal((await store.writeIntervals(written)).kind, 'ok');
  const q = { hardwareClass: 'xeon-test+h100x1', sinceUnixNs: NOW_NS, limit: 30 };
  const here = await store.readHistory(q);
  assert.ok(here.length > 0 && here.length <= 30, `sampled ${here.length}`);
  assert.deepEqual(here.filter((i) => i.seq === 3).map((i) => i.anomalies.map((a) => a.code)), here.filter((i) => i.seq === 3).map(() => ['COUNTER_RESET', 'COUNTER_WENT_BACKWARDS']));

  const niceBefore = niceByThread();
  const grant = await store.shareReads();
  const src = `
    import { parentPort, workerData } from 'node:worker_threads';
    const { openReadTransport, readHistoryFrom } = await import(workerData.lib);
    const t = openReadTransport(workerData.handle, { background: true });
    const all = await readHistoryFrom(t, workerData.q);
    const unlabelled = await readHistoryFrom(t, { ...workerData.q, omitVmLabels: true });
    await t.close();
    parentPort.postMessage({ all, unlabelled });
  `;
  const w = new Worker(src, { eval: true, workerData: { lib: new URL('./index.js', import.meta.url).href, handle: grant.handle, q }, transferList: grant.transfer });
  const got = await new Promise<{ all: unknown; unlabelled: { vms: { name: string; tenant: string }[] }[] }>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  await new Promise((r) => w.once('exit', r));
  assert.deepEqual(got.all, here);
  assert.deepEqual(got.unlabelled, here.map((i) => ({ ...i, vms: i.vms.map((v) => ({ ...v, name: '', tenant: '' })) })));
  // A background read (one thread, os_thread_priority 19 where this process may renice back) leaves no
  // thread of this process at nice 19: the engine sets its query threads back after the query, and the
  // threads that were there before have the nice value they had (chDB's MemoryWorker runs at -20).
  // The engine resets a pool thread when the thread leaves the query's thread group, which can be
  // a moment after the last block reached the client (a CI run saw one thread still at 19 right after
  // the worker's exit): look again for up to 3 s; a thread left at 19 for good still fails.
  const reniced = (): string[] => {
    const bad: string[] = [];
    for (const [tid, nice] of niceByThread()) {
      if (nice === '19') bad.push(`thread ${tid} left at nice 19 after a background read`);
      else if (niceBefore.has(tid) && nice !== niceBefore.get(tid)) bad.push(`thread ${tid} at nice ${nice}, was ${niceBefore.get(tid)}`);
    }
    return bad;
  };
  let bad = reniced();
  for (const deadline = Date.now() + 3000; bad.length > 0 && Date.now() < deadline; bad = reniced()) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(bad, []);
  // The store goes on working after the reading thread ended (its port closed with it).
  assert.deepEqual(await store.readHistory(q), here);
});

test('VM rows stored twice and not merged yet (a replay in another batch) are read once', async () => {
  const again = [1, 2].map((seq) => sampleInterval('host-a', seq, NOW_NS + seq * 1e9));
  const extra = sampleInterval('host-a', 41, NOW_NS + 41 * 1e9);
  assert.equal((await store.writeIntervals([...again, extra].map((i) => ({ interval: i, results: [sampleResult(i)] })))).kind, 'ok');
  const raw = Number((await store.query(`SELECT count() AS n FROM vm_samples WHERE host = 'host-a' AND seq IN (1, 2)`)).rows[0]!.n);
  assert.equal(raw, 8, 'the replayed VM rows are stored twice (not merged yet)');
  const read = await store.readHistory({ hostId: 'host-a', sinceUnixNs: NOW_NS, untilUnixNs: NOW_NS + 2.5e9 });
  assert.deepEqual(read, again);
});

test('background reads: one query thread; on chDB also os_thread_priority 19, only where the process may renice back (CAP_SYS_NICE)', () => {
  assert.deepEqual(backgroundReadSettings('clickhouse-server', () => true), { max_threads: 1 });
  assert.deepEqual(backgroundReadSettings('chdb', () => true), { max_threads: 1, os_thread_priority: 19 });
  assert.deepEqual(backgroundReadSettings('chdb', () => false), { max_threads: 1 });
  // CapEff bit 23 is CAP_SYS_NICE: root's full set has it, a set without bit 23 or an unreadable status does not.
  assert.equal(hasCapSysNice(() => 'Name:\tnode\nCapEff:\t000001ffffffffff\n'), true);
  assert.equal(hasCapSysNice(() => 'CapEff:\t0000000000000000\n'), false);
  assert.equal(hasCapSysNice(() => 'CapEff:\t0000000000800000\n'), true);
  assert.equal(hasCapSysNice(() => 'CapEff:\t00000000007fffff\n'), false);
  assert.equal(hasCapSysNice(() => {
    throw new Error('no /proc');
  }), false);
});

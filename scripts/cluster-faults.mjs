#!/usr/bin/env node
/* global fetch, AbortSignal */
// Faults on the real cluster (scripts/cluster.mjs up): the shipped `wattsplit gateway` and `wattsplit collector`
// processes (two collectors in one consumer group, --cluster wattsplit, each entering the ClickHouse cluster
// through another server) and `wattsplit agent` processes on fake sensor trees advanced by the fault suite's
// driver (scripts/faults.mjs --driver), so the joules each host consumed are known exactly.
// Experiments, each with its own hosts (counters frozen at start and end, so the first and last frames read
// known values), on distinct partitions of the telemetry topic so that every collector in the group has
// some of them (4 hosts; 6 where a third collector joins):
//   kafka_broker_killed     SIGKILL a broker mid-stream (kafka1, the first bootstrap address), start it again
//   clickhouse_replica_killed  SIGKILL ch1 (the replica of shard 01 that takes reads and writes), start it again
//   collector_added_removed a third collector joins the group mid-stream, then is SIGKILLed
// It measures, per host: the truth, Σ rapl_j of host_samples FINAL and Σ attributions FINAL per method
// through the Distributed tables, the intervals (rows, distinct seqs, the prev_seq chain) and, per server, the
// same sums over its local tables (after SYSTEM SYNC REPLICA); and the bills `wattsplit bill --all --json`
// prints through each server; per experiment, the intervals each collector stored (its /metrics). It judges nothing: the JSON report's last line is for
// packages/cli/src/cluster.cluster.test.ts, which asserts.
//   node scripts/cluster-faults.mjs [--only a,b] [--keep] [--log-level info]
// Exit: 0 report printed, 2 no cluster (run scripts/cluster.mjs up), 1 harness error.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, hostname, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { createHash, randomUUID } from 'node:crypto';
import { Proc, chQuery, freePort, killAllNow, sleep, waitFor } from './lib/processes.mjs';
import { readState, root, startNode, status, stopNode } from './lib/cluster.mjs';
// the partitioner the gateway's producer uses (built by tsc -b, as packages/cli/dist/main.js is)
import { kafkaPartitionForKey } from '../packages/kafka/dist/murmur2.js';

const PARTITIONS = 6;
/** The longest wait for an experiment's joules to land (late) before they count as lost. */
const SETTLE_MS = 180000;
const TELEMETRY_TOPIC = 'wattsplit.telemetry.v1';

const argv = process.argv.slice(2);
const opt = (f, d) => {
  const i = argv.indexOf(f);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : d;
};
const CLI = join(root, 'packages/cli/dist/main.js');
const LOG_LEVEL = opt('--log-level', 'info');
const say = (m) => process.stderr.write(`cluster-faults: ${m}\n`);
const q = (s) => `'${s.replace(/'/g, "\\'")}'`;

function vmUuid(hostId, k) {
  const h = createHash('sha1').update(`${hostId}/${k}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

class Harness {
  constructor(state) {
    this.s = state;
    this.tmp = mkdtempSync(join(tmpdir(), 'wattsplit-cluster-faults-'));
    this.logDir = join(this.tmp, 'logs');
    mkdirSync(this.logDir);
    this.db = `cf_${process.pid}_${Date.now().toString(36)}`;
    this.brokers = state.kafka.brokers.map((b) => `127.0.0.1:${b.port}`).join(',');
    this.urls = Object.fromEntries(state.clickhouse.nodes.map((n) => [n.name, `http://127.0.0.1:${n.http}`]));
    this.tokens = {};
    this.collectors = new Map();
    this.pending = new Map();
    this.nextId = 1;
    this.group = `wattsplit-cluster-${process.pid}`;
  }

  env() {
    return {
      WATTSPLIT_KAFKA_BROKERS: this.brokers,
      WATTSPLIT_KAFKA_PARTITIONS: String(PARTITIONS),
      WATTSPLIT_KAFKA_REPLICATION_FACTOR: '3',
      WATTSPLIT_KAFKA_SEND_TIMEOUT_MS: '10000',
      WATTSPLIT_KAFKA_SESSION_TIMEOUT_MS: '6000',
    };
  }

  async start(hostIds) {
    this.driver = spawn(process.execPath, [join(root, 'scripts/faults.mjs'), '--driver'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], detached: true });
    this.driver.on('message', (m) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.res(m);
      else p.rej(new Error(m.error));
    });
    for (const h of hostIds) this.tokens[h] = `tok-${h}-${randomUUID()}`;
    this.tokensFile = join(this.tmp, 'tokens.json');
    writeFileSync(this.tokensFile, JSON.stringify(this.tokens));
    this.gatewayPort = await freePort();
    this.gateway = new Proc('gateway', process.execPath, [CLI, 'gateway', '--host', '127.0.0.1', '--port', String(this.gatewayPort), '--auth', 'per-host', '--tokens-file', this.tokensFile, '--log-level', LOG_LEVEL], { env: this.env(), logDir: this.logDir });
    await waitFor('gateway listening', () => this.gateway.log().includes('gateway listening') || (!this.gateway.alive && Promise.reject(new Error(`gateway exited: ${this.gateway.log().slice(-400)}`))), 60000);
    // The first collector migrates the schema ON CLUSTER; the second starts once it is up.
    await this.startCollector('collector-1', 'ch3');
    await this.startCollector('collector-2', 'ch2');
    // The hosts were picked for distinct partitions of a PARTITIONS-partition topic (see hostIds): check it has that many.
    const parts = new Set();
    for (const b of this.s.kafka.brokers) {
      if (!existsSync(b.data)) continue;
      for (const e of readdirSync(b.data)) if (e.startsWith(`${TELEMETRY_TOPIC}-`)) parts.add(e);
    }
    if (parts.size !== PARTITIONS) throw new Error(`${TELEMETRY_TOPIC} has ${parts.size} partitions on the brokers' disks, the hosts were spread over ${PARTITIONS}`);
  }

  /**
   * The consumer group's lag on the telemetry topic: wattsplit_collector_bus_lag_messages of a running collector
   * (messages not yet committed by the group; the collector asks the broker on a scrape and reports the answer at
   * the next one, so this scrapes twice). undefined while no collector knows it.
   */
  async groupLag() {
    const p = [...this.collectors.values()].find((c) => c.alive);
    if (!p) return undefined;
    const read = async () => {
      const r = await fetch(`http://127.0.0.1:${p.port}/metrics`, { signal: AbortSignal.timeout(5000) });
      const m = /^wattsplit_collector_bus_lag_messages (\d+)/m.exec(await r.text());
      return m ? Number(m[1]) : undefined;
    };
    await read();
    await sleep(1000);
    return read();
  }

  /** Intervals each running collector has attributed and stored (its /metrics: wattsplit_collector_intervals_total, cpu_share). */
  async intervalsByCollector() {
    const out = {};
    for (const [name, p] of this.collectors) {
      if (!p.alive) continue;
      const r = await fetch(`http://127.0.0.1:${p.port}/metrics`, { signal: AbortSignal.timeout(5000) });
      const m = /^wattsplit_collector_intervals_total\{method="cpu_share"\} (\d+)/m.exec(await r.text());
      out[name] = m ? Number(m[1]) : 0;
    }
    return out;
  }

  async startCollector(name, node) {
    const port = await freePort();
    const p = new Proc(name, process.execPath, [CLI, 'collector', '--http-host', '127.0.0.1', '--http-port', String(port), '--url', this.urls[node], '--database', this.db, '--cluster', this.s.clickhouse.cluster, '--group', this.group, '--no-train', '--log-level', LOG_LEVEL], { env: this.env(), logDir: this.logDir });
    p.port = port;
    this.collectors.set(name, p);
    await waitFor(`${name} /healthz`, async () => {
      if (!p.alive) throw new Error(`${name} exited: ${p.log().slice(-600)}`);
      return (await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) })).ok;
    }, 90000, 500);
    return p;
  }

  call(op, body = {}) {
    const id = this.nextId++;
    return Promise.race([
      new Promise((res, rej) => {
        this.pending.set(id, { res, rej });
        this.driver.send({ id, op, ...body });
      }),
      sleep(5000).then(() => Promise.reject(new Error(`driver did not answer ${op}`))),
    ]);
  }

  async addHost(hostId, watts) {
    const hroot = join(this.tmp, 'hosts', hostId);
    const spec = { hostId, root: hroot, watts, vms: Array.from({ length: 4 }, (_, k) => ({ id: k + 1, name: `vm${k + 1}`, vcpus: 2, cpuPerS: 0.25 * (k + 1), uuid: vmUuid(hostId, k) })) };
    await this.call('add', { spec });
    const cfg = {
      hostId,
      hardwareClass: 'cluster-suite-xeon',
      sysfsRoot: hroot,
      libvirt: false,
      nvml: { enabled: false },
      perf: { enabled: false },
      vms: spec.vms.map((v, k) => ({ uuid: v.uuid, name: v.name, id: v.id, vcpus: v.vcpus, memoryBytes: 2147483648, tenant: `tenant-${k % 2}`, flavor: 'f' })),
    };
    const cfgFile = join(this.tmp, `${hostId}.json`);
    writeFileSync(cfgFile, JSON.stringify(cfg));
    const tokenFile = join(this.tmp, `${hostId}.token`);
    writeFileSync(tokenFile, `${this.tokens[hostId]}\n`);
    return new Proc(`agent-${hostId}`, process.execPath, [CLI, 'agent', '--config', cfgFile, '--gateway', `127.0.0.1:${this.gatewayPort}`, '--insecure', '--token-file', tokenFile, '--spool-dir', join(this.tmp, 'spool', hostId), '--log-level', LOG_LEVEL], { logDir: this.logDir });
  }

  /** Σ rapl_j per host through the Distributed table (the collectors' view). */
  async storedJ(ids) {
    const rows = await chQuery(this.urls.ch3, this.db, `SELECT host, sum(rapl_j) AS j FROM host_samples FINAL WHERE host IN (${ids.map(q).join(',')}) GROUP BY host`);
    return Object.fromEntries(rows.map((r) => [r.host, Number(r.j)]));
  }

  /** What every server and the cluster hold for these hosts. */
  async account(ids) {
    const list = ids.map(q).join(',');
    const hostSql = (t) => `SELECT host, sum(rapl_j) AS j, count() AS rows, uniqExact(seq) AS seqs, min(prev_seq) AS first_prev, max(seq) AS last, sum(seq - prev_seq) AS span FROM ${t} FINAL WHERE host IN (${list}) GROUP BY host`;
    const attrSql = (t) => `SELECT host, method, sum(dynamic_j + static_j) AS j, count() AS rows FROM ${t} FINAL WHERE host IN (${list}) AND source = 'rapl' GROUP BY host, method`;
    const cluster = { hosts: await chQuery(this.urls.ch3, this.db, hostSql('host_samples')), attributions: await chQuery(this.urls.ch3, this.db, attrSql('attributions')) };
    const nodes = {};
    for (const n of this.s.clickhouse.nodes) {
      nodes[n.name] = {
        shard: n.shard,
        hosts: await chQuery(this.urls[n.name], this.db, hostSql('host_samples_local')),
        attributions: await chQuery(this.urls[n.name], this.db, attrSql('attributions_local')),
        rollup: await chQuery(this.urls[n.name], this.db, `SELECT host, method, sum(dynamic_j + static_j) AS j FROM vm_energy_hourly_local WHERE host IN (${list}) AND source = 'rapl' GROUP BY host, method`),
      };
    }
    return { cluster, nodes };
  }

  /** SYSTEM SYNC REPLICA on every replicated table of every server (replicas caught up before comparing). */
  async syncReplicas() {
    for (const n of this.s.clickhouse.nodes) {
      const tables = await chQuery(this.urls[n.name], this.db, `SELECT name FROM system.tables WHERE database = ${q(this.db)} AND engine LIKE 'Replicated%'`);
      for (const t of tables) {
        const r = await fetch(this.urls[n.name], { method: 'POST', body: `SYSTEM SYNC REPLICA ${this.db}.${t.name}`, signal: AbortSignal.timeout(60000) });
        if (!r.ok) throw new Error(`SYNC REPLICA ${t.name} on ${n.name}: ${(await r.text()).slice(0, 200)}`);
      }
    }
  }

  /** `wattsplit bill --all --json` through each server. */
  bills() {
    const out = {};
    for (const n of this.s.clickhouse.nodes) {
      const r = spawnSync(process.execPath, [CLI, 'bill', '--all', '--method', 'cpu_share', '--url', this.urls[n.name], '--database', this.db, '--cluster', this.s.clickhouse.cluster, '--json'], { cwd: root, encoding: 'utf8', timeout: 60000 });
      out[n.name] = r.status === 0 ? JSON.parse(r.stdout) : { error: `exit ${r.status}: ${(r.stderr ?? '').slice(-300)}` };
    }
    return out;
  }

  async stop(keep = false) {
    await Promise.all([...Proc.all].map((p) => p.stop('SIGTERM', 8000)));
    killAllNow();
    try {
      this.driver?.kill('SIGKILL');
    } catch { /* gone */ }
    if (!keep && !argv.includes('--keep')) rmSync(this.tmp, { recursive: true, force: true });
  }
}

const EXPERIMENTS = [
  {
    name: 'kafka_broker_killed',
    expect: 'a broker SIGKILLed mid-stream and started again: every joule stored once',
    fn: async (x) => {
      await x.run(6000);
      x.note(`kafka1: ${await stopNode('kafka1', 'SIGKILL')}`);
      await x.run(12000);
      const t = Date.now();
      await startNode('kafka1');
      x.note(`kafka1 back after ${Math.round((Date.now() - t) / 1000)} s`);
      await x.run(6000);
    },
  },
  {
    name: 'clickhouse_replica_killed',
    expect: 'ch1 (shard 01, the replica taking reads and writes) SIGKILLed mid-stream and started again: every joule stored once, both replicas equal',
    fn: async (x) => {
      await x.run(6000);
      x.note(`ch1: ${await stopNode('ch1', 'SIGKILL')}`);
      await x.run(12000);
      await startNode('ch1', (m) => x.note(m));
      await x.run(8000);
    },
  },
  {
    name: 'collector_added_removed',
    expect: 'a third collector joins the consumer group mid-stream and is SIGKILLed later: every joule stored once',
    // on every partition: whichever 2 of the 6 partitions the third member is given, it gets hosts to handle
    hosts: 6,
    fn: async (x) => {
      await x.run(6000);
      const c3 = await x.h.startCollector('collector-3', 'ch1');
      x.note('collector-3 joined');
      await x.run(12000);
      await x.countIntervals();
      await c3.stop('SIGKILL');
      x.note('collector-3 SIGKILLed');
      await x.run(10000);
    },
  },
];

async function runExperiment(h, exp, ids) {
  const t0 = Date.now();
  const notes = [];
  // intervals each collector stored during the experiment: the last count read minus the count at its start
  const intervalsAtStart = await h.intervalsByCollector();
  const intervalsSeen = { ...intervalsAtStart };
  const x = {
    h,
    note: (s) => notes.push(s),
    countIntervals: async () => Object.assign(intervalsSeen, await h.intervalsByCollector()),
    run: async (ms) => {
      await h.call('run', { hostIds: ids });
      await sleep(ms);
    },
  };
  const deathsBefore = Proc.deaths.length;
  const agents = [];
  for (const [i, id] of ids.entries()) agents.push(await h.addHost(id, 80 + 15 * i));
  // counters frozen until each host's first interval is stored: the agents' first frames read the start value
  await waitFor(`first intervals of ${ids.join(', ')}`, async () => Object.keys(await h.storedJ(ids)).length === ids.length, 60000, 1000);
  let error;
  try {
    // Every member of the group doing its part before the fault is injected: a member that lost the group in the
    // previous experiment (its coordinator's broker killed) can take a minute to rejoin at this box's load (seen:
    // ~70 s, CI 2026-12-06). Waited for and reported in the notes, so an experiment starts from a healthy group;
    // one that never rejoins fails the experiment.
    const groupT0 = Date.now();
    await waitFor('every collector storing intervals of this experiment\'s hosts', async () => {
      const now = await h.intervalsByCollector();
      return Object.keys(now).every((c) => now[c] > (intervalsAtStart[c] ?? 0));
    }, 120000, 1000);
    const groupS = Math.round((Date.now() - groupT0) / 1000);
    if (groupS > 5) notes.push(`every collector storing only after ${groupS} s`);
    await exp.fn(x);
  } catch (e) {
    error = e.message;
    say(`${exp.name}: ${error}`);
  }
  await h.call('freeze', { hostIds: ids });
  await sleep(3000);
  const truth = Object.fromEntries(Object.entries((await h.call('truth')).truth).filter(([k]) => ids.includes(k)).map(([k, v]) => [k, v.truthJ]));
  // settle: every host's stored sum equals its truth; or a sum short of it is lost, not late: it has not moved
  // for 15 s (longer than an agent's 10 s retry cap) AND the collector group has handled and committed every
  // frame in Kafka (lag 0 on three readings in a row: a collector commits only after the store write). A
  // group stalled by the broker kill (at load average 35-40 on this 2-core box the collectors did nothing for
  // ~70 s after kafka1 died) is late, not lossy: the wait goes on, up to SETTLE_MS.
  // How it ended is reported (settled): 'equal' after n s, 'stable' (lost) or 'timeout' (still moving, or the
  // group still behind, after SETTLE_MS: late).
  let last = '';
  let stableSince = Date.now();
  let lagZero = 0;
  const settleT0 = Date.now();
  const end = Date.now() + SETTLE_MS;
  let settled = 'timeout';
  while (Date.now() < end) {
    const j = await h.storedJ(ids).catch(() => ({}));
    if (ids.every((id) => Math.abs((j[id] ?? 0) - truth[id]) < 1e-6 * truth[id] + 1e-6)) {
      settled = 'equal';
      break;
    }
    lagZero = (await h.groupLag().catch(() => undefined)) === 0 ? lagZero + 1 : 0;
    const key = JSON.stringify(j);
    if (key !== last) {
      last = key;
      stableSince = Date.now();
    } else if (Date.now() - stableSince > 15000 && lagZero >= 3) {
      settled = 'stable';
      break;
    }
    await sleep(1000);
  }
  settled = `${settled} after ${Math.round((Date.now() - settleT0) / 1000)} s`;
  // agents stop (a last frame reads the frozen counters: no energy), then their last intervals land
  for (const a of agents) await a.stop('SIGTERM', 6000);
  let zeros = 0;
  await waitFor('the collector group to commit every frame (lag 0 three times in a row)', async () => {
    zeros = (await h.groupLag()) === 0 ? zeros + 1 : 0;
    return zeros >= 3;
  }, SETTLE_MS, 1000);
  let rows = '';
  await waitFor('the stopped agents\' last intervals', async () => {
    const now = JSON.stringify(await chQuery(h.urls.ch3, h.db, `SELECT host, count() AS n FROM host_samples FINAL WHERE host IN (${ids.map(q).join(',')}) GROUP BY host ORDER BY host`));
    const same = now === rows;
    rows = now;
    return same;
  }, 30000, 3000);
  await x.countIntervals();
  const intervalsByCollector = Object.fromEntries(Object.entries(intervalsSeen).map(([k, v]) => [k, v - (intervalsAtStart[k] ?? 0)]));
  // A server the experiment could not bring back fails these; the experiment's own error says why, so it goes first.
  const then = (e) => {
    throw new Error(`${error ? `${exp.name} had failed (${error}); then ` : ''}${e.message}`);
  };
  await h.syncReplicas().catch(then);
  const acc = await h.account(ids).catch(then);
  const central = [h.gateway, ...[...h.collectors.entries()].filter(([n]) => n !== 'collector-3').map(([, p]) => p)];
  return {
    experiment: exp.name,
    expected: exp.expect,
    error: error ?? null,
    notes,
    settled,
    hosts: ids,
    partitionsOfHosts: Object.fromEntries(ids.map((id) => [id, kafkaPartitionForKey(id, PARTITIONS)])),
    intervalsByCollector,
    truthJ: truth,
    ...acc,
    unexpectedDeaths: Proc.deaths.slice(deathsBefore).filter((d) => !/collector-3/.test(d.name)).map((d) => `${d.name} ${d.sig ?? `exit ${d.code}`}`),
    centralAlive: Object.fromEntries(central.map((p) => [p.name, p.alive])),
    seconds: Math.round((Date.now() - t0) / 1000),
  };
}

/**
 * `count` host ids `<prefix>-h<i>` on distinct partitions of the telemetry topic (the gateway keys by host
 * id: Kafka's murmur2 partitioner). Every member of the group then has work whatever its share: with two
 * collectors, 3 partitions each, 4 hosts on 4 partitions reach both; with three, 2 each, 6 hosts reach all.
 */
function hostIds(prefix, count) {
  const out = [];
  const used = new Set();
  for (let i = 0; out.length < count; i++) {
    if (i > 10000) throw new Error(`no ${count} host ids on distinct partitions for ${prefix}`);
    const id = `${prefix}-h${i}`;
    const p = kafkaPartitionForKey(id, PARTITIONS);
    if (used.has(p)) continue;
    used.add(p);
    out.push(id);
  }
  return out;
}

async function main() {
  const state = readState();
  const st = state ? await status(state) : [];
  if (!state || !st.every((x) => x.ready)) {
    process.stdout.write(`${JSON.stringify({ skipped: state ? `cluster not ready: ${st.filter((x) => !x.ready).map((x) => x.name).join(', ')}` : 'no cluster (node scripts/cluster.mjs up)' })}\n`);
    return 2;
  }
  const only = opt('--only', '').split(',').filter(Boolean);
  const exps = EXPERIMENTS.filter((e) => !only.length || only.includes(e.name));
  // host ids unique per run: the cluster's topics outlive a run, and a new consumer group reads from the start
  const run = Date.now().toString(36).slice(-6);
  const ids = new Map(exps.map((e) => [e.name, hostIds(`${run}-${e.name.replace(/_/g, '-').slice(0, 20)}`, e.hosts ?? 4)]));
  const idsOf = (e) => ids.get(e.name);
  const h = new Harness(state);
  const started = new Date();
  const results = [];
  let bills = {};
  let processes = [];
  let harnessError = null;
  const deadline = setTimeout(() => {
    say('harness timed out after 840 s');
    killAllNow();
    process.exit(1);
  }, 840000);
  try {
    await h.start(exps.flatMap((e) => idsOf(e)));
    for (const e of exps) {
      say(`${e.name}...`);
      results.push(await runExperiment(h, e, idsOf(e)));
      say(`${e.name}: ${results.at(-1).seconds} s`);
    }
    bills = h.bills();
    processes = (await status(readState())).map((x) => ({ name: x.name, rssMiB: x.rssMiB, ready: x.ready }));
  } catch (e) {
    harnessError = e.stack ?? String(e);
    say(harnessError);
  } finally {
    // A host short of its truth keeps the processes' logs (the report names the directory).
    const short = results.some((r) => Object.entries(r.truthJ).some(([id, t]) => Math.abs(Number(r.cluster.hosts.find((x) => x.host === id)?.j ?? 0) - t) > 1e-6 * t + 1e-6));
    if (short || harnessError) say(`logs kept in ${h.logDir}`);
    await h.stop(short || harnessError !== null);
    clearTimeout(deadline);
  }
  const report = {
    command: `node scripts/cluster-faults.mjs ${argv.join(' ')}`.trim(),
    machine: `${hostname()} ${cpus().length} × ${cpus()[0]?.model ?? '?'}, Node ${process.version}`,
    loadavg: loadavg().map((v) => Math.round(v * 100) / 100),
    startedAt: started.toISOString(),
    seconds: Math.round((Date.now() - started.getTime()) / 1000),
    cluster: { nodes: state.clickhouse.nodes.map((n) => ({ name: n.name, shard: n.shard })), brokers: state.kafka.brokers.length },
    harnessError,
    logs: h.logDir,
    processes,
    results,
    bills,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
  return 0;
}

process.exitCode = await main();

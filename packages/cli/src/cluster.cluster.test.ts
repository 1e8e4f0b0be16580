// The real cluster (`npm run test:cluster`: scripts/test-cluster.mjs starts it with scripts/cluster.mjs):
// 3 KRaft brokers (replication factor 3, min.insync.replicas 2), a ClickHouse 18.16 cluster of 2 shards with
// 2 replicas in shard 01, the shipped `wattsplit gateway`, two (then three) `wattsplit collector --cluster`
// processes in one consumer group (each of them storing part of the hosts' intervals) and `wattsplit agent`s on fake sensor trees whose joules are known exactly
// (scripts/cluster-faults.mjs, which measures; this file judges). Per experiment and host: every joule the
// host consumed is stored exactly once (through the Distributed tables and on every replica of its shard,
// nowhere else), its intervals chain without gap or overlap, attributions conserve it; the bills
// `wattsplit bill` prints through each server are equal. Skipped unless WATTSPLIT_CLUSTER_STATE is set.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = process.env.WATTSPLIT_REPO_ROOT ?? join(dirname(fileURLToPath(import.meta.url)), '../../..');

interface HostRow { host: string; j: number | string; rows: number | string; seqs: number | string; first_prev: number | string; last: number | string; span: number | string }
interface AttrRow { host: string; method: string; j: number | string }
interface NodeAccount { shard: string; hosts: HostRow[]; attributions: AttrRow[]; rollup: AttrRow[] }
interface ExperimentResult {
  experiment: string;
  expected: string;
  error: string | null;
  notes: string[];
  /** How the driver's wait for the stored sums ended: 'equal', 'stable' (short and not moving: lost) or 'timeout' (late). */
  settled?: string;
  hosts: string[];
  /** The telemetry partition of each host (the harness picks hosts on distinct partitions). */
  partitionsOfHosts: Record<string, number>;
  /** Host intervals each collector of the group stored during the experiment (its /metrics). */
  intervalsByCollector: Record<string, number>;
  truthJ: Record<string, number>;
  cluster: { hosts: HostRow[]; attributions: AttrRow[] };
  nodes: Record<string, NodeAccount>;
  unexpectedDeaths: string[];
  centralAlive: Record<string, boolean>;
  seconds: number;
}
interface Bill { billing_source: string; tenants: { tenant: string; joules: number }[]; error?: string }
interface Report { skipped?: string; harnessError: string | null; results: ExperimentResult[]; bills: Record<string, Bill>; seconds: number; loadavg: number[] }

const n = (v: number | string | undefined) => Number(v ?? 0);
const close = (a: number, b: number, rel = 1e-6) => Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b)) + 1e-6;

function skipReason(): string | false {
  if (!process.env.WATTSPLIT_CLUSTER_STATE) return 'WATTSPLIT_CLUSTER_STATE not set (npm run test:cluster starts the cluster and sets it)';
  return false;
}

function runHarness(): Promise<{ code: number; out: string; err: string }> {
  return new Promise((res) => {
    const child = spawn(process.execPath, [join(root, 'scripts/cluster-faults.mjs')], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (c) => res({ code: c ?? 1, out, err }));
  });
}

function checkHost(r: ExperimentResult, host: string): void {
  const truth = r.truthJ[host]!;
  assert.ok(truth > 0, `${host}: the driver counted no energy`);
  const c = r.cluster.hosts.find((x) => x.host === host);
  assert.ok(c, `${host}: nothing stored`);
  assert.ok(close(n(c.j), truth), `${host}: stored ${n(c.j)} J through the Distributed table, the host consumed ${truth} J (the wait for it ended ${r.settled ?? '?'})`);
  assert.equal(n(c.rows), n(c.seqs), `${host}: ${n(c.rows)} interval rows for ${n(c.seqs)} seqs after FINAL`);
  // Every interval covers (prev_seq, seq]; together they cover (first, last] once: no gap, no overlap.
  assert.equal(n(c.span), n(c.last) - n(c.first_prev), `${host}: intervals cover ${n(c.span)} seqs between ${n(c.first_prev)} and ${n(c.last)}`);
  const methods = r.cluster.attributions.filter((a) => a.host === host);
  assert.ok(methods.some((a) => a.method === 'cpu_share'), `${host}: no cpu_share attributions`);
  for (const a of methods) assert.ok(close(n(a.j), truth), `${host}: ${a.method} attributed ${n(a.j)} J of ${truth} J`);

  // One shard holds the host; each of its replicas holds all of it, the other shard none.
  const holders = Object.entries(r.nodes).filter(([, v]) => v.hosts.some((x) => x.host === host));
  const shards = new Set(holders.map(([, v]) => v.shard));
  assert.equal(shards.size, 1, `${host}: rows on shards ${[...shards].join(', ')}`);
  const shard = [...shards][0]!;
  const replicas = Object.entries(r.nodes).filter(([, v]) => v.shard === shard);
  assert.equal(holders.length, replicas.length, `${host}: on ${holders.map(([k]) => k).join(', ')} of shard ${shard}'s replicas ${replicas.map(([k]) => k).join(', ')}`);
  for (const [name, v] of replicas) {
    const l = v.hosts.find((x) => x.host === host)!;
    assert.ok(close(n(l.j), truth), `${host} on ${name}: ${n(l.j)} J of ${truth} J`);
    assert.equal(n(l.rows), n(c.rows), `${host} on ${name}: ${n(l.rows)} rows, the cluster ${n(c.rows)}`);
    for (const a of methods) {
      const la = v.attributions.find((x) => x.host === host && x.method === a.method);
      assert.ok(la && close(n(la.j), truth), `${host} on ${name}: ${a.method} ${n(la?.j)} J of ${truth} J`);
    }
  }
}

test('cluster: a broker killed, a ClickHouse replica killed, a collector added and removed: every joule stored once, bills equal across shards and replicas', { skip: skipReason(), timeout: 900_000 }, async (t) => {
  const { code, out, err } = await runHarness();
  const last = out.trim().split('\n').pop() ?? '';
  let report: Report;
  try {
    report = JSON.parse(last) as Report;
  } catch {
    assert.fail(`cluster-faults.mjs exited ${code} without a JSON report; stderr tail:\n${err.slice(-3000)}`);
  }
  if (report.skipped) {
    t.skip(report.skipped);
    return;
  }
  t.diagnostic(`${report.seconds} s, load average ${report.loadavg.join(' ')}`);
  assert.equal(report.harnessError, null, `harness failed: ${report.harnessError ?? ''}\n${err.slice(-2000)}`);
  assert.deepEqual(report.results.map((r) => r.experiment), ['kafka_broker_killed', 'clickhouse_replica_killed', 'collector_added_removed']);
  for (const r of report.results) {
    await t.test(r.experiment, () => {
      t.diagnostic(`${r.experiment}: ${r.seconds} s; ${r.notes.join('; ')}; stored sums ${r.settled ?? '?'}`);
      assert.equal(r.error, null, `${r.experiment}: ${r.error ?? ''}`);
      assert.deepEqual(r.unexpectedDeaths, [], `${r.experiment}: processes died`);
      for (const [name, alive] of Object.entries(r.centralAlive)) assert.ok(alive, `${r.experiment}: ${name} is not running`);
      assert.deepEqual(Object.keys(r.truthJ).sort(), [...r.hosts].sort(), `${r.experiment}: the hosts the driver counted`);
      assert.equal(new Set(r.hosts.map((h) => r.partitionsOfHosts[h])).size, r.hosts.length, `${r.experiment}: hosts on partitions ${JSON.stringify(r.partitionsOfHosts)}`);
      // Several collectors in one consumer group, each doing part of the work: every member stored intervals.
      const members = r.experiment === 'collector_added_removed' ? ['collector-1', 'collector-2', 'collector-3'] : ['collector-1', 'collector-2'];
      t.diagnostic(`${r.experiment}: intervals stored per collector ${JSON.stringify(r.intervalsByCollector)}`);
      for (const c of members) assert.ok((r.intervalsByCollector[c] ?? 0) > 0, `${r.experiment}: ${c} stored no interval (${JSON.stringify(r.intervalsByCollector)})`);
      for (const host of Object.keys(r.truthJ)) checkHost(r, host);
    });
  }
  await t.test('bills through every server are equal', () => {
    const bills = Object.entries(report.bills);
    assert.equal(bills.length, 3);
    for (const [name, b] of bills) assert.ok(!b.error && b.tenants.length >= 2, `bill through ${name}: ${b.error ?? JSON.stringify(b).slice(0, 200)}`);
    const [first, ...rest] = bills;
    const byTenant = (b: Bill) => Object.fromEntries(b.tenants.map((x) => [x.tenant, x.joules]));
    const ref = byTenant(first![1]);
    for (const [name, b] of rest) {
      const got = byTenant(b);
      assert.deepEqual(Object.keys(got).sort(), Object.keys(ref).sort(), `tenants billed through ${name}`);
      for (const [tenant, j] of Object.entries(ref)) assert.ok(close(got[tenant]!, j, 1e-9), `${tenant}: ${got[tenant]} J through ${name}, ${j} J through ${first![0]}`);
    }
    // Rollups are the billing source only where inserts are deduplicated (22.2+); on 18.16 bills read attributions FINAL.
    if (first![1].billing_source === 'rollups') {
      for (const r of report.results) {
        for (const host of Object.keys(r.truthJ)) {
          const holders = Object.values(r.nodes).filter((v) => v.hosts.some((x) => x.host === host));
          for (const v of holders) for (const a of v.rollup.filter((x) => x.host === host)) assert.ok(close(n(a.j), r.truthJ[host]!), `${host}: rollup ${a.method} ${n(a.j)} J of ${r.truthJ[host]} J`);
        }
      }
    }
  });
});

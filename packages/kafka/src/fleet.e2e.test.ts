/**
 * Fleet mode end to end, on real servers: simulated hosts (agents' GrpcIngestClient) → gateway (gRPC)
 * → Kafka (KafkaBus, kafkajs) → collector (NestJS, its own process) → ClickHouse server; then SQL.
 * Faults: the collector SIGKILLed and restarted, a poison message, ClickHouse unreachable for a while.
 * After each: every interval stored once, and total attributed energy == total measured energy.
 * Each test uses its own topic namespace, consumer group and database.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { TOPICS, silentLogger, type BusMessage } from '@wattsplit/wire';
import { frameAt, type HostSpec } from '@wattsplit/collector/test-frames';
import { startGateway, type Gateway } from '@wattsplit/gateway';
import { GrpcIngestClient } from '@wattsplit/agent';
import { ClickHouseServerStore } from '@wattsplit/store';
import { KafkaBus } from './kafkajs-bus.js';
import { NamespacedBus } from './namespaced-bus.js';
import { waitFor } from './bus-contract-suite.js';

const brokers = process.env.WATTSPLIT_TEST_KAFKA;
const chUrl = process.env.WATTSPLIT_TEST_CLICKHOUSE_URL;
const skip = !brokers
  ? 'Kafka unavailable: WATTSPLIT_TEST_KAFKA is not set (run through scripts/test.mjs)'
  : !chUrl
    ? 'ClickHouse server unavailable: WATTSPLIT_TEST_CLICKHOUSE_URL is not set (run through scripts/test.mjs)'
    : false;

type SimHostSpec = HostSpec;

function hosts(prefix: string, n: number): SimHostSpec[] {
  return Array.from({ length: n }, (_, i) => ({
    hostId: `${prefix}-hv-${i}`,
    hardwareClass: 'xeon-e2e',
    onlineCpus: 32,
    raplW: 200 + 10 * i,
    bmcW: 400 + 10 * i,
    vms: { [`${prefix}-${i}-web`]: ['acme', 1], [`${prefix}-${i}-db`]: ['globex', 3] },
  }));
}

/** One agent per host: sends seq from..to in batches, retrying what the gateway answers RETRY (bounded). */
async function runAgents(gatewayAddr: string, specs: readonly SimHostSpec[], from: number, to: number, perBatch = 5): Promise<void> {
  await Promise.all(
    specs.map(async (h) => {
      const client = new GrpcIngestClient({ address: gatewayAddr, tls: false, logger: silentLogger, backoffBaseMs: 50, backoffCapMs: 500 });
      try {
        for (let s = from; s <= to; s += perBatch) {
          const frames = [];
          for (let q = s; q < Math.min(to + 1, s + perBatch); q++) frames.push(frameAt(h, q));
          const deadline = Date.now() + 30_000;
          for (;;) {
            const r = await client.send({ batchId: s, frames });
            if (r.kind === 'ok') break;
            assert.notEqual(r.kind, 'failed', `agent ${h.hostId} batch ${s}: ${r.kind === 'failed' ? r.error.message : ''}`);
            if (Date.now() > deadline) throw new Error(`agent ${h.hostId} batch ${s} still not acked`);
            await new Promise((res) => setTimeout(res, r.kind === 'retryable' ? Math.min(r.afterMs, 500) : 100));
          }
        }
      } finally {
        await client.close();
      }
    }),
  );
}

/** A TCP hop between the collector and ClickHouse that a test can cut (ClickHouse "unavailable"). */
class CuttableProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private down = false;
  port = 0;
  constructor(private readonly target: URL) {}
  async start(): Promise<void> {
    this.server = createServer((client) => {
      if (this.down) {
        client.destroy();
        return;
      }
      const upstream = connect(Number(this.target.port), this.target.hostname);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
  }
  cut(): void {
    this.down = true;
    for (const s of this.sockets) s.destroy();
  }
  restore(): void {
    this.down = false;
  }
  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

interface Fleet {
  ns: string;
  bus: NamespacedBus;
  kafka: KafkaBus;
  gateway: Gateway;
  store: ClickHouseServerStore;
  database: string;
  startCollector(url?: string, env?: Record<string, string>): Promise<ChildProcess>;
  stderr: string[];
}

const fixture = fileURLToPath(new URL('./fleet-collector.fixture.js', import.meta.url));

async function fleet(t: TestContext): Promise<Fleet> {
  const ns = `e2e-${randomUUID().slice(0, 8)}`;
  const database = `wattsplit_${ns.replace(/-/g, '_')}`;
  const kafka = new KafkaBus({ brokers: [brokers!], partitions: 4, sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500 });
  const bus = new NamespacedBus(kafka, ns);
  const producer = bus.producer();
  const gateway = await startGateway({ producer, port: 0, host: '127.0.0.1' });
  const store = new ClickHouseServerStore({ url: chUrl!, database, requestTimeoutMs: 10_000 });
  const children = new Set<ChildProcess>();
  const stderr: string[] = [];
  const startCollector = async (url = chUrl!, env: Record<string, string> = {}): Promise<ChildProcess> => {
    const child = spawn(process.execPath, [fixture], {
      env: { ...process.env, FLEET_BROKERS: brokers, FLEET_NAMESPACE: ns, FLEET_CLICKHOUSE_URL: url, FLEET_DATABASE: database, FLEET_GROUP: 'wattsplit-collector', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    child.on('exit', () => children.delete(child));
    child.stderr.on('data', (d: Buffer) => stderr.push(d.toString()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`collector did not get ready in 60 s: ${stderr.join('').slice(-2000)}`)), 60_000);
      child.stdout.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`collector exited (${code}) before ready: ${stderr.join('').slice(-2000)}`));
      });
    });
    return child;
  };
  t.after(async () => {
    for (const c of children) c.kill('SIGKILL');
    await gateway.close(500);
    await producer.close();
    for (const topic of [TOPICS.telemetry, TOPICS.attribution, TOPICS.deadLetter]) await kafka.deleteTopic(bus.topic(topic)).catch(() => undefined);
    await store.query(`DROP DATABASE IF EXISTS ${database}`).catch(() => undefined);
    await store.close();
    await bus.close();
    if (process.env.DEBUG_LOG) process.stderr.write(stderr.join(''));
  });
  return { ns, bus, kafka, gateway, store, database, startCollector, stderr };
}

const num = (v: unknown) => Number(v);

/** Every interval of every host stored exactly once, and attributed == measured (per row and in total). */
async function assertConserved(f: Fleet, hostIds: readonly string[], frames: number): Promise<void> {
  const intervals = frames - 1;
  const rows = (await f.store.query(`SELECT host, count() AS n, uniqExact(seq) AS u, min(seq) AS lo, max(seq) AS hi FROM host_samples FINAL GROUP BY host ORDER BY host`)).rows;
  assert.deepEqual(
    rows.map((r) => [r.host, num(r.n), num(r.u), num(r.lo), num(r.hi)]),
    [...hostIds].sort().map((h) => [h, intervals, intervals, 2, frames]),
  );
  const per = (await f.store.query(`SELECT host, seq, source, sum(dynamic_j + static_j) AS parts, any(measured_j) AS measured FROM attributions FINAL WHERE method = 'cpu_share' GROUP BY host, seq, source`)).rows;
  assert.ok(per.length >= hostIds.length * intervals, `attribution rows for every interval (${per.length})`);
  for (const r of per) assert.ok(Math.abs(num(r.parts) - num(r.measured)) <= 1e-6 * Math.max(1, num(r.measured)), `conservation ${JSON.stringify(r)}`);
  const tot = (await f.store.query(`SELECT (SELECT sum(dynamic_j + static_j) FROM attributions FINAL WHERE method = 'cpu_share') AS attributed, (SELECT sum(rapl_j + gpu_j + bmc_rest_j) FROM host_samples FINAL) AS measured`)).rows[0]!;
  assert.ok(num(tot.measured) > 0);
  assert.ok(Math.abs(num(tot.attributed) - num(tot.measured)) <= 1e-6 * num(tot.measured), `total attributed ${String(tot.attributed)} == total measured ${String(tot.measured)}`);
  // Nothing inserted twice: the hourly rollups, fed by every insert into attributions (even one that FINAL
  // later folds away), count each share once. ClickHouse 18.16 commits an insert's part in attributions before
  // the parts its materialized views write, so a read right after the last insert can see the attributions
  // without their rollups (a fresh-clone CI run, 2026-12-07: 38 shares of 76, the last host's insert): ask again
  // for a few seconds, fewer shares may be pending, more never go away.
  const rollupsVsFinal = async () =>
    (await f.store.query(
      `SELECT tenant, method, rs, fs FROM (SELECT tenant, method, sum(shares) AS rs FROM tenant_energy_hourly GROUP BY tenant, method)
         FULL OUTER JOIN (SELECT tenant, method, count() AS fs FROM attributions FINAL GROUP BY tenant, method) USING (tenant, method) WHERE rs != fs`,
    )).rows;
  let roll = await rollupsVsFinal();
  for (let i = 0; i < 50 && roll.length > 0 && roll.every((r) => num(r.rs) < num(r.fs)); i++) {
    await new Promise((r) => setTimeout(r, 200));
    roll = await rollupsVsFinal();
  }
  assert.deepEqual(roll, [], 'tenant rollups count each attribution share once');
}

async function storedIntervals(f: Fleet): Promise<number> {
  try {
    // host_samples and attributions are separate inserts: count an interval once both are in.
    const r = (await f.store.query(`SELECT (SELECT count() FROM host_samples FINAL) AS h, (SELECT uniqExact(host, seq) FROM attributions FINAL WHERE method = 'cpu_share') AS a`)).rows[0];
    return Math.min(num(r?.h ?? 0), num(r?.a ?? 0));
  } catch {
    return 0; // tables not created yet
  }
}

test('fleet: agents → gateway → Kafka → collector → ClickHouse; SQL shows the expected attributions, attributed == measured', { skip, timeout: 150_000 }, async (t) => {
  const f = await fleet(t);
  const specs = hosts(f.ns, 4);
  await f.startCollector();
  await f.store.init();
  const attr: BusMessage[] = [];
  const sub = await f.bus.subscribe({ topic: TOPICS.attribution, groupId: 'e2e-stream', handler: async (m) => void attr.push(...m) });
  t.after(() => sub.stop());
  const frames = 20;
  await runAgents(f.gateway.address, specs, 1, frames);
  await waitFor(async () => (await storedIntervals(f)) >= specs.length * (frames - 1), 60_000, 'all intervals stored');
  await assertConserved(f, specs.map((h) => h.hostId), frames);
  // CPU-time share: the db VM (3 cores) gets 3x the web VM's (1 core) dynamic RAPL energy on each host.
  const vm = (await f.store.query(`SELECT vm_uuid, sum(dynamic_j) AS d FROM attributions FINAL WHERE method = 'cpu_share' AND source = 'rapl' AND kind = 'vm' GROUP BY vm_uuid`)).rows;
  const d = new Map(vm.map((r) => [String(r.vm_uuid), num(r.d)]));
  for (let i = 0; i < specs.length; i++) {
    const web = d.get(`${f.ns}-${i}-web`)!;
    const db = d.get(`${f.ns}-${i}-db`)!;
    assert.ok(web > 0 && Math.abs(db / web - 3) < 1e-6, `host ${i}: db/web = ${db / web}`);
  }
  // Streaming consumers see the attributions on wattsplit.attribution.v1.
  await waitFor(() => attr.length > 0, 20_000, 'attribution batches published');
  assert.ok(attr.every((m) => specs.some((h) => h.hostId === m.key)), 'attribution messages are keyed by host');
});

/**
 * The collector (its own process, started with `env`) is SIGKILLed mid-stream and started again: it
 * resumes from the committed offsets and its checkpoints; every interval is stored once and
 * attributed == measured.
 */
async function killMidStreamAndRestart(t: TestContext, env: Record<string, string> = {}): Promise<void> {
  const f = await fleet(t);
  const specs = hosts(f.ns, 3);
  let collector = await f.startCollector(undefined, env);
  await f.store.init();
  const frames = 40;
  // Part 1 is stored; part 2 is in flight when the collector dies (processed or not, either is fine);
  // part 3 is sent while no collector runs. "Mid-stream" does not depend on how fast the collector is.
  await runAgents(f.gateway.address, specs, 1, 20, 2);
  await waitFor(async () => (await storedIntervals(f)) >= specs.length * 19, 60_000, 'part 1 stored before the kill');
  const t0 = Date.now();
  const phase = (what: string) => t.diagnostic(`${what} at +${Date.now() - t0} ms`);
  const racing = runAgents(f.gateway.address, specs, 21, 25, 2);
  collector.kill('SIGKILL');
  await new Promise((r) => collector.once('exit', r));
  await racing;
  const atKill = await storedIntervals(f);
  await runAgents(f.gateway.address, specs, 26, frames, 2);
  phase('agents done'); // the gateway keeps accepting: Kafka holds the backlog while no collector runs
  assert.ok(atKill < specs.length * (frames - 1), `the kill happened mid-stream (${atKill} stored)`);
  collector = await f.startCollector(undefined, env);
  phase('collector restarted');
  await waitFor(async () => (await storedIntervals(f)) >= specs.length * (frames - 1), 90_000, 'backlog drained after the restart');
  phase('backlog drained');
  await waitFor(async () => (await f.bus.lag(TOPICS.telemetry, 'wattsplit-collector')) === 0, 30_000, 'offsets committed to the end');
  await assertConserved(f, specs.map((h) => h.hostId), frames);
  // The restart was bridged by checkpoints (without them the interval across the kill can be lost).
  const cps = (await f.store.query(`SELECT host, max(seq) AS s FROM collector_checkpoints FINAL GROUP BY host ORDER BY host`)).rows;
  assert.deepEqual(cps.map((r) => [r.host, num(r.s)]), specs.map((h) => [h.hostId, frames]).sort());
  assert.doesNotMatch(f.stderr.join(''), /checkpoints refused/);
}

test('fleet fault: collector SIGKILLed mid-stream and restarted resumes from committed offsets; nothing lost or counted twice', { skip, timeout: 180_000 }, (t) => killMidStreamAndRestart(t));

test('fleet with @platformatic/kafka and store writes a second apart (wattsplit collector\'s defaults for it): collector SIGKILLed and restarted; nothing lost or counted twice', { skip, timeout: 180_000 }, (t) =>
  killMidStreamAndRestart(t, { FLEET_CLIENT: 'platformatic', FLEET_STORE_MIN_INTERVAL_MS: '1000' }),
);

test('fleet scale-out: a second collector joins mid-stream and the first one leaves; they share the partitions, nothing lost or counted twice', { skip, timeout: 180_000 }, async (t) => {
  const f = await fleet(t);
  const specs = hosts(f.ns, 6);
  const a = await f.startCollector();
  await f.store.init();
  const frames = 45;
  await runAgents(f.gateway.address, specs, 1, 15, 3);
  await waitFor(async () => (await storedIntervals(f)) >= specs.length * 14, 60_000, 'first part stored by collector A');
  // B joins (rebalance: A gives up some partitions) while frames keep coming.
  const b = await f.startCollector();
  await runAgents(f.gateway.address, specs, 16, 30, 3);
  // A leaves cleanly (rebalance: B takes every partition) while frames keep coming.
  const aExit = new Promise((r) => a.once('exit', r));
  a.kill('SIGTERM');
  await aExit;
  const atLeave = await storedIntervals(f);
  await runAgents(f.gateway.address, specs, 31, frames, 3);
  // A stored the first part alone (B did not exist yet); what was left when A exited, B stored alone.
  assert.ok(atLeave < specs.length * (frames - 1), `A left mid-stream (${atLeave} stored)`);
  await waitFor(async () => (await storedIntervals(f)) >= specs.length * (frames - 1), 90_000, 'every interval stored by the group');
  await waitFor(async () => (await f.bus.lag(TOPICS.telemetry, 'wattsplit-collector')) === 0, 30_000, 'offsets committed to the end');
  await assertConserved(f, specs.map((h) => h.hostId), frames);
  assert.equal(b.exitCode, null, 'collector B still running');
  assert.doesNotMatch(f.stderr.join(''), /checkpoints refused/);
});

test('fleet fault: a poison message goes to the dead-letter topic and its partition keeps flowing', { skip, timeout: 150_000 }, async (t) => {
  const f = await fleet(t);
  const specs = hosts(f.ns, 2);
  await f.startCollector();
  await f.store.init();
  const dlq: BusMessage[] = [];
  const sub = await f.bus.subscribe({ topic: TOPICS.deadLetter, groupId: 'e2e-dlq', handler: async (m) => void dlq.push(...m) });
  t.after(() => sub.stop());
  await runAgents(f.gateway.address, specs, 1, 10);
  // Garbage keyed like a real host: same partition as its frames.
  const p = f.bus.producer();
  t.after(() => p.close());
  assert.equal((await p.send(TOPICS.telemetry, [{ key: specs[0]!.hostId, value: new Uint8Array([0xff, 0xff, 0xff, 0x01, 0x02]) }])).kind, 'ok');
  await runAgents(f.gateway.address, specs, 11, 20);
  await waitFor(async () => (await storedIntervals(f)) >= specs.length * 19, 60_000, 'frames after the poison message stored');
  await waitFor(() => dlq.length >= 1, 20_000, 'dead letter published');
  assert.equal(dlq.length, 1);
  assert.equal(dlq[0]!.key, specs[0]!.hostId);
  assert.deepEqual([...dlq[0]!.value], [0xff, 0xff, 0xff, 0x01, 0x02]);
  assert.ok(Object.values(dlq[0]!.headers).some((v) => v === 'FRAME_DECODE_FAILED'), `DLQ headers name the error: ${JSON.stringify(dlq[0]!.headers)}`);
  await assertConserved(f, specs.map((h) => h.hostId), 20);
});

test('fleet fault: ClickHouse unreachable for a while: the backlog waits in Kafka and drains after; nothing lost or doubled', { skip, timeout: 180_000 }, async (t) => {
  const f = await fleet(t);
  const specs = hosts(f.ns, 3);
  const proxy = new CuttableProxy(new URL(chUrl!));
  await proxy.start();
  t.after(() => proxy.stop());
  await f.startCollector(`http://127.0.0.1:${proxy.port}`);
  await f.store.init();
  await runAgents(f.gateway.address, specs, 1, 10);
  await waitFor(async () => (await storedIntervals(f)) >= specs.length * 9, 60_000, 'first 10 frames stored');
  proxy.cut();
  await runAgents(f.gateway.address, specs, 11, 30);
  await new Promise((r) => setTimeout(r, 3_000));
  const during = await storedIntervals(f);
  assert.equal(during, specs.length * 9, 'nothing stored while ClickHouse is unreachable');
  assert.ok((await f.bus.lag(TOPICS.telemetry, 'wattsplit-collector')) > 0, 'the backlog waits in Kafka, uncommitted');
  proxy.restore();
  await waitFor(async () => (await storedIntervals(f)) >= specs.length * 29, 90_000, 'backlog drained after ClickHouse came back');
  await waitFor(async () => (await f.bus.lag(TOPICS.telemetry, 'wattsplit-collector')) === 0, 30_000, 'offsets committed to the end');
  await assertConserved(f, specs.map((h) => h.hostId), 30);
  assert.ok(f.stderr.join('').includes('STORE_UNAVAILABLE') || f.stderr.join('').includes('will redeliver'), 'the collector said why it was waiting');
});

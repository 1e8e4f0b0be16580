/* global fetch, AbortSignal */
// A real cluster on loopback for the cluster tests (scripts/cluster.mjs is its command line):
//   - Kafka: 3 brokers in KRaft combined mode (each broker is also a controller voter: killing one
//     leaves a 2-of-3 quorum), default.replication.factor=3, min.insync.replicas=2, no unclean election;
//   - ZooKeeper: one standalone server (ClickHouse 18.16 keeps replication and ON CLUSTER DDL queues in it;
//     org.apache.zookeeper:zookeeper from Maven Central, the same jar set scripts/kafka.sh fetches);
//   - ClickHouse: cluster `wattsplit` of 2 shards; shard 01 has two replicas (ch1, ch2), shard 02 one (ch3).
//     Every server has its own config dir, ports, data path, the same remote_servers, its own macros
//     ({shard}, {replica}) and distributed_ddl.
// Every process is detached in its own process group; pids, ports and paths live in
// .cache/cluster/state.json, and only what is recorded there is ever stopped. Ports are free ones below the
// kernel's ephemeral range (clusterPort), so a killed node's ports are still free when it comes back.
// Each start is bounded; a failure names the process, the reason and its log.
import { spawn, spawnSync } from 'node:child_process';
import { createConnection, createServer } from 'node:net';
import { closeSync, cpSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
export const CLUSTER_DIR = process.env.WATTSPLIT_CLUSTER_DIR ?? join(root, '.cache/cluster');
export const STATE_FILE = join(CLUSTER_DIR, 'state.json');
export const CLUSTER_NAME = 'wattsplit';
const KAFKA_HEAP = (process.env.WATTSPLIT_CLUSTER_KAFKA_HEAP ?? '-Xmx384m -Xms64m').split(/\s+/).filter(Boolean);
const ZK_HEAP = ['-Xmx128m', '-Xms32m'];
const KAFKA_START_S = Number(process.env.WATTSPLIT_CLUSTER_KAFKA_START_S ?? 150);
const CH_START_S = Number(process.env.WATTSPLIT_CLUSTER_CH_START_S ?? 60);

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

function portFree(port) {
  return new Promise((res) => {
    const s = createServer();
    s.on('error', () => res(false));
    s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
  });
}

/**
 * A free port below the kernel's ephemeral range (net.ipv4.ip_local_port_range), for the cluster's servers.
 * A broker or server the tests kill comes back on the same ports (the others' configs name them); a port from
 * the ephemeral range can be taken meanwhile by any outgoing connection or any bind(0) on the box (others'
 * tests, our own collectors and agents), and the restarted server would fail to bind. Falls back to an
 * OS-chosen port when the range starts too low to leave room.
 */
const taken = new Set();
export async function clusterPort() {
  let low = 32768;
  try {
    low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || low;
  } catch { /* not Linux: the usual default */ }
  const from = Math.max(10000, low - 12000);
  if (low - from < 1000) return freePort();
  for (let i = 0; i < 500; i++) {
    const p = from + Math.floor(Math.random() * (low - from));
    if (taken.has(p) || !(await portFree(p))) continue;
    taken.add(p);
    return p;
  }
  return freePort();
}

/** Alive and not a zombie. */
export function pidAlive(pid) {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Resident memory of a process, MiB (0 when gone). */
export function rssMiB(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : 0;
  } catch {
    return 0;
  }
}

function tcpAnswers(port, send, expect) {
  return new Promise((res) => {
    const s = createConnection({ port, host: '127.0.0.1' });
    let buf = '';
    const done = (v) => {
      s.destroy();
      res(v);
    };
    s.setTimeout(2000, () => done(false));
    s.on('error', () => done(false));
    s.on('connect', () => {
      if (!send) return done(true);
      s.write(send);
    });
    s.on('data', (d) => {
      buf += d.toString();
      if (buf.includes(expect)) done(true);
    });
    s.on('end', () => done(buf.includes(expect ?? '')));
  });
}

async function until(what, fn, timeoutS, proc) {
  const end = Date.now() + timeoutS * 1000;
  for (;;) {
    if (await fn()) return;
    if (proc && !pidAlive(proc.pid)) throw Object.assign(new Error(`${what}: the process exited during start (log: ${proc.log})\n${errorLines(proc.log, proc.from)}${tail(proc.log, 6)}`), { exitedDuringStart: true });
    if (Date.now() > end) throw new Error(`${what}: not ready within ${timeoutS} s (log: ${proc?.log ?? '-'})\n${proc ? tail(proc.log) : ''}`);
    await sleep(300);
  }
}

/**
 * The log's error lines from byte `from` on (where the process's start began: a server's log is appended to
 * across restarts), the last `n`, each cut to 400 characters: the message a stack trace's tail leaves out.
 */
function errorLines(file, from = 0, n = 4) {
  try {
    const lines = readFileSync(file).subarray(from).toString('utf8').split('\n');
    const errs = lines.filter((l) => /<(Error|Fatal)>|Exception|ERROR/.test(l) && !/^\s*\d+\. /.test(l)).slice(-n);
    return errs.length ? `${errs.map((l) => l.slice(0, 400)).join('\n')}\n…\n` : '';
  } catch {
    return '';
  }
}

function fileSize(file) {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

function tail(file, n = 15) {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-n).join('\n');
  } catch {
    return '';
  }
}

/** Starts `cmd` detached in its own process group, stdout+stderr to `log`; returns the pid. */
function launch(cmd, args, log, env = {}) {
  const fd = openSync(log, 'a');
  const child = spawn(cmd, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', fd, fd], detached: true });
  closeSync(fd);
  child.unref();
  return child.pid;
}

/** SIGTERM (or `sig`) to a process group we started, SIGKILL after `graceMs`; resolves when it is gone. */
export async function stopPid(pid, sig = 'SIGTERM', graceMs = 15000) {
  if (!pidAlive(pid)) return 'not running';
  const kill = (s) => {
    try {
      process.kill(-pid, s);
    } catch {
      try {
        process.kill(pid, s);
      } catch { /* gone */ }
    }
  };
  kill(sig);
  const end = Date.now() + graceMs;
  while (pidAlive(pid) && Date.now() < end) await sleep(200);
  if (!pidAlive(pid)) return sig;
  kill('SIGKILL');
  const end2 = Date.now() + 10000;
  while (pidAlive(pid) && Date.now() < end2) await sleep(200);
  return `${sig}, SIGKILL after ${graceMs} ms`;
}

export function readState() {
  try {
    return JSON.parse(readFileSync(STATE_FILE, 'utf8'));
  } catch {
    return undefined;
  }
}

export function writeState(s) {
  mkdirSync(CLUSTER_DIR, { recursive: true });
  writeFileSync(STATE_FILE, JSON.stringify(s, null, 2));
}

// ───────────────────────────── prerequisites ─────────────────────────────

function has(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** The Kafka jar directory (Kafka's jars include zookeeper-3.8.x and its dependencies), or why not. */
export function kafkaJars() {
  if (!has('java')) return { why: 'java not found (apt-get install default-jre-headless; see scripts/provision.sh)' };
  let r = spawnSync('bash', [join(root, 'scripts/kafka.sh'), 'jars'], { encoding: 'utf8' });
  if (r.status !== 0) {
    if (!has('mvn')) return { why: 'Kafka jars not cached and mvn not found (apt-get install maven; scripts/kafka.sh fetch)' };
    const f = spawnSync('bash', [join(root, 'scripts/kafka.sh'), 'fetch'], { encoding: 'utf8', timeout: 300000 });
    if (f.status !== 0) return { why: `scripts/kafka.sh fetch failed: ${(f.stderr ?? '').trim().split('\n').slice(-2).join(' | ')}` };
    r = spawnSync('bash', [join(root, 'scripts/kafka.sh'), 'jars'], { encoding: 'utf8' });
  }
  const dir = r.stdout.trim().split('\n').pop();
  if (!dir || !existsSync(dir)) return { why: `scripts/kafka.sh jars printed ${JSON.stringify(dir)}` };
  const zk = spawnSync('sh', ['-c', `ls "${dir}"/zookeeper-3*.jar`], { encoding: 'utf8' }).stdout.trim();
  if (!zk) return { why: `no zookeeper jar in ${dir} (Kafka ${process.env.KAFKA_VERSION ?? '3.9.1'} pulls org.apache.zookeeper:zookeeper)` };
  return { dir };
}

export function clickhouseCommand() {
  if (process.env.CLICKHOUSE_BIN) return { cmd: process.env.CLICKHOUSE_BIN, pre: ['server'] };
  for (const c of ['clickhouse-server', '/usr/sbin/clickhouse-server']) if (has(c) || existsSync(c)) return { cmd: c === 'clickhouse-server' ? spawnSync('sh', ['-c', 'command -v clickhouse-server'], { encoding: 'utf8' }).stdout.trim() : c, pre: [] };
  if (has('clickhouse')) return { cmd: 'clickhouse', pre: ['server'] };
  return { why: 'no clickhouse-server binary (apt-get install clickhouse-server; see scripts/provision.sh)' };
}

// ───────────────────────────── ZooKeeper ─────────────────────────────

async function startZooKeeper(s, jars) {
  const z = s.zookeeper;
  mkdirSync(z.data, { recursive: true });
  writeFileSync(join(z.dir, 'zoo.cfg'), [
    'tickTime=500', 'initLimit=10', 'syncLimit=5', `dataDir=${z.data}`, `clientPort=${z.port}`, 'clientPortAddress=127.0.0.1',
    'maxClientCnxns=200', 'admin.enableServer=false', '4lw.commands.whitelist=ruok,srvr,mntr', 'autopurge.purgeInterval=1',
    'minSessionTimeout=1000', 'maxSessionTimeout=30000', '',
  ].join('\n'));
  writeFileSync(join(z.dir, 'log4j.properties'), `log4j.rootLogger=WARN, file\nlog4j.appender.file=org.apache.log4j.FileAppender\nlog4j.appender.file.File=${z.dir}/zookeeper.log\nlog4j.appender.file.layout=org.apache.log4j.PatternLayout\nlog4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n`);
  z.log = join(z.dir, 'stdout.log');
  z.pid = launch('java', [...ZK_HEAP, '-XX:+UseSerialGC', '-Dzookeeper.4lw.commands.whitelist=ruok,srvr,mntr', `-Dlog4j.configuration=file:${z.dir}/log4j.properties`, '-cp', `${jars}/*`, 'org.apache.zookeeper.server.ZooKeeperServerMain', join(z.dir, 'zoo.cfg')], z.log);
  await until('ZooKeeper', () => tcpAnswers(z.port, 'ruok', 'imok'), 60, { pid: z.pid, log: z.log });
}

// ───────────────────────────── Kafka ─────────────────────────────

function kafkaProperties(s, b) {
  const voters = s.kafka.brokers.map((x) => `${x.id}@127.0.0.1:${x.controllerPort}`).join(',');
  return [
    'process.roles=broker,controller', `node.id=${b.id}`, `controller.quorum.voters=${voters}`,
    `listeners=PLAINTEXT://127.0.0.1:${b.port},CONTROLLER://127.0.0.1:${b.controllerPort}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${b.port}`, 'controller.listener.names=CONTROLLER',
    'listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT', 'inter.broker.listener.name=PLAINTEXT',
    `log.dirs=${b.data}`, 'num.partitions=4', 'auto.create.topics.enable=true', 'delete.topic.enable=true',
    'default.replication.factor=3', 'min.insync.replicas=2', 'unclean.leader.election.enable=false',
    'offsets.topic.replication.factor=3', 'offsets.topic.num.partitions=4',
    'transaction.state.log.replication.factor=3', 'transaction.state.log.min.isr=2',
    // A killed follower leaves the ISR after 10 s (default 30 s): acks=all produce waits that long at most.
    'replica.lag.time.max.ms=10000', 'broker.session.timeout.ms=6000', 'broker.heartbeat.interval.ms=1000',
    'group.initial.rebalance.delay.ms=0', 'log.retention.hours=24', 'log.segment.bytes=67108864',
    'num.network.threads=2', 'num.io.threads=2', 'background.threads=2', 'num.replica.fetchers=1', '',
  ].join('\n');
}

function brokerStarted(b) {
  try {
    return readFileSync(join(b.dir, 'server.log'), 'utf8').includes('Kafka Server started');
  } catch {
    return false;
  }
}

/** Starts broker `b` (formats its log dir on first start); does not wait. */
function launchBroker(s, b, jars) {
  mkdirSync(b.data, { recursive: true });
  writeFileSync(join(b.dir, 'server.properties'), kafkaProperties(s, b));
  writeFileSync(join(b.dir, 'log4j.properties'), `log4j.rootLogger=INFO, file\nlog4j.appender.file=org.apache.log4j.FileAppender\nlog4j.appender.file.File=${b.dir}/server.log\nlog4j.appender.file.layout=org.apache.log4j.PatternLayout\nlog4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\nlog4j.logger.kafka=INFO\nlog4j.logger.org.apache.kafka=INFO\nlog4j.logger.state.change.logger=WARN\nlog4j.logger.kafka.request.logger=WARN\n`);
  const cp = `${jars}/*`;
  if (!existsSync(join(b.data, 'meta.properties'))) {
    const f = spawnSync('java', ['-Xmx128m', `-Dlog4j.configuration=file:${b.dir}/log4j.properties`, '-cp', cp, 'kafka.tools.StorageTool', 'format', '-t', s.kafka.clusterId, '-c', join(b.dir, 'server.properties')], { encoding: 'utf8', timeout: 60000 });
    if (f.status !== 0) throw new Error(`Kafka broker ${b.id}: StorageTool format failed: ${(f.stdout + f.stderr).trim().split('\n').slice(-3).join(' | ')}`);
  }
  writeFileSync(join(b.dir, 'server.log'), '');
  b.log = join(b.dir, 'stdout.log');
  b.pid = launch('java', [...KAFKA_HEAP, '-XX:+UseG1GC', '-XX:MaxGCPauseMillis=20', '-Djava.awt.headless=true', `-Dlog4j.configuration=file:${b.dir}/log4j.properties`, '-cp', cp, 'kafka.Kafka', join(b.dir, 'server.properties')], b.log);
}

async function waitBroker(b, timeoutS) {
  await until(`Kafka broker ${b.id}`, async () => brokerStarted(b) && (await tcpAnswers(b.port)), timeoutS, { pid: b.pid, log: join(b.dir, 'server.log') });
}

// ───────────────────────────── ClickHouse ─────────────────────────────

function chConfig(s, n) {
  const shards = [...new Set(s.clickhouse.nodes.map((x) => x.shard))].sort();
  const remote = shards
    .map((sh) => `      <shard><internal_replication>true</internal_replication>\n${s.clickhouse.nodes.filter((x) => x.shard === sh).map((x) => `        <replica><host>127.0.0.1</host><port>${x.tcp}</port></replica>`).join('\n')}\n      </shard>`)
    .join('\n');
  return `<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>${n.dir}/log/server.log</log><errorlog>${n.dir}/log/server.err.log</errorlog><size>10M</size><count>2</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>${n.http}</http_port>
  <tcp_port>${n.tcp}</tcp_port>
  <interserver_http_port>${n.interserver}</interserver_http_port>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <path>${n.dir}/data/</path>
  <tmp_path>${n.dir}/data/tmp/</tmp_path>
  <user_files_path>${n.dir}/data/user_files/</user_files_path>
  <format_schema_path>${n.dir}/data/format_schemas/</format_schema_path>
  <users_config>${n.dir}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <max_connections>256</max_connections>
  <keep_alive_timeout>10</keep_alive_timeout>
  <max_concurrent_queries>64</max_concurrent_queries>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <mark_cache_size>67108864</mark_cache_size>
  <mlock_executable>false</mlock_executable>
  <!-- parts replaced by a merge are deleted after 30 s (default 480 s): a test run leaves ~10x fewer files.
       replicated_max_ratio_of_wrong_parts 1 (default 0.5): a replica SIGKILLed while a merge's part was written but
       not yet registered in ZooKeeper refuses to start when that part holds over half the table's rows ("The local
       set of parts ... doesn't look like the set of parts in ZooKeeper: 4.23 thousand rows of 8.09 thousand ...",
       seen 2026-12-07 on these small tables); with 1 it sets the part aside (ignored_*) and fetches what it lacks
       from the other replica, which is what the check's own hint (force_restore_data) would do. docs/fleet.md. -->
  <merge_tree><old_parts_lifetime>30</old_parts_lifetime><replicated_max_ratio_of_wrong_parts>1</replicated_max_ratio_of_wrong_parts></merge_tree>
  <remote_servers>
    <${CLUSTER_NAME}>
${remote}
    </${CLUSTER_NAME}>
  </remote_servers>
  <zookeeper>
    <node><host>127.0.0.1</host><port>${s.zookeeper.port}</port></node>
    <session_timeout_ms>10000</session_timeout_ms>
    <operation_timeout_ms>5000</operation_timeout_ms>
  </zookeeper>
  <macros><cluster>${CLUSTER_NAME}</cluster><shard>${n.shard}</shard><replica>${n.name}</replica></macros>
  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
</yandex>
`;
}

const CH_USERS = `<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>1000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`;

export async function chPing(n) {
  try {
    const r = await fetch(`http://127.0.0.1:${n.http}/ping`, { signal: AbortSignal.timeout(2000) });
    return r.ok && (await r.text()).startsWith('Ok');
  } catch {
    return false;
  }
}

function launchClickHouse(s, n, ch) {
  for (const d of ['data/tmp', 'data/user_files', 'log']) mkdirSync(join(n.dir, d), { recursive: true });
  writeFileSync(join(n.dir, 'config.xml'), chConfig(s, n));
  writeFileSync(join(n.dir, 'users.xml'), CH_USERS);
  n.log = join(n.dir, 'log/stdout.log');
  n.errLogFrom = fileSize(join(n.dir, 'log/server.err.log')); // a failed start's error lines are read from here
  n.pid = launch(ch.cmd, [...ch.pre, `--config-file=${join(n.dir, 'config.xml')}`], n.log);
}

async function waitClickHouse(n, timeoutS) {
  await until(`ClickHouse ${n.name}`, () => chPing(n), timeoutS, { pid: n.pid, log: join(n.dir, 'log/server.err.log'), from: n.errLogFrom });
}

// ───────────────────────────── the whole cluster ─────────────────────────────

/** The env the cluster tests and processes read. */
export function clusterEnv(s) {
  return {
    WATTSPLIT_CLUSTER_STATE: STATE_FILE,
    WATTSPLIT_CLUSTER_KAFKA: s.kafka.brokers.map((b) => `127.0.0.1:${b.port}`).join(','),
    WATTSPLIT_CLUSTER_CLICKHOUSE_URLS: s.clickhouse.nodes.map((n) => `http://127.0.0.1:${n.http}`).join(','),
    WATTSPLIT_CLUSTER_NAME: CLUSTER_NAME,
  };
}

/** Starts ZooKeeper, 3 Kafka brokers and 3 ClickHouse servers; on any failure stops what it started and throws. */
export async function up(say = () => {}) {
  const prev = readState();
  if (prev && (prev.zookeeper && pidAlive(prev.zookeeper.pid))) {
    const st = await status(prev);
    if (st.every((x) => x.ready)) return prev;
    throw new Error(`a cluster is recorded in ${STATE_FILE} but not all of it answers (${st.filter((x) => !x.ready).map((x) => x.name).join(', ')}); run scripts/cluster.mjs down first`);
  }
  const jars = kafkaJars();
  if (jars.why) throw Object.assign(new Error(`Kafka/ZooKeeper unavailable: ${jars.why}`), { unavailable: true });
  const ch = clickhouseCommand();
  if (ch.why) throw Object.assign(new Error(`ClickHouse unavailable: ${ch.why}`), { unavailable: true });
  removeInBackground(CLUSTER_DIR);
  mkdirSync(CLUSTER_DIR, { recursive: true });
  const t0 = Date.now();
  const id = spawnSync('java', ['-cp', `${jars.dir}/*`, 'kafka.tools.StorageTool', 'random-uuid'], { encoding: 'utf8', timeout: 60000 }).stdout.trim().split('\n').pop();
  if (!id) throw new Error('kafka.tools.StorageTool random-uuid printed nothing');
  const s = {
    startedAt: new Date().toISOString(),
    jars: jars.dir,
    zookeeper: { name: 'zookeeper', dir: join(CLUSTER_DIR, 'zookeeper'), data: join(CLUSTER_DIR, 'zookeeper/data'), port: await clusterPort() },
    kafka: { clusterId: id, brokers: [] },
    clickhouse: { cluster: CLUSTER_NAME, command: ch, nodes: [] },
  };
  for (const k of [1, 2, 3]) {
    const dir = join(CLUSTER_DIR, `kafka${k}`);
    s.kafka.brokers.push({ name: `kafka${k}`, id: k, dir, data: join(dir, 'data'), port: await clusterPort(), controllerPort: await clusterPort() });
  }
  for (const [name, shard] of [['ch1', '01'], ['ch2', '01'], ['ch3', '02']]) {
    s.clickhouse.nodes.push({ name, shard, dir: join(CLUSTER_DIR, name), http: await clusterPort(), tcp: await clusterPort(), interserver: await clusterPort() });
  }
  writeState(s);
  try {
    say('starting ZooKeeper...');
    await startZooKeeper(s, jars.dir);
    writeState(s);
    say('starting 3 Kafka brokers (KRaft) and 3 ClickHouse servers...');
    for (const b of s.kafka.brokers) launchBroker(s, b, jars.dir);
    writeState(s);
    for (const n of s.clickhouse.nodes) launchClickHouse(s, n, ch);
    writeState(s);
    await Promise.all([...s.clickhouse.nodes.map((n) => waitClickHouse(n, CH_START_S)), ...s.kafka.brokers.map((b) => waitBroker(b, KAFKA_START_S))]);
  } catch (e) {
    say(`start failed, stopping what started: ${e.message.split('\n')[0]}`);
    await down(() => {});
    throw e;
  }
  s.startSeconds = Math.round((Date.now() - t0) / 100) / 10;
  writeState(s);
  return s;
}

/** The process recorded for `node` is still the one we started (its command line names the node's dir). */
function ours(node) {
  if (!pidAlive(node.pid)) return false;
  try {
    return readFileSync(`/proc/${node.pid}/cmdline`, 'utf8').includes(node.dir);
  } catch {
    return false;
  }
}

async function stopOwned(node, graceMs, sig = 'SIGTERM') {
  if (!pidAlive(node.pid)) return 'not running';
  if (!ours(node)) return `pid ${node.pid} is not ours any more (left alone)`;
  const t = Date.now();
  const how = await stopPid(node.pid, sig, graceMs);
  return `${how} (${((Date.now() - t) / 1000).toFixed(1)} s)`;
}

/** Stops what state.json records (nothing else) and deletes the cluster's data. */
export async function down(say = () => {}) {
  const s = readState();
  if (!s) return;
  const procs = [...(s.clickhouse?.nodes ?? []), ...(s.kafka?.brokers ?? []), ...(s.zookeeper ? [s.zookeeper] : [])];
  // ClickHouse first (it holds ZooKeeper sessions), then Kafka, ZooKeeper last. The data is deleted
  // afterwards, so the grace periods are short.
  await Promise.all((s.clickhouse?.nodes ?? []).map(async (n) => say(`${n.name}: ${await stopOwned(n, 5000)}`)));
  await Promise.all((s.kafka?.brokers ?? []).map(async (b) => say(`${b.name}: ${await stopOwned(b, 10000)}`)));
  if (s.zookeeper) say(`zookeeper: ${await stopOwned(s.zookeeper, 5000)}`);
  if (procs.some((p) => ours(p))) throw new Error(`still running after stop: ${procs.filter((p) => pidAlive(p.pid)).map((p) => `${p.name} (pid ${p.pid})`).join(', ')}`);
  removeInBackground(CLUSTER_DIR);
}

/**
 * Copies the servers' logs (ZooKeeper, each broker's server.log and stdout, each ClickHouse server's log dir)
 * to `dest` before `down` deletes them: a failed run keeps what the servers said. Returns `dest`.
 */
export function saveLogs(dest, s = readState()) {
  if (!s) return dest;
  mkdirSync(dest, { recursive: true });
  const copy = (from, to) => {
    if (existsSync(from)) cpSync(from, join(dest, to), { recursive: true });
  };
  copy(join(s.zookeeper.dir, 'zookeeper.log'), 'zookeeper.log');
  copy(join(s.zookeeper.dir, 'stdout.log'), 'zookeeper.stdout.log');
  for (const b of s.kafka.brokers) {
    copy(join(b.dir, 'server.log'), `${b.name}.server.log`);
    copy(join(b.dir, 'stdout.log'), `${b.name}.stdout.log`);
  }
  for (const n of s.clickhouse.nodes) copy(join(n.dir, 'log'), n.name);
  return dest;
}

/**
 * Moves `dir` aside and deletes it in a detached `rm -rf`: the servers' data is ~10^5 small files (a part per
 * insert, a file per column) and deleting them on a busy disk takes minutes. Leftovers of an interrupted
 * delete (`<dir>.deleting-*`) are removed by the next call.
 */
function removeInBackground(dir) {
  const parent = dirname(dir);
  const base = dir.slice(parent.length + 1);
  const aside = [];
  mkdirSync(parent, { recursive: true });
  if (existsSync(dir)) {
    const to = `${dir}.deleting-${Date.now()}`;
    renameSync(dir, to);
    aside.push(to);
  }
  for (const e of readdirSync(parent)) if (e.startsWith(`${base}.deleting-`) && !aside.includes(join(parent, e))) aside.push(join(parent, e));
  if (!aside.length) return;
  spawn('rm', ['-rf', ...aside], { detached: true, stdio: 'ignore' }).unref();
}

/** Per process: alive, answering, RSS. */
export async function status(s = readState()) {
  if (!s) return [];
  const out = [];
  out.push({ name: 'zookeeper', pid: s.zookeeper.pid, port: s.zookeeper.port, ready: pidAlive(s.zookeeper.pid) && (await tcpAnswers(s.zookeeper.port, 'ruok', 'imok')), rssMiB: rssMiB(s.zookeeper.pid) });
  for (const b of s.kafka.brokers) out.push({ name: b.name, pid: b.pid, port: b.port, ready: pidAlive(b.pid) && (await tcpAnswers(b.port)), rssMiB: rssMiB(b.pid) });
  for (const n of s.clickhouse.nodes) out.push({ name: n.name, shard: n.shard, pid: n.pid, http: n.http, tcp: n.tcp, ready: pidAlive(n.pid) && (await chPing(n)), rssMiB: rssMiB(n.pid) });
  return out;
}

function findNode(s, name) {
  const b = s.kafka.brokers.find((x) => x.name === name);
  if (b) return { kind: 'kafka', node: b };
  const n = s.clickhouse.nodes.find((x) => x.name === name);
  if (n) return { kind: 'clickhouse', node: n };
  throw new Error(`no cluster process named ${JSON.stringify(name)} (kafka1..3, ch1..3)`);
}

/** Stops one broker or ClickHouse server (SIGKILL by default: a crash), keeping its data. */
export async function stopNode(name, sig = 'SIGKILL') {
  const s = readState();
  if (!s) throw new Error(`no cluster (${STATE_FILE} missing)`);
  const { node } = findNode(s, name);
  return stopOwned(node, 10000, sig);
}

/** Starts a stopped broker or ClickHouse server again, same ports, config and data; waits until it answers. */
export async function startNode(name, onRetry = () => {}) {
  const s = readState();
  if (!s) throw new Error(`no cluster (${STATE_FILE} missing)`);
  const { kind, node } = findNode(s, name);
  if (pidAlive(node.pid)) throw new Error(`${name} is running (pid ${node.pid})`);
  // The same ports as before (the other nodes' configs name them): say so if something took one meanwhile.
  const ports = kind === 'kafka' ? [node.port, node.controllerPort] : [node.http, node.tcp, node.interserver];
  for (const p of ports) {
    const end = Date.now() + 10000;
    while (!(await portFree(p))) {
      if (Date.now() > end) throw new Error(`${name}: its port ${p} is taken by another process since the cluster started (${spawnSync('sh', ['-c', `ss -Htanp 'sport = :${p}' 2>/dev/null | head -3`], { encoding: 'utf8' }).stdout.trim() || 'ss shows nothing'})`);
      await sleep(500);
    }
  }
  if (kind === 'kafka') {
    launchBroker(s, node, s.jars);
    writeState(s);
    await waitBroker(node, KAFKA_START_S);
  } else {
    // A server that exits during its start is started again, twice at most, as a supervisor would (systemd's
    // Restart=on-failure): seen once in CI (2026-12-07), ClickHouse 18.16 exiting while it loaded its tables right
    // after a SIGKILL. Each failed start is reported to `onRetry` (the fault harness notes it) with its error lines.
    for (let attempt = 1; ; attempt++) {
      launchClickHouse(s, node, s.clickhouse.command);
      writeState(s);
      try {
        await waitClickHouse(node, CH_START_S);
        break;
      } catch (e) {
        if (!e.exitedDuringStart || attempt >= 3) throw e;
        onRetry(`${name} exited during start ${attempt}, started again: ${e.message.split('\n').slice(1, 3).join(' | ').slice(0, 600)}`);
        await sleep(2000);
      }
    }
  }
  return node.pid;
}

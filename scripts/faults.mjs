#!/usr/bin/env node
/* global fetch, AbortSignal */
// Fault suite over the real shipped processes: a real Kafka broker and ClickHouse server (started with
// scripts/kafka.sh and scripts/clickhouse-server.sh), `wattsplit gateway`, `wattsplit collector` and
// several `wattsplit agent` processes reading fake sensor trees (RAPL powercap, /proc/stat, cgroup v2
// per VM, /proc/sys/kernel/random/boot_id) that a driver process advances every second. The driver
// writes every counter, so the truth is exact: per host, the joules it added (minus what an experiment
// marks as not energy, e.g. an implausible jump). Every experiment starts and ends with the counters
// frozen, so the agent's first and last frames read known values whatever the timing.
//
// After each experiment: per host, Σ rapl_j of `host_samples FINAL`, Σ attributions FINAL per method,
// Σ vm_energy_hourly per method (sum() GROUP BY) and the experiment's share of tenant_energy_hourly
// are compared with the truth; joules lost and doubled are reported for raw and rollup tables, and
// which processes died unexpectedly. Rejections: collector /metrics deltas and gateway log lines.
//
//   node scripts/faults.mjs [--json] [--only a,b] [--list] [--keep] [--log-level info] [--timeout-s 480] [--build DIR]
//   npm run faults
//
// Servers: its own Kafka broker and ClickHouse server (they are stopped and restarted by experiments),
// named faults-<pid>; with neither java+jars nor clickhouse-server it exits 2 saying why. Every wait is
// bounded, every child runs in its own process group and is killed at the end, ports come from the OS,
// the temp dir is removed (kept with --keep). Loopback only.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync, openSync, closeSync, symlinkSync } from 'node:fs';
import { setInterval, clearInterval } from 'node:timers';
import { tmpdir, hostname, cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createHash, randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { Proc, chQuery, freePort, killAllNow, pidAlive, script, sleep, waitFor } from './lib/processes.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const flag = (f) => argv.includes(f);
const opt = (f, d) => {
  const i = argv.indexOf(f);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : d;
};
// --build DIR: run the processes from another checkout's build (e.g. a worktree of HEAD while the shared
// working tree holds someone's half-done change); the servers still come from this checkout's scripts.
const build = opt('--build', process.env.WATTSPLIT_FAULTS_BUILD ?? root);
const CLI = join(build, 'packages/cli/dist/main.js');

// ───────────────────────────── fake host trees and the driver ─────────────────────────────

const RAPL_MAX_UJ = 262143328850;
const CPUS = 8;
const USER_HZ = 100;

function put(path, text) {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path); // the agent reads the file by path: it sees the old or the new value, never half
}
const esc = (s) => s.replace(/-/g, '\\x2d');
const vmScope = (id, name) => `/sys/fs/cgroup/machine.slice/machine-${esc(`qemu-${id}-${name}`)}.scope`;

/** A host's fake tree and its counters (owned by the driver process). */
class FakeHost {
  constructor(spec) {
    this.spec = spec; // { hostId, root, watts, vms: [{id,name,vcpus,cpuPerS}] }
    this.energyUj = 1_000_000_000 + Math.floor(Math.random() * 1e9);
    this.truthUj = 0; // joules (µJ) the host consumed while counting: what must be billed
    this.excludedUj = 0; // counter movement that is not energy (implausible jump, reset)
    this.frozen = true;
    this.bootId = randomUUID();
    this.busyTicks = 100000;
    this.idleTicks = 900000;
    this.vmUsec = spec.vms.map(() => 1_000_000);
    this.writeStatic();
    this.writeCounters();
  }

  writeStatic() {
    const r = this.spec.root;
    const z = `${r}/sys/class/powercap/intel-rapl:0`;
    put(`${z}/name`, 'package-0\n');
    put(`${z}/max_energy_range_uj`, `${RAPL_MAX_UJ}\n`);
    put(`${z}/enabled`, '1\n');
    mkdirSync(`${r}/sys/class/powercap/intel-rapl`, { recursive: true });
    put(`${r}/sys/fs/cgroup/cgroup.controllers`, 'cpuset cpu io memory pids\n');
    let info = '';
    for (let i = 0; i < CPUS; i++) info += `processor\t: ${i}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\nphysical id\t: 0\n\n`;
    put(`${r}/proc/cpuinfo`, info);
    for (let i = 0; i < CPUS; i++) put(`${r}/sys/devices/system/cpu/cpu${i}/cpufreq/scaling_cur_freq`, '2000000\n');
    put(`${r}/proc/sys/kernel/random/boot_id`, `${this.bootId}\n`);
  }

  writeCounters() {
    const r = this.spec.root;
    put(`${r}/sys/class/powercap/intel-rapl:0/energy_uj`, `${this.energyUj}\n`);
    let stat = `cpu  ${this.busyTicks} 0 0 ${this.idleTicks} 0 0 0 0 0 0\n`;
    for (let i = 0; i < CPUS; i++) stat += `cpu${i} ${Math.floor(this.busyTicks / CPUS)} 0 0 ${Math.floor(this.idleTicks / CPUS)} 0 0 0 0 0 0\n`;
    stat += 'intr 1 2 3\nctxt 123\nbtime 1700000000\nprocesses 10\n';
    put(`${r}/proc/stat`, stat);
    this.spec.vms.forEach((vm, k) => {
      const d = `${r}${vmScope(vm.id, vm.name)}`;
      const u = this.vmUsec[k];
      put(`${d}/cpu.stat`, `usage_usec ${u}\nuser_usec ${Math.floor(u * 0.8)}\nsystem_usec ${Math.floor(u * 0.2)}\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n`);
      put(`${d}/memory.current`, `${1073741824 + vm.id}\n`);
      put(`${d}/io.stat`, '253:0 rbytes=1000 wbytes=2000 rios=1 wios=2 dbytes=0 dios=0\n');
      for (let c = 0; c < vm.vcpus; c++) put(`${d}/libvirt/vcpu${c}/cpu.stat`, `usage_usec ${Math.floor(u / (vm.vcpus + 1))}\nuser_usec 0\nsystem_usec 0\n`);
      put(`${d}/libvirt/emulator/cpu.stat`, `usage_usec ${Math.floor(u / (vm.vcpus + 1))}\nuser_usec 0\nsystem_usec 0\n`);
    });
  }

  /** One second of the host's life: energy and CPU time advance (unless frozen). */
  tick() {
    if (this.frozen) return;
    const inc = Math.round(this.spec.watts * 1e6);
    this.energyUj += inc;
    if (this.energyUj > RAPL_MAX_UJ) this.energyUj -= RAPL_MAX_UJ + 1; // wraps like the hardware
    this.truthUj += inc;
    let vmBusyS = 0;
    this.spec.vms.forEach((vm, k) => {
      this.vmUsec[k] += Math.round(vm.cpuPerS * 1e6);
      vmBusyS += vm.cpuPerS;
    });
    const busyS = vmBusyS + 0.2;
    this.busyTicks += Math.round(busyS * USER_HZ);
    this.idleTicks += Math.round((CPUS - busyS) * USER_HZ);
    this.writeCounters();
  }
}

async function driverMain() {
  const hosts = new Map();
  const timer = setInterval(() => {
    for (const h of hosts.values()) h.tick();
  }, 1000);
  const reply = (id, body) => process.send?.({ id, ...body });
  process.on('message', (m) => {
    try {
      const h = m.hostId ? hosts.get(m.hostId) : undefined;
      switch (m.op) {
        case 'add':
          hosts.set(m.spec.hostId, new FakeHost(m.spec));
          return reply(m.id, { ok: true });
        case 'freeze':
          for (const x of m.hostIds.map((id) => hosts.get(id))) if (x) x.frozen = true;
          return reply(m.id, { ok: true });
        case 'run':
          for (const x of m.hostIds.map((id) => hosts.get(id))) if (x) x.frozen = false;
          return reply(m.id, { ok: true });
        case 'set': // counter reset / jump: counter moves without energy (only while frozen)
          h.excludedUj += m.energyUj - h.energyUj;
          h.energyUj = m.energyUj;
          h.writeCounters();
          return reply(m.id, { ok: true });
        case 'jump':
          h.energyUj += m.deltaUj;
          h.excludedUj += m.deltaUj;
          h.writeCounters();
          return reply(m.id, { ok: true });
        case 'reboot': // new kernel boot id, counters from 0 (RAPL restarts with the package power-up)
          h.bootId = randomUUID();
          h.energyUj = 0;
          h.busyTicks = 0;
          h.idleTicks = 0;
          h.vmUsec = h.vmUsec.map(() => 0);
          h.writeStatic();
          h.writeCounters();
          return reply(m.id, { ok: true });
        case 'truth':
          return reply(m.id, { ok: true, truth: Object.fromEntries([...hosts.values()].map((x) => [x.spec.hostId, { truthJ: x.truthUj / 1e6, energyUj: x.energyUj, frozen: x.frozen }])) });
        case 'stop':
          clearInterval(timer);
          reply(m.id, { ok: true });
          process.exit(0);
      }
      reply(m.id, { ok: false, error: `unknown op ${m.op}` });
    } catch (e) {
      reply(m.id, { ok: false, error: String(e?.stack ?? e) });
    }
  });
  process.on('disconnect', () => process.exit(0));
}

// ───────────────────────────── processes ─────────────────────────────

/** A stable, valid UUID per (host, VM index). */
function vmUuid(hostId, k) {
  const h = createHash('sha1').update(`${hostId}/${k}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

// ───────────────────────────── ClickHouse and metrics ─────────────────────────────

async function scrape(url) {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(3000) });
    const out = {};
    for (const line of (await r.text()).split('\n')) {
      if (!line || line.startsWith('#')) continue;
      const m = /^(\S+?)(\{.*\})?\s+(\S+)$/.exec(line);
      if (m) out[`${m[1]}${m[2] ?? ''}`] = Number(m[3]);
    }
    return out;
  } catch {
    return undefined;
  }
}

/** Collector counters that say something was refused, dead-lettered or flagged. */
const REJECTION_RE = /reject|dlq|dead|anomal|invalid|unusable|poison|discard|drop|implausible|refus|unauth|auth_fail|timeout|exhaust|too_large|oversize|seq_reused|clock/i;
function rejectionDelta(before, after) {
  const out = {};
  if (!before || !after) return out;
  for (const [k, v] of Object.entries(after)) {
    // match the metric name and its code/reason/status labels, not host/vm/tenant values (host ids here name the experiment)
    const what = k.replace(/(host|vm|tenant|vm_name)="[^"]*",?/g, '');
    if (!REJECTION_RE.test(what) || /_bucket|_sum\b|_count\b/.test(k) || /joules/.test(k)) continue;
    const d = v - (before[k] ?? 0);
    if (d > 0) out[k] = d;
  }
  return out;
}

// ───────────────────────────── the cluster ─────────────────────────────

class Cluster {
  constructor(opts) {
    this.opts = opts;
    this.tmp = mkdtempSync(join(tmpdir(), 'wattsplit-faults-'));
    this.logDir = join(this.tmp, 'logs');
    mkdirSync(this.logDir);
    this.name = `faults-${process.pid}`;
    this.db = `faults_${process.pid}_${Date.now().toString(36)}`;
    this.tokens = {};
    this.agents = new Map();
    this.pending = new Map();
    this.nextId = 1;
    this.runStartMs = Date.now();
  }

  async start() {
    // driver
    this.driver = spawn(process.execPath, [fileURLToPath(import.meta.url), '--driver'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], detached: true });
    this.driver.on('message', (m) => {
      const p = this.pending.get(m.id);
      if (p) {
        this.pending.delete(m.id);
        if (m.ok) p.res(m);
        else p.rej(new Error(m.error));
      }
    });
    // servers
    const k = script('kafka.sh', ['start', this.name], 100);
    if (!k.ok || !/^127\.0\.0\.1:\d+$/.test(k.out)) throw Object.assign(new Error(`Kafka unavailable: ${k.why ?? k.out}`), { unavailable: true });
    this.kafka = k.out;
    this.kafkaPort = k.out.split(':')[1];
    const c = script('clickhouse-server.sh', ['start', this.name], 40);
    if (!c.ok) throw Object.assign(new Error(`ClickHouse unavailable: ${c.why}`), { unavailable: true });
    this.chUrl = c.out;
    this.chDir = join(root, '.cache/clickhouse', this.name);
    this.gatewayPort = await freePort();
    this.collectorPort = await freePort();
    this.tokensFile = join(this.tmp, 'tokens.json');
    this.tokens['faults-placeholder'] = randomUUID(); // a gateway refuses a tokens file without hosts
    for (const h of this.opts.hostIds ?? []) this.tokens[h] = `tok-${h}-${randomUUID()}`; // one gateway start for all experiments
    writeFileSync(this.tokensFile, JSON.stringify(this.tokens));
    await this.startGateway();
    await this.startCollector();
  }

  env() {
    return { WATTSPLIT_KAFKA_BROKERS: this.kafka, WATTSPLIT_KAFKA_PARTITIONS: '4', WATTSPLIT_KAFKA_SEND_TIMEOUT_MS: '5000', WATTSPLIT_KAFKA_SESSION_TIMEOUT_MS: '6000' };
  }

  async startGateway() {
    // --metrics-port appeared with d3f1222; older gateways have no /metrics (rejections then come from the log)
    this.gatewayHelp ??= spawnSync(process.execPath, [CLI, 'gateway', '--help'], { encoding: 'utf8', timeout: 20000 }).stdout;
    this.gatewayMetricsPort ??= this.gatewayHelp.includes('--metrics-port') ? await freePort() : undefined;
    const metrics = this.gatewayMetricsPort ? ['--metrics-port', String(this.gatewayMetricsPort)] : [];
    this.gateway = new Proc(`gateway-${Date.now()}`, process.execPath, [CLI, 'gateway', '--host', '127.0.0.1', '--port', String(this.gatewayPort), ...metrics, '--auth', 'per-host', '--tokens-file', this.tokensFile, '--log-level', this.opts.logLevel], { env: this.env(), logDir: this.logDir });
    await waitFor('gateway listening', () => this.gateway.log().includes('gateway listening') || (!this.gateway.alive && Promise.reject(new Error(`gateway exited: ${this.gateway.log().slice(-400)}`))), 30000);
  }

  async startCollector() {
    const modelsDir = join(this.tmp, 'models');
    mkdirSync(modelsDir, { recursive: true });
    // --http-host appeared with the collector's API auth; older builds bound 0.0.0.0 without asking
    // (--models-dir went away when models moved into the store)
    this.collectorHelp ??= spawnSync(process.execPath, [CLI, 'collector', '--help'], { encoding: 'utf8', timeout: 20000 }).stdout;
    const has = (f) => this.collectorHelp.includes(f);
    const extra = [...(has('--http-host') ? ['--http-host', '127.0.0.1'] : []), ...(has('--models-dir') ? ['--models-dir', modelsDir] : [])];
    this.collector = new Proc(`collector-${Date.now()}`, process.execPath, [CLI, 'collector', ...extra, '--url', this.chUrl, '--database', this.db, '--http-port', String(this.collectorPort), '--log-level', this.opts.logLevel], { env: this.env(), logDir: this.logDir });
    await waitFor('collector /healthz', async () => {
      if (!this.collector.alive) throw new Error(`collector exited: ${this.collector.log().slice(-500)}`);
      const r = await fetch(`http://127.0.0.1:${this.collectorPort}/healthz`, { signal: AbortSignal.timeout(1000) });
      return r.ok;
    }, 60000, 500);
  }

  metricsUrl() {
    return `http://127.0.0.1:${this.collectorPort}/metrics`;
  }

  gatewayMetricsUrl() {
    return this.gatewayMetricsPort ? `http://127.0.0.1:${this.gatewayMetricsPort}/metrics` : undefined;
  }

  /** kafkajs admin from the build's @wattsplit/kafka (topic configs for the refusal experiment). */
  async kafkaAdmin() {
    const { Kafka, logLevel } = createRequire(join(build, 'packages/kafka/package.json'))('kafkajs');
    const admin = new Kafka({ brokers: [this.kafka], clientId: 'faults', logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    return admin;
  }

  /** The gateway reads its tokens at start: add hosts before (re)starting it. */
  async addTokens(hostIds) {
    for (const h of hostIds) this.tokens[h] = `tok-${h}-${randomUUID()}`;
    writeFileSync(this.tokensFile, JSON.stringify(this.tokens));
    await this.gateway.stop('SIGTERM');
    await this.startGateway();
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

  async addHost(hostId, { vms = 4, watts = 100 } = {}) {
    const hroot = join(this.tmp, 'hosts', hostId);
    const spec = {
      hostId,
      root: hroot,
      watts,
      // Σ VM CPU stays 2.5 s per second of 8 CPUs whatever the VM count (a host cannot be busier than its CPUs)
      vms: Array.from({ length: vms }, (_, k) => ({ id: k + 1, name: `vm${k + 1}`, vcpus: 2, cpuPerS: 0.25 * ((k % 4) + 1) * Math.min(1, 4 / vms), uuid: vmUuid(hostId, k) })),
    };
    await this.call('add', { spec });
    const cfg = {
      hostId,
      hardwareClass: 'fault-suite-xeon',
      sysfsRoot: hroot,
      libvirt: false,
      nvml: { enabled: false },
      perf: { enabled: false },
      vms: spec.vms.map((v, k) => ({ uuid: v.uuid, name: v.name, id: v.id, vcpus: v.vcpus, memoryBytes: 2147483648, tenant: `tenant-${k % 2}`, flavor: 'f' })),
    };
    const cfgFile = join(this.tmp, `${hostId}.json`);
    writeFileSync(cfgFile, JSON.stringify(cfg));
    const tokenFile = join(this.tmp, `${hostId}.token`);
    return { hostId, cfgFile, tokenFile, spoolDir: join(this.tmp, 'spool', hostId), spec };
  }

  /** Starts `wattsplit agent` for a host (same spool dir as before unless `spoolDir` is given). */
  startAgent(h, { spoolDir = h.spoolDir, name = h.hostId, nodeArgs = [] } = {}) {
    writeFileSync(h.tokenFile, `${this.tokens[h.hostId]}\n`);
    const p = new Proc(`agent-${name}-${Date.now()}`, process.execPath, [...nodeArgs, CLI, 'agent', '--config', h.cfgFile, '--gateway', `127.0.0.1:${this.gatewayPort}`, '--insecure', '--token-file', h.tokenFile, '--spool-dir', spoolDir, '--log-level', this.opts.logLevel], { logDir: this.logDir });
    this.agents.set(name, p);
    return p;
  }

  async stopAll() {
    const procs = [...Proc.all];
    await Promise.all(procs.map((p) => p.stop('SIGTERM', 6000)));
    killAllNow();
    try {
      this.driver?.kill('SIGKILL');
    } catch { /* gone */ }
    if (this.kafka) script('kafka.sh', ['stop', this.name], 40);
    if (this.chUrl) this.stopClickHouseSync();
    if (!this.opts.keep) rmSync(this.tmp, { recursive: true, force: true });
  }

  stopClickHouseSync() {
    // `destroy` deletes the data since `stop` keeps it (6f5208f); older scripts deleted on `stop`
    const d = script('clickhouse-server.sh', ['destroy', this.name], 40);
    if (!d.ok) script('clickhouse-server.sh', ['stop', this.name], 40);
  }

  /** Stops the ClickHouse server and keeps its data (the script's `stop` would delete it). */
  async killClickHouse(sig = 'SIGTERM') {
    const pid = Number(readFileSync(join(this.chDir, 'pid'), 'utf8'));
    try {
      process.kill(pid, sig);
    } catch { /* gone */ }
    try {
      await waitFor('clickhouse-server exit', () => !pidAlive(pid), 10000);
      return sig;
    } catch {
      // 18.16 waits for open HTTP connections (the collector's keep-alive retries) before exiting
      try {
        process.kill(pid, 'SIGKILL');
      } catch { /* gone */ }
      await waitFor('clickhouse-server exit after SIGKILL', () => !pidAlive(pid), 10000);
      return `${sig}, then SIGKILL after 10 s`;
    }
  }

  /** Starts the stopped server again with its data, through the repo's script (same NAME, same ports while free). */
  async restartClickHouse() {
    const r = script('clickhouse-server.sh', ['start', this.name], 40);
    if (r.ok && r.out === this.chUrl) return;
    if (r.ok) throw new Error(`ClickHouse came back on ${r.out}, not ${this.chUrl}: the collector's --url is stale`);
    await this.restartClickHouseByHand();
  }

  /** For a clickhouse-server.sh whose `start` wipes the data: the same config, started by hand. */
  async restartClickHouseByHand() {
    const bin = spawnSync('bash', ['-c', 'command -v clickhouse-server || echo /usr/sbin/clickhouse-server'], { encoding: 'utf8' }).stdout.trim();
    const cmd = process.env.CLICKHOUSE_BIN ? [process.env.CLICKHOUSE_BIN, 'server'] : [bin];
    const logFd = openSync(join(this.chDir, 'log/stdout.log'), 'a');
    const child = spawn(cmd[0], [...cmd.slice(1), `--config-file=${join(this.chDir, 'config.xml')}`], { detached: true, stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    child.unref();
    writeFileSync(join(this.chDir, 'pid'), `${child.pid}\n`);
    await waitFor('clickhouse /ping', async () => (await fetch(`${this.chUrl}/ping`, { signal: AbortSignal.timeout(1000) })).ok, 30000, 300);
  }

  /** Between experiments: whatever an experiment left stopped is started again. */
  async ensureUp() {
    const chUp = await fetch(`${this.chUrl}/ping`, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false);
    if (!chUp) {
      await this.killClickHouse('SIGKILL').catch(() => undefined);
      await this.restartClickHouse();
    }
    if (script('kafka.sh', ['status', this.name], 20).ok === false) await this.startKafka();
    if (!this.gateway.alive) await this.startGateway();
    if (!this.collector.alive) await this.startCollector();
  }

  async stopKafka() {
    const r = script('kafka.sh', ['stop', this.name, '--keep-data'], 40);
    if (!r.ok) throw new Error(r.why);
  }

  async startKafka() {
    const r = script('kafka.sh', ['start', this.name, this.kafkaPort], 100);
    if (!r.ok) throw new Error(r.why);
  }
}

// ───────────────────────────── accounting ─────────────────────────────

const TOL_J = 0.05;
const q = (s) => `'${s.replace(/'/g, "\\'")}'`;

/** What the store holds for these hosts, next to the truth. */
async function account(cl, hostIds) {
  const list = hostIds.map(q).join(',');
  const raw = await chQuery(cl.chUrl, cl.db, `SELECT host, sum(rapl_j) AS j, count() AS n, uniqExact(boot_id) AS boots, min(ts) AS tmin, max(ts) AS tmax FROM host_samples FINAL WHERE host IN (${list}) GROUP BY host`);
  const attr = await chQuery(cl.chUrl, cl.db, `SELECT host, method, sum(dynamic_j + static_j) AS j FROM attributions FINAL WHERE host IN (${list}) AND source = 'rapl' GROUP BY host, method`);
  const vmh = await chQuery(cl.chUrl, cl.db, `SELECT host, method, sum(dynamic_j + static_j) AS j FROM vm_energy_hourly WHERE host IN (${list}) AND source = 'rapl' GROUP BY host, method`);
  const misdated = await chQuery(cl.chUrl, cl.db, `SELECT host, sum(rapl_j) AS j FROM host_samples FINAL WHERE host IN (${list}) AND (ts < toDateTime(${Math.floor(cl.runStartMs / 1000) - 3600}) OR ts > now() + 3600) GROUP BY host`);
  const ten = await tenantTotals(cl);
  const anomalies = await chQuery(cl.chUrl, cl.db, `SELECT code, count() AS n, any(counter_id) AS counter, any(message) AS message FROM anomalies WHERE host IN (${list}) GROUP BY code ORDER BY n DESC LIMIT 6`).catch(() => []);
  return { raw, attr, vmh, misdated, ten, anomalies };
}

async function tenantTotals(cl) {
  const rows = await chQuery(cl.chUrl, cl.db, `SELECT method, sum(dynamic_j + static_j) AS j FROM tenant_energy_hourly WHERE source = 'rapl' GROUP BY method`);
  return Object.fromEntries(rows.map((r) => [r.method, Number(r.j)]));
}

function lostDoubled(pairs) {
  let lost = 0;
  let doubled = 0;
  for (const [stored, truth] of pairs) {
    const d = stored - truth;
    if (d < -TOL_J) lost += -d;
    if (d > TOL_J) doubled += d;
  }
  return { lost, doubled };
}

function judge(truth, acc, tenBefore, methods) {
  const hosts = Object.keys(truth);
  const by = (rows, h, m) => rows.filter((r) => r.host === h && (m === undefined || r.method === m)).reduce((s, r) => s + Number(r.j), 0);
  const raw = lostDoubled(hosts.map((h) => [by(acc.raw, h), truth[h]]));
  const attrPairs = [];
  const vmhPairs = [];
  for (const m of methods) {
    for (const h of hosts) {
      attrPairs.push([by(acc.attr, h, m), truth[h]]);
      vmhPairs.push([by(acc.vmh, h, m), truth[h]]);
    }
  }
  // per method, the worst; the experiment's share of the tenant rollup is the change of its total
  const perMethod = (pairs, n = hosts.length) => {
    let worst = { lost: 0, doubled: 0 };
    for (let i = 0; i < pairs.length; i += n) {
      const x = lostDoubled(pairs.slice(i, i + n));
      worst = { lost: Math.max(worst.lost, x.lost), doubled: Math.max(worst.doubled, x.doubled) };
    }
    return worst;
  };
  const totalTruth = hosts.reduce((s, h) => s + truth[h], 0);
  const ten = perMethod(methods.map((m) => [(acc.ten[m] ?? 0) - (tenBefore[m] ?? 0), totalTruth]), 1);
  const attr = perMethod(attrPairs);
  const vmh = perMethod(vmhPairs);
  const rollup = { lost: Math.max(vmh.lost, ten.lost), doubled: Math.max(vmh.doubled, ten.doubled) };
  const misdatedJ = acc.misdated.reduce((s, r) => s + Number(r.j), 0);
  return { raw, attr, vmh, ten, rollup, misdatedJ, totalTruth };
}

// ───────────────────────────── experiments ─────────────────────────────

/**
 * Each experiment: `hosts` new hosts (fresh ids, frozen counters), agents started, counters run,
 * `fault(ctx)` does its thing while they run, counters frozen again, agents drain, then accounting.
 * `expect` says what a healthy system does; `check(res)` may add failure reasons beyond "exact".
 */
const EXPERIMENTS = [];
const experiment = (name, expect, fn, o = {}) => EXPERIMENTS.push({ name, expect, fn, hosts: o.hosts ?? 3, vms: o.vms ?? 4, check: o.check, needsRestartableServers: o.servers ?? false });

experiment('baseline', 'every joule once, nothing dies', async (x) => {
  await x.run(8000);
});

experiment('agent_sigterm_restart', 'SIGTERM one agent, start it again with the same spool: nothing lost or doubled', async (x) => {
  await x.run(4000);
  await x.agent(0).stop('SIGTERM');
  await x.run(3000);
  x.restartAgent(0);
  await x.run(5000);
});

experiment('agent_sigkill_restart', 'SIGKILL one agent, start it again with the same spool: nothing lost or doubled', async (x) => {
  await x.run(4000);
  await x.agent(0).stop('SIGKILL');
  await x.run(3000);
  x.restartAgent(0);
  await x.run(5000);
});

experiment('host_reboot', 'kernel boot id changes and counters restart at 0: every joule counted after the reboot, none double', async (x) => {
  await x.run(5000);
  await x.freeze(2500);
  await x.agent(0).stop('SIGTERM');
  await x.cl.call('reboot', { hostId: x.hosts[0].hostId });
  x.restartAgent(0);
  await x.freeze(3500);
  await x.run(5000);
});

experiment('gateway_down_10s', 'agents spool while the gateway is away, deliver after: nothing lost, no agent dies', async (x) => {
  await x.run(3000);
  await x.cl.gateway.stop('SIGTERM');
  await x.run(10000);
  await x.cl.startGateway();
  x.gatewayRestarted = true;
  await x.run(4000);
}, { servers: true });

experiment('kafka_broker_restart', 'broker stopped and restarted with its data: RETRY to agents, nothing lost', async (x) => {
  await x.run(3000);
  await x.cl.stopKafka();
  await x.run(6000);
  await x.cl.startKafka();
  await x.run(6000);
}, { servers: true });

experiment('agent_starts_while_gateway_down', 'an agent (re)started while the gateway is down spools from its first frame and delivers once the gateway is back: nothing lost, no agent dies', async (x) => {
  await x.run(3000);
  await x.agent(0).stop('SIGTERM');
  await x.cl.gateway.stop('SIGTERM');
  x.restartAgent(0);
  await x.run(6000);
  await x.cl.startGateway();
  x.gatewayRestarted = true;
  await x.run(5000);
}, { servers: true });

experiment('gateway_starts_while_kafka_down', 'the gateway (re)started while the broker is down listens, answers RETRY (agents spool), and produces once the broker is back: nothing lost, nothing dies', async (x) => {
  await x.run(3000);
  await x.cl.gateway.stop('SIGTERM');
  await x.cl.stopKafka();
  await x.cl.startGateway(); // returns once it logs "gateway listening"
  x.gatewayRestarted = true;
  await x.run(6000);
  if (!x.cl.gateway.alive) x.fail('the gateway exited while the broker was down');
  await x.cl.startKafka();
  await x.run(8000);
}, { servers: true });

experiment('collector_starts_while_kafka_down', 'collector restarted while the broker is down: it stays up (HTTP API, /healthz consuming: false) and retries, subscribes once the broker is back, nothing lost (before 2026-12-07 it printed the error and hung)', async (x) => {
  await x.run(3000);
  await x.cl.collector.stop('SIGTERM');
  await x.cl.stopKafka();
  await x.cl.startCollector(); // returns once /healthz answers: the HTTP API is up without the broker
  x.metricsReset();
  await x.run(6000);
  const health = async () => (await fetch(`http://127.0.0.1:${x.cl.collectorPort}/healthz`, { signal: AbortSignal.timeout(2000) })).json();
  const down = await health();
  if (!x.cl.collector.alive) x.fail('the collector exited while the broker was down');
  if (down.consuming !== false) x.fail(`/healthz said consuming ${JSON.stringify(down.consuming)} with the broker down`);
  if (!/cannot consume wattsplit\.telemetry\.v1 .*retrying in/.test(x.cl.collector.log())) x.fail('no warning that the collector cannot consume and retries');
  await x.cl.startKafka();
  const t = Date.now();
  let up;
  while (Date.now() - t < 60000 && !(up = await health().catch(() => undefined))?.consuming) await x.run(1000);
  if (!up?.consuming) x.fail('the collector did not subscribe within 60 s of the broker coming back');
  else x.note(`consuming ${((Date.now() - t) / 1000).toFixed(1)} s after the broker was started`);
  await x.run(4000);
}, { servers: true });

experiment('clickhouse_restart_15s', 'ClickHouse down 15 s (data kept): backlog waits in Kafka, stored once, rollups once', async (x) => {
  await x.run(3000);
  const t = Date.now();
  x.note(`ClickHouse stopped with ${await x.cl.killClickHouse('SIGTERM')}`);
  await x.run(Math.max(0, 15000 - (Date.now() - t)));
  await x.cl.restartClickHouse();
  await x.run(5000);
}, { servers: true });

/** The collector stopped with `signal` after each gap (at different points of its write cycle), 1.5 s down, restarted, `upMs` up; then 3 s clean. */
async function collectorRestarts(x, signal, gapsMs, upMs) {
  await x.run(4000);
  for (const gapMs of gapsMs) {
    await x.run(gapMs);
    await x.cl.collector.stop(signal);
    await x.run(1500);
    await x.cl.startCollector();
    await x.run(upMs);
  }
  x.metricsReset();
  await x.run(3000);
}

experiment('collector_kill9', 'collector SIGKILLed during writes (3 times, at different points of its write cycle) and restarted: resumes from committed offsets, nothing doubled', async (x) => {
  await collectorRestarts(x, 'SIGKILL', [0, 350, 700], 2000);
}, { servers: true });

experiment('collector_sigterm_restart', 'collector stopped with SIGTERM mid-stream (twice) and restarted: its stop saves the checkpoints not yet due (checkpoints.everyMs), the next start skips the redelivered frames as replays; nothing lost or doubled', async (x) => {
  await collectorRestarts(x, 'SIGTERM', [0, 500], 2500);
}, { servers: true });

experiment('kafka_refuses_big_frames', "the telemetry topic's max.message.bytes drops to 1500 for 6 s while one host sends 120-VM frames: those are refused for good (dead-lettered), not retried forever; the spool flows on after, nothing lost (counters bridge the gap), small hosts unaffected", async (x) => {
  await x.run(3000);
  const admin = await x.cl.kafkaAdmin();
  const topic = 'wattsplit.telemetry.v1';
  try {
    await admin.alterConfigs({ validateOnly: false, resources: [{ type: 2, name: topic, configEntries: [{ name: 'max.message.bytes', value: '1500' }] }] });
    await x.run(6000);
  } finally {
    await admin.alterConfigs({ validateOnly: false, resources: [{ type: 2, name: topic, configEntries: [{ name: 'max.message.bytes', value: '1048588' }] }] }).catch((e) => x.fail(`restoring max.message.bytes: ${e.message}`));
    await admin.disconnect();
  }
  await x.run(8000);
  const dead = spawnSync('bash', ['-c', `ls ${x.hosts[0].spoolDir}/rejected 2>/dev/null | wc -l`], { encoding: 'utf8' }).stdout.trim();
  x.note(`agent dead-letter files for the big host: ${dead}`);
}, { hosts: 2, vms: (i) => (i === 0 ? 120 : 4) });

experiment('rapl_counter_reset', 'RAPL counter drops to a small value: that interval is flagged, not billed as a wrap (≈ max range)', async (x) => {
  await x.run(4000);
  await x.freeze(2500);
  await x.cl.call('set', { hostId: x.hosts[0].hostId, energyUj: 1000 });
  await x.freeze(2500);
  await x.run(4000);
}, { hosts: 2 });

experiment('rapl_implausible_jump', 'RAPL counter jumps by 200 kJ in one second (200 kW): not billed', async (x) => {
  await x.run(4000);
  await x.freeze(2500);
  await x.cl.call('jump', { hostId: x.hosts[0].hostId, deltaUj: 200_000_000_000 });
  await x.freeze(2500);
  await x.run(4000);
}, { hosts: 2 });

for (const [name, date] of [['agent_clock_1970', '1970-01-02T00:00:00Z'], ['agent_clock_2100', '2100-01-01T00:00:00Z']]) {
  experiment(name, `one agent's wall clock says ${date.slice(0, 4)}: its energy is not billed to ${date.slice(0, 4)} (re-dated or refused and counted); others exact`, async (x) => {
    await x.agent(0).stop('SIGTERM');
    x.restartAgent(0, { nodeArgs: ['--import', x.fakeClock(date)] });
    await x.freeze(3000);
    await x.run(8000);
  }, {
    hosts: 2,
    check: (r) => (r.misdatedJ > TOL_J ? [`${r.misdatedJ.toFixed(1)} J billed outside [run start − 1 h, now + 1 h]`] : []),
  });
}

experiment('oversize_frame', 'a 12 MB batch is refused (RESOURCE_EXHAUSTED), the gateway and other agents carry on', async (x) => {
  await x.run(3000);
  x.note(await x.sendOversize());
  await x.run(5000);
});

experiment('idle_and_unauthenticated_streams', '40 streams without a token and 20 idle authenticated ones held 12 s: refused / bounded, agents unaffected', async (x) => {
  await x.run(2000);
  const r = await x.holdStreams(12000, 40, 20);
  x.note(r.text);
  if (x.cl.gatewayHelp?.includes('--auth-timeout-ms') && r.ended < 40) x.fail(`only ${r.ended} of 40 unauthenticated streams ended by the gateway within 12 s (auth timeout 10 s)`);
  await x.run(2000);
});

experiment('replay_new_boot_id', 'a second agent with the same host id and token, a fresh state dir and another kernel boot id, reading the same counters for 8 s: billed rows not rewritten, nothing doubled', async (x) => {
  await x.run(12000);
  const before = await x.rawRows(x.hosts[0].hostId);
  const twin = x.cl.startAgent(x.twinOf(x.hosts[0]), { spoolDir: join(x.cl.tmp, 'spool', `${x.hosts[0].hostId}-twin`), name: `${x.hosts[0].hostId}-twin` });
  await x.run(8000);
  await twin.stop('SIGTERM');
  x.afterSettle(async () => {
    const after = await x.rawRows(x.hosts[0].hostId);
    let rewritten = 0;
    for (const [seq, r] of before) {
      const a = after.get(seq);
      if (!a || a.boot_id !== r.boot_id || Math.abs(a.j - r.j) > 1e-6) rewritten++;
    }
    x.note(`${rewritten} of ${before.size} billed host_samples rows rewritten by the twin`);
    if (rewritten > 0) x.fail(`${rewritten} billed rows rewritten`);
  });
}, { hosts: 2 });

// ───────────────────────────── experiment runner ─────────────────────────────

class ExperimentContext {
  constructor(cl, exp, hosts, agents) {
    this.cl = cl;
    this.exp = exp;
    this.hosts = hosts;
    this.agentProcs = agents;
    this.notes = [];
    this.fails = [];
    this.settleHooks = [];
    this.ids = hosts.map((h) => h.hostId);
  }
  agent(i) {
    return this.agentProcs[i];
  }
  restartAgent(i, o = {}) {
    this.agentProcs[i] = this.cl.startAgent(this.hosts[i], o);
    return this.agentProcs[i];
  }
  async run(ms) {
    await this.cl.call('run', { hostIds: this.ids });
    await sleep(ms);
  }
  async freeze(ms) {
    await this.cl.call('freeze', { hostIds: this.ids });
    await sleep(ms);
  }
  note(s) {
    if (!this.notes.includes(s)) this.notes.push(s);
  }
  fail(s) {
    this.fails.push(s);
  }
  afterSettle(fn) {
    this.settleHooks.push(fn);
  }
  metricsReset() {
    this.metricsRestarted = true;
  }
  fakeClock(iso) {
    const f = join(this.cl.tmp, `clock-${iso.slice(0, 4)}.mjs`);
    const off = Date.parse(iso) - Date.now();
    writeFileSync(f, `// wall clock offset for the fault suite: Date.now() and new Date() read ${iso} + elapsed\nconst real = Date.now.bind(Date); const off = ${off};\nconst R = Date;\nclass FakeDate extends R { constructor(...a) { if (a.length === 0) super(real() + off); else super(...a); } static now() { return real() + off; } }\nglobalThis.Date = FakeDate;\n`);
    return pathToFileURL(f).href;
  }
  /**
   * The same host seen by a second agent under another kernel boot id: its root links /sys, /proc/stat
   * and /proc/cpuinfo to the host's tree (the same counters, read live) and has its own boot_id.
   */
  twinOf(h) {
    const troot = `${h.spec.root}-twin`;
    mkdirSync(join(troot, 'proc/sys/kernel/random'), { recursive: true });
    symlinkSync(join(h.spec.root, 'sys'), join(troot, 'sys'));
    for (const f of ['stat', 'cpuinfo']) symlinkSync(join(h.spec.root, 'proc', f), join(troot, 'proc', f));
    writeFileSync(join(troot, 'proc/sys/kernel/random/boot_id'), `${randomUUID()}\n`);
    const cfg = JSON.parse(readFileSync(h.cfgFile, 'utf8'));
    cfg.sysfsRoot = troot;
    const cfgFile = `${h.cfgFile.replace(/\.json$/, '')}-twin.json`;
    writeFileSync(cfgFile, JSON.stringify(cfg));
    return { ...h, cfgFile };
  }

  async rawRows(host) {
    const rows = await chQuery(this.cl.chUrl, this.cl.db, `SELECT seq, boot_id, rapl_j AS j FROM host_samples FINAL WHERE host = ${q(host)}`);
    return new Map(rows.map((r) => [String(r.seq), { boot_id: r.boot_id, j: Number(r.j) }]));
  }
  async sendOversize() {
    const { GrpcIngestClient } = await import(pathToFileURL(join(build, 'packages/agent/dist/index.js')).href);
    const { silentLogger } = await import(pathToFileURL(join(build, 'packages/wire/dist/index.js')).href);
    const h = this.hosts[this.hosts.length - 1];
    const client = new GrpcIngestClient({ address: `127.0.0.1:${this.cl.gatewayPort}`, tls: false, token: this.cl.tokens[h.hostId], logger: silentLogger, ackTimeoutMs: 10000 });
    const big = 'x'.repeat(12 * 1024 * 1024);
    const frame = { hostId: h.hostId, seq: 1e9, bootId: randomUUID(), monoNs: 1, wallUnixNs: Date.now() * 1e6, intervalMs: 1000, counters: [], vms: [{ uuid: randomUUID(), name: big, tenant: 't' }], gpus: [], agentVersion: 'faults' };
    let r;
    try {
      r = await Promise.race([client.send({ batchId: 1, token: this.cl.tokens[h.hostId], frames: [frame] }), sleep(8000).then(() => ({ kind: 'timeout' }))]);
    } catch (e) {
      r = { kind: 'threw', error: String(e) };
    }
    await client.close();
    const s = `oversize batch answered ${r.kind}${r.error ? ` (${r.error.code ?? ''} ${String(r.error.message ?? r.error).slice(0, 120)})` : ''}`;
    if (r.kind === 'ok') this.fail('a 12 MB batch was accepted');
    return s;
  }
  async holdStreams(ms, unauth, idle) {
    const grpc = createRequire(join(build, 'packages/gateway/package.json'))('@grpc/grpc-js');
    const { TELEMETRY_INGEST_SERVICE } = await import(pathToFileURL(join(build, 'packages/wire/dist/index.js')).href);
    const Ctor = grpc.makeGenericClientConstructor(TELEMETRY_INGEST_SERVICE, 'TelemetryIngest');
    const clients = [];
    const calls = [];
    let closedByServer = 0;
    let refused = 0;
    let idleEnded = 0;
    const errCodes = [];
    const open = (token, sendJunk) => {
      // own subchannel pool: one TCP connection per stream (grpc-js would otherwise share one connection,
      // which the authenticated streams would then authenticate for the others)
      const c = new Ctor(`127.0.0.1:${this.cl.gatewayPort}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
      clients.push(c);
      const md = new grpc.Metadata();
      if (token) md.set('authorization', `Bearer ${token}`);
      const call = c.ingest(md);
      call.on('data', (ack) => {
        if (ack?.status !== undefined && ack.status !== 1 && ack.status !== 'ACK_STATUS_OK') refused++;
      });
      call.on('error', (e) => {
        if (!token) closedByServer++;
        else idleEnded++;
        errCodes.push(e.code);
      });
      call.on('end', () => { /* counted by error or status */ });
      if (sendJunk) call.write({ batchId: 1, frames: [{ hostId: this.hosts[0].hostId, seq: 999999, bootId: randomUUID(), monoNs: 1, wallUnixNs: Date.now() * 1e6, intervalMs: 1000 }] });
      calls.push(call);
    };
    for (let i = 0; i < unauth; i++) open(undefined, i % 2 === 0);
    const h = this.hosts[0];
    for (let i = 0; i < idle; i++) open(this.cl.tokens[h.hostId], false);
    await this.run(ms);
    const ended = closedByServer;
    const idleGone = idleEnded;
    const codes = [...new Set(errCodes)].join(',');
    for (const c of calls) c.cancel();
    for (const c of clients) c.close();
    return { ended, text: `${unauth} unauthenticated (half sending a frame) + ${idle} idle authenticated streams: ${ended} unauthenticated and ${idleGone} idle ones ended by the gateway within ${ms / 1000} s (gRPC codes ${codes || 'none'}), ${refused} non-OK acks` };
  }
}

function hostIdsFor(exp, idx) {
  return Array.from({ length: exp.hosts }, (_, i) => `e${idx}-${exp.name.replace(/_/g, '-').slice(0, 24)}-h${i}`);
}

async function runExperiment(cl, exp, idx) {
  const t0 = Date.now();
  const ids = hostIdsFor(exp, idx);
  const hosts = [];
  for (const [i, id] of ids.entries()) hosts.push(await cl.addHost(id, { vms: typeof exp.vms === 'function' ? exp.vms(i) : exp.vms, watts: 80 + 15 * i }));
  if (ids.some((id) => !cl.tokens[id])) await cl.addTokens(ids);
  await cl.ensureUp();
  const before = { metrics: await scrape(cl.metricsUrl()), gwMetrics: cl.gatewayMetricsUrl() ? await scrape(cl.gatewayMetricsUrl()) : undefined, ten: await tenantTotals(cl), gatewayLogLen: cl.gateway.log().length };
  const deathsBefore = Proc.deaths.length;
  const agents = hosts.map((h) => cl.startAgent(h));
  const x = new ExperimentContext(cl, exp, hosts, agents);
  let error;
  await sleep(2500); // counters frozen: every agent's first frame reads the start value
  try {
    await exp.fn(x);
  } catch (e) {
    error = e;
    x.fail(`experiment error: ${e.message}`);
  }
  await x.freeze(3000); // every agent's last frames read the final value
  // settle: stop at exact, or when nothing changed for 12 s (longer than an agent's 10 s retry back-off
  // cap, so an agent still waiting to resend after an outage is not taken for lost energy), or after 40 s
  const truth = Object.fromEntries(Object.entries((await cl.call('truth')).truth).filter(([h]) => ids.includes(h)).map(([h, v]) => [h, v.truthJ]));
  const methods = new Set(['cpu_share']);
  let acc;
  let res;
  let lastKey = '';
  let stableSince = Date.now();
  const end = Date.now() + 40000;
  while (Date.now() < end) {
    try {
      acc = await account(cl, ids);
      for (const r of acc.attr) methods.add(r.method);
      res = judge(truth, acc, before.ten, [...methods]);
      const exact = res.raw.lost + res.raw.doubled + res.attr.lost + res.attr.doubled + res.rollup.lost + res.rollup.doubled < TOL_J;
      if (exact) break;
      const key = JSON.stringify([res.raw, res.attr, res.rollup]);
      if (key !== lastKey) {
        lastKey = key;
        stableSince = Date.now();
      } else if (Date.now() - stableSince > 12000) break;
    } catch (e) {
      res ??= undefined;
      x.note(`query: ${e.message.slice(0, 100)}`);
    }
    await sleep(1000);
  }
  for (const a of acc?.anomalies ?? []) x.note(`anomaly ${a.code} ×${a.n}${a.counter ? ` (${a.counter})` : ''}: ${String(a.message).slice(0, 160)}`);
  for (const fn of x.settleHooks) {
    try {
      await fn();
    } catch (e) {
      x.fail(`after-settle check failed: ${e.message}`);
    }
  }
  const after = await scrape(cl.metricsUrl());
  const rej = rejectionDelta(x.metricsRestarted ? {} : before.metrics, after);
  const gwAfter = cl.gatewayMetricsUrl() ? await scrape(cl.gatewayMetricsUrl()) : undefined;
  const gwRej = rejectionDelta(x.gatewayRestarted ? {} : before.gwMetrics, gwAfter);
  const gwLog = cl.gateway.log().slice(before.gatewayLogLen);
  const gwRejectLines = gwLog.split('\n').filter((l) => /"level":(40|50|60)/.test(l) && /reject|refus|unauth|invalid|exhaust|too large|denied/i.test(l)).length;
  // agents of this experiment go away; the central processes must still be alive
  const agentDeaths = Proc.deaths.slice(deathsBefore);
  for (const p of x.agentProcs) await p.stop('SIGTERM', 6000);
  const central = [cl.gateway, cl.collector];
  const deadCentral = central.filter((p) => !p.alive).map((p) => p.name);
  const fails = [...x.fails];
  if (!res) fails.push('no accounting (ClickHouse queries failed)');
  else {
    if (res.raw.lost > TOL_J || res.raw.doubled > TOL_J) fails.push(`raw: ${res.raw.lost.toFixed(1)} J lost, ${res.raw.doubled.toFixed(1)} J doubled`);
    if (res.attr.lost > TOL_J || res.attr.doubled > TOL_J) fails.push(`attributions: ${res.attr.lost.toFixed(1)} J lost, ${res.attr.doubled.toFixed(1)} J doubled`);
    if (res.rollup.lost > TOL_J || res.rollup.doubled > TOL_J) fails.push(`rollups: ${res.rollup.lost.toFixed(1)} J lost, ${res.rollup.doubled.toFixed(1)} J doubled`);
    for (const f of exp.check?.(res) ?? []) fails.push(f);
  }
  if (agentDeaths.length) fails.push(`died: ${agentDeaths.map((d) => `${d.name.replace(/-\d+$/, '')} (${d.sig ?? `exit ${d.code}`})`).join(', ')}`);
  if (deadCentral.length) fails.push(`central process dead: ${deadCentral.join(', ')}`);
  if (error) x.note(error.stack?.split('\n').slice(0, 3).join(' '));
  // restart dead central processes so the next experiment has a pipeline
  if (!cl.gateway.alive) await cl.startGateway().catch(() => undefined);
  if (!cl.collector.alive) await cl.startCollector().catch(() => undefined);
  return {
    experiment: exp.name,
    expected: exp.expect,
    observed: fails.length ? fails.join('; ') : 'as expected',
    notes: x.notes,
    truthJ: res?.totalTruth ?? null,
    lostRawJ: res?.raw.lost ?? null,
    doubledRawJ: res?.raw.doubled ?? null,
    lostAttrJ: res?.attr.lost ?? null,
    doubledAttrJ: res?.attr.doubled ?? null,
    lostRollupJ: res?.rollup.lost ?? null,
    doubledRollupJ: res?.rollup.doubled ?? null,
    misdatedJ: res?.misdatedJ ?? null,
    rejections: { collector: rej, gateway: gwRej, gatewayLogLines: gwRejectLines },
    processesAlive: `${central.filter((p) => p.alive).length + x.agentProcs.length - agentDeaths.length}/${central.length + x.agentProcs.length}`,
    unexpectedDeaths: agentDeaths.map((d) => `${d.name} ${d.sig ?? `exit ${d.code}`}`).concat(deadCentral),
    pass: fails.length === 0,
    seconds: Math.round((Date.now() - t0) / 1000),
  };
}

// ───────────────────────────── main ─────────────────────────────

function table(rows) {
  const f = (v) => (v === null || v === undefined ? '—' : v < 0.05 ? '0' : v.toFixed(1));
  const head = ['experiment', 'pass', 'lost raw/rollup J', 'doubled raw/rollup J', 'alive', 'observed'];
  const lines = rows.map((r) => [r.experiment, r.pass ? 'PASS' : 'FAIL', `${f(r.lostRawJ)} / ${f(r.lostRollupJ)}`, `${f(r.doubledRawJ)} / ${f(r.doubledRollupJ)}`, r.processesAlive, r.observed]);
  const w = head.map((h, i) => Math.max(h.length, ...lines.map((l) => String(l[i]).length)));
  const fmt = (l) => l.map((c, i) => (i === l.length - 1 ? c : String(c).padEnd(w[i]))).join('  ');
  return [fmt(head), ...lines.map(fmt)].join('\n');
}

async function main() {
  if (flag('--help')) {
    process.stdout.write('usage: node scripts/faults.mjs [--json] [--only a,b] [--list] [--keep] [--log-level info] [--timeout-s 480] [--build DIR]\n');
    return;
  }
  if (flag('--list')) {
    for (const e of EXPERIMENTS) process.stdout.write(`${e.name}: ${e.expect}\n`);
    return;
  }
  const only = opt('--only', '').split(',').filter(Boolean);
  const selected = only.length ? EXPERIMENTS.filter((e) => only.includes(e.name)) : EXPERIMENTS;
  if (only.length && selected.length !== only.length) {
    process.stderr.write(`unknown experiment in --only ${only.join(',')}; --list shows them\n`);
    process.exit(2);
  }
  const say = (m) => process.stderr.write(`faults: ${m}\n`);
  const cl = new Cluster({ logLevel: opt('--log-level', 'info'), keep: flag('--keep'), hostIds: selected.flatMap((e, i) => hostIdsFor(e, i)) });
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    await cl.stopAll();
  };
  for (const s of ['SIGINT', 'SIGTERM']) process.once(s, () => void cleanup().then(() => process.exit(130)));
  process.once('exit', () => {
    killAllNow();
  });
  // experiments start only while 45 s of the budget are left; the hard stop is 60 s after it
  const budgetS = Number(opt('--timeout-s', '480'));
  const deadline = setTimeout(() => {
    say(`suite ran 60 s past its ${budgetS} s budget: stopping everything`);
    void cleanup().then(() => process.exit(3));
  }, (budgetS + 60) * 1000);
  const started = new Date();
  const rows = [];
  try {
    say(`starting Kafka, ClickHouse, gateway, collector (logs in ${cl.logDir})`);
    await cl.start();
    say(`Kafka ${cl.kafka}, ClickHouse ${cl.chUrl} database ${cl.db}, gateway :${cl.gatewayPort}, collector :${cl.collectorPort}`);
    for (const [i, exp] of selected.entries()) {
      if (Date.now() - started.getTime() > budgetS * 1000 - 45000) {
        rows.push({ experiment: exp.name, expected: exp.expect, observed: `not run: the suite's ${budgetS} s budget is spent`, notes: [], pass: false, processesAlive: '—', seconds: 0 });
        continue;
      }
      say(`${exp.name} ...`);
      let r;
      try {
        r = await runExperiment(cl, exp, i);
      } catch (e) {
        r = { experiment: exp.name, expected: exp.expect, observed: `suite error: ${e.message}`, notes: [String(e.stack).split('\n').slice(0, 3).join(' ')], pass: false, processesAlive: '?', seconds: 0 };
      }
      rows.push(r);
      say(`${exp.name}: ${r.pass ? 'PASS' : 'FAIL'} (${r.seconds} s, truth ${r.truthJ?.toFixed(1)} J) ${r.observed}${r.notes.length ? ` | ${r.notes.join(' | ')}` : ''}`);
    }
  } catch (e) {
    if (e.unavailable) {
      say(`skipped: ${e.message}`);
      await cleanup();
      clearTimeout(deadline);
      if (flag('--json')) process.stdout.write(`${JSON.stringify({ skipped: e.message })}\n`);
      process.exit(2);
    }
    say(`suite error: ${e.stack}`);
    rows.push({ experiment: 'suite', pass: false, observed: e.message, notes: [] });
  } finally {
    if (flag('--keep')) say(`kept ${cl.tmp}`);
    await cleanup();
    clearTimeout(deadline);
  }
  const report = {
    command: `node scripts/faults.mjs ${argv.join(' ')}`.trim(),
    machine: `${hostname()} ${cpus().length} × ${cpus()[0]?.model ?? '?'}, Node ${process.version}`,
    build,
    commit: spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: build, encoding: 'utf8' }).stdout.trim(),
    uncommittedChanges: spawnSync('git', ['status', '--short', '--untracked-files=no', 'packages'], { cwd: build, encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean).length,
    startedAt: started.toISOString(),
    seconds: Math.round((Date.now() - started.getTime()) / 1000),
    results: rows,
  };
  if (flag('--json')) process.stdout.write(`${JSON.stringify(report)}\n`);
  else process.stdout.write(`\n${table(rows)}\n\n${rows.filter((r) => !r.pass).length} of ${rows.length} experiments failed (${report.seconds} s)\n`);
  process.exitCode = rows.every((r) => r.pass) ? 0 : 1;
}

if (flag('--driver')) await driverMain();
else await main();

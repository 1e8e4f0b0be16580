#!/usr/bin/env node
// Fleet-mode sustained throughput: simulated hosts (50 VMs each, 1 frame/s) → gRPC gateway → Kafka →
// collector (NestJS, attribution) → ClickHouse server, with both Kafka clients in the same run.
//
//   node benchmarks/fleet.mjs [--clients kafkajs,platformatic] [--steps 50,100,200,400,800]
//        [--step-seconds 15] [--warmup-seconds 15] [--vms 50] [--store-in-flight 1] [--store-min-interval-ms auto|N] [--store-linger on|off] [--agent-phases spread|aligned] [--compression lz4|gzip|none|snappy]
//        [--collectors 1] [--brokers 127.0.0.1:9092] [--clickhouse http://127.0.0.1:8123]
//        [--train S [--train-modes off,on,on-nogate,on-nice0] [--train-yield-above-s 2]] [--help]
//
// --train S: the collectors run the learned model and retrain it every S seconds; --train-modes runs
// each client once per mode, in the order given: `off` (the learned-model method, training disabled),
// `on` (training as the collector does by default: worker at nice 19, pausing while ingest is behind by
// more than --train-yield-above-s, training-gate.ts), `on-nogate` (nice 19, never pausing), `on-nice0`
// (the worker at the collector's own priority, never pausing).
//
// --collectors N runs N collectors in one consumer group (this process and N-1 children): the
// partitions are shared, as when a deployment scales the collector out. Their CPU is added up.
//
// Without --brokers / --clickhouse it starts its own broker (scripts/kafka.sh start NAME) and
// ClickHouse server (scripts/clickhouse-server.sh start NAME) and stops them at the end; NAME is
// --servers-name (default bench): give runs side by side on one box names of their own, or one run's end
// stops the other's servers. Node --cpu-prof profiles this process (the collector), not the children.
// Node processes as deployed: this one runs the collector (NestJS, attribution, store writes); a child
// (`--role load`) runs the simulated agents' gRPC streams and the gateway, which produces to Kafka; a
// child (`--role probe`) is the latency probe, a streaming consumer of the attribution topic.
// Everything shares the same 2 cores with the broker and the server: it is
// the single-box number. Per step it reports: frames/s accepted by the gateway, intervals/s
// stored, consumer lag at the end of the step, end-to-end latency (frame wall time → attribution
// published on wattsplit.attribution.v1, which happens after the store write) p50/p99, the collector's
// RSS and heap, and the CPU of each process (collector, load = agents + gateway, ClickHouse, Kafka) with
// the collector's CPU per VM-sample stored.
// A step is "sustained" when the consumer lag does not grow: its least-squares slope over the step
// (sampled every second) times the step's length is below one second of frames, i.e. the collectors
// fell behind by less than one second over the whole step (with --step-seconds 30: they consume at
// least 96.7 % of what arrives); the lag stays below 5 s of frames (plus, where the collectors commit every
// checkpoints.everyMs, that period's frames: frames handled and stored but not committed yet), and p99 < 5 s. The ramp stops at
// the first step that is not. The lag at one instant swings by up to a store-write cycle of frames
// (about one second's worth), so the slope over the step, not one sample, tells whether it grows. Prints a markdown table (docs/fleet.md keeps the results).
import { execFileSync, fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync, readdirSync, statfsSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { monitorEventLoopDelay, performance, PerformanceObserver } from 'node:perf_hooks';
import { setInterval, clearInterval, setImmediate } from 'node:timers';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const imp = (p) => import(pathToFileURL(join(root, p)).href);
const wire = await imp('packages/wire/dist/index.js');
const kafkaPkg = await imp('packages/kafka/dist/index.js');
const { EnergySource, EnergyUnit, VmState, AttributionBatch, TOPICS, silentLogger } = wire;

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  // the usage is this file's header comment
  const head = [];
  for (const line of readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1)) {
    if (!line.startsWith('//')) break;
    head.push(line.replace(/^\/\/ ?/, ''));
  }
  process.stdout.write(`${head.join('\n')}\n`);
  process.exit(0);
}
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] ? argv[i + 1] : dflt;
};
const say = (m) => process.stderr.write(`fleet-bench: ${m}\n`);
const compression = opt('compression', 'lz4');
const busOf = (kind, brokers, ns) => {
  const Impl = kind === 'kafkajs' ? kafkaPkg.KafkaBus : kafkaPkg.PlatformaticKafkaBus;
  // WATTSPLIT_KAFKA_FETCH_MIN_BYTES / _FETCH_MAX_WAIT_MS (the CLI's variables, read here too and passed to the children
  // by the environment): the consumers' fetch.min.bytes / fetch.max.wait.ms; the client's default when unset
  const fetch = kafkaPkg.kafkaOptionsFromEnv({ WATTSPLIT_KAFKA_BROKERS: brokers, WATTSPLIT_KAFKA_FETCH_MIN_BYTES: process.env.WATTSPLIT_KAFKA_FETCH_MIN_BYTES, WATTSPLIT_KAFKA_FETCH_MAX_WAIT_MS: process.env.WATTSPLIT_KAFKA_FETCH_MAX_WAIT_MS });
  const inner = new Impl({
    brokers: [brokers], partitions: 8, maxBatch: 500, partitionsConcurrently: 8, compression,
    ...(fetch.fetchMinBytes !== undefined ? { fetchMinBytes: fetch.fetchMinBytes } : {}),
    ...(fetch.fetchMaxWaitMs !== undefined ? { fetchMaxWaitMs: fetch.fetchMaxWaitMs } : {}),
  });
  return { inner, bus: new kafkaPkg.NamespacedBus(inner, ns) };
};
const hostsPerStream = 25;
/** Least-squares slope of [x, y] points (0 for fewer than 2). */
const slope = (pts) => {
  if (pts.length < 2) return 0;
  const mx = pts.reduce((a, [x]) => a + x, 0) / pts.length;
  const my = pts.reduce((a, [, y]) => a + y, 0) / pts.length;
  const sxy = pts.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0);
  const sxx = pts.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  return sxx > 0 ? sxy / sxx : 0;
};
/** The highest sample of each `periodS`-long window of [t, v] samples, at the window's centre (periodS ≤ 1: the samples). */
const envelope = (pts, periodS) => {
  if (periodS <= 1) return pts;
  const byWindow = new Map();
  for (const [t, v] of pts) {
    const w = Math.floor(t / periodS);
    byWindow.set(w, Math.max(byWindow.get(w) ?? -Infinity, v));
  }
  return [...byWindow].map(([w, v]) => [(w + 0.5) * periodS, v]);
};
const pct = (xs, p) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

/**
 * A child role's side of the parent's IPC calls: `mark` starts a measurement (CPU and wall clock from
 * here), `pause` ends it and answers the CPU seconds, RSS and what `handlers.pause` adds, `exit` runs
 * `handlers.exit` and ends the process; other commands go to `handlers[cmd]`. Answers carry the call's id.
 * Never returns.
 */
async function serveRole(handlers) {
  let mark = { t: performance.now(), cpu: process.cpuUsage() };
  process.on('message', async (m) => {
    if (m.cmd === 'mark') {
      mark = { t: performance.now(), cpu: process.cpuUsage() };
      process.send({ id: m.id, ...(handlers.mark?.() ?? {}) });
    } else if (m.cmd === 'pause') {
      const cpu = process.cpuUsage(mark.cpu);
      const wallS = (performance.now() - mark.t) / 1000;
      process.send({ id: m.id, wallS, cpuS: (cpu.user + cpu.system) / 1e6, rssMiB: Math.round(process.memoryUsage().rss / 2 ** 20), ...(handlers.pause?.() ?? {}) });
    } else if (m.cmd === 'exit') {
      await handlers.exit();
      process.send({ id: m.id });
      process.exit(0);
    } else handlers[m.cmd]?.(m);
  });
  process.send({ ready: true });
  await new Promise(() => undefined);
}

// ---------------------------------------------------------------------------------------------------
// --role load: simulated agents (one gRPC stream per 25 hosts, one batch per stream per second) and the
// gateway producing to Kafka. Driven by the parent over IPC.
if (opt('role', '') === 'load') {
  const { startGateway } = await imp('packages/gateway/dist/index.js');
  const { GrpcIngestClient } = await imp('packages/agent/dist/index.js');
  const cfg = JSON.parse(process.env.FLEET_BENCH_LOAD);
  const { bus } = busOf(cfg.kind, cfg.brokers, cfg.ns);
  const producer = bus.producer();
  const gateway = await startGateway({ producer, port: 0, host: '127.0.0.1', maxInFlightBatches: 4096 });
  const hostFrame = (h, seq, wallNs) => ({
    hostId: h.id,
    hardwareClass: 'bench-xeon',
    seq,
    bootId: h.boot,
    monoNs: Math.round((1000 + seq) * 1e9),
    wallUnixNs: wallNs,
    intervalMs: 1000,
    counters: [
      { id: 'intel-rapl:0', source: EnergySource.ENERGY_SOURCE_RAPL, domain: 'package', index: 0, value: Math.round(seq * 250 * 1e6), unit: EnergyUnit.ENERGY_UNIT_MICROJOULE, maxRange: 262_143_328_850 },
      { id: 'bmc', source: EnergySource.ENERGY_SOURCE_BMC, domain: 'chassis', index: -1, value: Math.round(seq * 450), unit: EnergyUnit.ENERGY_UNIT_JOULE, maxRange: 0 },
    ],
    vms: h.vms.map((vm) => ({
      uuid: vm.uuid,
      name: vm.uuid,
      tenant: vm.tenant,
      vcpus: 4,
      memoryBytes: 8 * 2 ** 30,
      state: VmState.VM_STATE_RUNNING,
      cpuTimeNs: Math.round(seq * vm.cores * 1e9),
      vcpuTimeNs: [Math.round(seq * vm.cores * 0.5e9), Math.round(seq * vm.cores * 0.5e9)],
      memoryUsedBytes: 4 * 2 ** 30,
      blockReadBytes: seq * 1e6,
      blockWriteBytes: seq * 5e5,
      netRxBytes: seq * 2e6,
      netTxBytes: seq * 1e6,
    })),
    hostCpu: { busyNs: Math.round(seq * h.busy * 1e9), idleNs: Math.round(seq * (128 - h.busy) * 1e9), onlineCpus: 128, avgFreqMhz: 2400 },
  });
  const hostsAll = Array.from({ length: cfg.maxHosts }, (_, i) => {
    const vms = Array.from({ length: cfg.vms }, (_, v) => ({ uuid: `${cfg.ns}-${i}-vm${v}`, tenant: `t${v % 10}`, cores: 0.2 + (v % 5) * 0.3 }));
    return { id: `${cfg.ns}-hv-${i}`, boot: 'b1', vms, busy: vms.reduce((a, v) => a + v.cores, 0) + 1, seq: 0 };
  });
  const streams = Array.from({ length: Math.ceil(cfg.maxHosts / hostsPerStream) }, () => ({ client: new GrpcIngestClient({ address: gateway.address, tls: false, logger: silentLogger }), busy: false, batchId: 0 }));
  let timers = [];
  const stopTimers = () => {
    for (const t of timers) {
      clearTimeout(t);
      clearInterval(t);
    }
    timers = [];
  };
  let counts = { framesAcked: 0, skippedTicks: 0 };
  const send = (n, si) => {
    const st = streams[si];
    const wall = Date.now() * 1e6;
    if (st.busy) {
      counts.skippedTicks++; // the previous batch of this stream is not acked yet: the agent would spool
      return;
    }
    const mine = hostsAll.slice(si * hostsPerStream, Math.min(n, (si + 1) * hostsPerStream));
    const frames = mine.map((h) => hostFrame(h, ++h.seq, wall));
    st.busy = true;
    void st.client.send({ batchId: ++st.batchId, frames }).then((r) => {
      st.busy = false;
      if (r.kind === 'ok') counts.framesAcked += frames.length;
      else for (const h of mine) h.seq--; // resend the same seqs next tick
    });
  };
  await serveRole({
    run: (m) => {
      stopTimers();
      const k = Math.ceil(m.hosts / hostsPerStream);
      if (cfg.agentPhases === 'aligned') {
        // every stream at the same moment of each second (the benchmark before 2026-12-07)
        const tick = () => {
          for (let si = 0; si < k; si++) send(m.hosts, si);
        };
        tick();
        timers.push(setInterval(tick, 1000));
      } else {
        // stream si at si/k of each second: real agents tick from their own start, spread over the second
        for (let si = 0; si < k; si++) {
          timers.push(setTimeout(() => {
            send(m.hosts, si);
            timers.push(setInterval(() => send(m.hosts, si), 1000));
          }, (si * 1000) / k));
        }
      }
    },
    mark: () => {
      counts = { framesAcked: 0, skippedTicks: 0 };
    },
    pause: () => {
      stopTimers();
      return counts;
    },
    exit: async () => {
      stopTimers();
      await Promise.all(streams.map((st) => st.client.close()));
      await gateway.close(1000);
      await producer.close();
      await bus.close();
    },
  });
}

// ---------------------------------------------------------------------------------------------------
// --role probe: the latency probe, a streaming consumer of wattsplit.attribution.v1 in its own process
// (as a real one would be), so that decoding every published batch is not counted as collector CPU.
if (opt('role', '') === 'probe') {
  const cfg = JSON.parse(process.env.FLEET_BENCH_PROBE);
  const { bus } = busOf(cfg.kind, cfg.brokers, cfg.ns);
  let latencies = [];
  let published = 0;
  const sub = await bus.subscribe({
    topic: TOPICS.attribution,
    groupId: 'bench-latency',
    fromBeginning: false,
    handler: async (msgs) => {
      const now = Date.now();
      for (const m of msgs) {
        const b = AttributionBatch.decode(m.value);
        latencies.push(now - Number(b.t1UnixNs) / 1e6);
        published++;
      }
    },
  });
  await serveRole({
    mark: () => {
      latencies = [];
      return { published };
    },
    pause: () => ({ published, p50: pct(latencies, 50), p99: pct(latencies, 99) }),
    exit: async () => {
      await sub.stop();
      await bus.close();
    },
  });
}

// ---------------------------------------------------------------------------------------------------
// The collector side.
const { ClickHouseServerStore } = await imp('packages/store/dist/index.js');
const { createCollectorApp } = await imp('packages/collector/dist/index.js');
// --train S: the collectors run the learned model and retrain it every S seconds (periodS 1: every check
// retrains), so training runs in their worker threads through the steps. --train-modes off,on runs each
// client twice in one run, first with training off (the learned-model method configured, training
// disabled) and then on, for the latency with training next to without. `on` trains as the collector
// does by default, its worker thread at nice 19; `on-nice0` trains with the worker at the collector's
// own priority (workerNice 0), as before the renice.
const trainEveryS = Number(opt('train', '0'));
const trainModes = opt('train-modes', trainEveryS > 0 ? 'on' : 'off').split(',');
const TRAIN_MODES = { off: { trainS: 0 }, on: { nice: 19, gate: true }, 'on-nogate': { nice: 19, gate: false }, 'on-nice0': { nice: 0, gate: false } };
for (const m of trainModes) if (!TRAIN_MODES[m]) throw new Error(`--train-modes: ${m} is not one of ${Object.keys(TRAIN_MODES).join(', ')}`);
const yieldAboveS = Number(opt('train-yield-above-s', '2'));
// --store-linger on|off: the collectors' storeWrites.linger (default on, as `wattsplit collector`); children
// read it from the environment the parent sets
const storeLinger = opt('store-linger', process.env.FLEET_BENCH_STORE_LINGER ?? 'on');
// --checkpoint-every-ms N: the collectors' checkpoints.everyMs (restart checkpoints and offset commits at most this often
// per partition; the collector's default, 5000 on Kafka, when not given; 0 = with every store write, as before 2026-12-07).
// Passed to the extra collectors through the environment.
const checkpointEveryArg = opt('checkpoint-every-ms', process.env.FLEET_BENCH_CHECKPOINT_EVERY_MS ?? '');
const checkpointEveryMs = checkpointEveryArg === '' ? undefined : Number(checkpointEveryArg);
if (checkpointEveryMs !== undefined) process.env.FLEET_BENCH_CHECKPOINT_EVERY_MS = String(checkpointEveryMs);
if (storeLinger !== 'on' && storeLinger !== 'off') throw new Error(`--store-linger: ${storeLinger} is not on or off`);
process.env.FLEET_BENCH_STORE_LINGER = storeLinger;
const collectorOptions = (bus, store, inFlight, minIntervalMs, trainS, workerNice = 19, gate = true) => ({
  bus, store, groupId: 'bench', policy: 'reserved', storeWrites: { maxInFlight: inFlight, minIntervalMs, linger: storeLinger === 'on' }, ...(checkpointEveryMs === undefined ? {} : { checkpoints: { everyMs: checkpointEveryMs } }), staticPower: { fallbackWatts: { rapl: 80, gpu: 0, bmc_rest: 120 }, learn: false },
  ...(trainS > 0
    ? { models: { training: { checkIntervalS: trainS, periodS: 1, minIntervals: 300, lookbackS: 600, limit: 20_000, workerNice, yieldToIngest: { pauseAboveS: gate ? yieldAboveS : 0 } } } }
    : trainEveryS > 0
      ? { models: { training: { enabled: false } } }
      : {}),
});

// --role collector: one more collector in the same consumer group (--collectors N > 1), reporting its CPU.
if (opt('role', '') === 'collector') {
  const cfg = JSON.parse(process.env.FLEET_BENCH_COLLECTOR);
  const { bus } = busOf(cfg.kind, cfg.brokers, cfg.ns);
  const store = new ClickHouseServerStore({ url: cfg.chUrl, database: cfg.database, requestTimeoutMs: 30_000 });
  const app = await createCollectorApp(collectorOptions(bus, store, cfg.storeInFlight, cfg.storeMinIntervalMs, cfg.trainS, cfg.workerNice, cfg.gate));
  await serveRole({
    pause: () => ({ intervals: app.pipeline.stats.intervalsStored }),
    exit: async () => {
      await app.close();
      await store.close();
      await bus.close();
    },
  });
}
const clients = opt('clients', 'kafkajs,platformatic').split(',');
const steps = opt('steps', '50,100,200,400,800').split(',').map(Number);
const stepSeconds = Number(opt('step-seconds', '15'));
const warmupSeconds = Number(opt('warmup-seconds', '15'));
const vmsPerHost = Number(opt('vms', '50'));
const storeInFlight = Number(opt('store-in-flight', '1'));
// auto = the bus's storeWriteIntervalMs, what `wattsplit collector` uses: 1000 ms with platformatic, 0 with kafkajs
const storeMinIntervalOpt = opt('store-min-interval-ms', 'auto');
const storeMinIntervalFor = (inner) => (storeMinIntervalOpt === 'auto' ? inner.storeWriteIntervalMs : Number(storeMinIntervalOpt));
const collectorCount = Number(opt('collectors', '1'));
// --agent-phases spread|aligned: when in each second the simulated agents send (default spread: stream i
// of k at i/k s, as agents that tick from their own start times; aligned: all at once, as before 2026-12-07)
const agentPhases = opt('agent-phases', 'spread');
if (agentPhases !== 'spread' && agentPhases !== 'aligned') throw new Error(`--agent-phases: ${agentPhases} is not spread or aligned`);

function script(name, args) {
  return execFileSync('bash', [join(root, 'scripts', name), ...args], { encoding: 'utf8', timeout: 120_000 }).trim().split('\n').pop();
}

let brokers = opt('brokers', '');
let chUrl = opt('clickhouse', '');
const ownBroker = !brokers;
const ownCh = !chUrl;
const serversName = opt('servers-name', 'bench');
if (!/^[a-z0-9-]+$/.test(serversName)) throw new Error(`--servers-name ${serversName}: letters, digits and dashes only`);
if (ownBroker) brokers = script('kafka.sh', ['start', serversName]);
if (ownCh) chUrl = script('clickhouse-server.sh', ['start', serversName]);
const chVersion = await (await globalThis.fetch(`${chUrl}/?query=SELECT%20version()`)).text();
/**
 * Where our ClickHouse server keeps its data (scripts/clickhouse-server.sh honours WATTSPLIT_CLICKHOUSE_CACHE), and on what
 * filesystem: on this VM's root, an ext4 without a journal, each part's files cost the kernel's inode allocator far more
 * than on tmpfs (docs/fleet.md, "The ClickHouse server's data directory"), so a run says which it had.
 */
const chCache = process.env.WATTSPLIT_CLICKHOUSE_CACHE ?? join(root, '.cache/clickhouse');
const FS_TYPES = { 0xef53: 'ext4', 0x01021994: 'tmpfs', 0x58465342: 'xfs', 0x9123683e: 'btrfs', 0x794c7630: 'overlayfs' };
const chFs = ownCh ? (() => {
  try {
    const t = statfsSync(join(chCache, serversName)).type;
    return FS_TYPES[t] ?? `0x${t.toString(16)}`;
  } catch {
    return 'unknown';
  }
})() : 'not ours';

/** CPU seconds (user + system, all threads) of a process we started, from /proc; undefined if unknown. */
function procCpuS(pidFile) {
  try {
    const pid = readFileSync(resolve(root, pidFile), 'utf8').trim();
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return undefined;
  }
}
/** CPU seconds of a process's threads whose name starts with `prefix` (ClickHouse's merge pool: BackgrProcPool). */
function threadCpuS(pidFile, prefix) {
  try {
    const pid = readFileSync(resolve(root, pidFile), 'utf8').trim();
    let s = 0;
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      try {
        if (!readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').startsWith(prefix)) continue;
        const stat = readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        s += (Number(f[11]) + Number(f[12])) / 100;
      } catch {
        // the thread ended meanwhile
      }
    }
    return s;
  } catch {
    return undefined;
  }
}
/**
 * CPU seconds of this process's threads by kind. Node names them all "node"; they are told apart by
 * creation order — their start time (/proc/<pid>/task/<tid>/stat field 22, in clock ticks; ties broken by
 * tid): the main thread (tid = pid), then the platform's threads created at start-up — a delayed-task
 * scheduler, the V8 worker pool (--v8-pool-size, default 4: parallel and concurrent GC, concurrent
 * compilation) and the inspector's I/O thread — then the libuv threadpool (UV_THREADPOOL_SIZE, default 4:
 * zlib, fs, dns), then any later thread (worker_threads); with --cpu-prof, the profiler's sampling thread
 * sits between the platform's and libuv's. Checked on Node 20 with an allocation loop (only the V8 pool
 * moves, and the profiler's thread) and async gzip (only libuv's moves). A thread's kind is fixed the first
 * time it is seen (keyed by tid), so one that exits does not shift the others' kinds.
 * Returns tid → { kind, s }; `threadCpuDeltaS` takes the difference of two readings.
 */
/** The value of a node option in `argv` (`--name=V` or `--name V`), or undefined. */
const optionValue = (argv, name) => {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === name) return argv[i + 1];
    if (argv[i].startsWith(`${name}=`)) return argv[i].slice(name.length + 1);
  }
  return undefined;
};
/**
 * `execArgv` less the options that apply to the collector (this process) only: --cpu-prof and its
 * --cpu-prof-dir / -name / -interval, --max-semi-space-size, --single-threaded-gc; a value given as the next
 * argument (`--cpu-prof-dir DIR`, `--max-semi-space-size 64`) goes with its option.
 */
const COLLECTOR_ONLY_FLAGS = ['--cpu-prof', '--single-threaded-gc'];
const COLLECTOR_ONLY_WITH_VALUE = ['--cpu-prof-dir', '--cpu-prof-name', '--cpu-prof-interval', '--max-semi-space-size'];
function collectorOnlyArgvDropped(argv) {
  const kept = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (COLLECTOR_ONLY_WITH_VALUE.includes(a)) i++; // and its value
    else if (COLLECTOR_ONLY_FLAGS.includes(a) || COLLECTOR_ONLY_WITH_VALUE.some((f) => a.startsWith(`${f}=`))) continue;
    else kept.push(a);
  }
  return kept;
}
const v8Pool = Number(optionValue(process.execArgv, '--v8-pool-size') ?? 4);
const uvPool = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
const profiling = process.execArgv.some((a) => a.startsWith('--cpu-prof'));
const THREAD_KINDS = ['main', 'v8', 'platformOther', 'profiler', 'libuv', 'later'];
const threadKind = new Map();
function ownThreadCpuS() {
  const threads = [];
  let tids;
  try {
    tids = readdirSync('/proc/self/task').map(Number);
  } catch {
    return undefined;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      // fields after "(comm) ": f[0] is field 3, so field N is f[N − 3]
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      threads.push({ tid, start: Number(f[19]), s: (Number(f[11]) + Number(f[12])) / 100 });
    } catch {
      // the thread ended meanwhile
    }
  }
  threads.sort((a, b) => a.start - b.start || a.tid - b.tid);
  // with --cpu-prof the profiler's sampling thread comes right after the platform's (checked the same way)
  const p = profiling ? 1 : 0;
  const out = new Map();
  threads.forEach(({ tid, s }, i) => {
    if (!threadKind.has(tid)) {
      threadKind.set(
        tid,
        tid === process.pid ? 'main' : i >= 2 && i < 2 + v8Pool ? 'v8' : i < 3 + v8Pool ? 'platformOther' : i < 3 + v8Pool + p ? 'profiler' : i < 3 + v8Pool + p + uvPool ? 'libuv' : 'later',
      );
    }
    out.set(tid, { kind: threadKind.get(tid), s });
  });
  return out;
}
/**
 * CPU seconds by thread kind between two readings of `ownThreadCpuS`, per tid: a thread started in between
 * counts from 0; one that exited in between is left out (its last seconds are not known), so no kind goes
 * negative.
 */
function threadCpuDeltaS(before, after) {
  const out = Object.fromEntries(THREAD_KINDS.map((k) => [k, 0]));
  for (const [tid, { kind, s }] of after) out[kind] += Math.max(0, s - (before.get(tid)?.s ?? 0));
  return out;
}
const serverCpu = () => ({
  ch: ownCh ? procCpuS(join(chCache, serversName, 'pid')) : undefined,
  chMerges: ownCh ? threadCpuS(join(chCache, serversName, 'pid'), 'BackgrProcPool') : undefined,
  kafka: ownBroker ? procCpuS(`.cache/kafka/run/${serversName}/pid`) : undefined,
});


async function runClient(kind, trainS, workerNice = 19, gate = true) {
  const ns = `bench-${kind}-${randomUUID().slice(0, 6)}`;
  const database = `bench_${ns.replace(/-/g, '_')}`;
  const { inner, bus: nsBus } = busOf(kind, brokers, ns);
  // Times the collector's handler calls (batch size, duration) to tell bus from store/attribution time.
  const handlerStats = { calls: 0, messages: 0, ms: 0 };
  const bus = {
    producer: () => nsBus.producer(),
    close: () => nsBus.close(),
    topic: (t) => nsBus.topic(t),
    subscribe: (o) =>
      nsBus.subscribe(
        o.groupId !== 'bench'
          ? o
          : {
              ...o,
              handler: async (msgs, part) => {
                const t = performance.now();
                try {
                  await o.handler(msgs, part);
                } finally {
                  handlerStats.calls++;
                  handlerStats.messages += msgs.length;
                  handlerStats.ms += performance.now() - t;
                }
              },
            },
      ),
  };
  const store = new ClickHouseServerStore({ url: chUrl, database, requestTimeoutMs: 30_000 });
  const storeMinIntervalMs = storeMinIntervalFor(inner);
  const collector = await createCollectorApp(collectorOptions(bus, store, storeInFlight, storeMinIntervalMs, trainS, workerNice, gate));
  // how often the collectors commit offsets (and save restart checkpoints): the committed lag's saw-tooth period
  const commitEveryS = collector.pipeline.checkpointEveryMs / 1000;
  const writer = collector.pipeline.writer.stats;
  // Time spent in the collector's three awaited steps per handler call (store write, checkpoint save,
  // attribution publish), to tell which one the latency comes from.
  const stepMs = { write: [], checkpoints: [], publish: [] };
  const timed = (obj, method, into) => {
    const orig = obj[method].bind(obj);
    obj[method] = async (...a) => {
      const t = performance.now();
      try {
        return await orig(...a);
      } finally {
        into.push(performance.now() - t);
      }
    };
  };
  timed(collector.pipeline.store, 'writeIntervals', stepMs.write);
  timed(collector.pipeline.store, 'saveCheckpoints', stepMs.checkpoints);
  timed(collector.pipeline.producer, 'send', stepMs.publish);
  let rpcId = 0;
  /** A child process of this script in `role`, with a request/response call over IPC. */
  const child = async (role, env) => {
    // `node --cpu-prof benchmarks/fleet.mjs` profiles the collector (this process), not the children;
    // the GC flags (--max-semi-space-size=N, --single-threaded-gc) apply to the collector only, too
    const execArgv = collectorOnlyArgvDropped(process.execArgv);
    // --compression goes to every child: the gateway (load) and the probe and further collectors produce and consume too
    // (before 2026-12-07 they ran the default, gzip, whatever the flag: the flag changed the first collector only).
    const proc = fork(fileURLToPath(import.meta.url), ['--role', role, '--compression', compression], { execArgv, env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    await new Promise((resolve, reject) => {
      proc.once('message', resolve);
      proc.once('exit', (code) => reject(new Error(`${role} process exited with ${code}`)));
    });
    const call = (cmd, extra = {}) =>
      new Promise((resolve) => {
        const id = ++rpcId;
        const on = (m) => {
          if (m.id === id) {
            proc.off('message', on);
            resolve(m);
          }
        };
        proc.on('message', on);
        proc.send({ id, cmd, ...extra });
      });
    return { proc, call };
  };
  // More collectors in the same group: the partitions are shared (one partition is the unit of scale).
  const extra = [];
  for (let i = 1; i < collectorCount; i++) extra.push(await child('collector', { FLEET_BENCH_COLLECTOR: JSON.stringify({ kind, brokers, ns, chUrl, database, storeInFlight, storeMinIntervalMs, trainS, workerNice, gate }) }));
  // The probe subscribes before any frame flows; it reads only what is published after it joined.
  const probe = await child('probe', { FLEET_BENCH_PROBE: JSON.stringify({ kind, brokers, ns }) });
  const { proc: load, call: rpc } = await child('load', { FLEET_BENCH_LOAD: JSON.stringify({ kind, brokers, ns, vms: vmsPerHost, maxHosts: Math.max(...steps), agentPhases }) });
  const rows = [];
  for (const n of steps) {
    load.send({ cmd: 'run', hosts: n });
    // Warm-up (not measured): new hosts' first frames cost the collector a checkpoint lookup each.
    await new Promise((r) => setTimeout(r, warmupSeconds * 1000));
    load.send({ cmd: 'mark' });
    for (const c of extra) c.proc.send({ cmd: 'mark' });
    const stored0 = (await probe.call('mark')).published;
    const cpu0 = process.cpuUsage();
    const threads0 = ownThreadCpuS();
    const gc = { ms: 0, n: 0, byKind: {} };
    const gcObs = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        gc.ms += e.duration;
        gc.n++;
        const k = e.detail?.kind ?? 0;
        gc.byKind[k] = (gc.byKind[k] ?? 0) + e.duration;
      }
    });
    gcObs.observe({ entryTypes: ['gc'] });
    // the observer's entries come on a later turn of the event loop: one turn before disconnecting, so the
    // step's last pauses are counted; in a finally, so that a failed step does not leave it observing
    let gcObserving = true;
    const gcObserverStopped = async () => {
      if (!gcObserving) return;
      gcObserving = false;
      await new Promise((r) => setImmediate(r));
      gcObs.disconnect();
    };
    try {
      const srv0 = serverCpu();
      const w0 = { ...writer };
      Object.assign(handlerStats, { calls: 0, messages: 0, ms: 0 });
      for (const k of Object.keys(stepMs)) stepMs[k].length = 0;
      const trained0 = collector.training?.outcomes.length ?? 0;
      const gate0 = { pausedS: collector.training?.gate.pausedSecondsTotal ?? 0, pauses: collector.training?.gate.pauses ?? 0, overruns: collector.training?.gate.overruns ?? 0 };
      // the collector's own ingest delay (ingest-delay.ts: what the gate reads), sampled every second
      const delaySamples = [];
      const loop = monitorEventLoopDelay({ resolution: 10 });
      loop.enable();
      const load0 = loadavg()[0];
      const t0 = performance.now();
      const lagSamples = [];
      const sampler = setInterval(() => {
        const t = (performance.now() - t0) / 1000;
        void nsBus.lag(TOPICS.telemetry, 'bench').then((v) => lagSamples.push([t, v]), () => undefined);
        delaySamples.push(collector.pipeline.metrics.ingest.delayS());
      }, 1000);
      await new Promise((r) => setTimeout(r, stepSeconds * 1000));
      clearInterval(sampler);
      loop.disable();
      const trainedInStep = (collector.training?.outcomes ?? []).slice(trained0).filter((o) => o.version);
      const g1 = collector.training?.gate;
      const l = await rpc('pause');
      const others = await Promise.all(extra.map((c) => c.call('pause')));
      const pr = await probe.call('pause');
      const wallS = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      const threads1 = ownThreadCpuS();
      await gcObserverStopped();
      const srv1 = serverCpu();
      const lag = await nsBus.lag(TOPICS.telemetry, 'bench');
      const mem = process.memoryUsage();
      const intervals = pr.published - stored0;
      const collectorCpuS = (cpu.user + cpu.system) / 1e6 + others.reduce((a, o) => a + o.cpuS, 0);
      const cpuPct = (x) => (x === undefined ? undefined : Math.round((x / wallS) * 100));
      const row = {
        client: kind,
        training: trainS > 0 ? `every ${trainS} s, nice ${workerNice}, ${gate ? `pauses above ${yieldAboveS} s` : 'never pauses'}` : trainEveryS > 0 ? 'off' : '-',
        pausedS: g1 ? +(g1.pausedSecondsTotal - gate0.pausedS).toFixed(1) : 0,
        pauses: g1 ? g1.pauses - gate0.pauses : 0,
        overruns: g1 ? g1.overruns - gate0.overruns : 0,
        delayP50: +pct(delaySamples, 50).toFixed(2),
        delayP99: +pct(delaySamples, 99).toFixed(2),
        trainings: trainedInStep.length,
        trainTotalS: trainedInStep.length ? +pct(trainedInStep.map((o) => o.timings?.totalS ?? NaN), 50).toFixed(1) : undefined,
        trainReadS: trainedInStep.length ? +pct(trainedInStep.map((o) => o.timings?.readS ?? NaN), 50).toFixed(1) : undefined,
        trainIntervals: trainedInStep.length ? trainedInStep.at(-1).version.intervals : undefined,
        loopP99: +(loop.percentile(99) / 1e6).toFixed(1),
        loopMax: Math.round(loop.max / 1e6),
        loadAvg: +((load0 + loadavg()[0]) / 2).toFixed(1),
        collectors: collectorCount,
        minIntervalMs: storeMinIntervalMs,
        linger: storeLinger,
        agentPhases,
        compression,
        hosts: n,
        vmSamplesPerS: Math.round((l.framesAcked * vmsPerHost) / l.wallS),
        framesPerS: Math.round(l.framesAcked / l.wallS),
        intervalsPerS: Math.round(intervals / wallS),
        lagEnd: lag,
        lagMax: Math.max(lag, ...lagSamples.map(([, v]) => v)),
        // the committed lag rises by up to a commit period of frames between two commits (checkpoints.everyMs):
        // its slope is taken over the upper envelope (each period's highest sample), which that saw-tooth does not tilt
        lagSlope: +slope(envelope(lagSamples, commitEveryS)).toFixed(1),
        commitEveryS,
        p50: Math.round(pr.p50),
        p99: Math.round(pr.p99),
        rssMiB: Math.round(mem.rss / 2 ** 20),
        heapMiB: Math.round(mem.heapUsed / 2 ** 20),
        loadRssMiB: l.rssMiB,
        cpuCollector: cpuPct(collectorCpuS),
        cpuLoad: cpuPct(l.cpuS),
        cpuProbe: cpuPct(pr.cpuS),
        cpuClickhouse: cpuPct(srv0.ch === undefined || srv1.ch === undefined ? undefined : srv1.ch - srv0.ch),
        cpuClickhouseMerges: cpuPct(srv0.chMerges === undefined || srv1.chMerges === undefined ? undefined : srv1.chMerges - srv0.chMerges),
        cpuKafka: cpuPct(srv0.kafka === undefined || srv1.kafka === undefined ? undefined : srv1.kafka - srv0.kafka),
        collectorUsPerVmSample: intervals > 0 ? +((collectorCpuS * 1e6) / (intervals * vmsPerHost)).toFixed(1) : undefined,
        // this process's CPU by thread kind, µs per VM-sample stored (the extra collectors of --collectors N are not split)
        collectorThreadsUs:
          threads0 && threads1 && intervals > 0
            ? Object.fromEntries(Object.entries(threadCpuDeltaS(threads0, threads1)).map(([k, v]) => [k, +((v * 1e6) / (intervals * vmsPerHost)).toFixed(1)]))
            : undefined,
        // main-thread GC pauses (perf_hooks 'gc' entries): µs per VM-sample and count; kinds 1 minor, 2 major, 4 incremental, 8 weak callbacks
        gcPauseUs: intervals > 0 ? +((gc.ms * 1e3) / (intervals * vmsPerHost)).toFixed(1) : undefined,
        gcPauses: gc.n,
        gcMsByKind: Object.fromEntries(Object.entries(gc.byKind).map(([k, v]) => [k, Math.round(v)])),
        skippedTicks: l.skippedTicks,
        handlerCalls: handlerStats.calls,
        meanBatch: +(handlerStats.messages / Math.max(1, handlerStats.calls)).toFixed(1),
        meanHandlerMs: Math.round(handlerStats.ms / Math.max(1, handlerStats.calls)),
        storeWrites: writer.writes - w0.writes,
        intervalsPerWrite: Math.round((writer.items - w0.items) / Math.max(1, writer.writes - w0.writes)),
        stepMsP50: Object.fromEntries(Object.entries(stepMs).map(([k, v]) => [k, Math.round(pct(v, 50))])),
        stepMsP99: Object.fromEntries(Object.entries(stepMs).map(([k, v]) => [k, Math.round(pct(v, 99))])),
      };
      row.sustained = row.lagSlope * stepSeconds < n && row.lagMax < (5 + commitEveryS) * n && row.p99 < 5000 && row.skippedTicks <= n / hostsPerStream;
      rows.push(row);
      say(JSON.stringify(row));
    } finally {
      await gcObserverStopped();
    }
    // let the backlog drain (bounded) before the next step so steps do not pollute each other
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && (await nsBus.lag(TOPICS.telemetry, 'bench')) > 0) await new Promise((r) => setTimeout(r, 500));
    if (!rows.at(-1).sustained) break;
  }
  await rpc('exit');
  for (const c of extra) await c.call('exit');
  await probe.call('exit');
  await collector.close();
  await store.query(`DROP DATABASE IF EXISTS ${database}`).catch(() => undefined);
  await store.close();
  for (const t of [TOPICS.telemetry, TOPICS.attribution, TOPICS.deadLetter]) await inner.deleteTopic(bus.topic(t)).catch(() => undefined);
  await bus.close();
  return rows;
}

const all = [];
try {
  for (const c of clients) {
    say(`client ${c}: steps ${steps.join(', ')} hosts × ${vmsPerHost} VMs, ${stepSeconds} s each`);
    for (const m of trainModes) {
      const mode = TRAIN_MODES[m];
      all.push(...(await runClient(c, mode.trainS === 0 ? 0 : trainEveryS, mode.nice ?? 19, mode.gate ?? true)));
    }
  }
} finally {
  if (ownBroker) script('kafka.sh', ['stop', serversName]);
  if (ownCh) script('clickhouse-server.sh', ['stop', serversName]);
}

const best = (c) => Math.max(0, ...all.filter((r) => r.client === c && r.sustained && (r.training === 'off' || r.training === '-')).map((r) => r.hosts));
const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, Kafka 3.9.1 (1 broker, KRaft), ClickHouse ${chVersion.trim()} (data on ${chFs})`;
const lines = [
  `machine: ${machine}`,
  `date: ${new Date().toISOString()}`,
  `command: node benchmarks/fleet.mjs ${argv.join(' ')}`.trim(),
  '',
  '| client | collectors | write spacing ms | hosts | VM-samples/s | intervals/s stored | lag growth frames/s | lag max | e2e p50 ms | e2e p99 ms | collector RSS MiB | CPU % collector / load / ClickHouse (merges) / Kafka | collector µs per VM-sample | intervals per store write | sustained |',
  '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ...all.map((r) => `| ${r.client} | ${r.collectors} | ${r.minIntervalMs} | ${r.hosts} | ${r.vmSamplesPerS} | ${r.intervalsPerS} | ${r.lagSlope} | ${r.lagMax} | ${r.p50} | ${r.p99} | ${r.rssMiB} | ${r.cpuCollector} / ${r.cpuLoad} / ${r.cpuClickhouse ?? '?'} (${r.cpuClickhouseMerges ?? '?'}) / ${r.cpuKafka ?? '?'} | ${r.collectorUsPerVmSample ?? '?'} | ${r.intervalsPerWrite} | ${r.sustained ? 'yes' : 'no'} |`),
  '',
  ...(trainEveryS > 0
    ? [
        'With training (the collector in this process; its trainings that finished within the step, their median whole train() and history read):',
        '',
        '| client | training | hosts | e2e p50 ms | e2e p99 ms | lag max | ingest delay p50 / p99 s | collector event-loop delay p99 / max ms | collector CPU % | trainings in step | train() s (read s) | paused s (pauses) | intervals per training | load avg | sustained |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
        ...all.map((r) => `| ${r.client} | ${r.training} | ${r.hosts} | ${r.p50} | ${r.p99} | ${r.lagMax} | ${r.delayP50} / ${r.delayP99} | ${r.loopP99} / ${r.loopMax} | ${r.cpuCollector} | ${r.trainings} | ${r.trainTotalS ?? '-'} (${r.trainReadS ?? '-'}) | ${r.pausedS} (${r.pauses}${r.overruns ? `, ${r.overruns} overran` : ''}) | ${r.trainIntervals ?? '-'} | ${r.loadAvg} | ${r.sustained ? 'yes' : 'no'} |`),
        '',
      ]
    : []),
  'The collector process (this one) by thread, µs of CPU per VM-sample stored: main thread, V8 worker pool (GC helpers, compilers), other platform threads, libuv threadpool, later threads; and the main thread\'s GC pauses (perf_hooks):',
  '',
  '| client | hosts | main | V8 pool | platform other | CPU profiler | libuv pool | later | GC pauses on main (count) | load avg |',
  '|---|---|---|---|---|---|---|---|---|---|',
  ...all.map((r) => { const th = r.collectorThreadsUs; return `| ${r.client} | ${r.hosts} | ${th?.main ?? '?'} | ${th?.v8 ?? '?'} | ${th?.platformOther ?? '?'} | ${th?.profiler ?? '?'} | ${th?.libuv ?? '?'} | ${th?.later ?? '?'} | ${r.gcPauseUs ?? '?'} (${r.gcPauses}) | ${r.loadAvg} |`; }),
  '',
  ...clients.map((c) => `${c}: sustained up to ${best(c)} hosts`),
  '',
  'CPU per VM-sample (µs) at the largest sustained step, and the cores 1 000 hosts × 50 VMs would need at that cost:',
  ...clients.flatMap((c) => {
    const r = all.filter((x) => x.client === c && x.sustained).at(-1);
    if (!r) return [];
    const us = (p) => (p === undefined ? undefined : (p / 100) * 1e6 / r.vmSamplesPerS);
    const parts = { collector: us(r.cpuCollector), 'agents+gateway': us(r.cpuLoad), clickhouse: us(r.cpuClickhouse), kafka: us(r.cpuKafka) };
    const known = Object.values(parts).filter((v) => v !== undefined);
    const total = known.reduce((a, v) => a + v, 0);
    return [`${c} @ ${r.hosts} hosts: ${Object.entries(parts).map(([k, v]) => `${k} ${v === undefined ? '?' : v.toFixed(1)}`).join(', ')}; total ${total.toFixed(1)} µs → ${((total * 50_000) / 1e6).toFixed(1)} cores for 50 000 VM-samples/s`];
  }),
];
if (clients.includes('kafkajs') && clients.includes('platformatic') && best('kafkajs') > 0) lines.push(`ratio platformatic / kafkajs (hosts sustained): ${(best('platformatic') / best('kafkajs')).toFixed(2)}`);
console.log(lines.join('\n'));
process.exit(0);

/**
 * Wiring from an AgentConfig to running parts: the platform sources (each optional one degrades to
 * "absent, said once"), the Agent, the GrpcIngestClient wrapped by the SpoolingSender, and the
 * `--check` report. The CLI (packages/cli) only parses flags and calls these.
 */
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import type { BmcSource, DomainSource, GpuSource, HostFs, ITelemetryFrame, LogEntry, Logger, PerfSource, ProcessOwnerMap } from '@wattsplit/wire';
import { VmState, memoryLogger, WattsplitError } from '@wattsplit/wire';

const VM_STATE_NAMES = new Map(Object.entries(VmState).map(([k, v]) => [Number(v), k.replace('VM_STATE_', '').toLowerCase()]));
import { Agent } from './agent.js';
import type { AgentConfig } from './agent-config.js';
import { CGROUP_ROOT, detectCgroupVersion } from './cgroup-reader.js';
import type { AgentClock } from './clock.js';
import { GrpcIngestClient, ingestCredentials } from './grpc-ingest-client.js';
import { RootedHostFs, isKernelSysfsRoot } from './host-fs.js';
import { IpmiDcmiBmcSource } from './ipmi-dcmi-bmc-source.js';
import { LibvirtDomainSource } from './libvirt-domain-source.js';
import { NvmlGpuSource } from './nvml-gpu-source.js';
import { NvmlTraceGpuSource, nvmlTraceProcessOwners } from './nvml-trace-gpu-source.js';
import { PerfEventSource } from './perf-event-source.js';
import { RedfishBmcSource } from './redfish-bmc-source.js';
import type { SamplerStatus } from './sampler.js';
import { SpoolingSender } from './spooling-sender.js';
import { StaticDomainSource } from './static-domain-source.js';

export interface AgentSources {
  fs: RootedHostFs;
  domains: DomainSource;
  gpus?: GpuSource;
  bmc?: BmcSource;
  perf?: PerfSource;
  processOwners?: ProcessOwnerMap;
  /** Why an optional source is absent, one line each. */
  notes: SamplerStatus[];
}

/** Opens every configured source; an unavailable optional one becomes a note, not an error. */
export async function buildAgentSources(cfg: AgentConfig, log: Logger, opts: { check?: boolean } = {}): Promise<AgentSources> {
  // keep sysfs/cgroupfs/procfs files open (pread) on a real host (also mounted under a container's root);
  // a fixture tree is read file by file unless the config says otherwise
  const fs = new RootedHostFs(cfg.sysfsRoot, { keepOpen: cfg.sysfsKeepOpen ?? isKernelSysfsRoot(cfg.sysfsRoot) });
  const notes: SamplerStatus[] = [];
  let domains: DomainSource = new StaticDomainSource(cfg.vms);
  if (cfg.libvirt) {
    try {
      domains = await LibvirtDomainSource.open({ uri: cfg.libvirt.uri, logger: log });
    } catch (e) {
      const msg = `${(e as Error).message}; using the ${cfg.vms.length} VMs listed in the config instead`;
      log.warn({ code: 'SENSOR_UNAVAILABLE' }, msg);
      notes.push({ name: 'libvirt', state: 'unavailable', detail: msg });
    }
  } else notes.push({ name: 'libvirt', state: 'unavailable', detail: `libvirt disabled in the config; ${cfg.vms.length} VMs listed statically` });
  const out: AgentSources = { fs, domains, notes };
  if (cfg.nvml.traceFile) {
    const src = NvmlTraceGpuSource.fromFile(cfg.nvml.traceFile, { loop: true });
    out.gpus = src;
    out.processOwners = nvmlTraceProcessOwners(src.trace);
    notes.push({ name: 'nvml', state: 'ok', detail: `replaying NVML trace ${cfg.nvml.traceFile} (${src.trace.samples.length} samples)` });
  } else if (cfg.nvml.enabled) {
    try {
      out.gpus = NvmlGpuSource.open({ logger: log, ...(cfg.nvml.libPath ? { libPath: cfg.nvml.libPath } : {}) });
    } catch (e) {
      log.warn({ code: 'SENSOR_UNAVAILABLE' }, (e as Error).message);
      notes.push({ name: 'nvml', state: 'unavailable', detail: (e as Error).message });
    }
  } else notes.push({ name: 'nvml', state: 'unavailable', detail: 'NVML disabled in the config' });
  if (cfg.redfish) {
    try {
      out.bmc = new RedfishBmcSource({
        baseUrl: cfg.redfish.url,
        insecureSkipVerify: cfg.redfish.insecureSkipVerify,
        logger: log,
        ...(cfg.redfish.credentialsFile ? { credentialsFile: cfg.redfish.credentialsFile } : {}),
        ...(cfg.redfish.caFile ? { caFile: cfg.redfish.caFile } : {}),
        ...(cfg.redfish.chassisId ? { chassisId: cfg.redfish.chassisId } : {}),
      });
    } catch (e) {
      // The running agent refuses a BMC it was told to read and cannot (exit 2, the file named); --check reports
      // it beside the other sensors, as it does a missing token or TLS file.
      if (!opts.check) throw e;
      notes.push({ name: 'bmc', state: 'unavailable', detail: `Redfish ${cfg.redfish.url}: ${(e as Error).message}` });
    }
  } else if (cfg.ipmi.enabled) {
    out.bmc = new IpmiDcmiBmcSource({ extraArgs: cfg.ipmi.extraArgs, ...(cfg.ipmi.command ? { command: cfg.ipmi.command } : {}) });
  } else notes.push({ name: 'bmc', state: 'unavailable', detail: 'no BMC configured (redfish.url or ipmi.enabled): wall power not measured' });
  if (cfg.perf.enabled) {
    const v = detectCgroupVersion(fs);
    const root = fs.resolve(v === 2 ? CGROUP_ROOT : `${CGROUP_ROOT}/perf_event`);
    out.perf = new PerfEventSource({ cgroupRoot: root, logger: log });
  } else notes.push({ name: 'perf', state: 'unavailable', detail: 'perf disabled in the config' });
  return out;
}

function readToken(file: string | undefined): string | undefined {
  if (!file) return undefined;
  try {
    const t = readFileSync(file, 'utf8').trim();
    if (!t) throw new Error('file is empty');
    return t;
  } catch (e) {
    throw new WattsplitError('CONFIG_INVALID', `gateway.tokenFile ${file} unreadable: ${(e as Error).message}`, { cause: e, details: { field: 'gateway.tokenFile', value: file } });
  }
}

export function createAgent(cfg: AgentConfig, src: Omit<AgentSources, 'notes'> & { fs: HostFs }, log: Logger, clock?: AgentClock, minSeq?: number): Agent {
  return new Agent({
    ...(minSeq ? { minSeq } : {}),
    hostId: cfg.hostId,
    fs: src.fs,
    domains: src.domains,
    logger: log,
    stateDir: cfg.spool.dir,
    intervalMs: cfg.intervalMs,
    slowCountersEveryMs: cfg.slowCountersEveryMs,
    slowVcpuCounters: cfg.slowVcpuCounters,
    slowBlockIo: cfg.slowBlockIo,
    rapl: cfg.rapl.enabled,
    ...(cfg.hardwareClass ? { hardwareClass: cfg.hardwareClass } : {}),
    ...(src.gpus ? { gpus: src.gpus } : {}),
    ...(src.bmc ? { bmc: src.bmc } : {}),
    ...(src.perf ? { perf: src.perf } : {}),
    ...(src.processOwners ? { processOwners: src.processOwners } : {}),
    ...(clock ? { clock } : {}),
  });
}

export interface RunningAgent {
  agent: Agent;
  sender: SpoolingSender;
  /** Resolves when the loop stopped. */
  done: Promise<void>;
  /** Frames that could not be written to the spool (disk full, dir gone): lost, logged. */
  spoolFailures(): number;
  /** Frames sampled since start, VMs in the last one and its wall time (for `--metrics-port`). */
  frames(): { sampled: number; vms: number; lastWallUnixS: number };
  /** Stops sampling, tries to deliver what is pending for up to `drainMs` (default 2000), closes everything; what is left stays spooled for the next start. */
  stop(drainMs?: number): Promise<void>;
}

/** Builds everything from the config and starts sampling every intervalMs and sending. */
export async function startAgent(cfg: AgentConfig, log: Logger, opts: { onFrame?: (f: ITelemetryFrame) => void; clock?: AgentClock } = {}): Promise<RunningAgent> {
  const src = await buildAgentSources(cfg, log);
  const token = readToken(cfg.gateway.tokenFile);
  const client = new GrpcIngestClient({ address: cfg.gateway.address, tls: cfg.gateway.tls, logger: log, ...(token ? { token } : {}), ...(cfg.gateway.ackTimeoutMs ? { ackTimeoutMs: cfg.gateway.ackTimeoutMs } : {}) });
  const sender = new SpoolingSender({ spool: { dir: cfg.spool.dir, maxBytes: cfg.spool.maxBytes, maxAgeMs: cfg.spool.maxAgeMs, fsync: cfg.spool.fsync, syncAfterMs: cfg.spool.syncAfterMs }, transport: client, batching: cfg.batching, logger: log });
  const agent = createAgent(cfg, src, log, opts.clock, sender.lastSpooledSeq());
  sender.start();
  const ac = new AbortController();
  let lastSpoolError: string | undefined;
  let spoolFailures = 0;
  const frames = { sampled: 0, vms: 0, lastWallUnixS: 0 };
  const done = agent.run({
    intervalMs: cfg.intervalMs,
    signal: ac.signal,
    onFrame: (f) => {
      frames.sampled++;
      frames.vms = f.vms?.length ?? 0;
      frames.lastWallUnixS = Number(f.wallUnixNs ?? 0) / 1e9;
      try {
        sender.enqueue(f);
      } catch (e) {
        // disk full / spool dir gone: this frame is lost, the agent keeps sampling (said once per cause)
        const msg = `frame seq ${String(f.seq)} could not be spooled: ${(e as Error).message}`;
        if (msg.replace(/seq \d+ /, '') !== lastSpoolError) log.error({ code: 'SPOOL_FULL', seq: f.seq }, msg);
        lastSpoolError = msg.replace(/seq \d+ /, '');
        spoolFailures++;
        return;
      }
      lastSpoolError = undefined;
      opts.onFrame?.(f);
    },
  });
  log.info({ gateway: cfg.gateway.address, spool: cfg.spool.dir, intervalMs: cfg.intervalMs, bootId: agent.bootId }, 'agent started');
  return {
    agent,
    sender,
    done,
    spoolFailures: () => spoolFailures,
    frames: () => ({ ...frames }),
    stop: async (drainMs = 2000) => {
      ac.abort();
      agent.stop();
      await done;
      if (drainMs > 0) await sender.drain(drainMs);
      await sender.close();
      await agent.close();
    },
  };
}

/**
 * Whether the gateway's port accepts a TCP connection now (`--check`): connects and closes at once, sends nothing
 * (no TLS handshake, no telemetry). `address` is host:port as the agent's config gives it ([v6]:port too).
 */
export function probeGateway(address: string, timeoutMs = 2000): Promise<{ reachable: boolean; ms: number; error?: string }> {
  let host: string;
  let port: number;
  try {
    const u = new URL(`http://${address}`);
    host = u.hostname.replace(/^\[(.*)\]$/, '$1');
    port = Number(u.port || 443);
  } catch {
    return Promise.resolve({ reachable: false, ms: 0, error: `not a host:port address: ${address}` });
  }
  const t0 = performance.now();
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    const done = (r: { reachable: boolean; error?: string }) => {
      sock.destroy();
      resolve({ ...r, ms: Math.round(performance.now() - t0) });
    };
    sock.setTimeout(timeoutMs, () => done({ reachable: false, error: `no answer within ${timeoutMs} ms` }));
    sock.once('connect', () => done({ reachable: true }));
    sock.once('error', (e: NodeJS.ErrnoException) => done({ reachable: false, error: `connect ${e.code ?? e.message}` }));
  });
}

export interface CheckReport {
  ok: boolean;
  hostId: string;
  hardwareClass: string;
  cgroupVersion: 1 | 2;
  sensors: SamplerStatus[];
  vms: { uuid: string; name: string; state: string; tenant: string; cpuTimeNs: number }[];
  gateway: { address: string; tls: string; token: string; reachable: boolean; error?: string };
  /** Human-readable report, one line each. */
  lines: string[];
  log: LogEntry[];
}

/** What `--check` says of the counter schedule (slowCountersEveryMs, slowVcpuCounters, slowBlockIo), as the Agent applies it: whole intervals. */
export function counterSchedule(cfg: Pick<AgentConfig, 'intervalMs' | 'slowCountersEveryMs' | 'slowVcpuCounters' | 'slowBlockIo'>): string {
  const rounds = Math.max(1, Math.round(cfg.slowCountersEveryMs / cfg.intervalMs));
  if (rounds === 1) return `counters: every ${cfg.intervalMs} ms, all of them (slowCountersEveryMs ${cfg.slowCountersEveryMs})`;
  const fastParts = [cfg.slowVcpuCounters ? 'each VM\'s CPU time' : 'each VM\'s CPU time, whole and per vCPU', ...(cfg.slowBlockIo ? [] : ['block I/O'])];
  const slowParts = ['memory', ...(cfg.slowBlockIo ? ['block I/O'] : []), ...(cfg.slowVcpuCounters ? ['per-vCPU CPU time'] : [])];
  const list = (xs: string[]): string => (xs.length > 1 ? `${xs.slice(0, -1).join(', ')} and ${xs.at(-1)!}` : xs[0]!);
  return `counters: ${list(fastParts)} every ${cfg.intervalMs} ms; ${list(slowParts)} every ${rounds * cfg.intervalMs} ms per VM, staggered (slowCountersEveryMs ${cfg.slowCountersEveryMs}, slowVcpuCounters ${cfg.slowVcpuCounters}, slowBlockIo ${cfg.slowBlockIo})`;
}

/**
 * `wattsplit agent --check`: opens every source, samples twice (so counters that need two reads are
 * exercised), and says which sensors and VMs it sees and why any is missing. Sends nothing.
 */
export async function checkAgent(cfg: AgentConfig): Promise<CheckReport> {
  const log = memoryLogger();
  const src = await buildAgentSources(cfg, log, { check: true });
  // no stateDir: --check never touches the running agent's sequence
  const probe = new Agent({ hostId: cfg.hostId, fs: src.fs, domains: src.domains, logger: log, rapl: cfg.rapl.enabled, ...(src.gpus ? { gpus: src.gpus } : {}), ...(src.bmc ? { bmc: src.bmc } : {}), ...(src.perf ? { perf: src.perf } : {}), ...(src.processOwners ? { processOwners: src.processOwners } : {}) });
  await probe.sampleOnce();
  const frame = await probe.sampleOnce();
  const sensors = [...src.notes.filter((n) => !probe.status().some((s) => s.name === n.name)), ...probe.status()];
  let tls: string;
  let gwOk = true;
  try {
    ingestCredentials(cfg.gateway.tls);
    tls = cfg.gateway.tls === false ? 'plaintext (no TLS)' : `TLS${cfg.gateway.tls.caFile ? ` with CA ${cfg.gateway.tls.caFile}` : ' with system CAs'}${cfg.gateway.tls.certFile ? ', mTLS client certificate' : ''}`;
  } catch (e) {
    tls = (e as Error).message;
    gwOk = false;
  }
  let token: string;
  try {
    token = readToken(cfg.gateway.tokenFile) ? `from ${cfg.gateway.tokenFile}` : 'none (gateway must allow unauthenticated hosts)';
  } catch (e) {
    token = (e as Error).message;
    gwOk = false;
  }
  // reachability is reported, not required: agents are often installed before their gateway answers, and spool until it does
  const reach = await probeGateway(cfg.gateway.address);
  const vms = (frame.vms ?? []).map((v) => ({ uuid: v.uuid ?? '', name: v.name ?? '', state: VM_STATE_NAMES.get(Number(v.state ?? 0)) ?? String(v.state), tenant: v.tenant ?? '', cpuTimeNs: Number(v.cpuTimeNs ?? 0) }));
  const mark = (s: SamplerStatus['state']) => (s === 'ok' ? 'ok  ' : s === 'degraded' ? 'WARN' : 'MISS');
  const lines = [
    `host ${cfg.hostId} (hardware class ${frame.hardwareClass ?? '?'}), sysfs root ${cfg.sysfsRoot}, cgroup v${detectCgroupVersion(src.fs)}`,
    ...sensors.map((s) => `[${mark(s.state)}] ${s.name}: ${s.detail}`),
    `VMs seen: ${vms.length}`,
    ...vms.map((v) => `  - ${v.name} ${v.uuid} ${v.state} tenant=${v.tenant || '-'} cpu=${(v.cpuTimeNs / 1e9).toFixed(1)}s`),
    `[${gwOk ? 'ok  ' : 'MISS'}] gateway ${cfg.gateway.address}: ${tls}; token ${token}`,
    reach.reachable
      ? `[ok  ] gateway ${cfg.gateway.address} reachable: TCP connect in ${reach.ms} ms (nothing sent; TLS and the token are checked when the agent runs)`
      : `[WARN] gateway ${cfg.gateway.address} not reachable now: ${reach.error ?? '?'} (the agent spools frames until it is)`,
    `spool ${cfg.spool.dir} (max ${cfg.spool.maxBytes} bytes, ${Math.round(cfg.spool.maxAgeMs / 3600000)} h)`,
    counterSchedule(cfg),
  ];
  await probe.close();
  const rapl = sensors.find((s) => s.name === 'rapl');
  return {
    // a BMC the config names but the running agent could not open (it would refuse to start) fails the check
    ok: gwOk && rapl?.state === 'ok' && !(cfg.redfish && !src.bmc),
    hostId: cfg.hostId,
    hardwareClass: frame.hardwareClass ?? '',
    cgroupVersion: detectCgroupVersion(src.fs),
    sensors,
    vms,
    gateway: { address: cfg.gateway.address, tls, token, reachable: reach.reachable, ...(reach.error ? { error: reach.error } : {}) },
    lines,
    log: log.entries,
  };
}

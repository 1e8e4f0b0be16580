/**
 * Agent configuration: a JSON file plus command-line overrides (flags win). Every problem is a
 * CONFIG_INVALID naming the file, the field and the value.
 *
 * {
 *   "hostId": "hv-01",                         // default: the OS hostname
 *   "hardwareClass": "xeon-8480+h100x8",       // default: derived from /proc/cpuinfo and GPU names
 *   "intervalMs": 1000,
 *   "slowCountersEveryMs": 5000,               // each VM's memory in use read this often (CPU time and block I/O every interval); ≤ intervalMs: every interval
 *   "slowVcpuCounters": true,                  // the per-vCPU CPU counters on that schedule too (the whole VM's CPU time still every interval); false: every interval
 *   "slowBlockIo": false,                      // block I/O on that schedule too (saves a read per VM per interval; lags the disk's power by up to a window)
 *   "sysfsRoot": "/",                          // prefix for /sys and /proc (fixture trees, containers)
 *   "gateway": { "address": "gw.example:7443", "tls": { "caFile": "...", "certFile": "...", "keyFile": "...", "serverName": "..." }, "tokenFile": "/etc/wattsplit/token" },
 *   "spool": { "dir": "/var/lib/wattsplit/spool", "maxBytes": 268435456, "maxAgeMs": 604800000, "fsync": true, "syncAfterMs": 1000 },
 *   "batching": { "maxFrames": 64, "maxBytes": 1048576, "lingerMs": 0 },
 *   "libvirt": { "uri": "qemu:///system" },    // or false: VMs from "vms" instead
 *   "vms": [ { "uuid": "...", "name": "...", "id": 1, "vcpus": 2, "tenant": "...", "taps": ["vnet0"] } ],
 *   "nvml": { "enabled": true, "libPath": "libnvidia-ml.so.1", "traceFile": null },
 *   "redfish": { "url": "https://bmc", "credentialsFile": "/etc/wattsplit/bmc.json", "caFile": "...", "chassisId": null, "insecureSkipVerify": false },
 *   "ipmi": { "enabled": false, "command": "ipmitool", "extraArgs": [] },
 *   "perf": { "enabled": true },
 *   "rapl": { "enabled": true }
 * }
 * "gateway.tls": false means plaintext (loopback only).
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { WattsplitError, type DomainInfo } from '@wattsplit/wire';
import type { AgentOptions } from './agent.js';
import type { IngestTlsOptions } from './grpc-ingest-client.js';

export interface AgentConfig {
  hostId: string;
  hardwareClass?: string;
  intervalMs: number;
  /**
   * Each VM's memory in use is read this often, staggered over the VMs (CPU time and, unless `slowBlockIo`,
   * block I/O every interval).
   */
  slowCountersEveryMs: number;
  /**
   * The per-vCPU CPU counters on the slowCountersEveryMs schedule too (VmSample.vcpu_read_mono_ns); default true:
   * on the development fleets (in-sample) the worst and mean tenant errors moved by ≤ 0.013 points with it, any
   * tenant's total error by ≤ 0.12 and its dynamic error by ≤ 0.34 (docs/agent.md, Configuration).
   */
  slowVcpuCounters: boolean;
  /**
   * Block I/O on the slowCountersEveryMs schedule too (the frames say when, slow_read_mono_ns, and the collector
   * takes the rate over that window). Default false: the window lags the disk's power, and the demo's worst tenant
   * went from 1.5 % (every interval) to 2.6 % with it (docs/agent.md, "Counter schedule").
   */
  slowBlockIo: boolean;
  sysfsRoot: string;
  /**
   * Keep sysfs/procfs/cgroupfs files open and re-read them with pread. Default (absent): when sysfsRoot is
   * `/` or its `sys` is a mounted sysfs (a container with the host's /sys at /host/sys); never for a
   * tree on an ordinary file system whose files may be replaced, unless set true here (benchmarks).
   */
  sysfsKeepOpen?: boolean;
  gateway: { address: string; tls: IngestTlsOptions | false; tokenFile?: string; ackTimeoutMs?: number };
  /** syncAfterMs: an unacked frame is fsync'd once it waited this long (0: every frame at once), see FrameSpool. */
  spool: { dir: string; maxBytes: number; maxAgeMs: number; fsync: boolean; syncAfterMs: number };
  batching: { maxFrames: number; maxBytes: number; lingerMs: number };
  libvirt: { uri: string } | false;
  vms: DomainInfo[];
  nvml: { enabled: boolean; libPath?: string; traceFile?: string };
  redfish?: { url: string; credentialsFile?: string; caFile?: string; chassisId?: string; insecureSkipVerify: boolean };
  ipmi: { enabled: boolean; command?: string; extraArgs: string[] };
  perf: { enabled: boolean };
  rapl: { enabled: boolean };
}

/** Command-line flags; each replaces the matching config field. */
export interface AgentConfigOverrides {
  hostId?: string;
  hardwareClass?: string;
  gateway?: string;
  tlsCaFile?: string;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  tlsServerName?: string;
  /** plaintext gRPC */
  insecure?: boolean;
  tokenFile?: string;
  spoolDir?: string;
  spoolMaxBytes?: number;
  spoolMaxAgeMs?: number;
  intervalMs?: number;
  sysfsRoot?: string;
  sysfsKeepOpen?: boolean;
  libvirtUri?: string;
  noLibvirt?: boolean;
  redfishUrl?: string;
  redfishCredentialsFile?: string;
  redfishCaFile?: string;
  nvml?: boolean;
  nvmlTraceFile?: string;
  perf?: boolean;
}

export const DEFAULT_AGENT_CONFIG: AgentConfig = {
  hostId: '',
  intervalMs: 1000,
  slowCountersEveryMs: 5000,
  slowVcpuCounters: true,
  slowBlockIo: false,
  sysfsRoot: '/',
  gateway: { address: '127.0.0.1:7443', tls: {} },
  spool: { dir: '/var/lib/wattsplit/spool', maxBytes: 256 * 1024 * 1024, maxAgeMs: 7 * 24 * 3600 * 1000, fsync: true, syncAfterMs: 1000 },
  batching: { maxFrames: 64, maxBytes: 1024 * 1024, lingerMs: 0 },
  libvirt: { uri: 'qemu:///system' },
  vms: [],
  nvml: { enabled: true },
  ipmi: { enabled: false, extraArgs: [] },
  perf: { enabled: true },
  rapl: { enabled: true },
};

/** The counter-schedule keys of `AgentOptions` (what `wattsplit agent` takes from its config's same-named keys). */
export type CounterScheduleOptions = Pick<AgentOptions, 'slowCountersEveryMs' | 'slowVcpuCounters' | 'slowBlockIo'>;

/**
 * The counter schedule of `wattsplit agent` with no such keys in its config, from DEFAULT_AGENT_CONFIG: the one
 * source for everything that builds an `Agent` by hand and means to run what an installed agent runs (the demo's
 * simulated agents, the accuracy protocol, the pipeline benchmarks). `new Agent()` without these keys reads
 * every counter every round.
 */
export const SHIPPED_SCHEDULE: Readonly<CounterScheduleOptions> = Object.freeze({
  slowCountersEveryMs: DEFAULT_AGENT_CONFIG.slowCountersEveryMs,
  slowVcpuCounters: DEFAULT_AGENT_CONFIG.slowVcpuCounters,
  slowBlockIo: DEFAULT_AGENT_CONFIG.slowBlockIo,
});

type Json = Record<string, unknown>;

class Checker {
  constructor(private readonly where: string) {}

  fail(field: string, value: unknown, why: string): never {
    throw new WattsplitError('CONFIG_INVALID', `${this.where}: ${field}=${JSON.stringify(value)} ${why}`, { details: { file: this.where, field, value } });
  }

  obj(o: Json, field: string): Json | undefined {
    const v = o[field.split('.').pop() ?? field];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'object' || Array.isArray(v)) this.fail(field, v, 'must be an object');
    return v as Json;
  }

  str(o: Json, key: string, field: string): string | undefined {
    const v = o[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' || v === '') this.fail(field, v, 'must be a non-empty string');
    return v;
  }

  num(o: Json, key: string, field: string, min = 1): number | undefined {
    const v = o[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min) this.fail(field, v, `must be a number ≥ ${min}`);
    return v;
  }

  bool(o: Json, key: string, field: string): boolean | undefined {
    const v = o[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') this.fail(field, v, 'must be true or false');
    return v;
  }
}

function set<T extends object, K extends keyof T>(o: T, k: K, v: T[K] | undefined): void {
  if (v !== undefined) o[k] = v;
}

/** Builds the config from defaults, the JSON file at `path` (optional) and the flag overrides. */
export function loadAgentConfig(path: string | undefined, overrides: AgentConfigOverrides = {}): AgentConfig {
  const cfg: AgentConfig = structuredClone(DEFAULT_AGENT_CONFIG);
  if (path) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      throw new WattsplitError('CONFIG_INVALID', `agent config ${path} unreadable: ${(e as Error).message}`, { cause: e, details: { file: path } });
    }
    let j: unknown;
    try {
      j = JSON.parse(text);
    } catch (e) {
      throw new WattsplitError('CONFIG_INVALID', `agent config ${path}: not valid JSON (${(e as Error).message})`, { cause: e, details: { file: path } });
    }
    if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new WattsplitError('CONFIG_INVALID', `agent config ${path}: must be a JSON object`, { details: { file: path } });
    applyFile(cfg, j as Json, new Checker(path));
  }
  applyOverrides(cfg, overrides, new Checker('flags'));
  if (!cfg.hostId) cfg.hostId = hostname().split('.')[0] ?? 'localhost';
  if (!/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/.test(cfg.hostId)) new Checker(path ?? 'flags').fail('hostId', cfg.hostId, 'must be 1-128 chars of [A-Za-z0-9._:-]');
  if (!/^[^:\s]+:\d+$/.test(cfg.gateway.address) && !cfg.gateway.address.startsWith('unix:')) new Checker(path ?? 'flags').fail('gateway.address', cfg.gateway.address, 'must be host:port');
  return cfg;
}

const KNOWN = new Set(['hostId', 'hardwareClass', 'intervalMs', 'slowCountersEveryMs', 'slowVcpuCounters', 'slowBlockIo', 'sysfsRoot', 'sysfsKeepOpen', 'gateway', 'spool', 'batching', 'libvirt', 'vms', 'nvml', 'redfish', 'ipmi', 'perf', 'rapl', '$comment']);

function applyFile(cfg: AgentConfig, j: Json, c: Checker): void {
  for (const k of Object.keys(j)) if (!KNOWN.has(k)) c.fail(k, j[k], `is not a known setting (known: ${[...KNOWN].filter((x) => x !== '$comment').join(', ')})`);
  set(cfg, 'hostId', c.str(j, 'hostId', 'hostId'));
  set(cfg, 'hardwareClass', c.str(j, 'hardwareClass', 'hardwareClass'));
  set(cfg, 'intervalMs', c.num(j, 'intervalMs', 'intervalMs', 10));
  set(cfg, 'slowCountersEveryMs', c.num(j, 'slowCountersEveryMs', 'slowCountersEveryMs', 0));
  set(cfg, 'slowVcpuCounters', c.bool(j, 'slowVcpuCounters', 'slowVcpuCounters'));
  set(cfg, 'slowBlockIo', c.bool(j, 'slowBlockIo', 'slowBlockIo'));
  set(cfg, 'sysfsRoot', c.str(j, 'sysfsRoot', 'sysfsRoot'));
  set(cfg, 'sysfsKeepOpen', c.bool(j, 'sysfsKeepOpen', 'sysfsKeepOpen'));
  const g = c.obj(j, 'gateway');
  if (g) {
    set(cfg.gateway, 'address', c.str(g, 'address', 'gateway.address'));
    set(cfg.gateway, 'tokenFile', c.str(g, 'tokenFile', 'gateway.tokenFile'));
    set(cfg.gateway, 'ackTimeoutMs', c.num(g, 'ackTimeoutMs', 'gateway.ackTimeoutMs'));
    if (g.tls === false) cfg.gateway.tls = false;
    else {
      const t = c.obj(g, 'gateway.tls');
      if (t) {
        const tls: IngestTlsOptions = {};
        set(tls, 'caFile', c.str(t, 'caFile', 'gateway.tls.caFile'));
        set(tls, 'certFile', c.str(t, 'certFile', 'gateway.tls.certFile'));
        set(tls, 'keyFile', c.str(t, 'keyFile', 'gateway.tls.keyFile'));
        set(tls, 'serverName', c.str(t, 'serverName', 'gateway.tls.serverName'));
        cfg.gateway.tls = tls;
      }
    }
  }
  const s = c.obj(j, 'spool');
  if (s) {
    set(cfg.spool, 'dir', c.str(s, 'dir', 'spool.dir'));
    set(cfg.spool, 'maxBytes', c.num(s, 'maxBytes', 'spool.maxBytes', 4096));
    set(cfg.spool, 'maxAgeMs', c.num(s, 'maxAgeMs', 'spool.maxAgeMs', 1000));
    set(cfg.spool, 'fsync', c.bool(s, 'fsync', 'spool.fsync'));
    set(cfg.spool, 'syncAfterMs', c.num(s, 'syncAfterMs', 'spool.syncAfterMs', 0));
  }
  const b = c.obj(j, 'batching');
  if (b) {
    set(cfg.batching, 'maxFrames', c.num(b, 'maxFrames', 'batching.maxFrames'));
    set(cfg.batching, 'maxBytes', c.num(b, 'maxBytes', 'batching.maxBytes', 1024));
    set(cfg.batching, 'lingerMs', c.num(b, 'lingerMs', 'batching.lingerMs', 0));
  }
  if (j.libvirt === false) cfg.libvirt = false;
  else {
    const l = c.obj(j, 'libvirt');
    if (l) cfg.libvirt = { uri: c.str(l, 'uri', 'libvirt.uri') ?? 'qemu:///system' };
  }
  if (j.vms !== undefined) {
    if (!Array.isArray(j.vms)) c.fail('vms', j.vms, 'must be an array');
    cfg.vms = (j.vms as unknown[]).map((v, i) => {
      if (typeof v !== 'object' || v === null) c.fail(`vms[${i}]`, v, 'must be an object');
      const o = v as Json;
      const uuid = c.str(o, 'uuid', `vms[${i}].uuid`) ?? c.fail(`vms[${i}].uuid`, undefined, 'is required');
      const name = c.str(o, 'name', `vms[${i}].name`) ?? c.fail(`vms[${i}].name`, undefined, 'is required');
      const id = c.num(o, 'id', `vms[${i}].id`, 0) ?? c.fail(`vms[${i}].id`, undefined, 'is required (the qemu domain id in the cgroup name)');
      const taps = o.taps === undefined ? [] : Array.isArray(o.taps) && o.taps.every((x) => typeof x === 'string') ? (o.taps) : c.fail(`vms[${i}].taps`, o.taps, 'must be an array of interface names');
      const gpus = o.gpuPciAddresses === undefined ? [] : Array.isArray(o.gpuPciAddresses) && o.gpuPciAddresses.every((x) => typeof x === 'string') ? (o.gpuPciAddresses) : c.fail(`vms[${i}].gpuPciAddresses`, o.gpuPciAddresses, 'must be an array of PCI addresses');
      return { uuid, name, id, state: 'running', vcpus: c.num(o, 'vcpus', `vms[${i}].vcpus`) ?? 1, memoryBytes: c.num(o, 'memoryBytes', `vms[${i}].memoryBytes`, 0) ?? 0, tenant: c.str(o, 'tenant', `vms[${i}].tenant`) ?? '', flavor: c.str(o, 'flavor', `vms[${i}].flavor`) ?? '', taps, gpuPciAddresses: gpus } satisfies DomainInfo;
    });
  }
  const n = c.obj(j, 'nvml');
  if (n) {
    set(cfg.nvml, 'enabled', c.bool(n, 'enabled', 'nvml.enabled'));
    set(cfg.nvml, 'libPath', c.str(n, 'libPath', 'nvml.libPath'));
    set(cfg.nvml, 'traceFile', c.str(n, 'traceFile', 'nvml.traceFile'));
  }
  const r = c.obj(j, 'redfish');
  if (r) {
    const url = c.str(r, 'url', 'redfish.url') ?? c.fail('redfish.url', undefined, 'is required when redfish is configured');
    const rf: NonNullable<AgentConfig['redfish']> = { url, insecureSkipVerify: c.bool(r, 'insecureSkipVerify', 'redfish.insecureSkipVerify') ?? false };
    set(rf, 'credentialsFile', c.str(r, 'credentialsFile', 'redfish.credentialsFile'));
    set(rf, 'caFile', c.str(r, 'caFile', 'redfish.caFile'));
    set(rf, 'chassisId', c.str(r, 'chassisId', 'redfish.chassisId'));
    cfg.redfish = rf;
  }
  const ip = c.obj(j, 'ipmi');
  if (ip) {
    set(cfg.ipmi, 'enabled', c.bool(ip, 'enabled', 'ipmi.enabled'));
    set(cfg.ipmi, 'command', c.str(ip, 'command', 'ipmi.command'));
    if (ip.extraArgs !== undefined) cfg.ipmi.extraArgs = Array.isArray(ip.extraArgs) && ip.extraArgs.every((x) => typeof x === 'string') ? (ip.extraArgs) : c.fail('ipmi.extraArgs', ip.extraArgs, 'must be an array of strings');
  }
  const p = c.obj(j, 'perf');
  if (p) set(cfg.perf, 'enabled', c.bool(p, 'enabled', 'perf.enabled'));
  const ra = c.obj(j, 'rapl');
  if (ra) set(cfg.rapl, 'enabled', c.bool(ra, 'enabled', 'rapl.enabled'));
}

function applyOverrides(cfg: AgentConfig, o: AgentConfigOverrides, c: Checker): void {
  const oj = o as Json;
  for (const k of ['hostId', 'hardwareClass', 'gateway', 'tlsCaFile', 'tlsCertFile', 'tlsKeyFile', 'tlsServerName', 'tokenFile', 'spoolDir', 'sysfsRoot', 'libvirtUri', 'redfishUrl', 'redfishCredentialsFile', 'redfishCaFile', 'nvmlTraceFile']) c.str(oj, k, `--${k}`);
  for (const k of ['spoolMaxBytes', 'spoolMaxAgeMs', 'intervalMs']) c.num(oj, k, `--${k}`);
  set(cfg, 'hostId', o.hostId);
  set(cfg, 'hardwareClass', o.hardwareClass);
  set(cfg, 'intervalMs', o.intervalMs);
  set(cfg, 'sysfsRoot', o.sysfsRoot);
  set(cfg, 'sysfsKeepOpen', o.sysfsKeepOpen);
  set(cfg.gateway, 'address', o.gateway);
  set(cfg.gateway, 'tokenFile', o.tokenFile);
  if (o.insecure) cfg.gateway.tls = false;
  else if (o.tlsCaFile || o.tlsCertFile || o.tlsKeyFile || o.tlsServerName) {
    const tls: IngestTlsOptions = cfg.gateway.tls === false ? {} : { ...cfg.gateway.tls };
    set(tls, 'caFile', o.tlsCaFile);
    set(tls, 'certFile', o.tlsCertFile);
    set(tls, 'keyFile', o.tlsKeyFile);
    set(tls, 'serverName', o.tlsServerName);
    cfg.gateway.tls = tls;
  }
  set(cfg.spool, 'dir', o.spoolDir);
  set(cfg.spool, 'maxBytes', o.spoolMaxBytes);
  set(cfg.spool, 'maxAgeMs', o.spoolMaxAgeMs);
  if (o.noLibvirt) cfg.libvirt = false;
  else if (o.libvirtUri) cfg.libvirt = { uri: o.libvirtUri };
  if (o.redfishUrl) cfg.redfish = { ...(cfg.redfish ?? { insecureSkipVerify: false }), url: o.redfishUrl };
  if (o.redfishCredentialsFile) {
    if (!cfg.redfish) c.fail('--redfishCredentialsFile', o.redfishCredentialsFile, 'needs --redfishUrl');
    cfg.redfish.credentialsFile = o.redfishCredentialsFile;
  }
  if (o.redfishCaFile) {
    if (!cfg.redfish) c.fail('--redfishCaFile', o.redfishCaFile, 'needs --redfishUrl');
    cfg.redfish.caFile = o.redfishCaFile;
  }
  if (o.nvml !== undefined) cfg.nvml.enabled = o.nvml;
  set(cfg.nvml, 'traceFile', o.nvmlTraceFile);
  if (o.perf !== undefined) cfg.perf.enabled = o.perf;
}

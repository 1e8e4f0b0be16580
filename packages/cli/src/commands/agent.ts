/**
 * wattsplit agent [--config FILE] [--check] [--json] [flags]: the hypervisor agent.
 * --check opens every sensor, samples twice and says what it sees and why anything is missing, and whether the
 * gateway's port answers (a TCP connect); sends no telemetry.
 */
import { isIP } from 'node:net';
import { agentMetricsText, checkAgent, libvirtSupportError, loadAgentConfig, startAgent, type AgentConfigOverrides, type RunningAgent } from '@wattsplit/agent';
import { WattsplitError, serveMetricsHttp, type Logger, type MetricsHttp } from '@wattsplit/wire';
import { intFlag, parse, strFlag, type Values } from '../args.js';
import { untilSignal } from '../signals.js';
import { makeLogger } from '../logging.js';

const HELP = `usage: wattsplit agent [--config /etc/wattsplit/agent.json] [--check [--json]] [flags]

  --host-id ID            host id (default: the machine's hostname)
  --gateway HOST:PORT     gateway address
  --insecure              plaintext gRPC (loopback / lab only)
  --tls-ca FILE --tls-cert FILE --tls-key FILE   TLS / mTLS
  --token-file FILE       host token
  --spool-dir DIR         disk spool (frames wait here while the gateway is away)
  --interval-ms N         sampling interval (default 1000)
  --sysfs-root DIR        read /sys and /proc under DIR (fixtures, containers)
  --sysfs-keep-open       keep files under DIR open and pread them (default: when DIR/sys is a mounted sysfs)
  --libvirt-uri URI       e.g. qemu:///system, test:///default (default qemu:///system; when given, the agent
                          will not start without a working libvirt binding); --no-libvirt to disable
  --redfish-url URL --redfish-credentials FILE   BMC
  --nvml-trace FILE       replay a recorded NVML trace instead of the driver; --no-nvml to disable
  --no-perf               do not open perf counters
  --metrics-port N        serve GET /metrics and /healthz on this port (default: off; 0 = chosen by the OS)
  --metrics-host ADDR     address for --metrics-port (default 127.0.0.1; a network address exposes the
                          spool and sensor state to anyone who can reach it)
  --log-level L           silent|error|warn|info|debug (default info)`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    config: { type: 'string' }, check: { type: 'boolean' }, json: { type: 'boolean' },
    'host-id': { type: 'string' }, gateway: { type: 'string' }, insecure: { type: 'boolean' },
    'tls-ca': { type: 'string' }, 'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' }, 'token-file': { type: 'string' },
    'spool-dir': { type: 'string' }, 'interval-ms': { type: 'string' }, 'sysfs-root': { type: 'string' }, 'sysfs-keep-open': { type: 'boolean' },
    'libvirt-uri': { type: 'string' }, 'no-libvirt': { type: 'boolean' }, 'redfish-url': { type: 'string' }, 'redfish-credentials': { type: 'string' },
    'nvml-trace': { type: 'string' }, 'no-nvml': { type: 'boolean' }, 'no-perf': { type: 'boolean' }, 'log-level': { type: 'string' },
    'metrics-port': { type: 'string' }, 'metrics-host': { type: 'string' },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const o: AgentConfigOverrides = {};
  const s = (k: string): string | undefined => { const v = values[k]; return typeof v === 'string' ? v : undefined; };
  const set = <K extends keyof AgentConfigOverrides>(k: K, v: AgentConfigOverrides[K] | undefined) => {
    if (v !== undefined) o[k] = v;
  };
  set('hostId', s('host-id'));
  set('gateway', s('gateway'));
  if (values.insecure) o.insecure = true;
  set('tlsCaFile', s('tls-ca'));
  set('tlsCertFile', s('tls-cert'));
  set('tlsKeyFile', s('tls-key'));
  set('tokenFile', s('token-file'));
  set('spoolDir', s('spool-dir'));
  if (s('interval-ms') !== undefined) o.intervalMs = intFlag(values, 'interval-ms', 1000, 10, 3_600_000);
  set('sysfsRoot', s('sysfs-root'));
  if (values['sysfs-keep-open']) o.sysfsKeepOpen = true;
  set('libvirtUri', s('libvirt-uri'));
  if (values['no-libvirt']) o.noLibvirt = true;
  set('redfishUrl', s('redfish-url'));
  set('redfishCredentialsFile', s('redfish-credentials'));
  set('nvmlTraceFile', s('nvml-trace'));
  if (values['no-nvml']) o.nvml = false;
  if (values['no-perf']) o.perf = false;
  const cfg = loadAgentConfig(s('config'), o);

  if (values.check) {
    const r = await checkAgent(cfg);
    if (values.json) console.log(JSON.stringify(r));
    else for (const l of r.lines) console.log(l);
    return r.ok ? 0 : 1;
  }
  const logger = makeLogger(strFlag(values, 'log-level', 'info'));
  // Asked for libvirt by flag: without a working binding, say how to build it and stop, rather than run
  // on the config's static VM list (what the agent does, with a warning, when libvirt is only the default).
  if (s('libvirt-uri') !== undefined && !values['no-libvirt']) {
    const why = await libvirtSupportError();
    if (why) throw why;
  }
  const metricsPort = values['metrics-port'] === undefined ? undefined : intFlag(values, 'metrics-port', 0, 0, 65535);
  const metricsHost = metricsHostFlag(values);
  const running = await startAgent(cfg, logger);
  let http: MetricsHttp | undefined;
  try {
    if (metricsPort !== undefined) http = await serveAgentMetrics(running, { hostId: cfg.hostId, host: metricsHost, port: metricsPort, logger });
  } catch (e) {
    await running.stop(0);
    throw e;
  }
  const sig = await Promise.race([untilSignal(), running.done.then(() => 'loop ended')]);
  logger.info({ reason: sig }, 'agent stopping: delivering what is pending, the rest stays spooled');
  await running.stop(5000);
  await http?.close();
  return 0;
}

function metricsHostFlag(values: Values): string {
  const host = strFlag(values, 'metrics-host', '127.0.0.1');
  if (host !== 'localhost' && isIP(host) === 0) throw new WattsplitError('CONFIG_INVALID', `--metrics-host=${host}: expected an IP address or localhost`, { details: { field: 'metrics-host', value: host } });
  return host;
}

/** `/metrics` (the agent's spool, sends, frames and sensor health, then process defaults) and `/healthz` (200 while the sampling loop runs). */
export async function serveAgentMetrics(running: RunningAgent, opts: { hostId: string; host: string; port: number; logger: Logger }): Promise<MetricsHttp> {
  let looping = true;
  void running.done.finally(() => {
    looping = false;
  });
  return serveMetricsHttp({
    role: 'agent',
    host: opts.host,
    port: opts.port,
    logger: opts.logger,
    // the agent's CPU budget is ms per second: a 10 ms event-loop histogram timer would cost more than it tells
    processMetrics: { eventLoopPrecisionMs: 100 },
    metricsText: () =>
      agentMetricsText(
        { sender: running.sender.metrics(), spoolWriteFailures: running.spoolFailures(), frames: running.frames(), samplers: running.agent.status() },
        { host: opts.hostId },
      ),
    health: () => ({ ok: looping, text: looping ? 'SERVING' : 'NOT_SERVING' }),
  });
}

/**
 * wattsplit agent [--config FILE] [--check] [--json] [flags]: the hypervisor agent.
 * --check opens every sensor, samples twice and says what it sees and why anything is missing; sends nothing.
 */
import { checkAgent, libvirtSupportError, loadAgentConfig, startAgent, type AgentConfigOverrides } from '@wattsplit/agent';
import { intFlag, parse, strFlag } from '../args.js';
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
  --log-level L           silent|error|warn|info|debug (default info)`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    config: { type: 'string' }, check: { type: 'boolean' }, json: { type: 'boolean' },
    'host-id': { type: 'string' }, gateway: { type: 'string' }, insecure: { type: 'boolean' },
    'tls-ca': { type: 'string' }, 'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' }, 'token-file': { type: 'string' },
    'spool-dir': { type: 'string' }, 'interval-ms': { type: 'string' }, 'sysfs-root': { type: 'string' }, 'sysfs-keep-open': { type: 'boolean' },
    'libvirt-uri': { type: 'string' }, 'no-libvirt': { type: 'boolean' }, 'redfish-url': { type: 'string' }, 'redfish-credentials': { type: 'string' },
    'nvml-trace': { type: 'string' }, 'no-nvml': { type: 'boolean' }, 'no-perf': { type: 'boolean' }, 'log-level': { type: 'string' },
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
  const running = await startAgent(cfg, logger);
  const sig = await Promise.race([untilSignal(), running.done.then(() => 'loop ended')]);
  logger.info({ reason: sig }, 'agent stopping: delivering what is pending, the rest stays spooled');
  await running.stop(5000);
  return 0;
}

/**
 * LibvirtDomainSource: VM discovery through libvirt with @unraid/libvirt (an optional dependency: the
 * agent runs without it, with a StaticDomainSource or the simulator).
 *
 * Per round: virConnectListAllDomains(ACTIVE), then per domain its UUID, id and virDomainGetInfo (state,
 * max memory KiB, vCPUs). The domain XML (tenant/flavor metadata, <hostdev> PCI addresses, tap names) is
 * fetched when a domain is first seen or restarted, and refreshed every `xmlRefreshMs`.
 * State mapping (virDomainState): RUNNING/BLOCKED → running, PAUSED/PMSUSPENDED → paused,
 * SHUTDOWN/SHUTOFF/CRASHED → shutoff, NOSTATE → other. Live migration shows as paused on both ends
 * through this binding (it does not expose the state reason), so migrating_out/in come only from sources
 * that know (the simulator); the VM sampler reports a VM that leaves the host as GONE.
 */
import { createRequire } from 'node:module';
import { WattsplitError, type DomainInfo, type DomainSource, type DomainState, type Logger } from '@wattsplit/wire';
import { parseDomainXml, type DomainXmlFacts } from './domain-xml.js';

/** What the source needs of the @unraid/libvirt package. */
export interface LibvirtModule {
  Hypervisor: new (o: { uri: string }) => LibvirtConnection;
}

/** Loads the binding; injectable so the "not built" path can be tested without breaking the install. */
export type LibvirtLoader = () => Promise<LibvirtModule>;

/** How to get libvirt support when the workspace was installed before libvirt's headers were. */
export const LIBVIRT_BUILD_HINT =
  'to build it: apt-get install libvirt-dev (dnf install libvirt-devel on Fedora/RHEL), then node scripts/bootstrap.mjs, which runs npm_config_nodedir=/usr pnpm --filter @wattsplit/agent rebuild @unraid/libvirt';

/**
 * The package's entry point loads, but its native addon (build/Release/libvirt.node, built by
 * node-gyp at install time only when libvirt's headers are there) is required lazily, inside the
 * first `new Hypervisor()`: load it here, so a missing addon is reported when the binding is loaded.
 */
export const loadLibvirt: LibvirtLoader = async () => {
  const mod = (await import('@unraid/libvirt')) as unknown as LibvirtModule;
  createRequire(import.meta.resolve('@unraid/libvirt'))('../build/Release/libvirt.node');
  return mod;
};

/**
 * A load failure as one clear line: the optional package missing, its native addon not built (the
 * usual case: installed before libvirt-dev; pnpm skips a failed optional build silently), or the addon
 * failing to load (libvirt's shared library missing). details.reason says which.
 */
export function libvirtLoadError(e: unknown): WattsplitError {
  if (e instanceof WattsplitError) return e;
  const err = e as NodeJS.ErrnoException;
  const msg = err.message?.split('\n')[0] ?? String(e);
  const missing = err.code === 'MODULE_NOT_FOUND' || err.code === 'ERR_MODULE_NOT_FOUND';
  if (missing && /libvirt\.node|build\/Release/.test(msg)) {
    return new WattsplitError('SENSOR_UNAVAILABLE', `libvirt support is not built: the native addon of @unraid/libvirt (build/Release/libvirt.node) is missing, usually because the workspace was installed before libvirt's headers; ${LIBVIRT_BUILD_HINT}`, {
      cause: e,
      details: { reason: 'not-built' },
    });
  }
  if (missing) {
    return new WattsplitError('SENSOR_UNAVAILABLE', `libvirt support is not installed: the optional dependency @unraid/libvirt is missing (${msg}); ${LIBVIRT_BUILD_HINT}`, { cause: e, details: { reason: 'not-installed' } });
  }
  return new WattsplitError('SENSOR_UNAVAILABLE', `libvirt support failed to load: ${msg} (is libvirt's library installed, e.g. apt-get install libvirt0?)`, { cause: e, details: { reason: 'load-failed' } });
}

/** Undefined when the libvirt binding loads, else why not (for `agent --check` and an explicit --libvirt-uri). */
export async function libvirtSupportError(loader: LibvirtLoader = loadLibvirt): Promise<WattsplitError | undefined> {
  try {
    await loader();
    return undefined;
  } catch (e) {
    return libvirtLoadError(e);
  }
}

/** The subset of @unraid/libvirt's Domain the source uses. */
export interface LibvirtDomainHandle {
  getUUIDString(): Promise<string>;
  getID(): Promise<number | null>;
  getName(): Promise<string>;
  getInfo(): Promise<{ state: number; maxMem: number; memory: number; nrVirtCpu: number; cpuTime: number }>;
  getXMLDesc(flags?: number): Promise<string>;
}

/** The subset of @unraid/libvirt's Hypervisor the source uses. */
export interface LibvirtConnection {
  connectOpen(): Promise<void>;
  connectClose(): Promise<void>;
  connectListAllDomains(flags?: number): Promise<LibvirtDomainHandle[]>;
}

const VIR_CONNECT_LIST_DOMAINS_ACTIVE = 1;

export function domainStateOf(s: number): DomainState {
  switch (s) {
    case 1: // RUNNING
    case 2: // BLOCKED
      return 'running';
    case 3: // PAUSED
    case 7: // PMSUSPENDED
      return 'paused';
    case 4: // SHUTDOWN (in progress)
    case 5: // SHUTOFF
    case 6: // CRASHED
      return 'shutoff';
    default:
      return 'other';
  }
}

export interface LibvirtDomainSourceOptions {
  /** "qemu:///system" by default. */
  uri?: string;
  /** An already-open connection (tests define domains on test:///default through it). */
  connection?: LibvirtConnection;
  xmlRefreshMs?: number;
  logger: Logger;
  /** How to load @unraid/libvirt (default: loadLibvirt). */
  loader?: LibvirtLoader;
}

interface CachedXml {
  id: number;
  name: string;
  at: number;
  facts: DomainXmlFacts;
}

export class LibvirtDomainSource implements DomainSource {
  private readonly xml = new Map<string, CachedXml>();
  /** Set when a call failed: the next listDomains reconnects first (libvirtd restarted). */
  private broken = false;

  private constructor(
    private readonly conn: LibvirtConnection,
    private readonly opts: LibvirtDomainSourceOptions,
    private readonly log: Logger,
  ) {}

  /** Connects; throws SENSOR_UNAVAILABLE (one line saying how to fix it) when the binding is not installed or built, or the connection fails. */
  static async open(opts: LibvirtDomainSourceOptions): Promise<LibvirtDomainSource> {
    const uri = opts.uri ?? 'qemu:///system';
    const log = opts.logger.child({ source: 'libvirt', uri });
    if (opts.connection) return new LibvirtDomainSource(opts.connection, opts, log);
    let conn: LibvirtConnection;
    try {
      const mod = await (opts.loader ?? loadLibvirt)();
      conn = new mod.Hypervisor({ uri }); // a loader that returns the bare package loads the addon only here
    } catch (e) {
      throw libvirtLoadError(e);
    }
    try {
      await conn.connectOpen();
    } catch (e) {
      throw new WattsplitError('SENSOR_UNAVAILABLE', `cannot connect to libvirt at ${uri}: ${(e as Error).message} (is libvirtd running, and may this user use it?)`, { cause: e, details: { uri } });
    }
    log.info('connected to libvirt');
    return new LibvirtDomainSource(conn, opts, log);
  }

  async listDomains(): Promise<DomainInfo[]> {
    if (this.broken) {
      await this.conn.connectClose().catch(() => undefined);
      await this.conn.connectOpen();
      this.broken = false;
      this.log.info('reconnected to libvirt');
    }
    let doms: LibvirtDomainHandle[];
    try {
      doms = await this.conn.connectListAllDomains(VIR_CONNECT_LIST_DOMAINS_ACTIVE);
    } catch (e) {
      this.broken = true;
      throw new WattsplitError('SENSOR_UNAVAILABLE', `libvirt list of domains failed: ${(e as Error).message} (will reconnect)`, { cause: e, retriable: true });
    }
    const now = Date.now();
    const refresh = this.opts.xmlRefreshMs ?? 30_000;
    const seen = new Set<string>();
    const out: DomainInfo[] = [];
    for (const d of doms) {
      let uuid: string;
      let id: number | null;
      let info: Awaited<ReturnType<LibvirtDomainHandle['getInfo']>>;
      try {
        [uuid, id, info] = await Promise.all([d.getUUIDString(), d.getID(), d.getInfo()]);
      } catch (e) {
        // the domain went away between the list and the lookup: it is simply not listed this round
        this.log.debug({ err: (e as Error).message }, 'domain vanished while listing');
        continue;
      }
      seen.add(uuid);
      let cached = this.xml.get(uuid);
      const domId = id ?? -1;
      if (!cached || cached.id !== domId || now - cached.at > refresh) {
        try {
          const [name, xml] = await Promise.all([d.getName(), d.getXMLDesc()]);
          cached = { id: domId, name, at: now, facts: parseDomainXml(xml) };
          this.xml.set(uuid, cached);
        } catch (e) {
          this.log.debug({ vm: uuid, err: (e as Error).message }, 'domain vanished while reading its XML');
          continue;
        }
      }
      out.push({
        uuid,
        name: cached.name,
        id: domId,
        state: domainStateOf(info.state),
        vcpus: info.nrVirtCpu,
        memoryBytes: info.maxMem * 1024,
        tenant: cached.facts.tenant,
        flavor: cached.facts.flavor,
        gpuPciAddresses: cached.facts.gpuPciAddresses,
        taps: cached.facts.taps,
      });
    }
    for (const k of this.xml.keys()) if (!seen.has(k)) this.xml.delete(k);
    return out;
  }

  async close(): Promise<void> {
    await this.conn.connectClose();
  }
}

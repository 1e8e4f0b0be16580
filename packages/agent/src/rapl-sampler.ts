/**
 * RAPL energy counters through the powercap sysfs interface (Intel `intel-rapl`, AMD `amd-rapl`).
 *
 * Kernel ABI (Documentation/power/powercap/powercap.rst):
 *   /sys/class/powercap/intel-rapl:<P>        top-level zone per package ("package-<P>") or "psys"
 *   /sys/class/powercap/intel-rapl:<P>:<N>    subzones of package P: "core", "uncore", "dram"
 *   <zone>/name                 zone name
 *   <zone>/energy_uj            current energy counter in micro joules; wraps to 0 after
 *                               max_energy_range_uj (root-only since Linux 5.10, CVE-2020-8694)
 *   <zone>/max_energy_range_uj  range of the energy counter in micro joules
 * Package energy includes core and uncore; DRAM is separate. Host RAPL total = Σ package + Σ dram;
 * psys is reported but overlaps everything, so it is not summed (parent_id marks containment).
 * `intel-rapl-mmio:*` duplicates the package zone through MMIO and is skipped.
 */
import { EnergySource, EnergyUnit, WattsplitError, type HostFs, type IEnergyCounter, type Logger } from '@wattsplit/wire';
import { errnoOf } from './host-fs.js';
import type { FrameUnderConstruction, RoundContext, Sampler, SamplerStatus } from './sampler.js';

export const POWERCAP_DIR = '/sys/class/powercap';
const ZONE_RE = /^(intel-rapl|amd-rapl):(\d+)(?::(\d+))?$/;

export interface RaplZone {
  id: string;
  dir: string;
  name: string;
  domain: string;
  index: number;
  parentId: string;
  maxRange: number;
}

/** Maps a zone name to the counter domain: "package-0" → package, "core", "uncore", "dram", "psys". */
function domainOf(name: string): string {
  if (name.startsWith('package')) return 'package';
  return name;
}

/** Finds every RAPL zone under the powercap dir (empty when the dir does not exist). */
export function discoverRaplZones(fs: HostFs): RaplZone[] {
  if (!fs.exists(POWERCAP_DIR)) return [];
  const zones: RaplZone[] = [];
  const entries = fs.readDir(POWERCAP_DIR).filter((e) => ZONE_RE.test(e));
  for (const e of entries) {
    const m = ZONE_RE.exec(e);
    if (!m) continue;
    const dir = `${POWERCAP_DIR}/${e}`;
    const name = fs.readText(`${dir}/name`).trim();
    const maxText = fs.readText(`${dir}/max_energy_range_uj`).trim();
    const maxRange = Number(maxText);
    if (!Number.isSafeInteger(maxRange) || maxRange <= 0) {
      throw new WattsplitError('SENSOR_READ_FAILED', `${dir}/max_energy_range_uj: expected a positive integer, got ${JSON.stringify(maxText)}`, {
        details: { file: `${dir}/max_energy_range_uj`, value: maxText },
      });
    }
    const domain = domainOf(name);
    const socket = Number(m[2]);
    const sub = m[3] !== undefined;
    // DRAM is not contained in the package energy: only core/uncore subzones get a parent.
    const parentId = sub && domain !== 'dram' ? `${m[1]}:${m[2]}` : '';
    const pkgIdx = /^package-(\d+)$/.exec(name);
    const index = domain === 'psys' ? -1 : pkgIdx ? Number(pkgIdx[1]) : socket;
    zones.push({ id: e, dir, name, domain, index, parentId, maxRange });
  }
  return zones.sort((a, b) => compareZoneIds(a.id, b.id));
}

/**
 * Orders zone ids as a natural sort would ("intel-rapl:2" before "intel-rapl:10", a package before its
 * subzones) by their parsed parts, without `localeCompare`: a collator for 'en' makes V8 load ICU's
 * collation data, ≈ 2.4 MB of the node binary's pages resident for the agent's whole life for one sort
 * at start-up (docs/benchmarks.md, "ICU's collation data").
 */
export function compareZoneIds(a: string, b: string): number {
  const ma = ZONE_RE.exec(a);
  const mb = ZONE_RE.exec(b);
  if (!ma || !mb) return a < b ? -1 : a > b ? 1 : 0;
  const va = ma[1] ?? '';
  const vb = mb[1] ?? '';
  if (va !== vb) return va < vb ? -1 : 1;
  const socket = Number(ma[2]) - Number(mb[2]);
  if (socket !== 0) return socket;
  return (ma[3] === undefined ? -1 : Number(ma[3])) - (mb[3] === undefined ? -1 : Number(mb[3]));
}

export class RaplSampler implements Sampler {
  readonly name = 'rapl';
  private zones: RaplZone[] | undefined;
  private discoverError: string | undefined;
  private readonly warned = new Set<string>();
  private lastErrors = new Map<string, string>();

  constructor(
    private readonly fs: HostFs,
    private readonly log: Logger,
  ) {}

  private rounds = 0;

  private ensureZones(): RaplZone[] {
    // no zones yet (module not loaded at start): look again every 60 rounds
    if (this.zones && (this.zones.length > 0 || ++this.rounds % 60 !== 0)) return this.zones;
    try {
      this.zones = discoverRaplZones(this.fs);
      this.discoverError = this.zones.length === 0 ? `no RAPL zones under ${POWERCAP_DIR} (not an Intel/AMD host, or the intel_rapl_common/amd_energy module is not loaded: modprobe intel_rapl_msr)` : undefined;
      if (this.discoverError) this.warnOnce('none', { code: 'SENSOR_UNAVAILABLE' }, this.discoverError);
      else this.log.info({ zones: this.zones.map((z) => `${z.id}=${z.name}`) }, 'rapl zones found');
    } catch (e) {
      this.zones = [];
      this.discoverError = `RAPL discovery failed: ${(e as Error).message}`;
      this.warnOnce('discover', { code: 'SENSOR_READ_FAILED' }, this.discoverError);
    }
    return this.zones;
  }

  private warnOnce(key: string, fields: Record<string, unknown>, msg: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log.warn(fields, msg);
  }

  sample(frame: FrameUnderConstruction, ctx: RoundContext): void {
    const zones = this.ensureZones();
    const errors = new Map<string, string>();
    for (const z of zones) {
      const file = `${z.dir}/energy_uj`;
      const counter: IEnergyCounter = {
        id: z.id,
        source: EnergySource.ENERGY_SOURCE_RAPL,
        domain: z.domain,
        index: z.index,
        unit: EnergyUnit.ENERGY_UNIT_MICROJOULE,
        maxRange: z.maxRange,
        parentId: z.parentId,
      };
      try {
        const text = this.fs.readText(file);
        const v = Number(text.trim());
        if (!Number.isSafeInteger(v) || v < 0) throw new WattsplitError('SENSOR_READ_FAILED', `${file}: expected a non-negative integer, got ${JSON.stringify(text.trim())}`, { details: { file, value: text.trim() } });
        counter.value = v;
        counter.readMonoNs = ctx.monoNs();
      } catch (e) {
        const code = errnoOf(e);
        let msg: string;
        if (code === 'EACCES' || code === 'EPERM') {
          msg = `permission denied reading ${file}: energy_uj is root-only since Linux 5.10 (CVE-2020-8694); run the agent as root, or grant it CAP_DAC_READ_SEARCH (see deploy/systemd/wattsplit-agent.service), or add a udev rule making energy_uj readable by the agent's group`;
          this.warnOnce(`eacces`, { code: 'SENSOR_PERMISSION_DENIED', file }, msg);
        } else if (code === 'ENOENT' || code === 'ENODEV') {
          msg = `RAPL zone ${z.id} (${z.name}) disappeared: ${file} no longer exists`;
          this.warnOnce(`gone:${z.id}`, { code: 'SENSOR_UNAVAILABLE', file }, msg);
        } else {
          msg = `reading ${file} failed: ${(e as Error).message}`;
          this.warnOnce(`err:${z.id}`, { code: 'SENSOR_READ_FAILED', file }, msg);
        }
        counter.value = 0;
        counter.error = msg;
        errors.set(z.id, msg);
      }
      frame.counters.push(counter);
    }
    this.lastErrors = errors;
  }

  status(): SamplerStatus {
    const zones = this.ensureZones();
    if (zones.length === 0) return { name: this.name, state: 'unavailable', detail: this.discoverError ?? 'no RAPL zones' };
    const desc = zones.map((z) => `${z.id} ${z.name} (wraps at ${z.maxRange} µJ)`).join(', ');
    if (this.lastErrors.size === 0) return { name: this.name, state: 'ok', detail: `${zones.length} zones: ${desc}` };
    const errs = [...this.lastErrors.values()];
    const state = this.lastErrors.size === zones.length ? 'unavailable' : 'degraded';
    return { name: this.name, state, detail: `${zones.length} zones, ${this.lastErrors.size} unreadable: ${[...new Set(errs)].join('; ')}` };
  }
}

/**
 * wattsplit cap-plan: plan power caps with the live-migration transient.
 *   --input plan.json                       a PlanCapsInput (hosts with caps, VMs with attributed power, groups)
 *   --cap-w W [--window-s 60] [--method M]  or: build the input from the store's latest attributions
 *   --groups groups.json                    caps above the hosts: [{ groupId, kind, capW, members, otherW? }]
 *   --forecast [--history-days 7] [--z 2]   plan against a per-VM forecast bound from the store's history
 *   --margin-w W / --margin-pct P           headroom kept free under every cap
 *   --modes pre-copy,post-copy              migration modes the advisor may use (default all)
 */
import { readFileSync } from 'node:fs';
import type { AttributionResult, AttributionShare, SourceName } from '@wattsplit/attribution';
import { forecastPower, hostForecastW, hostPowerBreakdown, MIGRATION_MODES, planCaps, type CapGroup, type CapHost, type HostPowerBreakdown, type MigrationMode, type PlanCapsInput, type PowerForecast, type PowerSample } from '@wattsplit/capping';
import { str, type Store } from '@wattsplit/store';
import { WattsplitError } from '@wattsplit/wire';
import { intFlag, numFlag, parse, strFlag } from '../args.js';
import type { Values } from '../args.js';
import { openStore, STORE_FLAGS } from '../store-open.js';

const HELP = `usage: wattsplit cap-plan (--input plan.json | --cap-w W [--window-s 60] [--method cpu_share] [--data-dir DIR | --url URL])
  [--groups groups.json] [--forecast [--history-days 7] [--z 2]] [--margin-w W] [--margin-pct P]
  [--modes pre-copy,pre-copy-throttled,post-copy] [--link-gbps 10] [--horizon-s 120] [--json]
Plans throttles and live migrations so no host and no group (rack, PDU, …) exceeds its cap in any second,
including each migration's transient; modes are chosen by SLA cost. Exit 0 when the plan is safe, 1 when not.`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    ...STORE_FLAGS,
    input: { type: 'string' },
    'cap-w': { type: 'string' },
    'window-s': { type: 'string' },
    method: { type: 'string' },
    'link-gbps': { type: 'string' },
    'horizon-s': { type: 'string' },
    groups: { type: 'string' },
    forecast: { type: 'boolean' },
    'history-days': { type: 'string' },
    z: { type: 'string' },
    'margin-w': { type: 'string' },
    'margin-pct': { type: 'string' },
    modes: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  let input: PlanCapsInput;
  let fromStore: StoreWindow | undefined;
  let forecast: ForecastSummary | undefined;
  const file = strFlag(values, 'input', '');
  if (file) {
    input = readJson<PlanCapsInput>('input', file);
    if (values.forecast) throw new WattsplitError('CONFIG_INVALID', '--forecast reads the store: use it with --cap-w, not --input (an input file may carry forecastW per host)');
  } else {
    const capW = numFlag(values, 'cap-w', NaN, { min: 0, minExclusive: true, max: 1e7 });
    if (!Number.isFinite(capW)) throw new WattsplitError('CONFIG_INVALID', '--cap-w is required without --input');
    const linkBps = (numFlag(values, 'link-gbps', 10, { min: 0, minExclusive: true, max: 10_000 }) * 1e9) / 8;
    const horizonS = intFlag(values, 'horizon-s', 120, 1, 3600);
    fromStore = await windowFromStore(values);
    input = { hosts: capHosts(fromStore, capW), linkBps, horizonS };
    if (values.forecast) {
      const history = await historyFromStore(values, fromStore.method);
      const z = numFlag(values, 'z', 2, { min: 0, max: 10 });
      const f = forecastPower(history.samples, { nowUnixS: history.nowUnixS, horizonS, z });
      for (const h of input.hosts) h.forecastW = hostForecastW(h, f, horizonS);
      forecast = summarize(f, history, z);
    }
  }
  const groupsFile = strFlag(values, 'groups', '');
  if (groupsFile) input.groups = [...(input.groups ?? []), ...readJson<CapGroup[]>('groups', groupsFile)];
  const modes = values.modes === undefined ? undefined : strFlag(values, 'modes', '').split(',').map((m) => m.trim());
  for (const m of modes ?? []) if (!MIGRATION_MODES.includes(m as MigrationMode)) throw new WattsplitError('CONFIG_INVALID', `--modes: ${JSON.stringify(m)} is not one of ${MIGRATION_MODES.join(', ')}`, { details: { field: 'modes', value: m } });
  const plan = planCaps(input, {
    marginW: numFlag(values, 'margin-w', 0, { min: 0, max: 1e6 }),
    marginFraction: numFlag(values, 'margin-pct', 0, { min: 0, max: 50 }) / 100,
    ...(modes ? { modes: modes as MigrationMode[] } : {}),
  });
  if (values.json) {
    // With the store's window beside the plan: what each host's power is made of, all over one divisor.
    console.log(JSON.stringify({ ...plan, ...(fromStore ? { window: fromStore } : {}), ...(forecast ? { forecast } : {}) }));
    return 0;
  }
  console.log(`plan is ${plan.safe ? 'SAFE' : 'NOT SAFE'} over ${plan.horizonS} s; SLA cost ${plan.slaCost.toFixed(2)} VM·s of lost work${plan.marginW ? `; ${plan.marginW} W margin` : ''}`);
  if (forecast) console.log(`  against a forecast bound (${forecast.basis}, z=${forecast.z}, ${forecast.samples} samples of ${forecast.vms} VMs): fleet +${forecast.riseW.toFixed(0)} W above now at most`);
  for (const h of plan.hosts) console.log(`  ${h.hostId.padEnd(10)} cap ${h.capW.toFixed(0)} W  now ${h.powerW.toFixed(0)} W  peak ${h.peakW.toFixed(0)} W  ${h.status}${h.overCapSeconds ? `  (${h.overCapSeconds} s over cap)` : ''}`);
  for (const g of plan.groups) console.log(`  ${g.kind} ${g.groupId.padEnd(10)} cap ${g.capW.toFixed(0)} W  now ${g.timelineW[0]!.toFixed(0)} W  peak ${g.peakW.toFixed(0)} W  ${g.status}${g.overCapSeconds ? `  (${g.overCapSeconds} s over cap)` : ''}`);
  for (const a of plan.actions) {
    if (a.kind === 'migrate') console.log(`  migrate ${a.vmUuid} (${a.tenant}, ${a.vmPowerW.toFixed(0)} W) ${a.fromHostId} → ${a.toHostId} by ${a.mode} at ${(a.bandwidthBps / 1.25e8).toFixed(1)} Gbit/s, t=${a.startS}s, switchover t=${a.switchoverS.toFixed(1)}s, done t=${a.endS.toFixed(1)}s (+${a.sourceExtraW} W on source meanwhile): ${a.reason}`);
    else console.log(`  throttle ${a.vmUuid} (${a.tenant}) on ${a.hostId} by ${a.shedW.toFixed(0)} W (${a.method === 'dvfs' ? `frequency ×${(a.frequencyFraction ?? 1).toFixed(2)}` : `cpu quota ×${a.cpuQuotaFraction.toFixed(2)}`}) from t=${a.fromS}s${a.untilS === null ? '' : ` until t=${a.untilS}s`}: ${a.reason}`);
  }
  for (const x of [...plan.hosts, ...plan.groups]) for (const n of x.notes) console.log(`  note ${'hostId' in x ? x.hostId : x.groupId}: ${n}`);
  return plan.safe ? 0 : 1;
}

function readJson<T>(flag: string, file: string): T {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (e) {
    throw new WattsplitError('CONFIG_INVALID', `--${flag}=${file}: ${(e as Error).message}`);
  }
}

interface ForecastSummary {
  basis: string;
  z: number;
  samples: number;
  vms: number;
  historyDays: number;
  /** Σ over VMs of how far the bound rises above the VM's power now, at most, W. */
  riseW: number;
  perVm: { uuid: string; levelW: number; upperMaxW: number; trendWPerS: number; basis: string }[];
}

function summarize(f: ReadonlyMap<string, PowerForecast>, h: { samples: PowerSample[]; historyDays: number }, z: number): ForecastSummary {
  const perVm = [...f.values()].map((x) => ({ uuid: x.key, levelW: x.levelW, upperMaxW: x.upperMaxW, trendWPerS: x.trendWPerS, basis: x.basis }));
  return {
    basis: perVm.some((v) => v.basis === 'hour-of-day+trend') ? 'hour-of-day+trend' : 'trend',
    z,
    samples: h.samples.length,
    vms: perVm.length,
    historyDays: h.historyDays,
    riseW: perVm.reduce((a, v) => a + Math.max(0, v.upperMaxW - v.levelW), 0),
    perVm,
  };
}

/**
 * Each VM's attributed power per minute over the last `--history-days` days (by the same method as the
 * plan): its joules in the minute over the seconds its host's intervals cover in that minute.
 */
async function historyFromStore(values: Values, method: string): Promise<{ samples: PowerSample[]; nowUnixS: number; historyDays: number }> {
  const historyDays = numFlag(values, 'history-days', 7, { min: 0, minExclusive: true, max: 90 });
  const store = await openStore(values, { mustExist: true });
  try {
    const q = async (sql: string) => (await store.query(sql, 'JSONEachRow')).rows;
    const m = str(method);
    const since = `(SELECT max(t1_ns) FROM attributions WHERE method = ${m}) - ${Math.round(historyDays * 86_400)}000000000`;
    const vm = await q(`SELECT host, vm_uuid, intDiv(t1_ns, 60000000000) AS minute, sum(dynamic_j + static_j) AS j
      FROM attributions FINAL WHERE method = ${m} AND kind = 'vm' AND t1_ns > ${since} GROUP BY host, vm_uuid, minute`);
    const cover = await q(`SELECT host, minute, sum(dur) / 1e9 AS s FROM (SELECT host, seq, any(t1_ns - t0_ns) AS dur, any(intDiv(t1_ns, 60000000000)) AS minute
      FROM attributions WHERE method = ${m} AND t1_ns > ${since} GROUP BY host, seq) GROUP BY host, minute`);
    const seconds = new Map(cover.map((r) => [`${String(r.host)}\0${String(r.minute)}`, Number(r.s)]));
    const samples: PowerSample[] = [];
    let now = 0;
    for (const r of vm) {
      const s = seconds.get(`${String(r.host)}\0${String(r.minute)}`) ?? 0;
      if (s <= 0) continue;
      const t = Number(r.minute) * 60 + 30;
      now = Math.max(now, t);
      samples.push({ key: String(r.vm_uuid), tUnixS: t, powerW: Number(r.j) / s });
    }
    return { samples, nowUnixS: now, historyDays };
  } finally {
    await store.close();
  }
}

/** What the plan was built from: one method's attributions over the last `windowS` seconds, per host. */
interface StoreWindow {
  method: string;
  windowS: number;
  hosts: HostPowerBreakdown[];
  memoryBytes: Record<string, number>;
}

/** The hosts of the advisor's input: host and VM powers from the same intervals over the same seconds. */
function capHosts(w: StoreWindow, capW: number): CapHost[] {
  return w.hosts.map((h) => ({
    hostId: h.hostId,
    capW,
    powerW: h.powerW,
    vms: h.vms.map((v) => ({ uuid: v.uuid, tenant: v.tenant, powerW: v.powerW, memoryBytes: w.memoryBytes[v.uuid] ?? 0 })),
  }));
}

const SOURCES: readonly SourceName[] = ['rapl', 'gpu', 'bmc_rest'];

/**
 * One method's attribution results over the last `--window-s` seconds of the store (by interval end),
 * read back as AttributionResults: the shares of each interval and what was measured per source. Host
 * power is what those intervals measured and VM power what they attributed, so neither comes from a
 * different table, window or divisor than the other.
 */
async function windowFromStore(values: Values): Promise<StoreWindow> {
  const windowS = intFlag(values, 'window-s', 60, 1, 86_400);
  const method = strFlag(values, 'method', 'cpu_share');
  const store = await openStore(values, { mustExist: true });
  try {
    const q = async (sql: string) => (await store.query(sql, 'JSONEachRow')).rows;
    const m = str(method);
    const rows = await q(`SELECT host, seq, toFloat64(any(t0_ns)) AS t0, any(t1_ns - t0_ns) AS dur_ns, kind, vm_uuid, any(tenant) AS tenant, source,
        sum(dynamic_j) AS dyn, sum(static_j) AS stat, any(measured_j) AS measured
      FROM attributions FINAL
      WHERE method = ${m} AND t1_ns > (SELECT max(t1_ns) FROM attributions WHERE method = ${m}) - ${windowS}000000000
      GROUP BY host, seq, kind, vm_uuid, source ORDER BY host, seq`);
    if (rows.length === 0) await refuseMethod(store, method);
    const results = new Map<string, AttributionResult>();
    for (const r of rows) {
      const key = `${String(r.host)}\0${String(r.seq)}`;
      let res = results.get(key);
      if (!res) {
        const t0 = Number(r.t0);
        res = { hostId: String(r.host), seq: Number(r.seq), t0UnixNs: t0, t1UnixNs: t0 + Number(r.dur_ns), method, modelVersion: '', hardwareClass: '', note: '', shares: [], measured: { rapl: 0, gpu: 0, bmc_rest: 0 } };
        results.set(key, res);
      }
      const source = String(r.source) as SourceName;
      if (!SOURCES.includes(source)) continue;
      res.measured[source] = Number(r.measured); // the same on every share of the interval and source
      const j = { dyn: Number(r.dyn), stat: Number(r.stat) };
      res.shares.push({ kind: String(r.kind) as AttributionShare['kind'], vmUuid: String(r.vm_uuid), vmName: '', tenant: String(r.tenant), source, dynamicJoules: j.dyn, staticJoules: j.stat, lowJoules: j.dyn + j.stat, highJoules: j.dyn + j.stat });
    }
    const mem = await q(`SELECT vm_uuid, max(memory_bytes) AS mem FROM vm_samples
      WHERE t1_ns > (SELECT max(t1_ns) FROM vm_samples) - ${windowS}000000000 GROUP BY vm_uuid`);
    return { method, windowS, hosts: hostPowerBreakdown([...results.values()]), memoryBytes: Object.fromEntries(mem.map((r) => [String(r.vm_uuid), Number(r.mem)])) };
  } finally {
    await store.close();
  }
}

/** No attributions by `method`: a typo (name the known ones) or an empty store. */
async function refuseMethod(store: Store, method: string): Promise<never> {
  const known = (await store.query('SELECT DISTINCT method AS m FROM tenant_energy_hourly ORDER BY m', 'JSONEachRow')).rows.map((r) => String(r.m));
  if (known.length === 0) throw new WattsplitError('CONFIG_INVALID', 'the store has no attributions yet (run the demo or a collector first)');
  throw new WattsplitError('CONFIG_INVALID', `--method=${method}: the store has no attributions by that method; known methods: ${known.join(', ')}`, { details: { field: 'method', value: method, known } });
}

/**
 * wattsplit cap-plan: plan power caps with the live-migration transient.
 *   --input plan.json                       a PlanCapsInput (hosts with caps, VMs with attributed power)
 *   --cap-w W [--window-s 60] [--method M]  or: build the input from the store's latest attributions
 */
import { readFileSync } from 'node:fs';
import type { AttributionResult, AttributionShare, SourceName } from '@wattsplit/attribution';
import { hostPowerBreakdown, planCaps, type CapHost, type HostPowerBreakdown, type PlanCapsInput } from '@wattsplit/capping';
import { str, type Store } from '@wattsplit/store';
import { WattsplitError } from '@wattsplit/wire';
import { intFlag, numFlag, parse, strFlag } from '../args.js';
import type { Values } from '../args.js';
import { openStore, STORE_FLAGS } from '../store-open.js';

const HELP = `usage: wattsplit cap-plan (--input plan.json | --cap-w W [--window-s 60] [--method cpu_share] [--data-dir DIR | --url URL])
  [--link-gbps 10] [--horizon-s 120] [--json]
Plans migrations/throttles so no host exceeds its cap, including the ~12 W pre-copy transient of each live migration.`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, { ...STORE_FLAGS, input: { type: 'string' }, 'cap-w': { type: 'string' }, 'window-s': { type: 'string' }, method: { type: 'string' }, 'link-gbps': { type: 'string' }, 'horizon-s': { type: 'string' }, json: { type: 'boolean' } });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  let input: PlanCapsInput;
  let fromStore: StoreWindow | undefined;
  const file = strFlag(values, 'input', '');
  if (file) {
    try {
      input = JSON.parse(readFileSync(file, 'utf8')) as PlanCapsInput;
    } catch (e) {
      throw new WattsplitError('CONFIG_INVALID', `--input=${file}: ${(e as Error).message}`);
    }
  } else {
    const capW = numFlag(values, 'cap-w', NaN, { min: 0, minExclusive: true, max: 1e7 });
    if (!Number.isFinite(capW)) throw new WattsplitError('CONFIG_INVALID', '--cap-w is required without --input');
    const linkBps = (numFlag(values, 'link-gbps', 10, { min: 0, minExclusive: true, max: 10_000 }) * 1e9) / 8;
    const horizonS = intFlag(values, 'horizon-s', 120, 1, 3600);
    fromStore = await windowFromStore(values);
    input = { hosts: capHosts(fromStore, capW), linkBps, horizonS };
  }
  const plan = planCaps(input);
  if (values.json) {
    // With the store's window beside the plan: what each host's power is made of, all over one divisor.
    console.log(JSON.stringify(fromStore ? { ...plan, window: fromStore } : plan));
    return 0;
  }
  console.log(`plan is ${plan.safe ? 'SAFE' : 'NOT SAFE'} over ${plan.horizonS} s`);
  for (const h of plan.hosts) console.log(`  ${h.hostId.padEnd(10)} cap ${h.capW.toFixed(0)} W  now ${h.powerW.toFixed(0)} W  peak ${h.peakW.toFixed(0)} W  ${h.status}${h.overCapSeconds ? `  (${h.overCapSeconds} s over cap)` : ''}`);
  for (const a of plan.actions) {
    if (a.kind === 'migrate') console.log(`  migrate ${a.vmUuid} (${a.tenant}, ${a.vmPowerW.toFixed(0)} W) ${a.fromHostId} → ${a.toHostId} at t=${a.startS}s, switchover t=${a.switchoverS.toFixed(0)}s (+${a.sourceExtraW} W on source meanwhile)`);
    else console.log(`  throttle ${a.vmUuid} (${a.tenant}) on ${a.hostId} by ${a.shedW.toFixed(0)} W (cpu quota ×${a.cpuQuotaFraction.toFixed(2)}) from t=${a.fromS}s: ${a.reason}`);
  }
  return plan.safe ? 0 : 1;
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

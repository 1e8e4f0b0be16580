/**
 * wattsplit cap-plan: plan power caps with the live-migration transient.
 *   --input plan.json                       a PlanCapsInput (hosts with caps, VMs with attributed power)
 *   --cap-w W [--window-s 60] [--method M]  or: build the input from the store's latest attributions
 */
import { readFileSync } from 'node:fs';
import { planCaps, type CapHost, type PlanCapsInput } from '@wattsplit/capping';
import { WattsplitError } from '@wattsplit/wire';
import { intFlag, parse, strFlag } from '../args.js';
import type { Values } from '../args.js';
import { openStore, STORE_FLAGS } from '../store-open.js';

const HELP = `usage: wattsplit cap-plan (--input plan.json | --cap-w W [--window-s 60] [--method cpu_share] [--data-dir DIR | --url URL])
  [--link-gbps 10] [--horizon-s 120] [--json]
Plans migrations/throttles so no host exceeds its cap, including the ~12 W pre-copy transient of each live migration.`;

function num(values: Values, name: string, def: number): number {
  const raw = values[name];
  if (raw === undefined) return def;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new WattsplitError('CONFIG_INVALID', `--${name}=${String(raw)}: expected a number > 0`);
  return n;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, { ...STORE_FLAGS, input: { type: 'string' }, 'cap-w': { type: 'string' }, 'window-s': { type: 'string' }, method: { type: 'string' }, 'link-gbps': { type: 'string' }, 'horizon-s': { type: 'string' }, json: { type: 'boolean' } });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  let input: PlanCapsInput;
  const file = strFlag(values, 'input', '');
  if (file) {
    try {
      input = JSON.parse(readFileSync(file, 'utf8')) as PlanCapsInput;
    } catch (e) {
      throw new WattsplitError('CONFIG_INVALID', `--input=${file}: ${(e as Error).message}`);
    }
  } else {
    const capW = num(values, 'cap-w', NaN);
    if (!Number.isFinite(capW)) throw new WattsplitError('CONFIG_INVALID', '--cap-w is required without --input');
    input = { hosts: await hostsFromStore(values, capW), linkBps: (num(values, 'link-gbps', 10) * 1e9) / 8, horizonS: intFlag(values, 'horizon-s', 120, 1, 3600) };
  }
  const plan = planCaps(input);
  if (values.json) {
    console.log(JSON.stringify(plan));
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

/** Host power and per-VM attributed power over the last window of stored data. */
async function hostsFromStore(values: Values, capW: number): Promise<CapHost[]> {
  const windowS = intFlag(values, 'window-s', 60, 1, 86_400);
  const method = strFlag(values, 'method', 'cpu_share').replace(/[^a-z0-9_]/gi, '');
  const store = await openStore(values);
  try {
    const q = async (sql: string) => (await store.query(sql, 'JSONEachRow')).rows;
    const hosts = await q(`SELECT host, sum(rapl_j + gpu_j + bmc_rest_j) / sum(duration_s) AS w, max(t1_ns) AS t1 FROM host_samples FINAL
      WHERE t1_ns > (SELECT max(t1_ns) FROM host_samples) - ${windowS}e9 GROUP BY host ORDER BY host`);
    const vms = await q(`SELECT a.host AS host, a.vm_uuid AS uuid, any(a.tenant) AS tenant, sum(a.dynamic_j + a.static_j) / ${windowS} AS w, max(v.memory_bytes) AS mem
      FROM attributions AS a FINAL LEFT JOIN (SELECT vm_uuid, max(memory_bytes) AS memory_bytes FROM vm_samples GROUP BY vm_uuid) AS v ON v.vm_uuid = a.vm_uuid
      WHERE a.kind = 'vm' AND a.method = '${method}' AND a.t1_ns > (SELECT max(t1_ns) FROM attributions) - ${windowS}e9 GROUP BY a.host, a.vm_uuid`);
    if (hosts.length === 0) throw new WattsplitError('CONFIG_INVALID', 'the store has no host samples yet (run the demo or a collector first)');
    return hosts.map((h) => ({
      hostId: String(h.host),
      capW,
      powerW: Number(h.w),
      vms: vms.filter((v) => v.host === h.host).map((v) => ({ uuid: String(v.uuid), tenant: String(v.tenant), powerW: Number(v.w), memoryBytes: Number(v.mem ?? 0) })),
    }));
  } finally {
    await store.close();
  }
}

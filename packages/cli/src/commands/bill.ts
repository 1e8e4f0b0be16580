/**
 * wattsplit bill --tenant T | --all [--from ISO] [--to ISO] [--method M] [tariff, PUE, carbon] [--json|--csv|--html]
 *
 * Bills from the hourly rollups (the stored attributions, to the joule), priced by a flat or time-of-use
 * tariff, scaled by PUE, with carbon from a grid-intensity CSV per region, and the same bills under
 * cpu_share beside them (the fairness report). The arithmetic lives in @wattsplit/collector (billing.ts,
 * tariff.ts), shared with the REST API.
 */
import { writeFileSync } from 'node:fs';
import { billCsv, billHtml, billReport, billTable, constantPue, flatTariff, loadGridIntensity, loadPue, loadRegionMap, loadTariff, singleRegion, LEARNED_METHOD, type BillingOptions } from '@wattsplit/collector';
import { str, type Store } from '@wattsplit/store';
import { WattsplitError } from '@wattsplit/wire';
import { numFlag, parse, strFlag } from '../args.js';
import type { Values } from '../args.js';
import { openStore, STORE_FLAGS } from '../store-open.js';

const HELP = `usage: wattsplit bill (--tenant T | --all) [options] [--data-dir DIR | --url URL [--database D]]

  --tenant T               one tenant's bill, with a line per VM (table, --json, --html; the CSV keeps
                           one row per tenant) (several: a comma list a,b)
  --all                    every tenant (the default without --tenant)
  --from ISO, --to ISO     period (whole hours, UTC; default: everything stored)
  --method M               the method billed (default additive_model when stored, else cpu_share);
                           the same bills under cpu_share are shown beside it (the fairness report)
  --price-per-kwh X        flat tariff (with --currency, default EUR)
  --tariff FILE            time-of-use tariff (JSON: currency, timezone, default_price_per_kwh,
                           periods [{name, days "mon-fri", from "08:00", to "20:00", price_per_kwh}])
  --pue X | FILE           facility overhead: a constant (1.3) or a CSV series (timestamp,pue)
  --intensity FILE         grid carbon intensity CSV (Electricity Maps' hourly format: Datetime (UTC),
                           Zone Id, Carbon Intensity gCO₂eq/kWh (direct), …)
  --intensity-column NAME  which intensity column (default: the "(direct)" one)
  --intensity-repeat-weekly  hours outside the series take the same hour of the week (typical-week data)
  --regions FILE           host → region: lines "HOST_PATTERN REGION" (* wildcards, first match)
  --region R               every host in region R
  --json | --csv | --html  output format (default: a table); --out FILE writes it to a file
Samples: docs/data/grid-intensity-synthetic.csv, docs/data/tariff-tou.json, docs/data/regions.txt`;

function timeFlag(values: Values, name: string, def: number): number {
  const raw = values[name];
  if (raw === undefined) return def;
  const ms = Date.parse(String(raw));
  if (Number.isNaN(ms)) throw new WattsplitError('CONFIG_INVALID', `--${name}=${String(raw)}: not a date/time (use ISO 8601, e.g. 2026-11-23T00:00:00Z)`, { details: { field: name, value: raw } });
  return ms * 1e6;
}

/** Tariff, PUE and carbon flags (bill, serve, demo --serve). */
export const PRICING_FLAGS = {
  'price-per-kwh': { type: 'string' },
  currency: { type: 'string' },
  tariff: { type: 'string' },
  pue: { type: 'string' },
  intensity: { type: 'string' },
  'intensity-column': { type: 'string' },
  'intensity-repeat-weekly': { type: 'boolean' },
  regions: { type: 'string' },
  region: { type: 'string' },
} as const;

const FLAGS = {
  ...STORE_FLAGS,
  ...PRICING_FLAGS,
  tenant: { type: 'string' },
  all: { type: 'boolean' },
  from: { type: 'string' },
  to: { type: 'string' },
  method: { type: 'string' },
  json: { type: 'boolean' },
  csv: { type: 'boolean' },
  html: { type: 'boolean' },
  out: { type: 'string' },
} as const;

/** Everything but the store: tariff, PUE, carbon inputs, read and checked before connecting. */
export function pricing(values: Values): Pick<BillingOptions, 'tariff' | 'pue' | 'intensity' | 'regions'> {
  const o: Pick<BillingOptions, 'tariff' | 'pue' | 'intensity' | 'regions'> = {};
  if (values['price-per-kwh'] !== undefined && values.tariff !== undefined) throw new WattsplitError('CONFIG_INVALID', '--price-per-kwh and --tariff: give one tariff', { details: { field: 'tariff' } });
  if (values['price-per-kwh'] !== undefined) o.tariff = flatTariff(numFlag(values, 'price-per-kwh', 0, { min: 0, max: Infinity }), strFlag(values, 'currency', 'EUR'));
  if (values.tariff !== undefined) o.tariff = loadTariff(strFlag(values, 'tariff', ''));
  const pue = strFlag(values, 'pue', '');
  if (pue) o.pue = /^[\d.]+$/.test(pue) ? constantPue(numFlag(values, 'pue', 1, { min: 1, max: 5 })) : loadPue(pue);
  if (values.regions !== undefined && values.region !== undefined) throw new WattsplitError('CONFIG_INVALID', '--regions and --region: give one', { details: { field: 'region' } });
  if (values.regions !== undefined) o.regions = loadRegionMap(strFlag(values, 'regions', ''));
  if (values.region !== undefined) o.regions = singleRegion(strFlag(values, 'region', ''));
  if (values.intensity !== undefined) {
    const column = strFlag(values, 'intensity-column', '');
    o.intensity = loadGridIntensity(strFlag(values, 'intensity', ''), { repeatWeekly: values['intensity-repeat-weekly'] === true, ...(column ? { column } : {}) });
    if (!o.regions) throw new WattsplitError('CONFIG_INVALID', '--intensity needs the region of every host: --regions FILE or --region R', { details: { field: 'regions' } });
  }
  return o;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, FLAGS);
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const formats = (['json', 'csv', 'html'] as const).filter((f) => values[f] === true);
  if (formats.length > 1) throw new WattsplitError('CONFIG_INVALID', `--${formats.join(' and --')}: give one output format`, { details: { field: 'format', value: formats } });
  const tenantFlag = strFlag(values, 'tenant', '');
  if (tenantFlag && values.all === true) throw new WattsplitError('CONFIG_INVALID', '--tenant and --all: give one', { details: { field: 'tenant' } });
  const range = { fromUnixNs: timeFlag(values, 'from', 0), toUnixNs: timeFlag(values, 'to', 4_102_444_800e9) };
  const priced = pricing(values);
  const store = await openStore(values, { mustExist: true });
  try {
    const methods = await distinct(store, 'method', '1');
    const method = strFlag(values, 'method', methods.includes(LEARNED_METHOD) ? LEARNED_METHOD : 'cpu_share');
    const tenants = tenantFlag ? tenantFlag.split(',').map((t) => t.trim()).filter(Boolean) : undefined;
    await checkKnown(store, methods, method, tenants ?? []);
    const report = await billReport(store, { ...range, method, ...priced, ...(tenants ? { tenants, vmLines: true } : {}) });
    const text = formats[0] === 'json' ? JSON.stringify({ ...report, total_joules: report.total.joules, total_kwh: report.total.kwh, cost: report.total.cost, co2e_g: report.total.co2e_g }) : formats[0] === 'csv' ? billCsv(report) : formats[0] === 'html' ? billHtml(report) : billTable(report);
    const out = strFlag(values, 'out', '');
    if (out) writeFileSync(out, text.endsWith('\n') ? text : `${text}\n`);
    else console.log(text.replace(/\n$/, ''));
    return 0;
  } finally {
    await store.close();
  }
}

/** The methods (and, for one of them, the VM tenants) the store has attributions for, from the tenant rollup. */
async function distinct(store: Store, column: 'method' | 'tenant', where: string): Promise<string[]> {
  const r = await store.query(`SELECT DISTINCT ${column} AS v FROM tenant_energy_hourly WHERE ${where} ORDER BY v`, 'JSONEachRow');
  return r.rows.map((x) => String(x.v));
}

function listed(xs: readonly string[], none: string): string {
  if (xs.length === 0) return none;
  return xs.length > 30 ? `${xs.slice(0, 30).join(', ')} … and ${xs.length - 30} more` : xs.join(', ');
}

/**
 * A method or tenant the store has never seen is a typo, not a zero bill: refuse it (exit 2), naming
 * the value and what the store knows. A known tenant with nothing in the period still gets its zero bill.
 */
async function checkKnown(store: Store, methods: readonly string[], method: string, tenants: readonly string[]): Promise<void> {
  if (!methods.includes(method)) {
    throw new WattsplitError('CONFIG_INVALID', `--method=${method}: the store has no attributions by that method; known methods: ${listed(methods, '(none: the store has no attributions yet)')}`, {
      details: { field: 'method', value: method, known: methods },
    });
  }
  if (tenants.length === 0) return;
  const known = await distinct(store, 'tenant', `kind = 'vm' AND method = ${str(method)}`);
  for (const tenant of tenants) {
    if (!known.includes(tenant)) {
      throw new WattsplitError('CONFIG_INVALID', `--tenant=${tenant}: no VM of that tenant in the store (method ${method}); known tenants: ${listed(known, '(none)')}`, {
        details: { field: 'tenant', value: tenant, known },
      });
    }
  }
}

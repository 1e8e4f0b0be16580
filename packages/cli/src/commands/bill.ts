/** wattsplit bill --tenant T [--from ISO] [--to ISO] [--method M] [--price-per-kwh X] [--json] */
import { str, type Store } from '@wattsplit/store';
import { WattsplitError } from '@wattsplit/wire';
import { numFlag, parse, strFlag } from '../args.js';
import type { Values } from '../args.js';
import { openStore, STORE_FLAGS } from '../store-open.js';

function timeFlag(values: Values, name: string, def: number): number {
  const raw = values[name];
  if (raw === undefined) return def;
  const ms = Date.parse(String(raw));
  if (Number.isNaN(ms)) throw new WattsplitError('CONFIG_INVALID', `--${name}=${String(raw)}: not a date/time (use ISO 8601, e.g. 2026-11-23T00:00:00Z)`);
  return ms * 1e6;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, { ...STORE_FLAGS, tenant: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' }, method: { type: 'string' }, 'price-per-kwh': { type: 'string' }, json: { type: 'boolean' } });
  if (values.help) {
    console.log('usage: wattsplit bill [--tenant T] [--from ISO] [--to ISO] [--method additive_model|cpu_share|...] [--price-per-kwh 0.25] [--json] [--data-dir DIR | --url URL]\nWithout --tenant: totals for every tenant.');
    return 0;
  }
  const q = { fromUnixNs: timeFlag(values, 'from', 0), toUnixNs: timeFlag(values, 'to', 4_102_444_800e9), method: strFlag(values, 'method', 'cpu_share') };
  const price = numFlag(values, 'price-per-kwh', 0, { min: 0, max: Infinity });
  const store = await openStore(values, { mustExist: true });
  try {
    const tenant = strFlag(values, 'tenant', '');
    await checkKnown(store, q.method, tenant);
    if (tenant) {
      const lines = await store.tenantBill(tenant, q);
      const total = lines.reduce((a, l) => a + l.dynamicJoules + l.staticJoules, 0);
      if (values.json) {
        console.log(JSON.stringify({ tenant, method: q.method, lines, total_joules: total, total_kwh: total / 3.6e6, cost: (total / 3.6e6) * price }));
        return 0;
      }
      console.log(`Bill for tenant ${tenant} (method ${q.method})`);
      console.log(`${'vm'.padEnd(24)} ${'source'.padEnd(9)} ${'dynamic kWh'.padStart(12)} ${'static kWh'.padStart(11)} ${'range kWh'.padStart(21)}`);
      for (const l of lines) {
        const k = (j: number) => (j / 3.6e6).toFixed(6);
        console.log(`${(l.vmName || l.vmUuid).padEnd(24)} ${l.source.padEnd(9)} ${k(l.dynamicJoules).padStart(12)} ${k(l.staticJoules).padStart(11)} ${`${k(l.lowJoules)}–${k(l.highJoules)}`.padStart(21)}`);
      }
      console.log(`total ${(total / 3.6e6).toFixed(6)} kWh${price ? `, cost ${((total / 3.6e6) * price).toFixed(4)}` : ''}`);
      return 0;
    }
    const totals = await store.tenantTotals(q);
    if (values.json) {
      console.log(JSON.stringify({ method: q.method, tenants: totals }));
      return 0;
    }
    console.log(`${'tenant'.padEnd(20)} ${'kind'.padEnd(14)} ${'dynamic kWh'.padStart(12)} ${'static kWh'.padStart(11)}`);
    for (const t of totals) console.log(`${(t.tenant || '-').padEnd(20)} ${t.kind.padEnd(14)} ${(t.dynamicJoules / 3.6e6).toFixed(6).padStart(12)} ${(t.staticJoules / 3.6e6).toFixed(6).padStart(11)}`);
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
async function checkKnown(store: Store, method: string, tenant: string): Promise<void> {
  const methods = await distinct(store, 'method', '1');
  if (!methods.includes(method)) {
    throw new WattsplitError('CONFIG_INVALID', `--method=${method}: the store has no attributions by that method; known methods: ${listed(methods, '(none: the store has no attributions yet)')}`, {
      details: { field: 'method', value: method, known: methods },
    });
  }
  if (!tenant) return;
  const tenants = await distinct(store, 'tenant', `kind = 'vm' AND method = ${str(method)}`);
  if (!tenants.includes(tenant)) {
    throw new WattsplitError('CONFIG_INVALID', `--tenant=${tenant}: no VM of that tenant in the store (method ${method}); known tenants: ${listed(tenants, '(none)')}`, {
      details: { field: 'tenant', value: tenant, known: tenants },
    });
  }
}

/**
 * Bills, carbon and the fairness report, from the hourly rollups (Store.energyRollup: vm_energy_hourly,
 * or attributions FINAL where the engine cannot deduplicate inserts), so a bill's joules are the stored
 * attributions' joules. Per (hour, host, tenant) of VM energy:
 *
 *   facility kWh = IT kWh × PUE(hour)
 *   cost         = facility kWh × price(hour)                (tariff.ts: flat or time of use)
 *   gCO2e        = facility kWh × intensity(region(host), hour)
 *
 * The fairness report runs the same bill under the learned method and under cpu_share (CPU-time share,
 * what clouds bill by): a tenant whose cpu_share bill is higher than its learned bill paid, under CPU
 * share, for energy other tenants used.
 */
import type { EnergyRollupRow, Store } from '@wattsplit/store';
import { WattsplitError } from '@wattsplit/wire';
import { intensityAt, priceAt, pueAt, regionOf, type GridIntensity, type PueSeries, type RegionMap, type Tariff } from './tariff.js';

export const BASELINE_METHOD = 'cpu_share';
export const LEARNED_METHOD = 'additive_model';

export interface BillingOptions {
  fromUnixNs: number;
  toUnixNs: number;
  /** The method billed (default additive_model). */
  method?: string;
  /** Only these tenants (default every tenant with VM energy). */
  tenants?: readonly string[];
  tariff?: Tariff;
  pue?: PueSeries;
  intensity?: GridIntensity;
  regions?: RegionMap;
  /** Per-VM lines in each bill (one tenant's statement; costly for a whole fleet). */
  vmLines?: boolean;
}

/** Money, energy and carbon of one part of a bill. */
export interface BillAmounts {
  joules: number;
  dynamic_joules: number;
  static_joules: number;
  /** IT energy (what the VMs were attributed), kWh. */
  kwh: number;
  /** IT energy × PUE, kWh. */
  facility_kwh: number;
  cost: number | null;
  co2e_g: number | null;
}

export interface VmBillLine extends BillAmounts {
  vm_uuid: string;
  vm_name: string;
  host: string;
}

export interface TenantBill extends BillAmounts {
  tenant: string;
  method: string;
  /** By region (carbon is per region). */
  regions: Record<string, BillAmounts>;
  /** By tariff period (flat: one "flat" entry). */
  periods: Record<string, BillAmounts>;
  vms?: VmBillLine[];
}

export interface FairnessLine {
  tenant: string;
  learned: BillAmounts;
  cpu_share: BillAmounts;
  /** cpu_share − learned: > 0 means the tenant paid for others' energy under CPU share. */
  difference: { kwh: number; cost: number | null; co2e_g: number | null; pct: number | null };
}

export interface BillReport {
  from: string;
  to: string;
  method: string;
  currency: string | null;
  tariff: string;
  pue: string;
  carbon: string | null;
  billing_source: string;
  tenants: TenantBill[];
  total: BillAmounts;
  /** The same bills under cpu_share beside the method's (absent when the method is cpu_share). */
  fairness?: { baseline: string; tenants: FairnessLine[]; overpaid_kwh: number; underpaid_kwh: number };
}

const zero = (): BillAmounts => ({ joules: 0, dynamic_joules: 0, static_joules: 0, kwh: 0, facility_kwh: 0, cost: null, co2e_g: null });

function add(to: BillAmounts, a: BillAmounts): void {
  to.joules += a.joules;
  to.dynamic_joules += a.dynamic_joules;
  to.static_joules += a.static_joules;
  to.kwh += a.kwh;
  to.facility_kwh += a.facility_kwh;
  if (a.cost !== null) to.cost = (to.cost ?? 0) + a.cost;
  if (a.co2e_g !== null) to.co2e_g = (to.co2e_g ?? 0) + a.co2e_g;
}

/** Prices and carbon of one rollup row. */
function amounts(r: EnergyRollupRow, o: BillingOptions): { a: BillAmounts; region: string; period: string } {
  const hour = r.hour!;
  const joules = r.dynamicJoules + r.staticJoules;
  const kwh = joules / 3.6e6;
  const facility = kwh * (o.pue ? pueAt(o.pue, hour) : 1);
  const region = o.regions ? regionOf(o.regions, r.host ?? '') : '';
  const p = o.tariff ? priceAt(o.tariff, hour) : undefined;
  const co2 = o.intensity ? facility * intensityAt(o.intensity, region, hour) : null;
  return {
    a: { joules, dynamic_joules: r.dynamicJoules, static_joules: r.staticJoules, kwh, facility_kwh: facility, cost: p ? facility * p.pricePerKWh : null, co2e_g: co2 },
    region: region || '(any)',
    period: p?.period ?? '(none)',
  };
}

function checkCarbonInputs(o: BillingOptions): void {
  if (o.intensity && !o.regions) throw new WattsplitError('CONFIG_INVALID', 'carbon needs the region of every host: give a host → region map (--regions FILE) or one region (--region R)', { details: { field: 'regions' } });
}

/** Every tenant's bill under one method. */
export async function tenantBills(store: Store, o: BillingOptions & { method: string }): Promise<TenantBill[]> {
  checkCarbonInputs(o);
  const base = { fromUnixNs: o.fromUnixNs, toUnixNs: o.toUnixNs, methods: [o.method], kinds: ['vm'], ...(o.tenants ? { tenants: o.tenants } : {}) };
  const rows = await store.energyRollup({ ...base, by: o.vmLines ? ['hour', 'tenant', 'host', 'vm_uuid'] : ['hour', 'tenant', 'host'] });
  const bills = new Map<string, TenantBill>();
  const vms = new Map<string, VmBillLine>();
  for (const t of o.tenants ?? []) bills.set(t, { tenant: t, method: o.method, ...zero(), regions: {}, periods: {}, ...(o.vmLines ? { vms: [] } : {}) });
  for (const r of rows) {
    const tenant = r.tenant ?? '';
    let b = bills.get(tenant);
    if (!b) bills.set(tenant, (b = { tenant, method: o.method, ...zero(), regions: {}, periods: {}, ...(o.vmLines ? { vms: [] } : {}) }));
    const { a, region, period } = amounts(r, o);
    add(b, a);
    add((b.regions[region] ??= zero()), a);
    add((b.periods[period] ??= zero()), a);
    if (o.vmLines && r.vmUuid !== undefined) {
      const k = `${tenant}\0${r.vmUuid}\0${r.host ?? ''}`;
      let v = vms.get(k);
      if (!v) {
        vms.set(k, (v = { vm_uuid: r.vmUuid, vm_name: r.vmName ?? '', host: r.host ?? '', ...zero() }));
        b.vms!.push(v);
      }
      add(v, a);
    }
  }
  return [...bills.values()].sort((x, y) => x.tenant.localeCompare(y.tenant));
}

function describeTariff(t: Tariff | undefined): string {
  if (!t) return 'none';
  if (t.kind === 'flat') return `flat ${t.pricePerKWh} ${t.currency}/kWh`;
  return `time of use (${t.timeZone}): ${t.periods.map((p) => `${p.name} ${p.pricePerKWh}`).join(', ')}, else ${t.defaultPricePerKWh} ${t.currency}/kWh`;
}

/** The bills of every (or the given) tenant, with the cpu_share comparison when the method is another one. */
export async function billReport(store: Store, o: BillingOptions): Promise<BillReport> {
  const method = o.method ?? LEARNED_METHOD;
  const tenants = await tenantBills(store, { ...o, method });
  const total = zero();
  for (const t of tenants) add(total, t);
  const iso = (ns: number) => new Date(ns / 1e6).toISOString();
  const report: BillReport = {
    from: iso(o.fromUnixNs),
    to: iso(o.toUnixNs),
    method,
    currency: o.tariff?.currency ?? null,
    tariff: describeTariff(o.tariff),
    pue: !o.pue ? '1 (IT energy only)' : o.pue.kind === 'constant' ? String(o.pue.pue) : `series ${o.pue.source}`,
    carbon: o.intensity ? `${o.intensity.source} (${o.intensity.column}${o.intensity.repeatWeekly ? ', typical week repeated' : ''})` : null,
    billing_source: 'billingSource' in store ? String((store as { billingSource: unknown }).billingSource) : 'rollups',
    tenants,
    total,
  };
  if (method !== BASELINE_METHOD) {
    const base = await tenantBills(store, { ...o, method: BASELINE_METHOD, vmLines: false });
    const byTenant = new Map(base.map((b) => [b.tenant, b]));
    const names = [...new Set([...tenants.map((t) => t.tenant), ...base.map((b) => b.tenant)])].sort();
    const learnedBy = new Map(tenants.map((t) => [t.tenant, t]));
    const lines = names.map((tenant): FairnessLine => {
      const l = learnedBy.get(tenant) ?? { ...zero() };
      const c = byTenant.get(tenant) ?? { ...zero() };
      const strip = (x: BillAmounts): BillAmounts => ({ joules: x.joules, dynamic_joules: x.dynamic_joules, static_joules: x.static_joules, kwh: x.kwh, facility_kwh: x.facility_kwh, cost: x.cost, co2e_g: x.co2e_g });
      return {
        tenant,
        learned: strip(l),
        cpu_share: strip(c),
        difference: {
          kwh: c.facility_kwh - l.facility_kwh,
          cost: c.cost !== null && l.cost !== null ? c.cost - l.cost : null,
          co2e_g: c.co2e_g !== null && l.co2e_g !== null ? c.co2e_g - l.co2e_g : null,
          pct: l.facility_kwh > 0 ? (c.facility_kwh - l.facility_kwh) / l.facility_kwh : null,
        },
      };
    });
    report.fairness = {
      baseline: BASELINE_METHOD,
      tenants: lines,
      overpaid_kwh: lines.reduce((a, x) => a + Math.max(0, x.difference.kwh), 0),
      underpaid_kwh: lines.reduce((a, x) => a + Math.max(0, -x.difference.kwh), 0),
    };
  }
  return report;
}

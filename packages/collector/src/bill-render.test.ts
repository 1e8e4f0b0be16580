// The bill's text table: its fairness section names who paid for whom under cpu_share, and says plainly
// that the two methods bill the same when no tenant's difference exceeds 1e-9 kWh (not "nobody paid
// 0.000000 kWh of energy used by nobody").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { billTable } from './bill-render.js';
import type { BillAmounts, BillReport, FairnessLine, TenantBill } from './billing.js';

const kwhAmounts = (kwh: number): BillAmounts => ({ joules: kwh * 3.6e6, dynamic_joules: kwh * 3.6e6, static_joules: 0, kwh, facility_kwh: kwh, cost: null, co2e_g: null });
const tenant = (name: string, kwh: number): TenantBill => ({ ...kwhAmounts(kwh), tenant: name, method: 'additive_model', regions: {}, periods: { flat: kwhAmounts(kwh) } });
const line = (name: string, learned: number, cpuShare: number): FairnessLine => ({
  tenant: name,
  learned: kwhAmounts(learned),
  cpu_share: kwhAmounts(cpuShare),
  difference: { kwh: cpuShare - learned, cost: null, co2e_g: null, pct: learned ? (cpuShare - learned) / learned : null },
});

function report(lines: FairnessLine[]): BillReport {
  const tenants = lines.map((l) => tenant(l.tenant, l.learned.kwh));
  const total = kwhAmounts(tenants.reduce((a, t) => a + t.kwh, 0));
  return {
    from: '2024-01-01T00:00:00Z',
    to: '2024-01-01T01:00:00Z',
    method: 'additive_model',
    currency: null,
    tariff: 'none',
    pue: '1',
    carbon: null,
    billing_source: 'rollups',
    tenants,
    total,
    fairness: {
      baseline: 'cpu_share',
      tenants: lines,
      overpaid_kwh: lines.reduce((a, l) => a + Math.max(0, l.difference.kwh), 0),
      underpaid_kwh: lines.reduce((a, l) => a + Math.max(0, -l.difference.kwh), 0),
    },
  };
}

test('billTable: methods that agree (differences within 1e-9 kWh) are said to bill the same, with no "nobody paid" sentence', () => {
  const text = billTable(report([line('acme', 0.5, 0.5), line('globex', 0.25, 0.25 + 1e-12)]));
  assert.doesNotMatch(text, /nobody/);
  assert.doesNotMatch(text, /Under cpu_share,/);
  assert.match(text, /^cpu_share and additive_model bill every tenant the same \(no difference above 1e-9 kWh\)\.$/m);
  // the per-tenant fairness rows are still printed
  assert.match(text, /^acme\s+0\.500000\s+0\.500000\s/m);
  assert.match(text, /^globex\s+0\.250000\s+0\.250000\s/m);
});

test('billTable: methods that differ name who paid how much for whom under cpu_share', () => {
  const text = billTable(report([line('acme', 0.5, 0.6), line('globex', 0.3, 0.2)]));
  assert.match(text, /^Under cpu_share, acme paid 0\.100000 kWh of energy used by globex\.$/m);
  assert.doesNotMatch(text, /bill every tenant the same/);
});

test('billTable: a report without a fairness section (method cpu_share) has neither sentence', () => {
  const r = report([line('acme', 0.5, 0.5)]);
  delete r.fairness;
  const text = billTable(r);
  assert.doesNotMatch(text, /Fairness:|Under cpu_share,|bill every tenant the same/);
  assert.match(text, /^total\s+0\.500000\s+0\.500000\s/m);
});

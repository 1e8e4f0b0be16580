/** Per-tenant billing error: |attributed − true| / true, the headline accuracy number. */

export interface TenantError {
  tenant: string;
  attributed: number;
  truth: number;
  /** |attributed − truth| / truth; NaN when truth is 0. */
  relError: number;
}

export interface TenantErrorSummary {
  tenants: TenantError[];
  /** Largest relError over tenants with truth > 0 (0 when there are none). */
  max: number;
  mean: number;
  /** The tenant with the largest error ('' when none). */
  worstTenant: string;
}

type Totals = Readonly<Record<string, number>> | ReadonlyMap<string, number>;

function entries(t: Totals): [string, number][] {
  return t instanceof Map ? [...(t as ReadonlyMap<string, number>).entries()] : Object.entries(t as Record<string, number>);
}

/**
 * Compares attributed with true joules per tenant. Tenants in either map are listed (missing = 0);
 * those whose truth is 0 get relError NaN and are left out of max/mean. Sorted by tenant name.
 */
export function tenantErrors(attributedByTenant: Totals, trueByTenant: Totals): TenantErrorSummary {
  const a = new Map(entries(attributedByTenant));
  const t = new Map(entries(trueByTenant));
  const names = [...new Set([...a.keys(), ...t.keys()])].sort();
  const tenants: TenantError[] = [];
  let max = 0;
  let sum = 0;
  let count = 0;
  let worstTenant = '';
  for (const tenant of names) {
    const attributed = a.get(tenant) ?? 0;
    const truth = t.get(tenant) ?? 0;
    const relError = truth > 0 ? Math.abs(attributed - truth) / truth : Number.NaN;
    tenants.push({ tenant, attributed, truth, relError });
    if (truth > 0) {
      sum += relError;
      count++;
      if (relError > max || worstTenant === '') {
        max = Math.max(max, relError);
        worstTenant = tenant;
      }
    }
  }
  return { tenants, max, mean: count > 0 ? sum / count : 0, worstTenant };
}

/** Σ joules (dynamic + static) billed to each tenant over attribution results (VM shares only; overhead and unallocated left out). */
export function joulesByTenant(results: Iterable<{ shares: readonly { kind: string; tenant: string; dynamicJoules: number; staticJoules: number }[] }>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of results) for (const s of r.shares) if (s.kind === 'vm') out[s.tenant] = (out[s.tenant] ?? 0) + s.dynamicJoules + s.staticJoules;
  return out;
}

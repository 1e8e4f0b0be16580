/**
 * Query strings of the REST API, checked before anything runs: each endpoint names the parameters it
 * takes; an unknown parameter, a parameter given twice (`from=1&from=2` arrives as an array) or a method
 * this collector does not run is a 400 whose JSON body names the parameter and the value.
 */
import { BadRequestException } from '@nestjs/common';

/** A 400 with the body every bad parameter gets: `{statusCode, code, message, parameter, value, …}`. */
export function badParameter(parameter: string, value: unknown, why: string, extra: Record<string, unknown> = {}): BadRequestException {
  const shown = typeof value === 'string' ? `=${JSON.stringify(value)}` : Array.isArray(value) ? `=${JSON.stringify(value)}` : '';
  return new BadRequestException({ statusCode: 400, code: 'STORE_INVALID_INPUT', message: `query parameter ${parameter}${shown} ${why}`, parameter, value, ...extra });
}

/** The endpoint's parameters as single strings (absent = undefined); anything else is a 400. */
export function readQuery<K extends string>(query: unknown, accepted: readonly K[]): Partial<Record<K, string>> {
  const out: Partial<Record<K, string>> = {};
  const q = query !== null && typeof query === 'object' ? (query as Record<string, unknown>) : {};
  for (const [k, v] of Object.entries(q)) {
    if (!(accepted as readonly string[]).includes(k)) throw badParameter(k, v, `is not a parameter of this endpoint (it takes ${accepted.join(', ') || 'none'})`, { accepted });
    if (Array.isArray(v)) throw badParameter(k, v, `is given ${v.length} times; give it once`);
    if (typeof v !== 'string') throw badParameter(k, v, 'must be a single value');
    out[k as K] = v;
  }
  return out;
}

const METHOD_NAME = /^[a-z0-9_.:-]{1,64}$/;

/** `method` (default the learned additive_model when it runs, else cpu_share) must be one of the methods this collector runs. */
export function methodParameter(method: string | undefined, known: readonly string[]): string {
  const m = method === undefined || method === '' ? (known.includes('additive_model') ? 'additive_model' : 'cpu_share') : method;
  if (!METHOD_NAME.test(m)) throw badParameter('method', m, `must match ${METHOD_NAME.source}; known methods: ${known.join(', ')}`, { knownMethods: known });
  if (!known.includes(m)) throw badParameter('method', m, `is not a method this collector runs; known methods: ${known.join(', ')}`, { knownMethods: known });
  return m;
}

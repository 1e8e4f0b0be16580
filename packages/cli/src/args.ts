/**
 * Small helpers over node:util parseArgs with errors that name the flag and the value.
 * Every flag error is a CONFIG_INVALID WattsplitError with a one-line message (main.ts prints it and
 * exits 2); parseArgs' own multi-line messages never reach the user.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { WattsplitError } from '@wattsplit/wire';

export type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | undefined>;

/** A value that reads as a (possibly negative) number: "-5", "-0.5", "-.5", "-1e3", "-Infinity". */
const NEGATIVE_NUMBER = /^-(\d|\.\d|Infinity\b|NaN\b)/;

/**
 * parseArgs refuses `--cap-w -5` (a value starting with a dash is "ambiguous"); for a string flag whose
 * next token reads as a negative number, join them into `--cap-w=-5` so the flag's own range check
 * answers with the flag, the value and the allowed range.
 */
function joinNegativeValues(argv: readonly string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const next = argv[i + 1];
    const name = a.startsWith('--') && !a.includes('=') ? a.slice(2) : undefined;
    if (name !== undefined && options[name]?.type === 'string' && next !== undefined && NEGATIVE_NUMBER.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/** parseArgs' error, as one line that names the flag. */
function parseArgsMessage(e: Error & { code?: string }): string {
  const first = e.message.split('\n')[0] ?? e.message;
  const flag = /'(-[^' ]+)/.exec(first)?.[1];
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown option ${flag ?? first} (see --help)`;
  if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return `${first.replace(/\.$/, '')} (see --help)`;
  if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && flag) {
    if (/ambiguous/.test(first)) return `${flag}: missing value (the next argument starts with '-'; write ${flag}=VALUE if the value does)`;
    if (/argument missing/.test(first)) return `${flag}: missing value`;
  }
  return first;
}

export function parse(argv: string[], options: Options, allowPositionals = false): { values: Values; positionals: string[] } {
  const all: Options = { help: { type: 'boolean', short: 'h' }, ...options };
  try {
    const r = parseArgs({ args: joinNegativeValues(argv, all), options: all, allowPositionals, strict: true });
    return { values: r.values as Values, positionals: r.positionals };
  } catch (e) {
    throw new WattsplitError('CONFIG_INVALID', parseArgsMessage(e as Error & { code?: string }), { cause: e });
  }
}

/** Plain decimal numbers only: no "", " ", "0x10", "1_000" (which Number() would take). */
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

export interface NumberRange {
  /** Smallest allowed value (inclusive unless `minExclusive`). */
  min: number;
  minExclusive?: boolean;
  /** Largest allowed value, inclusive; Infinity when unbounded. */
  max: number;
  integer?: boolean;
}

function rangeText(r: NumberRange): string {
  const kind = r.integer ? 'an integer' : 'a number';
  if (r.max === Infinity) return `${kind} ${r.minExclusive ? '>' : '≥'} ${r.min}`;
  if (r.minExclusive) return `${kind} > ${r.min} and ≤ ${r.max}`;
  return `${kind} from ${r.min} to ${r.max}`;
}

/** A numeric flag's value, or `def` when absent; anything else is one line naming the flag, the value and the range. */
export function numFlag(values: Values, name: string, def: number, range: NumberRange): number {
  const raw = values[name];
  if (raw === undefined) return def;
  const s = String(raw).trim();
  const n = DECIMAL.test(s) ? Number(s) : NaN;
  const ok = Number.isFinite(n) && (range.integer !== true || Number.isInteger(n)) && (range.minExclusive ? n > range.min : n >= range.min) && n <= range.max;
  if (!ok) throw new WattsplitError('CONFIG_INVALID', `--${name}=${String(raw)}: expected ${rangeText(range)}`, { details: { field: name, value: raw } });
  return n;
}

export function intFlag(values: Values, name: string, def: number, min = 1, max = 1_000_000): number {
  return numFlag(values, name, def, { min, max, integer: true });
}

export function strFlag(values: Values, name: string, def: string): string {
  const raw = values[name];
  return typeof raw === 'string' ? raw : def;
}

/** A time flag: ISO 8601 (2026-11-23T00:00:00Z) or unix seconds → unix ns; undefined when absent. */
export function timeFlagNs(values: Values, name: string): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const s = String(raw).trim();
  const ms = /^\d+(\.\d+)?$/.test(s) ? Number(s) * 1000 : /^\d{4}-\d{2}-\d{2}/.test(s) ? Date.parse(s) : NaN;
  if (!Number.isFinite(ms)) throw new WattsplitError('CONFIG_INVALID', `--${name}=${String(raw)}: not a time (ISO 8601, e.g. 2026-11-23T00:00:00Z, or unix seconds)`, { details: { field: name, value: raw } });
  return Math.round(ms * 1e6);
}

/** Small helpers over node:util parseArgs with errors that name the flag and the value. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { WattsplitError } from '@wattsplit/wire';

export type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | undefined>;

export function parse(argv: string[], options: Options, allowPositionals = false): { values: Values; positionals: string[] } {
  try {
    const r = parseArgs({ args: argv, options: { help: { type: 'boolean', short: 'h' }, ...options }, allowPositionals, strict: true });
    return { values: r.values, positionals: r.positionals };
  } catch (e) {
    throw new WattsplitError('CONFIG_INVALID', (e as Error).message);
  }
}

export function intFlag(values: Values, name: string, def: number, min = 1, max = 1_000_000): number {
  const raw = values[name];
  if (raw === undefined) return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new WattsplitError('CONFIG_INVALID', `--${name}=${String(raw)}: expected an integer from ${min} to ${max}`);
  }
  return n;
}

export function strFlag(values: Values, name: string, def: string): string {
  const raw = values[name];
  return typeof raw === 'string' ? raw : def;
}

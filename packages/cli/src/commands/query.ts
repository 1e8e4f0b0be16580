/** wattsplit query "<SQL>" [--format table|json|csv] [--data-dir DIR | --url http://host:8123] */
import { WattsplitError } from '@wattsplit/wire';
import type { QueryFormat } from '@wattsplit/store';
import { parse, strFlag } from '../args.js';
import { openStore, STORE_FLAGS, DEFAULT_DATA_DIR } from '../store-open.js';

const FORMATS: Record<string, QueryFormat> = { table: 'PrettyCompact', json: 'JSONEachRow', csv: 'CSVWithNames', tsv: 'TSVWithNames', markdown: 'Markdown' };

/** ANSI SGR sequences (ESC[1m … ESC[0m): a clickhouse-server colours its Pretty formats' headers. */
const ANSI_SGR = /\x1b\[[0-9;]*m/g;

/**
 * The text to print: a Pretty format from a clickhouse-server (--url) carries ANSI colour codes, which a pipe or
 * a file should not get (the embedded chDB store prints none). Stripped after the fact rather than asked
 * for uncoloured (output_format_pretty_color), which older servers (Debian's 18.16) do not know. Other
 * formats (JSON, CSV, TSV, Markdown) are never coloured and pass through as they are.
 */
export function queryOutput(text: string, format: QueryFormat, tty: boolean): string {
  const plain = tty || !format.startsWith('Pretty') ? text : text.replace(ANSI_SGR, '');
  return plain.endsWith('\n') || plain === '' ? plain : `${plain}\n`;
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { ...STORE_FLAGS, format: { type: 'string', short: 'f' } }, true);
  if (values.help || positionals.length !== 1) {
    console.log(`usage: wattsplit query "<SQL>" [--format ${Object.keys(FORMATS).join('|')}] [--data-dir DIR (default ${DEFAULT_DATA_DIR}) | --url http://host:8123 --database wattsplit]

Tables: host_samples, vm_samples, attributions, anomalies; hourly rollups per VM and per tenant.
Example: wattsplit query "SELECT tenant, method, round(sum(dynamic_j + static_j)) AS joules FROM attributions GROUP BY tenant, method ORDER BY tenant"`);
    return values.help ? 0 : 2;
  }
  const fmtName = strFlag(values, 'format', 'table');
  const format = FORMATS[fmtName];
  if (!format) throw new WattsplitError('CONFIG_INVALID', `--format=${fmtName}: expected one of ${Object.keys(FORMATS).join(', ')}`);
  const store = await openStore(values, { mustExist: true });
  try {
    const r = await store.query(positionals[0]!, format);
    process.stdout.write(queryOutput(r.text, format, process.stdout.isTTY === true));
    return 0;
  } finally {
    await store.close();
  }
}

/**
 * Query-string time ranges for the REST API: unix seconds (ms/µs/ns by magnitude) or ISO 8601
 * (`2026-11-23`, `2026-11-23T10:00:00Z`, `…+02:00`). Anything else is refused, not guessed: no
 * negative or fractional-looking garbage, no "March 7", no 2026-02-30 silently read as March 2, nothing
 * outside what a ClickHouse DateTime holds (1970-01-01 to 2106-02-07).
 */
import { WattsplitError } from '@wattsplit/wire';

const DAY_NS = 86_400e9;
/** Last second a ClickHouse DateTime (UInt32 seconds) holds: 2106-02-07T06:28:15Z. */
const MAX_NS = 4_294_967_295e9;
const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?)?(Z|[+-]\d{2}:?\d{2})?$/i;

const invalid = (param: string, value: string, why: string) =>
  new WattsplitError('STORE_INVALID_INPUT', `query parameter ${param}=${JSON.stringify(value)} ${why}`, { details: { parameter: param, value } });

export function parseInstantNs(value: string, param: string): number {
  const v = value.trim();
  let ns: number;
  if (/^\d+(\.\d+)?$/.test(v)) {
    const x = Number(v);
    // seconds < 1e11, milliseconds < 1e14, microseconds < 1e17, else nanoseconds
    ns = x < 1e11 ? x * 1e9 : x < 1e14 ? x * 1e6 : x < 1e17 ? x * 1e3 : x;
  } else {
    const m = ISO.exec(v);
    const [y, mo, d, hh, mi, ss] = (m ?? []).slice(1, 7).map((s) => (s === undefined ? 0 : Number(s)));
    const ms = m ? Date.parse(m[4] === undefined ? `${v.slice(0, 10)}T00:00:00${m[7] ?? 'Z'}` : v.replace(' ', 'T')) : NaN;
    const daysInMonth = new Date(Date.UTC(y ?? 0, mo ?? 0, 0)).getUTCDate();
    if (!m || Number.isNaN(ms) || mo! < 1 || mo! > 12 || d! < 1 || d! > daysInMonth || hh! > 23 || mi! > 59 || ss! > 59) {
      throw invalid(param, value, 'is not a time (unix seconds or ISO 8601, e.g. 2026-11-23T10:00:00Z)');
    }
    ns = ms * 1e6;
  }
  if (!(ns >= 0 && ns <= MAX_NS)) throw invalid(param, value, 'is outside 1970-01-01 … 2106-02-07');
  return ns;
}

export function parseRange(from: string | undefined, to: string | undefined, nowMs = Date.now()): { fromUnixNs: number; toUnixNs: number } {
  const toNs = to === undefined || to === '' ? nowMs * 1e6 : parseInstantNs(to, 'to');
  const fromNs = from === undefined || from === '' ? Math.max(0, toNs - DAY_NS) : parseInstantNs(from, 'from');
  if (!(toNs > fromNs)) {
    throw new WattsplitError('STORE_INVALID_INPUT', `query parameters from=${JSON.stringify(from ?? '')} to=${JSON.stringify(to ?? '')}: to must be after from`, {
      details: { parameter: 'to', value: to ?? null, from: from ?? null },
    });
  }
  return { fromUnixNs: fromNs, toUnixNs: toNs };
}

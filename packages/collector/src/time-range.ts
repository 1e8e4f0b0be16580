/** Query-string time ranges for the REST API: unix seconds, unix ms/ns by magnitude, or ISO 8601. */
import { WattsplitError } from '@wattsplit/wire';

const DAY_NS = 86_400e9;

export function parseInstantNs(value: string, param: string): number {
  const v = value.trim();
  if (/^-?\d+(\.\d+)?$/.test(v)) {
    const x = Number(v);
    // seconds < 1e11, milliseconds < 1e14, microseconds < 1e17, else nanoseconds
    if (Math.abs(x) < 1e11) return x * 1e9;
    if (Math.abs(x) < 1e14) return x * 1e6;
    if (Math.abs(x) < 1e17) return x * 1e3;
    return x;
  }
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) {
    throw new WattsplitError('STORE_INVALID_INPUT', `query parameter ${param}=${JSON.stringify(value)} is not a time (unix seconds or ISO 8601, e.g. 2026-11-23T10:00:00Z)`, { details: { field: param, value } });
  }
  return ms * 1e6;
}

export function parseRange(from: string | undefined, to: string | undefined, nowMs = Date.now()): { fromUnixNs: number; toUnixNs: number } {
  const toNs = to === undefined || to === '' ? nowMs * 1e6 : parseInstantNs(to, 'to');
  const fromNs = from === undefined || from === '' ? toNs - DAY_NS : parseInstantNs(from, 'from');
  if (!(toNs > fromNs)) {
    throw new WattsplitError('STORE_INVALID_INPUT', `query parameters from=${JSON.stringify(from)} to=${JSON.stringify(to)}: to must be after from`, { details: { field: 'to', value: to } });
  }
  return { fromUnixNs: fromNs, toUnixNs: toNs };
}

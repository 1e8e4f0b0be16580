/**
 * What an hour of energy costs and emits: the pure inputs of a bill. Four small parts, each parsed from
 * the files operators already have, each refusing bad input with the file, line and value named:
 *
 *   Tariff          flat price per kWh, or time of use (periods by weekday and local time, a default price)
 *   PueSeries       facility overhead: constant (1.3) or a measured series `timestamp,pue` (step: a value
 *                   holds from its time until the next one)
 *   GridIntensity   gCO2e per kWh per region and hour, from the CSV the public datasets publish
 *                   (Electricity Maps' hourly export: `Datetime (UTC)`, `Zone Id`, `Carbon Intensity
 *                   gCO₂eq/kWh (direct)`, …; or any CSV with datetime, zone/region and intensity columns).
 *                   Finer than hourly is averaged per hour; an hour with no sample is an error naming the
 *                   region and hour unless `repeatWeekly` (a typical-week profile, such as the shipped
 *                   synthetic sample, repeats by hour of the week).
 *   RegionMap       host → region from a small config (`PATTERN REGION` lines, `*` wildcards, first match).
 *
 * Hours are ClickHouse's `YYYY-MM-DD HH:00:00` (UTC) strings, as the rollups return them.
 */
import { readFileSync } from 'node:fs';
import { WattsplitError } from '@wattsplit/wire';

const bad = (where: string, why: string, details: Record<string, unknown> = {}) => new WattsplitError('CONFIG_INVALID', `${where}: ${why}`, { details: { where, ...details } });

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw bad(`${what} ${path}`, (e as NodeJS.ErrnoException).code ?? (e as Error).message, { file: path });
  }
}

/** `YYYY-MM-DD HH:MM:SS` (UTC, ClickHouse's DateTime text) → ms. */
export function hourMs(hour: string): number {
  const ms = Date.parse(`${hour.replace(' ', 'T')}Z`);
  if (Number.isNaN(ms)) throw new WattsplitError('STORE_INVALID_INPUT', `hour ${JSON.stringify(hour)} is not YYYY-MM-DD HH:MM:SS`, { details: { field: 'hour', value: hour } });
  return ms;
}

const HOUR_MS = 3_600_000;
const WEEK_MS = 7 * 24 * HOUR_MS;

// ---------------------------------------------------------------- tariff

export interface TouPeriod {
  name: string;
  /** Weekdays 0 (Sunday) … 6 the period applies on. */
  days: readonly number[];
  /** Local minutes since midnight, [from, to); to ≤ from wraps past midnight. */
  fromMin: number;
  toMin: number;
  pricePerKWh: number;
}

export type Tariff =
  | { kind: 'flat'; currency: string; pricePerKWh: number }
  | { kind: 'time_of_use'; currency: string; timeZone: string; defaultPricePerKWh: number; periods: readonly TouPeriod[] };

const DAY_NAMES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

function parseDays(raw: unknown, where: string): number[] {
  if (raw === undefined) return [0, 1, 2, 3, 4, 5, 6];
  const text = Array.isArray(raw) ? raw.map((d) => String(d)).join(',') : typeof raw === 'string' ? raw : JSON.stringify(raw);
  const out = new Set<number>();
  for (const part of text.toLowerCase().split(',').map((s) => s.trim()).filter(Boolean)) {
    const [a, b] = part.split('-').map((d) => DAY_NAMES.indexOf(d.slice(0, 3)));
    if (a === undefined || a < 0 || (b !== undefined && b < 0)) throw bad(where, `days ${JSON.stringify(text)}: expected names like "mon-fri" or "sat,sun"`, { field: 'days', value: text });
    for (let d = a; ; d = (d + 1) % 7) {
      out.add(d);
      if (d === (b ?? a)) break;
    }
  }
  return [...out].sort();
}

function parseClock(raw: unknown, where: string, field: string): number {
  const m = /^(\d{1,2}):(\d{2})$/.exec(String(raw));
  const h = Number(m?.[1]);
  const mi = Number(m?.[2]);
  if (!m || h > 24 || mi > 59 || (h === 24 && mi > 0)) throw bad(where, `${field} ${JSON.stringify(raw)}: expected HH:MM (00:00 … 24:00)`, { field, value: raw });
  return h * 60 + mi;
}

function price(raw: unknown, where: string, field: string): number {
  const n = typeof raw === 'number' ? raw : NaN;
  if (!(Number.isFinite(n) && n >= 0)) throw bad(where, `${field} ${JSON.stringify(raw)}: expected a price ≥ 0 per kWh`, { field, value: raw });
  return n;
}

export function flatTariff(pricePerKWh: number, currency = 'EUR'): Tariff {
  return { kind: 'flat', currency, pricePerKWh: price(pricePerKWh, 'tariff', 'price_per_kwh') };
}

/**
 * A time-of-use tariff file (JSON):
 * `{"currency":"EUR","timezone":"Europe/Berlin","default_price_per_kwh":0.18,
 *   "periods":[{"name":"peak","days":"mon-fri","from":"08:00","to":"20:00","price_per_kwh":0.31}]}`
 * The first period that matches an hour's local start time sets its price, else the default.
 */
export function parseTariff(text: string, source: string): Tariff {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw bad(`tariff ${source}`, `not valid JSON: ${(e as Error).message}`);
  }
  const where = `tariff ${source}`;
  const currency = typeof doc.currency === 'string' && doc.currency ? doc.currency : 'EUR';
  if (doc.periods === undefined) return { kind: 'flat', currency, pricePerKWh: price(doc.price_per_kwh, where, 'price_per_kwh') };
  const timeZone = typeof doc.timezone === 'string' ? doc.timezone : 'UTC';
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
  } catch {
    throw bad(where, `timezone ${JSON.stringify(timeZone)} is not an IANA time zone (e.g. Europe/Berlin, UTC)`, { field: 'timezone', value: timeZone });
  }
  if (!Array.isArray(doc.periods)) throw bad(where, 'periods must be a list', { field: 'periods' });
  const periods = doc.periods.map((p: unknown, i): TouPeriod => {
    const o = (p ?? {}) as Record<string, unknown>;
    const w = `${where} periods[${i}]`;
    return { name: typeof o.name === 'string' ? o.name : `#${i + 1}`, days: parseDays(o.days, w), fromMin: parseClock(o.from, w, 'from'), toMin: parseClock(o.to, w, 'to'), pricePerKWh: price(o.price_per_kwh, w, 'price_per_kwh') };
  });
  return { kind: 'time_of_use', currency, timeZone, defaultPricePerKWh: price(doc.default_price_per_kwh, where, 'default_price_per_kwh'), periods };
}

export function loadTariff(path: string): Tariff {
  return parseTariff(readText(path, 'tariff'), path);
}

const localParts = new Map<string, Intl.DateTimeFormat>();

/** Weekday and minutes since midnight of an instant in a time zone. */
function localClock(ms: number, timeZone: string): { day: number; minute: number } {
  let f = localParts.get(timeZone);
  if (!f) localParts.set(timeZone, (f = new Intl.DateTimeFormat('en-US', { timeZone, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })));
  const parts = Object.fromEntries(f.formatToParts(new Date(ms)).map((p) => [p.type, p.value]));
  return { day: DAY_NAMES.indexOf(String(parts.weekday).toLowerCase().slice(0, 3)), minute: Number(parts.hour) * 60 + Number(parts.minute) };
}

/** Price per kWh of the hour starting at `hour` (UTC), and the period's name. */
export function priceAt(t: Tariff, hour: string): { pricePerKWh: number; period: string } {
  if (t.kind === 'flat') return { pricePerKWh: t.pricePerKWh, period: 'flat' };
  const { day, minute } = localClock(hourMs(hour), t.timeZone);
  for (const p of t.periods) {
    const inside = p.fromMin < p.toMin ? minute >= p.fromMin && minute < p.toMin : minute >= p.fromMin || minute < p.toMin;
    if (inside && p.days.includes(day)) return { pricePerKWh: p.pricePerKWh, period: p.name };
  }
  return { pricePerKWh: t.defaultPricePerKWh, period: 'default' };
}

// ---------------------------------------------------------------- CSV

/** RFC 4180 rows (quoted fields, doubled quotes, CRLF). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      if (row.some((f) => f.trim() !== '')) rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  row.push(field);
  if (row.some((f) => f.trim() !== '')) rows.push(row);
  return rows;
}

function parseInstantMs(raw: string, where: string): number {
  const v = raw.trim();
  const ms = /^\d+(\.\d+)?$/.test(v) ? Number(v) * (Number(v) < 1e11 ? 1000 : 1) : Date.parse(/[zZ]|[+-]\d{2}:?\d{2}$/.test(v) ? v.replace(' ', 'T') : `${v.replace(' ', 'T')}Z`);
  if (Number.isNaN(ms)) throw bad(where, `time ${JSON.stringify(raw)} is not ISO 8601 or unix seconds`, { value: raw });
  return ms;
}

// ---------------------------------------------------------------- PUE

/** Facility energy = IT energy × PUE; a series holds each value from its time until the next. */
export type PueSeries = { kind: 'constant'; pue: number } | { kind: 'series'; points: readonly { ms: number; pue: number }[]; source: string };

function checkPue(v: number, where: string): number {
  if (!(Number.isFinite(v) && v >= 1 && v <= 5)) throw bad(where, `PUE ${v} must be a number from 1 to 5`, { field: 'pue', value: v });
  return v;
}

export function constantPue(pue: number): PueSeries {
  return { kind: 'constant', pue: checkPue(pue, '--pue') };
}

/** CSV with a time column (`timestamp`, `datetime`, `time`) and a `pue` column. */
export function parsePueCsv(text: string, source: string): PueSeries {
  const [header, ...rows] = parseCsv(text);
  const cols = (header ?? []).map((h) => h.trim().toLowerCase());
  const ti = cols.findIndex((c) => /time|date/.test(c));
  const pi = cols.findIndex((c) => c === 'pue');
  if (ti < 0 || pi < 0) throw bad(`PUE series ${source}`, `expected a header with a time column and "pue" (got ${JSON.stringify(header)})`);
  const points = rows.map((r, i) => {
    const where = `PUE series ${source}:${i + 2}`;
    return { ms: parseInstantMs(r[ti] ?? '', where), pue: checkPue(Number(r[pi]), where) };
  });
  if (points.length === 0) throw bad(`PUE series ${source}`, 'no rows');
  points.sort((a, b) => a.ms - b.ms);
  return { kind: 'series', points, source };
}

export function loadPue(spec: string): PueSeries {
  if (/^\d+(\.\d+)?$/.test(spec.trim())) return constantPue(Number(spec));
  return parsePueCsv(readText(spec, 'PUE series'), spec);
}

export function pueAt(p: PueSeries, hour: string): number {
  if (p.kind === 'constant') return p.pue;
  const ms = hourMs(hour);
  let v: number | undefined;
  for (const x of p.points) {
    if (x.ms <= ms) v = x.pue;
    else break;
  }
  if (v === undefined) throw bad(`PUE series ${p.source}`, `no value at or before ${hour} UTC (the series starts at ${new Date(p.points[0]!.ms).toISOString()})`, { field: 'hour', value: hour });
  return v;
}

// ---------------------------------------------------------------- grid intensity

export interface GridIntensity {
  source: string;
  /** region → hour start (ms) → gCO2e/kWh (mean of the samples in that hour). */
  byRegion: ReadonlyMap<string, ReadonlyMap<number, number>>;
  /** Hours outside the series take the same hour of the week from it (a typical-week profile). */
  repeatWeekly: boolean;
  /** The column the values came from. */
  column: string;
}

/**
 * Columns: the first header containing "datetime" (else "time"/"date"), the zone ("zone id", else
 * "zone", "region", "country"), and the intensity: "carbon intensity … (direct)" (scope 2,
 * location-based), else any "carbon intensity"/"gco2" column; `column` picks one by name instead.
 */
export function parseGridIntensityCsv(text: string, source: string, opts: { repeatWeekly?: boolean; column?: string } = {}): GridIntensity {
  const [header, ...rows] = parseCsv(text);
  const cols = (header ?? []).map((h) => h.trim().toLowerCase());
  const find = (...tests: ((c: string) => boolean)[]) => {
    for (const t of tests) {
      const i = cols.findIndex(t);
      if (i >= 0) return i;
    }
    return -1;
  };
  const ti = find((c) => c.includes('datetime'), (c) => c.includes('time'), (c) => c.includes('date'));
  const zi = find((c) => c === 'zone id', (c) => c.includes('zone') && !c.includes('name'), (c) => c.includes('region'), (c) => c.includes('zone'), (c) => c.includes('country'));
  const want = opts.column?.toLowerCase();
  const ci = want !== undefined ? cols.findIndex((c) => c === want) : find((c) => c.includes('carbon intensity') && c.includes('direct'), (c) => c.includes('carbon intensity'), (c) => c.includes('gco2'));
  if (ti < 0 || zi < 0 || ci < 0) {
    throw bad(`grid intensity ${source}`, `expected columns for the time, the zone/region and the carbon intensity (gCO2eq/kWh)${want ? ` named ${JSON.stringify(opts.column)}` : ''}; header: ${JSON.stringify(header)}`);
  }
  const sums = new Map<string, Map<number, { s: number; n: number }>>();
  for (const [i, r] of rows.entries()) {
    const where = `grid intensity ${source}:${i + 2}`;
    const ms = parseInstantMs(r[ti] ?? '', where);
    const region = (r[zi] ?? '').trim();
    const raw = (r[ci] ?? '').trim();
    if (raw === '') continue; // a gap in the dataset: the hour has no sample
    const v = Number(raw);
    if (!region) throw bad(where, 'empty zone/region');
    if (!(Number.isFinite(v) && v >= 0 && v < 5000)) throw bad(where, `carbon intensity ${JSON.stringify(raw)} must be gCO2eq/kWh from 0 to 5000`, { value: raw });
    const h = Math.floor(ms / HOUR_MS) * HOUR_MS;
    let m = sums.get(region);
    if (!m) sums.set(region, (m = new Map<number, { s: number; n: number }>()));
    const a = m.get(h) ?? { s: 0, n: 0 };
    a.s += v;
    a.n++;
    m.set(h, a);
  }
  if (sums.size === 0) throw bad(`grid intensity ${source}`, 'no rows with a carbon intensity');
  const byRegion = new Map([...sums].map(([k, m]) => [k, new Map([...m].map(([h, a]) => [h, a.s / a.n]))]));
  return { source, byRegion, repeatWeekly: opts.repeatWeekly === true, column: header![ci]!.trim() };
}

export function loadGridIntensity(path: string, opts: { repeatWeekly?: boolean; column?: string } = {}): GridIntensity {
  return parseGridIntensityCsv(readText(path, 'grid intensity'), path, opts);
}

/** gCO2e per kWh of `region` in the hour starting at `hour` (UTC). */
export function intensityAt(g: GridIntensity, region: string, hour: string): number {
  const series = g.byRegion.get(region);
  if (!series) throw bad(`grid intensity ${g.source}`, `no series for region ${JSON.stringify(region)}; regions: ${[...g.byRegion.keys()].join(', ')}`, { field: 'region', value: region });
  const ms = hourMs(hour);
  const exact = series.get(ms);
  if (exact !== undefined) return exact;
  if (g.repeatWeekly) {
    const hours = [...series.keys()];
    const first = Math.min(...hours);
    const shifted = first + ((((ms - first) % WEEK_MS) + WEEK_MS) % WEEK_MS);
    const v = series.get(shifted);
    if (v !== undefined) return v;
  }
  throw bad(`grid intensity ${g.source}`, `no value for region ${region} in the hour ${hour} UTC${g.repeatWeekly ? ' (nor the same hour of the week)' : ' (pass --intensity-repeat-weekly for a typical-week profile)'}`, { field: 'hour', value: hour, region });
}

// ---------------------------------------------------------------- host → region

export interface RegionMap {
  rules: readonly { pattern: string; re: RegExp; region: string }[];
  source: string;
}

/** Lines of `HOST_PATTERN REGION` (`*` matches any run of characters; first match wins; `#` comments). */
export function parseRegionMap(text: string, source: string): RegionMap {
  const rules = [];
  for (const [i, line] of text.split('\n').entries()) {
    const words = line.replace(/#.*$/, '').trim().split(/\s+/).filter(Boolean);
    if (words.length === 0) continue;
    if (words.length !== 2) throw bad(`regions ${source}:${i + 1}`, `expected "HOST_PATTERN REGION", got ${JSON.stringify(line.trim())}`);
    const [pattern, region] = words as [string, string];
    rules.push({ pattern, region, re: new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`) });
  }
  if (rules.length === 0) throw bad(`regions ${source}`, 'no rules');
  return { rules, source };
}

export function loadRegionMap(path: string): RegionMap {
  return parseRegionMap(readText(path, 'regions'), path);
}

export function singleRegion(region: string): RegionMap {
  return parseRegionMap(`* ${region}`, '--region');
}

export function regionOf(m: RegionMap, host: string): string {
  const r = m.rules.find((x) => x.re.test(host));
  if (!r) throw bad(`regions ${m.source}`, `no rule matches host ${JSON.stringify(host)} (add "${host} REGION" or "* REGION")`, { field: 'host', value: host });
  return r.region;
}

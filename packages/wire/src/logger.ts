/**
 * The one structured logger shape libraries accept (a subset of pino's). Apps pass a pino instance;
 * tests pass `memoryLogger()` and assert on what was logged. Libraries never use `console`.
 */
import { wasReported } from './errors.js';

export interface LogFn {
  (obj: Record<string, unknown>, msg?: string): void;
  (msg: string): void;
}

/**
 * Methods, not function-valued properties: pino's methods read `this`, so `const f = log.warn; f(...)`
 * throws at run time. Declared as methods, lint's `unbound-method` rejects such a call at compile time
 * (an agent once died on its first retry this way), and `memoryLogger()` needs `this` too, as pino does.
 */
export interface Logger {
  debug(obj: Record<string, unknown>, msg?: string): void;
  debug(msg: string): void;
  info(obj: Record<string, unknown>, msg?: string): void;
  info(msg: string): void;
  warn(obj: Record<string, unknown>, msg?: string): void;
  warn(msg: string): void;
  error(obj: Record<string, unknown>, msg?: string): void;
  error(msg: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

export interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  fields: Record<string, unknown>;
}

/** Like pino, every method reads `this`: a method called unbound throws here too, so tests catch it. */
class SinkLogger implements Logger {
  constructor(
    private readonly sink: (e: LogEntry) => void,
    private readonly bindings: Record<string, unknown>,
  ) {}
  private write(level: LogEntry['level'], a: Record<string, unknown> | string, b?: string): void {
    if (typeof a === 'string') this.sink({ level, msg: a, fields: { ...this.bindings } });
    else this.sink({ level, msg: b ?? '', fields: { ...this.bindings, ...a } });
  }
  debug(a: Record<string, unknown> | string, b?: string): void {
    this.write('debug', a, b);
  }
  info(a: Record<string, unknown> | string, b?: string): void {
    this.write('info', a, b);
  }
  warn(a: Record<string, unknown> | string, b?: string): void {
    this.write('warn', a, b);
  }
  error(a: Record<string, unknown> | string, b?: string): void {
    this.write('error', a, b);
  }
  child(more: Record<string, unknown>): Logger {
    return new SinkLogger(this.sink, { ...this.bindings, ...more });
  }
}

function makeLogger(sink: (e: LogEntry) => void, bindings: Record<string, unknown>): Logger {
  return new SinkLogger(sink, bindings);
}

/** A logger that drops everything. */
export const silentLogger: Logger = makeLogger(() => undefined, {});

/** A logger that keeps entries in memory, for tests and for `--check` style reports. */
export function memoryLogger(): Logger & { entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  return Object.assign(makeLogger((e) => entries.push(e), {}), { entries });
}

/**
 * Lets one kind of log line through at most once per `windowMs`: for lines that repeat while a dependency is
 * down (a broker refusing connections, every batch's send failing). `pass(key)` says whether to write the line
 * now and how many of its kind were held back since the last one written (to log at debug instead, and to put
 * in the next line written as `repeated`). A kind quiet for a window is written at once again. At most
 * `maxKinds` kinds are remembered (the oldest forgotten first).
 */
export class RepeatGate {
  private readonly kinds = new Map<string, { at: number; held: number }>();

  constructor(
    readonly windowMs = 30_000,
    private readonly now: () => number = Date.now,
    private readonly maxKinds = 1000,
  ) {}

  pass(key: string): { write: boolean; repeated: number } {
    const t = this.now();
    const k = this.kinds.get(key);
    if (k && t - k.at < this.windowMs) {
      k.held++;
      return { write: false, repeated: k.held };
    }
    const repeated = k?.held ?? 0;
    this.kinds.delete(key);
    this.kinds.set(key, { at: t, held: 0 });
    if (this.kinds.size > this.maxKinds) this.kinds.delete(this.kinds.keys().next().value as string);
    return { write: true, repeated };
  }

  /**
   * Writes `msg` to `logger` at `level` when its kind passes (`repeated` added when some were held back), else at
   * debug with `heldBack: true`.
   */
  write(logger: Logger, level: 'warn' | 'error', key: string, fields: Record<string, unknown>, msg: string): void {
    const g = this.pass(key);
    if (!g.write) logger.debug({ ...fields, heldBack: true }, msg);
    else if (level === 'warn') logger.warn(g.repeated > 0 ? { ...fields, repeated: g.repeated } : fields, msg);
    else logger.error(g.repeated > 0 ? { ...fields, repeated: g.repeated } : fields, msg);
  }

  /**
   * A failure the caller passes on (a batch to redeliver): written like `write` at warn, or at debug with
   * `reportedBelow: true` where the layer that met `error` already logged it (`wasReported`, errors.ts).
   */
  warnUnlessReported(logger: Logger, key: string, fields: Record<string, unknown>, msg: string, error: unknown): void {
    if (wasReported(error)) logger.debug({ ...fields, reportedBelow: true }, msg);
    else this.write(logger, 'warn', key, fields, msg);
  }
}

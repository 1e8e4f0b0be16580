/**
 * The one structured logger shape libraries accept (a subset of pino's). Apps pass a pino instance;
 * tests pass `memoryLogger()` and assert on what was logged. Libraries never use `console`.
 */
export interface LogFn {
  (obj: Record<string, unknown>, msg?: string): void;
  (msg: string): void;
}

export interface Logger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  child(bindings: Record<string, unknown>): Logger;
}

export interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  fields: Record<string, unknown>;
}

function makeLogger(sink: (e: LogEntry) => void, bindings: Record<string, unknown>): Logger {
  const at = (level: LogEntry['level']): LogFn =>
    ((a: Record<string, unknown> | string, b?: string) => {
      if (typeof a === 'string') sink({ level, msg: a, fields: { ...bindings } });
      else sink({ level, msg: b ?? '', fields: { ...bindings, ...a } });
    });
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (more) => makeLogger(sink, { ...bindings, ...more }),
  };
}

/** A logger that drops everything. */
export const silentLogger: Logger = makeLogger(() => undefined, {});

/** A logger that keeps entries in memory, for tests and for `--check` style reports. */
export function memoryLogger(): Logger & { entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  return Object.assign(makeLogger((e) => entries.push(e), {}), { entries });
}

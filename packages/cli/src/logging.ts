/** The CLI's structured logger: pino to stderr (stdout stays clean for --json and query output). */
import { pino, destination } from 'pino';
import { WattsplitError, silentLogger, type Logger } from '@wattsplit/wire';

const LEVELS = ['silent', 'error', 'warn', 'info', 'debug'] as const;

export function makeLogger(level: string): Logger {
  if (!LEVELS.some((l) => l === level)) throw new WattsplitError('CONFIG_INVALID', `--log-level=${level}: expected one of ${LEVELS.join(', ')}`);
  if (level === 'silent') return silentLogger;
  return pino({ level, base: { app: 'wattsplit' } }, destination(2));
}

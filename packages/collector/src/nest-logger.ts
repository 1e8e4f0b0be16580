/** Nest's own diagnostics through the project Logger (Nest would print to stdout otherwise). */
import type { LoggerService } from '@nestjs/common';
import type { Logger } from '@wattsplit/wire';

export class NestLoggerAdapter implements LoggerService {
  private readonly out: Logger;
  constructor(logger: Logger) {
    this.out = logger.child({ component: 'nest' });
  }
  private fields(params: unknown[]): Record<string, unknown> {
    const ctx = params[params.length - 1];
    return typeof ctx === 'string' ? { context: ctx } : {};
  }
  log(message: unknown, ...params: unknown[]): void {
    this.out.debug(this.fields(params), String(message));
  }
  error(message: unknown, ...params: unknown[]): void {
    this.out.error(this.fields(params), String(message));
  }
  warn(message: unknown, ...params: unknown[]): void {
    this.out.warn(this.fields(params), String(message));
  }
  debug(message: unknown, ...params: unknown[]): void {
    this.out.debug(this.fields(params), String(message));
  }
  verbose(message: unknown, ...params: unknown[]): void {
    this.out.debug(this.fields(params), String(message));
  }
}

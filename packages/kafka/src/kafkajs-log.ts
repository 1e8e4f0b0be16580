/**
 * kafkajs's log lines into the process's logger, at the level an operator should see them.
 *
 * kafkajs's connection logs every error response from a broker at ERROR ("Response GroupCoordinator(key:
 * 10, version: 2)", error "The group coordinator is not available") and then throws it to the request's
 * caller, which retries the ones Kafka marks retriable (a coordinator or leader not elected yet, a broker
 * loading its partitions, a leadership change) and gives up on the others. On a freshly started broker the
 * first coordinator lookup is such an answer: an ERROR line at every first start of a gateway or collector,
 * for a condition that resolves itself within a second. Those responses are logged at debug here (as
 * kafkajs's own INFO lines are), with `retriable: true`; the retries kafkajs gives up on reach the bus,
 * which logs and counts its own error with the topic and partition. Responses with non-retriable errors
 * keep the ERROR level. Which errors are retriable comes from kafkajs's own protocol error table (the same
 * flags its retrier reads); if that table cannot be loaded every response error stays at ERROR.
 */
import { createRequire } from 'node:module';
import { logLevel as KafkaLogLevel, type LogEntry as KafkaLogEntry } from 'kafkajs';
import type { Logger } from '@wattsplit/wire';

/** Messages of kafkajs's protocol errors that its retrier retries (kafkajs/src/protocol/error.js). */
export const RETRIABLE_PROTOCOL_MESSAGES: ReadonlySet<string> = loadRetriable();

function loadRetriable(): Set<string> {
  try {
    const require = createRequire(import.meta.url);
    const table = (require('kafkajs/src/protocol/error.js') as { errorCodes?: { message?: string; retriable?: boolean }[] }).errorCodes ?? [];
    return new Set(table.filter((e) => e.retriable === true && typeof e.message === 'string').map((e) => e.message!));
  } catch {
    return new Set();
  }
}

/** kafkajs `logCreator` writing into `log`. */
export function kafkajsLogCreator(log: Logger) {
  return () =>
    ({ level, label, log: entry }: KafkaLogEntry): void => {
      const { message, ...fields } = entry;
      const rec = { ...fields, kafkajs: label } as Record<string, unknown>;
      delete rec.timestamp;
      delete rec.logger;
      switch (level) {
        case KafkaLogLevel.ERROR:
          if (message.startsWith('Response ') && typeof rec.error === 'string' && RETRIABLE_PROTOCOL_MESSAGES.has(rec.error)) {
            log.debug({ ...rec, retriable: true }, `kafkajs: ${message}`);
          } else log.error(rec, `kafkajs: ${message}`);
          break;
        case KafkaLogLevel.WARN:
          // Retries are bounded on purpose (send() must be able to answer "retryable").
          if (message.startsWith('Limiting retries for the idempotent producer')) log.debug(rec, `kafkajs: ${message}`);
          else log.warn(rec, `kafkajs: ${message}`);
          break;
        case KafkaLogLevel.INFO:
        case KafkaLogLevel.DEBUG:
        case KafkaLogLevel.NOTHING:
          log.debug(rec, `kafkajs: ${message}`);
          break;
      }
    };
}

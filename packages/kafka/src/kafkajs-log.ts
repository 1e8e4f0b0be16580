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
 *
 * Two more kinds of error responses are handled by kafkajs itself, not by a retry, and are debug too:
 * - a consumer group's rebalance (REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID: a member
 *   joined or left, e.g. a second collector started): the consumer re-joins the group, and says so in its own
 *   line — "The group is rebalancing, re-joining", a normal event when the group changes, logged at info here;
 *   "The coordinator is not aware of this member, re-joining the group" (the member was dropped, e.g. it
 *   missed its session timeout) stays a warning;
 * - CreateTopics ("Topic creation errors"): two processes creating a topic at once, one of them is told it
 *   exists, which the admin client takes as done; any other failure reaches the bus, which logs its own
 *   warning with the topic (KafkaBusBase.ensureTopicOrWarn).
 *
 * Repeats are gated: while a broker is down kafkajs logs every failed connection attempt of every client
 * (producer, consumer, admin) at ERROR — about nine lines a second from a gateway (run with `kafka_down_45s`,
 * 2026-12-07: 395 error lines in 45 s). A warn or error line is written once per `repeatWindowMs` (30 s) for each
 * kind of line (its message with the numbers blanked, and its broker); the repeats in between go to debug, and the
 * next line written after the window says how many were held back (`repeated`). A new kind of line, or the same
 * after a quiet window, is written at once.
 */
import { createRequire } from 'node:module';
import { logLevel as KafkaLogLevel, type LogEntry as KafkaLogEntry } from 'kafkajs';
import { RepeatGate, type Logger } from '@wattsplit/wire';

/** Messages of kafkajs's protocol errors that its retrier retries (kafkajs/src/protocol/error.js). */
export const RETRIABLE_PROTOCOL_MESSAGES: ReadonlySet<string> = messagesOf((e) => e.retriable === true);

/** Messages of the protocol errors after which kafkajs's consumer re-joins its group (kafkajs/src/consumer/runner.js). */
export const REJOIN_PROTOCOL_MESSAGES: ReadonlySet<string> = messagesOf((e) => ['REBALANCE_IN_PROGRESS', 'ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID'].includes(e.type ?? ''));

/** The messages of kafkajs's protocol error table (kafkajs/src/protocol/error.js) whose entry `which` picks; none if it cannot be loaded. */
function messagesOf(which: (e: { type?: string; retriable?: boolean }) => boolean): Set<string> {
  try {
    const require = createRequire(import.meta.url);
    const table = (require('kafkajs/src/protocol/error.js') as { errorCodes?: { type?: string; message?: string; retriable?: boolean }[] }).errorCodes ?? [];
    return new Set(table.filter((e) => which(e) && typeof e.message === 'string').map((e) => e.message!));
  } catch {
    return new Set();
  }
}

/** How often one kind of kafkajs warn or error line is written (kafkajsLogCreator's `repeatWindowMs`). */
export const KAFKAJS_REPEAT_WINDOW_MS = 30_000;

/**
 * kafkajs `logCreator` writing into `log`. Warn and error lines of one kind (the message with its numbers blanked,
 * and the broker) are written at most once per `repeatWindowMs`; the others go to debug, and the next one written
 * carries `repeated`: how many were held back since the last.
 */
export function kafkajsLogCreator(log: Logger, opts: { repeatWindowMs?: number; now?: () => number } = {}) {
  const repeats = new RepeatGate(opts.repeatWindowMs ?? KAFKAJS_REPEAT_WINDOW_MS, opts.now ?? Date.now);
  const gate = (message: string, rec: Record<string, unknown>, level: 'warn' | 'error'): void =>
    repeats.write(log, level, `${message.replace(/\d+/g, '#')}\u0000${typeof rec.broker === 'string' ? rec.broker : ''}`, rec, `kafkajs: ${message}`);
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
          } else if (message.startsWith('Response ') && typeof rec.error === 'string' && REJOIN_PROTOCOL_MESSAGES.has(rec.error)) {
            log.debug({ ...rec, handledBy: 'group rejoin' }, `kafkajs: ${message}`);
          } else if (message.startsWith('Response CreateTopics(')) {
            log.debug({ ...rec, handledBy: 'admin client or bus' }, `kafkajs: ${message}`);
          } else if (message.startsWith('The coordinator is not aware of this member')) {
            gate(message, rec, 'warn');
          } else gate(message, rec, 'error');
          break;
        case KafkaLogLevel.WARN:
          // Retries are bounded on purpose (send() must be able to answer "retryable").
          if (message.startsWith('Limiting retries for the idempotent producer')) log.debug(rec, `kafkajs: ${message}`);
          else if (message.startsWith('The group is rebalancing, re-joining')) log.info(rec, `kafkajs: ${message}`);
          else gate(message, rec, 'warn');
          break;
        case KafkaLogLevel.INFO:
        case KafkaLogLevel.DEBUG:
        case KafkaLogLevel.NOTHING:
          log.debug(rec, `kafkajs: ${message}`);
          break;
      }
    };
}

/**
 * Project errors: a stable code from one const list, a `retriable` flag and a cause.
 * Bad input names the field and the value; callers log `err.message`, never a stack, for input errors.
 */
export const ERROR_CODES = [
  // wire / validation
  'FRAME_DECODE_FAILED',
  'FRAME_INVALID_FIELD',
  'FRAME_UNKNOWN_HOST',
  'FRAME_AUTH_FAILED',
  'FRAME_DUPLICATE_SEQ',
  'FRAME_OUT_OF_ORDER',
  'FRAME_CLOCK_SKEW',
  'COUNTER_WENT_BACKWARDS',
  'COUNTER_RESET',
  'COUNTER_IMPLAUSIBLE_DELTA',
  'VM_VANISHED',
  // sensors / platform
  'SENSOR_UNAVAILABLE',
  'SENSOR_PERMISSION_DENIED',
  'SENSOR_READ_FAILED',
  'CONFIG_INVALID',
  // transports and stores
  'TRANSPORT_UNAVAILABLE',
  'TRANSPORT_TIMEOUT',
  'TRANSPORT_BACKPRESSURE',
  'STORE_UNAVAILABLE',
  'STORE_QUERY_FAILED',
  'SPOOL_FULL',
  'SPOOL_CORRUPT',
  // models
  'MODEL_NOT_TRAINED',
  'MODEL_TRAINING_FAILED',
  'INTERNAL',
  // recorded traces
  'TRACE_INVALID',
  // store
  'STORE_INVALID_INPUT',
  // bus (Kafka): the broker refused the messages for good (too large, bad topic, not authorised)
  'TRANSPORT_REJECTED',
  // attribution: frames missing between two accepted frames (the interval spans the gap)
  'FRAME_SEQ_GAP',
  // capping: a power-cap plan request names a host/VM/field with an impossible value
  'CAP_INPUT_INVALID',
  // attribution: a new boot id reused a seq at or below the host's last one (it would overwrite billed rows)
  'FRAME_SEQ_REUSED',
  // attribution: an agent restarted on the same host boot (the interval across the restart is billed)
  'AGENT_RESTARTED',
  // attribution: a frame's wall clock was far from the gateway's time (1970, 2100): dated by the gateway's
  'FRAME_CLOCK_IMPLAUSIBLE',
  // models: a persisted learner state (learner_state row) is not valid JSON of the expected shape and version
  'LEARNER_STATE_INVALID',
  // attribution: a second agent (another boot) sends for a host whose agent is still sending
  'FRAME_HOST_CONFLICT',
  // capping: an actuator (virsh, cpufreq) refused or failed a step of a power-cap plan
  'CAP_ACTION_FAILED',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface WattsplitErrorOptions {
  retriable?: boolean;
  cause?: unknown;
  /** Structured context: which host, file, field, value. Logged as fields. */
  details?: Record<string, unknown>;
}

export class WattsplitError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, opts: WattsplitErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'WattsplitError';
    this.code = code;
    this.retriable = opts.retriable ?? false;
    this.details = opts.details ?? {};
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, retriable: this.retriable, ...this.details };
  }
}

export function isWattsplitError(e: unknown, code?: ErrorCode): e is WattsplitError {
  return e instanceof WattsplitError && (code === undefined || e.code === code);
}

/** Turns anything thrown into a WattsplitError; Node system errors keep their errno code in details. */
export function normaliseError(e: unknown, fallback: ErrorCode = 'INTERNAL', retriable = false): WattsplitError {
  if (e instanceof WattsplitError) return e;
  if (e instanceof Error) {
    const sys = (e as NodeJS.ErrnoException).code;
    return new WattsplitError(fallback, e.message, { cause: e, retriable, details: sys ? { errno: sys } : {} });
  }
  return new WattsplitError(fallback, String(e), { retriable });
}

const reportedErrors = new WeakSet<object>();

/**
 * Marks an error as logged, at warn or error, by the layer that met it (or held back there by a repeat gate
 * because the same failure was logged moments ago). The layers it passes through on its way up — the collector's
 * pipeline, the bus that redelivers the batch — then log it at debug: one failure, one warning (an audit counted
 * three for the first failed ClickHouse write: the store, the pipeline and the bus). Returns the error.
 */
export function markReported<E>(e: E): E {
  if (typeof e === 'object' && e !== null) reportedErrors.add(e);
  return e;
}

/** Whether `markReported` was called on this error. */
export function wasReported(e: unknown): boolean {
  return typeof e === 'object' && e !== null && reportedErrors.has(e);
}

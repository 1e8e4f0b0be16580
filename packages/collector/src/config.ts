/**
 * What the collector is built from. Everything that does I/O is passed in (the bus, the store), so the
 * same module runs embedded (InProcessBus + ChdbStore) and in fleet mode (KafkaBus + ClickHouseServerStore).
 */
import type { CapAdvisor, CapWatchConfig } from './cap-watch.js';
import type { CollectorTrainingConfig } from './training-service.js';
import type { BillingInputs } from './views-api.js';
import type { AttributionMethod, IdleSplitPolicy, IntervalAlignerOptions, ReservedWeights, SourceName } from '@wattsplit/attribution';
import type { Store } from '@wattsplit/store';
import { WattsplitError, type Bus, type Logger } from '@wattsplit/wire';
import { ApiTokens, isLoopbackHost } from './api-auth.js';

/**
 * The HTTP side: REST API, dashboard, /metrics, /healthz. Binds 127.0.0.1 unless `host` says otherwise.
 * `tokens` turns on bearer-token authentication (api-auth.ts); without tokens every caller is admin, which
 * validateCollectorConfig refuses on a non-loopback host unless `allowUnauthenticated` is set.
 */
export interface CollectorHttpConfig {
  /** port 0 = any free port. */
  port: number;
  /** Default 127.0.0.1. */
  host?: string;
  tokens?: ApiTokens;
  /** Serve without tokens on a non-loopback host (anyone who reaches it reads every bill). */
  allowUnauthenticated?: boolean;
  /** HTTPS with TLS 1.2+ ECDHE AEAD suites only (collector-module.ts); PEM text or buffers. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Tariff, PUE, grid intensity and host regions the API's bills, carbon and fairness views use (views-api.ts). */
  billing?: BillingInputs;
}

export interface CollectorConfig {
  bus: Bus;
  store: Store;
  /** Extra methods (learned models); "cpu_share" always runs first and is the fallback. */
  methods?: readonly AttributionMethod[];
  /** Idle/static split policy. Default 'reserved'. */
  policy?: IdleSplitPolicy;
  reservedWeights?: ReservedWeights;
  /**
   * Static power per source (W) used until learned; learned from the host's own intervals unless learn=false.
   * `refreshEvery`: intervals between two computations of a host's learned estimate (default 10; 1 = every
   * interval; static-power-learner.ts).
   */
  staticPower?: { fallbackWatts?: Partial<Record<SourceName, number>>; learn?: boolean; minSamples?: number; refreshEvery?: number };
  aligner?: IntervalAlignerOptions;
  /**
   * Learned models: the additive_model method, applied with the versions stored in the store's model
   * tables (every replica the same), and trained by this collector per hardware class unless
   * `training.enabled` is false (training-service.ts). Absent: cpu_share (and `methods`) only.
   */
  models?: { training?: CollectorTrainingConfig };
  /** How often each host's learner state (static power, GPU signatures) is saved to the store, seconds. Default 30; also saved at shutdown. */
  learnerStateSaveIntervalS?: number;
  /**
   * How far a frame's wall clock may be from the time the gateway produced it (the bus timestamp) before
   * the frame is dated by that timestamp instead (anomaly FRAME_CLOCK_IMPLAUSIBLE): ahead by at most
   * `maxAheadS` (default 300), behind by at most `maxBehindS` (default 30 days: frames kept in an agent's
   * spool through an outage are legitimately late). A host whose clock says 1970 or 2100 is billed at
   * the time its energy arrived, never at those dates.
   */
  wallClock?: { maxAheadS?: number; maxBehindS?: number };
  /** Consumer group on TOPICS.telemetry. Default "wattsplit-collector". */
  groupId?: string;
  /**
   * Group commit of store writes across partitions: `maxInFlight` writes at once (default 1), at most
   * `maxItems` intervals per write (default 5000), at least `minIntervalMs` between the starts of two
   * writes (default 0; a ClickHouse server merges fewer, larger parts). See group-commit.ts.
   *
   * `linger` (default true; acts only with minIntervalMs > 0): after a partition's batch is stored and
   * published, its handler returns only shortly before the next write may start (that start less the
   * time the partitions' last batches took to process, × 1.5 + 25 ms), so the frames that arrive
   * meanwhile go into the next batch and that write instead of waiting for the one after it. Without it
   * a frame that arrives just after a handler returned waits about two write cycles. See
   * TelemetryPipeline.linger.
   */
  storeWrites?: { maxInFlight?: number; maxItems?: number; minIntervalMs?: number; linger?: boolean };
  /**
   * Restart checkpoints (each host's last frame, saved to the store so a restarted collector attributes the
   * interval spanning the restart) and offset commits, at most every `everyMs` per partition. On a bus that
   * redelivers (Kafka, `Bus.redelivers`) the default is 5 000: in between, batches are stored and handled
   * with `{ commit: false }`, so a restart or a rebalance delivers the frames since the last save again, the
   * stored ones are checked against the store and skipped, and the interval after them is attributed from
   * them. One whole frame per host per write was ≈ 30 % of the bytes sent to ClickHouse (docs/fleet.md).
   * 0: save and commit with every batch (the only setting on a bus that does not redeliver, where the
   * messages end with the process: the in-process bus). 0–600 000 ms.
   */
  checkpoints?: { everyMs?: number };
  /** Publish AttributionBatch protobufs to TOPICS.attribution. Default true. */
  publishAttributions?: boolean;
  /** The live power-cap watch (cap-watch.ts): caps, and the advisor's math (the app passes @wattsplit/capping). Off unless set. */
  capWatch?: { config: CapWatchConfig; advisor: CapAdvisor };
  logger?: Logger;
  /** REST API + dashboard + /metrics; off unless set. */
  http?: CollectorHttpConfig;
}

export const DEFAULT_GROUP_ID = 'wattsplit-collector';

/** checkpoints.everyMs's default on a bus that redelivers (Kafka). */
export const DEFAULT_CHECKPOINT_EVERY_MS = 5_000;

const POLICIES: readonly IdleSplitPolicy[] = ['reserved', 'equal', 'unallocated'];

/** Checks the parts of the config that are plain values; names the field and value. */
export function validateCollectorConfig(c: CollectorConfig): void {
  const bad = (field: string, value: unknown, why: string) =>
    new WattsplitError('CONFIG_INVALID', `collector config ${field}=${JSON.stringify(value)} ${why}`, { details: { field, value } });
  if (!c.bus || typeof c.bus.subscribe !== 'function') throw bad('bus', typeof c.bus, 'must be a Bus (InProcessBus, KafkaBus)');
  if (!c.store || typeof c.store.writeInterval !== 'function') throw bad('store', typeof c.store, 'must be a Store (ChdbStore, ClickHouseServerStore)');
  if (c.policy !== undefined && !POLICIES.includes(c.policy)) throw bad('policy', c.policy, `must be one of ${POLICIES.join(', ')}`);
  const names = new Set<string>(['cpu_share']);
  for (const [i, m] of (c.methods ?? []).entries()) {
    if (!m || typeof m.attribute !== 'function' || !m.name) throw bad(`methods[${i}]`, m?.name ?? null, 'must be an AttributionMethod with a name');
    if (names.has(m.name)) throw bad(`methods[${i}].name`, m.name, 'is used twice (cpu_share is always present)');
    names.add(m.name);
  }
  for (const k of ['maxInFlight', 'maxItems'] as const) {
    const v = c.storeWrites?.[k];
    if (v !== undefined && !(Number.isInteger(v) && v >= 1)) throw bad(`storeWrites.${k}`, v, 'must be an integer ≥ 1');
  }
  const gap = c.storeWrites?.minIntervalMs;
  if (gap !== undefined && !(Number.isInteger(gap) && gap >= 0 && gap <= 60_000)) throw bad('storeWrites.minIntervalMs', gap, 'must be an integer 0-60000 (ms)');
  const linger = c.storeWrites?.linger;
  if (linger !== undefined && typeof linger !== 'boolean') throw bad('storeWrites.linger', linger, 'must be true or false');
  const cpEvery = c.checkpoints?.everyMs;
  if (cpEvery !== undefined && !(Number.isInteger(cpEvery) && cpEvery >= 0 && cpEvery <= 600_000)) throw bad('checkpoints.everyMs', cpEvery, 'must be an integer 0-600000 (ms)');
  if (c.http) validateCollectorHttpConfig(c.http);
  const every = c.staticPower?.refreshEvery;
  if (every !== undefined && !(Number.isInteger(every) && every >= 1 && every <= 900)) throw bad('staticPower.refreshEvery', every, 'must be an integer 1-900 (intervals)');
  for (const [k, v] of Object.entries(c.staticPower?.fallbackWatts ?? {})) {
    if (!(typeof v === 'number' && Number.isFinite(v) && v >= 0)) throw bad(`staticPower.fallbackWatts.${k}`, v, 'must be watts ≥ 0');
  }
}

/** The http part alone (the CLI checks it before connecting to anything). */
export function validateCollectorHttpConfig(h: CollectorHttpConfig): void {
  const bad = (field: string, value: unknown, why: string) =>
    new WattsplitError('CONFIG_INVALID', `collector config ${field}=${JSON.stringify(value)} ${why}`, { details: { field, value } });
  if (!(Number.isInteger(h.port) && h.port >= 0 && h.port < 65536)) throw bad('http.port', h.port, 'must be an integer port 0-65535');
  const host = h.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host.trim() === '') throw bad('http.host', h.host, 'must be an address to bind (127.0.0.1, ::1, 0.0.0.0, …)');
  if (h.tokens !== undefined && !(h.tokens instanceof ApiTokens)) throw bad('http.tokens', typeof h.tokens, 'must be ApiTokens (ApiTokens.load(file))');
  if (h.tls !== undefined && !(h.tls.cert && h.tls.key)) throw bad('http.tls', Object.keys(h.tls), 'needs both cert and key (PEM)');
  if (!h.tokens && !h.allowUnauthenticated && !isLoopbackHost(host)) {
    throw bad('http.host', host, 'is reachable from the network and no API tokens are set: give tokens (--api-tokens-file) or allow unauthenticated access explicitly (--allow-unauthenticated)');
  }
}

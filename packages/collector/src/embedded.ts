/**
 * The one-process collector the CLI demo uses: InProcessBus (unless one is given) + ChdbStore in a
 * wattsplit data directory (chDB under `<dataDir>/clickhouse`, as the CLI's --data-dir) + the Nest application. close() stops the pipeline, then the store, then a bus it created.
 */
import type { AttributionMethod, IdleSplitPolicy } from '@wattsplit/attribution';
import { ChdbStore, chdbDirOf, type Retention } from '@wattsplit/store';
import { InProcessBus, type Bus, type Logger } from '@wattsplit/wire';
import { createCollectorApp, type CollectorApp } from './collector-module.js';
import type { CollectorConfig } from './config.js';
import type { TelemetryPipeline } from './telemetry-pipeline.js';

export interface EmbeddedCollectorOptions {
  /** The wattsplit data directory (what `wattsplit … --data-dir` names); chDB lives in `<dataDir>/clickhouse`. */
  dataDir: string;
  bus?: Bus;
  methods?: readonly AttributionMethod[];
  policy?: IdleSplitPolicy;
  logger: Logger;
  /** Serve the REST API / dashboard / metrics (off by default; 127.0.0.1 unless http.host). */
  http?: CollectorConfig['http'];
  staticPower?: CollectorConfig['staticPower'];
  retention?: Partial<Retention>;
  /** Learned models applied from the store and trained by this collector (see CollectorConfig.models). */
  models?: CollectorConfig['models'];
  /** The live power-cap watch (see CollectorConfig.capWatch). */
  capWatch?: CollectorConfig['capWatch'];
  /** Store writes: group commit and chunks (see CollectorConfig.storeWrites). */
  storeWrites?: CollectorConfig['storeWrites'];
}

export interface EmbeddedCollector {
  app: CollectorApp['app'];
  pipeline: TelemetryPipeline;
  /** The model trainer when `models` was given. */
  training: CollectorApp['training'];
  store: ChdbStore;
  bus: Bus;
  url: string | undefined;
  close(): Promise<void>;
}

export async function startEmbeddedCollector(opts: EmbeddedCollectorOptions): Promise<EmbeddedCollector> {
  const ownBus = opts.bus === undefined;
  const bus = opts.bus ?? new InProcessBus({ logger: opts.logger });
  const store = new ChdbStore({ dataDir: chdbDirOf(opts.dataDir), logger: opts.logger, ...(opts.retention ? { retention: opts.retention } : {}) });
  let started: CollectorApp;
  try {
    started = await createCollectorApp({
      bus,
      store,
      logger: opts.logger,
      ...(opts.methods ? { methods: opts.methods } : {}),
      ...(opts.policy ? { policy: opts.policy } : {}),
      ...(opts.http ? { http: opts.http } : {}),
      ...(opts.staticPower ? { staticPower: opts.staticPower } : {}),
      ...(opts.models ? { models: opts.models } : {}),
      ...(opts.capWatch ? { capWatch: opts.capWatch } : {}),
      ...(opts.storeWrites ? { storeWrites: opts.storeWrites } : {}),
    });
  } catch (e) {
    await store.close();
    if (ownBus) await bus.close();
    throw e;
  }
  let closed = false;
  return {
    app: started.app,
    pipeline: started.pipeline,
    training: started.training,
    store,
    bus,
    url: started.url,
    close: async () => {
      if (closed) return;
      closed = true;
      await started.close();
      await store.close();
      if (ownBus) await bus.close();
    },
  };
}

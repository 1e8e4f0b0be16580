/**
 * CollectorModule.forRoot(config): the collector as a Nest dynamic module. The bus and the store are
 * given (embedded: InProcessBus + ChdbStore; fleet: KafkaBus + ClickHouseServerStore); the module inits
 * the store (migrations), builds the method list (cpu_share first) and starts the TelemetryPipeline when
 * the application boots. Controllers (REST, /metrics, dashboard) are mounted only with config.http,
 * together with the global ApiAuthGuard (api-guard.ts) that checks every request's token.
 */
import 'reflect-metadata';
import type { Server } from 'node:http';
import { Module, type DynamicModule, type INestApplication, type INestApplicationContext } from '@nestjs/common';
import { APP_GUARD, NestFactory } from '@nestjs/core';
import { CpuShareMethod, type AttributionMethod } from '@wattsplit/attribution';
import { AdditiveModelMethod } from '@wattsplit/models';
import { ModelStore, type Store } from '@wattsplit/store';
import { silentLogger, type Logger } from '@wattsplit/wire';
import { isLoopbackHost } from './api-auth.js';
import { ApiAuthGuard, type ApiAuth } from './api-guard.js';
import { API_CONTROLLERS } from './api-server.js';
import { CollectorMetrics } from './collector-metrics.js';
import { validateCollectorConfig, type CollectorConfig, type CollectorHttpConfig } from './config.js';
import { NestLoggerAdapter } from './nest-logger.js';
import { ModelCatalog } from './model-catalog.js';
import { TelemetryPipeline } from './telemetry-pipeline.js';
import { TrainingService } from './training-service.js';
import { BILLING_INPUTS } from './views-api.js';
import { API_AUTH, BUS, COLLECTOR_CONFIG, LOGGER, METHODS, MODEL_CATALOG, STORE } from './tokens.js';

/**
 * HTTPS: TLS 1.2 and 1.3 only; on 1.2 only ECDHE key exchange with AEAD ciphers (GCM, ChaCha20-Poly1305),
 * so every session has forward secrecy and no CBC/RSA-kex/SHA-1 suite can be negotiated.
 */
export const COLLECTOR_TLS_CIPHERS = [
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_GCM_SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
].join(':');

@Module({})
export class CollectorModule {
  static forRoot(config: CollectorConfig): DynamicModule {
    validateCollectorConfig(config);
    return {
      module: CollectorModule,
      controllers: config.http ? API_CONTROLLERS : [],
      providers: [
        ...(config.http
          ? [
              { provide: API_AUTH, useValue: { tokens: config.http.tokens } satisfies ApiAuth },
              { provide: APP_GUARD, useClass: ApiAuthGuard },
              { provide: BILLING_INPUTS, useValue: config.http.billing ?? {} },
            ]
          : []),
        { provide: COLLECTOR_CONFIG, useValue: config },
        { provide: LOGGER, useValue: config.logger ?? silentLogger },
        { provide: BUS, useValue: config.bus },
        {
          provide: STORE,
          useFactory: async (): Promise<Store> => {
            await config.store.init();
            return config.store;
          },
        },
        {
          provide: MODEL_CATALOG,
          inject: [STORE],
          useFactory: (store: Store): ModelCatalog => new ModelCatalog(new ModelStore(store), config.logger ?? silentLogger),
        },
        {
          provide: METHODS,
          inject: [MODEL_CATALOG],
          useFactory: (catalog: ModelCatalog): AttributionMethod[] => {
            const cpu = new CpuShareMethod();
            return [cpu, ...(config.models ? [new AdditiveModelMethod({ models: catalog, fallback: cpu })] : []), ...(config.methods ?? [])];
          },
        },
        CollectorMetrics,
        ...(config.models ? [TrainingService] : []),
        TelemetryPipeline,
      ],
      exports: [TelemetryPipeline, CollectorMetrics, STORE, BUS, MODEL_CATALOG, ...(config.models ? [TrainingService] : [])],
    };
  }
}

export interface CollectorApp {
  app: INestApplicationContext;
  pipeline: TelemetryPipeline;
  /** The model trainer (config.models set), else undefined. */
  training: TrainingService | undefined;
  /** http(s)://HOST:PORT when config.http is set. */
  url: string | undefined;
  close(): Promise<void>;
}

/**
 * Boots the collector: an HTTP application (platform-express) when config.http is set, else a bare
 * application context. Resolves once the store is migrated and the pipeline is consuming.
 */
export async function createCollectorApp(config: CollectorConfig): Promise<CollectorApp> {
  const logger = new NestLoggerAdapter(config.logger ?? silentLogger);
  const mod = CollectorModule.forRoot(config);
  const http = config.http;
  if (http) {
    const { app, url } = await listenHttp(mod, http, config.logger ?? silentLogger);
    return { app, pipeline: app.get(TelemetryPipeline), training: config.models ? app.get(TrainingService) : undefined, url, close: () => app.close() };
  }
  const app = await NestFactory.createApplicationContext(mod, { logger, abortOnError: false });
  try {
    await app.init();
  } catch (e) {
    // what started before the failure (the training worker, the pipeline's producer) must not keep the process alive
    await app.close().catch(() => undefined);
    throw e;
  }
  return { app, pipeline: app.get(TelemetryPipeline), training: config.models ? app.get(TrainingService) : undefined, url: undefined, close: () => app.close() };
}

/** Creates the Nest HTTP application of a module and listens as `http` says (TLS, host, port); logs the URL and open-bind warnings. */
export async function listenHttp(mod: DynamicModule, http: CollectorHttpConfig, log0: Logger): Promise<{ app: INestApplication; url: string | undefined }> {
  const tls = http.tls;
  const httpsOptions = tls ? { cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' as const, ciphers: COLLECTOR_TLS_CIPHERS, honorCipherOrder: true } : undefined;
  const app = await NestFactory.create(mod, { logger: new NestLoggerAdapter(log0), abortOnError: false, ...(httpsOptions ? { httpsOptions } : {}) });
  const host = http.host ?? '127.0.0.1';
  try {
    await app.listen(http.port, host);
  } catch (e) {
    // a failed start (the port taken, a module's bootstrap refused) closes what it had started
    await app.close().catch(() => undefined);
    throw e;
  }
  const addr = (app.getHttpServer() as Server).address();
  const scheme = tls ? 'https' : 'http';
  const url = addr && typeof addr === 'object' ? `${scheme}://${addr.address.includes(':') ? `[${addr.address}]` : addr.address}:${addr.port}` : undefined;
  const log = log0.child({ component: 'http' });
  const auth = http.tokens ? `bearer tokens (${http.tokens.size})` : 'none';
  log.info({ url, auth, tls: Boolean(tls) }, `HTTP API on ${url ?? host}, authentication: ${auth}`);
  if (!isLoopbackHost(host)) {
    if (!http.tokens) log.warn({ host }, `HTTP API on ${host} without authentication (allowUnauthenticated): anyone who reaches it reads every tenant's bill`);
    else if (!tls) log.warn({ host }, `HTTP API on ${host} over plain HTTP: bearer tokens cross the network in clear; use TLS (--tls-cert/--tls-key) or a TLS proxy`);
  }
  return { app, url };
}

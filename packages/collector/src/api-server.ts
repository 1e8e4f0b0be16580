/**
 * The collector's REST API, dashboard and /metrics over any store, with no bus: `wattsplit serve` and
 * `wattsplit demo --serve`. Nothing is consumed or trained; the store is migrated (so an old data
 * directory opens) and read. The same controllers and the same access guard as the collector
 * (CollectorModule mounts API_CONTROLLERS too), so both answer alike.
 */
import 'reflect-metadata';
import { Module, type DynamicModule, type INestApplication } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { CpuShareMethod, type AttributionMethod } from '@wattsplit/attribution';
import { AdditiveModelMethod } from '@wattsplit/models';
import { ModelStore, type Store } from '@wattsplit/store';
import { silentLogger, type Logger } from '@wattsplit/wire';
import { ApiAuthGuard, type ApiAuth } from './api-guard.js';
import { DashboardController, EnergyController, HealthController, MetricsController, ModelsController } from './api-controllers.js';
import { CollectorMetrics } from './collector-metrics.js';
import { validateCollectorHttpConfig, type CollectorHttpConfig } from './config.js';
import { listenHttp } from './collector-module.js';
import { CAP_STATUSES, CapsController, type CapStatusSource } from './caps-api.js';
import { DashboardPageController } from './dashboard-page.js';
import { ModelCatalog } from './model-catalog.js';
import { OpenApiController } from './openapi.js';
import { BILLING_INPUTS, ViewsController } from './views-api.js';
import { API_AUTH, LOGGER, METHODS, MODEL_CATALOG, STORE } from './tokens.js';

/** Every HTTP controller: the collector and `serve` mount the same list. */
export const API_CONTROLLERS = [HealthController, MetricsController, EnergyController, ModelsController, ViewsController, CapsController, DashboardPageController, OpenApiController, DashboardController];

export interface ApiServerOptions {
  store: Store;
  /** The store is already initialised by its owner (an embedded collector in this process): do not init it again. */
  storeReady?: boolean;
  http: CollectorHttpConfig;
  logger?: Logger;
  /** A cap watch running in this process (demo --caps --serve): GET /api/v1/caps serves its statuses. */
  capWatch?: CapStatusSource;
}

@Module({})
export class ApiServerModule {
  static forRoot(opts: ApiServerOptions): DynamicModule {
    validateCollectorHttpConfig(opts.http);
    const logger = opts.logger ?? silentLogger;
    return {
      module: ApiServerModule,
      controllers: API_CONTROLLERS,
      providers: [
        { provide: API_AUTH, useValue: { tokens: opts.http.tokens } satisfies ApiAuth },
        { provide: APP_GUARD, useClass: ApiAuthGuard },
        { provide: BILLING_INPUTS, useValue: opts.http.billing ?? {} },
        { provide: LOGGER, useValue: logger },
        ...(opts.capWatch ? [{ provide: CAP_STATUSES, useValue: opts.capWatch }] : []),
        {
          provide: STORE,
          useFactory: async (): Promise<Store> => {
            if (!opts.storeReady) await opts.store.init();
            return opts.store;
          },
        },
        { provide: MODEL_CATALOG, inject: [STORE], useFactory: (store: Store): ModelCatalog => new ModelCatalog(new ModelStore(store), logger) },
        {
          // The methods whose attributions the API reads (their names validate `method=`); never run here.
          provide: METHODS,
          inject: [MODEL_CATALOG],
          useFactory: (catalog: ModelCatalog): AttributionMethod[] => {
            const cpu = new CpuShareMethod();
            return [cpu, new AdditiveModelMethod({ models: catalog, fallback: cpu })];
          },
        },
        CollectorMetrics,
      ],
    };
  }
}

export interface ApiServer {
  app: INestApplication;
  url: string | undefined;
  close(): Promise<void>;
}

/** Serves the API over `store` (which it inits; closing the server does not close the store). */
export async function createApiServer(opts: ApiServerOptions): Promise<ApiServer> {
  const { app, url } = await listenHttp(ApiServerModule.forRoot(opts), opts.http, opts.logger ?? silentLogger);
  return { app, url, close: () => app.close() };
}

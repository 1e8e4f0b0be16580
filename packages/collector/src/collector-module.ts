/**
 * CollectorModule.forRoot(config): the collector as a Nest dynamic module. The bus and the store are
 * given (embedded: InProcessBus + ChdbStore; fleet: KafkaBus + ClickHouseServerStore); the module inits
 * the store (migrations), builds the method list (cpu_share first) and starts the TelemetryPipeline when
 * the application boots. Controllers (REST, /metrics, dashboard) are mounted only with config.http.
 */
import 'reflect-metadata';
import type { Server } from 'node:http';
import { Module, type DynamicModule, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { CpuShareMethod, type AttributionMethod } from '@wattsplit/attribution';
import type { Store } from '@wattsplit/store';
import { silentLogger } from '@wattsplit/wire';
import { DashboardController, EnergyController, HealthController, MetricsController } from './api-controllers.js';
import { CollectorMetrics } from './collector-metrics.js';
import { validateCollectorConfig, type CollectorConfig } from './config.js';
import { NestLoggerAdapter } from './nest-logger.js';
import { TelemetryPipeline } from './telemetry-pipeline.js';
import { BUS, COLLECTOR_CONFIG, LOGGER, METHODS, STORE } from './tokens.js';

@Module({})
export class CollectorModule {
  static forRoot(config: CollectorConfig): DynamicModule {
    validateCollectorConfig(config);
    return {
      module: CollectorModule,
      controllers: config.http ? [HealthController, MetricsController, EnergyController, DashboardController] : [],
      providers: [
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
        { provide: METHODS, useFactory: (): AttributionMethod[] => [new CpuShareMethod(), ...(config.methods ?? [])] },
        CollectorMetrics,
        TelemetryPipeline,
      ],
      exports: [TelemetryPipeline, CollectorMetrics, STORE, BUS],
    };
  }
}

export interface CollectorApp {
  app: INestApplicationContext;
  pipeline: TelemetryPipeline;
  /** http://127.0.0.1:PORT when config.http is set. */
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
  if (config.http) {
    const app = await NestFactory.create(mod, { logger, abortOnError: false });
    await app.listen(config.http.port, config.http.host ?? '127.0.0.1');
    const addr = (app.getHttpServer() as Server).address();
    const url = addr && typeof addr === 'object' ? `http://${addr.address.includes(':') ? `[${addr.address}]` : addr.address}:${addr.port}` : undefined;
    return { app, pipeline: app.get(TelemetryPipeline), url, close: () => app.close() };
  }
  const app = await NestFactory.createApplicationContext(mod, { logger, abortOnError: false });
  await app.init();
  return { app, pipeline: app.get(TelemetryPipeline), url: undefined, close: () => app.close() };
}

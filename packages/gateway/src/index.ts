export * from './host-auth.js';
export * from './host-history.js';
export * from './metrics.js';
export * from './ingest-pipeline.js';
export * from './safe-ingest-service.js';
export * from './gateway-server.js';
export * from './health-service.js';
export * from './metrics-http.js';

/**
 * GET /api/openapi.json: the REST API described as OpenAPI 3.0 (written by hand beside the controllers;
 * the openapi test checks that every route Nest mounts is in it and every path in it is mounted).
 */
import { Controller, Get } from '@nestjs/common';
import { Access } from './api-guard.js';

const time = (name: 'from' | 'to') => ({
  name,
  in: 'query',
  required: false,
  description: `${name === 'from' ? 'Start' : 'End'} of the range: unix seconds (ms/µs/ns by magnitude) or ISO 8601. Default: ${name === 'to' ? 'the newest stored interval (views) or now' : 'a view-specific span before `to`'}.`,
  schema: { type: 'string' },
});
const method = { name: 'method', in: 'query', required: false, description: 'Attribution method (default additive_model when the store has it, else cpu_share). Unknown: 400 naming it.', schema: { type: 'string', example: 'additive_model' } };
const step = { name: 'step', in: 'query', required: false, description: 'Bucket in seconds (default: about 120 points over the range; at most 5000 points).', schema: { type: 'integer', minimum: 1 } };
const pathParam = (name: string, description: string) => ({ name, in: 'path', required: true, description, schema: { type: 'string' } });

const err = { $ref: '#/components/schemas/Error' };
const responses = (ok: string, okSchema: object = { type: 'object' }, contentType = 'application/json', notFound?: string) => ({
  200: { description: ok, content: { [contentType]: { schema: okSchema } } },
  400: { description: 'A bad parameter: the body names it (`parameter`, `value`).', content: { 'application/json': { schema: err } } },
  401: { description: 'No token or an unknown token.', content: { 'application/json': { schema: err } } },
  403: { description: "The token's scope may not read this.", content: { 'application/json': { schema: err } } },
  ...(notFound ? { 404: { description: notFound, content: { 'application/json': { schema: err } } } } : {}),
  503: { description: 'The store is unavailable (retry).', content: { 'application/json': { schema: err } } },
});

const get = (summary: string, parameters: object[], ok: string, extra: { scope: string; notFound?: string; contentType?: string; schema?: object }) => ({
  get: { summary, description: `Scope: ${extra.scope}.`, parameters, responses: responses(ok, extra.schema, extra.contentType, extra.notFound) },
});

export const OPENAPI = {
  openapi: '3.0.3',
  info: { title: 'wattsplit REST API', version: '1', description: 'Per-VM energy attribution: bills, carbon, fairness, models, fleet views. Served by the collector, `wattsplit serve` and `wattsplit demo --serve`.' },
  components: {
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'A token from --api-tokens-file (scopes admin, metrics, tenant:<name>). Absent: the API is open (loopback only).' } },
    schemas: {
      Error: { type: 'object', properties: { statusCode: { type: 'integer' }, code: { type: 'string' }, message: { type: 'string' }, parameter: { type: 'string' }, value: {} }, required: ['statusCode', 'message'] },
      BillAmounts: {
        type: 'object',
        properties: { joules: { type: 'number' }, kwh: { type: 'number' }, facility_kwh: { type: 'number' }, cost: { type: 'number', nullable: true }, co2e_g: { type: 'number', nullable: true } },
      },
    },
  },
  security: [{ bearer: [] }],
  paths: {
    '/healthz': { get: { summary: 'Liveness and mode (collector or serve)', security: [], responses: { 200: { description: 'ok' } } } },
    '/metrics': get('Prometheus text exposition', [], 'metrics', { scope: 'admin or metrics', contentType: 'text/plain' }),
    '/': get('Summary table of energy per tenant (HTML, no script)', [time('from'), time('to'), method], 'HTML', { scope: 'admin or tenant:<name> (own row)', contentType: 'text/html' }),
    '/dashboard': get('The charted dashboard (HTML; views load from this API)', [], 'HTML', { scope: 'admin or tenant:<name>', contentType: 'text/html' }),
    '/assets/uplot.js': { get: { summary: 'The bundled charting library (uPlot)', security: [], responses: { 200: { description: 'JavaScript' } } } },
    '/assets/uplot.css': { get: { summary: 'uPlot styles', security: [], responses: { 200: { description: 'CSS' } } } },
    '/assets/dashboard.js': { get: { summary: 'The dashboard script', security: [], responses: { 200: { description: 'JavaScript' } } } },
    '/api/openapi.json': { get: { summary: 'This document', security: [], responses: { 200: { description: 'OpenAPI 3.0' } } } },
    '/api/models': get('Models per hardware class: version in force, age, residual, drift, cold-start share', [], 'models', { scope: 'admin or metrics' }),
    '/api/models/{hardwareClass}': get('One class: a version, its artefact, every activation', [pathParam('hardwareClass', 'Hardware class'), { name: 'version', in: 'query', required: false, schema: { type: 'integer', minimum: 1 } }], 'model', {
      scope: 'admin or metrics',
      notFound: 'Unknown class or version (named).',
    }),
    '/api/v1/vms/{uuid}/energy': get("A VM's energy per hour and source", [pathParam('uuid', 'VM UUID'), time('from'), time('to'), method], 'hours', { scope: 'admin or its tenant' }),
    '/api/v1/tenants/{tenant}/bill': get("A tenant's energy per VM and source (joules)", [pathParam('tenant', 'Tenant'), time('from'), time('to'), method], 'bill', { scope: 'admin or tenant:<tenant>' }),
    '/api/v1/tenants/{tenant}/statement': get("A tenant's printable statement (HTML): kWh, facility kWh, cost, gCO2e, per VM, vs cpu_share", [pathParam('tenant', 'Tenant'), time('from'), time('to'), method], 'HTML', {
      scope: 'admin or tenant:<tenant>',
      contentType: 'text/html',
      notFound: 'Unknown tenant (named).',
    }),
    '/api/v1/tenants': get('Tenants with VM energy', [], 'tenants', { scope: 'admin (all) or tenant:<name> (itself)' }),
    '/api/v1/tenants-energy': get('kWh per tenant per hour (rollups)', [time('from'), time('to'), method], 'series', { scope: 'admin or tenant:<name> (own series)' }),
    '/api/v1/bills': get('Bills (tariff, PUE, carbon as configured) with the cpu_share comparison', [time('from'), time('to'), method, { name: 'tenant', in: 'query', required: false, schema: { type: 'string' } }], 'BillReport', {
      scope: 'admin or tenant:<name> (own bill)',
      notFound: 'Unknown tenant (named).',
    }),
    '/api/v1/fairness': get('Learned method vs cpu_share per tenant, with the difference in kWh, money and gCO2e', [time('from'), time('to'), method], 'fairness', { scope: 'admin' }),
    '/api/v1/carbon': get('gCO2e per tenant and region (needs --intensity and --regions)', [time('from'), time('to'), method], 'carbon', { scope: 'admin or tenant:<name>' }),
    '/api/v1/hosts': get('Hosts: hardware class, newest interval', [], 'hosts', { scope: 'admin' }),
    '/api/v1/hosts/{host}/power': get('Attributed power of one host per step, by VM (stacked view)', [pathParam('host', 'Host id'), time('from'), time('to'), step, method], 'series', { scope: 'admin', notFound: 'Unknown host (named).' }),
    '/api/v1/fleet/power': get('Measured fleet power per step (RAPL, GPU, rest of wall) and now', [time('from'), time('to'), step], 'series', { scope: 'admin' }),
    '/api/v1/pipeline': get('Pipeline health: lag per host, anomalies by code, collector counters', [time('from'), time('to')], 'health', { scope: 'admin' }),
    '/api/v1/caps': get("The live power-cap watch's latest status per cap (--caps): power now, cap, forecast peak and crossing, the advisor's plan and its actions", [], 'caps', { scope: 'admin' }),
  },
} as const;

@Controller('api')
export class OpenApiController {
  @Get('openapi.json')
  @Access('open')
  openapi(): typeof OPENAPI {
    return OPENAPI;
  }
}

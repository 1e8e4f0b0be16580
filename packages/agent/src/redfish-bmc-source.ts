/**
 * RedfishBmcSource: whole-host power and energy from the BMC over Redfish (DMTF DSP0268).
 *
 * Schemas read:
 *   GET /redfish/v1/Chassis                       Members[]["@odata.id"]: the chassis (first one unless chassisId given)
 *   GET /redfish/v1/Chassis/<id>/EnvironmentMetrics (2020.4+)  EnergykWh.Reading (cumulative kWh), PowerWatts.Reading (W)
 *   GET /redfish/v1/Chassis/<id>/PowerSubsystem     (2020.4+, replaces Power; its presence marks the newer model)
 *   GET /redfish/v1/Chassis/<id>/Power              (deprecated, still the most common)  PowerControl[0].PowerConsumedWatts
 * The energy counter is used when present (converted kWh → J); otherwise only power is returned and the
 * BmcSampler integrates it, saying so. HTTPS with Basic auth from a credentials file; the BMC's
 * (usually self-signed) CA can be given as a PEM file; `insecureSkipVerify` exists for labs only.
 */
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { WattsplitError, type BmcReading, type BmcSource, type Logger } from '@wattsplit/wire';

export interface RedfishCredentials {
  username: string;
  password: string;
}

/** Reads a credentials file: JSON {"username": "...", "password": "..."} or one line "user:password". */
export function loadRedfishCredentials(file: string): RedfishCredentials {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw new WattsplitError('CONFIG_INVALID', `Redfish credentials file ${file} unreadable: ${(e as Error).message}`, { cause: e, details: { file } });
  }
  if (text.startsWith('{')) {
    let j: Partial<RedfishCredentials>;
    try {
      j = JSON.parse(text) as Partial<RedfishCredentials>;
    } catch (e) {
      throw new WattsplitError('CONFIG_INVALID', `Redfish credentials file ${file}: not valid JSON (${(e as Error).message})`, { details: { file } });
    }
    if (typeof j.username !== 'string' || typeof j.password !== 'string') {
      throw new WattsplitError('CONFIG_INVALID', `Redfish credentials file ${file}: needs string fields "username" and "password"`, { details: { file, field: typeof j.username !== 'string' ? 'username' : 'password' } });
    }
    return { username: j.username, password: j.password };
  }
  const i = text.indexOf(':');
  if (i <= 0) throw new WattsplitError('CONFIG_INVALID', `Redfish credentials file ${file}: expected "user:password" or JSON {"username","password"}`, { details: { file } });
  return { username: text.slice(0, i), password: text.slice(i + 1) };
}

export interface RedfishBmcSourceOptions {
  /** "https://bmc.example:443" */
  baseUrl: string;
  chassisId?: string;
  credentialsFile?: string;
  credentials?: RedfishCredentials;
  /** PEM of the BMC's CA (self-signed BMCs). */
  caFile?: string;
  insecureSkipVerify?: boolean;
  timeoutMs?: number;
  logger: Logger;
}

interface Plan {
  chassis: string;
  envMetrics: boolean;
  powerSubsystem: boolean;
  legacyPower: boolean;
}

export class RedfishBmcSource implements BmcSource {
  private plan: Plan | undefined;
  private readonly auth: string | undefined;
  private readonly agent: http.Agent | https.Agent;
  private readonly log: Logger;
  private readonly base: URL;

  constructor(private readonly opts: RedfishBmcSourceOptions) {
    try {
      this.base = new URL(opts.baseUrl);
    } catch {
      throw new WattsplitError('CONFIG_INVALID', `redfish url ${JSON.stringify(opts.baseUrl)} is not a URL`, { details: { field: 'redfish.url', value: opts.baseUrl } });
    }
    const cred = opts.credentials ?? (opts.credentialsFile ? loadRedfishCredentials(opts.credentialsFile) : undefined);
    this.auth = cred ? `Basic ${Buffer.from(`${cred.username}:${cred.password}`).toString('base64')}` : undefined;
    this.log = opts.logger.child({ source: 'redfish', bmc: this.base.host });
    if (this.base.protocol === 'https:') {
      let ca: Buffer | undefined;
      if (opts.caFile) {
        try {
          ca = readFileSync(opts.caFile);
        } catch (e) {
          throw new WattsplitError('CONFIG_INVALID', `Redfish CA file ${opts.caFile} unreadable: ${(e as Error).message}`, { details: { field: 'redfish.caFile', value: opts.caFile } });
        }
      }
      this.agent = new https.Agent({ keepAlive: true, maxSockets: 1, ...(ca ? { ca } : {}), rejectUnauthorized: !opts.insecureSkipVerify });
    } else {
      this.agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    }
  }

  /** GET a Redfish path; undefined on 404; throws with the URL and status otherwise. */
  private get(path: string): Promise<Record<string, unknown> | undefined> {
    const url = new URL(path, this.base);
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(url, { method: 'GET', agent: this.agent, headers: { accept: 'application/json', ...(this.auth ? { authorization: this.auth } : {}) }, timeout: this.opts.timeoutMs ?? 5000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode === 404) return resolve(undefined);
          if (res.statusCode === 401 || res.statusCode === 403) {
            return reject(new WattsplitError('SENSOR_PERMISSION_DENIED', `Redfish GET ${url.href}: HTTP ${res.statusCode}: check the credentials file`, { details: { url: url.href, status: res.statusCode } }));
          }
          if (!res.statusCode || res.statusCode >= 300) {
            return reject(new WattsplitError('SENSOR_READ_FAILED', `Redfish GET ${url.href}: HTTP ${res.statusCode ?? '?'}`, { retriable: true, details: { url: url.href, status: res.statusCode } }));
          }
          try {
            resolve(JSON.parse(body) as Record<string, unknown>);
          } catch (e) {
            reject(new WattsplitError('SENSOR_READ_FAILED', `Redfish GET ${url.href}: body is not JSON (${(e as Error).message})`, { details: { url: url.href } }));
          }
        });
      });
      req.on('timeout', () => req.destroy(new Error(`timed out after ${this.opts.timeoutMs ?? 5000} ms`)));
      req.on('error', (e) => reject(e instanceof WattsplitError ? e : new WattsplitError('SENSOR_READ_FAILED', `Redfish GET ${url.href} failed: ${e.message}`, { cause: e, retriable: true, details: { url: url.href } })));
      req.end();
    });
  }

  private async discover(): Promise<Plan> {
    let chassis: string;
    if (this.opts.chassisId) chassis = `/redfish/v1/Chassis/${this.opts.chassisId}`;
    else {
      const coll = await this.get('/redfish/v1/Chassis');
      const members = (coll?.Members ?? []) as { '@odata.id'?: string }[];
      const first = members[0]?.['@odata.id'];
      if (!first) throw new WattsplitError('SENSOR_UNAVAILABLE', `Redfish ${this.base.href}: /redfish/v1/Chassis lists no chassis`, { details: { url: this.base.href } });
      chassis = first.replace(/\/$/, '');
    }
    const [env, sub, legacy] = await Promise.all([this.get(`${chassis}/EnvironmentMetrics`), this.get(`${chassis}/PowerSubsystem`), this.get(`${chassis}/Power`)]);
    const plan: Plan = { chassis, envMetrics: env !== undefined, powerSubsystem: sub !== undefined, legacyPower: legacy !== undefined };
    if (!plan.envMetrics && !plan.legacyPower) throw new WattsplitError('SENSOR_UNAVAILABLE', `Redfish ${chassis}: neither EnvironmentMetrics nor Power is present`, { details: { chassis } });
    this.log.info({ ...plan }, `Redfish chassis ${chassis}: ${plan.envMetrics ? 'EnvironmentMetrics' : 'Power'}${plan.powerSubsystem ? ' (PowerSubsystem model)' : ''}`);
    return plan;
  }

  async read(): Promise<BmcReading> {
    this.plan ??= await this.discover();
    const p = this.plan;
    let energyJoules: number | undefined;
    let powerWatts: number | undefined;
    if (p.envMetrics) {
      const env = await this.get(`${p.chassis}/EnvironmentMetrics`);
      const kwh = (env?.EnergykWh as { Reading?: unknown } | undefined)?.Reading;
      if (typeof kwh === 'number' && Number.isFinite(kwh) && kwh >= 0) energyJoules = kwh * 3.6e6;
      const w = (env?.PowerWatts as { Reading?: unknown } | undefined)?.Reading;
      if (typeof w === 'number' && Number.isFinite(w)) powerWatts = w;
    }
    if (powerWatts === undefined && p.legacyPower) {
      const pw = await this.get(`${p.chassis}/Power`);
      const pc = (pw?.PowerControl as { PowerConsumedWatts?: unknown }[] | undefined)?.[0];
      const w = pc?.PowerConsumedWatts;
      if (typeof w !== 'number' || !Number.isFinite(w)) {
        throw new WattsplitError('SENSOR_READ_FAILED', `Redfish ${p.chassis}/Power: PowerControl[0].PowerConsumedWatts is ${JSON.stringify(w ?? null)}, not a number`, { details: { field: 'PowerControl[0].PowerConsumedWatts', value: w } });
      }
      powerWatts = w;
    }
    if (powerWatts === undefined) throw new WattsplitError('SENSOR_READ_FAILED', `Redfish ${p.chassis}: no power reading (EnvironmentMetrics.PowerWatts.Reading missing and no Power resource)`, { details: { chassis: p.chassis } });
    return { energyJoules, powerWatts };
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }
}

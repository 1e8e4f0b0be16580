/**
 * Who may read what over the collector's HTTP API. Bearer tokens from a tokens file, each mapped to a
 * scope:
 *   admin          everything (every tenant's bills and VMs, the whole dashboard, /metrics)
 *   metrics        GET /metrics (a Prometheus scrape: its per-tenant series are bill data) and the models'
 *                  metadata (GET /api/models…); no bill or VM route
 *   tenant:<name>  that tenant's bill, its VMs' energy and its row of the dashboard; nothing else
 * `/healthz` needs no token. Without a tokens file the API is open (every caller is admin); the module
 * refuses that on a non-loopback address unless `allowUnauthenticated` is set (config.ts).
 *
 * A token is presented as `Authorization: Bearer <token>` (or HTTP Basic with the token as password, so
 * a browser can open the dashboard). Tokens are compared by SHA-256 digest with `timingSafeEqual`
 * against every entry, with no early exit, so neither a token's bytes nor its position leak by timing.
 * The file may hold `sha256:<hex>` digests instead of the tokens themselves.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { WattsplitError } from '@wattsplit/wire';

export type ApiScope = { readonly kind: 'admin' } | { readonly kind: 'metrics' } | { readonly kind: 'tenant'; readonly tenant: string };

/** The caller of one request, once its token was checked. */
export interface ApiPrincipal {
  /** The token's name in the tokens file ("anonymous" when the API is open). */
  readonly name: string;
  readonly scope: ApiScope;
}

export const ANONYMOUS_ADMIN: ApiPrincipal = { name: 'anonymous', scope: { kind: 'admin' } };

/** One token as given in code or in the tokens file: the token itself or its `sha256:<hex>` digest. */
export interface ApiTokenSpec {
  token: string;
  scope: string;
  name?: string;
}

interface Entry {
  digest: Buffer;
  principal: ApiPrincipal;
}

/** Shortest token accepted: `openssl rand -hex 16` is 32 characters. */
export const MIN_TOKEN_LENGTH = 24;
const TOKEN_CHARS = /^[\x21-\x7e]+$/;
const SHA256_HEX = /^sha256:([0-9a-f]{64})$/i;
const TENANT_NAME = /^[^\s/\\]{1,128}$/;

const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export function parseScope(raw: string, where: string): ApiScope {
  if (raw === 'admin') return { kind: 'admin' };
  if (raw === 'metrics') return { kind: 'metrics' };
  if (raw.startsWith('tenant:') && TENANT_NAME.test(raw.slice(7))) return { kind: 'tenant', tenant: raw.slice(7) };
  throw new WattsplitError('CONFIG_INVALID', `${where}: scope ${JSON.stringify(raw)} must be admin, metrics or tenant:<name>`, { details: { field: 'scope', value: raw } });
}

export function scopeText(s: ApiScope): string {
  return s.kind === 'tenant' ? `tenant:${s.tenant}` : s.kind;
}

export class ApiTokens {
  private readonly entries: readonly Entry[];

  constructor(specs: readonly ApiTokenSpec[], source = 'api tokens') {
    const entries: Entry[] = [];
    const seen = new Map<string, string>();
    for (const [i, s] of specs.entries()) {
      const name = s.name ?? `#${i + 1}`;
      const where = `${source} token ${JSON.stringify(name)}`;
      const scope = parseScope(s.scope, where);
      const hex = SHA256_HEX.exec(s.token)?.[1];
      if (hex === undefined) {
        if (!TOKEN_CHARS.test(s.token)) throw new WattsplitError('CONFIG_INVALID', `${where}: the token must be printable ASCII without spaces`, { details: { field: 'token', name } });
        if (s.token.length < MIN_TOKEN_LENGTH) {
          throw new WattsplitError('CONFIG_INVALID', `${where}: the token has ${s.token.length} characters, at least ${MIN_TOKEN_LENGTH} are needed (openssl rand -hex 32)`, { details: { field: 'token', name } });
        }
      }
      const digest = hex === undefined ? sha256(s.token) : Buffer.from(hex, 'hex');
      const key = digest.toString('hex');
      const other = seen.get(key);
      if (other !== undefined) throw new WattsplitError('CONFIG_INVALID', `${source}: tokens ${JSON.stringify(other)} and ${JSON.stringify(name)} are the same token`, { details: { field: 'token', names: [other, name] } });
      seen.set(key, name);
      entries.push({ digest, principal: { name, scope } });
    }
    if (entries.length === 0) throw new WattsplitError('CONFIG_INVALID', `${source}: no tokens (an empty tokens file would lock everyone out)`, { details: { field: 'tokens' } });
    this.entries = entries;
  }

  get size(): number {
    return this.entries.length;
  }

  /** The principal of a presented token, or undefined. Constant time in the token and the entry matched. */
  authenticate(presented: string): ApiPrincipal | undefined {
    const d = sha256(presented);
    let found: ApiPrincipal | undefined;
    for (const e of this.entries) {
      const eq = timingSafeEqual(d, e.digest);
      if (eq && found === undefined) found = e.principal;
    }
    return found;
  }

  /**
   * The tokens file. JSON: `{"tokens":[{"name":"ops","scope":"admin","token":"…"}, …]}` (or the array
   * alone). Otherwise lines of `SCOPE TOKEN [NAME]`, `#` starts a comment. TOKEN may be `sha256:<hex>`.
   */
  static parse(text: string, source: string): ApiTokens {
    const t = text.trim();
    if (t.startsWith('{') || t.startsWith('[')) {
      let doc: unknown;
      try {
        doc = JSON.parse(t);
      } catch (e) {
        throw new WattsplitError('CONFIG_INVALID', `${source}: not valid JSON: ${(e as Error).message}`, { details: { file: source } });
      }
      const list = Array.isArray(doc) ? doc : (doc as { tokens?: unknown }).tokens;
      if (!Array.isArray(list)) throw new WattsplitError('CONFIG_INVALID', `${source}: expected {"tokens":[{"scope","token","name"}, …]}`, { details: { file: source } });
      const specs = list.map((x: unknown, i): ApiTokenSpec => {
        const o = (x ?? {}) as Record<string, unknown>;
        if (typeof o.token !== 'string' || typeof o.scope !== 'string' || (o.name !== undefined && typeof o.name !== 'string')) {
          throw new WattsplitError('CONFIG_INVALID', `${source}: tokens[${i}] needs string fields "scope" and "token" (and optionally "name")`, { details: { file: source, index: i } });
        }
        return { token: o.token, scope: o.scope, ...(typeof o.name === 'string' ? { name: o.name } : {}) };
      });
      return new ApiTokens(specs, source);
    }
    const specs: ApiTokenSpec[] = [];
    for (const [i, line] of text.split('\n').entries()) {
      const words = line.replace(/#.*$/, '').trim().split(/\s+/).filter(Boolean);
      if (words.length === 0) continue;
      const [scope, token, name, ...extra] = words;
      if (token === undefined || extra.length > 0) throw new WattsplitError('CONFIG_INVALID', `${source}:${i + 1}: expected "SCOPE TOKEN [NAME]"`, { details: { file: source, line: i + 1 } });
      specs.push({ scope: scope!, token, name: name ?? `${source}:${i + 1}` });
    }
    return new ApiTokens(specs, source);
  }

  static load(path: string): ApiTokens {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      throw new WattsplitError('CONFIG_INVALID', `api tokens file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { details: { file: path } });
    }
    return ApiTokens.parse(text, path);
  }
}

/** The token an Authorization header carries: `Bearer <t>`, or the password of `Basic` (browsers). */
export function presentedToken(authorization: string | undefined): string | undefined {
  const bearer = /^\s*Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
  if (bearer?.[1]) return bearer[1];
  const basic = /^\s*Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization ?? '');
  if (basic?.[1]) {
    const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const pw = colon >= 0 ? decoded.slice(colon + 1) : decoded;
    return pw || undefined;
  }
  return undefined;
}

/** True for addresses only this machine can reach: 127.0.0.0/8, ::1, "localhost". */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || /^::ffff:127\./.test(h);
  return false;
}

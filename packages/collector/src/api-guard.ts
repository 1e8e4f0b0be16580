/**
 * The HTTP side of api-auth.ts: every route declares what it serves with `@Access(...)`, and one global
 * guard (APP_GUARD, mounted with the controllers) checks the caller's token against it before the route
 * runs. A route without `@Access` needs admin, so a new route is closed until it says otherwise.
 *
 *   open         /healthz: no token
 *   metrics      /metrics, /api/models…: admin or metrics
 *   tenant-data  bills, VM energy, dashboard: admin (every tenant) or tenant:<name> (the route filters)
 *   admin        admin only
 *
 * 401 (no token, unknown token) carries `WWW-Authenticate`; 403 names the scope the route needs. The
 * route reads the caller with `@Caller()` to filter rows by tenant.
 */
import { createParamDecorator, ForbiddenException, Inject, Injectable, SetMetadata, UnauthorizedException, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Logger } from '@wattsplit/wire';
import { ANONYMOUS_ADMIN, presentedToken, scopeText, type ApiPrincipal, type ApiTokens } from './api-auth.js';
import { API_AUTH, LOGGER } from './tokens.js';

export type RouteAccess = 'open' | 'metrics' | 'tenant-data' | 'admin';

const ACCESS_KEY = 'wattsplit:route-access';
const PRINCIPAL = Symbol.for('wattsplit.api.principal');

/** What a route serves, hence which scopes may call it. */
export const Access = (a: RouteAccess) => SetMetadata(ACCESS_KEY, a);

/** The authenticated caller of the request (set by ApiAuthGuard). */
export const Caller = createParamDecorator((_: unknown, ctx: ExecutionContext): ApiPrincipal => {
  const p = (ctx.switchToHttp().getRequest<Record<symbol, unknown>>())[PRINCIPAL] as ApiPrincipal | undefined;
  // The guard runs before every route; a route reached without it is a wiring bug, not an open door.
  if (!p) throw new Error('no API principal on the request: ApiAuthGuard is not mounted');
  return p;
});

/** The API's access settings as the module provides them: no tokens = open (every caller is admin). */
export interface ApiAuth {
  tokens: ApiTokens | undefined;
}

interface HttpRequest {
  headers: Record<string, string | string[] | undefined>;
  method?: string;
  path?: string;
  ip?: string;
}
interface HttpResponse {
  setHeader(name: string, value: string | readonly string[]): void;
}

function allowed(access: RouteAccess, p: ApiPrincipal): boolean {
  switch (access) {
    case 'open':
      return true;
    case 'admin':
      return p.scope.kind === 'admin';
    case 'metrics':
      return p.scope.kind === 'admin' || p.scope.kind === 'metrics';
    case 'tenant-data':
      return p.scope.kind === 'admin' || p.scope.kind === 'tenant';
  }
}

const NEEDS: Record<RouteAccess, string> = { open: 'nothing', admin: 'scope admin', metrics: 'scope admin or metrics', 'tenant-data': 'scope admin or tenant:<name>' };

@Injectable()
export class ApiAuthGuard implements CanActivate {
  private readonly log: Logger;
  constructor(
    private readonly reflector: Reflector,
    @Inject(API_AUTH) private readonly auth: ApiAuth,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.log = logger.child({ component: 'http-auth' });
  }

  canActivate(ctx: ExecutionContext): boolean {
    const access = this.reflector.getAllAndOverride<RouteAccess | undefined>(ACCESS_KEY, [ctx.getHandler(), ctx.getClass()]) ?? 'admin';
    const http = ctx.switchToHttp();
    const req = http.getRequest<HttpRequest & Record<symbol, unknown>>();
    if (!this.auth.tokens) {
      req[PRINCIPAL] = ANONYMOUS_ADMIN;
      return true;
    }
    if (access === 'open') return true;
    const header = req.headers.authorization;
    const token = presentedToken(Array.isArray(header) ? header[0] : header);
    const principal = token === undefined ? undefined : this.auth.tokens.authenticate(token);
    const route = `${req.method ?? 'GET'} ${req.path ?? ''}`;
    if (!principal) {
      const res = http.getResponse<HttpResponse>();
      // Browsers prompt for Basic (the token as password) on the dashboard; API clients send Bearer.
      res.setHeader('WWW-Authenticate', ctx.getClass().name === 'DashboardController' ? ['Basic realm="wattsplit", charset="UTF-8"', 'Bearer realm="wattsplit"'] : 'Bearer realm="wattsplit"');
      const why = token === undefined ? 'no token: send "Authorization: Bearer <token>"' : 'unknown token';
      this.log.info({ route, ip: req.ip }, `refused ${route}: ${why}`);
      throw new UnauthorizedException({ statusCode: 401, code: 'UNAUTHENTICATED', message: why });
    }
    if (!allowed(access, principal)) {
      const scope = scopeText(principal.scope);
      this.log.warn({ route, ip: req.ip, token: principal.name, scope }, `refused ${route}: token ${principal.name} has scope ${scope}`);
      throw new ForbiddenException({ statusCode: 403, code: 'FORBIDDEN', message: `${route} needs ${NEEDS[access]}; this token has scope ${scope}` });
    }
    req[PRINCIPAL] = principal;
    return true;
  }
}

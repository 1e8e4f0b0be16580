/**
 * Host authentication: which host a batch speaks for. Four modes, chosen by configuration: a token per
 * host (the token identifies the host; a frame of another host is refused), the mTLS client
 * certificate (its subject CN is the host id), one shared token for the fleet (any host), or none
 * (development, loopback only).
 *
 * Tokens are compared by SHA-256 digest with `timingSafeEqual`, so a wrong token does not leak how many
 * leading bytes matched.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { WattsplitError } from '@wattsplit/wire';

export type HostAuthConfig =
  | { readonly mode: 'none' }
  | { readonly mode: 'shared'; readonly token: string }
  | { readonly mode: 'per-host'; readonly tokens: Readonly<Record<string, string>> }
  /** The verified client certificate's subject CN is the host id (needs TLS with a caFile). */
  | { readonly mode: 'client-cert' };

/** Who a batch speaks for once its token was checked. `host` undefined = any host (shared / none). */
export type AuthOutcome = { readonly ok: true; readonly host: string | undefined } | { readonly ok: false; readonly error: WattsplitError };

const digest = (t: string): Buffer => createHash('sha256').update(t, 'utf8').digest();

/** Takes the token from `authorization: Bearer <t>` metadata, else from the batch's `token` field. */
export function pickToken(authorizationHeader: string | undefined, batchToken: string | null | undefined): string {
  const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(authorizationHeader ?? '');
  if (m?.[1]) return m[1];
  return batchToken ?? '';
}

export class HostAuthenticator {
  private readonly byDigest = new Map<string, string>(); // hex sha256(token) → host
  private readonly shared: Buffer | undefined;

  constructor(readonly config: HostAuthConfig) {
    switch (config.mode) {
      case 'none':
      case 'client-cert':
        break;
      case 'shared':
        if (!config.token) throw new WattsplitError('CONFIG_INVALID', 'gateway auth: shared token is empty', { details: { field: 'auth.token' } });
        this.shared = digest(config.token);
        break;
      case 'per-host':
        for (const [host, token] of Object.entries(config.tokens)) {
          if (!token) throw new WattsplitError('CONFIG_INVALID', `gateway auth: tokens[${JSON.stringify(host)}] is empty`, { details: { field: `auth.tokens.${host}` } });
          const d = digest(token).toString('hex');
          const other = this.byDigest.get(d);
          if (other !== undefined) {
            throw new WattsplitError('CONFIG_INVALID', `gateway auth: hosts ${JSON.stringify(other)} and ${JSON.stringify(host)} share one token; each host needs its own`, {
              details: { field: 'auth.tokens', hosts: [other, host] },
            });
          }
          this.byDigest.set(d, host);
        }
        break;
    }
  }

  /**
   * Checks a token, or the CN of the client certificate the TLS layer verified (`certHost`); never throws.
   * Messages name the problem, never the token.
   */
  authenticate(token: string, certHost?: string): AuthOutcome {
    switch (this.config.mode) {
      case 'none':
        return { ok: true, host: undefined };
      case 'client-cert':
        if (!certHost) return { ok: false, error: authError('no verified client certificate with a subject CN (auth mode client-cert needs mTLS)') };
        return { ok: true, host: certHost };
      case 'shared': {
        if (!token) return { ok: false, error: authError('no token: send metadata "authorization: Bearer <token>" or FrameBatch.token') };
        if (!timingSafeEqual(digest(token), this.shared!)) return { ok: false, error: authError('token is not the fleet token') };
        return { ok: true, host: undefined };
      }
      case 'per-host': {
        if (!token) return { ok: false, error: authError('no token: send metadata "authorization: Bearer <token>" or FrameBatch.token') };
        // The map lookup is by digest, so no byte-wise comparison of secrets happens here.
        const host = this.byDigest.get(digest(token).toString('hex'));
        if (host === undefined) return { ok: false, error: authError('token belongs to no known host') };
        return { ok: true, host };
      }
    }
  }
}

function authError(message: string): WattsplitError {
  return new WattsplitError('FRAME_AUTH_FAILED', `batch refused: ${message}`);
}

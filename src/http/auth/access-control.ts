/**
 * Access control at the HTTP edge: who is calling (`authenticate`), whether they may do what a request needs
 * (`require`), and what a token request may be granted (`grant`). In mode `none` everything is allowed.
 *
 * Decisions follow Docker's token flow: a request without credentials that needs more than anonymous access
 * gets 401 with a `WWW-Authenticate` challenge naming the scope; a token lacking an action the caller's roles
 * would allow gets 401 `error="insufficient_scope"` (the client fetches a new token); a caller whose roles do
 * not allow it gets 403 DENIED with a message the client prints.
 */
import type { FastifyRequest } from 'fastify';
import { RegistryError } from '../../oci/errors.ts';
import { isValidRepositoryName } from '../../oci/reference.ts';
import type { AuditLog } from '../../auth/audit.ts';
import type { Authenticator } from '../../auth/authenticator.ts';
import type { Authorizer } from '../../auth/authorizer.ts';
import { ALL_ACTIONS, ANONYMOUS, type AccessEntry, type Action, type Principal } from '../../auth/principal.ts';
import { formatScopes } from '../../auth/scopes.ts';
import { InvalidTokenError, type TokenService } from '../../auth/token/token-service.ts';

export type AuthMode = 'none' | 'basic' | 'token';

export interface Caller {
  readonly principal: Principal;
  readonly via: 'open' | 'anonymous' | 'token' | 'basic' | 'certificate';
  /** The token's grants, for bearer callers. */
  readonly tokenAccess: readonly AccessEntry[] | null;
}

/** What a request needs. */
export type Need =
  | { readonly kind: 'authenticated' }
  | { readonly kind: 'catalog' }
  | { readonly kind: 'repository'; readonly name: string; readonly actions: readonly Action[] };

export interface AccessControlDeps {
  readonly mode: AuthMode;
  readonly authenticator: Authenticator;
  readonly authorizer: Authorizer;
  readonly tokens: TokenService | null;
  readonly audit: AuditLog;
  /** The token realm; null = `<request base>/auth/token`. */
  readonly realm: string | null;
  readonly service: string;
  /** The verified client certificate's common name for a request, if any. */
  readonly peerName?: (request: FastifyRequest) => string | null;
  /** The base URL (`scheme://host`) of a request, for the default realm. */
  readonly baseUrl: (request: FastifyRequest) => string;
}

const OPEN_CALLER: Caller = { principal: ANONYMOUS, via: 'open', tokenAccess: null };
const TOKEN_ACTIONS: readonly Action[] = ['pull', 'push', 'delete'];

export class AccessControl {
  constructor(readonly deps: AccessControlDeps) {}

  get enabled(): boolean {
    return this.deps.mode !== 'none';
  }

  /**
   * Identifies the caller from a bearer token, Basic credentials or a client certificate; anonymous without
   * any. Invalid credentials get 401 with a challenge (429 when too many logins failed).
   */
  async authenticate(request: FastifyRequest): Promise<Caller> {
    if (!this.enabled) return OPEN_CALLER;
    const header = request.headers.authorization;
    if (header !== undefined) {
      const space = header.indexOf(' ');
      const scheme = header.slice(0, space === -1 ? undefined : space).toLowerCase();
      const value = space === -1 ? '' : header.slice(space + 1).trim();
      if (scheme === 'bearer' && this.deps.tokens) {
        try {
          const { principal, access } = await this.deps.tokens.verify(value);
          return { principal, via: 'token', tokenAccess: access };
        } catch (e) {
          if (!(e instanceof InvalidTokenError)) throw e;
          throw this.challenge(request, null, { error: 'invalid_token', message: e.message });
        }
      }
      if (scheme === 'basic') {
        const decoded = Buffer.from(value, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        if (colon <= 0) throw this.challenge(request, null, { message: 'malformed Basic credentials' });
        const principal = await this.deps.authenticator.login(
          decoded.slice(0, colon),
          decoded.slice(colon + 1),
          {
            sourceAddr: request.ip,
            via: 'basic',
          },
        );
        if (!principal) throw this.challenge(request, null, { message: 'invalid username or password' });
        return { principal, via: 'basic', tokenAccess: null };
      }
      throw this.challenge(request, null, {
        message: `unsupported authorization scheme ${scheme.slice(0, 20)}`,
      });
    }
    const cn = this.deps.peerName?.(request) ?? null;
    if (cn !== null) {
      const principal = await this.deps.authenticator.fromCertificate(cn);
      if (principal) return { principal, via: 'certificate', tokenAccess: null };
    }
    return { principal: ANONYMOUS, via: 'anonymous', tokenAccess: null };
  }

  /** Throws 401/403 unless `caller` may do what `need` says. */
  async require(request: FastifyRequest, caller: Caller, need: Need): Promise<void> {
    if (!this.enabled) return;
    if (need.kind === 'authenticated' || need.kind === 'catalog') {
      if (caller.via === 'anonymous')
        throw this.challenge(request, need.kind === 'catalog' ? catalogScope : null);
      if (need.kind === 'catalog' && caller.tokenAccess && !hasCatalog(caller.tokenAccess)) {
        throw this.challenge(request, catalogScope, { error: 'insufficient_scope' });
      }
      return;
    }
    const scope = { type: 'repository', name: need.name, actions: scopeActions(need.actions) };
    if (caller.tokenAccess) {
      const granted = tokenActions(caller.tokenAccess, need.name);
      // An external issuer's tokens are all Berth knows of such a caller: its `push` grant also allows moving
      // tags (the issuer's policy decides). For local principals, overwriting is checked against live roles.
      const external = caller.principal.kind === 'external';
      const fromToken = need.actions
        .filter((a) => a !== 'overwrite' || external)
        .map((a) => (a === 'overwrite' ? 'push' : a));
      const needsLive = need.actions.includes('overwrite') && !external;
      if (fromToken.every((a) => granted.has(a)) && !needsLive) return;
      const live = await this.liveActions(caller, need.name);
      const roleAllows = need.actions.every((a) => live.has(a));
      if (roleAllows && fromToken.every((a) => granted.has(a))) return;
      // Berth has no roles for anonymous and externally issued tokens: what a new token could carry is for the
      // issuer to decide, so a token that is not enough asks for another one (except for an overwrite, which no
      // token carries).
      const issuerDecides = caller.principal.kind === 'anonymous' || external;
      if (roleAllows || issuerDecides) {
        throw this.challenge(request, scope, { error: 'insufficient_scope' });
      }
      throw denied(caller.principal, need);
    }
    const live = await this.liveActions(caller, need.name);
    if (need.actions.every((a) => live.has(a))) return;
    if (caller.via === 'anonymous') throw this.challenge(request, scope);
    throw denied(caller.principal, need);
  }

  /** True when `caller` may perform `action` on `repository` (no error). */
  async can(caller: Caller, repository: string, action: Action): Promise<boolean> {
    if (!this.enabled) return true;
    if (caller.tokenAccess && action !== 'overwrite')
      return tokenActions(caller.tokenAccess, repository).has(action);
    return (await this.liveActions(caller, repository)).has(action);
  }

  /** Which repositories `caller` may see in listings (catalog, search). */
  async pullFilter(caller: Caller): Promise<(repository: string) => boolean> {
    if (!this.enabled) return () => true;
    return this.deps.authorizer.pullFilter(await this.resolve(caller.principal));
  }

  /**
   * The token grant for `principal` asking for `requested`: for each repository, the intersection of the asked
   * and allowed actions (`*` asks for all); the catalog to anyone. A partial grant is not an error.
   */
  async grant(principal: Principal, requested: readonly AccessEntry[]): Promise<AccessEntry[]> {
    const out: AccessEntry[] = [];
    for (const entry of requested) {
      if (entry.type === 'registry' && entry.name === 'catalog') {
        const actions = entry.actions.filter((a) => a === '*' || a === 'search');
        if (actions.length > 0) out.push({ type: 'registry', name: 'catalog', actions });
        continue;
      }
      if (entry.type !== 'repository' || !isValidRepositoryName(entry.name)) continue;
      const allowed = await this.deps.authorizer.repositoryActions(principal, entry.name);
      const asked = entry.actions.includes('*') ? TOKEN_ACTIONS : entry.actions;
      const actions = TOKEN_ACTIONS.filter((a) => asked.includes(a) && allowed.has(a));
      if (actions.length > 0) out.push({ type: 'repository', name: entry.name, actions: [...actions] });
    }
    return out;
  }

  /** The caller's principal with its current admin flag (tokens do not carry it). */
  async resolve(principal: Principal): Promise<Principal> {
    if (principal.kind !== 'user' && principal.kind !== 'robot') return principal;
    return (await this.deps.authenticator.activePrincipal(principal.kind, principal.name)) ?? ANONYMOUS;
  }

  /** A 401 with the challenge for this registry's mode (and `scope`, when the request needs one). */
  challenge(
    request: FastifyRequest,
    scope: AccessEntry | null,
    options: { error?: 'invalid_token' | 'insufficient_scope'; message?: string } = {},
  ): RegistryError {
    let header: string;
    if (this.deps.mode === 'basic' || !this.deps.tokens) {
      header = `Basic realm="${this.deps.service}",charset="UTF-8"`;
    } else {
      const realm = this.deps.realm ?? `${this.deps.baseUrl(request)}/auth/token`;
      header = `Bearer realm="${realm}",service="${this.deps.service}"`;
      if (scope) header += `,scope="${formatScopes([scope])}"`;
      if (options.error) header += `,error="${options.error}"`;
    }
    return new RegistryError('UNAUTHORIZED', options.message ?? 'authentication required', {
      headers: { 'WWW-Authenticate': header },
      ...(scope ? { detail: [{ Type: scope.type, Name: scope.name, Action: scope.actions.join(',') }] } : {}),
    });
  }

  private async liveActions(caller: Caller, repository: string): Promise<Set<Action>> {
    if (caller.principal.kind === 'external') return new Set();
    return this.deps.authorizer.repositoryActions(await this.resolve(caller.principal), repository);
  }
}

const catalogScope: AccessEntry = { type: 'registry', name: 'catalog', actions: ['*'] };

function hasCatalog(access: readonly AccessEntry[]): boolean {
  return access.some((a) => a.type === 'registry' && a.name === 'catalog' && a.actions.length > 0);
}

function tokenActions(access: readonly AccessEntry[], repository: string): Set<Action> {
  const out = new Set<Action>();
  for (const a of access) {
    if (a.type !== 'repository' || a.name !== repository) continue;
    for (const action of a.actions) {
      if (action === '*') TOKEN_ACTIONS.forEach((x) => out.add(x));
      else if ((ALL_ACTIONS as readonly string[]).includes(action)) out.add(action as Action);
    }
  }
  return out;
}

/** Challenge scopes ask for pull with push, as Docker clients do. */
function scopeActions(actions: readonly Action[]): string[] {
  const out = new Set<string>();
  for (const a of actions) {
    if (a === 'push') out.add('pull');
    out.add(a === 'overwrite' ? 'push' : a);
  }
  return [...out];
}

function denied(principal: Principal, need: Extract<Need, { kind: 'repository' }>): RegistryError {
  const what = need.actions.includes('overwrite')
    ? `overwriting an existing tag in ${need.name} needs the maintainer role`
    : `${need.actions.join(', ')} access to ${need.name} is denied for ${principal.name}`;
  return new RegistryError('DENIED', `requested access to the resource is denied: ${what}`, {
    detail: [{ Type: 'repository', Name: need.name, Action: need.actions.join(',') }],
  });
}

/**
 * Authentication against a remote registry, following its challenge: Basic (the credentials to the registry's
 * own origin) or the Docker token flow (Bearer: a token from the realm the remote named, for the scopes the
 * operation needs, cached until shortly before it expires). Credentials go only to the origin that asked for
 * Basic or to the realm named in a Bearer challenge, nowhere else.
 */
import type { Logger } from '../logger.ts';
import { drain, parseRetryAfter, readBody, type HttpTransport } from './http-transport.ts';
import { RemoteError } from './registry-client.ts';

export interface Credentials {
  readonly username: string;
  readonly password: string;
}

/** A parsed `WWW-Authenticate` challenge. */
export interface Challenge {
  /** Lower case: `basic`, `bearer`... */
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

/**
 * Parses a `WWW-Authenticate` value into its challenges (RFC 7235: `scheme k=v, k="v", scheme2 ...`). Unknown
 * syntax yields what could be read; never throws.
 */
export function parseChallenges(header: string | undefined): Challenge[] {
  if (!header) return [];
  const out: { scheme: string; params: Record<string, string> }[] = [];
  let i = 0;
  const skip = (): void => {
    while (i < header.length && (header[i] === ' ' || header[i] === '\t' || header[i] === ',')) i++;
  };
  const token = (): string => {
    const start = i;
    while (i < header.length && !/[\s,=]/.test(header[i] as string)) i++;
    return header.slice(start, i);
  };
  while (i < header.length) {
    skip();
    const word = token();
    if (word === '') break;
    let j = i;
    while (j < header.length && header[j] === ' ') j++;
    if (header[j] !== '=') {
      out.push({ scheme: word.toLowerCase(), params: {} });
      continue;
    }
    // `word=value`, a parameter of the last challenge (token68 values end with `=`: kept as a parameter too)
    i = j + 1;
    while (i < header.length && header[i] === ' ') i++;
    let value = '';
    if (header[i] === '"') {
      i++;
      while (i < header.length && header[i] !== '"') {
        if (header[i] === '\\' && i + 1 < header.length) i++;
        value += header[i];
        i++;
      }
      i++;
    } else {
      value = token();
    }
    const last = out[out.length - 1];
    if (last) last.params[word.toLowerCase()] = value;
  }
  return out;
}

/** `Basic base64(user:password)`. */
export function basicAuthorization(credentials: Credentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
}

/** What a remote origin asked for the last time it challenged. */
type OriginScheme =
  | { readonly scheme: 'basic' }
  | { readonly scheme: 'bearer'; readonly realm: string; readonly service: string | undefined };

interface CachedToken {
  readonly token: string;
  /** When to stop using it (ms since the epoch): shortly before it expires. */
  readonly until: number;
}

/** Tokens live at least this long when the service does not say (the Docker token spec's default). */
const DEFAULT_EXPIRES_IN_S = 60;

/** Merges scopes of the same resource (`repository:a:pull` + `repository:a:push` = `repository:a:pull,push`). */
export function normalizeScopes(scopes: readonly string[]): string[] {
  const byResource = new Map<string, Set<string>>();
  for (const scope of scopes) {
    // Names may contain `host:port`: split on the first and last `:` only.
    const first = scope.indexOf(':');
    const last = scope.lastIndexOf(':');
    if (first < 0 || first === last) continue;
    const resource = scope.slice(0, last);
    const actions = byResource.get(resource) ?? new Set<string>();
    for (const a of scope.slice(last + 1).split(',')) if (a) actions.add(a);
    byResource.set(resource, actions);
  }
  return [...byResource.entries()]
    .map(([resource, actions]) => `${resource}:${[...actions].sort().join(',')}`)
    .sort();
}

export class RemoteAuth {
  private readonly schemes = new Map<string, OriginScheme>();
  private readonly tokens = new Map<string, CachedToken>();
  private readonly inFlight = new Map<string, Promise<CachedToken>>();

  constructor(
    private readonly transport: HttpTransport,
    private readonly credentials: Credentials | null,
    private readonly userAgent: string,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * The Authorization to send pre-emptively to `origin` for `scopes`, from what the origin asked before
   * (undefined: nothing known, or nothing to send). Fetches a token when the origin uses Bearer and none is
   * cached, so later requests do not each take a 401 first.
   */
  async authorizationFor(
    origin: string,
    scopes: readonly string[],
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    const known = this.schemes.get(origin);
    if (!known) return undefined;
    if (known.scheme === 'basic') return this.credentials ? basicAuthorization(this.credentials) : undefined;
    const token = await this.token(known.realm, known.service, scopes, signal);
    return `Bearer ${token.token}`;
  }

  /**
   * Answers a 401 of `origin`: the Authorization to retry with, or undefined when there is nothing better to
   * send (no credentials for Basic, an unknown scheme). `sent` is the Authorization the refused request
   * carried: a cached token that was refused is dropped and a fresh one fetched.
   */
  async answerChallenge(
    origin: string,
    header: string | undefined,
    scopes: readonly string[],
    sent: string | undefined,
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    const challenges = parseChallenges(header);
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
    if (bearer) {
      const realm = bearer.params.realm as string;
      const service = bearer.params.service;
      this.schemes.set(origin, { scheme: 'bearer', realm, service });
      const wanted = normalizeScopes([...scopes, ...(bearer.params.scope?.split(' ') ?? [])]);
      const key = tokenKey(realm, service, wanted);
      const cached = this.tokens.get(key);
      if (cached && sent === `Bearer ${cached.token}`) this.tokens.delete(key);
      const token = await this.token(realm, service, wanted, signal);
      if (sent === `Bearer ${token.token}`) return undefined; // a fresh token that was refused: give up
      return `Bearer ${token.token}`;
    }
    if (challenges.some((c) => c.scheme === 'basic')) {
      this.schemes.set(origin, { scheme: 'basic' });
      if (!this.credentials) return undefined;
      const authorization = basicAuthorization(this.credentials);
      return sent === authorization ? undefined : authorization;
    }
    return undefined;
  }

  /** A cached or fresh token; one fetch per key in flight, which concurrent callers share. */
  private async token(
    realm: string,
    service: string | undefined,
    scopes: readonly string[],
    signal?: AbortSignal,
  ): Promise<CachedToken> {
    const normalized = normalizeScopes(scopes);
    const key = tokenKey(realm, service, normalized);
    const cached = this.tokens.get(key);
    if (cached && cached.until > this.now()) return cached;
    // Why share the fetch: a burst of parallel blob reads after a cold start would otherwise each ask the
    // token service; they all want the same token. The shared fetch ignores any one caller's signal (the
    // others still want it), so a caller that aborts just stops waiting.
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.fetchToken(realm, service, normalized).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    const token = await (signal ? raceAbort(pending, signal) : pending);
    this.tokens.set(key, token);
    return token;
  }

  private async fetchToken(
    realm: string,
    service: string | undefined,
    scopes: readonly string[],
  ): Promise<CachedToken> {
    let url: URL;
    try {
      url = new URL(realm);
    } catch (err) {
      throw new RemoteError(`the token realm ${JSON.stringify(realm)} is not a URL`, 'protocol', {
        cause: err,
      });
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new RemoteError(`the token realm ${url.origin} is not http(s)`, 'protocol');
    }
    if (service !== undefined) url.searchParams.set('service', service);
    for (const scope of scopes) url.searchParams.append('scope', scope);
    const headers: Record<string, string> = { 'user-agent': this.userAgent, accept: 'application/json' };
    // The realm is the one the remote named in its challenge: the credentials' owner told us to use it.
    if (this.credentials) headers.authorization = basicAuthorization(this.credentials);
    const started = this.now();
    this.logger.debug({ realm: url.origin + url.pathname, service, scopes }, 'fetching a registry token');
    const res = await this.transport.send({ method: 'GET', url, headers });
    if (res.status !== 200) {
      await drain(res, this.transport.timeoutMs);
      const header = res.headers['retry-after'];
      const retryAfter = parseRetryAfter(Array.isArray(header) ? header[0] : header);
      throw new RemoteError(`the token service ${url.origin}${url.pathname} answered ${res.status}`, 'http', {
        status: res.status,
        ...(retryAfter !== undefined ? { retryAfter } : {}),
      });
    }
    const body = await readBody(res, 1024 * 1024, this.transport.timeoutMs);
    let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      parsed = JSON.parse(body.toString('utf8')) as typeof parsed;
    } catch (err) {
      throw new RemoteError(`the token service ${url.origin} answered no JSON`, 'protocol', { cause: err });
    }
    const token =
      typeof parsed.token === 'string' && parsed.token !== ''
        ? parsed.token
        : typeof parsed.access_token === 'string' && parsed.access_token !== ''
          ? parsed.access_token
          : null;
    if (token === null)
      throw new RemoteError(`the token service ${url.origin} answered no token`, 'protocol');
    const expiresIn =
      typeof parsed.expires_in === 'number' && parsed.expires_in > 0
        ? parsed.expires_in
        : DEFAULT_EXPIRES_IN_S;
    // Stop using it a little before it expires (10 s, or a tenth of a short lifetime), so a token is not
    // refused on its way to the remote.
    const margin = Math.min(10_000, expiresIn * 100);
    return { token, until: started + expiresIn * 1000 - margin };
  }
}

function tokenKey(realm: string, service: string | undefined, scopes: readonly string[]): string {
  return JSON.stringify([realm, service ?? null, normalizeScopes(scopes)]);
}

function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e as Error);
      },
    );
  });
}

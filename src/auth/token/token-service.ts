/**
 * The built-in Docker token service's core: issuing and verifying access tokens (JWT, ES256, with the
 * `access` claim of the Docker token spec) and refresh tokens (`docker login` identity tokens, `offline_token`).
 *
 * Refresh tokens are `<id>.<secret>`: the id finds the record, the secret is stored only as a hash, and records can
 * be revoked (a user's tokens are revoked when the user is deleted or their password changes).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { decodeProtectedHeader, jwtVerify, SignJWT, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { AuthStore, SubjectKind } from '../../metadata/auth-store.ts';
import { ROBOT_PREFIX } from '../authenticator.ts';
import { hashSecret, randomSecret, secretMatches } from '../passwords.ts';
import type { AccessEntry, Principal } from '../principal.ts';
import { SIGNING_ALGORITHM, type SigningKeys } from './signing-keys.ts';

export interface TokenServiceOptions {
  /** `iss` of issued tokens. */
  readonly issuer: string;
  /** The service name: `aud` of issued tokens and the audience required of every token. */
  readonly service: string;
  /** Access token lifetime, ms (>= 60 s). */
  readonly expiration: number;
  /** Refresh token lifetime, ms. */
  readonly refreshExpiration: number;
  /** `iss` required of externally issued tokens (with an external key resolver). */
  readonly trustIssuer: string | null;
}

export interface IssuedToken {
  readonly token: string;
  /** Seconds. */
  readonly expiresIn: number;
  /** RFC 3339. */
  readonly issuedAt: string;
}

export interface VerifiedToken {
  /** The token's subject; `isAdmin` is not carried by tokens and is false here. */
  readonly principal: Principal;
  readonly access: AccessEntry[];
}

/**
 * Subjects of tokens Berth issues to its own services (an external scanner pulling the one image it scans). No
 * account name contains `:`, so such a subject is never a user's; its token's grants alone decide, as for an
 * external issuer's token, and only this registry's key can sign one.
 */
export const SERVICE_SUBJECT_PREFIX = 'service:';

/** A token that is malformed, expired, not for this service, or signed by an unknown key. */
export class InvalidTokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidTokenError';
  }
}

/** The subject kind implied by a login name. */
export function subjectKind(name: string): SubjectKind {
  return name.startsWith(ROBOT_PREFIX) ? 'robot' : 'user';
}

export class TokenService {
  constructor(
    private readonly keys: SigningKeys,
    private readonly store: AuthStore,
    private readonly external: JWTVerifyGetKey | null,
    readonly options: TokenServiceOptions,
  ) {}

  /** Signs an access token for `principal` granting exactly `access`. */
  async issue(principal: Principal, access: readonly AccessEntry[]): Promise<IssuedToken> {
    const { kid, key } = await this.keys.signingKey();
    const now = Math.floor(Date.now() / 1000);
    const expiresIn = Math.floor(this.options.expiration / 1000);
    const token = await new SignJWT({
      access: access.map((a) => ({ type: a.type, name: a.name, actions: [...a.actions] })),
    })
      .setProtectedHeader({ alg: SIGNING_ALGORITHM, kid, typ: 'JWT' })
      .setIssuer(this.options.issuer)
      .setSubject(principal.kind === 'anonymous' ? '' : principal.name)
      .setAudience(this.options.service)
      .setIssuedAt(now)
      .setNotBefore(now - 5)
      .setExpirationTime(now + expiresIn)
      .setJti(randomBytes(12).toString('base64url'))
      .sign(key);
    return { token, expiresIn, issuedAt: new Date(now * 1000).toISOString() };
  }

  /** Verifies a bearer token (ours, or an external issuer's when trusted); throws InvalidTokenError. */
  async verify(token: string): Promise<VerifiedToken> {
    let header;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw new InvalidTokenError('malformed token');
    }
    let payload: JWTPayload;
    let external = false;
    try {
      const key = header.kid !== undefined ? await this.keys.verificationKey(header.kid) : null;
      if (key) {
        ({ payload } = await jwtVerify(token, key, {
          issuer: this.options.issuer,
          audience: this.options.service,
          algorithms: [SIGNING_ALGORITHM],
          requiredClaims: ['exp'],
        }));
      } else if (this.external) {
        external = true;
        ({ payload } = await jwtVerify(token, this.external, {
          ...(this.options.trustIssuer !== null ? { issuer: this.options.trustIssuer } : {}),
          audience: this.options.service,
          algorithms: ['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'EdDSA'],
          requiredClaims: ['exp'],
        }));
      } else {
        throw new InvalidTokenError('token signed by an unknown key');
      }
    } catch (e) {
      if (e instanceof InvalidTokenError) throw e;
      throw new InvalidTokenError(`invalid token: ${(e as Error).message}`);
    }
    const access = Array.isArray(payload.access) ? (payload.access as unknown[]).filter(isAccessEntry) : [];
    const sub = typeof payload.sub === 'string' ? payload.sub : '';
    const principal: Principal =
      sub === ''
        ? { kind: 'anonymous', name: 'anonymous', isAdmin: false }
        : external || (sub.startsWith(SERVICE_SUBJECT_PREFIX) && sub.length > SERVICE_SUBJECT_PREFIX.length)
          ? { kind: 'external', name: sub, isAdmin: false }
          : { kind: subjectKind(sub), name: sub, isAdmin: false };
    return { principal, access };
  }

  /** Creates a refresh token for `principal` (a user or robot). */
  async createRefreshToken(principal: Principal, clientId: string): Promise<string> {
    const id = randomUUID();
    const secret = randomSecret();
    await this.store.createRefreshToken({
      id,
      secretHash: hashSecret(secret),
      subjectKind: subjectKind(principal.name),
      subject: principal.name,
      clientId: clientId.slice(0, 200),
      expiresAt: new Date(Date.now() + this.options.refreshExpiration),
    });
    return `${id}.${secret}`;
  }

  /** The subject of a valid (known, unexpired, unrevoked) refresh token; throws InvalidTokenError otherwise. */
  async redeemRefreshToken(token: string): Promise<{ kind: SubjectKind; name: string }> {
    const dot = token.indexOf('.');
    const id = token.slice(0, dot);
    if (dot <= 0 || !/^[0-9a-f-]{36}$/.test(id)) throw new InvalidTokenError('malformed refresh token');
    const record = await this.store.getRefreshToken(id);
    if (!record || !secretMatches(token.slice(dot + 1), record.secretHash))
      throw new InvalidTokenError('unknown refresh token');
    if (record.revokedAt !== null) throw new InvalidTokenError('refresh token revoked');
    if (record.expiresAt.getTime() <= Date.now()) throw new InvalidTokenError('refresh token expired');
    return { kind: record.subjectKind, name: record.subject };
  }
}

function isAccessEntry(v: unknown): v is AccessEntry {
  const e = v as AccessEntry;
  return (
    typeof e === 'object' &&
    e !== null &&
    typeof e.type === 'string' &&
    typeof e.name === 'string' &&
    Array.isArray(e.actions) &&
    e.actions.every((a) => typeof a === 'string')
  );
}

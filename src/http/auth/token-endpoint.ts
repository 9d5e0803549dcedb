/**
 * The built-in token service's HTTP endpoints, as the Docker token specs define them:
 * - `GET /auth/token?service=&scope=...&offline_token=&client_id=&account=` with Basic credentials or none
 *   (anonymous): `{token, access_token, expires_in, issued_at[, refresh_token]}`.
 * - `POST /auth/token` (form: `grant_type=password|refresh_token`, `client_id`, `scope`, `access_type`,
 *   `username`/`password` or `refresh_token`): `{access_token, scope, expires_in, issued_at[, refresh_token]}`.
 * - `GET /auth/jwks.json`: the public keys that verify issued tokens.
 * The grant is the intersection of the scopes asked for and the caller's rights; a partial grant is no error.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AccessControl } from './access-control.ts';
import type { AuthServices } from '../../auth/setup.ts';
import { ANONYMOUS, type Principal } from '../../auth/principal.ts';
import { formatScopes, parseScopes } from '../../auth/scopes.ts';
import { InvalidTokenError, type TokenService } from '../../auth/token/token-service.ts';
import { RegistryError } from '../../oci/errors.ts';
import { queryParam, queryParams } from '../headers.ts';
import { readBody } from '../plugins/raw-body.ts';

const FORM_LIMIT = 64 * 1024;

function oauthError(status: number, message: string, headers: Record<string, string> = {}): RegistryError {
  return new RegistryError(status === 401 ? 'UNAUTHORIZED' : 'UNSUPPORTED', message, { status, headers });
}

export function registerTokenEndpoint(
  app: FastifyInstance,
  access: AccessControl,
  auth: AuthServices,
  tokens: TokenService,
): void {
  const { service } = tokens.options;
  const basicChallenge = { 'WWW-Authenticate': `Basic realm="${service}",charset="UTF-8"` };

  const checkService = (value: string | undefined): void => {
    if (value !== undefined && value !== '' && value !== service) {
      throw oauthError(
        400,
        `unknown service ${JSON.stringify(value.slice(0, 100))}; this registry is ${service}`,
      );
    }
  };

  const login = async (request: FastifyRequest, username: string, password: string): Promise<Principal> => {
    const principal = await auth.authenticator.login(username, password, {
      sourceAddr: request.ip,
      via: 'token',
      auditSuccess: true,
    });
    if (!principal) throw oauthError(401, 'invalid username or password', basicChallenge);
    return principal;
  };

  const fromRefreshToken = async (token: string): Promise<Principal> => {
    try {
      const { kind, name } = await tokens.redeemRefreshToken(token);
      const principal = await auth.authenticator.activePrincipal(kind, name);
      if (!principal) throw new InvalidTokenError('the account of this refresh token is disabled or gone');
      return principal;
    } catch (e) {
      if (e instanceof InvalidTokenError) throw oauthError(401, e.message);
      throw e;
    }
  };

  app.get('/auth/token', async (request, reply) => {
    checkService(queryParam(request.query, 'service'));
    let principal: Principal = ANONYMOUS;
    const header = request.headers.authorization;
    if (header !== undefined) {
      const m = /^basic\s+(\S+)$/i.exec(header);
      const decoded = m ? Buffer.from(m[1] as string, 'base64').toString('utf8') : '';
      const colon = decoded.indexOf(':');
      if (colon <= 0) throw oauthError(401, 'the token endpoint takes Basic credentials', basicChallenge);
      principal = await login(request, decoded.slice(0, colon), decoded.slice(colon + 1));
    }
    const granted = await access.grant(principal, parseScopes(queryParams(request.query, 'scope')));
    const issued = await tokens.issue(principal, granted);
    const body: Record<string, unknown> = {
      token: issued.token,
      access_token: issued.token,
      expires_in: issued.expiresIn,
      issued_at: issued.issuedAt,
    };
    if (queryParam(request.query, 'offline_token') === 'true' && principal.kind !== 'anonymous') {
      body.refresh_token = await tokens.createRefreshToken(
        principal,
        queryParam(request.query, 'client_id') ?? '',
      );
    }
    return sendJson(reply, body);
  });

  app.post('/auth/token', async (request, reply) => {
    const form = new URLSearchParams(
      (await readBody(request, FORM_LIMIT, () => oauthError(413, 'form too large'))).toString('utf8'),
    );
    checkService(form.get('service') ?? undefined);
    const grantType = form.get('grant_type');
    let principal: Principal;
    let refreshToken: string | undefined;
    if (grantType === 'password') {
      const username = form.get('username');
      const password = form.get('password');
      if (!username || password === null) throw oauthError(400, 'username and password are required');
      principal = await login(request, username, password);
      if (form.get('access_type') === 'offline') {
        refreshToken = await tokens.createRefreshToken(principal, form.get('client_id') ?? '');
      }
    } else if (grantType === 'refresh_token') {
      const token = form.get('refresh_token');
      if (!token) throw oauthError(400, 'refresh_token is required');
      principal = await fromRefreshToken(token);
      refreshToken = token;
    } else {
      throw oauthError(400, `unsupported grant_type ${JSON.stringify((grantType ?? '').slice(0, 50))}`);
    }
    const granted = await access.grant(principal, parseScopes(form.getAll('scope')));
    const issued = await tokens.issue(principal, granted);
    return sendJson(reply, {
      access_token: issued.token,
      scope: formatScopes(granted),
      expires_in: issued.expiresIn,
      issued_at: issued.issuedAt,
      ...(refreshToken !== undefined ? { refresh_token: refreshToken } : {}),
    });
  });

  app.get('/auth/jwks.json', async (_request, reply) => sendJson(reply, await auth.keys.jwks()));
}

function sendJson(reply: FastifyReply, body: unknown): FastifyReply {
  return reply
    .code(200)
    .header('Cache-Control', 'no-store')
    .type('application/json')
    .send(JSON.stringify(body));
}

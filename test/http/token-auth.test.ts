/**
 * The built-in token service on the wire (WIRE.md "Token auth"): GET and POST `/auth/token`, `/auth/jwks.json`,
 * what tokens grant (the `access` claim, decoded and compared exactly), which tokens `/v2` refuses, key rotation,
 * refresh tokens, failed-login rate limiting, that credentials never reach the log, the `docker login` flow, and
 * trust in an external issuer (a JWKS URL, a certificate bundle).
 */
import assert from 'node:assert/strict';
import { randomBytes, X509Certificate, webcrypto } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { exportJWK, generateKeyPair, importPKCS8, SignJWT, type CryptoKey, type JWK } from 'jose';
import { libtrustKeyId } from '../../src/auth/token/external-trust.ts';
import { parseScopes } from '../../src/auth/scopes.ts';
import { createCertificateAuthority, issueClientCertificate } from '../../src/tls/certificates.ts';
import { assertError, createTestRegistry, json, type Response, type TestRegistry } from '../helpers/app.ts';
import {
  addNamespace,
  addRobot,
  addUser,
  basic,
  bearer,
  decodeJwt,
  getToken,
  invalidate,
  parseChallenge,
  postToken,
  pushImageAs,
  putManifestAs,
  tokenRequest,
  uniqueManifest,
  type TokenResponse,
} from '../helpers/auth.ts';
import { startBerth } from '../helpers/server.ts';

const REALM = 'http://localhost:80/auth/token';
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

const ROOT = basic('root', 'root-pw');
const DAVE = basic('dave', 'dave-pw'); // developer on team
const RITA = basic('rita', 'rita-pw'); // reader on team
const OLGA = basic('olga', 'olga-pw'); // nothing

/** A registry in token mode with `team` (private) and `pub` (public) and an image in each. */
async function tokenRegistry(overrides: Record<string, unknown> = {}): Promise<TestRegistry> {
  const reg = await createTestRegistry({ 'auth.mode': 'token', ...overrides });
  await addUser(reg, 'root', 'root-pw', { admin: true });
  await addUser(reg, 'dave', 'dave-pw');
  await addUser(reg, 'rita', 'rita-pw');
  await addUser(reg, 'olga', 'olga-pw');
  await addUser(reg, 'mona', 'mona-pw');
  await addRobot(reg, 'robot$ci', 'robot-secret');
  await addNamespace(reg, 'team', 'private', [
    ['user', 'dave', 'developer'],
    ['user', 'rita', 'reader'],
    ['user', 'mona', 'maintainer'],
    ['robot', 'robot$ci', 'developer'],
  ]);
  await addNamespace(reg, 'pub', 'public');
  await pushImageAs(reg, ROOT, 'team/app', 'v1');
  await pushImageAs(reg, ROOT, 'pub/app', 'v1');
  return reg;
}

function accessOf(res: Response, field: 'token' | 'access_token' = 'token'): unknown {
  assert.equal(res.statusCode, 200, res.body);
  return decodeJwt(json<Record<string, string>>(res)[field] as string).payload.access;
}

function invalidTokenChallenge(): string {
  return `Bearer realm="${REALM}",service="berth",error="invalid_token"`;
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

describe('GET /auth/token', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await tokenRegistry();
  });
  after(async () => {
    await reg.dispose();
  });

  it('with Basic credentials answers 200 {token, access_token, expires_in >= 60, issued_at (RFC 3339)}', async () => {
    const before = Math.floor(Date.now() / 1000);
    const res = await tokenRequest(reg, DAVE, ['repository:team/app:pull']);
    assert.equal(res.statusCode, 200, res.body);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    const body = json<TokenResponse>(res);
    assert.deepEqual(Object.keys(body).sort(), ['access_token', 'expires_in', 'issued_at', 'token']);
    assert.equal(body.token, body.access_token);
    assert.equal(typeof body.expires_in, 'number');
    assert.ok(body.expires_in >= 60, `expires_in ${body.expires_in}`);
    assert.match(body.issued_at, RFC3339);
    const issued = Date.parse(body.issued_at) / 1000;
    assert.ok(issued >= before - 1 && issued <= Date.now() / 1000 + 1, body.issued_at);
    const { header, payload } = decodeJwt(body.token);
    assert.equal(header.alg, 'ES256');
    assert.equal(typeof header.kid, 'string');
    assert.equal(payload.iss, 'berth');
    assert.equal(payload.aud, 'berth');
    assert.equal(payload.sub, 'dave');
    assert.equal((payload.exp as number) - (payload.iat as number), body.expires_in);
    assert.deepEqual(payload.access, [{ type: 'repository', name: 'team/app', actions: ['pull'] }]);
  });

  it('expires_in follows auth.token.expiration', async () => {
    const short = await createTestRegistry({ 'auth.mode': 'token', 'auth.token.expiration': '90s' });
    try {
      const res = await tokenRequest(short, {}, []);
      assert.equal(json<TokenResponse>(res).expires_in, 90);
    } finally {
      await short.dispose();
    }
  });

  it('grants several `scope` parameters and several space-separated scopes in one parameter', async () => {
    const q = new URLSearchParams({ service: 'berth' });
    q.append('scope', 'repository:team/app:pull');
    q.append('scope', 'repository:team/other:pull,push registry:catalog:*');
    const res = await reg.inject({ method: 'GET', url: `/auth/token?${q.toString()}`, headers: DAVE });
    assert.deepEqual(accessOf(res), [
      { type: 'repository', name: 'team/app', actions: ['pull'] },
      { type: 'repository', name: 'team/other', actions: ['pull', 'push'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
  });

  it('reads a `+` in the query (Go url.Values encoding) as the space between scopes', async () => {
    const res = await reg.inject({
      method: 'GET',
      url: '/auth/token?service=berth&scope=repository%3Ateam%2Fapp%3Apull+repository%3Apub%2Fapp%3Apull',
      headers: DAVE,
    });
    assert.deepEqual(accessOf(res), [
      { type: 'repository', name: 'team/app', actions: ['pull'] },
      { type: 'repository', name: 'pub/app', actions: ['pull'] },
    ]);
  });

  it('merges repeated scopes for the same repository', async () => {
    const res = await tokenRequest(reg, DAVE, ['repository:team/app:pull', 'repository:team/app:push']);
    assert.deepEqual(accessOf(res), [{ type: 'repository', name: 'team/app', actions: ['pull', 'push'] }]);
  });

  it('splits a scope on its first and last colon only (names may carry host:port)', () => {
    assert.deepEqual(parseScopes(['repository:localhost:5000/team/app:pull,push']), [
      { type: 'repository', name: 'localhost:5000/team/app', actions: ['pull', 'push'] },
    ]);
    assert.deepEqual(parseScopes(['registry:catalog:*']), [
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
  });

  it('a host:port scope is parsed as one name and, not being a repository name here, grants nothing else', async () => {
    const res = await tokenRequest(reg, ROOT, [
      'repository:localhost:5000/team/app:pull,push',
      'repository:team/app:pull',
    ]);
    assert.deepEqual(accessOf(res), [{ type: 'repository', name: 'team/app', actions: ['pull'] }]);
  });

  const grants: {
    label: string;
    creds: Record<string, string>;
    scope: string;
    access: unknown[];
  }[] = [
    {
      label: 'reader asking pull,push,delete gets pull',
      creds: RITA,
      scope: 'repository:team/app:pull,push,delete',
      access: [{ type: 'repository', name: 'team/app', actions: ['pull'] }],
    },
    {
      label: 'developer asking pull,push,delete gets pull,push',
      creds: DAVE,
      scope: 'repository:team/app:pull,push,delete',
      access: [{ type: 'repository', name: 'team/app', actions: ['pull', 'push'] }],
    },
    {
      label: 'maintainer asking * gets pull,push,delete',
      creds: basic('mona', 'mona-pw'),
      scope: 'repository:team/app:*',
      access: [{ type: 'repository', name: 'team/app', actions: ['pull', 'push', 'delete'] }],
    },
    {
      label: 'developer asking * gets pull,push',
      creds: DAVE,
      scope: 'repository:team/app:*',
      access: [{ type: 'repository', name: 'team/app', actions: ['pull', 'push'] }],
    },
    {
      label: 'system admin asking * on a repository of no namespace gets everything',
      creds: ROOT,
      scope: 'repository:nowhere/app:*',
      access: [{ type: 'repository', name: 'nowhere/app', actions: ['pull', 'push', 'delete'] }],
    },
    {
      label: 'robot developer asking push,pull gets pull,push',
      creds: basic('robot$ci', 'robot-secret'),
      scope: 'repository:team/app:push,pull',
      access: [{ type: 'repository', name: 'team/app', actions: ['pull', 'push'] }],
    },
    {
      label: 'unrelated user gets nothing on a private repository (200, not an error)',
      creds: OLGA,
      scope: 'repository:team/app:pull',
      access: [],
    },
    {
      label: 'unrelated user asking * on a public repository gets pull',
      creds: OLGA,
      scope: 'repository:pub/app:*',
      access: [{ type: 'repository', name: 'pub/app', actions: ['pull'] }],
    },
    {
      label: 'unknown actions are dropped',
      creds: DAVE,
      scope: 'repository:team/app:pull,frobnicate',
      access: [{ type: 'repository', name: 'team/app', actions: ['pull'] }],
    },
    {
      label: 'registry:catalog:* is granted to any user',
      creds: OLGA,
      scope: 'registry:catalog:*',
      access: [{ type: 'registry', name: 'catalog', actions: ['*'] }],
    },
    {
      label: 'registry:catalog:search is granted as asked',
      creds: OLGA,
      scope: 'registry:catalog:search',
      access: [{ type: 'registry', name: 'catalog', actions: ['search'] }],
    },
    {
      label: 'anonymous gets only public pulls',
      creds: {},
      scope: 'repository:team/app:pull repository:pub/app:pull,push,delete',
      access: [{ type: 'repository', name: 'pub/app', actions: ['pull'] }],
    },
    {
      label: 'an invalid repository name is not granted',
      creds: ROOT,
      scope: 'repository:Team/App:pull',
      access: [],
    },
  ];
  for (const g of grants) {
    it(`intersection: ${g.label}`, async () => {
      assert.deepEqual(accessOf(await tokenRequest(reg, g.creds, [g.scope])), g.access);
    });
  }

  it('anonymous (no credentials) gets a token without subject and without refresh token', async () => {
    const res = await tokenRequest(reg, {}, ['repository:pub/app:pull'], {
      offline_token: 'true',
      client_id: 'x',
    });
    const body = json<TokenResponse>(res);
    assert.equal(body.refresh_token, undefined);
    assert.equal(decodeJwt(body.token).payload.sub, '');
    const pull = await reg.inject({
      method: 'GET',
      url: '/v2/pub/app/tags/list',
      headers: bearer(body.token),
    });
    assert.equal(pull.statusCode, 200);
  });

  it('offline_token=true&client_id=x returns a refresh_token that POST grant_type=refresh_token redeems', async () => {
    const res = await tokenRequest(reg, DAVE, ['repository:team/app:pull'], {
      offline_token: 'true',
      client_id: 'x',
    });
    const body = json<TokenResponse>(res);
    assert.equal(typeof body.refresh_token, 'string');
    const refreshed = await postToken(reg, {
      grant_type: 'refresh_token',
      refresh_token: body.refresh_token as string,
      client_id: 'x',
      service: 'berth',
      scope: 'repository:team/app:pull,push',
    });
    assert.equal(refreshed.statusCode, 200, refreshed.body);
    const r = json<TokenResponse>(refreshed);
    assert.equal(r.refresh_token, body.refresh_token);
    assert.equal(r.scope, 'repository:team/app:pull,push');
    assert.equal(decodeJwt(r.access_token).payload.sub, 'dave');
    assert.deepEqual(accessOf(refreshed, 'access_token'), [
      { type: 'repository', name: 'team/app', actions: ['pull', 'push'] },
    ]);
  });

  it('wrong password -> 401 and an audit entry `login` with success=false', async () => {
    const res = await tokenRequest(reg, basic('dave', 'not-the-password'), ['repository:team/app:pull']);
    assertError(res, 401, 'UNAUTHORIZED');
    const audit = await reg.services.auth.store.queryAudit({
      action: 'login',
      actor: 'dave',
      success: false,
      limit: 10,
    });
    assert.equal(audit.items.length, 1);
    assert.equal(audit.items[0]?.actorKind, 'user');
    assert.equal(audit.items[0]?.success, false);
    assert.ok(!JSON.stringify(audit.items).includes('not-the-password'), 'no password in the audit log');
  });

  it('a successful token login is audited too', async () => {
    await tokenRequest(reg, RITA, []);
    const audit = await reg.services.auth.store.queryAudit({ action: 'login', actor: 'rita', limit: 10 });
    assert.ok(audit.items.some((e) => e.success));
  });

  it('unknown user -> 401', async () => {
    assertError(await tokenRequest(reg, basic('nobody', 'x'), []), 401, 'UNAUTHORIZED');
  });

  it('non-Basic credentials -> 401', async () => {
    assertError(await tokenRequest(reg, { authorization: 'Bearer abc' }, []), 401, 'UNAUTHORIZED');
  });

  it('wrong service -> 400', async () => {
    const res = await reg.inject({ method: 'GET', url: '/auth/token?service=elsewhere', headers: DAVE });
    assert.equal(res.statusCode, 400, res.body);
  });

  it('no service parameter is accepted', async () => {
    const res = await reg.inject({ method: 'GET', url: '/auth/token', headers: DAVE });
    assert.equal(res.statusCode, 200, res.body);
  });
});

describe('POST /auth/token', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await tokenRegistry();
  });
  after(async () => {
    await reg.dispose();
  });

  it('grant_type=password answers {access_token, scope, expires_in, issued_at} with the intersection', async () => {
    const res = await postToken(reg, {
      grant_type: 'password',
      username: 'rita',
      password: 'rita-pw',
      client_id: 'containerd',
      service: 'berth',
      scope: ['repository:team/app:pull,push', 'repository:pub/app:pull'],
    });
    assert.equal(res.statusCode, 200, res.body);
    const body = json<TokenResponse>(res);
    assert.deepEqual(Object.keys(body).sort(), ['access_token', 'expires_in', 'issued_at', 'scope']);
    assert.ok(body.expires_in >= 60);
    assert.match(body.issued_at, RFC3339);
    assert.equal(body.scope, 'repository:team/app:pull repository:pub/app:pull');
    assert.deepEqual(accessOf(res, 'access_token'), [
      { type: 'repository', name: 'team/app', actions: ['pull'] },
      { type: 'repository', name: 'pub/app', actions: ['pull'] },
    ]);
  });

  it('grant_type=password with access_type=offline returns a refresh_token', async () => {
    const res = await postToken(reg, {
      grant_type: 'password',
      username: 'dave',
      password: 'dave-pw',
      access_type: 'offline',
      client_id: 'containerd',
    });
    const body = json<TokenResponse>(res);
    assert.equal(typeof body.refresh_token, 'string');
    const again = await postToken(reg, {
      grant_type: 'refresh_token',
      refresh_token: body.refresh_token as string,
      scope: 'repository:team/app:pull',
    });
    assert.deepEqual(accessOf(again, 'access_token'), [
      { type: 'repository', name: 'team/app', actions: ['pull'] },
    ]);
  });

  it('a robot logs in with grant_type=password', async () => {
    const res = await postToken(reg, {
      grant_type: 'password',
      username: 'robot$ci',
      password: 'robot-secret',
      scope: 'repository:team/app:push',
    });
    assert.deepEqual(accessOf(res, 'access_token'), [
      { type: 'repository', name: 'team/app', actions: ['push'] },
    ]);
  });

  it('wrong password -> 401 and an audit entry', async () => {
    const res = await postToken(reg, { grant_type: 'password', username: 'rita', password: 'wrong' });
    assertError(res, 401, 'UNAUTHORIZED');
    const audit = await reg.services.auth.store.queryAudit({
      action: 'login',
      actor: 'rita',
      success: false,
      limit: 5,
    });
    assert.equal(audit.items.length, 1);
  });

  const bad: { label: string; form: Record<string, string>; status: number }[] = [
    { label: 'unknown grant_type', form: { grant_type: 'client_credentials' }, status: 400 },
    { label: 'no grant_type', form: { username: 'dave', password: 'dave-pw' }, status: 400 },
    {
      label: 'password grant without username',
      form: { grant_type: 'password', password: 'x' },
      status: 400,
    },
    { label: 'refresh grant without refresh_token', form: { grant_type: 'refresh_token' }, status: 400 },
    {
      label: 'wrong service',
      form: { grant_type: 'password', username: 'dave', password: 'dave-pw', service: 'elsewhere' },
      status: 400,
    },
    {
      label: 'an unknown refresh token',
      form: {
        grant_type: 'refresh_token',
        refresh_token: `${'0'.repeat(8)}-0000-0000-0000-${'0'.repeat(12)}.x`,
      },
      status: 401,
    },
    {
      label: 'a malformed refresh token',
      form: { grant_type: 'refresh_token', refresh_token: 'garbage' },
      status: 401,
    },
  ];
  for (const b of bad) {
    it(`${b.label} -> ${b.status}`, async () => {
      const res = await postToken(reg, b.form);
      assert.equal(res.statusCode, b.status, res.body);
      assert.ok(Array.isArray(json<{ errors: unknown[] }>(res).errors));
    });
  }

  it('a refresh token of a deleted user is refused', async () => {
    await addUser(reg, 'gone', 'gone-pw');
    const res = await postToken(reg, {
      grant_type: 'password',
      username: 'gone',
      password: 'gone-pw',
      access_type: 'offline',
    });
    const refresh = json<TokenResponse>(res).refresh_token as string;
    assert.equal(
      (await postToken(reg, { grant_type: 'refresh_token', refresh_token: refresh })).statusCode,
      200,
    );
    await reg.services.auth.store.deleteUser('gone');
    invalidate(reg);
    const after = await postToken(reg, { grant_type: 'refresh_token', refresh_token: refresh });
    assertError(after, 401, 'UNAUTHORIZED');
  });

  it('a refresh token of a user deleted and re-created under the same name is refused', async () => {
    await addUser(reg, 'phoenix', 'phoenix-pw');
    const res = await postToken(reg, {
      grant_type: 'password',
      username: 'phoenix',
      password: 'phoenix-pw',
      access_type: 'offline',
    });
    const refresh = json<TokenResponse>(res).refresh_token as string;
    await reg.services.auth.store.deleteUser('phoenix');
    await addUser(reg, 'phoenix', 'other-pw');
    invalidate(reg);
    assertError(
      await postToken(reg, { grant_type: 'refresh_token', refresh_token: refresh }),
      401,
      'UNAUTHORIZED',
    );
  });

  it('a refresh token of a disabled user is refused, and works again once re-enabled', async () => {
    const res = await postToken(reg, {
      grant_type: 'password',
      username: 'mona',
      password: 'mona-pw',
      access_type: 'offline',
    });
    const refresh = json<TokenResponse>(res).refresh_token as string;
    await reg.services.auth.store.updateUser('mona', { disabled: true });
    invalidate(reg);
    assertError(
      await postToken(reg, { grant_type: 'refresh_token', refresh_token: refresh }),
      401,
      'UNAUTHORIZED',
    );
    await reg.services.auth.store.updateUser('mona', { disabled: false });
    invalidate(reg);
    assert.equal(
      (await postToken(reg, { grant_type: 'refresh_token', refresh_token: refresh })).statusCode,
      200,
    );
  });

  it('a refresh token with a wrong secret part is refused', async () => {
    const res = await postToken(reg, {
      grant_type: 'password',
      username: 'dave',
      password: 'dave-pw',
      access_type: 'offline',
    });
    const refresh = json<TokenResponse>(res).refresh_token as string;
    const forged = `${refresh.slice(0, refresh.indexOf('.'))}.${randomBytes(32).toString('base64url')}`;
    assertError(
      await postToken(reg, { grant_type: 'refresh_token', refresh_token: forged }),
      401,
      'UNAUTHORIZED',
    );
  });
});

describe('tokens /v2 refuses', () => {
  let reg: TestRegistry;
  let good: string;
  before(async () => {
    reg = await tokenRegistry();
    good = await getToken(reg, DAVE, ['repository:team/app:pull']);
  });
  after(async () => {
    await reg.dispose();
  });

  /** Signs a token with the server's current key. */
  const signWithServerKey = async (claims: {
    iss?: string;
    aud?: string;
    exp?: number;
    sub?: string;
  }): Promise<string> => {
    const { kid, key } = await reg.services.auth.keys.signingKey();
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ access: [{ type: 'repository', name: 'team/app', actions: ['pull'] }] })
      .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
      .setIssuer(claims.iss ?? 'berth')
      .setAudience(claims.aud ?? 'berth')
      .setSubject(claims.sub ?? 'dave')
      .setIssuedAt(now - 600)
      .setExpirationTime(claims.exp ?? now + 300)
      .sign(key);
  };

  it('a token signed by the server key with the right claims is accepted (control)', async () => {
    const token = await signWithServerKey({});
    const res = await reg.inject({ method: 'GET', url: '/v2/team/app/tags/list', headers: bearer(token) });
    assert.equal(res.statusCode, 200, res.body);
  });

  const cases: { label: string; token: () => Promise<string> }[] = [
    {
      label: 'a tampered signature',
      token: async () => {
        const [h, p, s] = good.split('.') as [string, string, string];
        const sig = Buffer.from(s, 'base64url');
        sig[10] = (sig[10] as number) ^ 0xff;
        return `${h}.${p}.${sig.toString('base64url')}`;
      },
    },
    {
      label: 'a tampered payload (more access) under the original signature',
      token: async () => {
        const [h, p, s] = good.split('.') as [string, string, string];
        const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
        payload.access = [{ type: 'repository', name: 'team/app', actions: ['pull', 'push', 'delete'] }];
        return `${h}.${b64url(payload)}.${s}`;
      },
    },
    { label: 'a wrong audience', token: () => signWithServerKey({ aud: 'other-registry' }) },
    { label: 'a wrong issuer', token: () => signWithServerKey({ iss: 'someone-else' }) },
    {
      label: 'an expired token',
      token: () => signWithServerKey({ exp: Math.floor(Date.now() / 1000) - 60 }),
    },
    {
      label: 'an unknown kid',
      token: async () => {
        const { privateKey } = await generateKeyPair('ES256');
        return new SignJWT({ access: [{ type: 'repository', name: 'team/app', actions: ['pull'] }] })
          .setProtectedHeader({ alg: 'ES256', kid: 'no-such-key' })
          .setIssuer('berth')
          .setAudience('berth')
          .setSubject('dave')
          .setExpirationTime('5m')
          .sign(privateKey);
      },
    },
    {
      label: 'a token signed by another key under the server kid',
      token: async () => {
        const { kid } = await reg.services.auth.keys.signingKey();
        const { privateKey } = await generateKeyPair('ES256');
        return new SignJWT({ access: [{ type: 'repository', name: 'team/app', actions: ['pull'] }] })
          .setProtectedHeader({ alg: 'ES256', kid })
          .setIssuer('berth')
          .setAudience('berth')
          .setSubject('dave')
          .setExpirationTime('5m')
          .sign(privateKey);
      },
    },
    {
      label: 'alg: none',
      token: async () => {
        const { kid } = await reg.services.auth.keys.signingKey();
        const now = Math.floor(Date.now() / 1000);
        return `${b64url({ alg: 'none', kid, typ: 'JWT' })}.${b64url({
          iss: 'berth',
          aud: 'berth',
          sub: 'dave',
          exp: now + 300,
          access: [{ type: 'repository', name: 'team/app', actions: ['pull'] }],
        })}.`;
      },
    },
    {
      label: 'a token without exp',
      token: async () => {
        const { kid, key } = await reg.services.auth.keys.signingKey();
        return new SignJWT({ access: [{ type: 'repository', name: 'team/app', actions: ['pull'] }] })
          .setProtectedHeader({ alg: 'ES256', kid })
          .setIssuer('berth')
          .setAudience('berth')
          .setSubject('dave')
          .sign(key);
      },
    },
    { label: 'garbage', token: async () => 'not-a-jwt' },
    { label: 'an empty bearer', token: async () => '' },
  ];
  for (const c of cases) {
    it(`${c.label} -> 401 error="invalid_token"`, async () => {
      const res = await reg.inject({
        method: 'GET',
        url: '/v2/team/app/tags/list',
        headers: bearer(await c.token()),
      });
      assertError(res, 401, 'UNAUTHORIZED');
      assert.equal(res.headers['www-authenticate'], invalidTokenChallenge());
    });
  }

  it('a refresh token is not an access token', async () => {
    const res = await tokenRequest(reg, DAVE, [], { offline_token: 'true', client_id: 'x' });
    const refresh = json<TokenResponse>(res).refresh_token as string;
    const v2 = await reg.inject({ method: 'GET', url: '/v2/', headers: bearer(refresh) });
    assertError(v2, 401, 'UNAUTHORIZED');
    assert.equal(v2.headers['www-authenticate'], invalidTokenChallenge());
  });
});

describe('signing key rotation and /auth/jwks.json', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await tokenRegistry();
  });
  after(async () => {
    await reg.dispose();
  });

  it('lists the public keys (no private parts)', async () => {
    const res = await reg.inject({ method: 'GET', url: '/auth/jwks.json' });
    assert.equal(res.statusCode, 200);
    const { keys } = json<{ keys: JWK[] }>(res);
    assert.equal(keys.length, 1);
    const { kid } = await reg.services.auth.keys.signingKey();
    assert.equal(keys[0]?.kid, kid);
    assert.equal(keys[0]?.kty, 'EC');
    assert.equal(keys[0]?.crv, 'P-256');
    assert.equal(keys[0]?.alg, 'ES256');
    assert.equal(keys[0]?.use, 'sig');
    assert.equal(keys[0]?.d, undefined, 'no private key');
  });

  it('after rotate(), old tokens still verify, new tokens carry the new kid, and both keys are listed', async () => {
    const oldToken = await getToken(reg, DAVE, ['repository:team/app:pull']);
    const oldKid = decodeJwt(oldToken).header.kid;
    const newKid = await reg.services.auth.keys.rotate();
    assert.notEqual(newKid, oldKid);

    const oldUse = await reg.inject({
      method: 'GET',
      url: '/v2/team/app/tags/list',
      headers: bearer(oldToken),
    });
    assert.equal(oldUse.statusCode, 200, oldUse.body);

    const newToken = await getToken(reg, DAVE, ['repository:team/app:pull']);
    assert.equal(decodeJwt(newToken).header.kid, newKid);
    const newUse = await reg.inject({
      method: 'GET',
      url: '/v2/team/app/tags/list',
      headers: bearer(newToken),
    });
    assert.equal(newUse.statusCode, 200, newUse.body);

    const kids = json<{ keys: JWK[] }>(await reg.inject({ method: 'GET', url: '/auth/jwks.json' })).keys.map(
      (k) => k.kid,
    );
    assert.deepEqual(new Set(kids), new Set([oldKid, newKid]));
    // Nothing can be pruned yet: the retired key still has live tokens.
    assert.deepEqual(await reg.services.auth.keys.prune(), []);
  });

  it('new tokens carry the new kid at once even when a key read was running during rotate()', async () => {
    const fresh = await createTestRegistry({ 'auth.mode': 'token' });
    const store = fresh.services.auth.store;
    const original = store.listSigningKeys.bind(store);
    let slowOnce = true;
    // The read a token with an unknown kid triggers sees the keys before the rotation and finishes after it.
    store.listSigningKeys = async () => {
      const rows = await original();
      if (slowOnce) {
        slowOnce = false;
        await new Promise((r) => setTimeout(r, 150));
      }
      return rows;
    };
    try {
      const { privateKey } = await generateKeyPair('ES256');
      const stranger = await new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid: 'not-yet-known' })
        .setAudience('berth')
        .setIssuer('berth')
        .setExpirationTime('5m')
        .sign(privateKey);
      const inflight = fresh.inject({ method: 'GET', url: '/v2/', headers: bearer(stranger) });
      await new Promise((r) => setTimeout(r, 30));
      const newKid = await fresh.services.auth.keys.rotate();
      const res = await tokenRequest(fresh, {}, []);
      assert.equal(decodeJwt(json<TokenResponse>(res).token).header.kid, newKid);
      assert.equal((await inflight).statusCode, 401);
      const kids = json<{ keys: JWK[] }>(await fresh.inject({ method: 'GET', url: '/auth/jwks.json' })).keys;
      assert.ok(
        kids.some((k) => k.kid === newKid),
        'the JWKS lists the new key',
      );
    } finally {
      store.listSigningKeys = original;
      await fresh.dispose();
    }
  });

  it('a new instance on the same database verifies tokens of the first and signs with the same key', async () => {
    const token = await getToken(reg, DAVE, ['repository:team/app:pull']);
    const second = await createTestRegistry({ 'auth.mode': 'token' }, { dataDir: reg.dataDir });
    try {
      const res = await second.inject({
        method: 'GET',
        url: '/v2/team/app/tags/list',
        headers: bearer(token),
      });
      assert.equal(res.statusCode, 200, res.body);
      const other = await getToken(second, DAVE, ['repository:team/app:pull']);
      assert.equal(decodeJwt(other).header.kid, decodeJwt(token).header.kid);
    } finally {
      await second.close();
    }
  });
});

describe('failed-login rate limiting (auth.maxFailedLogins: 3, auth.maxFailedLoginsPerAddress: 6)', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await tokenRegistry({
      'auth.maxFailedLogins': 3,
      'auth.maxFailedLoginsPerAddress': 6,
      'auth.failedLoginWindow': '10m',
    });
  });
  after(async () => {
    await reg.dispose();
  });

  const tokenFrom = (
    creds: Record<string, string>,
    remoteAddress: string,
    on: TestRegistry = reg,
  ): Promise<Response> =>
    on.inject({ method: 'GET', url: '/auth/token?service=berth', headers: creds, remoteAddress });

  const assert429 = (res: Response): void => {
    assertError(res, 429, 'TOOMANYREQUESTS');
    const retry = Number(res.headers['retry-after']);
    assert.ok(
      Number.isInteger(retry) && retry > 0 && retry <= 600,
      `Retry-After ${res.headers['retry-after']}`,
    );
  };

  it('three failures are 401, then that name from that address gets 429 even with the right password', async () => {
    for (let i = 0; i < 3; i++)
      assertError(await tokenFrom(basic('dave', `bad-${i}`), '10.0.0.1'), 401, 'UNAUTHORIZED');
    assert429(await tokenFrom(basic('dave', `bad-again`), '10.0.0.1'));
    assert429(await tokenFrom(DAVE, '10.0.0.1'));
    assert429(await reg.inject({ method: 'GET', url: '/v2/', headers: DAVE, remoteAddress: '10.0.0.1' }));
  });

  it('the same name from another address, and another name from the same address, still log in', async () => {
    assert.equal((await tokenFrom(DAVE, '10.0.0.2')).statusCode, 200);
    assert.equal(
      (await reg.inject({ method: 'GET', url: '/v2/', headers: DAVE, remoteAddress: '10.0.0.3' })).statusCode,
      200,
    );
    assert.equal((await tokenFrom(RITA, '10.0.0.1')).statusCode, 200);
  });

  it('made-up names from one address do not lock out the admin until the address ceiling', async () => {
    for (let i = 0; i < 5; i++) {
      assertError(await tokenFrom(basic(`nobody${i}`, 'x'), '10.2.0.1'), 401, 'UNAUTHORIZED');
    }
    assert.equal((await tokenFrom(basic('root', 'root-pw'), '10.2.0.1')).statusCode, 200);
    // The sixth failure from the address reaches its ceiling: now every name from it is refused.
    assertError(await tokenFrom(basic('nobody5', 'x'), '10.2.0.1'), 401, 'UNAUTHORIZED');
    assert429(await tokenFrom(OLGA, '10.2.0.1'));
    assert.equal((await tokenFrom(OLGA, '10.2.0.2')).statusCode, 200);
  });

  it('failures on /v2 with Basic and on the POST token endpoint count as well', async () => {
    for (let i = 0; i < 2; i++) {
      const res = await reg.inject({
        method: 'GET',
        url: '/v2/',
        headers: basic('robot$ci', `x${i}`),
        remoteAddress: '10.1.0.1',
      });
      assertError(res, 401, 'UNAUTHORIZED');
    }
    const post = await reg.inject({
      method: 'POST',
      url: '/auth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'grant_type=password&username=robot%24ci&password=wrong',
      remoteAddress: '10.1.0.1',
    });
    assert.equal(post.statusCode, 401);
    assert429(await tokenFrom(basic('robot$ci', 'robot-secret'), '10.1.0.1'));
  });

  it('a second instance on the same database sees the same counters', async () => {
    const second = await createTestRegistry(
      {
        'auth.mode': 'token',
        'auth.maxFailedLogins': 3,
        'auth.maxFailedLoginsPerAddress': 6,
        'auth.failedLoginWindow': '10m',
      },
      { dataDir: reg.dataDir },
    );
    try {
      assert429(await tokenFrom(DAVE, '10.0.0.1', second));
      assertError(await tokenFrom(basic('mona', 'bad-0'), '10.3.0.1'), 401, 'UNAUTHORIZED');
      assertError(await tokenFrom(basic('mona', 'bad-1'), '10.3.0.1', second), 401, 'UNAUTHORIZED');
      assertError(await tokenFrom(basic('mona', 'bad-2'), '10.3.0.1'), 401, 'UNAUTHORIZED');
      assert429(await tokenFrom(basic('mona', 'mona-pw'), '10.3.0.1', second));
    } finally {
      await second.close();
    }
  });

  it('an administrator lists the locks and lifts them through the API', async () => {
    const root = basic('root', 'root-pw');
    const listed = await reg.inject({ method: 'GET', url: '/api/v1/login-locks', headers: root });
    assert.equal(listed.statusCode, 200, listed.body);
    const locks = json<{
      items: { account: string | null; address: string; failures: number; until: string }[];
    }>(listed).items;
    assert.ok(locks.some((l) => l.account === 'dave' && l.address === '10.0.0.1' && l.failures === 3));
    assert.ok(locks.some((l) => l.account === null && l.address === '10.2.0.1' && l.failures === 6));
    assert.ok(locks.every((l) => Date.parse(l.until) > Date.now()));

    const denied = await reg.inject({ method: 'GET', url: '/api/v1/login-locks', headers: DAVE });
    assertError(denied, 403, 'DENIED');

    const lifted = await reg.inject({
      method: 'POST',
      url: '/api/v1/users/dave/unlock',
      headers: root,
    });
    assert.equal(lifted.statusCode, 200, lifted.body);
    assert.equal((await tokenFrom(DAVE, '10.0.0.1')).statusCode, 200);

    const address = await reg.inject({
      method: 'DELETE',
      url: '/api/v1/login-locks?address=10.2.0.1',
      headers: root,
    });
    assert.equal(address.statusCode, 200, address.body);
    assert.equal((await tokenFrom(OLGA, '10.2.0.1')).statusCode, 200);

    const audit = await reg.services.auth.store.queryAudit({ action: 'login.unlock', limit: 10 });
    assert.deepEqual(audit.items.map((e) => e.target).sort(), ['10.2.0.1', 'dave']);
  });

  it('a failed login records why, for the administrator only', async () => {
    const res = await tokenFrom(basic('ghost', 'x'), '10.4.0.1');
    assertError(res, 401, 'UNAUTHORIZED');
    assert.doesNotMatch(res.body, /unknown account/);
    await tokenFrom(basic('rita', 'wrong'), '10.4.0.2');
    const reasons = async (actor: string) =>
      (
        await reg.services.auth.store.queryAudit({ actor, action: 'login', success: false, limit: 5 })
      ).items.map((e) => e.detail?.reason);
    assert.deepEqual(await reasons('ghost'), ['unknown account']);
    assert.deepEqual(await reasons('rita'), ['wrong password']);
  });
});

describe('v1 search in token mode', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await tokenRegistry();
  });
  after(async () => {
    await reg.dispose();
  });
  const search = (headers: Record<string, string>) =>
    reg.inject({ method: 'GET', url: '/v1/search?q=', headers });
  const names = (res: Response) => json<{ results: { name: string }[] }>(res).results.map((r) => r.name);

  it('challenges containers/image without credentials, so podman falls back to the catalog with its own', async () => {
    for (const agent of ['containers/5.23.1 (github.com/containers/image)', 'podman/5.4.0', 'buildah/1.39']) {
      const res = await search({ 'user-agent': agent });
      assertError(res, 401, 'UNAUTHORIZED');
      assert.equal(
        parseChallenge(res.headers['www-authenticate']).params.scope,
        'registry:catalog:search',
        agent,
      );
    }
  });

  it('answers Docker and other anonymous clients with the public repositories, and credentials with more', async () => {
    const docker = await search({ 'user-agent': 'docker/20.10.24 go/go1.19.8 os/linux arch/amd64' });
    assert.equal(docker.statusCode, 200);
    assert.deepEqual(names(docker), names(await search({})));
    assert.ok(
      names(docker).every((n) => n.startsWith('pub/')),
      names(docker).join(),
    );
    const withCreds = await search({
      ...DAVE,
      'user-agent': 'containers/5.23.1 (github.com/containers/image)',
    });
    assert.equal(withCreds.statusCode, 200);
    assert.ok(
      names(withCreds).some((n) => n.startsWith('team/')),
      names(withCreds).join(),
    );
  });
});

describe('credentials never reach the log (a real process at log level debug)', () => {
  it('no password, secret or Authorization value appears in any log line', async () => {
    const adminPassword = `Adm1n-${randomBytes(6).toString('hex')}`;
    const wrongPassword = `Wr0ng-${randomBytes(6).toString('hex')}`;
    const berth = await startBerth({
      env: {
        BERTH_AUTH_MODE: 'token',
        BERTH_LOG_LEVEL: 'debug',
        BERTH_ADMIN_PASSWORD: adminPassword,
        BERTH_AUTH_ADMIN_USERNAME: 'boss',
      },
    });
    try {
      const good = `Basic ${Buffer.from(`boss:${adminPassword}`).toString('base64')}`;
      const bad = `Basic ${Buffer.from(`boss:${wrongPassword}`).toString('base64')}`;
      const t = await fetch(
        `${berth.url}/auth/token?service=berth&scope=repository:a/b:pull,push&offline_token=true&client_id=t`,
        {
          headers: { authorization: good },
        },
      );
      assert.equal(t.status, 200);
      const body = (await t.json()) as TokenResponse;
      assert.equal(
        (await fetch(`${berth.url}/auth/token?service=berth`, { headers: { authorization: bad } })).status,
        401,
      );
      const post = await fetch(`${berth.url}/auth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'password',
          username: 'boss',
          password: wrongPassword,
        }).toString(),
      });
      assert.equal(post.status, 401);
      const refresh = await fetch(`${berth.url}/auth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'refresh_token',
          refresh_token: body.refresh_token as string,
        }).toString(),
      });
      assert.equal(refresh.status, 200);
      assert.equal((await fetch(`${berth.url}/v2/`, { headers: { authorization: bad } })).status, 401);
      assert.equal((await fetch(`${berth.url}/v2/`, { headers: { authorization: good } })).status, 200);
      const bearerRes = await fetch(`${berth.url}/v2/a/b/blobs/uploads/`, {
        method: 'POST',
        headers: { authorization: `Bearer ${body.token}` },
      });
      assert.equal(bearerRes.status, 202);
      await new Promise((r) => setTimeout(r, 200));
      const out = berth.output();
      assert.match(out, /"path":"\/auth\/token"/, 'the access log is on');
      const lines = out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const aboutRequests = lines.filter((l) => l.reqId !== undefined);
      assert.ok(aboutRequests.length >= 7, `${aboutRequests.length} lines about requests`);
      for (const line of aboutRequests) assert.equal(line.remote, '127.0.0.1', JSON.stringify(line));
      const access = aboutRequests.filter((l) => l.msg === 'request');
      const upload = access.find((l) => l.method === 'POST' && l.path === '/v2/a/b/blobs/uploads/');
      assert.equal(upload?.user, 'boss', 'the access log names the token holder');
      assert.equal(upload?.userKind, 'user');
      assert.ok(
        access.filter((l) => l.status === 401).every((l) => l.user === undefined),
        'refused credentials name nobody',
      );
      const secrets = [
        adminPassword,
        wrongPassword,
        good.slice(6),
        bad.slice(6),
        body.token,
        (body.refresh_token as string).split('.')[1] as string,
      ];
      for (const s of secrets) assert.ok(!out.includes(s), `the log contains a secret: ${s.slice(0, 12)}...`);
      assert.ok(!/authorization/i.test(out), 'no Authorization header in the log');
    } finally {
      await berth.dispose();
    }
  });
});

describe('docker login flow', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await tokenRegistry();
  });
  after(async () => {
    await reg.dispose();
  });

  it('GET /v2/ -> 401 Bearer challenge without scope; token without scope; GET /v2/ with it -> 200', async () => {
    const first = await reg.inject({ method: 'GET', url: '/v2/' });
    assertError(first, 401, 'UNAUTHORIZED');
    const challenge = parseChallenge(first.headers['www-authenticate']);
    assert.equal(challenge.scheme, 'Bearer');
    assert.deepEqual(challenge.params, { realm: REALM, service: 'berth' });

    const realm = new URL(challenge.params.realm as string);
    const q = new URLSearchParams({
      account: 'dave',
      client_id: 'docker',
      offline_token: 'true',
      service: challenge.params.service as string,
    });
    const tokenRes = await reg.inject({
      method: 'GET',
      url: `${realm.pathname}?${q.toString()}`,
      headers: DAVE,
    });
    assert.equal(tokenRes.statusCode, 200, tokenRes.body);
    const body = json<TokenResponse>(tokenRes);
    assert.deepEqual(decodeJwt(body.token).payload.access, []);
    assert.equal(typeof body.refresh_token, 'string');

    const second = await reg.inject({ method: 'GET', url: '/v2/', headers: bearer(body.token) });
    assert.equal(second.statusCode, 200);
    assert.equal(second.body, '{}');

    // The identity token docker stores then gets scoped tokens for a push.
    const push = await postToken(reg, {
      grant_type: 'refresh_token',
      refresh_token: body.refresh_token as string,
      service: 'berth',
      client_id: 'docker',
      scope: 'repository:team/new:pull,push',
    });
    const start = await reg.inject({
      method: 'POST',
      url: '/v2/team/new/blobs/uploads/',
      headers: bearer(json<TokenResponse>(push).access_token),
    });
    assert.equal(start.statusCode, 202, start.body);
  });

  it('the pull challenge names the scope docker asks for, and that token then pulls', async () => {
    const first = await reg.inject({ method: 'GET', url: '/v2/team/app/manifests/v1' });
    const { params } = parseChallenge(first.headers['www-authenticate']);
    assert.equal(params.scope, 'repository:team/app:pull');
    const token = await getToken(reg, RITA, [params.scope as string]);
    const res = await reg.inject({ method: 'GET', url: '/v2/team/app/manifests/v1', headers: bearer(token) });
    assert.equal(res.statusCode, 200, res.body);
  });

  it('the realm follows publicUrl', async () => {
    const other = await createTestRegistry({
      'auth.mode': 'token',
      publicUrl: 'https://registry.example.test',
    });
    try {
      const res = await other.inject({ method: 'GET', url: '/v2/' });
      assert.equal(
        res.headers['www-authenticate'],
        'Bearer realm="https://registry.example.test/auth/token",service="berth"',
      );
    } finally {
      await other.dispose();
    }
  });
});

/** A signing key pair with its public JWK. */
async function externalKey(kid: string): Promise<{ privateKey: CryptoKey; jwk: JWK }> {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  return { privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } };
}

interface ExternalClaims {
  iss?: string;
  aud?: string;
  sub?: string;
  access?: unknown[];
  exp?: number;
}

function signExternal(
  key: CryptoKey,
  header: Record<string, unknown>,
  claims: ExternalClaims = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    access: claims.access ?? [{ type: 'repository', name: 'team/app', actions: ['pull'] }],
  })
    .setProtectedHeader({ alg: 'ES256', ...header })
    .setIssuer(claims.iss ?? 'https://issuer.example.test')
    .setAudience(claims.aud ?? 'berth')
    .setSubject(claims.sub ?? 'ext-user')
    .setIssuedAt(now)
    .setExpirationTime(claims.exp ?? now + 300)
    .sign(key);
}

describe('external issuer: auth.token.trustJwksUrl', () => {
  let reg: TestRegistry;
  let server: Server;
  let signer: { privateKey: CryptoKey; jwk: JWK };
  let fetches = 0;

  before(async () => {
    signer = await externalKey('ext-key-1');
    server = createServer((req, res) => {
      fetches++;
      if (req.url !== '/jwks.json') {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [signer.jwk] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    reg = await tokenRegistry({
      'auth.token.trustJwksUrl': `http://127.0.0.1:${port}/jwks.json`,
      'auth.token.trustIssuer': 'https://issuer.example.test',
    });
  });
  after(async () => {
    await reg.dispose();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const get = (url: string, token: string): Promise<Response> =>
    reg.inject({ method: 'GET', url, headers: bearer(token) });

  it('accepts a token signed by a key of the JWKS, with exactly the access in its claim', async () => {
    const token = await signExternal(signer.privateKey, { kid: 'ext-key-1' });
    assert.equal((await get('/v2/team/app/tags/list', token)).statusCode, 200);
    assert.ok(fetches > 0, 'the JWKS was fetched');
    // Push is not in the claim: the client must ask the issuer for more (Berth has no roles for it).
    const push = await reg.inject({
      method: 'POST',
      url: '/v2/team/app/blobs/uploads/',
      headers: bearer(token),
    });
    assertError(push, 401, 'UNAUTHORIZED');
    assert.equal(
      push.headers['www-authenticate'],
      `Bearer realm="${REALM}",service="berth",scope="repository:team/app:pull,push",error="insufficient_scope"`,
    );
    // Nor another repository.
    assertError(await get('/v2/pub/app/manifests/v1', token), 401, 'UNAUTHORIZED');
  });

  it('a claim granting push lets the external subject push and move tags (the issuer decides), not delete', async () => {
    const token = await signExternal(
      signer.privateKey,
      { kid: 'ext-key-1' },
      {
        access: [{ type: 'repository', name: 'team/app', actions: ['pull', 'push'] }],
      },
    );
    const img = await pushImageAs(reg, bearer(token), 'team/app', 'ext-1');
    const move = await putManifestAs(
      reg,
      bearer(token),
      'team/app',
      'ext-1',
      uniqueManifest(img.config, img.layer),
    );
    assert.equal(move.statusCode, 201, move.body);
    const pullOnly = await signExternal(
      signer.privateKey,
      { kid: 'ext-key-1' },
      { access: [{ type: 'repository', name: 'team/app', actions: ['pull'] }] },
    );
    const refusedMove = await putManifestAs(
      reg,
      bearer(pullOnly),
      'team/app',
      'ext-1',
      uniqueManifest(img.config, img.layer),
    );
    assertError(refusedMove, 401, 'UNAUTHORIZED');
    // Delete is not in the claim.
    const del = await reg.inject({
      method: 'DELETE',
      url: `/v2/team/app/manifests/${img.digest}`,
      headers: bearer(token),
    });
    assertError(del, 401, 'UNAUTHORIZED');
  });

  it('the catalog needs registry:catalog:* in the claim and shows only public repositories', async () => {
    const token = await signExternal(
      signer.privateKey,
      { kid: 'ext-key-1' },
      {
        access: [{ type: 'registry', name: 'catalog', actions: ['*'] }],
      },
    );
    const res = await get('/v2/_catalog', token);
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(json(res), { repositories: ['pub/app'] });
  });

  const refused: { label: string; token: () => Promise<string> }[] = [
    {
      label: 'a wrong issuer',
      token: () => signExternal(signer.privateKey, { kid: 'ext-key-1' }, { iss: 'https://evil.test' }),
    },
    {
      label: 'a wrong audience',
      token: () => signExternal(signer.privateKey, { kid: 'ext-key-1' }, { aud: 'other' }),
    },
    {
      label: 'an expired token',
      token: () =>
        signExternal(signer.privateKey, { kid: 'ext-key-1' }, { exp: Math.floor(Date.now() / 1000) - 30 }),
    },
    {
      label: 'a kid the JWKS does not list',
      token: async () => signExternal((await externalKey('x')).privateKey, { kid: 'not-listed' }),
    },
    {
      label: 'another key under the listed kid',
      token: async () => signExternal((await externalKey('x')).privateKey, { kid: 'ext-key-1' }),
    },
  ];
  for (const r of refused) {
    it(`refuses ${r.label} -> 401 invalid_token`, async () => {
      const res = await get('/v2/team/app/tags/list', await r.token());
      assertError(res, 401, 'UNAUTHORIZED');
      assert.equal(res.headers['www-authenticate'], invalidTokenChallenge());
    });
  }

  it("the registry's own tokens still work beside the external issuer", async () => {
    const token = await getToken(reg, DAVE, ['repository:team/app:pull']);
    assert.equal((await get('/v2/team/app/tags/list', token)).statusCode, 200);
  });
});

/** Builds a certificate signed by `issuerKey` (a leaf unless `ca`), for hand-made chains. */
async function makeCert(options: {
  subject: string;
  issuer: string;
  issuerKey: webcrypto.CryptoKey;
  publicKey: webcrypto.CryptoKey;
  ca: boolean;
}): Promise<x509.X509Certificate> {
  return x509.X509CertificateGenerator.create(
    {
      serialNumber: randomBytes(8).toString('hex').replace(/^./, '4'),
      subject: `CN=${options.subject}`,
      issuer: options.issuer,
      notBefore: new Date(Date.now() - 3_600_000),
      notAfter: new Date(Date.now() + 86_400_000),
      publicKey: options.publicKey,
      signingKey: options.issuerKey,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [
        new x509.BasicConstraintsExtension(options.ca, undefined, true),
        new x509.KeyUsagesExtension(
          options.ca ? x509.KeyUsageFlags.keyCertSign : x509.KeyUsageFlags.digitalSignature,
          true,
        ),
      ],
    },
    webcrypto as unknown as Parameters<typeof x509.X509CertificateGenerator.create>[1],
  );
}

const derB64 = (pem: string): string => Buffer.from(new X509Certificate(pem).raw).toString('base64');

describe('external issuer: auth.token.trustCertBundle', () => {
  let reg: TestRegistry;
  let dir: string;
  let ca: Awaited<ReturnType<typeof createCertificateAuthority>>;
  let leaf: { cert: string; key: string };
  let leafKey: CryptoKey;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'berth-bundle-'));
    ca = await createCertificateAuthority({ name: 'Token CA' });
    leaf = await issueClientCertificate(ca, 'token-signer');
    leafKey = await importPKCS8(leaf.key, 'ES256');
    await writeFile(path.join(dir, 'bundle.pem'), ca.cert);
    reg = await tokenRegistry({
      'auth.token.trustCertBundle': path.join(dir, 'bundle.pem'),
      'auth.token.trustIssuer': 'https://issuer.example.test',
    });
  });
  after(async () => {
    await reg.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  const pull = (token: string): Promise<Response> =>
    reg.inject({ method: 'GET', url: '/v2/team/app/tags/list', headers: bearer(token) });

  it('accepts a token whose x5c chain ends at a bundle certificate, with the access in its claim', async () => {
    const token = await signExternal(leafKey, { x5c: [derB64(leaf.cert)] });
    assert.equal((await pull(token)).statusCode, 200);
    const token2 = await signExternal(leafKey, { x5c: [derB64(leaf.cert), derB64(ca.cert)] });
    assert.equal((await pull(token2)).statusCode, 200);
    const push = await reg.inject({
      method: 'POST',
      url: '/v2/team/app/blobs/uploads/',
      headers: bearer(token),
    });
    assertError(push, 401, 'UNAUTHORIZED');
  });

  it('accepts a token signed by the bundle key named by its libtrust kid', async () => {
    const caKey = await importPKCS8(ca.key, 'ES256');
    const kid = libtrustKeyId(new X509Certificate(ca.cert).publicKey);
    assert.equal((await pull(await signExternal(caKey, { kid }))).statusCode, 200);
  });

  it('refuses a chain from another CA', async () => {
    const otherCa = await createCertificateAuthority({ name: 'Other CA' });
    const otherLeaf = await issueClientCertificate(otherCa, 'token-signer');
    const token = await signExternal(await importPKCS8(otherLeaf.key, 'ES256'), {
      x5c: [derB64(otherLeaf.cert), derB64(otherCa.cert)],
    });
    const res = await pull(token);
    assertError(res, 401, 'UNAUTHORIZED');
    assert.equal(res.headers['www-authenticate'], invalidTokenChallenge());
  });

  it('refuses a token signed by another key than the x5c leaf', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    assertError(
      await pull(await signExternal(privateKey, { x5c: [derB64(leaf.cert)] })),
      401,
      'UNAUTHORIZED',
    );
  });

  it('refuses a chain through a certificate that is not a CA (a leaf of the bundle CA signing another)', async () => {
    // Anyone holding any leaf of the CA (e.g. a TLS certificate) must not be able to mint trusted signers.
    const leafPkcs8 = Buffer.from(leaf.key.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const leafSigning = await webcrypto.subtle.importKey(
      'pkcs8',
      leafPkcs8,
      { name: 'ECDSA', namedCurve: 'P-256' },
      false,
      ['sign'],
    );
    const rogue = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ]);
    const rogueCert = await makeCert({
      subject: 'rogue',
      issuer: new X509Certificate(leaf.cert).subject,
      issuerKey: leafSigning,
      publicKey: rogue.publicKey,
      ca: false,
    });
    const token = await signExternal(rogue.privateKey as unknown as CryptoKey, {
      x5c: [Buffer.from(rogueCert.rawData).toString('base64'), derB64(leaf.cert)],
    });
    const res = await pull(token);
    assertError(res, 401, 'UNAUTHORIZED');
    assert.equal(res.headers['www-authenticate'], invalidTokenChallenge());
  });

  it('accepts a chain through an intermediate CA', async () => {
    const caSigning = ca.signingKey;
    const inter = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ]);
    const interCert = await makeCert({
      subject: 'Intermediate',
      issuer: ca.certificate.subject,
      issuerKey: caSigning,
      publicKey: inter.publicKey,
      ca: true,
    });
    const signerPair = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ]);
    const signerCert = await makeCert({
      subject: 'signer',
      issuer: 'CN=Intermediate',
      issuerKey: inter.privateKey,
      publicKey: signerPair.publicKey,
      ca: false,
    });
    const token = await signExternal(signerPair.privateKey as unknown as CryptoKey, {
      x5c: [
        Buffer.from(signerCert.rawData).toString('base64'),
        Buffer.from(interCert.rawData).toString('base64'),
      ],
    });
    assert.equal((await pull(token)).statusCode, 200);
  });

  it('refuses a wrong issuer or audience even with a trusted chain', async () => {
    for (const claims of [{ iss: 'https://evil.test' }, { aud: 'elsewhere' }]) {
      const res = await pull(await signExternal(leafKey, { x5c: [derB64(leaf.cert)] }, claims));
      assertError(res, 401, 'UNAUTHORIZED');
    }
  });
});

/**
 * The admin API under /api/v1 through `inject()` with `auth.mode: token`: every endpoint's success and error
 * paths, the authorization matrix (system admin, namespace admin, developer, unrelated user, robot, anonymous),
 * secrets never returned, the last-administrator protection, and the audit log with each filter and the cursor.
 * Every response is checked against `docs/api/openapi.yaml` (schema of its status), and the document is checked
 * against the routes the app registers.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { bootstrapAdmin } from '../../src/auth/bootstrap.ts';
import { MAX_JSON_DEPTH } from '../../src/util/json-depth.ts';
import { hashSecret } from '../../src/auth/passwords.ts';
import { ConfigError, loadConfig } from '../../src/config/load.ts';
import { createServices } from '../../src/container.ts';
import type { FastifyInstance } from 'fastify';
import { assertError, createTestRegistry, json, type Response, type TestRegistry } from '../helpers/app.ts';
import { conforms, deref, DOC, type OpenApi, type Schema } from '../helpers/openapi.ts';

const PREFIX = '/api/v1';
const ADMIN = { user: 'admin', password: 'admin-password' };

// --- the OpenAPI document (checked by test/helpers/openapi.ts) ---------------------------------------------

const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;

/** `METHOD path` of every route the app registered under /api/v1 (from the router's printout). */
function registeredRoutes(app: FastifyInstance): Set<string> {
  const out = new Set<string>();
  const stack: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^((?:│ {3}| {4})*)(?:├── |└── )(.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!m) continue;
    const depth = (m[1] as string).length / 4;
    stack.length = depth;
    stack[depth] = m[2] as string;
    const path = stack.join('');
    if (m[3] && path.startsWith(`${PREFIX}/`))
      for (const method of m[3].split(', ')) if (method !== 'HEAD') out.add(`${method} ${path}`);
  }
  return out;
}

// --- callers ---------------------------------------------------------------------------------------

type Who = { user: string; password: string } | { bearer: string } | 'anonymous';

const SECRET_MARKERS = /passwordHash|secretHash|privateJwk|scrypt\$|"d":/;

describe('admin API', () => {
  let reg: TestRegistry;
  /** Every robot secret and generated password seen: no later GET may show one. */
  const secrets = new Set<string>();

  async function call(
    who: Who,
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    url: string,
    body?: unknown,
    options: { raw?: string; headers?: Record<string, string>; remoteAddress?: string } = {},
  ): Promise<Response> {
    const headers: Record<string, string> = { ...options.headers };
    if (who !== 'anonymous') {
      headers.authorization =
        'bearer' in who
          ? `Bearer ${who.bearer}`
          : `Basic ${Buffer.from(`${who.user}:${who.password}`).toString('base64')}`;
    }
    const payload = options.raw ?? (body === undefined ? undefined : JSON.stringify(body));
    if (payload !== undefined) headers['content-type'] ??= 'application/json';
    const res = await reg.inject({
      method,
      url: `${PREFIX}${url}`,
      headers,
      ...(payload !== undefined ? { payload } : {}),
      ...(options.remoteAddress ? { remoteAddress: options.remoteAddress } : {}),
    });
    conforms(method, `${PREFIX}${url}`, res);
    assert.doesNotMatch(res.body, SECRET_MARKERS, `${method} ${url} leaks a hash: ${res.body}`);
    if (method === 'GET')
      for (const s of secrets) assert.ok(!res.body.includes(s), `${method} ${url} shows a secret`);
    if (res.statusCode < 400 && res.body !== '') {
      const b = JSON.parse(res.body) as { secret?: string; password?: string };
      if (b.secret) secrets.add(b.secret);
      if (b.password) secrets.add(b.password);
    }
    return res;
  }

  const admin = ADMIN;
  const ok = async (res: Response, status = 200): Promise<Record<string, unknown>> => {
    assert.equal(res.statusCode, status, `${res.raw.req.method} ${res.raw.req.url}: ${res.body}`);
    return res.body === '' ? {} : json(res);
  };
  /** Creates a user through the API (as admin) and returns their credentials. */
  async function user(
    name: string,
    extra: Record<string, unknown> = {},
  ): Promise<{ user: string; password: string }> {
    const password = `${name}-password`;
    await ok(await call(admin, 'POST', '/users', { username: name, password, ...extra }), 201);
    return { user: name, password };
  }
  async function robot(name: string): Promise<{ user: string; password: string }> {
    const body = await ok(await call(admin, 'POST', '/robots', { name }), 201);
    return { user: body.name as string, password: body.secret as string };
  }
  async function token(
    who: { user: string; password: string },
    extra = '',
  ): Promise<Record<string, unknown>> {
    const res = await reg.inject({
      method: 'GET',
      url: `/auth/token?service=berth${extra}`,
      headers: { authorization: `Basic ${Buffer.from(`${who.user}:${who.password}`).toString('base64')}` },
    });
    return ok(res);
  }
  async function auditEvents(query: string): Promise<Record<string, unknown>[]> {
    const body = await ok(await call(admin, 'GET', `/audit?limit=1000&${query}`));
    return body.events as Record<string, unknown>[];
  }

  before(async () => {
    reg = await createTestRegistry({
      'auth.mode': 'token',
      'auth.maxFailedLogins': 1000,
      'auth.cacheTtl': '60s',
    });
    assert.equal(await bootstrapAdmin(reg.services.auth.store, ADMIN.user, ADMIN.password), 'created');
  });
  after(async () => {
    await reg.dispose();
  });

  describe('the OpenAPI document', () => {
    it('is served as JSON at /api/v1/openapi.json without credentials', async () => {
      const res = await call('anonymous', 'GET', '/openapi.json');
      assert.equal(res.statusCode, 200);
      assert.match(String(res.headers['content-type']), /^application\/json/);
      const doc = json<OpenApi>(res);
      assert.equal(doc.openapi, '3.1.0');
      assert.deepEqual(Object.keys(doc.paths).sort(), Object.keys(DOC.paths).sort());
    });

    it('documents every route registered under /api/v1, and nothing else', () => {
      const routes = registeredRoutes(reg.app);
      assert.ok(routes.size > 30, `found ${routes.size} routes`);
      const documented = new Set<string>();
      for (const [path, item] of Object.entries(DOC.paths)) {
        for (const m of METHODS) {
          if (item[m]) documented.add(`${m.toUpperCase()} ${PREFIX}${path.replace(/\{([^}]+)\}/g, ':$1')}`);
        }
      }
      assert.deepEqual(
        [...routes].filter((r) => !documented.has(r)),
        [],
        'routes missing from the document',
      );
      assert.deepEqual(
        [...documented].filter((r) => !routes.has(r)),
        [],
        'documented routes not registered',
      );
      for (const r of documented) {
        const [method, url] = r.split(' ') as [string, string];
        assert.ok(reg.app.hasRoute({ method: method as 'GET', url }), r);
      }
    });

    it('is consistent: $refs resolve, operation ids are unique, path parameters are declared, bodies have schemas', () => {
      const ids = new Set<string>();
      const walk = (node: unknown): void => {
        if (Array.isArray(node)) node.forEach(walk);
        else if (node && typeof node === 'object') {
          if (typeof (node as Schema).$ref === 'string') deref(node);
          Object.values(node).forEach(walk);
        }
      };
      walk(DOC);
      for (const [path, item] of Object.entries(DOC.paths)) {
        const common = ((item.parameters as unknown[]) ?? []).map(deref);
        for (const m of METHODS) {
          const op = item[m] as Schema | undefined;
          if (!op) continue;
          assert.ok(
            typeof op.operationId === 'string' && !ids.has(op.operationId),
            `${m} ${path} operationId`,
          );
          ids.add(op.operationId as string);
          const params = [...common, ...((op.parameters as unknown[]) ?? []).map(deref)];
          for (const [, name] of path.matchAll(/\{([^}]+)\}/g)) {
            assert.ok(
              params.some((p) => p.in === 'path' && p.name === name),
              `${m} ${path}: {${name}} declared`,
            );
          }
          for (const [status, r] of Object.entries(op.responses as Record<string, unknown>)) {
            const content = deref(r).content as Record<string, { schema?: unknown }> | undefined;
            if (status !== '204')
              assert.ok(content?.['application/json']?.schema, `${m} ${path} ${status} schema`);
          }
          const body = op.requestBody as Schema | undefined;
          if (body)
            assert.ok(
              (body.content as Record<string, Schema>)['application/json']?.schema,
              `${m} ${path} body`,
            );
          if (op.security === undefined) assert.ok(path !== '/openapi.json');
        }
      }
      assert.deepEqual(Object.keys(deref({ $ref: '#/components/securitySchemes' })).sort(), [
        'basic',
        'bearer',
      ]);
    });
  });

  describe('authentication', () => {
    it('answers 401 with the Bearer challenge to anonymous callers on every endpoint', async () => {
      for (const [path, item] of Object.entries(DOC.paths)) {
        if (path === '/openapi.json') continue;
        const url = path.replace(/\{[^}]+\}/g, (p) => (p === '{id}' ? '1' : p === '{kind}' ? 'user' : 'x'));
        for (const m of METHODS) {
          if (!item[m]) continue;
          const res = await call('anonymous', m.toUpperCase() as 'GET', url);
          assertError(res, 401, 'UNAUTHORIZED');
          assert.match(
            String(res.headers['www-authenticate']),
            /^Bearer realm="[^"]+\/auth\/token",service="berth"/,
          );
        }
      }
    });

    it('answers 401 to wrong credentials, an invalid token and an unknown scheme', async () => {
      assertError(
        await call({ user: 'admin', password: 'wrong-password' }, 'GET', '/me'),
        401,
        'UNAUTHORIZED',
      );
      assertError(await call({ user: 'nobody', password: 'whatever1' }, 'GET', '/me'), 401, 'UNAUTHORIZED');
      const res = await call({ bearer: 'not.a.jwt' }, 'GET', '/me');
      assertError(res, 401, 'UNAUTHORIZED');
      assert.match(String(res.headers['www-authenticate']), /error="invalid_token"/);
      const digest = await reg.inject({
        method: 'GET',
        url: `${PREFIX}/me`,
        headers: { authorization: 'Digest x' },
      });
      assertError(digest, 401, 'UNAUTHORIZED');
    });

    it('accepts a Bearer token from /auth/token (any scope) and Basic credentials', async () => {
      const t = await token(admin);
      const viaToken = await ok(await call({ bearer: t.token as string }, 'GET', '/me'));
      assert.equal(viaToken.name, 'admin');
      assert.equal(viaToken.isAdmin, true, 'the live admin flag, not the token');
      assert.equal(viaToken.via, 'token');
      await ok(await call({ bearer: t.token as string }, 'GET', '/users'));
      const viaBasic = await ok(await call(admin, 'GET', '/me'));
      assert.equal(viaBasic.via, 'basic');
      assert.equal(viaBasic.kind, 'user');
    });

    it('refuses the token of a user disabled since it was issued', async () => {
      const u = await user('tokened');
      const t = await token(u);
      await ok(await call({ bearer: t.token as string }, 'GET', '/me'));
      await ok(await call(admin, 'PATCH', '/users/tokened', { disabled: true }));
      assertError(await call({ bearer: t.token as string }, 'GET', '/me'), 401, 'UNAUTHORIZED');
      assertError(await call(u, 'GET', '/me'), 401, 'UNAUTHORIZED');
    });
  });

  describe('with auth.mode none and basic', () => {
    it('mode none: every endpoint answers 403 DENIED saying to enable access control; the document is served', async () => {
      const open = await createTestRegistry();
      try {
        for (const [method, url] of [
          ['GET', '/me'],
          ['GET', '/users'],
          ['POST', '/users'],
          ['GET', '/audit'],
        ] as const) {
          const res = await open.inject({ method, url: `${PREFIX}${url}` });
          assertError(res, 403, 'DENIED');
          assert.match(json<{ errors: { message: string }[] }>(res).errors[0]?.message ?? '', /auth\.mode/);
        }
        assert.equal((await open.inject({ method: 'GET', url: `${PREFIX}/openapi.json` })).statusCode, 200);
      } finally {
        await open.dispose();
      }
    });

    it('the first administrator from BERTH_ADMIN_PASSWORD follows the password rules', async () => {
      const dir = await mkdtemp(path.join(tmpdir(), 'berth-bootstrap-'));
      try {
        const config = loadConfig({ env: { BERTH_AUTH_MODE: 'token' }, overrides: { data: dir } });
        await assert.rejects(
          createServices(config, undefined, { adminPassword: 'short' }),
          (e: unknown) =>
            e instanceof ConfigError && /^BERTH_ADMIN_PASSWORD: .*at least 8 characters/.test(e.message),
        );
        const services = await createServices(config, undefined, { adminPassword: 'long enough pw' });
        try {
          assert.equal((await services.auth.store.getUser('admin'))?.isAdmin, true);
        } finally {
          await services.close();
        }
        // Once an administrator exists the variable is not used, so it is not checked either.
        await (await createServices(config, undefined, { adminPassword: 'short' })).close();
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('mode basic: anonymous callers get the Basic challenge; Basic credentials work', async () => {
      const b = await createTestRegistry({ 'auth.mode': 'basic' });
      try {
        await bootstrapAdmin(b.services.auth.store, 'root', 'root-password');
        const anon = await b.inject({ method: 'GET', url: `${PREFIX}/me` });
        assertError(anon, 401, 'UNAUTHORIZED');
        assert.match(String(anon.headers['www-authenticate']), /^Basic realm=/);
        const me = await b.inject({
          method: 'GET',
          url: `${PREFIX}/me`,
          headers: { authorization: `Basic ${Buffer.from('root:root-password').toString('base64')}` },
        });
        assert.equal(me.statusCode, 200, me.body);
        assert.equal(json(me).name, 'root');
      } finally {
        await b.dispose();
      }
    });
  });

  describe('request bodies', () => {
    it('answers 400 with the envelope to bad JSON, deep nesting, non-objects, missing bodies, wrong types and unknown fields', async () => {
      const TOO_DEEP = new RegExp(`nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels`);
      const cases: [string | undefined, RegExp][] = [
        ['{"username": ', /not valid JSON/],
        ['[1,2]', /JSON object/],
        ['"alice"', /JSON object/],
        ['null', /JSON object/],
        [undefined, /body is required/],
        ['   ', /body is required/],
        ['{"username": 5}', /username/],
        ['{"username": "x1", "isAdmin": "yes"}', /isAdmin/],
        ['{"username": "x1", "role": "admin"}', /unknown field role/],
        // Nesting is refused before parsing past MAX_JSON_DEPTH; up to it, the fields are judged as usual.
        [`{"username": ${'['.repeat(MAX_JSON_DEPTH - 1)}${']'.repeat(MAX_JSON_DEPTH - 1)}}`, /username/],
        [`{"username": ${'['.repeat(MAX_JSON_DEPTH)}${']'.repeat(MAX_JSON_DEPTH)}}`, TOO_DEEP],
        ['['.repeat(30_000) + ']'.repeat(30_000), TOO_DEEP],
      ];
      for (const [raw, message] of cases) {
        const res = await call(admin, 'POST', '/users', undefined, raw === undefined ? {} : { raw });
        assertError(res, 400, 'UNSUPPORTED');
        assert.match(
          json<{ errors: { message: string }[] }>(res).errors[0]?.message ?? '',
          message,
          String(raw),
        );
      }
    });

    it('parses JSON whatever the Content-Type says, and answers 413 past 64 KiB', async () => {
      const res = await call(admin, 'POST', '/teams', undefined, {
        raw: JSON.stringify({ name: 'form-typed' }),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      assert.equal(res.statusCode, 201, res.body);
      const big = await reg.inject({
        method: 'POST',
        url: `${PREFIX}/teams`,
        headers: {
          authorization: `Basic ${Buffer.from('admin:admin-password').toString('base64')}`,
          'content-type': 'application/json',
        },
        payload: JSON.stringify({ name: 'big', description: 'x'.repeat(70_000) }),
      });
      assertError(big, 413, 'SIZE_INVALID');
    });
  });

  describe('users', () => {
    it('creates a user with a password, a generated one (shown once) or none', async () => {
      const a = await ok(
        await call(admin, 'POST', '/users', {
          username: 'u.given',
          password: 'long-enough',
          email: 'g@example.com',
        }),
        201,
      );
      assert.equal(a.username, 'u.given');
      assert.equal(a.email, 'g@example.com');
      assert.equal(a.hasPassword, true);
      assert.equal(a.password, undefined, 'a given password is not echoed');
      await ok(await call({ user: 'u.given', password: 'long-enough' }, 'GET', '/me'));

      const g = await ok(await call(admin, 'POST', '/users', { username: 'u-generated' }), 201);
      assert.equal(typeof g.password, 'string');
      assert.ok((g.password as string).length >= 20);
      await ok(await call({ user: 'u-generated', password: g.password as string }, 'GET', '/me'));
      const shown = await ok(await call(admin, 'GET', '/users/u-generated'));
      assert.equal(shown.password, undefined);

      const n = await ok(await call(admin, 'POST', '/users', { username: 'u_cert', password: null }), 201);
      assert.equal(n.hasPassword, false);
      assert.equal(n.password, undefined);
    });

    it('validates usernames, passwords and emails, and refuses duplicates', async () => {
      const bad: [Record<string, unknown>, string][] = [
        [{ username: 'Upper' }, 'username'],
        [{ username: 'robot$x' }, 'username'],
        [{ username: 'a'.repeat(65) }, 'username'],
        [{ username: '-dash' }, 'username'],
        [{ username: 'a..b' }, 'username'],
        [{ username: '' }, 'username'],
        [{ username: 'shortpw', password: 'seven77' }, 'password'],
        [{ username: 'bademail', email: 'not an email' }, 'email'],
      ];
      for (const [body, field] of bad) {
        const res = await call(admin, 'POST', '/users', body);
        assertError(res, 400, 'UNSUPPORTED');
        assert.deepEqual(
          json<{ errors: { detail: unknown }[] }>(res).errors[0]?.detail,
          { field },
          JSON.stringify(body),
        );
      }
      await ok(await call(admin, 'POST', '/users', { username: 'a'.repeat(64), password: 'password' }), 201);
      await ok(await call(admin, 'POST', '/users', { username: 'a__b-c--d.e', password: 'password' }), 201);
      assertError(
        await call(admin, 'POST', '/users', { username: 'u.given', password: 'password' }),
        409,
        'UNSUPPORTED',
      );
    });

    it('refuses a username that names an existing namespace (personal namespaces)', async () => {
      await ok(await call(admin, 'POST', '/namespaces', { name: 'shared' }), 201);
      const res = await call(admin, 'POST', '/users', { username: 'shared', password: 'password' });
      assertError(res, 409, 'UNSUPPORTED');
      assert.match(res.body, /personalNamespaces/);
    });

    it('lists users page by page with limit and after', async () => {
      const first = await ok(await call(admin, 'GET', '/users?limit=2'));
      assert.equal((first.items as unknown[]).length, 2);
      assert.equal(typeof first.next, 'string');
      const seen = (first.items as { username: string }[]).map((u) => u.username);
      let next = first.next as string | null;
      while (next !== null) {
        const page = await ok(await call(admin, 'GET', `/users?limit=2&after=${encodeURIComponent(next)}`));
        seen.push(...(page.items as { username: string }[]).map((u) => u.username));
        next = page.next as string | null;
      }
      const all = await ok(await call(admin, 'GET', '/users'));
      assert.deepEqual(
        seen,
        (all.items as { username: string }[]).map((u) => u.username),
      );
      assert.deepEqual(seen, [...seen].sort());
      assert.equal(all.next, null);
      assertError(await call(admin, 'GET', '/users?limit=0'), 400, 'PAGINATION_NUMBER_INVALID');
      assertError(await call(admin, 'GET', '/users?limit=x'), 400, 'PAGINATION_NUMBER_INVALID');
      const capped = await ok(await call(admin, 'GET', '/users?limit=99999999'));
      assert.equal(capped.next, null);
    });

    it('shows, changes and deletes users; 404 for unknown ones', async () => {
      await user('changeme');
      const shown = await ok(await call(admin, 'GET', '/users/changeme'));
      assert.equal(shown.isAdmin, false);
      const changed = await ok(
        await call(admin, 'PATCH', '/users/changeme', { email: 'c@example.com', isAdmin: true }),
      );
      assert.equal(changed.email, 'c@example.com');
      assert.equal(changed.isAdmin, true);
      const cleared = await ok(
        await call(admin, 'PATCH', '/users/changeme', { email: null, isAdmin: false }),
      );
      assert.equal(cleared.email, null);
      const same = await ok(await call(admin, 'PATCH', '/users/changeme', {}));
      assert.equal(same.username, 'changeme');
      assertError(await call(admin, 'PATCH', '/users/changeme', { email: 'nope' }), 400, 'UNSUPPORTED');
      await ok(await call(admin, 'DELETE', '/users/changeme'), 204);
      assertError(await call(admin, 'GET', '/users/changeme'), 404, 'NAME_UNKNOWN');
      assertError(await call(admin, 'PATCH', '/users/changeme', { disabled: true }), 404, 'NAME_UNKNOWN');
      assertError(await call(admin, 'DELETE', '/users/changeme'), 404, 'NAME_UNKNOWN');
      assertError(
        await call(admin, 'PUT', '/users/changeme/password', { password: 'password' }),
        404,
        'NAME_UNKNOWN',
      );
    });

    it('disabling a user stops their logins and revokes their refresh tokens; enabling restores logins', async () => {
      const u = await user('disableme');
      const t = await token(u, '&offline_token=true&client_id=test');
      assert.equal(typeof t.refresh_token, 'string');
      await ok(await call(admin, 'PATCH', '/users/disableme', { disabled: true }));
      assertError(await call(u, 'GET', '/me'), 401, 'UNAUTHORIZED');
      const refresh = await reg.inject({
        method: 'POST',
        url: '/auth/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({
          grant_type: 'refresh_token',
          refresh_token: t.refresh_token as string,
          service: 'berth',
        }).toString(),
      });
      assert.equal(refresh.statusCode, 401, refresh.body);
      await ok(await call(admin, 'PATCH', '/users/disableme', { disabled: false }));
      await ok(await call(u, 'GET', '/me'));
    });

    it('never deletes, demotes or disables the last enabled administrator', async () => {
      assert.equal(await reg.services.auth.store.countAdmins(), 1);
      for (const [method, body] of [
        ['DELETE', undefined],
        ['PATCH', { isAdmin: false }],
        ['PATCH', { disabled: true }],
      ] as const) {
        const res = await call(admin, method, '/users/admin', body);
        assertError(res, 409, 'UNSUPPORTED');
        assert.match(res.body, /last enabled administrator/);
      }
      const second = await user('second-admin', { isAdmin: true });
      await ok(await call(second, 'PATCH', '/users/admin', { isAdmin: false }));
      assertError(await call(second, 'DELETE', '/users/second-admin'), 409, 'UNSUPPORTED');
      await ok(await call(second, 'PATCH', '/users/admin', { isAdmin: true }));
      await ok(await call(admin, 'DELETE', '/users/second-admin'), 204);
      assert.equal(await reg.services.auth.store.countAdmins(), 1);
    });
  });

  describe('passwords', () => {
    it('a user changes their own password with the current one; refresh tokens are revoked', async () => {
      const u = await user('selfpw');
      const t = await token(u, '&offline_token=true');
      assertError(
        await call(u, 'PUT', '/users/selfpw/password', { password: 'new-password' }),
        400,
        'UNSUPPORTED',
      );
      assertError(
        await call(u, 'PUT', '/users/selfpw/password', {
          password: 'new-password',
          currentPassword: 'wrong-one',
        }),
        403,
        'DENIED',
      );
      assertError(
        await call(u, 'PUT', '/users/selfpw/password', { password: 'short', currentPassword: u.password }),
        400,
        'UNSUPPORTED',
      );
      await ok(
        await call(u, 'PUT', '/users/selfpw/password', {
          password: 'new-password',
          currentPassword: u.password,
        }),
        204,
      );
      assertError(await call(u, 'GET', '/me'), 401, 'UNAUTHORIZED');
      await ok(await call({ user: 'selfpw', password: 'new-password' }, 'GET', '/me'));
      const refresh = await reg.inject({
        method: 'POST',
        url: '/auth/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: `grant_type=refresh_token&service=berth&refresh_token=${encodeURIComponent(t.refresh_token as string)}`,
      });
      assert.equal(refresh.statusCode, 401);
    });

    it("a user may not change another user's password; an administrator may, without the current one", async () => {
      const a = await user('pw-a');
      await user('pw-b');
      assertError(
        await call(a, 'PUT', '/users/pw-b/password', { password: 'hijacked!', currentPassword: a.password }),
        403,
        'DENIED',
      );
      await ok(await call(admin, 'PUT', '/users/pw-b/password', { password: 'reset-by-admin' }), 204);
      await ok(await call({ user: 'pw-b', password: 'reset-by-admin' }, 'GET', '/me'));
    });
  });

  describe('robots', () => {
    it('creates a robot whose secret is returned once and authenticates (stored as hashSecret)', async () => {
      const created = await ok(
        await call(admin, 'POST', '/robots', { name: 'builder', description: 'CI builds', expiresIn: '30d' }),
        201,
      );
      assert.equal(created.name, 'robot$builder');
      assert.equal(created.status, 'active');
      assert.equal(created.createdBy, 'admin');
      const secret = created.secret as string;
      assert.ok(secret.length >= 40);
      const expires = Date.parse(created.expiresAt as string) - Date.now();
      assert.ok(expires > 29 * 86_400_000 && expires <= 30 * 86_400_000, String(expires));
      const stored = await reg.services.auth.store.getRobot('robot$builder');
      assert.equal(stored?.secretHash, hashSecret(secret));
      const me = await ok(await call({ user: 'robot$builder', password: secret }, 'GET', '/me'));
      assert.equal(me.kind, 'robot');
      assert.equal(me.name, 'robot$builder');

      const got = await ok(await call(admin, 'GET', '/robots/robot$builder'));
      assert.equal(got.secret, undefined);
      const bare = await ok(await call(admin, 'GET', '/robots/builder'));
      assert.equal(bare.name, 'robot$builder');
      assert.equal(bare.lastUsedAt !== null, true, 'the login was recorded');
      const list = await ok(await call(admin, 'GET', '/robots'));
      assert.ok((list.items as { name: string }[]).some((r) => r.name === 'robot$builder'));
    });

    it('takes the name with or without robot$, expiresAt or expiresIn, and validates them', async () => {
      const at = new Date(Date.now() + 3_600_000).toISOString();
      const a = await ok(await call(admin, 'POST', '/robots', { name: 'robot$pref', expiresAt: at }), 201);
      assert.equal(a.name, 'robot$pref');
      assert.equal(a.expiresAt, at);
      const never = await ok(await call(admin, 'POST', '/robots', { name: 'never', expiresAt: null }), 201);
      assert.equal(never.expiresAt, null);
      const bad: Record<string, unknown>[] = [
        { name: 'Bad' },
        { name: 'robot$' },
        { name: 'robot$a$b' },
        { name: 'past', expiresAt: '2001-01-01T00:00:00Z' },
        { name: 'garbage', expiresAt: 'tomorrow' },
        { name: 'both', expiresAt: at, expiresIn: '1d' },
        { name: 'badin', expiresIn: 'soon' },
        { name: 'desc', description: 'x'.repeat(1025) },
      ];
      for (const body of bad) assertError(await call(admin, 'POST', '/robots', body), 400, 'UNSUPPORTED');
      assertError(await call(admin, 'POST', '/robots', { name: 'pref' }), 409, 'UNSUPPORTED');
    });

    it('rotates a secret (the old one stops working), revokes and deletes robots', async () => {
      const r = await robot('rotor');
      await ok(await call(r, 'GET', '/me'));
      const rotated = await ok(await call(admin, 'POST', '/robots/rotor/rotate'));
      assert.equal(rotated.name, 'robot$rotor');
      assert.notEqual(rotated.secret, r.password);
      assertError(await call(r, 'GET', '/me'), 401, 'UNAUTHORIZED');
      const fresh = { user: 'robot$rotor', password: rotated.secret as string };
      await ok(await call(fresh, 'GET', '/me'));
      const renewed = await ok(await call(admin, 'POST', '/robots/robot$rotor/rotate', { expiresIn: '2d' }));
      assert.ok(renewed.expiresAt !== null);
      assertError(await call(admin, 'POST', '/robots/rotor/rotate', { expiresIn: 'x' }), 400, 'UNSUPPORTED');
      const renewedCreds = { user: 'robot$rotor', password: renewed.secret as string };

      const revoked = await ok(await call(admin, 'POST', '/robots/rotor/revoke'));
      assert.equal(revoked.status, 'revoked');
      assert.ok(revoked.revokedAt !== null);
      assertError(await call(renewedCreds, 'GET', '/me'), 401, 'UNAUTHORIZED');
      assert.equal((await ok(await call(admin, 'POST', '/robots/rotor/revoke'))).status, 'revoked');
      assertError(await call(admin, 'POST', '/robots/rotor/rotate'), 409, 'UNSUPPORTED');

      await ok(await call(admin, 'DELETE', '/robots/rotor'), 204);
      for (const [method, url] of [
        ['GET', '/robots/rotor'],
        ['DELETE', '/robots/rotor'],
        ['POST', '/robots/rotor/rotate'],
        ['POST', '/robots/rotor/revoke'],
      ] as const) {
        assertError(await call(admin, method, url), 404, 'NAME_UNKNOWN');
      }
    });
  });

  describe('teams', () => {
    it('creates, shows, lists, fills, empties and deletes teams', async () => {
      await user('tm-a');
      await user('tm-b');
      await user('tm-c');
      const t = await ok(
        await call(admin, 'POST', '/teams', { name: 'devs', description: 'developers' }),
        201,
      );
      assert.deepEqual(Object.keys(t).sort(), ['createdAt', 'description', 'name']);
      assertError(await call(admin, 'POST', '/teams', { name: 'devs' }), 409, 'UNSUPPORTED');
      assertError(await call(admin, 'POST', '/teams', { name: 'Devs!' }), 400, 'UNSUPPORTED');
      for (const u of ['tm-c', 'tm-a', 'tm-b', 'tm-a'])
        await ok(await call(admin, 'PUT', `/teams/devs/members/${u}`), 204);
      const shown = await ok(await call(admin, 'GET', '/teams/devs'));
      assert.deepEqual(shown.members, ['tm-a', 'tm-b', 'tm-c']);
      const p1 = await ok(await call(admin, 'GET', '/teams/devs/members?limit=2'));
      assert.deepEqual(p1, { items: ['tm-a', 'tm-b'], next: 'tm-b' });
      const p2 = await ok(await call(admin, 'GET', '/teams/devs/members?limit=2&after=tm-b'));
      assert.deepEqual(p2, { items: ['tm-c'], next: null });
      const list = await ok(await call(admin, 'GET', '/teams'));
      assert.ok((list.items as { name: string }[]).some((x) => x.name === 'devs'));

      assertError(await call(admin, 'PUT', '/teams/devs/members/nobody'), 404, 'NAME_UNKNOWN');
      assertError(await call(admin, 'PUT', '/teams/nope/members/tm-a'), 404, 'NAME_UNKNOWN');
      assertError(await call(admin, 'GET', '/teams/nope'), 404, 'NAME_UNKNOWN');
      assertError(await call(admin, 'GET', '/teams/nope/members'), 404, 'NAME_UNKNOWN');
      await ok(await call(admin, 'DELETE', '/teams/devs/members/tm-b'), 204);
      assertError(await call(admin, 'DELETE', '/teams/devs/members/tm-b'), 404, 'NAME_UNKNOWN');
      assertError(await call(admin, 'DELETE', '/teams/nope/members/tm-a'), 404, 'NAME_UNKNOWN');
      assert.deepEqual((await ok(await call(admin, 'GET', '/teams/devs'))).members, ['tm-a', 'tm-c']);
      await ok(await call(admin, 'DELETE', '/teams/devs'), 204);
      assertError(await call(admin, 'DELETE', '/teams/devs'), 404, 'NAME_UNKNOWN');
    });
  });

  describe('namespaces, members and rules', () => {
    it('creates, shows, changes and deletes namespaces', async () => {
      const ns = await ok(
        await call(admin, 'POST', '/namespaces', { name: 'ns1', description: 'first' }),
        201,
      );
      assert.equal(ns.visibility, 'private');
      const pub = await ok(
        await call(admin, 'POST', '/namespaces', { name: 'ns2', visibility: 'public' }),
        201,
      );
      assert.equal(pub.visibility, 'public');
      assertError(await call(admin, 'POST', '/namespaces', { name: 'ns1' }), 409, 'UNSUPPORTED');
      assertError(await call(admin, 'POST', '/namespaces', { name: 'NS' }), 400, 'UNSUPPORTED');
      assertError(await call(admin, 'POST', '/namespaces', { name: 'a/b' }), 400, 'UNSUPPORTED');
      assertError(
        await call(admin, 'POST', '/namespaces', { name: 'x', visibility: 'secret' }),
        400,
        'UNSUPPORTED',
      );
      assert.equal((await ok(await call(admin, 'GET', '/namespaces/ns1'))).description, 'first');
      const changed = await ok(
        await call(admin, 'PATCH', '/namespaces/ns1', { visibility: 'public', description: '' }),
      );
      assert.equal(changed.visibility, 'public');
      assert.equal(changed.description, '');
      assertError(await call(admin, 'PATCH', '/namespaces/ns1', { visibility: 'open' }), 400, 'UNSUPPORTED');
      assertError(await call(admin, 'PATCH', '/namespaces/ns1', { name: 'renamed' }), 400, 'UNSUPPORTED');
      const page = await ok(await call(admin, 'GET', '/namespaces?limit=1&after=ns1'));
      assert.deepEqual(
        (page.items as { name: string }[]).map((n) => n.name),
        ['ns2'],
      );
      await ok(await call(admin, 'DELETE', '/namespaces/ns2'), 204);
      assertError(await call(admin, 'GET', '/namespaces/ns2'), 404, 'NAME_UNKNOWN');
      assertError(
        await call(admin, 'PATCH', '/namespaces/ns2', { visibility: 'private' }),
        404,
        'NAME_UNKNOWN',
      );
      assertError(await call(admin, 'DELETE', '/namespaces/ns2'), 404, 'NAME_UNKNOWN');
    });

    it('public visibility set through the API lets anonymous clients pull at once', async () => {
      await ok(await call(admin, 'POST', '/namespaces', { name: 'vis' }), 201);
      const before = await reg.inject({ method: 'GET', url: '/v2/vis/app/tags/list' });
      assert.equal(before.statusCode, 401);
      await ok(await call(admin, 'PATCH', '/namespaces/vis', { visibility: 'public' }));
      const afterRes = await reg.inject({ method: 'GET', url: '/v2/vis/app/tags/list' });
      assert.notEqual(afterRes.statusCode, 401, afterRes.body);
    });

    it('sets, lists (with a cursor) and removes members of every kind', async () => {
      await ok(await call(admin, 'POST', '/namespaces', { name: 'mem' }), 201);
      await user('mem-u1');
      await user('mem-u2');
      await ok(await call(admin, 'POST', '/teams', { name: 'mem-team' }), 201);
      await robot('mem-bot');
      const m = await ok(
        await call(admin, 'PUT', '/namespaces/mem/members/user/mem-u1', { role: 'developer' }),
      );
      assert.deepEqual(m, { namespace: 'mem', kind: 'user', principal: 'mem-u1', role: 'developer' });
      await ok(await call(admin, 'PUT', '/namespaces/mem/members/user/mem-u1', { role: 'maintainer' }));
      await ok(await call(admin, 'PUT', '/namespaces/mem/members/user/mem-u2', { role: 'reader' }));
      await ok(await call(admin, 'PUT', '/namespaces/mem/members/team/mem-team', { role: 'reader' }));
      const bot = await ok(
        await call(admin, 'PUT', '/namespaces/mem/members/robot/mem-bot', { role: 'developer' }),
      );
      assert.equal(bot.principal, 'robot$mem-bot');
      const all = await ok(await call(admin, 'GET', '/namespaces/mem/members'));
      assert.deepEqual(
        (all.items as { kind: string; principal: string; role: string }[]).map(
          (x) => `${x.kind}:${x.principal}:${x.role}`,
        ),
        [
          'robot:robot$mem-bot:developer',
          'team:mem-team:reader',
          'user:mem-u1:maintainer',
          'user:mem-u2:reader',
        ],
      );
      const p1 = await ok(await call(admin, 'GET', '/namespaces/mem/members?limit=3'));
      assert.equal(p1.next, 'user:mem-u1');
      const p2 = await ok(
        await call(
          admin,
          'GET',
          `/namespaces/mem/members?limit=3&after=${encodeURIComponent(p1.next as string)}`,
        ),
      );
      assert.deepEqual(
        (p2.items as { principal: string }[]).map((x) => x.principal),
        ['mem-u2'],
      );
      assert.equal(p2.next, null);

      assertError(
        await call(admin, 'PUT', '/namespaces/mem/members/group/x', { role: 'reader' }),
        400,
        'UNSUPPORTED',
      );
      assertError(
        await call(admin, 'PUT', '/namespaces/mem/members/user/mem-u1', { role: 'owner' }),
        400,
        'UNSUPPORTED',
      );
      assertError(await call(admin, 'PUT', '/namespaces/mem/members/user/mem-u1', {}), 400, 'UNSUPPORTED');
      assertError(
        await call(admin, 'PUT', '/namespaces/mem/members/user/ghost', { role: 'reader' }),
        404,
        'NAME_UNKNOWN',
      );
      assertError(
        await call(admin, 'PUT', '/namespaces/nons/members/user/mem-u1', { role: 'reader' }),
        404,
        'NAME_UNKNOWN',
      );
      assertError(await call(admin, 'GET', '/namespaces/nons/members'), 404, 'NAME_UNKNOWN');

      await ok(await call(admin, 'DELETE', '/namespaces/mem/members/robot/robot$mem-bot'), 204);
      await ok(await call(admin, 'DELETE', '/namespaces/mem/members/user/mem-u2'), 204);
      assertError(await call(admin, 'DELETE', '/namespaces/mem/members/user/mem-u2'), 404, 'NAME_UNKNOWN');
      assertError(await call(admin, 'DELETE', '/namespaces/mem/members/other/mem-u2'), 400, 'UNSUPPORTED');
      assert.equal(
        ((await ok(await call(admin, 'GET', '/namespaces/mem/members'))).items as unknown[]).length,
        2,
      );
    });

    it('adds, lists (with a cursor) and deletes repository rules', async () => {
      await ok(await call(admin, 'POST', '/namespaces', { name: 'rul' }), 201);
      await ok(await call(admin, 'POST', '/namespaces', { name: 'rul2' }), 201);
      await user('rul-u');
      const ids: number[] = [];
      for (const pattern of ['app', 'libs/*', '**', 'v?.x']) {
        const r = await ok(
          await call(admin, 'POST', '/namespaces/rul/rules', {
            pattern,
            kind: 'user',
            principal: 'rul-u',
            role: 'reader',
          }),
          201,
        );
        assert.equal(r.pattern, pattern);
        ids.push(r.id as number);
      }
      const p1 = await ok(await call(admin, 'GET', '/namespaces/rul/rules?limit=3'));
      assert.deepEqual(
        (p1.items as { id: number }[]).map((r) => r.id),
        ids.slice(0, 3),
      );
      assert.equal(p1.next, String(ids[2]));
      const p2 = await ok(await call(admin, 'GET', `/namespaces/rul/rules?after=${p1.next as string}`));
      assert.deepEqual(
        (p2.items as { id: number }[]).map((r) => r.id),
        ids.slice(3),
      );
      assertError(await call(admin, 'GET', '/namespaces/rul/rules?after=abc'), 400, 'UNSUPPORTED');

      const bad: Record<string, unknown>[] = [
        { pattern: '', kind: 'user', principal: 'rul-u', role: 'reader' },
        { pattern: 'App', kind: 'user', principal: 'rul-u', role: 'reader' },
        { pattern: 'a b', kind: 'user', principal: 'rul-u', role: 'reader' },
        { pattern: 'app', kind: 'user', principal: 'rul-u', role: 'root' },
        { pattern: 'app', kind: 'crowd', principal: 'rul-u', role: 'reader' },
        { pattern: 'app', kind: 'user', principal: 'rul-u' },
      ];
      for (const body of bad)
        assertError(await call(admin, 'POST', '/namespaces/rul/rules', body), 400, 'UNSUPPORTED');
      const ghost = { pattern: 'app', kind: 'user', principal: 'ghost', role: 'reader' };
      assertError(await call(admin, 'POST', '/namespaces/rul/rules', ghost), 404, 'NAME_UNKNOWN');
      assertError(
        await call(admin, 'POST', '/namespaces/nope/rules', { ...ghost, principal: 'rul-u' }),
        404,
        'NAME_UNKNOWN',
      );

      assertError(await call(admin, 'DELETE', `/namespaces/rul2/rules/${ids[0]}`), 404, 'NAME_UNKNOWN');
      assertError(await call(admin, 'DELETE', '/namespaces/rul/rules/zero'), 400, 'UNSUPPORTED');
      await ok(await call(admin, 'DELETE', `/namespaces/rul/rules/${ids[0]}`), 204);
      assertError(await call(admin, 'DELETE', `/namespaces/rul/rules/${ids[0]}`), 404, 'NAME_UNKNOWN');
      assert.equal(
        ((await ok(await call(admin, 'GET', '/namespaces/rul/rules'))).items as unknown[]).length,
        3,
      );
    });
  });

  describe('signing keys', () => {
    it('lists keys without private parts, rotates (new key signs, old one retired) and prunes', async () => {
      const before = await ok(await call(admin, 'GET', '/keys'));
      const items = before.items as { kid: string; active: boolean; publicJwk: Record<string, unknown> }[];
      assert.equal(items.filter((k) => k.active).length, 1);
      for (const k of items) {
        assert.equal(k.publicJwk.d, undefined);
        assert.equal(k.publicJwk.kty, 'EC');
      }
      const oldKid = items.find((k) => k.active)?.kid;
      const rotated = await ok(await call(admin, 'POST', '/keys/rotate'));
      assert.equal(rotated.active, true);
      assert.notEqual(rotated.kid, oldKid);
      const afterRotate = await ok(await call(admin, 'GET', '/keys'));
      const keys = afterRotate.items as { kid: string; active: boolean; retiredAt: string | null }[];
      assert.equal(keys[0]?.kid, rotated.kid, 'newest first');
      assert.ok(keys.find((k) => k.kid === oldKid)?.retiredAt);
      const page = await ok(await call(admin, 'GET', '/keys?limit=1'));
      assert.equal(page.next, rotated.kid);
      const rest = await ok(await call(admin, 'GET', `/keys?after=${page.next as string}`));
      assert.equal((rest.items as unknown[]).length, keys.length - 1);
      assertError(await call(admin, 'GET', '/keys?after=unknown-kid'), 400, 'UNSUPPORTED');
      const t = await token(admin);
      const header = JSON.parse(
        Buffer.from((t.token as string).split('.')[0] as string, 'base64url').toString(),
      ) as {
        kid: string;
      };
      assert.equal(header.kid, rotated.kid, 'new tokens are signed with the new key');
      const pruned = await ok(await call(admin, 'POST', '/keys/prune'));
      assert.deepEqual(pruned, { pruned: [] }, 'a just-retired key still verifies tokens');
    });
  });

  describe('authorization matrix', () => {
    const principals: Record<string, Who> = {};
    let ruleId = 0;

    before(async () => {
      await ok(await call(admin, 'POST', '/namespaces', { name: 'mx' }), 201);
      await ok(await call(admin, 'POST', '/namespaces', { name: 'mx-other' }), 201);
      principals.admin = admin;
      principals.nsadmin = await user('mx-nsadmin');
      principals.developer = await user('mx-dev');
      principals.unrelated = await user('mx-unrelated');
      principals.robot = await robot('mx-bot');
      principals.anonymous = 'anonymous';
      await user('mx-target');
      await ok(await call(admin, 'PUT', '/namespaces/mx/members/user/mx-nsadmin', { role: 'admin' }));
      await ok(await call(admin, 'PUT', '/namespaces/mx/members/user/mx-dev', { role: 'developer' }));
      // A robot with the admin role still may not manage the namespace.
      await ok(await call(admin, 'PUT', '/namespaces/mx/members/robot/mx-bot', { role: 'admin' }));
      const rule = await ok(
        await call(admin, 'POST', '/namespaces/mx/rules', {
          pattern: 'seed',
          kind: 'user',
          principal: 'mx-target',
          role: 'reader',
        }),
        201,
      );
      ruleId = rule.id as number;
    });

    type Op = {
      area: string;
      method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
      url: (who: string) => string;
      body?: (who: string) => unknown;
    };
    const ops: Op[] = [
      { area: 'users', method: 'GET', url: () => '/users' },
      {
        area: 'users',
        method: 'POST',
        url: () => '/users',
        body: (w) => ({ username: `mx-new-${w}`, password: 'password' }),
      },
      {
        area: 'users',
        method: 'PATCH',
        url: () => '/users/mx-target',
        body: () => ({ email: 'x@example.com' }),
      },
      { area: 'robots', method: 'GET', url: () => '/robots' },
      { area: 'teams', method: 'POST', url: () => '/teams', body: (w) => ({ name: `mx-team-${w}` }) },
      { area: 'namespace settings', method: 'GET', url: () => '/namespaces/mx' },
      {
        area: 'namespace settings',
        method: 'PATCH',
        url: () => '/namespaces/mx',
        body: (w) => ({ description: `by ${w}` }),
      },
      {
        area: 'namespace create/delete',
        method: 'POST',
        url: () => '/namespaces',
        body: (w) => ({ name: `mx-ns-${w}` }),
      },
      { area: 'namespace create/delete', method: 'DELETE', url: () => '/namespaces/mx-other' },
      {
        area: 'other namespace',
        method: 'PATCH',
        url: () => '/namespaces/mx-other',
        body: () => ({ description: 'x' }),
      },
      { area: 'members', method: 'GET', url: () => '/namespaces/mx/members' },
      {
        area: 'members',
        method: 'PUT',
        url: () => '/namespaces/mx/members/user/mx-target',
        body: () => ({ role: 'reader' }),
      },
      { area: 'rules', method: 'GET', url: () => '/namespaces/mx/rules' },
      {
        area: 'rules',
        method: 'POST',
        url: () => '/namespaces/mx/rules',
        body: () => ({ pattern: 'app/*', kind: 'user', principal: 'mx-target', role: 'reader' }),
      },
      { area: 'keys', method: 'GET', url: () => '/keys' },
      { area: 'keys', method: 'POST', url: () => '/keys/prune' },
      { area: 'audit', method: 'GET', url: () => '/audit' },
      { area: 'me', method: 'GET', url: () => '/me' },
      {
        area: 'own password',
        method: 'PUT',
        url: (w) => `/users/${(principals[w] as { user: string }).user}/password`,
        body: (w) => ({
          password: (principals[w] as { password: string }).password,
          currentPassword: (principals[w] as { password: string }).password,
        }),
      },
    ];
    const ALLOWED: Record<string, string[]> = {
      admin: ['*'],
      nsadmin: ['namespace settings', 'members', 'rules', 'me', 'own password'],
      developer: ['me', 'own password'],
      unrelated: ['me', 'own password'],
      robot: ['me'],
      anonymous: [],
    };

    for (const who of ['admin', 'nsadmin', 'developer', 'unrelated', 'robot', 'anonymous']) {
      it(`${who}: ${ALLOWED[who]?.join(', ') || 'nothing'}`, async () => {
        // The admin deletes the other namespace last, so that the others see 403 on it and not 404.
        const ordered =
          who === 'admin'
            ? [...ops.filter((o) => o.method !== 'DELETE'), ...ops.filter((o) => o.method === 'DELETE')]
            : ops;
        for (const op of ordered) {
          if (who === 'anonymous' && op.area === 'own password') continue;
          const res = await call(principals[who] as Who, op.method, op.url(who), op.body?.(who));
          const allowed = ALLOWED[who]?.includes('*') || ALLOWED[who]?.includes(op.area);
          const what = `${who} ${op.method} ${op.url(who)}`;
          if (who === 'anonymous') assertError(res, 401, 'UNAUTHORIZED');
          else if (allowed)
            assert.ok(
              res.statusCode >= 200 && res.statusCode < 300,
              `${what}: ${res.statusCode} ${res.body}`,
            );
          else assertError(res, 403, 'DENIED');
          void what;
        }
      });
    }

    it('a namespace admin may also delete the namespace rules and members, not the namespace', async () => {
      const nsadmin = principals.nsadmin as Who;
      await ok(await call(nsadmin, 'DELETE', `/namespaces/mx/rules/${ruleId}`), 204);
      await ok(await call(nsadmin, 'DELETE', '/namespaces/mx/members/user/mx-target'), 204);
      assertError(await call(nsadmin, 'DELETE', '/namespaces/mx'), 403, 'DENIED');
      assertError(
        await call(principals.developer as Who, 'DELETE', '/namespaces/mx/members/user/mx-dev'),
        403,
        'DENIED',
      );
    });

    it('namespace admin through a team, and of a personal namespace', async () => {
      const lead = await user('mx-lead');
      await ok(await call(admin, 'POST', '/teams', { name: 'mx-leads' }), 201);
      await ok(await call(admin, 'PUT', '/teams/mx-leads/members/mx-lead'), 204);
      await ok(await call(admin, 'POST', '/namespaces', { name: 'mx-team-ns' }), 201);
      assertError(await call(lead, 'GET', '/namespaces/mx-team-ns'), 403, 'DENIED');
      await ok(await call(admin, 'PUT', '/namespaces/mx-team-ns/members/team/mx-leads', { role: 'admin' }));
      await ok(await call(lead, 'PATCH', '/namespaces/mx-team-ns', { visibility: 'public' }));
      // Personal namespace: the record is made by an administrator, the user administers it.
      await ok(await call(admin, 'POST', '/namespaces', { name: 'mx-lead' }), 201);
      await ok(await call(lead, 'PUT', '/namespaces/mx-lead/members/user/mx-dev', { role: 'reader' }));
      const listed = await ok(await call(lead, 'GET', '/namespaces'));
      assert.deepEqual(
        (listed.items as { name: string }[]).map((n) => n.name),
        ['mx-lead', 'mx-team-ns'],
      );
      const me = await ok(await call(lead, 'GET', '/me'));
      assert.deepEqual(me.teams, ['mx-leads']);
      assert.deepEqual(me.namespaces, [
        { namespace: 'mx-lead', role: 'admin' },
        { namespace: 'mx-team-ns', role: 'admin' },
      ]);
      const devList = await ok(await call(principals.developer as Who, 'GET', '/namespaces'));
      assert.deepEqual(devList, { items: [], next: null });
      assertError(await call(principals.robot as Who, 'GET', '/namespaces'), 403, 'DENIED');
    });

    it('denied changes are audited as failures', async () => {
      const events = await auditEvents('actor=mx-unrelated&success=false');
      const actions = new Set(events.map((e) => e.action));
      for (const a of [
        'user.create',
        'user.update',
        'team.create',
        'namespace.update',
        'member.set',
        'rule.add',
        'key.prune',
      ])
        assert.ok(actions.has(a), `${a} in ${[...actions].join(', ')}`);
      for (const e of events) assert.match(JSON.stringify(e.detail), /denied/);
    });
  });

  describe('audit log', () => {
    it('records every kind of change with the actor and source address', async () => {
      const from = '10.1.2.3';
      const o = { remoteAddress: from };
      await ok(await call(admin, 'POST', '/users', { username: 'au-user', password: 'password' }, o), 201);
      await ok(await call(admin, 'PATCH', '/users/au-user', { email: 'a@example.com' }, o));
      await ok(await call(admin, 'PUT', '/users/au-user/password', { password: 'password2' }, o), 204);
      await ok(await call(admin, 'POST', '/robots', { name: 'au-bot' }, o), 201);
      await ok(await call(admin, 'POST', '/robots/au-bot/rotate', undefined, o));
      await ok(await call(admin, 'POST', '/robots/au-bot/revoke', undefined, o));
      await ok(await call(admin, 'DELETE', '/robots/au-bot', undefined, o), 204);
      await ok(await call(admin, 'POST', '/teams', { name: 'au-team' }, o), 201);
      await ok(await call(admin, 'PUT', '/teams/au-team/members/au-user', undefined, o), 204);
      await ok(await call(admin, 'DELETE', '/teams/au-team/members/au-user', undefined, o), 204);
      await ok(await call(admin, 'DELETE', '/teams/au-team', undefined, o), 204);
      await ok(await call(admin, 'POST', '/namespaces', { name: 'au-ns' }, o), 201);
      await ok(await call(admin, 'PATCH', '/namespaces/au-ns', { visibility: 'public' }, o));
      await ok(await call(admin, 'PUT', '/namespaces/au-ns/members/user/au-user', { role: 'reader' }, o));
      await ok(await call(admin, 'DELETE', '/namespaces/au-ns/members/user/au-user', undefined, o), 204);
      const rule = await ok(
        await call(
          admin,
          'POST',
          '/namespaces/au-ns/rules',
          { pattern: 'x', kind: 'user', principal: 'au-user', role: 'reader' },
          o,
        ),
        201,
      );
      await ok(
        await call(admin, 'DELETE', `/namespaces/au-ns/rules/${rule.id as number}`, undefined, o),
        204,
      );
      await ok(await call(admin, 'DELETE', '/namespaces/au-ns', undefined, o), 204);
      await ok(await call(admin, 'POST', '/keys/rotate', undefined, o));
      await ok(await call(admin, 'POST', '/keys/prune', undefined, o));
      await ok(await call(admin, 'DELETE', '/users/au-user', undefined, o), 204);

      const events = (await auditEvents('actor=admin')).filter((e) => e.sourceAddr === from);
      const actions = events.map((e) => e.action).reverse();
      assert.deepEqual(actions, [
        'user.create',
        'user.update',
        'user.update',
        'robot.create',
        'robot.rotate',
        'robot.revoke',
        'robot.delete',
        'team.create',
        'team.member.add',
        'team.member.remove',
        'team.delete',
        'namespace.create',
        'namespace.update',
        'member.set',
        'member.remove',
        'rule.add',
        'rule.delete',
        'namespace.delete',
        'key.rotate',
        'key.prune',
        'user.delete',
      ]);
      for (const e of events) {
        assert.equal(e.actorKind, 'user');
        assert.equal(e.success, true);
        assert.equal((e.detail as { via: string }).via, 'api');
      }
      const member = events.find((e) => e.action === 'member.set');
      assert.equal(member?.target, 'au-ns');
      assert.deepEqual(member?.detail, { via: 'api', kind: 'user', principal: 'au-user', role: 'reader' });
      const pw = events.find(
        (e) => e.action === 'user.update' && JSON.stringify(e.detail).includes('password'),
      );
      assert.ok(pw, 'the password change is recorded');
      assert.ok(!JSON.stringify(events).includes('password2'), 'the password itself is not');
    });

    it('filters by actor, action (exact or prefix), target (exact or prefix), success and time', async () => {
      const byActor = await auditEvents('actor=admin');
      assert.ok(byActor.length > 0 && byActor.every((e) => e.actor === 'admin'));
      const exact = await auditEvents('action=robot.create');
      assert.ok(exact.length > 0 && exact.every((e) => e.action === 'robot.create'));
      const prefix = await auditEvents('action=robot.');
      assert.deepEqual(
        new Set(prefix.map((e) => e.action)),
        new Set(['robot.create', 'robot.rotate', 'robot.revoke', 'robot.delete']),
      );
      const target = await auditEvents('target=au-ns');
      assert.ok(target.length >= 7 && target.every((e) => e.target === 'au-ns'));
      const targetPrefix = await auditEvents('target=au-*');
      assert.deepEqual(new Set(targetPrefix.map((e) => e.target)), new Set(['au-user', 'au-team', 'au-ns']));
      const failures = await auditEvents('success=false');
      assert.ok(failures.length > 0 && failures.every((e) => e.success === false));
      const successes = await auditEvents('success=true&action=user.');
      assert.ok(successes.every((e) => e.success === true));

      const all = await auditEvents('');
      const newest = all[0] as { time: string; id: number };
      const since = await auditEvents(`since=${encodeURIComponent(newest.time)}`);
      assert.ok(since.some((e) => e.id === newest.id));
      assert.ok(since.every((e) => Date.parse(e.time as string) >= Date.parse(newest.time)));
      const until = await auditEvents(`until=${encodeURIComponent(newest.time)}`);
      assert.ok(!until.some((e) => e.id === newest.id));
      assert.deepEqual(await auditEvents('since=2001-01-01&until=2001-01-02'), []);
      assert.equal((await auditEvents('since=1h')).length, all.length, 'a duration means that long ago');
      assert.deepEqual(await auditEvents('until=1h'), []);

      assertError(await call(admin, 'GET', '/audit?since=yesterday'), 400, 'UNSUPPORTED');
      assertError(await call(admin, 'GET', '/audit?until=2024-13-45'), 400, 'UNSUPPORTED');
      assertError(await call(admin, 'GET', '/audit?success=maybe'), 400, 'UNSUPPORTED');
      assertError(await call(admin, 'GET', '/audit?before=abc'), 400, 'UNSUPPORTED');
      assertError(await call(admin, 'GET', '/audit?limit=-1'), 400, 'PAGINATION_NUMBER_INVALID');
    });

    it('pages newest first with the next cursor passed as before', async () => {
      const all = await auditEvents('action=user.');
      assert.ok(all.length > 5);
      const seen: number[] = [];
      let cursor: string | null = null;
      do {
        const q: string = `/audit?action=user.&limit=3${cursor ? `&before=${cursor}` : ''}`;
        const page = await ok(await call(admin, 'GET', q));
        const events = page.events as { id: number }[];
        assert.ok(events.length <= 3);
        seen.push(...events.map((e) => e.id));
        cursor = page.next as string | null;
        if (cursor !== null) assert.equal(cursor, String(events[events.length - 1]?.id));
      } while (cursor !== null);
      assert.deepEqual(
        seen,
        all.map((e) => e.id),
      );
      assert.deepEqual(
        seen,
        [...seen].sort((a, b) => b - a),
      );
      const defaultPage = await ok(await call(admin, 'GET', '/audit'));
      assert.ok((defaultPage.events as unknown[]).length <= 50);
    });

    it('logins through the API are audited as failures when wrong', async () => {
      await call({ user: 'admin', password: 'definitely-wrong' }, 'GET', '/me', undefined, {
        remoteAddress: '10.9.9.9',
      });
      const events = await auditEvents('action=login&success=false&actor=admin');
      assert.ok(events.some((e) => e.sourceAddr === '10.9.9.9'));
    });
  });

  it('unknown paths under /api/v1 answer 404 with the envelope', async () => {
    const res = await reg.inject({ method: 'GET', url: `${PREFIX}/nothing` });
    assertError(res, 404, 'UNSUPPORTED');
  });
});

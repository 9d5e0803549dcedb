/**
 * The pull-through cache's upstreams through the admin API, on SQLite and PostgreSQL: who may, validation,
 * conflicts, that passwords are sealed and never returned, audit, OpenAPI conformance, and that an upstream added
 * through the API serves pulls at once (credentials included: the upstream is a Berth requiring Basic auth).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createTestRegistry, json, type Response, type TestRegistry } from '../helpers/app.ts';
import { addUser, basic, pushImageAs, type Headers } from '../helpers/auth.ts';
import { conforms } from '../helpers/openapi.ts';
import { POSTGRES_URL, postgresSkipReason } from '../helpers/postgres.ts';

const PREFIX = '/api/v1';
const ADMIN = basic('root', 'root-password-1');
const DEV = basic('dev', 'dev-password-1');

interface UpstreamBody {
  name: string;
  namespace: string;
  source: string;
  username: string | null;
  hasPassword: boolean;
  urls: string[];
  recheckInterval: string;
  mirror: boolean;
  [key: string]: unknown;
}

const pgSkip = await postgresSkipReason();
const dialects = [
  { name: 'sqlite', skip: false as const, schema: null },
  { name: 'postgres', skip: pgSkip, schema: `berth_test_${randomBytes(6).toString('hex')}` },
];

for (const dialect of dialects) {
  describe(`upstreams admin API on ${dialect.name}`, { skip: dialect.skip }, () => {
    let reg: TestRegistry;
    let upstream: TestRegistry;
    let upstreamUrl: string;

    async function api(
      method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
      url: string,
      headers: Headers,
      payload?: unknown,
    ): Promise<Response> {
      const full = `${PREFIX}${url}`;
      const res = await reg.inject({
        method,
        url: full,
        headers: payload === undefined ? headers : { ...headers, 'content-type': 'application/json' },
        ...(payload === undefined ? {} : { payload: JSON.stringify(payload) }),
      });
      conforms(method, full, res);
      return res;
    }

    before(async () => {
      // The upstream: a Berth that wants Basic credentials, with one private image.
      upstream = await createTestRegistry({ 'auth.mode': 'basic' });
      await addUser(upstream, 'mirror', 'mirror-password-1', { admin: true });
      await upstream.app.listen({ host: '127.0.0.1', port: 0 });
      upstreamUrl = `http://127.0.0.1:${(upstream.app.server.address() as AddressInfo).port}`;
      reg = await createTestRegistry({
        'auth.mode': 'basic',
        'secrets.key': 'a test key of enough length',
        'proxy.upstreams': [
          { name: 'fromconfig', namespace: 'configured', urls: ['https://example.invalid'] },
        ],
        ...(dialect.schema === null
          ? {}
          : {
              'metadata.driver': 'postgres',
              'metadata.postgres.url': POSTGRES_URL,
              'metadata.postgres.schema': dialect.schema,
            }),
      });
      await addUser(reg, 'root', 'root-password-1', { admin: true });
      await addUser(reg, 'dev', 'dev-password-1');
    });
    after(async () => {
      await reg?.dispose();
      await upstream?.dispose();
      if (dialect.schema !== null && !dialect.skip) {
        const admin = new pg.Client({ connectionString: POSTGRES_URL });
        await admin.connect();
        await admin.query(`drop schema if exists "${dialect.schema}" cascade`).finally(() => admin.end());
      }
    });

    it('adds an upstream with a sealed password that is never returned, and pulls through it', async () => {
      const res = await api('POST', '/upstreams', ADMIN, {
        name: 'private',
        namespace: 'priv',
        urls: [upstreamUrl],
        username: 'mirror',
        password: 'mirror-password-1',
        recheckInterval: '10m',
      });
      assert.equal(res.statusCode, 201, res.body);
      const body = json<UpstreamBody>(res);
      assert.equal(body.hasPassword, true);
      assert.equal(body.username, 'mirror');
      assert.equal(body.recheckInterval, '10m');
      assert.ok(!res.body.includes('mirror-password-1'), 'the password is never returned');
      const stored = await reg.services.proxy.store.get('private');
      assert.ok(stored?.sealedPassword?.startsWith('v1.'));
      assert.ok(!stored?.sealedPassword?.includes('mirror-password-1'));

      const image = await pushImageAs(upstream, basic('mirror', 'mirror-password-1'), 'team/app', 'v1');
      const pull = await reg.inject({ method: 'GET', url: '/v2/priv/team/app/manifests/v1', headers: ADMIN });
      assert.equal(pull.statusCode, 200, pull.body);
      assert.equal(pull.headers['docker-content-digest'], image.digest);

      const check = await api('POST', '/upstreams/private/check', ADMIN);
      assert.equal(check.statusCode, 200);
      assert.equal(json<{ ok: boolean }>(check).ok, true);
    });

    it('lists the configuration file upstreams as read-only, and refuses to change them', async () => {
      const list = await api('GET', '/upstreams', ADMIN);
      assert.equal(list.statusCode, 200);
      const items = json<{ items: UpstreamBody[] }>(list).items;
      assert.deepEqual(
        items.map((u) => [u.name, u.source]),
        [
          ['fromconfig', 'config'],
          ['private', 'api'],
        ],
      );
      const patch = await api('PATCH', '/upstreams/fromconfig', ADMIN, { recheckInterval: '1m' });
      assert.equal(patch.statusCode, 409);
      const del = await api('DELETE', '/upstreams/fromconfig', ADMIN);
      assert.equal(del.statusCode, 409);
    });

    it('refuses overlapping namespaces, a second mirror, bad settings and non-administrators', async () => {
      const nested = await api('POST', '/upstreams', ADMIN, {
        name: 'nested',
        namespace: 'priv/sub',
        urls: ['https://example.org'],
      });
      assert.equal(nested.statusCode, 409);
      const first = await api('POST', '/upstreams', ADMIN, {
        name: 'hub',
        namespace: 'hub',
        kind: 'dockerhub',
        mirror: true,
        urls: ['https://registry-1.docker.io'],
        evictAfterDays: 30,
      });
      assert.equal(first.statusCode, 201, first.body);
      const second = await api('POST', '/upstreams', ADMIN, {
        name: 'hub2',
        namespace: 'hub2',
        mirror: true,
        urls: ['https://example.org'],
      });
      assert.equal(second.statusCode, 409);
      const badUrl = await api('POST', '/upstreams', ADMIN, {
        name: 'bad',
        namespace: 'bad',
        urls: ['ftp://example.org/path'],
      });
      assert.equal(badUrl.statusCode, 400);
      const unknown = await api('POST', '/upstreams', ADMIN, {
        name: 'bad',
        namespace: 'bad',
        urls: ['https://example.org'],
        colour: 'blue',
      });
      assert.equal(unknown.statusCode, 400);
      assert.match(unknown.body, /colour/);
      const dev = await api('GET', '/upstreams', DEV);
      assert.equal(dev.statusCode, 403);
      const devAdd = await api('POST', '/upstreams', DEV, {
        name: 'x',
        namespace: 'x',
        urls: ['https://example.org'],
      });
      assert.equal(devAdd.statusCode, 403);
      // Eviction became the namespace's retention policy.
      const policy = await reg.services.retention.policy('hub');
      assert.deepEqual(
        policy?.rules.map((r) => r.kind),
        ['pulledWithin', 'pushedWithin'],
      );
    });

    it('changes settings, keeps or clears the password, and removes an upstream', async () => {
      const patched = await api('PATCH', '/upstreams/hub', ADMIN, {
        evictAfterDays: null,
        recheckInterval: 60,
      });
      assert.equal(patched.statusCode, 200, patched.body);
      assert.equal(json<UpstreamBody>(patched).recheckInterval, '1m');
      assert.equal(await reg.services.retention.policy('hub'), null, 'eviction off removes its policy');
      const keep = await api('PATCH', '/upstreams/private', ADMIN, { include: ['team/**'] });
      assert.equal(json<UpstreamBody>(keep).hasPassword, true);
      const clear = await api('PATCH', '/upstreams/private', ADMIN, { password: null });
      assert.equal(json<UpstreamBody>(clear).hasPassword, false);
      const del = await api('DELETE', '/upstreams/hub', ADMIN);
      assert.equal(del.statusCode, 204);
      const gone = await api('GET', '/upstreams/hub', ADMIN);
      assert.equal(gone.statusCode, 404);
    });

    it('audits the changes', async () => {
      const res = await api('GET', '/audit?action=upstream.&limit=200', ADMIN);
      assert.equal(res.statusCode, 200, res.body);
      const actions = json<{ events: { action: string; target: string }[] }>(res).events.map(
        (e) => `${e.action} ${e.target}`,
      );
      for (const want of ['upstream.create private', 'upstream.update hub', 'upstream.delete hub']) {
        assert.ok(actions.includes(want), `audit lacks ${want}: ${actions.join(', ')}`);
      }
    });
  });
}

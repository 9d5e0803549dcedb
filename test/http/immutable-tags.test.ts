/**
 * Immutable tags over HTTP, on SQLite and PostgreSQL: the admin API that manages the rules (who may, validation,
 * conflicts, audit, OpenAPI conformance) and every refusal the registry makes for a protected tag (moving it by a
 * push, deleting it, deleting the manifest it points at, deleting its repository: 403 DENIED with
 * `tag <tag> of <repository> is immutable`), next to what stays allowed (pushing the same digest again, creating
 * the tag, tags and namespaces no rule covers, everything once the rule is removed).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { assertError, createTestRegistry, json, type Response, type TestRegistry } from '../helpers/app.ts';
import {
  addNamespace,
  addRobot,
  addUser,
  basic,
  pushImageAs,
  putManifestAs,
  uniqueManifest,
  type Headers,
  type SeededImage,
} from '../helpers/auth.ts';
import { conforms } from '../helpers/openapi.ts';
import { POSTGRES_URL, postgresSkipReason } from '../helpers/postgres.ts';

const PREFIX = '/api/v1';
const ADMIN = basic('root', 'root-password-1');
const OWNER = basic('owner', 'owner-password-1');
const DEV = basic('dev', 'dev-password-1');
const ROBOT = basic('robot$ci', 'robot-secret-1');

interface RuleBody {
  id: number;
  namespace: string;
  repositoryGlob: string;
  tagGlob: string;
  createdBy: string | null;
  createdAt: string;
}

/** Asserts 403 DENIED with the message clients print for an immutable tag. */
function assertImmutable(res: Response, tag: string, repository: string): void {
  assertError(res, 403, 'DENIED');
  const body = json<{ errors: { message: string; detail: unknown }[] }>(res);
  assert.equal(body.errors[0]?.message, `tag ${tag} of ${repository} is immutable`);
  assert.deepEqual(body.errors[0]?.detail, { repository, tag });
}

const pgSkip = await postgresSkipReason();
const dialects = [
  { name: 'sqlite', skip: false as const, schema: null },
  { name: 'postgres', skip: pgSkip, schema: `berth_test_${randomBytes(6).toString('hex')}` },
];

for (const dialect of dialects) {
  describe(`immutable tags on ${dialect.name}`, { skip: dialect.skip }, () => {
    let reg: TestRegistry;

    async function api(
      method: 'GET' | 'POST' | 'DELETE',
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

    async function addRule(ns: string, body: Record<string, unknown>, headers = ADMIN): Promise<RuleBody> {
      const res = await api('POST', `/namespaces/${ns}/immutable-tags`, headers, body);
      assert.equal(res.statusCode, 201, res.body);
      return json<RuleBody>(res);
    }

    async function removeRule(ns: string, id: number, headers = ADMIN): Promise<void> {
      const res = await api('DELETE', `/namespaces/${ns}/immutable-tags/${id}`, headers);
      assert.equal(res.statusCode, 204, res.body);
    }

    /** Pushes a new manifest over the layer and config of `image` at `reference`. */
    function pushOther(repo: string, reference: string, image: SeededImage): Promise<Response> {
      return putManifestAs(reg, ADMIN, repo, reference, uniqueManifest(image.config, image.layer));
    }

    async function digestOfTag(repo: string, tag: string): Promise<string | undefined> {
      const res = await reg.inject({ method: 'HEAD', url: `/v2/${repo}/manifests/${tag}`, headers: ADMIN });
      return res.statusCode === 200 ? String(res.headers['docker-content-digest']) : undefined;
    }

    before(async () => {
      reg = await createTestRegistry({
        'auth.mode': 'basic',
        ...(dialect.schema === null
          ? {}
          : {
              'metadata.driver': 'postgres',
              'metadata.postgres.url': POSTGRES_URL,
              'metadata.postgres.schema': dialect.schema,
            }),
      });
      await addUser(reg, 'root', 'root-password-1', { admin: true });
      await addUser(reg, 'owner', 'owner-password-1');
      await addUser(reg, 'dev', 'dev-password-1');
      await addRobot(reg, 'robot$ci', 'robot-secret-1');
      await addNamespace(reg, 'team', 'private', [
        ['user', 'owner', 'admin'],
        ['user', 'dev', 'maintainer'],
        ['robot', 'robot$ci', 'admin'],
      ]);
      await addNamespace(reg, 'other', 'private', [['user', 'dev', 'admin']]);
    });
    after(async () => {
      await reg.dispose();
      if (dialect.schema !== null) {
        const client = new pg.Client({ connectionString: POSTGRES_URL });
        await client.connect();
        await client.query(`drop schema if exists "${dialect.schema}" cascade`);
        await client.end();
      }
    });

    it('namespace admins and system admins manage the rules; the changes are audited', async () => {
      const rule = await addRule('team', { repositoryGlob: 'svc/*', tagGlob: 'v*' }, OWNER);
      assert.equal(rule.namespace, 'team');
      assert.equal(rule.repositoryGlob, 'svc/*');
      assert.equal(rule.tagGlob, 'v*');
      assert.equal(rule.createdBy, 'owner');
      const byAdmin = await addRule('team', { tagGlob: 'release-*' });
      assert.equal(byAdmin.repositoryGlob, '**', 'the repository glob defaults to every repository');

      const list = await api('GET', '/namespaces/team/immutable-tags', OWNER);
      assert.equal(list.statusCode, 200, list.body);
      assert.deepEqual(
        json<{ items: RuleBody[] }>(list).items.map((r) => r.id),
        [rule.id, byAdmin.id],
      );
      const page = await api('GET', '/namespaces/team/immutable-tags?limit=1', OWNER);
      assert.deepEqual(json(page), { items: [rule], next: String(rule.id) });
      const rest = await api('GET', `/namespaces/team/immutable-tags?limit=1&after=${rule.id}`, OWNER);
      assert.deepEqual(
        json<{ items: RuleBody[]; next: string | null }>(rest).items.map((r) => r.id),
        [byAdmin.id],
      );

      const dup = await api('POST', '/namespaces/team/immutable-tags', OWNER, {
        repositoryGlob: 'svc/*',
        tagGlob: 'v*',
      });
      assertError(dup, 409, 'UNSUPPORTED');
      assertError(
        await api('POST', '/namespaces/team/immutable-tags', OWNER, { tagGlob: 'v 1' }),
        400,
        'UNSUPPORTED',
      );
      assertError(
        await api('POST', '/namespaces/team/immutable-tags', OWNER, { repositoryGlob: 'Bad', tagGlob: 'v1' }),
        400,
        'UNSUPPORTED',
      );
      assertError(await api('POST', '/namespaces/team/immutable-tags', OWNER, {}), 400, 'UNSUPPORTED');

      // A maintainer, a robot with the admin role and the admin of another namespace may not.
      assertError(await api('POST', '/namespaces/team/immutable-tags', DEV, { tagGlob: 'x' }), 403, 'DENIED');
      assertError(
        await api('POST', '/namespaces/team/immutable-tags', ROBOT, { tagGlob: 'x' }),
        403,
        'DENIED',
      );
      assertError(await api('GET', '/namespaces/team/immutable-tags', DEV), 403, 'DENIED');
      assertError(await api('DELETE', `/namespaces/team/immutable-tags/${rule.id}`, DEV), 403, 'DENIED');
      const anonymous = await reg.inject({ method: 'GET', url: `${PREFIX}/namespaces/team/immutable-tags` });
      assert.equal(anonymous.statusCode, 401);
      // dev administers `other`, but a rule of `team` is not found there.
      assertError(
        await api('DELETE', `/namespaces/other/immutable-tags/${rule.id}`, DEV),
        404,
        'NAME_UNKNOWN',
      );
      assertError(await api('DELETE', '/namespaces/team/immutable-tags/abc', OWNER), 400, 'UNSUPPORTED');

      await removeRule('team', rule.id, OWNER);
      await removeRule('team', byAdmin.id);
      assertError(
        await api('DELETE', `/namespaces/team/immutable-tags/${rule.id}`, OWNER),
        404,
        'NAME_UNKNOWN',
      );
      const empty = await api('GET', '/namespaces/team/immutable-tags', ADMIN);
      assert.deepEqual(json(empty), { items: [], next: null });

      const audit = await reg.services.auth.store.queryAudit({ action: 'immutable-tag.', limit: 20 });
      assert.deepEqual(
        audit.items
          .map((a) => `${a.action} ${a.actor} ${a.target} ${a.success}`)
          .reverse()
          .slice(0, 4),
        [
          'immutable-tag.add owner team true',
          'immutable-tag.add root team true',
          'immutable-tag.add dev team false',
          'immutable-tag.add robot$ci team false',
        ],
      );
      const removals = audit.items.filter((a) => a.action === 'immutable-tag.remove' && a.success);
      assert.deepEqual(
        removals.map((a) => `${a.actor} ${String((a.detail as Record<string, unknown>).tagGlob)}`).reverse(),
        ['owner v*', 'root release-*'],
      );
    });

    it('refuses to move an immutable tag; the same digest again, a new tag, other tags and namespaces pass', async () => {
      const v1 = await pushImageAs(reg, ADMIN, 'team/app', 'v1');
      const rule = await addRule('team', { repositoryGlob: '**', tagGlob: 'v*' });
      try {
        const again = await putManifestAs(reg, ADMIN, 'team/app', 'v1', v1.bytes);
        assert.equal(again.statusCode, 201, `the same digest again: ${again.body}`);

        assertImmutable(await pushOther('team/app', 'v1', v1), 'v1', 'team/app');
        assert.equal(await digestOfTag('team/app', 'v1'), v1.digest, 'v1 did not move');
        // Also as an extra `?tag=` of a push by digest (and the manifest is not stored).
        const other = uniqueManifest(v1.config, v1.layer);
        const otherDigest = `sha256:${createHash('sha256').update(other).digest('hex')}`;
        const byDigest = await putManifestAs(reg, ADMIN, 'team/app', `${otherDigest}?tag=v1`, other);
        assertImmutable(byDigest, 'v1', 'team/app');
        const stored = await reg.inject({
          method: 'HEAD',
          url: `/v2/team/app/manifests/${otherDigest}`,
          headers: ADMIN,
        });
        assert.equal(stored.statusCode, 404);

        // A maintainer, who may otherwise overwrite tags, is refused the same way.
        const dev = await putManifestAs(reg, DEV, 'team/app', 'v1', uniqueManifest(v1.config, v1.layer));
        assertImmutable(dev, 'v1', 'team/app');

        // Creating a matching tag succeeds once, then it is protected too.
        assert.equal((await pushOther('team/app', 'v2', v1)).statusCode, 201);
        assertImmutable(await pushOther('team/app', 'v2', v1), 'v2', 'team/app');

        // Tags the glob does not match move freely; so do tags in another namespace.
        assert.equal((await pushOther('team/app', 'latest', v1)).statusCode, 201);
        assert.equal((await pushOther('team/app', 'latest', v1)).statusCode, 201);
        const elsewhere = await pushImageAs(reg, ADMIN, 'other/app', 'v1');
        assert.equal((await pushOther('other/app', 'v1', elsewhere)).statusCode, 201);

        // Once the rule is gone (this process forgets its cache at once), v1 moves.
        await removeRule('team', rule.id);
        assert.equal((await pushOther('team/app', 'v1', v1)).statusCode, 201);
      } finally {
        await reg.services.immutableTags.remove('team', rule.id);
      }
    });

    it('refuses deleting an immutable tag, the manifest one points at, and its repository', async () => {
      const v1 = await pushImageAs(reg, ADMIN, 'team/keep', 'v1');
      const loose = await pushImageAs(reg, ADMIN, 'team/keep', 'latest');
      const rule = await addRule('team', { repositoryGlob: 'keep', tagGlob: 'v1' });
      try {
        const del = (reference: string): Promise<Response> =>
          reg.inject({ method: 'DELETE', url: `/v2/team/keep/manifests/${reference}`, headers: ADMIN });

        assertImmutable(await del('v1'), 'v1', 'team/keep');
        assertImmutable(await del(v1.digest), 'v1', 'team/keep');
        assert.equal(await digestOfTag('team/keep', 'v1'), v1.digest);
        assertError(await del('v9'), 404, 'MANIFEST_UNKNOWN');

        // What no rule protects goes as usual.
        assert.equal((await del('latest')).statusCode, 202);
        assert.equal((await del(loose.digest)).statusCode, 202);

        const url = `${PREFIX}/repositories/${encodeURIComponent('team/keep')}`;
        const repo = await reg.inject({ method: 'DELETE', url, headers: OWNER });
        conforms('DELETE', url, repo);
        assertError(repo, 403, 'DENIED');
        assert.equal(
          json<{ errors: { message: string }[] }>(repo).errors[0]?.message,
          'tag v1 of team/keep is immutable',
        );
        assert.equal(await reg.services.metadata.repositoryExists('team/keep'), true);

        await removeRule('team', rule.id);
        assert.equal((await del('v1')).statusCode, 202);
        const gone = await reg.inject({ method: 'DELETE', url, headers: OWNER });
        assert.equal(gone.statusCode, 200, gone.body);
      } finally {
        await reg.services.immutableTags.remove('team', rule.id);
      }
    });

    it('a repository whose immutable tags match no rule any more, or none of whose tags match, is deleted', async () => {
      await pushImageAs(reg, ADMIN, 'team/loose', 'latest');
      const rule = await addRule('team', { repositoryGlob: 'loose', tagGlob: 'v*' });
      try {
        const url = `${PREFIX}/repositories/${encodeURIComponent('team/loose')}`;
        const res = await reg.inject({ method: 'DELETE', url, headers: OWNER });
        assert.equal(res.statusCode, 200, res.body);
      } finally {
        await reg.services.immutableTags.remove('team', rule.id);
      }
    });
  });
}

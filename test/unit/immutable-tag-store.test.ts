/**
 * Immutable tag rules on SQLite and PostgreSQL: the store (add, conflicts, listing per namespace, removal scoped to
 * the namespace, the tags on a digest) and the rules' matching and cache (`ImmutableTags`): repository globs over
 * the name after the namespace, tag globs, a change made here applying at once, one made elsewhere after the TTL.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ImmutableTags } from '../../src/lifecycle/immutable-tags.ts';
import { ConflictError } from '../../src/metadata/auth-store.ts';
import type { ImmutableTagStore } from '../../src/metadata/immutable-tag-store.ts';
import type { Digest } from '../../src/oci/digest.ts';
import { testDatabases, type TestDatabase } from '../helpers/databases.ts';

function digestOf(text: string): Digest {
  return `sha256:${createHash('sha256').update(text).digest('hex')}` as Digest;
}

for (const kind of await testDatabases()) {
  describe(`immutable tag rules on ${kind.dialect}`, { skip: kind.skip }, () => {
    let db: TestDatabase;
    let store: ImmutableTagStore;
    beforeEach(async () => {
      db = await kind.create();
      store = db.store.immutableTagStore();
    });
    afterEach(() => db.cleanup());

    /** Pushes a manifest without references to `repository` under `tags`; returns its digest. */
    async function manifest(repository: string, tags: string[], nonce = tags.join()): Promise<Digest> {
      const payload = Buffer.from(JSON.stringify({ schemaVersion: 2, nonce }));
      const digest = digestOf(payload.toString());
      const result = await db.store.putManifest({
        repository,
        digest,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        payload,
        subject: null,
        artifactType: null,
        annotations: null,
        blobs: [],
        manifests: [],
        tags,
      });
      assert.equal(result.ok, true);
      return digest;
    }

    it('adds, lists per namespace by id, refuses the same rule twice, removes only within its namespace', async () => {
      const a = await store.add({
        namespace: 'team',
        repositoryGlob: '**',
        tagGlob: 'v*',
        createdBy: 'alice',
      });
      assert.equal(a.namespace, 'team');
      assert.equal(a.repositoryGlob, '**');
      assert.equal(a.tagGlob, 'v*');
      assert.equal(a.createdBy, 'alice');
      assert.ok(a.createdAt instanceof Date && Math.abs(a.createdAt.getTime() - Date.now()) < 60_000);
      await assert.rejects(
        store.add({ namespace: 'team', repositoryGlob: '**', tagGlob: 'v*', createdBy: null }),
        ConflictError,
      );
      const b = await store.add({ namespace: 'team', repositoryGlob: 'app', tagGlob: 'v*', createdBy: null });
      const c = await store.add({ namespace: 'other', repositoryGlob: '**', tagGlob: 'v*', createdBy: null });
      assert.deepEqual(
        (await store.list('team')).map((r) => r.id),
        [a.id, b.id],
      );
      assert.deepEqual(await store.list('other'), [c]);
      assert.deepEqual(await store.list('nobody'), []);

      assert.equal(await store.delete('other', a.id), null, 'a rule of another namespace is not found');
      assert.deepEqual(await store.delete('team', a.id), a);
      assert.equal(await store.delete('team', a.id), null);
      assert.deepEqual(
        (await store.list('team')).map((r) => r.id),
        [b.id],
      );
    });

    it('finds the tags pointing at a digest', async () => {
      const one = await manifest('team/app', ['v1', 'latest', 'stable']);
      const two = await manifest('team/app', ['v2']);
      await manifest('team/other', ['v1'], 'other');
      assert.deepEqual(await store.tagsOn('team/app', one), ['latest', 'stable', 'v1']);
      assert.deepEqual(await store.tagsOn('team/app', two), ['v2']);
      assert.deepEqual(await store.tagsOn('team/other', one), []);
      assert.deepEqual(await store.tagsOn('team/app', digestOf('absent')), []);
    });

    it('matches the repository glob against the name after the namespace, and the tag glob against the tag', async () => {
      const rules = new ImmutableTags(store, db.store, { cacheTtl: 60_000 });
      await rules.add({ namespace: 'team', repositoryGlob: 'app', tagGlob: 'v*', createdBy: null });
      await rules.add({
        namespace: 'team',
        repositoryGlob: 'libs/**',
        tagGlob: 'release-?',
        createdBy: null,
      });
      assert.equal(await rules.isImmutable('team/app', 'v1'), true);
      assert.equal(await rules.isImmutable('team/app', 'v1.2.3'), true);
      assert.equal(await rules.isImmutable('team/app', 'latest'), false);
      assert.equal(await rules.isImmutable('team/app/sub', 'v1'), false, '`app` is one component');
      assert.equal(await rules.isImmutable('team/libs/a/b', 'release-1'), true);
      assert.equal(await rules.isImmutable('team/libs/a', 'release-10'), false);
      assert.equal(await rules.isImmutable('other/app', 'v1'), false, 'rules belong to their namespace');
      assert.equal(await rules.isImmutable('team', 'v1'), false, 'the rest of `team` is empty');

      const one = await manifest('team/app', ['v1', 'latest']);
      await manifest('team/app', ['v2', 'edge'], 'two');
      await manifest('team/app', ['latest2'], 'three');
      assert.deepEqual(await rules.immutableTagsOn('team/app', one), ['v1']);
      assert.equal(await rules.firstImmutableTag('team/app'), 'v1');
      await manifest('team/plain', ['v1'], 'plain');
      assert.equal(await rules.firstImmutableTag('team/plain'), null, 'no rule covers team/plain');
      await manifest('team/libs/x', ['latest'], 'libs');
      assert.equal(await rules.firstImmutableTag('team/libs/x'), null, 'covered, but no tag matches');
    });

    it('applies a change made in this process at once, one made by another instance after the TTL', async () => {
      const here = new ImmutableTags(store, db.store, { cacheTtl: 60_000 });
      const elsewhere = new ImmutableTags(store, db.store, { cacheTtl: 60_000 });
      assert.equal(await here.isImmutable('team/app', 'v1'), false);
      assert.equal(await elsewhere.isImmutable('team/app', 'v1'), false);
      const rule = await elsewhere.add({
        namespace: 'team',
        repositoryGlob: '**',
        tagGlob: 'v1',
        createdBy: null,
      });
      assert.equal(await elsewhere.isImmutable('team/app', 'v1'), true);
      assert.equal(await here.isImmutable('team/app', 'v1'), false, 'cached until the TTL (or invalidate)');
      here.invalidate('team');
      assert.equal(await here.isImmutable('team/app', 'v1'), true);
      assert.deepEqual(await here.remove('team', rule.id), rule);
      assert.equal(await here.isImmutable('team/app', 'v1'), false);

      const short = new ImmutableTags(store, db.store, { cacheTtl: 20 });
      assert.equal(await short.isImmutable('team/app', 'v9'), false);
      await store.add({ namespace: 'team', repositoryGlob: '**', tagGlob: 'v9', createdBy: null });
      await new Promise((resolve) => setTimeout(resolve, 60));
      assert.equal(await short.isImmutable('team/app', 'v9'), true, 'read again once the TTL passed');
    });
  });
}

/**
 * Namespace usage as the metadata writes maintain it (usage-accounting.ts), on SQLite and PostgreSQL: a blob
 * shared by repositories of one namespace counts once, in two namespaces once in each; unlinks, manifest and
 * repository deletes give the bytes back; the migration backfills usage from existing data; quotas refuse the
 * writes that would exceed them (rolling the whole write back) and not those that add nothing.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Kysely } from 'kysely';
import type { KyselyMetadataStore } from '../../src/metadata/kysely-store.ts';
import type { Database } from '../../src/metadata/schema.ts';
import { usageAndQuotasMigration } from '../../src/metadata/migrations/0011-usage-and-quotas.ts';
import { QuotaExceededError, type UsageStore } from '../../src/metadata/usage.ts';
import { digestOf, type Digest } from '../../src/oci/digest.ts';
import { testDatabases, type TestDatabase } from '../helpers/databases.ts';

function blob(text: string): { digest: Digest; size: number } {
  return { digest: digestOf(Buffer.from(text)), size: Buffer.byteLength(text) };
}

async function putManifest(
  store: KyselyMetadataStore,
  repository: string,
  blobs: Digest[],
  tag: string,
  marker = '',
): Promise<{ digest: Digest; size: number }> {
  const payload = Buffer.from(JSON.stringify({ schemaVersion: 2, blobs, marker }));
  const digest = digestOf(payload);
  const result = await store.putManifest({
    repository,
    digest,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    payload,
    subject: null,
    artifactType: null,
    annotations: null,
    blobs,
    manifests: [],
    tags: [tag],
  });
  assert.deepEqual(result, { ok: true });
  return { digest, size: payload.length };
}

function rawDb(store: KyselyMetadataStore): Kysely<Database> {
  return (store as unknown as { db: Kysely<Database> }).db;
}

/** The usage of `namespace` recomputed from the links and manifests, as the accounting defines it. */
async function recomputed(store: KyselyMetadataStore, namespace: string): Promise<number> {
  const db = rawDb(store);
  const inNamespace = (name: string) => name === namespace || name.startsWith(`${namespace}/`);
  const links = await db
    .selectFrom('repository_blobs as rb')
    .innerJoin('repositories as r', 'r.id', 'rb.repository_id')
    .innerJoin('blobs as b', 'b.digest', 'rb.digest')
    .select(['r.name', 'b.digest', 'b.size'])
    .execute();
  const distinct = new Map<string, number>();
  for (const l of links) if (inNamespace(l.name)) distinct.set(l.digest, Number(l.size));
  const manifests = await db
    .selectFrom('manifests as m')
    .innerJoin('repositories as r', 'r.id', 'm.repository_id')
    .select(['r.name', 'm.size'])
    .execute();
  let bytes = [...distinct.values()].reduce((a, b) => a + b, 0);
  for (const m of manifests) if (inNamespace(m.name)) bytes += Number(m.size);
  return bytes;
}

for (const kind of await testDatabases()) {
  describe(`namespace usage accounting on ${kind.dialect}`, { skip: kind.skip }, () => {
    let db: TestDatabase;
    let store: KyselyMetadataStore;
    let usage: UsageStore;
    const bytes = async (namespace: string) => (await usage.namespaceUsage(namespace)).bytes;

    beforeEach(async () => {
      db = await kind.create();
      store = db.store;
      usage = store.usageStore();
    });
    afterEach(() => db.cleanup());

    it('counts a layer shared in one namespace once, across namespaces once in each, plus manifests', async () => {
      const layer = blob('shared layer bytes');
      const other = blob('another layer');
      await store.linkBlob('team/a', layer.digest, layer.size);
      await store.linkBlob('team/b', layer.digest, layer.size);
      await store.linkBlob('team/b', layer.digest, layer.size); // idempotent re-link
      await store.linkBlob('other/c', layer.digest, layer.size);
      await store.linkBlob('team/a', other.digest, other.size);
      assert.equal(await bytes('team'), layer.size + other.size);
      assert.equal(await bytes('other'), layer.size);

      const m1 = await putManifest(store, 'team/a', [layer.digest], 'v1');
      await putManifest(store, 'team/a', [layer.digest], 'v1'); // repeated push: counted once
      assert.equal(await bytes('team'), layer.size + other.size + m1.size);
      assert.equal(await bytes('team'), await recomputed(store, 'team'));

      // A top-level repository is its own namespace.
      await store.linkBlob('solo', other.digest, other.size);
      assert.equal(await bytes('solo'), other.size);
      assert.deepEqual(
        (await usage.listNamespaceUsage()).map((u) => u.namespace),
        ['other', 'solo', 'team'],
      );
    });

    it('gives bytes back on unlink, manifest delete and repository delete, only with the last link', async () => {
      const layer = blob('layer one');
      const config = blob('config');
      await store.linkBlob('team/a', layer.digest, layer.size);
      await store.linkBlob('team/b', layer.digest, layer.size);
      await store.linkBlob('team/a', config.digest, config.size);
      const m = await putManifest(store, 'team/a', [layer.digest, config.digest], 'v1');
      assert.equal(await bytes('team'), layer.size + config.size + m.size);

      assert.equal(await store.unlinkBlob('team/b', layer.digest), true);
      assert.equal(await bytes('team'), layer.size + config.size + m.size, 'team/a still links it');
      assert.equal(await store.unlinkBlob('team/b', layer.digest), false);
      assert.equal(await bytes('team'), layer.size + config.size + m.size);

      assert.equal(await store.deleteManifest('team/a', m.digest), true);
      assert.equal(await bytes('team'), layer.size + config.size);

      await store.linkBlob('team/b', config.digest, config.size);
      await putManifest(store, 'team/a', [layer.digest], 'v2', 'second');
      assert.equal(await store.deleteRepository('team/a'), true);
      assert.equal(await bytes('team'), config.size, 'only team/b link remains');
      assert.equal(await bytes('team'), await recomputed(store, 'team'));
      assert.equal(await store.deleteRepository('team/b'), true);
      assert.equal(await bytes('team'), 0);
      const rows = await rawDb(store).selectFrom('namespace_blobs').selectAll().execute();
      assert.deepEqual(rows, [], 'no blob row outlives its last link');
    });

    it('the migration backfills usage from existing links and manifests', async () => {
      const layer = blob('backfilled layer');
      const other = blob('backfilled other');
      await store.linkBlob('team/a', layer.digest, layer.size);
      await store.linkBlob('team/b', layer.digest, layer.size);
      await store.linkBlob('lib/x', layer.digest, layer.size);
      await store.linkBlob('lib', other.digest, other.size);
      const m = await putManifest(store, 'team/a', [layer.digest], 'v1');
      await usage.setQuota('empty', 100);
      const expected = {
        team: layer.size + m.size,
        lib: layer.size + other.size,
      };
      // Forget the accounting and run migration 0011 again over the existing data. Later migrations have run
      // too, so the migrator would refuse to re-run a middle one: call its `up` directly.
      const raw = rawDb(store);
      await raw.schema.dropTable('namespace_usage').execute();
      await raw.schema.dropTable('namespace_blobs').execute();
      await usageAndQuotasMigration(kind.dialect).up(raw as unknown as Kysely<unknown>);

      assert.equal(await bytes('team'), expected.team);
      assert.equal(await bytes('lib'), expected.lib);
      const links = await raw
        .selectFrom('namespace_blobs')
        .select(['namespace', 'links'])
        .where('digest', '=', layer.digest)
        .orderBy('namespace')
        .execute();
      assert.deepEqual(
        links.map((l) => `${l.namespace}:${Number(l.links)}`),
        ['lib:1', 'team:2'],
      );
      // The backfilled counts keep working: unlinking one of two links keeps the bytes.
      await store.unlinkBlob('team/b', layer.digest);
      assert.equal(await bytes('team'), expected.team);
      await store.unlinkBlob('team/a', layer.digest);
      assert.equal(await bytes('team'), m.size);
    });

    it('refuses a new blob or manifest past the quota, rolling the write back; re-links stay free', async () => {
      const a = blob('a'.repeat(40));
      const b = blob('b'.repeat(40));
      await store.linkBlob('team/app', a.digest, a.size);
      const quota = 60;
      assert.deepEqual(await usage.setQuota('team', quota), { namespace: 'team', bytes: 40, quota });

      await assert.rejects(store.linkBlob('team/app', b.digest, b.size), (e: unknown) => {
        assert.ok(e instanceof QuotaExceededError);
        assert.deepEqual([e.namespace, e.usage, e.quota, e.requested], ['team', 40, quota, 40]);
        return true;
      });
      assert.equal(await store.getBlobLink('team/app', b.digest), null, 'nothing was linked');
      assert.equal(await bytes('team'), 40);

      // Already held by the namespace: another repository may link it, whatever the quota.
      await usage.setQuota('team', 10);
      await store.linkBlob('team/other', a.digest, a.size);
      assert.equal(await bytes('team'), 40);

      const payload = Buffer.from(JSON.stringify({ schemaVersion: 2, layers: [a.digest] }));
      await assert.rejects(
        store.putManifest({
          repository: 'team/app',
          digest: digestOf(payload),
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          payload,
          subject: null,
          artifactType: null,
          annotations: null,
          blobs: [a.digest],
          manifests: [],
          tags: ['v1'],
        }),
        QuotaExceededError,
      );
      assert.equal(await store.getManifestByTag('team/app', 'v1'), null, 'neither manifest nor tag stored');
      assert.equal(await bytes('team'), 40);

      await usage.setQuota('team', null);
      await store.linkBlob('team/app', b.digest, b.size);
      assert.deepEqual(await usage.namespaceUsage('team'), { namespace: 'team', bytes: 80, quota: null });
      assert.equal(await bytes('team'), await recomputed(store, 'team'));
    });

    it('stays exact under concurrent links, unlinks, manifest pushes and repository deletes of one namespace', async () => {
      // PostgreSQL: three pools racing; SQLite: one connection (its writers queue on the database lock anyway).
      const stores = kind.dialect === 'postgres' ? [store, db.open(), db.open()] : [store];
      const shared = blob('shared by every repository');
      const own = Array.from({ length: 12 }, (_, i) => blob(`own layer ${i}`));
      // Round one: every repository links the shared blob and its own, and pushes a manifest, all at once.
      await Promise.all(
        own.map(async (b, i) => {
          const s = stores[i % stores.length] as KyselyMetadataStore;
          await s.linkBlob(`team/r${i}`, shared.digest, shared.size);
          await s.linkBlob(`team/r${i}`, b.digest, b.size);
          await putManifest(s, `team/r${i}`, [shared.digest, b.digest], 'v1');
        }),
      );
      assert.equal(await bytes('team'), await recomputed(store, 'team'));
      // Round two: half the repositories go (whole or link by link) while the others link each other's blobs.
      await Promise.all(
        own.map(async (b, i) => {
          const s = stores[i % stores.length] as KyselyMetadataStore;
          if (i % 3 === 0) await s.deleteRepository(`team/r${i}`);
          else if (i % 3 === 1) {
            await s.unlinkBlob(`team/r${i}`, shared.digest);
            await s.unlinkBlob(`team/r${i}`, b.digest);
          } else {
            const next = own[(i + 1) % own.length] as { digest: Digest; size: number };
            await s.linkBlob(`team/r${i}`, next.digest, next.size);
          }
        }),
      );
      assert.equal(await bytes('team'), await recomputed(store, 'team'));
      const rows = await rawDb(store)
        .selectFrom('namespace_blobs')
        .select(['digest', 'links'])
        .where('namespace', '=', 'team')
        .execute();
      const links = await rawDb(store)
        .selectFrom('repository_blobs as rb')
        .innerJoin('repositories as r', 'r.id', 'rb.repository_id')
        .select(['rb.digest'])
        .where('r.name', 'like', 'team/%')
        .execute();
      const counts = new Map<string, number>();
      for (const l of links) counts.set(l.digest, (counts.get(l.digest) ?? 0) + 1);
      assert.deepEqual(
        new Map(rows.map((r) => [r.digest as string, Number(r.links)])),
        counts,
        'every link is counted once',
      );
    });

    it('reports the usage change to the events, and summarises repositories', async () => {
      const a = blob('summary layer');
      await usage.setQuota('team', 1000);
      let seen: unknown;
      await store.linkBlob('team/app', a.digest, a.size, (outcome) => {
        seen = outcome.usage;
        return [];
      });
      assert.deepEqual(seen, { namespace: 'team', before: 0, after: a.size, quota: 1000 });
      await store.linkBlob('team/app2', a.digest, a.size, (outcome) => {
        seen = outcome.usage;
        return [];
      });
      assert.equal(seen, null, 'the namespace already held the blob');
      const m = await putManifest(store, 'team/app', [a.digest], 'v1');
      await store.linkBlob('other/x', a.digest, a.size);
      await store.linkBlob('teamx/y', a.digest, a.size);

      const page = await usage.listRepositorySummaries({ limit: 1, namespace: 'team' });
      assert.equal(page.hasMore, true);
      const [first] = page.items;
      assert.ok(first);
      assert.equal(first.name, 'team/app');
      assert.deepEqual([first.tags, first.manifests, first.size], [1, 1, a.size + m.size]);
      assert.ok(first.lastPush instanceof Date);
      const rest = await usage.listRepositorySummaries({ limit: 10, namespace: 'team', after: 'team/app' });
      assert.deepEqual(
        rest.items.map((r) => [r.name, r.tags, r.manifests, r.size, r.lastPush]),
        [['team/app2', 0, 0, a.size, null]],
      );
      const all = await usage.listRepositorySummaries({ limit: 10 });
      assert.deepEqual(
        all.items.map((r) => r.name),
        ['other/x', 'team/app', 'team/app2', 'teamx/y'],
      );
      assert.equal(await usage.physicalBytes(), a.size + m.size);
    });
  });
}

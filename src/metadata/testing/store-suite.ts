/**
 * The contract test suite of `MetadataStore` (see `../store.ts`), run against every implementation.
 *
 * Decisions the contract leaves open, pinned here:
 * - A putManifest that fails for missing blobs/manifests writes nothing at all, not even the repository row:
 *   the repository still does not exist afterwards if it did not before.
 * - findBlob only finds blobs linked in at least one repository (an unlinked blob is waiting for GC).
 * - Re-putting an existing digest keeps the first record (its createdAt) and still moves the given tags.
 * - `listStaleUploadSessions(before)` returns sessions with `updatedAt < before` (strictly).
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { digestOf } from '../../oci/digest.ts';
import type { Digest } from '../../oci/digest.ts';
import type { UploadHandle } from '../../storage/driver.ts';
import type { NewDomainEvent } from '../../events/event.ts';
import type { MetadataStore, PutManifestInput, PutManifestOutcome, PutManifestResult } from '../store.ts';

/** What the suite needs per test: a fresh, empty store (migrated or not) and a way to dispose of it. */
export type StoreFactory = () => Promise<{
  store: MetadataStore;
  cleanup: () => Promise<void>;
  /**
   * Setup only, optional: links many blobs into a repository (once the store is migrated) as `linkBlob` would,
   * faster than one `linkBlob` each. Without it the suite calls `linkBlob` for each.
   */
  linkBlobsInBulk?: (repository: string, digests: readonly Digest[]) => Promise<void>;
}>;

/** More descriptors than a statement takes bind parameters, on any database (PostgreSQL: 65,535). */
const BEYOND_PARAMETER_LIMITS = 70_000;
const BEYOND = BEYOND_PARAMETER_LIMITS.toLocaleString('en');

const IMAGE_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const IMAGE_INDEX = 'application/vnd.oci.image.index.v1+json';

/** A digest of random bytes (a blob nobody else has). */
function randomDigest(): Digest {
  return digestOf(randomBytes(32));
}

/** A manifest put with a unique payload (JSON followed by random, non-UTF-8 bytes) and its real digest. */
function manifestInput(
  repository: string,
  fields: Partial<Omit<PutManifestInput, 'repository' | 'digest' | 'payload'>> = {},
): PutManifestInput {
  const payload = Buffer.concat([
    Buffer.from(JSON.stringify({ schemaVersion: 2, nonce: randomUUID() })),
    randomBytes(48),
    Buffer.from([0x00, 0xff, 0xfe, 0x00]),
  ]);
  return {
    repository,
    digest: digestOf(payload),
    mediaType: IMAGE_MANIFEST,
    payload,
    subject: null,
    artifactType: null,
    annotations: null,
    blobs: [],
    manifests: [],
    tags: [],
    ...fields,
  };
}

/** Byte-wise (UTF-8) sort, the order the contract promises. */
function byteSorted(names: readonly string[]): string[] {
  return [...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

/** The result with its missing lists sorted (the contract does not order them). */
function sortedMissing(result: PutManifestResult): PutManifestResult {
  return result.ok
    ? result
    : {
        ok: false,
        missingBlobs: [...result.missingBlobs].sort(),
        missingManifests: [...result.missingManifests].sort(),
      };
}

/** Registers the MetadataStore contract tests under `describe(name)`; `factory` gives each test its own store. */
export function runStoreSuite(name: string, factory: StoreFactory): void {
  describe(name, () => {
    let store: MetadataStore;
    let cleanup: () => Promise<void>;
    let linkBlobsInBulk: (repository: string, digests: readonly Digest[]) => Promise<void>;

    beforeEach(async () => {
      const made = await factory();
      ({ store, cleanup } = made);
      linkBlobsInBulk =
        made.linkBlobsInBulk ??
        (async (repository, digests) => {
          for (const digest of digests) await store.linkBlob(repository, digest, 1);
        });
      await store.migrate();
    });

    afterEach(async () => {
      await cleanup();
    });

    /** Puts a manifest and fails the test unless it succeeded. */
    async function put(input: PutManifestInput): Promise<PutManifestInput> {
      assert.deepEqual(await store.putManifest(input), { ok: true });
      return input;
    }

    /** Links fresh blobs into `repository` and returns their digests. */
    async function linkedBlobs(repository: string, n: number): Promise<Digest[]> {
      const digests: Digest[] = [];
      for (let i = 0; i < n; i++) {
        const digest = randomDigest();
        await store.linkBlob(repository, digest, 100 + i);
        digests.push(digest);
      }
      return digests;
    }

    /** Every page of `list`, following `after`, with `limit`; asserts hasMore is false only on the last page. */
    async function allPages(
      list: (options: { limit: number; after?: string }) => Promise<{ items: string[]; hasMore: boolean }>,
      limit: number,
    ): Promise<string[][]> {
      const pages: string[][] = [];
      let after: string | undefined;
      for (;;) {
        const page = await list(after === undefined ? { limit } : { limit, after });
        pages.push(page.items);
        if (!page.hasMore) return pages;
        assert.equal(page.items.length, limit, 'a page followed by more items must be full');
        after = page.items.at(-1);
        assert.ok(pages.length < 100, 'pagination does not terminate');
      }
    }

    describe('lifecycle', () => {
      it('migrate() can run again and keeps the data', async () => {
        const digest = randomDigest();
        await store.linkBlob('library/alpine', digest, 42);
        await store.migrate();
        await store.migrate();
        assert.deepEqual(await store.getBlobLink('library/alpine', digest), { digest, size: 42 });
      });

      it('ping() resolves while open and close() makes the store unusable', async () => {
        await store.ping();
        await store.close();
        await assert.rejects(store.ping());
        await assert.rejects(store.repositoryExists('x'));
      });
    });

    describe('repositories', () => {
      it('an empty store has no repositories', async () => {
        assert.equal(await store.repositoryExists('library/alpine'), false);
        assert.deepEqual(await store.listRepositories({ limit: 10 }), { items: [], hasMore: false });
        assert.deepEqual(await store.listRepositories({ limit: 0 }), { items: [], hasMore: false });
      });

      it('linking a blob creates the repository; names are case-sensitive', async () => {
        await store.linkBlob('library/alpine', randomDigest(), 1);
        assert.equal(await store.repositoryExists('library/alpine'), true);
        assert.equal(await store.repositoryExists('library/Alpine'), false);
        assert.equal(await store.repositoryExists('library'), false);
        assert.deepEqual(await store.listRepositories({ limit: 10 }), {
          items: ['library/alpine'],
          hasMore: false,
        });
      });

      it('pushing a manifest without blobs creates the repository', async () => {
        await put(manifestInput('empty/manifest'));
        assert.equal(await store.repositoryExists('empty/manifest'), true);
      });

      const NAMES = ['b', 'B', 'a', 'a-b', 'a.b', 'a0', 'a/b', 'a_b', 'Z', 'a/b/c'];
      // Byte-wise: uppercase before lowercase, and '-' < '.' < '/' < '0' < '_'.
      const SORTED = ['B', 'Z', 'a', 'a-b', 'a.b', 'a/b', 'a/b/c', 'a0', 'a_b', 'b'];

      it('lists repositories in byte-wise order', async () => {
        assert.deepEqual(byteSorted(NAMES), SORTED);
        for (const repo of NAMES) await store.linkBlob(repo, randomDigest(), 1);
        assert.deepEqual(await store.listRepositories({ limit: 100 }), { items: SORTED, hasMore: false });
      });

      it('paginates repositories with an exclusive `after` and hasMore', async () => {
        for (const repo of NAMES) await store.linkBlob(repo, randomDigest(), 1);
        const pages = await allPages((o) => store.listRepositories(o), 3);
        assert.deepEqual(pages, [
          SORTED.slice(0, 3),
          SORTED.slice(3, 6),
          SORTED.slice(6, 9),
          SORTED.slice(9),
        ]);
        // An exactly full last page says there is nothing more.
        assert.deepEqual(await store.listRepositories({ limit: 5, after: 'a.b' }), {
          items: SORTED.slice(5),
          hasMore: false,
        });
        // `after` is exclusive, and need not be an existing name.
        assert.deepEqual((await store.listRepositories({ limit: 2, after: 'a' })).items, ['a-b', 'a.b']);
        assert.deepEqual((await store.listRepositories({ limit: 2, after: 'a.c' })).items, ['a/b', 'a/b/c']);
        assert.deepEqual(await store.listRepositories({ limit: 10, after: 'b' }), {
          items: [],
          hasMore: false,
        });
        assert.deepEqual(await store.listRepositories({ limit: 10, after: 'zzz' }), {
          items: [],
          hasMore: false,
        });
      });

      it('limit 0 returns no items but reports whether any follow', async () => {
        for (const repo of NAMES) await store.linkBlob(repo, randomDigest(), 1);
        assert.deepEqual(await store.listRepositories({ limit: 0 }), { items: [], hasMore: true });
        assert.deepEqual(await store.listRepositories({ limit: 0, after: 'a_b' }), {
          items: [],
          hasMore: true,
        });
        assert.deepEqual(await store.listRepositories({ limit: 0, after: 'b' }), {
          items: [],
          hasMore: false,
        });
      });

      describe('searchRepositories', () => {
        const REPOS = [
          'team/Web-App',
          'team/webapp',
          'other/api',
          '100%/x',
          'a_b',
          'axb',
          'back\\slash',
          'web',
        ];

        beforeEach(async () => {
          for (const repo of REPOS) await store.linkBlob(repo, randomDigest(), 1);
        });

        it('matches case-insensitive substrings, sorted byte-wise', async () => {
          assert.deepEqual(await store.searchRepositories('WEB', { limit: 10, offset: 0 }), {
            total: 3,
            names: ['team/Web-App', 'team/webapp', 'web'],
          });
          assert.deepEqual(await store.searchRepositories('API', { limit: 10, offset: 0 }), {
            total: 1,
            names: ['other/api'],
          });
          assert.deepEqual(await store.searchRepositories('nothing', { limit: 10, offset: 0 }), {
            total: 0,
            names: [],
          });
        });

        it('treats %, _ and \\ literally', async () => {
          assert.deepEqual((await store.searchRepositories('%', { limit: 10, offset: 0 })).names, ['100%/x']);
          assert.deepEqual((await store.searchRepositories('_', { limit: 10, offset: 0 })).names, ['a_b']);
          assert.deepEqual((await store.searchRepositories('a_b', { limit: 10, offset: 0 })).names, ['a_b']);
          assert.deepEqual((await store.searchRepositories('\\', { limit: 10, offset: 0 })).names, [
            'back\\slash',
          ]);
          assert.deepEqual((await store.searchRepositories('k\\s', { limit: 10, offset: 0 })).names, [
            'back\\slash',
          ]);
          assert.equal((await store.searchRepositories('%%', { limit: 10, offset: 0 })).total, 0);
        });

        it('pages with offset and limit while total counts every match', async () => {
          const all = byteSorted(REPOS);
          assert.deepEqual(await store.searchRepositories('', { limit: 100, offset: 0 }), {
            total: REPOS.length,
            names: all,
          });
          assert.deepEqual(await store.searchRepositories('', { limit: 3, offset: 2 }), {
            total: REPOS.length,
            names: all.slice(2, 5),
          });
          assert.deepEqual(await store.searchRepositories('', { limit: 0, offset: 0 }), {
            total: REPOS.length,
            names: [],
          });
          assert.deepEqual(await store.searchRepositories('web', { limit: 10, offset: 5 }), {
            total: 3,
            names: [],
          });
        });
      });
    });

    describe('blobs', () => {
      it('links a blob in one repository only', async () => {
        const digest = randomDigest();
        await store.linkBlob('a/one', digest, 1234);
        await store.linkBlob('a/two', randomDigest(), 1);
        assert.deepEqual(await store.getBlobLink('a/one', digest), { digest, size: 1234 });
        assert.equal(await store.getBlobLink('a/two', digest), null);
        assert.equal(await store.getBlobLink('a/unknown', digest), null);
        assert.equal(await store.getBlobLink('a/one', randomDigest()), null);
      });

      it('linkBlob is idempotent', async () => {
        const digest = randomDigest();
        await store.linkBlob('a/one', digest, 77);
        await store.linkBlob('a/one', digest, 77);
        assert.deepEqual(await store.getBlobLink('a/one', digest), { digest, size: 77 });
        assert.deepEqual(await store.listRepositories({ limit: 10 }), { items: ['a/one'], hasMore: false });
        // One unlink removes it: there was a single link.
        assert.equal(await store.unlinkBlob('a/one', digest), true);
        assert.equal(await store.getBlobLink('a/one', digest), null);
      });

      it('keeps sizes beyond 32 bits', async () => {
        const digest = randomDigest();
        const size = 5 * 2 ** 32 + 7;
        await store.linkBlob('big/blob', digest, size);
        assert.deepEqual(await store.getBlobLink('big/blob', digest), { digest, size });
        assert.deepEqual(await store.findBlob(digest), { digest, size });
      });

      it('findBlob finds a blob linked in any repository', async () => {
        const digest = randomDigest();
        assert.equal(await store.findBlob(digest), null);
        await store.linkBlob('source/repo', digest, 99);
        assert.deepEqual(await store.findBlob(digest), { digest, size: 99 });
        assert.equal(await store.findBlob(randomDigest()), null);
      });

      it('unlinkBlob removes one link and reports whether it existed', async () => {
        const digest = randomDigest();
        await store.linkBlob('a/one', digest, 5);
        await store.linkBlob('a/two', digest, 5);
        assert.equal(await store.unlinkBlob('a/one', digest), true);
        assert.equal(await store.unlinkBlob('a/one', digest), false);
        assert.equal(await store.unlinkBlob('a/unknown', digest), false);
        assert.equal(await store.getBlobLink('a/one', digest), null);
        assert.deepEqual(await store.getBlobLink('a/two', digest), { digest, size: 5 });
        assert.deepEqual(await store.findBlob(digest), { digest, size: 5 });
        assert.equal(await store.unlinkBlob('a/two', digest), true);
        assert.equal(await store.findBlob(digest), null, 'a blob linked nowhere is not found');
        // Linking again after unlinking works.
        await store.linkBlob('a/one', digest, 5);
        assert.deepEqual(await store.getBlobLink('a/one', digest), { digest, size: 5 });
      });

      it('concurrent linkBlob calls of the same blob do not fail', async () => {
        const digest = randomDigest();
        await Promise.all(
          Array.from({ length: 12 }, (_, i) =>
            store.linkBlob(i % 2 === 0 ? 'race/even' : 'race/odd', digest, 10),
          ),
        );
        assert.deepEqual(await store.getBlobLink('race/even', digest), { digest, size: 10 });
        assert.deepEqual(await store.getBlobLink('race/odd', digest), { digest, size: 10 });
        assert.deepEqual((await store.listRepositories({ limit: 10 })).items, ['race/even', 'race/odd']);
      });
    });

    describe('manifests', () => {
      it('stores a manifest and returns it byte-exact', async () => {
        const blobs = await linkedBlobs('library/app', 2);
        const annotations = { 'org.opencontainers.image.title': 'app', 'com.example.ünïcode': '✓' };
        const before = Date.now();
        const input = await put(
          manifestInput('library/app', {
            blobs,
            artifactType: 'application/vnd.example',
            annotations,
            tags: ['v1'],
          }),
        );
        const after = Date.now();
        const record = await store.getManifest('library/app', input.digest);
        assert.ok(record);
        assert.ok(Buffer.isBuffer(record.payload), 'payload is a Buffer');
        assert.ok(record.payload.equals(input.payload), 'payload round-trips byte-exact');
        assert.equal(digestOf(record.payload), input.digest);
        assert.equal(record.repository, 'library/app');
        assert.equal(record.digest, input.digest);
        assert.equal(record.mediaType, IMAGE_MANIFEST);
        assert.equal(record.size, input.payload.length);
        assert.equal(record.subject, null);
        assert.equal(record.artifactType, 'application/vnd.example');
        assert.deepEqual(record.annotations, annotations);
        assert.ok(record.createdAt instanceof Date);
        assert.ok(record.createdAt.getTime() >= before && record.createdAt.getTime() <= after);
        assert.deepEqual(await store.getManifestByTag('library/app', 'v1'), record);
      });

      it('is visible only in its repository', async () => {
        const input = await put(manifestInput('a/one', { tags: ['latest'] }));
        await put(manifestInput('a/two'));
        assert.equal(await store.getManifest('a/two', input.digest), null);
        assert.equal(await store.getManifest('a/unknown', input.digest), null);
        assert.equal(await store.getManifestByTag('a/two', 'latest'), null);
        assert.equal(await store.getManifest('a/one', randomDigest()), null);
      });

      it('reports missing blobs and writes nothing', async () => {
        const [linked] = await linkedBlobs('library/app', 1);
        assert.ok(linked);
        const elsewhere = randomDigest();
        await store.linkBlob('other/repo', elsewhere, 3);
        const absent = randomDigest();
        const input = manifestInput('library/app', { blobs: [linked, absent, elsewhere], tags: ['v1'] });
        assert.deepEqual(sortedMissing(await store.putManifest(input)), {
          ok: false,
          missingBlobs: [absent, elsewhere].sort(),
          missingManifests: [],
        });
        assert.equal(await store.getManifest('library/app', input.digest), null);
        assert.equal(await store.getManifestByTag('library/app', 'v1'), null);
        assert.deepEqual(await store.listTags('library/app', { limit: 10 }), { items: [], hasMore: false });
      });

      it('reports missing manifests (children must be in the same repository)', async () => {
        const child = await put(manifestInput('library/app'));
        const foreign = await put(manifestInput('other/repo'));
        const absent = randomDigest();
        const index = manifestInput('library/app', {
          mediaType: IMAGE_INDEX,
          manifests: [child.digest, absent, foreign.digest],
          tags: ['multi'],
        });
        assert.deepEqual(sortedMissing(await store.putManifest(index)), {
          ok: false,
          missingBlobs: [],
          missingManifests: [absent, foreign.digest].sort(),
        });
        assert.equal(await store.getManifest('library/app', index.digest), null);
        assert.equal(await store.getManifestByTag('library/app', 'multi'), null);

        const good = await put(
          manifestInput('library/app', { mediaType: IMAGE_INDEX, manifests: [child.digest] }),
        );
        assert.equal((await store.getManifest('library/app', good.digest))?.mediaType, IMAGE_INDEX);
      });

      it('a failed push into a new repository does not create it', async () => {
        const input = manifestInput('new/repo', {
          blobs: [randomDigest()],
          manifests: [randomDigest()],
          tags: ['v1'],
        });
        assert.deepEqual(await store.putManifest(input), {
          ok: false,
          missingBlobs: input.blobs,
          missingManifests: input.manifests,
        });
        assert.equal(await store.repositoryExists('new/repo'), false);
        assert.deepEqual(await store.listRepositories({ limit: 10 }), { items: [], hasMore: false });
      });

      it('tolerates duplicates in blobs, manifests and tags', async () => {
        const [blob] = await linkedBlobs('dup/repo', 1);
        assert.ok(blob);
        const child = await put(manifestInput('dup/repo'));
        const input = await put(
          manifestInput('dup/repo', {
            blobs: [blob, blob],
            manifests: [child.digest, child.digest],
            tags: ['v1', 'v1', 'latest'],
          }),
        );
        assert.deepEqual((await store.listTags('dup/repo', { limit: 10 })).items, ['latest', 'v1']);
        assert.equal((await store.getManifestByTag('dup/repo', 'v1'))?.digest, input.digest);
      });

      it('re-pushing the same digest is idempotent and still moves tags', async () => {
        const a = await put(manifestInput('library/app', { tags: ['v1', 'latest'] }));
        const first = await store.getManifest('library/app', a.digest);
        assert.ok(first);
        await sleep(5);
        const b = await put(manifestInput('library/app', { tags: ['latest'] }));
        assert.equal((await store.getManifestByTag('library/app', 'latest'))?.digest, b.digest);

        await put({ ...a, tags: ['latest', 'stable'] });
        await put({ ...a, tags: [] });
        assert.deepEqual(await store.getManifest('library/app', a.digest), first, 'the first record is kept');
        assert.equal((await store.getManifestByTag('library/app', 'latest'))?.digest, a.digest);
        assert.equal((await store.getManifestByTag('library/app', 'stable'))?.digest, a.digest);
        assert.equal((await store.getManifestByTag('library/app', 'v1'))?.digest, a.digest);
        assert.deepEqual((await store.listTags('library/app', { limit: 10 })).items, [
          'latest',
          'stable',
          'v1',
        ]);
        // Still one manifest with that digest: one delete removes it.
        assert.equal(await store.deleteManifest('library/app', a.digest), true);
        assert.equal(await store.getManifest('library/app', a.digest), null);
      });

      it('moves a tag to a new digest', async () => {
        const a = await put(manifestInput('library/app', { tags: ['latest'] }));
        const b = await put(manifestInput('library/app', { tags: ['latest'] }));
        assert.equal((await store.getManifestByTag('library/app', 'latest'))?.digest, b.digest);
        assert.deepEqual((await store.listTags('library/app', { limit: 10 })).items, ['latest']);
        assert.equal(
          (await store.getManifest('library/app', a.digest))?.digest,
          a.digest,
          'old manifest stays',
        );
      });

      it('getManifestByTag returns null for unknown tags and repositories', async () => {
        await put(manifestInput('library/app', { tags: ['v1'] }));
        assert.equal(await store.getManifestByTag('library/app', 'v2'), null);
        assert.equal(await store.getManifestByTag('library/app', 'V1'), null);
        assert.equal(await store.getManifestByTag('library/other', 'v1'), null);
      });

      it('deleteTag removes the tag only', async () => {
        const a = await put(manifestInput('library/app', { tags: ['v1', 'latest'] }));
        assert.equal(await store.deleteTag('library/app', 'v1'), true);
        assert.equal(await store.deleteTag('library/app', 'v1'), false);
        assert.equal(await store.deleteTag('library/unknown', 'latest'), false);
        assert.equal(await store.getManifestByTag('library/app', 'v1'), null);
        assert.equal((await store.getManifestByTag('library/app', 'latest'))?.digest, a.digest);
        assert.equal((await store.getManifest('library/app', a.digest))?.digest, a.digest);
        assert.equal(await store.deleteTag('library/app', 'latest'), true);
        assert.equal(
          (await store.getManifest('library/app', a.digest))?.digest,
          a.digest,
          'untagged manifest stays',
        );
      });

      it('deleteManifest removes the manifest and its tags only', async () => {
        const [blob] = await linkedBlobs('library/app', 1);
        assert.ok(blob);
        const a = await put(manifestInput('library/app', { blobs: [blob], tags: ['v1', 'latest'] }));
        const b = await put(manifestInput('library/app', { blobs: [blob], tags: ['v2'] }));
        const sameElsewhere = await put({ ...a, repository: 'other/repo', blobs: [], tags: ['v1'] });

        assert.equal(await store.deleteManifest('library/app', a.digest), true);
        assert.equal(await store.deleteManifest('library/app', a.digest), false);
        assert.equal(await store.deleteManifest('library/unknown', a.digest), false);
        assert.equal(await store.getManifest('library/app', a.digest), null);
        assert.equal(await store.getManifestByTag('library/app', 'v1'), null);
        assert.deepEqual((await store.listTags('library/app', { limit: 10 })).items, ['v2']);
        assert.equal((await store.getManifestByTag('library/app', 'v2'))?.digest, b.digest);
        assert.deepEqual(
          await store.getBlobLink('library/app', blob),
          { digest: blob, size: 100 },
          'links stay',
        );
        // The same digest in another repository is independent.
        assert.equal((await store.getManifestByTag('other/repo', 'v1'))?.digest, sameElsewhere.digest);

        // It can be pushed again afterwards (its references were removed with it).
        await put({ ...a, tags: ['v1'] });
        assert.equal((await store.getManifestByTag('library/app', 'v1'))?.digest, a.digest);
      });

      it(`checks and stores ${BEYOND} blobs, and finds the one missing among them`, async () => {
        const blobs = Array.from({ length: BEYOND_PARAMETER_LIMITS }, randomDigest);
        const absent = blobs[BEYOND_PARAMETER_LIMITS / 2];
        assert.ok(absent);
        await linkBlobsInBulk(
          'big/app',
          blobs.filter((d) => d !== absent),
        );
        const input = manifestInput('big/app', { blobs, tags: ['v1'] });
        assert.deepEqual(await store.putManifest(input), {
          ok: false,
          missingBlobs: [absent],
          missingManifests: [],
        });
        assert.equal(await store.getManifest('big/app', input.digest), null);

        await store.linkBlob('big/app', absent, 1);
        await put(input);
        assert.ok((await store.getManifestByTag('big/app', 'v1'))?.payload.equals(input.payload));
        await put({ ...input, tags: ['v2'] }); // again, with every reference already recorded
        assert.equal((await store.getManifestByTag('big/app', 'v2'))?.digest, input.digest);
      });

      it(`reports ${BEYOND} missing children of an index`, async () => {
        const child = await put(manifestInput('big/index'));
        const absent = Array.from({ length: BEYOND_PARAMETER_LIMITS }, randomDigest);
        const index = manifestInput('big/index', {
          mediaType: IMAGE_INDEX,
          manifests: [...absent, child.digest],
        });
        assert.deepEqual(sortedMissing(await store.putManifest(index)), {
          ok: false,
          missingBlobs: [],
          missingManifests: absent.sort(),
        });
        assert.equal(await store.getManifest('big/index', index.digest), null);
      });

      it('points 20,000 tags at a manifest in one put, then moves them all in another', async () => {
        // 20,000 tags of 4 columns each: bound one variable per value, too many for either database.
        const tags = Array.from({ length: 20_000 }, (_, i) => `t${i}`);
        await put(manifestInput('many/tags', { tags }));
        const moved = await put(manifestInput('many/tags', { tags }));
        assert.deepEqual(await store.listTags('many/tags', { limit: 30_000 }), {
          items: byteSorted(tags),
          hasMore: false,
        });
        for (const tag of ['t0', 't12345', 't19999']) {
          assert.equal((await store.getManifestByTag('many/tags', tag))?.digest, moved.digest);
        }
      });

      it('concurrent pushes of the same manifest do not fail', async () => {
        const blobs = await linkedBlobs('race/app', 2);
        const input = manifestInput('race/app', { blobs, tags: ['latest', 'v1'] });
        const results = await Promise.all(Array.from({ length: 8 }, () => store.putManifest(input)));
        assert.deepEqual(
          results,
          Array.from({ length: 8 }, () => ({ ok: true })),
        );
        assert.equal((await store.getManifestByTag('race/app', 'latest'))?.digest, input.digest);
        assert.deepEqual((await store.listTags('race/app', { limit: 10 })).items, ['latest', 'v1']);
      });

      it('concurrent pushes of different manifests to the same tags do not fail', async () => {
        const inputs = Array.from({ length: 6 }, () => manifestInput('race/new', { tags: ['latest', 'v1'] }));
        const results = await Promise.all(inputs.map((input) => store.putManifest(input)));
        assert.ok(results.every((r) => r.ok));
        const latest = await store.getManifestByTag('race/new', 'latest');
        assert.ok(latest && inputs.some((i) => i.digest === latest.digest));
        for (const input of inputs) assert.ok(await store.getManifest('race/new', input.digest));
      });
    });

    describe('tags', () => {
      const TAGS = ['v1', 'V1', 'latest', '1.0', '1.0-rc', '1.0.1', '1.0_x', 'Latest', '_x', '10'];

      it('lists tags in byte-wise order with pagination', async () => {
        const sorted = byteSorted(TAGS);
        assert.deepEqual(sorted, [
          '1.0',
          '1.0-rc',
          '1.0.1',
          '1.0_x',
          '10',
          'Latest',
          'V1',
          '_x',
          'latest',
          'v1',
        ]);
        await put(manifestInput('library/app', { tags: TAGS.slice(0, 5) }));
        await put(manifestInput('library/app', { tags: TAGS.slice(5) }));
        await put(manifestInput('library/other', { tags: ['zzz', '0'] }));
        assert.deepEqual(await store.listTags('library/app', { limit: 100 }), {
          items: sorted,
          hasMore: false,
        });
        const pages = await allPages((o) => store.listTags('library/app', o), 4);
        assert.deepEqual(pages, [sorted.slice(0, 4), sorted.slice(4, 8), sorted.slice(8)]);
        assert.deepEqual(await store.listTags('library/app', { limit: 2, after: '1.0' }), {
          items: ['1.0-rc', '1.0.1'],
          hasMore: true,
        });
        assert.deepEqual(await store.listTags('library/app', { limit: 2, after: 'latest' }), {
          items: ['v1'],
          hasMore: false,
        });
        assert.deepEqual(await store.listTags('library/app', { limit: 0 }), { items: [], hasMore: true });
        assert.deepEqual(await store.listTags('library/app', { limit: 0, after: 'v1' }), {
          items: [],
          hasMore: false,
        });
      });

      it('lists nothing for an unknown repository or one without tags', async () => {
        await store.linkBlob('no/tags', randomDigest(), 1);
        assert.deepEqual(await store.listTags('no/tags', { limit: 10 }), { items: [], hasMore: false });
        assert.deepEqual(await store.listTags('un/known', { limit: 10 }), { items: [], hasMore: false });
        assert.deepEqual(await store.listTags('un/known', { limit: 0 }), { items: [], hasMore: false });
      });
    });

    describe('referrers', () => {
      it('lists manifests by subject, filtered by artifactType, ordered by digest', async () => {
        const subject = await put(manifestInput('library/app', { tags: ['v1'] }));
        const sbom = await put(
          manifestInput('library/app', {
            subject: subject.digest,
            artifactType: 'application/vnd.example.sbom',
            annotations: { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' },
          }),
        );
        const sig = await put(
          manifestInput('library/app', {
            subject: subject.digest,
            artifactType: 'application/vnd.example.sig',
          }),
        );
        const plain = await put(manifestInput('library/app', { subject: subject.digest }));
        await put(
          manifestInput('library/app', {
            subject: randomDigest(),
            artifactType: 'application/vnd.example.sbom',
          }),
        );
        await put(
          manifestInput('other/repo', {
            subject: subject.digest,
            artifactType: 'application/vnd.example.sbom',
          }),
        );

        const expected = [sbom, sig, plain]
          .map((m) => ({
            digest: m.digest,
            mediaType: m.mediaType,
            size: m.payload.length,
            artifactType: m.artifactType,
            annotations: m.annotations,
          }))
          .sort((x, y) => (x.digest < y.digest ? -1 : 1));
        assert.deepEqual(await store.listReferrers('library/app', subject.digest), expected);
        assert.deepEqual(await store.listReferrers('library/app', subject.digest, {}), expected);
        assert.deepEqual(
          await store.listReferrers('library/app', subject.digest, {
            artifactType: 'application/vnd.example.sbom',
          }),
          expected.filter((r) => r.digest === sbom.digest),
        );
        assert.deepEqual(
          await store.listReferrers('library/app', subject.digest, { artifactType: 'application/unknown' }),
          [],
        );
        assert.deepEqual(await store.listReferrers('library/app', randomDigest()), []);
        assert.deepEqual(await store.listReferrers('un/known', subject.digest), []);

        assert.equal(await store.deleteManifest('library/app', sbom.digest), true);
        assert.deepEqual(
          await store.listReferrers('library/app', subject.digest),
          expected.filter((r) => r.digest !== sbom.digest),
        );
        assert.deepEqual(
          await store.listReferrers('library/app', subject.digest, {
            artifactType: 'application/vnd.example.sbom',
          }),
          [],
        );
      });

      it('keeps referrers whose subject does not exist (yet)', async () => {
        const subject = randomDigest();
        const ref = await put(manifestInput('library/app', { subject, artifactType: 'application/vnd.x' }));
        assert.deepEqual(
          (await store.listReferrers('library/app', subject)).map((r) => r.digest),
          [ref.digest],
        );
        assert.equal((await store.getManifest('library/app', ref.digest))?.subject, subject);
      });
    });

    describe('upload sessions', () => {
      const handle = (id: string, extra: Record<string, unknown> = {}): UploadHandle => ({ id, ...extra });

      it('creates and reads a session', async () => {
        const id = randomUUID();
        const h = handle('up-1', { parts: [{ n: 1, etag: '"abc"' }], note: 'ünïcode', nested: { ok: true } });
        const before = Date.now();
        await store.createUploadSession({ id, repository: 'library/app', handle: h });
        const after = Date.now();
        const session = await store.getUploadSession(id);
        assert.ok(session);
        assert.equal(session.id, id);
        assert.equal(session.repository, 'library/app');
        assert.equal(session.size, 0);
        assert.deepEqual(session.handle, h);
        assert.equal(session.owner, null, 'a session created without an owner has none');
        assert.ok(session.createdAt instanceof Date && session.updatedAt instanceof Date);
        assert.ok(session.createdAt.getTime() >= before && session.createdAt.getTime() <= after);
        assert.equal(session.updatedAt.getTime(), session.createdAt.getTime());
        assert.equal(await store.getUploadSession(randomUUID()), null);
        assert.equal(
          await store.repositoryExists('library/app'),
          false,
          'an upload does not create the repository',
        );
      });

      it('keeps the owner verbatim, through advances and in stale listings', async () => {
        const id = randomUUID();
        await store.createUploadSession({
          id,
          repository: 'library/app',
          handle: handle('h0'),
          owner: 'robot:robot$ci',
        });
        assert.equal((await store.getUploadSession(id))?.owner, 'robot:robot$ci');
        assert.equal(await store.advanceUploadSession(id, 0, 7, handle('h1')), true);
        assert.equal((await store.getUploadSession(id))?.owner, 'robot:robot$ci');
        const other = randomUUID();
        await store.createUploadSession({
          id: other,
          repository: 'library/app',
          handle: handle('h2'),
          owner: null,
        });
        const stale = await store.listStaleUploadSessions(new Date(Date.now() + 1000), 10);
        assert.deepEqual(
          stale.map((s) => [s.id, s.owner]).sort(),
          [
            [id, 'robot:robot$ci'],
            [other, null],
          ].sort(),
        );
      });

      it('finds which upload handle ids sessions reference', async () => {
        const a = randomUUID();
        const b = randomUUID();
        await store.createUploadSession({ id: a, repository: 'library/app', handle: handle('up-a') });
        await store.createUploadSession({
          id: b,
          repository: 'other/app',
          handle: handle('up-b', { parts: [{ name: 'part-0-x', size: 5 }], id2: 'up-c' }),
        });
        // The id is read from the latest handle an advance stored.
        assert.equal(await store.advanceUploadSession(a, 0, 3, handle('up-a', { parts: [] })), true);
        assert.deepEqual(
          (await store.findUploadSessionHandles(['up-b', 'up-c', 'up-a', 'up-z', 'up-a'])).sort(),
          ['up-a', 'up-b'],
        );
        assert.deepEqual(await store.findUploadSessionHandles([]), []);
        assert.deepEqual(await store.findUploadSessionHandles(['nothing']), []);
        assert.equal(await store.deleteUploadSession(b), true);
        assert.deepEqual(await store.findUploadSessionHandles(['up-a', 'up-b']), ['up-a']);
      });

      it('advances with compare-and-set on the size', async () => {
        const id = randomUUID();
        await store.createUploadSession({ id, repository: 'library/app', handle: handle('h0') });
        const created = await store.getUploadSession(id);
        assert.ok(created);
        await sleep(5);

        assert.equal(await store.advanceUploadSession(id, 0, 100, handle('h1', { part: 1 })), true);
        const advanced = await store.getUploadSession(id);
        assert.ok(advanced);
        assert.equal(advanced.size, 100);
        assert.deepEqual(advanced.handle, handle('h1', { part: 1 }));
        assert.equal(advanced.createdAt.getTime(), created.createdAt.getTime());
        assert.ok(advanced.updatedAt.getTime() > created.updatedAt.getTime(), 'updatedAt is touched');

        // A stale writer (still expecting 0) loses and changes nothing.
        assert.equal(await store.advanceUploadSession(id, 0, 50, handle('stale')), false);
        assert.deepEqual(await store.getUploadSession(id), advanced);

        assert.equal(await store.advanceUploadSession(id, 100, 6 * 2 ** 32, handle('h2')), true);
        assert.equal((await store.getUploadSession(id))?.size, 6 * 2 ** 32);
        assert.equal(await store.advanceUploadSession(randomUUID(), 0, 10, handle('x')), false);
      });

      it('only one of two concurrent advances from the same size wins', async () => {
        const id = randomUUID();
        await store.createUploadSession({ id, repository: 'library/app', handle: handle('h0') });
        const results = await Promise.all([
          store.advanceUploadSession(id, 0, 10, handle('a')),
          store.advanceUploadSession(id, 0, 20, handle('b')),
        ]);
        assert.deepEqual([...results].sort(), [false, true]);
        const session = await store.getUploadSession(id);
        assert.equal(session?.size, results[0] ? 10 : 20);
      });

      it('deletes a session once', async () => {
        const id = randomUUID();
        await store.createUploadSession({ id, repository: 'library/app', handle: handle('h0') });
        assert.equal(await store.deleteUploadSession(id), true);
        assert.equal(await store.deleteUploadSession(id), false);
        assert.equal(await store.getUploadSession(id), null);
        assert.equal(await store.advanceUploadSession(id, 0, 10, handle('h1')), false);
        assert.equal(await store.deleteUploadSession(randomUUID()), false);
      });

      it('creating a session with an existing id fails', async () => {
        const id = randomUUID();
        await store.createUploadSession({ id, repository: 'library/app', handle: handle('h0') });
        await assert.rejects(
          store.createUploadSession({ id, repository: 'library/app', handle: handle('h1') }),
        );
        assert.deepEqual((await store.getUploadSession(id))?.handle, handle('h0'));
      });

      it('lists stale sessions oldest first', async () => {
        const ids = [randomUUID(), randomUUID(), randomUUID()] as const;
        for (const id of ids) {
          await store.createUploadSession({ id, repository: 'library/app', handle: handle(id) });
          await sleep(5);
        }
        // Touch the first: it becomes the most recently updated.
        assert.equal(await store.advanceUploadSession(ids[0], 0, 1, handle('touched')), true);
        const times = await Promise.all(ids.map(async (id) => (await store.getUploadSession(id))?.updatedAt));
        const [t0, t1, t2] = times.map((t) => {
          assert.ok(t);
          return t.getTime();
        }) as [number, number, number];
        assert.ok(t1 < t2 && t2 < t0);

        const stale = async (before: number, limit: number): Promise<string[]> =>
          (await store.listStaleUploadSessions(new Date(before), limit)).map((s) => s.id);
        assert.deepEqual(await stale(Date.now() + 1000, 10), [ids[1], ids[2], ids[0]]);
        assert.deepEqual(await stale(Date.now() + 1000, 2), [ids[1], ids[2]]);
        assert.deepEqual(await stale(Date.now() + 1000, 0), []);
        assert.deepEqual(await stale(t2, 10), [ids[1]], 'updatedAt must be strictly before');
        assert.deepEqual(await stale(t2 + 1, 10), [ids[1], ids[2]]);
        assert.deepEqual(await stale(t1, 10), []);

        const records = await store.listStaleUploadSessions(new Date(t2 + 1), 10);
        assert.deepEqual(records[0], await store.getUploadSession(ids[1]));
      });
    });

    describe('leases', () => {
      it('is held by one holder until it expires or is released', async () => {
        assert.equal(await store.tryAcquireLease('job', 'a', 60_000), true);
        assert.equal(await store.tryAcquireLease('job', 'b', 60_000), false, 'held by a');
        assert.equal(await store.tryAcquireLease('job', 'a', 60_000), true, 'the holder extends it');
        assert.equal(await store.tryAcquireLease('other', 'b', 60_000), true, 'leases are independent');
        await store.releaseLease('job', 'b');
        assert.equal(await store.tryAcquireLease('job', 'b', 60_000), false, 'only the holder releases');
        await store.releaseLease('job', 'a');
        assert.equal(await store.tryAcquireLease('job', 'b', 60_000), true, 'free after release');
      });

      it('passes to another holder once expired', async () => {
        assert.equal(await store.tryAcquireLease('short', 'a', 30), true);
        assert.equal(await store.tryAcquireLease('short', 'b', 30), false);
        await sleep(60);
        assert.equal(await store.tryAcquireLease('short', 'b', 60_000), true);
        assert.equal(await store.tryAcquireLease('short', 'a', 60_000), false);
      });

      it('goes to exactly one of several concurrent claimants', async () => {
        const holders = ['h1', 'h2', 'h3', 'h4', 'h5', 'h6'];
        const results = await Promise.all(holders.map((h) => store.tryAcquireLease('race', h, 60_000)));
        assert.equal(results.filter(Boolean).length, 1);
      });
    });

    describe('deleteRepository', () => {
      it('removes the tags, manifests, blob links and the repository, and only that repository', async () => {
        const [blob, shared] = await linkedBlobs('gone/app', 2);
        await store.linkBlob('kept/app', shared as Digest, 101);
        const image = await put(
          manifestInput('gone/app', { blobs: [blob as Digest], tags: ['v1', 'latest'] }),
        );
        const index = await put(
          manifestInput('gone/app', { mediaType: IMAGE_INDEX, manifests: [image.digest], tags: ['multi'] }),
        );
        const kept = await put(manifestInput('kept/app', { blobs: [shared as Digest], tags: ['v1'] }));
        const outcomes: unknown[] = [];
        assert.equal(
          await store.deleteRepository('gone/app', (o) => {
            outcomes.push(o);
            return [];
          }),
          true,
        );
        assert.deepEqual(outcomes.slice(), [{ manifests: 2, tags: 3, blobs: 2 }]);
        assert.equal(await store.repositoryExists('gone/app'), false);
        assert.equal(await store.getManifest('gone/app', image.digest), null);
        assert.equal(await store.getManifest('gone/app', index.digest), null);
        assert.equal(await store.getManifestByTag('gone/app', 'latest'), null);
        assert.equal(await store.getBlobLink('gone/app', blob as Digest), null);
        assert.deepEqual((await store.listTags('gone/app', { limit: 10 })).items, []);
        // The other repository keeps its link to the shared blob, its manifest and its tag.
        assert.deepEqual(await store.getBlobLink('kept/app', shared as Digest), {
          digest: shared,
          size: 101,
        });
        assert.equal((await store.getManifestByTag('kept/app', 'v1'))?.digest, kept.digest);
        assert.equal(
          await store.findBlob(blob as Digest),
          null,
          'a blob linked nowhere else is not findable',
        );
        assert.equal(await store.deleteRepository('gone/app'), false);
        // A push recreates it from scratch.
        await store.linkBlob('gone/app', blob as Digest, 100);
        assert.equal(await store.repositoryExists('gone/app'), true);
        assert.deepEqual((await store.listTags('gone/app', { limit: 10 })).items, []);
      });
    });

    describe('event outbox', () => {
      const event = (
        repository: string,
        type: NewDomainEvent['type'] = 'manifest.pushed',
      ): NewDomainEvent => ({
        type,
        target: { repository },
        actor: { name: 'alice', kind: 'user' },
        request: null,
      });

      it('stores the events a write computes from its outcome, with it, in commit order', async () => {
        let commits = 0;
        store.onEventsCommitted(() => commits++);
        const outcomes: PutManifestOutcome[] = [];
        const [blob] = await linkedBlobs('outbox/app', 1);
        const input = manifestInput('outbox/app', { blobs: [blob as Digest], tags: ['v1'] });
        const result = await store.putManifest(input, (outcome) => {
          outcomes.push(outcome);
          return [event('outbox/app'), event('outbox/app', 'tag.moved')];
        });
        assert.deepEqual(result, { ok: true });
        // The usage change is checked by the usage accounting tests; here only that it is the manifest's.
        const withoutUsage = ({ usage: _usage, ...rest }: PutManifestOutcome) => rest;
        assert.deepEqual(outcomes.map(withoutUsage), [
          { repositoryCreated: false, manifestCreated: true, movedTags: new Map() },
        ]);
        const usage = outcomes[0]?.usage;
        assert.equal(usage?.namespace, 'outbox');
        assert.equal((usage?.after ?? 0) - (usage?.before ?? 0), input.payload.length);
        const other = manifestInput('outbox/app', { blobs: [blob as Digest], tags: ['v1'] });
        await store.putManifest(other, (outcome) => {
          outcomes.push(outcome);
          return [];
        });
        assert.deepEqual(withoutUsage(outcomes[1] as PutManifestOutcome), {
          repositoryCreated: false,
          manifestCreated: true,
          movedTags: new Map([['v1', input.digest]]),
        });
        const pending = await store.pendingEvents(10);
        assert.deepEqual(
          pending.map((p) => p.event.type),
          ['manifest.pushed', 'tag.moved'],
        );
        assert.ok((pending[0]?.seq ?? 0) < (pending[1]?.seq ?? 0));
        assert.equal(pending[0]?.event.actor?.name, 'alice');
        assert.notEqual(pending[0]?.event.id, pending[1]?.event.id);
        assert.equal(commits, 2);
      });

      it('a write that fails or changes nothing stores no event', async () => {
        const missing = manifestInput('outbox/none', { blobs: [randomDigest()], tags: ['v1'] });
        const result = await store.putManifest(missing, () => [event('outbox/none')]);
        assert.equal(result.ok, false);
        assert.equal(
          await store.deleteTag('outbox/none', 'v1', () => [event('outbox/none', 'tag.deleted')]),
          false,
        );
        assert.equal(
          await store.deleteManifest('outbox/none', missing.digest, () => [
            event('outbox/none', 'manifest.deleted'),
          ]),
          false,
        );
        assert.equal(
          await store.unlinkBlob('outbox/none', randomDigest(), () => [event('outbox/none')]),
          false,
        );
        assert.deepEqual(await store.pendingEvents(10), []);
      });

      it('reports what deletes removed and whether a link created the repository', async () => {
        const created: boolean[] = [];
        const digest = randomDigest();
        await store.linkBlob('outbox/del', digest, 7, (o) => {
          created.push(o.repositoryCreated);
          return [];
        });
        await store.linkBlob('outbox/del', randomDigest(), 7, (o) => {
          created.push(o.repositoryCreated);
          return [];
        });
        assert.deepEqual(created, [true, false]);
        const input = await put(manifestInput('outbox/del', { blobs: [digest], tags: ['b', 'a'] }));
        const tagOutcomes: unknown[] = [];
        assert.equal(
          await store.deleteTag('outbox/del', 'b', (o) => {
            tagOutcomes.push(o);
            return [event('outbox/del', 'tag.deleted')];
          }),
          true,
        );
        assert.deepEqual(tagOutcomes, [{ digest: input.digest, mediaType: IMAGE_MANIFEST }]);
        const manifestOutcomes: unknown[] = [];
        assert.equal(
          await store.deleteManifest('outbox/del', input.digest, (o) => {
            manifestOutcomes.push(o);
            return [event('outbox/del', 'manifest.deleted')];
          }),
          true,
        );
        assert.deepEqual(manifestOutcomes, [
          { mediaType: IMAGE_MANIFEST, size: input.payload.length, tags: ['a'] },
        ]);
        const unlinked: unknown[] = [];
        assert.equal(
          await store.unlinkBlob('outbox/del', digest, (o) => {
            unlinked.push(o);
            return [];
          }),
          true,
        );
        assert.deepEqual(unlinked, [{ size: 7 }]);
        assert.equal((await store.pendingEvents(10)).length, 2);
      });

      it('marks events dispatched (idempotently) and prunes only dispatched ones older than the cut', async () => {
        await store.appendEvents([event('outbox/a'), event('outbox/b'), event('outbox/c')]);
        const pending = await store.pendingEvents(2);
        assert.deepEqual(
          pending.map((p) => p.event.target.repository),
          ['outbox/a', 'outbox/b'],
        );
        await store.markEventsDispatched(pending.map((p) => p.seq));
        await store.markEventsDispatched(pending.map((p) => p.seq));
        assert.deepEqual(
          (await store.pendingEvents(10)).map((p) => p.event.target.repository),
          ['outbox/c'],
        );
        assert.equal(await store.pruneEvents(new Date(Date.now() - 60_000), 100), 0);
        assert.equal(await store.pruneEvents(new Date(Date.now() + 1000), 1), 1);
        assert.equal(await store.pruneEvents(new Date(Date.now() + 1000), 100), 1);
        assert.equal((await store.pendingEvents(10)).length, 1, 'the pending event stays');
      });
    });
  });
}

/**
 * The signature store on SQLite and PostgreSQL: trust documents with growing revisions, verdicts replaced per
 * signature manifest and deleted with it, the namespace's signature manifests found by artifact type or by
 * cosign's `.sig` tag (paged, scoped to the namespace), and the indexes listing a child.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { SignatureStore } from '../../src/metadata/signature-store.ts';
import type { Digest } from '../../src/oci/digest.ts';
import { ArtifactType } from '../../src/signing/artifacts.ts';
import type { SignatureVerdict } from '../../src/signing/verdict.ts';
import { testDatabases, type TestDatabase } from '../helpers/databases.ts';

function digestOf(text: string): Digest {
  return `sha256:${createHash('sha256').update(text).digest('hex')}` as Digest;
}

const verdict = (verified: boolean, signer: string | null): SignatureVerdict => ({
  tool: 'cosign',
  format: 'cosign-simple-signing',
  verified,
  signer,
  fingerprint: signer === null ? null : `sha256:${'a'.repeat(64)}`,
  reason: verified ? null : 'no configured key verifies the signature',
  notes: verified ? [] : ['certificate revocation not checked (offline)'],
  signedAt: verified ? '2026-01-02T03:04:05.000Z' : null,
});

for (const kind of await testDatabases()) {
  describe(`signature store on ${kind.dialect}`, { skip: kind.skip }, () => {
    let db: TestDatabase;
    let store: SignatureStore;
    beforeEach(async () => {
      db = await kind.create();
      store = db.store.signatureStore();
    });
    afterEach(() => db.cleanup());

    async function manifest(
      repository: string,
      body: Record<string, unknown>,
      options: { tags?: string[]; artifactType?: string | null; manifests?: Digest[] } = {},
    ): Promise<Digest> {
      const payload = Buffer.from(JSON.stringify({ schemaVersion: 2, ...body }));
      const digest = digestOf(payload.toString());
      const result = await db.store.putManifest({
        repository,
        digest,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        payload,
        subject: null,
        artifactType: options.artifactType ?? null,
        annotations: null,
        blobs: [],
        manifests: options.manifests ?? [],
        tags: options.tags ?? [],
        sparse: true,
      });
      assert.equal(result.ok, true);
      return digest;
    }

    it('stores trust documents per namespace with a revision that grows on every change', async () => {
      assert.equal(await store.getTrust('team'), null);
      const first = await store.putTrust('team', { mode: 'warn' }, 'alice');
      assert.equal(first.revision, 1);
      assert.deepEqual(first.document, { mode: 'warn' });
      assert.equal(first.updatedBy, 'alice');
      const second = await store.putTrust('team', { mode: 'enforce' }, null);
      assert.equal(second.revision, 2);
      await store.putTrust('other', { mode: 'off' }, null);
      const read = await store.getTrust('team');
      assert.deepEqual(read?.document, { mode: 'enforce' });
      assert.equal(read?.revision, 2);
      assert.deepEqual(
        (await store.listTrust()).map((t) => [t.namespace, t.revision]),
        [
          ['other', 1],
          ['team', 2],
        ],
      );
    });

    it('replaces the verdicts of a signature manifest and drops them with it', async () => {
      const image = await manifest('team/app', { nonce: 'image' }, { tags: ['v1'] });
      const sig = await manifest(
        'team/app',
        { nonce: 'sig' },
        { artifactType: ArtifactType.CosignSignature },
      );
      assert.equal(
        await store.replaceVerdicts(
          'team/app',
          sig,
          [{ subject: image, layer: 0, verdict: verdict(false, null) }],
          1,
        ),
        true,
      );
      assert.equal(
        await store.replaceVerdicts(
          'team/app',
          sig,
          [
            { subject: image, layer: 0, verdict: verdict(true, 'ci') },
            { subject: image, layer: 1, verdict: verdict(false, null) },
          ],
          2,
        ),
        true,
      );
      const rows = await store.verdictsFor('team/app', image);
      assert.deepEqual(
        rows.map((r) => [r.signatureDigest, r.layer, r.verified, r.signer, r.trustRevision]),
        [
          [sig, 0, true, 'ci', 2],
          [sig, 1, false, null, 2],
        ],
      );
      const [first, second] = rows;
      assert.equal(first?.signedAt, '2026-01-02T03:04:05.000Z');
      assert.deepEqual(second?.notes, ['certificate revocation not checked (offline)']);
      assert.equal(second?.reason, 'no configured key verifies the signature');
      assert.deepEqual(await store.verdictsFor('team/other', image), [], 'scoped to the repository');
      assert.equal((await store.verdictsOf('team/app', sig)).length, 2);

      const unknown = digestOf('never pushed');
      assert.equal(await store.replaceVerdicts('team/app', unknown, [], 1), false);
      assert.equal(await db.store.deleteManifest('team/app', sig), true);
      assert.deepEqual(await store.verdictsFor('team/app', image), [], 'verdicts go with their signature');
    });

    it('finds the signature manifests of a namespace, by artifact type or .sig tag, paged', async () => {
      const image = await manifest('team/app', { nonce: 'image' }, { tags: ['v1'] });
      const hex = image.slice('sha256:'.length);
      const tagged = await manifest('team/app', { nonce: 'tag scheme' }, { tags: [`sha256-${hex}.sig`] });
      const notation = await manifest(
        'team/b',
        { nonce: 'n' },
        { artifactType: ArtifactType.NotarySignature },
      );
      const bundle = await manifest('team', { nonce: 'b' }, { artifactType: ArtifactType.SigstoreBundle });
      await manifest('team/app', { nonce: 'att' }, { tags: [`sha256-${hex}.att`] });
      await manifest('teams/x', { nonce: 'other ns' }, { artifactType: ArtifactType.CosignSignature });
      await manifest('team0', { nonce: 'other ns 2' }, { artifactType: ArtifactType.CosignSignature });

      const all = await store.signatureManifests('team', { limit: 100 });
      const expected = [
        { repository: 'team', digest: bundle },
        ...[tagged].map((digest) => ({ repository: 'team/app', digest })),
        { repository: 'team/b', digest: notation },
      ];
      assert.deepEqual(all, expected);
      const page1 = await store.signatureManifests('team', { limit: 2 });
      const page2 = await store.signatureManifests('team', { limit: 2, after: page1[1] });
      assert.deepEqual([...page1, ...page2], expected);
      assert.deepEqual(await store.signatureTags('team/app', tagged), [`sha256-${hex}.sig`]);
      assert.deepEqual(await store.signatureTags('team/app', image), []);
    });

    it('lists the indexes of a repository that reference a child', async () => {
      const child = await manifest('team/app', { nonce: 'child' });
      const index = await manifest('team/app', { nonce: 'index' }, { manifests: [child] });
      await manifest('team/other', { nonce: 'index elsewhere' }, { manifests: [child] });
      assert.deepEqual(await store.parentIndexes('team/app', child), [index]);
      assert.deepEqual(await store.parentIndexes('team/app', index), []);
    });
  });
}

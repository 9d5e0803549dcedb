/**
 * The signature service with the real verifiers, on SQLite and PostgreSQL: signatures verified when pushed
 * through the registry (cosign's tag scheme and OCI 1.1 referrers), verdicts stored per trust revision and
 * recomputed when the trust changes (lazily on a pull, eagerly by the namespace's recomputation), admission of
 * pushed signatures, and the pull decision: modes, bypass, artifacts, and the index rules.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { ManifestRecord } from '../../src/metadata/store.ts';
import type { Digest } from '../../src/oci/digest.ts';
import { parseReference } from '../../src/oci/reference.ts';
import { Registry } from '../../src/registry/registry.ts';
import {
  SignatureRejectedError,
  SignatureRequiredError,
  SignatureService,
} from '../../src/signing/service.ts';
import { signatureVerifiers } from '../../src/signing/verifiers.ts';
import { blobKey } from '../../src/storage/paths.ts';
import { FilesystemDriver } from '../../src/storage/drivers/filesystem.ts';
import {
  blobOf,
  newSigningKey,
  sigManifest,
  signatureLayer,
  sigTag,
  simpleSigningPayload,
  type Blob,
  type SigningKey,
} from '../helpers/cosign-signature.ts';
import { testDatabases, type TestDatabase } from '../helpers/databases.ts';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const never = () => Promise.resolve(false);

for (const kind of await testDatabases()) {
  describe(`signature service on ${kind.dialect}`, { skip: kind.skip }, () => {
    let db: TestDatabase;
    let dir: string;
    let registry: Registry;
    let signatures: SignatureService;
    let clock: number;
    const ci = newSigningKey();
    const other = newSigningKey();

    beforeEach(async () => {
      db = await kind.create();
      dir = await mkdtemp(join(tmpdir(), 'berth-sig-'));
      const storage = new FilesystemDriver({ root: dir });
      clock = Date.now();
      signatures = new SignatureService({
        store: db.store.signatureStore(),
        metadata: db.store,
        storage,
        verifiers: signatureVerifiers,
        now: () => clock,
      });
      registry = new Registry({
        storage,
        metadata: db.store,
        signatures,
        options: { deletes: true, maxManifestSize: 4 * 1024 * 1024, uploadPurgeAfter: 3_600_000 },
      });
    });
    afterEach(async () => {
      await db.cleanup();
      await rm(dir, { recursive: true, force: true });
    });

    async function putBlob(repository: string, blob: Blob): Promise<void> {
      await registry.deps.storage.put(blobKey(blob.digest), blob.bytes);
      await db.store.linkBlob(repository, blob.digest as Digest, blob.size);
    }

    async function putManifest(repository: string, manifest: Blob, tag?: string): Promise<ManifestRecord> {
      const ref = tag ?? manifest.digest;
      await registry.manifests.put({
        repository,
        reference: parseReference(ref, true),
        body: manifest.bytes,
        contentType: JSON.parse(manifest.bytes.toString()).mediaType as string,
      });
      return registry.manifests.get(repository, parseReference(ref, false));
    }

    /** Pushes an image (config and one layer) tagged `tag`. */
    async function pushImage(repository: string, tag: string, nonce = tag): Promise<ManifestRecord> {
      const config = blobOf(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', nonce })));
      const layer = blobOf(Buffer.from(`layer of ${nonce}`));
      await putBlob(repository, config);
      await putBlob(repository, layer);
      const manifest = blobOf(
        Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: OCI_MANIFEST,
            config: {
              mediaType: 'application/vnd.oci.image.config.v1+json',
              digest: config.digest,
              size: config.size,
            },
            layers: [
              { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer.digest, size: layer.size },
            ],
          }),
        ),
      );
      return putManifest(repository, manifest, tag);
    }

    async function pushIndex(
      repository: string,
      tag: string,
      children: ManifestRecord[],
    ): Promise<ManifestRecord> {
      const index = blobOf(
        Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: OCI_INDEX,
            manifests: children.map((c) => ({ mediaType: c.mediaType, digest: c.digest, size: c.size })),
          }),
        ),
      );
      return putManifest(repository, index, tag);
    }

    /** Signs `image` with `keys` (one layer each) under the tag scheme, or as a referrer. */
    async function sign(image: ManifestRecord, keys: SigningKey[], how: 'tag' | 'referrer' = 'tag') {
      const layers = keys.map((k) =>
        signatureLayer(k, simpleSigningPayload(`registry.test/${image.repository}`, image.digest)),
      );
      for (const l of layers) await putBlob(image.repository, l.blob);
      const subject = { mediaType: image.mediaType, digest: image.digest, size: image.size };
      const { config, manifest } = sigManifest(layers, how === 'referrer' ? subject : undefined);
      await putBlob(image.repository, config);
      return putManifest(image.repository, manifest, how === 'tag' ? sigTag(image.digest) : undefined);
    }

    const trustCi = (mode: 'off' | 'warn' | 'enforce', extra: object = {}) => ({
      mode,
      cosign: { keys: [{ name: 'ci', publicKey: ci.publicKeyPem }] },
      ...extra,
    });

    it('verifies signatures pushed under the tag scheme and as referrers, and stores their verdicts', async () => {
      await signatures.setTrust('team', trustCi('enforce'), 'admin');
      const a = await pushImage('team/app', 'a');
      const b = await pushImage('team/app', 'b');
      const sigA = await sign(a, [other, ci]);
      await sign(b, [ci], 'referrer');

      const stored = await db.store.signatureStore().verdictsOf('team/app', sigA.digest);
      assert.deepEqual(
        stored.map((v) => [v.layer, v.verified, v.signer, v.trustRevision]),
        [
          [0, false, null, 1],
          [1, true, 'ci', 1],
        ],
      );
      assert.match(stored[0]?.reason ?? '', /key/);
      assert.match(stored[1]?.fingerprint ?? '', /^sha256:[0-9a-f]{64}$/);
      assert.equal(await signatures.isSigned('team/app', a.digest), true);
      assert.equal(await signatures.isSigned('team/app', b.digest), true);
      const c = await pushImage('team/app', 'c');
      assert.equal(await signatures.isSigned('team/app', c.digest), false);
    });

    it('never trusts a verdict of an older trust revision: removing the key unsigns at once', async () => {
      await signatures.setTrust('team', trustCi('enforce'), null);
      const image = await pushImage('team/app', 'v1');
      const sig = await sign(image, [ci]);
      assert.equal(await signatures.isSigned('team/app', image.digest), true);

      await signatures.setTrust(
        'team',
        { mode: 'enforce', cosign: { keys: [{ name: 'new', publicKey: other.publicKeyPem }] } },
        null,
      );
      const verdicts = await signatures.verdictsFor('team/app', image.digest);
      assert.deepEqual(
        verdicts.map((v) => [v.verified, v.trustRevision]),
        [[false, 2]],
        'recomputed under revision 2',
      );
      await assert.rejects(signatures.checkPull(image, never), SignatureRequiredError);

      // The namespace's recomputation rewrites every verdict under the current revision.
      await signatures.setTrust('team', trustCi('enforce'), null);
      assert.equal(await signatures.recomputeNamespace('team'), 1);
      const after = await db.store.signatureStore().verdictsOf('team/app', sig.digest);
      assert.deepEqual(
        after.map((v) => [v.verified, v.trustRevision]),
        [[true, 3]],
      );
    });

    it('decides pulls by mode: off passes, warn warns, enforce refuses; pushers and artifacts pass', async () => {
      const image = await pushImage('team/app', 'v1');
      assert.deepEqual(await signatures.checkPull(image, never), { outcome: 'pass', reason: 'off' });
      await signatures.setTrust('team', trustCi('warn'), null);
      const warned = await signatures.checkPull(image, never);
      assert.equal(warned.outcome, 'warn');
      assert.equal(
        warned.outcome === 'warn' ? warned.warning : '',
        `199 berth "image team/app@${image.digest} is not signed by a trusted signer"`,
      );
      await signatures.setTrust('team', trustCi('enforce'), null);
      await assert.rejects(signatures.checkPull(image, never), (e: unknown) => {
        assert.ok(e instanceof SignatureRequiredError);
        assert.equal(e.status, 412);
        assert.equal(e.code, 'DENIED');
        assert.equal(e.message, `image team/app@${image.digest} is not signed by a trusted signer`);
        return true;
      });
      assert.deepEqual(await signatures.checkPull(image, () => Promise.resolve(true)), {
        outcome: 'pass',
        reason: 'bypass',
      });
      const sig = await sign(image, [other]);
      assert.deepEqual(await signatures.checkPull(sig, never), { outcome: 'pass', reason: 'artifact' });
      // Another namespace has its own (default) trust.
      const elsewhere = await pushImage('lib/app', 'v1');
      assert.deepEqual(await signatures.checkPull(elsewhere, never), { outcome: 'pass', reason: 'off' });
      // An untrusted signature does not unlock the pull; a trusted one does.
      await assert.rejects(signatures.checkPull(image, never), SignatureRequiredError);
      await sign(image, [ci], 'referrer');
      assert.deepEqual(await signatures.checkPull(image, never), { outcome: 'pass', reason: 'signed' });
    });

    it('passes an index that is signed or has a signed child, and a child of a signed index', async () => {
      await signatures.setTrust('team', trustCi('enforce'), null);
      const amd = await pushImage('team/multi', 'amd', 'amd');
      const arm = await pushImage('team/multi', 'arm', 'arm');
      const index = await pushIndex('team/multi', 'v1', [amd, arm]);
      await assert.rejects(signatures.checkPull(index, never), SignatureRequiredError);
      await assert.rejects(signatures.checkPull(amd, never), SignatureRequiredError);

      await sign(index, [ci]);
      clock += 20_000; // past the cache of the refusals above
      assert.deepEqual(await signatures.checkPull(index, never), { outcome: 'pass', reason: 'signed' });
      assert.deepEqual(await signatures.checkPull(amd, never), { outcome: 'pass', reason: 'signed' });

      const x = await pushImage('team/children', 'x', 'x');
      const y = await pushImage('team/children', 'y', 'y');
      const unsignedIndex = await pushIndex('team/children', 'v1', [x, y]);
      await sign(x, [ci]);
      assert.deepEqual(await signatures.checkPull(unsignedIndex, never), {
        outcome: 'pass',
        reason: 'signed',
      });
      assert.deepEqual(await signatures.checkPull(x, never), { outcome: 'pass', reason: 'signed' });
      await assert.rejects(signatures.checkPull(y, never), SignatureRequiredError);
    });

    it('refuses pushing a signature that does not verify when admission is on', async () => {
      await signatures.setTrust('team', trustCi('enforce', { admission: true }), null);
      const image = await pushImage('team/app', 'v1');
      await assert.rejects(sign(image, [other]), (e: unknown) => {
        assert.ok(e instanceof SignatureRejectedError);
        assert.equal(e.status, 403);
        assert.match(e.message, /^signature refused in team\/app: /);
        return true;
      });
      assert.equal(await db.store.getManifestByTag('team/app', sigTag(image.digest)), null, 'nothing stored');
      await sign(image, [ci]);
      assert.equal(await signatures.isSigned('team/app', image.digest), true);
      // Images themselves are not signatures: admission lets them through.
      await pushImage('team/app', 'v2');
    });
  });
}

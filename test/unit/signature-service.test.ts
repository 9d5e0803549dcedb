/**
 * The signature service with the real verifiers, on SQLite and PostgreSQL: signatures verified when pushed
 * through the registry (cosign's tag scheme and OCI 1.1 referrers), verdicts stored per trust revision and
 * recomputed when the trust changes (lazily on a pull, eagerly by the namespace's recomputation), admission of
 * pushed signatures, and the pull decision: modes, bypass, artifacts, and the index rules.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
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

    it('verifies real Notation and sigstore bundle signatures pushed as referrers', async () => {
      const fixtures = new URL('../fixtures/signing/', import.meta.url);
      const read = (path: string) => readFileSync(new URL(path, fixtures));
      const envelope = read('notation/jws-without-timestamp.sig');
      const { targetArtifact } = JSON.parse(
        Buffer.from((JSON.parse(envelope.toString()) as { payload: string }).payload, 'base64url').toString(),
      ) as { targetArtifact: { mediaType: string; digest: Digest; size: number } };
      const bundle = read('cosign/conformance-intoto-key/bundle.sigstore.json');
      const bundleSubject =
        'sha256:a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf' as Digest;
      clock = Date.parse('2025-06-01T00:00:00Z'); // within the Notation certificate's validity
      await signatures.setTrust(
        'library',
        {
          mode: 'enforce',
          cosign: {
            keys: [
              { name: 'conformance', publicKey: read('cosign/conformance-intoto-key/key.pub').toString() },
            ],
          },
          notation: {
            trustStores: [
              { type: 'ca', name: 'alpine', certificates: [read('notation/alpine-2023.crt').toString()] },
            ],
            trustPolicies: [
              {
                name: 'all',
                registryScopes: ['*'],
                signatureVerification: { level: 'strict' },
                trustStores: ['ca:alpine'],
                trustedIdentities: ['*'],
              },
            ],
          },
        },
        null,
      );
      const empty = blobOf(Buffer.from('{}'));
      const pushReferrer = async (
        artifactType: string,
        layerType: string,
        content: Buffer,
        subject: Digest,
      ) => {
        const layer = blobOf(content);
        await putBlob('library/alpine', empty);
        await putBlob('library/alpine', layer);
        const manifest = blobOf(
          Buffer.from(
            JSON.stringify({
              schemaVersion: 2,
              mediaType: OCI_MANIFEST,
              artifactType,
              config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: empty.digest, size: 2 },
              layers: [{ mediaType: layerType, digest: layer.digest, size: layer.size }],
              subject: { mediaType: OCI_MANIFEST, digest: subject, size: 1000 },
            }),
          ),
        );
        return putManifest('library/alpine', manifest);
      };
      await pushReferrer(
        'application/vnd.cncf.notary.signature',
        'application/jose+json',
        envelope,
        targetArtifact.digest,
      );
      const [notation] = await signatures.verdictsFor('library/alpine', targetArtifact.digest);
      assert.deepEqual(
        [notation?.tool, notation?.format, notation?.verified, notation?.signer],
        ['notation', 'notation-jws', true, 'C=US, ST=WA, L=Seattle, O=Notary, CN=alpine'],
      );
      const media = 'application/vnd.dev.sigstore.bundle.v0.3+json';
      await pushReferrer(media, media, bundle, bundleSubject);
      const [sigstore] = await signatures.verdictsFor('library/alpine', bundleSubject);
      assert.deepEqual(
        [sigstore?.tool, sigstore?.format, sigstore?.verified, sigstore?.signer],
        ['cosign', 'sigstore-bundle', true, 'conformance'],
      );
      // The same signatures verify nothing in a namespace that trusts other signers.
      assert.equal(await signatures.isSigned('library/alpine', targetArtifact.digest), true);
      await signatures.setTrust('library', trustCi('enforce'), null);
      assert.equal(await signatures.isSigned('library/alpine', targetArtifact.digest), false);
      assert.equal(await signatures.isSigned('library/alpine', bundleSubject), false);
    });

    it('verifies signatures made by cosign v3: a classic .sig manifest and a bundle referrer', async () => {
      const dir = new URL('../fixtures/signing/cosign/', import.meta.url);
      const read = (path: string) => readFileSync(new URL(path, dir));
      const sparse = new Registry({
        ...registry.deps,
        options: { ...registry.deps.options, sparseManifests: true },
      });
      await signatures.setTrust(
        'tobby',
        {
          mode: 'enforce',
          cosign: {
            keys: [
              { name: 'classic', publicKey: read('cosign-v3-classic/cosign.pub').toString() },
              { name: 'bundle', publicKey: read('cosign-v3-bundle/cosign.pub').toString() },
            ],
          },
        },
        null,
      );
      // The classic signature, under cosign's tag (its config blob was not published: the manifest is sparse).
      const classicSubject =
        'sha256:f20c43161d73848408ef247f0ec7111b19fe58ffebc0cbcaa0d2c8bda4967268' as Digest;
      await putBlob('tobby/fixture', blobOf(read('cosign-v3-classic/payload.json')));
      const classic = read('cosign-v3-classic/signature-manifest.json');
      await sparse.manifests.put({
        repository: 'tobby/fixture',
        reference: parseReference(sigTag(classicSubject), true),
        body: classic,
        contentType: OCI_MANIFEST,
      });
      const [c] = await signatures.verdictsFor('tobby/fixture', classicSubject);
      assert.deepEqual(
        [c?.format, c?.verified, c?.signer, c?.reason],
        ['cosign-simple-signing', true, 'classic', null],
      );
      // The bundle, as the referrer cosign 3 pushes by default.
      const bundleSubject =
        'sha256:d7d5640c741c60b47fa4b5530daa20a6469b55754a89dd42adbadadb59f9093c' as Digest;
      await putBlob('tobby/fixture', blobOf(Buffer.from('{}')));
      await putBlob('tobby/fixture', blobOf(read('cosign-v3-bundle/bundle.sigstore.json')));
      await putManifest('tobby/fixture', blobOf(read('cosign-v3-bundle/referring-manifest.json')));
      const [b] = await signatures.verdictsFor('tobby/fixture', bundleSubject);
      assert.deepEqual(
        [b?.format, b?.verified, b?.signer, b?.reason],
        ['sigstore-bundle', true, 'bundle', null],
      );
      // Each key verifies only its own signature.
      await signatures.setTrust(
        'tobby',
        {
          mode: 'enforce',
          cosign: { keys: [{ name: 'bundle', publicKey: read('cosign-v3-bundle/cosign.pub').toString() }] },
        },
        null,
      );
      assert.equal(await signatures.isSigned('tobby/fixture', classicSubject), false);
      assert.equal(await signatures.isSigned('tobby/fixture', bundleSubject), true);
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

/** `GET /v2/<name>/referrers/<digest>[?artifactType=]` */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  assertApiVersion,
  assertError,
  createTestRegistry,
  EMPTY_JSON,
  EMPTY_JSON_DIGEST,
  imageManifest,
  indexManifest,
  json,
  manifestBytes,
  OCI_CONFIG,
  OCI_EMPTY,
  OCI_INDEX,
  OCI_MANIFEST,
  sha256,
  type Descriptor,
  type PushedImage,
  type TestRegistry,
} from '../helpers/app.ts';

interface Index {
  schemaVersion: number;
  mediaType: string;
  manifests: (Descriptor & { artifactType?: string })[];
}

const SBOM = 'application/vnd.example.sbom.v1';
const SIG = 'application/vnd.example.signature.v1';

describe('referrers', () => {
  let reg: TestRegistry;
  const repo = 'ref/app';
  let subject: PushedImage;
  let sbom: PushedImage;
  let sig: PushedImage;
  let plain: PushedImage;
  let index: { digest: string; size: number };

  before(async () => {
    reg = await createTestRegistry();
    subject = await reg.pushImage(repo, 'latest');
    sbom = await reg.pushImage(repo, null, {
      subject: subject.descriptor,
      artifactType: SBOM,
      emptyConfig: true,
      annotations: {
        'org.opencontainers.image.created': '2024-01-01T00:00:00Z',
        'org.example.format': 'spdx',
      },
    });
    sig = await reg.pushImage(repo, null, {
      subject: subject.descriptor,
      artifactType: SIG,
      emptyConfig: true,
    });
    // An image manifest without artifactType: the referrers API reports its config media type.
    plain = await reg.pushImage(repo, null, { subject: subject.descriptor });
    // An index without artifactType: no artifactType in its descriptor.
    const bytes = manifestBytes(
      indexManifest([sbom.descriptor], { subject: subject.descriptor, annotations: { kind: 'bundle' } }),
    );
    const res = await reg.putManifest(repo, sha256(bytes), bytes, OCI_INDEX);
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.headers['oci-subject'], subject.digest);
    index = { digest: sha256(bytes), size: bytes.length };
  });
  after(async () => {
    await reg.dispose();
  });

  it('lists every referrer as an OCI index with artifactType and annotations', async () => {
    const res = await reg.inject({ method: 'GET', url: `/v2/${repo}/referrers/${subject.digest}` });
    assert.equal(res.statusCode, 200, res.body);
    assertApiVersion(res);
    assert.equal(res.headers['content-type'], OCI_INDEX);
    assert.equal(res.headers['oci-filters-applied'], undefined);
    const body = json<Index>(res);
    assert.equal(body.schemaVersion, 2);
    assert.equal(body.mediaType, OCI_INDEX);
    const byDigest = new Map(body.manifests.map((m) => [m.digest, m]));
    assert.equal(body.manifests.length, 4);
    assert.deepEqual(byDigest.get(sbom.digest), {
      mediaType: OCI_MANIFEST,
      digest: sbom.digest,
      size: sbom.bytes.length,
      artifactType: SBOM,
      annotations: {
        'org.opencontainers.image.created': '2024-01-01T00:00:00Z',
        'org.example.format': 'spdx',
      },
    });
    assert.deepEqual(byDigest.get(sig.digest), {
      mediaType: OCI_MANIFEST,
      digest: sig.digest,
      size: sig.bytes.length,
      artifactType: SIG,
    });
    assert.equal(byDigest.get(plain.digest)?.artifactType, OCI_CONFIG);
    assert.deepEqual(byDigest.get(index.digest), {
      mediaType: OCI_INDEX,
      digest: index.digest,
      size: index.size,
      annotations: { kind: 'bundle' },
    });
  });

  it('?artifactType= filters and says so in OCI-Filters-Applied', async () => {
    const res = await reg.inject({
      method: 'GET',
      url: `/v2/${repo}/referrers/${subject.digest}?artifactType=${encodeURIComponent(SBOM)}`,
    });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['oci-filters-applied'], 'artifactType');
    assert.deepEqual(
      json<Index>(res).manifests.map((m) => m.digest),
      [sbom.digest],
    );
    const none = await reg.inject({
      method: 'GET',
      url: `/v2/${repo}/referrers/${subject.digest}?artifactType=application/vnd.none`,
    });
    assert.equal(none.statusCode, 200);
    assert.equal(none.headers['oci-filters-applied'], 'artifactType');
    assert.deepEqual(json<Index>(none).manifests, []);
  });

  it('filtering on the config media type finds image manifests without artifactType', async () => {
    const res = await reg.inject({
      method: 'GET',
      url: `/v2/${repo}/referrers/${subject.digest}?artifactType=${encodeURIComponent(OCI_CONFIG)}`,
    });
    assert.deepEqual(
      json<Index>(res).manifests.map((m) => m.digest),
      [plain.digest],
    );
  });

  it('a digest without referrers gets an empty index (also in an unknown repository)', async () => {
    for (const url of [
      `/v2/${repo}/referrers/${sbom.digest}`,
      `/v2/${repo}/referrers/${sha256('unknown subject')}`,
      `/v2/ref/unknown/referrers/${subject.digest}`,
    ]) {
      const res = await reg.inject({ method: 'GET', url });
      assert.equal(res.statusCode, 200, url);
      assert.equal(res.headers['content-type'], OCI_INDEX);
      assert.deepEqual(json<Index>(res), { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] });
    }
  });

  it('referrers are scoped to the repository', async () => {
    const other = await reg.pushImage('ref/other', 'latest');
    await reg.pushImage('ref/other', null, {
      subject: subject.descriptor,
      artifactType: SIG,
      emptyConfig: true,
    });
    const res = await reg.inject({ method: 'GET', url: `/v2/ref/other/referrers/${subject.digest}` });
    assert.equal(json<Index>(res).manifests.length, 1);
    const mine = await reg.inject({ method: 'GET', url: `/v2/${repo}/referrers/${other.digest}` });
    assert.deepEqual(json<Index>(mine).manifests, []);
  });

  it('a malformed digest answers 400 DIGEST_INVALID', async () => {
    for (const d of ['sha256:abc', 'latest', `md5:${'a'.repeat(32)}`, `sha256:${'A'.repeat(64)}`]) {
      assertError(
        await reg.inject({ method: 'GET', url: `/v2/${repo}/referrers/${d}` }),
        400,
        'DIGEST_INVALID',
      );
    }
  });

  it('a referrer pushed before its subject exists is listed', async () => {
    const later = { mediaType: OCI_MANIFEST, digest: sha256('subject pushed later'), size: 20 };
    await reg.pushBlob('ref/early', EMPTY_JSON);
    const bytes = manifestBytes(
      imageManifest({
        artifactType: SIG,
        config: { mediaType: OCI_EMPTY, digest: EMPTY_JSON_DIGEST, size: 2 },
        layers: [],
        subject: later,
      }),
    );
    const put = await reg.putManifest('ref/early', sha256(bytes), bytes);
    assert.equal(put.statusCode, 201, put.body);
    assert.equal(put.headers['oci-subject'], later.digest);
    const res = await reg.inject({ method: 'GET', url: `/v2/ref/early/referrers/${later.digest}` });
    assert.deepEqual(
      json<Index>(res).manifests.map((m) => m.digest),
      [sha256(bytes)],
    );
  });

  it('deleting a referrer removes it from the list', async () => {
    const target = await reg.pushImage('ref/del', 'latest');
    const a = await reg.pushImage('ref/del', null, {
      subject: target.descriptor,
      artifactType: SBOM,
      emptyConfig: true,
    });
    const b = await reg.pushImage('ref/del', null, {
      subject: target.descriptor,
      artifactType: SIG,
      emptyConfig: true,
    });
    const url = `/v2/ref/del/referrers/${target.digest}`;
    assert.equal(json<Index>(await reg.inject({ method: 'GET', url })).manifests.length, 2);
    assert.equal(
      (await reg.inject({ method: 'DELETE', url: `/v2/ref/del/manifests/${a.digest}` })).statusCode,
      202,
    );
    assert.deepEqual(
      json<Index>(await reg.inject({ method: 'GET', url })).manifests.map((m) => m.digest),
      [b.digest],
    );
    assert.equal(
      (await reg.inject({ method: 'DELETE', url: `/v2/ref/del/manifests/${b.digest}` })).statusCode,
      202,
    );
    assert.deepEqual(json<Index>(await reg.inject({ method: 'GET', url })).manifests, []);
  });
});

/**
 * `PUT|GET|HEAD|DELETE /v2/<name>/manifests/<reference>`: every manifest kind, exact bytes, content negotiation,
 * conditional GET, subject and multi-tag pushes, the size limit, validation errors, deletes.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import {
  assertApiVersion,
  assertError,
  createTestRegistry,
  descriptorOf,
  DOCKER_CONFIG,
  DOCKER_FOREIGN_LAYER,
  DOCKER_LAYER,
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  EMPTY_JSON,
  EMPTY_JSON_DIGEST,
  imageManifest,
  indexManifest,
  json,
  manifestBytes,
  OCI_CONFIG,
  OCI_EMPTY,
  OCI_INDEX,
  OCI_LAYER,
  OCI_MANIFEST,
  randomBlob,
  SCHEMA1_SIGNED,
  sha256,
  sha512,
  type Descriptor,
  type TestRegistry,
} from '../helpers/app.ts';
import { linkBlobsInSqlite } from '../helpers/bulk-links.ts';
import { MAX_JSON_DEPTH } from '../../src/util/json-depth.ts';

describe('manifests', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await createTestRegistry();
  });
  after(async () => {
    await reg.dispose();
  });

  /** Pushes a config and one layer to `repo`, returning their descriptors. */
  async function blobsFor(repo: string, docker = false): Promise<{ config: Descriptor; layer: Descriptor }> {
    const configBytes = Buffer.from(JSON.stringify({ os: 'linux', architecture: 'arm64', n: Math.random() }));
    const layerBytes = randomBlob(64);
    await reg.pushBlob(repo, configBytes);
    await reg.pushBlob(repo, layerBytes);
    return {
      config: descriptorOf(configBytes, docker ? DOCKER_CONFIG : OCI_CONFIG),
      layer: descriptorOf(layerBytes, docker ? DOCKER_LAYER : OCI_LAYER),
    };
  }

  describe('push and pull', () => {
    it('PUT by tag answers 201 with Location and Docker-Content-Digest', async () => {
      const { config, layer } = await blobsFor('m/tag');
      const bytes = manifestBytes(imageManifest({ config, layers: [layer] }));
      const digest = sha256(bytes);
      const res = await reg.inject({
        method: 'PUT',
        url: '/v2/m/tag/manifests/v1',
        headers: { 'content-type': OCI_MANIFEST, host: 'registry.test' },
        payload: bytes,
      });
      assert.equal(res.statusCode, 201, res.body);
      assertApiVersion(res);
      assert.equal(res.headers.location, `http://registry.test/v2/m/tag/manifests/${digest}`);
      assert.equal(res.headers['docker-content-digest'], digest);
      assert.equal(res.headers['oci-subject'], undefined);
    });

    it('PUT by digest answers 201 with Location and Docker-Content-Digest', async () => {
      const { config, layer } = await blobsFor('m/digest');
      const bytes = manifestBytes(imageManifest({ config, layers: [layer] }));
      const digest = sha256(bytes);
      const res = await reg.inject({
        method: 'PUT',
        url: `/v2/m/digest/manifests/${digest}`,
        headers: { 'content-type': OCI_MANIFEST, host: 'registry.test' },
        payload: bytes,
      });
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.headers.location, `http://registry.test/v2/m/digest/manifests/${digest}`);
      assert.equal(res.headers['docker-content-digest'], digest);
      assert.equal(res.headers['oci-tag'], undefined);
    });

    it('PUT with a chunked body (no Content-Length) stores the exact bytes', async () => {
      const { config, layer } = await blobsFor('m/chunked');
      const bytes = manifestBytes(imageManifest({ config, layers: [layer] }));
      const res = await reg.inject({
        method: 'PUT',
        url: '/v2/m/chunked/manifests/latest',
        headers: { 'content-type': OCI_MANIFEST, 'transfer-encoding': 'chunked' },
        payload: Readable.from([bytes.subarray(0, 10), bytes.subarray(10)]),
      });
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.headers['docker-content-digest'], sha256(bytes));
      const get = await reg.inject({ method: 'GET', url: '/v2/m/chunked/manifests/latest' });
      assert.ok(get.rawPayload.equals(bytes));
    });

    it('PUT by a sha512 digest stores it under that digest', async () => {
      const { config, layer } = await blobsFor('m/sha512');
      const bytes = manifestBytes(imageManifest({ config, layers: [layer] }));
      const digest = sha512(bytes);
      const res = await reg.putManifest('m/sha512', digest, bytes);
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.headers['docker-content-digest'], digest);
      const get = await reg.inject({ method: 'GET', url: `/v2/m/sha512/manifests/${digest}` });
      assert.equal(get.statusCode, 200);
      assert.deepEqual(get.rawPayload, bytes);
      assert.equal(get.headers['docker-content-digest'], digest);
    });

    it('PUT by a digest that does not match the body answers 400 DIGEST_INVALID and stores nothing', async () => {
      const { config, layer } = await blobsFor('m/mismatch');
      const bytes = manifestBytes(imageManifest({ config, layers: [layer] }));
      const wrong = sha256('another manifest');
      assertError(await reg.putManifest('m/mismatch', wrong, bytes), 400, 'DIGEST_INVALID');
      assertError(
        await reg.putManifest('m/mismatch', sha512(Buffer.from('x')), bytes),
        400,
        'DIGEST_INVALID',
      );
      assertError(
        await reg.inject({ method: 'GET', url: `/v2/m/mismatch/manifests/${wrong}` }),
        404,
        'MANIFEST_UNKNOWN',
      );
      assertError(
        await reg.inject({ method: 'GET', url: `/v2/m/mismatch/manifests/${sha256(bytes)}` }),
        404,
        'MANIFEST_UNKNOWN',
      );
    });

    it('GET and HEAD by tag and by digest return the exact bytes and headers', async () => {
      const { config, layer } = await blobsFor('m/get');
      // Unusual but valid formatting: the registry must keep the bytes as pushed.
      const bytes = Buffer.from(
        `{\n    "schemaVersion" : 2,\n\t"mediaType": "${OCI_MANIFEST}",\n "config": ${JSON.stringify(config)},\r\n` +
          `"layers": [ ${JSON.stringify(layer)} ] ,"annotations":{"k":"\\u00e9t\\u00e9 é"}   }\n`,
      );
      const digest = sha256(bytes);
      assert.equal((await reg.putManifest('m/get', 'latest', bytes)).statusCode, 201);
      for (const ref of ['latest', digest]) {
        const get = await reg.inject({
          method: 'GET',
          url: `/v2/m/get/manifests/${ref}`,
          headers: { accept: OCI_MANIFEST },
        });
        assert.equal(get.statusCode, 200, get.body);
        assertApiVersion(get);
        assert.ok(get.rawPayload.equals(bytes), 'byte-exact body');
        assert.equal(get.headers['content-type'], OCI_MANIFEST);
        assert.equal(get.headers['docker-content-digest'], digest);
        assert.equal(get.headers['content-length'], String(bytes.length));
        assert.equal(get.headers.etag, `"${digest}"`);

        const head = await reg.inject({ method: 'HEAD', url: `/v2/m/get/manifests/${ref}` });
        assert.equal(head.statusCode, 200);
        assert.equal(head.body, '');
        assert.equal(head.headers['content-type'], OCI_MANIFEST);
        assert.equal(head.headers['docker-content-digest'], digest);
        assert.equal(head.headers['content-length'], String(bytes.length));
        assert.equal(head.headers.etag, `"${digest}"`);
      }
    });

    it('If-None-Match with the ETag answers 304 without a body; another ETag gets 200', async () => {
      const image = await reg.pushImage('m/etag', 'latest');
      for (const method of ['GET', 'HEAD'] as const) {
        for (const value of [
          `"${image.digest}"`,
          `W/"${image.digest}"`,
          `"sha256:${'0'.repeat(64)}", "${image.digest}"`,
        ]) {
          const res = await reg.inject({
            method,
            url: '/v2/m/etag/manifests/latest',
            headers: { 'if-none-match': value },
          });
          assert.equal(res.statusCode, 304, `${method} ${value}`);
          assert.equal(res.body, '');
          assert.equal(res.headers.etag, `"${image.digest}"`);
          assert.equal(res.headers['docker-content-digest'], image.digest);
          assertApiVersion(res);
        }
      }
      const other = await reg.inject({
        method: 'GET',
        url: `/v2/m/etag/manifests/${image.digest}`,
        headers: { 'if-none-match': `"sha256:${'0'.repeat(64)}"` },
      });
      assert.equal(other.statusCode, 200);
      assert.ok(other.rawPayload.equals(image.bytes));
    });

    it('unknown tags and digests answer 404 MANIFEST_UNKNOWN (GET, HEAD, DELETE)', async () => {
      await reg.pushImage('m/unknown', 'latest');
      const unknown = sha256('nothing');
      for (const ref of ['nope', unknown]) {
        for (const method of ['GET', 'HEAD', 'DELETE'] as const) {
          assertError(
            await reg.inject({ method, url: `/v2/m/unknown/manifests/${ref}` }),
            404,
            'MANIFEST_UNKNOWN',
          );
        }
      }
      // A repository that does not exist at all.
      assertError(
        await reg.inject({ method: 'GET', url: '/v2/m/never/manifests/latest' }),
        404,
        'MANIFEST_UNKNOWN',
      );
    });

    it('a manifest pushed in one repository is not visible in another', async () => {
      const image = await reg.pushImage('m/iso/a', 'latest');
      assertError(
        await reg.inject({ method: 'GET', url: `/v2/m/iso/b/manifests/${image.digest}` }),
        404,
        'MANIFEST_UNKNOWN',
      );
      assertError(
        await reg.inject({ method: 'GET', url: '/v2/m/iso/b/manifests/latest' }),
        404,
        'MANIFEST_UNKNOWN',
      );
    });

    it('re-pushing the same manifest is idempotent', async () => {
      const image = await reg.pushImage('m/idem', 'v1');
      for (const ref of ['v1', image.digest, 'v1']) {
        const res = await reg.putManifest('m/idem', ref, image.bytes);
        assert.equal(res.statusCode, 201, res.body);
        assert.equal(res.headers['docker-content-digest'], image.digest);
      }
      const tags = await reg.inject({ method: 'GET', url: '/v2/m/idem/tags/list' });
      assert.deepEqual(json(tags), { name: 'm/idem', tags: ['v1'] });
      const get = await reg.inject({ method: 'GET', url: '/v2/m/idem/manifests/v1' });
      assert.ok(get.rawPayload.equals(image.bytes));
    });

    it('pushing another manifest to a tag moves the tag; the old one stays reachable by digest', async () => {
      const first = await reg.pushImage('m/move', 'latest');
      const second = await reg.pushImage('m/move', 'latest');
      const byTag = await reg.inject({ method: 'GET', url: '/v2/m/move/manifests/latest' });
      assert.equal(byTag.headers['docker-content-digest'], second.digest);
      assert.ok(byTag.rawPayload.equals(second.bytes));
      const old = await reg.inject({ method: 'GET', url: `/v2/m/move/manifests/${first.digest}` });
      assert.equal(old.statusCode, 200);
      assert.ok(old.rawPayload.equals(first.bytes));
    });
  });

  describe('content negotiation', () => {
    let image: Awaited<ReturnType<TestRegistry['pushImage']>>;
    before(async () => {
      image = await reg.pushImage('neg/app', 'latest');
    });

    const admitted = [
      ['no Accept', undefined],
      ['an empty Accept', ''],
      ['*/*', '*/*'],
      ['application/*', 'application/*'],
      ['the exact type', OCI_MANIFEST],
      ['the exact type with parameters', `${OCI_MANIFEST}; q=0.5`],
      ['a list including the type', `${DOCKER_MANIFEST}, ${OCI_MANIFEST};q=0.9, ${OCI_INDEX}`],
      ['several Accept headers', [DOCKER_MANIFEST, OCI_MANIFEST]],
    ] as const;
    for (const [label, accept] of admitted) {
      it(`${label} gets the stored type`, async () => {
        const res = await reg.inject({
          method: 'GET',
          url: '/v2/neg/app/manifests/latest',
          headers: accept === undefined ? {} : { accept: accept as string | string[] },
        });
        assert.equal(res.statusCode, 200, res.body);
        assert.equal(res.headers['content-type'], OCI_MANIFEST);
        assert.ok(res.rawPayload.equals(image.bytes));
      });
    }

    it('an Accept list excluding the stored type answers 404 MANIFEST_UNKNOWN (GET and HEAD, tag and digest)', async () => {
      const accept = `${DOCKER_MANIFEST}, ${DOCKER_MANIFEST_LIST}`;
      for (const ref of ['latest', image.digest]) {
        for (const method of ['GET', 'HEAD'] as const) {
          const res = await reg.inject({ method, url: `/v2/neg/app/manifests/${ref}`, headers: { accept } });
          assertError(res, 404, 'MANIFEST_UNKNOWN');
        }
      }
      assertError(
        await reg.inject({
          method: 'GET',
          url: '/v2/neg/app/manifests/latest',
          headers: { accept: 'text/html' },
        }),
        404,
        'MANIFEST_UNKNOWN',
      );
    });
  });

  describe('manifest kinds', () => {
    it('an OCI index of existing manifests', async () => {
      const amd = await reg.pushImage('kinds/index', null);
      const arm = await reg.pushImage('kinds/index', null);
      const bytes = manifestBytes(
        indexManifest([
          { ...amd.descriptor, platform: { architecture: 'amd64', os: 'linux' } },
          { ...arm.descriptor, platform: { architecture: 'arm64', os: 'linux' } },
        ]),
      );
      const res = await reg.putManifest('kinds/index', 'multi', bytes, OCI_INDEX);
      assert.equal(res.statusCode, 201, res.body);
      const get = await reg.inject({
        method: 'GET',
        url: '/v2/kinds/index/manifests/multi',
        headers: { accept: OCI_INDEX },
      });
      assert.equal(get.statusCode, 200);
      assert.equal(get.headers['content-type'], OCI_INDEX);
      assert.ok(get.rawPayload.equals(bytes));
      assertError(
        await reg.inject({
          method: 'GET',
          url: '/v2/kinds/index/manifests/multi',
          headers: { accept: OCI_MANIFEST },
        }),
        404,
        'MANIFEST_UNKNOWN',
      );
    });

    it('an OCI index whose child is missing answers 400 MANIFEST_BLOB_UNKNOWN', async () => {
      const present = await reg.pushImage('kinds/index-missing', null);
      const elsewhere = await reg.pushImage('kinds/index-elsewhere', null);
      const missing = { mediaType: OCI_MANIFEST, digest: sha256('no such manifest'), size: 100 };
      for (const child of [missing, elsewhere.descriptor]) {
        const bytes = manifestBytes(indexManifest([present.descriptor, child]));
        assertError(
          await reg.putManifest('kinds/index-missing', 'multi', bytes, OCI_INDEX),
          400,
          'MANIFEST_BLOB_UNKNOWN',
        );
      }
      assertError(
        await reg.inject({ method: 'GET', url: '/v2/kinds/index-missing/manifests/multi' }),
        404,
        'MANIFEST_UNKNOWN',
      );
    });

    it('a Docker schema2 manifest', async () => {
      const image = await reg.pushImage('kinds/docker', 'latest', { docker: true });
      const get = await reg.inject({
        method: 'GET',
        url: '/v2/kinds/docker/manifests/latest',
        headers: { accept: `${DOCKER_MANIFEST}, ${DOCKER_MANIFEST_LIST}` },
      });
      assert.equal(get.statusCode, 200);
      assert.equal(get.headers['content-type'], DOCKER_MANIFEST);
      assert.ok(get.rawPayload.equals(image.bytes));
      assertError(
        await reg.inject({
          method: 'GET',
          url: '/v2/kinds/docker/manifests/latest',
          headers: { accept: OCI_MANIFEST },
        }),
        404,
        'MANIFEST_UNKNOWN',
      );
    });

    it('a Docker manifest list', async () => {
      const a = await reg.pushImage('kinds/list', null, { docker: true });
      const b = await reg.pushImage('kinds/list', null, { docker: true });
      const bytes = manifestBytes(
        indexManifest(
          [
            { ...a.descriptor, platform: { architecture: 'amd64', os: 'linux' } },
            { ...b.descriptor, platform: { architecture: 'arm64', os: 'linux' } },
          ],
          { mediaType: DOCKER_MANIFEST_LIST },
        ),
      );
      const res = await reg.putManifest('kinds/list', 'latest', bytes, DOCKER_MANIFEST_LIST);
      assert.equal(res.statusCode, 201, res.body);
      const get = await reg.inject({
        method: 'GET',
        url: '/v2/kinds/list/manifests/latest',
        headers: { accept: DOCKER_MANIFEST_LIST },
      });
      assert.equal(get.statusCode, 200);
      assert.equal(get.headers['content-type'], DOCKER_MANIFEST_LIST);
      assert.ok(get.rawPayload.equals(bytes));
    });

    it('an artifact with artifactType and the empty config', async () => {
      assert.equal(sha256(EMPTY_JSON), EMPTY_JSON_DIGEST);
      const digest = await reg.pushBlob('kinds/artifact', EMPTY_JSON);
      assert.equal(digest, EMPTY_JSON_DIGEST);
      const payload = Buffer.from('signature bytes');
      await reg.pushBlob('kinds/artifact', payload);
      const bytes = manifestBytes(
        imageManifest({
          artifactType: 'application/vnd.example.signature.v1',
          config: { mediaType: OCI_EMPTY, digest: EMPTY_JSON_DIGEST, size: 2 },
          layers: [descriptorOf(payload, 'application/vnd.example.signature.v1+bin')],
        }),
      );
      const res = await reg.putManifest('kinds/artifact', 'sig', bytes);
      assert.equal(res.statusCode, 201, res.body);
      const get = await reg.inject({ method: 'GET', url: '/v2/kinds/artifact/manifests/sig' });
      assert.equal(get.headers['content-type'], OCI_MANIFEST);
      assert.ok(get.rawPayload.equals(bytes));
      const config = await reg.inject({
        method: 'GET',
        url: `/v2/kinds/artifact/blobs/${EMPTY_JSON_DIGEST}`,
      });
      assert.equal(config.body, '{}');
    });

    it('an OCI manifest without mediaType is accepted with the OCI Content-Type', async () => {
      const { config, layer } = await blobsFor('kinds/nomediatype');
      const bytes = manifestBytes(imageManifest({ mediaType: null, config, layers: [layer] }));
      assert.equal((await reg.putManifest('kinds/nomediatype', 'x', bytes, OCI_MANIFEST)).statusCode, 201);
      const get = await reg.inject({ method: 'GET', url: '/v2/kinds/nomediatype/manifests/x' });
      assert.equal(get.headers['content-type'], OCI_MANIFEST);
    });

    it('the Content-Type may carry parameters', async () => {
      const { config, layer } = await blobsFor('kinds/params');
      const bytes = manifestBytes(imageManifest({ config, layers: [layer] }));
      const res = await reg.putManifest('kinds/params', 'x', bytes, `${OCI_MANIFEST}; charset=utf-8`);
      assert.equal(res.statusCode, 201, res.body);
    });

    it('a manifest with no layers (OCI) is accepted', async () => {
      const { config } = await blobsFor('kinds/nolayers');
      const bytes = manifestBytes(imageManifest({ config, layers: [] }));
      assert.equal((await reg.putManifest('kinds/nolayers', 'x', bytes)).statusCode, 201);
    });

    it('a foreign layer with urls that is not in the registry is accepted', async () => {
      const { config, layer } = await blobsFor('kinds/foreign', true);
      const foreign: Descriptor = {
        mediaType: DOCKER_FOREIGN_LAYER,
        digest: sha256('windows base layer'),
        size: 1234,
        urls: ['https://mcr.example.com/layer.tar.gz'],
      };
      const bytes = manifestBytes(
        imageManifest({ mediaType: DOCKER_MANIFEST, config, layers: [foreign, layer] }),
      );
      const res = await reg.putManifest('kinds/foreign', 'win', bytes, DOCKER_MANIFEST);
      assert.equal(res.statusCode, 201, res.body);
    });
  });

  describe('subject and tags on push', () => {
    it('a manifest with a subject gets OCI-Subject', async () => {
      const subject = await reg.pushImage('subj/app', 'latest');
      const res = await pushReferrer('subj/app', subject.descriptor);
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.headers['oci-subject'], subject.digest);
    });

    it('a subject that does not exist (yet) is accepted, with OCI-Subject', async () => {
      const ghost = { mediaType: OCI_MANIFEST, digest: sha256('pushed later'), size: 321 };
      const res = await pushReferrer('subj/ghost', ghost);
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.headers['oci-subject'], ghost.digest);
    });

    async function pushReferrer(repo: string, subject: Descriptor) {
      await reg.pushBlob(repo, EMPTY_JSON);
      const bytes = manifestBytes(
        imageManifest({
          artifactType: 'application/vnd.example.sbom',
          config: { mediaType: OCI_EMPTY, digest: EMPTY_JSON_DIGEST, size: 2 },
          layers: [{ mediaType: OCI_EMPTY, digest: EMPTY_JSON_DIGEST, size: 2 }],
          subject,
        }),
      );
      return reg.putManifest(repo, sha256(bytes), bytes);
    }

    it('PUT by digest with ?tag=a&tag=b echoes OCI-Tag for each and both tags resolve', async () => {
      const { config, layer } = await blobsFor('multitag/app');
      const bytes = manifestBytes(imageManifest({ config, layers: [layer] }));
      const digest = sha256(bytes);
      const res = await reg.inject({
        method: 'PUT',
        url: `/v2/multitag/app/manifests/${digest}?tag=a&tag=b`,
        headers: { 'content-type': OCI_MANIFEST },
        payload: bytes,
      });
      assert.equal(res.statusCode, 201, res.body);
      const echoed = ([] as string[]).concat(res.headers['oci-tag'] as string | string[]).sort();
      assert.deepEqual(echoed, ['a', 'b']);
      for (const tag of ['a', 'b']) {
        const get = await reg.inject({ method: 'GET', url: `/v2/multitag/app/manifests/${tag}` });
        assert.equal(get.statusCode, 200);
        assert.equal(get.headers['docker-content-digest'], digest);
      }
      assert.deepEqual(json(await reg.inject({ method: 'GET', url: '/v2/multitag/app/tags/list' })).tags, [
        'a',
        'b',
      ]);
    });

    it('an invalid ?tag= answers 400 and tags nothing', async () => {
      const { config, layer } = await blobsFor('multitag/bad');
      const bytes = manifestBytes(imageManifest({ config, layers: [layer] }));
      const res = await reg.inject({
        method: 'PUT',
        url: `/v2/multitag/bad/manifests/${sha256(bytes)}?tag=good&tag=-bad`,
        headers: { 'content-type': OCI_MANIFEST },
        payload: bytes,
      });
      assertError(res, 400, 'MANIFEST_INVALID');
      assertError(
        await reg.inject({ method: 'GET', url: '/v2/multitag/bad/manifests/good' }),
        404,
        'MANIFEST_UNKNOWN',
      );
    });
  });

  describe('size limit', () => {
    const LIMIT = 4 * 1024 * 1024;

    /** A valid manifest padded with an annotation to exactly `size` bytes. */
    async function manifestOfSize(repo: string, size: number): Promise<Buffer> {
      const { config, layer } = await blobsFor(repo);
      const base = manifestBytes(imageManifest({ config, layers: [layer], annotations: { pad: '' } }));
      const bytes = manifestBytes(
        imageManifest({ config, layers: [layer], annotations: { pad: 'x'.repeat(size - base.length) } }),
      );
      assert.equal(bytes.length, size);
      return bytes;
    }

    it('a manifest of exactly 4 MiB is accepted', async () => {
      const bytes = await manifestOfSize('big/ok', LIMIT);
      const res = await reg.putManifest('big/ok', 'latest', bytes);
      assert.equal(res.statusCode, 201, res.body);
      const get = await reg.inject({ method: 'GET', url: '/v2/big/ok/manifests/latest' });
      assert.equal(get.headers['content-length'], String(LIMIT));
      assert.ok(get.rawPayload.equals(bytes));
    });

    it('one byte over 4 MiB answers 413 and stores nothing', async () => {
      const bytes = await manifestOfSize('big/over', LIMIT + 1);
      const res = await reg.putManifest('big/over', 'latest', bytes);
      assert.equal(res.statusCode, 413, res.body);
      assertApiVersion(res);
      assert.ok((JSON.parse(res.body) as { errors: unknown[] }).errors.length > 0);
      assertError(
        await reg.inject({ method: 'GET', url: '/v2/big/over/manifests/latest' }),
        404,
        'MANIFEST_UNKNOWN',
      );
    });

    it('an oversized body without Content-Length (chunked) answers 413 too', async () => {
      const bytes = await manifestOfSize('big/chunked', LIMIT + 10);
      const res = await reg.inject({
        method: 'PUT',
        url: '/v2/big/chunked/manifests/latest',
        headers: { 'content-type': OCI_MANIFEST, 'transfer-encoding': 'chunked' },
        payload: Readable.from([bytes.subarray(0, LIMIT), bytes.subarray(LIMIT)]),
      });
      assert.equal(res.statusCode, 413, res.body);
    });
  });

  describe('validation', () => {
    let config: Descriptor;
    let layer: Descriptor;
    const repo = 'invalid/app';
    before(async () => {
      ({ config, layer } = await blobsFor(repo));
    });

    it('a missing config or layer answers 400 MANIFEST_BLOB_UNKNOWN', async () => {
      const missing = descriptorOf(Buffer.from('not uploaded'), OCI_LAYER);
      for (const m of [
        imageManifest({ config: { ...missing, mediaType: OCI_CONFIG }, layers: [layer] }),
        imageManifest({ config, layers: [layer, missing] }),
      ]) {
        assertError(await reg.putManifest(repo, 'missing', manifestBytes(m)), 400, 'MANIFEST_BLOB_UNKNOWN');
      }
      assertError(
        await reg.inject({ method: 'GET', url: `/v2/${repo}/manifests/missing` }),
        404,
        'MANIFEST_UNKNOWN',
      );
    });

    it('blobs of another repository do not count', async () => {
      const other = await blobsFor('invalid/other');
      const bytes = manifestBytes(imageManifest({ config: other.config, layers: [other.layer] }));
      assertError(await reg.putManifest(repo, 'foreign', bytes), 400, 'MANIFEST_BLOB_UNKNOWN');
    });

    it('schema1 manifests are refused with 400 MANIFEST_INVALID', async () => {
      const schema1 = Buffer.from(
        JSON.stringify({
          schemaVersion: 1,
          name: repo,
          tag: 'old',
          architecture: 'amd64',
          fsLayers: [{ blobSum: layer.digest }],
          history: [{ v1Compatibility: '{}' }],
          signatures: [],
        }),
      );
      assertError(await reg.putManifest(repo, 'old', schema1, SCHEMA1_SIGNED), 400, 'MANIFEST_INVALID');
      assertError(
        await reg.putManifest(repo, 'old', schema1, 'application/vnd.docker.distribution.manifest.v1+json'),
        400,
        'MANIFEST_INVALID',
      );
      assertError(await reg.putManifest(repo, 'old', schema1, null), 400, 'MANIFEST_INVALID');
      assertError(await reg.putManifest(repo, 'old', schema1, 'application/json'), 400, 'MANIFEST_INVALID');
      // schema2 bytes announced as schema1 are refused as well
      const schema2 = manifestBytes(imageManifest({ config, layers: [layer] }));
      assertError(await reg.putManifest(repo, 'old', schema2, SCHEMA1_SIGNED), 400, 'MANIFEST_INVALID');
    });

    const invalid: [string, () => Buffer, string | null][] = [
      ['invalid JSON', () => Buffer.from('{"schemaVersion": 2,'), OCI_MANIFEST],
      ['an empty body', () => Buffer.alloc(0), OCI_MANIFEST],
      ['a JSON array', () => Buffer.from('[]'), OCI_MANIFEST],
      ['a JSON string', () => Buffer.from('"manifest"'), OCI_MANIFEST],
      [
        'no schemaVersion',
        () => manifestBytes({ mediaType: OCI_MANIFEST, config, layers: [layer] }),
        OCI_MANIFEST,
      ],
      [
        'schemaVersion 3',
        () => manifestBytes({ ...imageManifest({ config, layers: [layer] }), schemaVersion: 3 }),
        OCI_MANIFEST,
      ],
      [
        'a Content-Type that contradicts mediaType',
        () => manifestBytes(imageManifest({ config, layers: [layer] })),
        DOCKER_MANIFEST,
      ],
      [
        'an index body announced as an image manifest',
        () => manifestBytes(indexManifest([], { mediaType: OCI_MANIFEST })),
        OCI_MANIFEST,
      ],
      [
        'an unknown manifest media type',
        () => manifestBytes(imageManifest({ mediaType: 'application/vnd.x+json', config, layers: [layer] })),
        null,
      ],
      [
        'a Docker manifest without mediaType',
        () => manifestBytes(imageManifest({ mediaType: null, config, layers: [layer] })),
        DOCKER_MANIFEST,
      ],
      [
        'no config',
        () => manifestBytes({ schemaVersion: 2, mediaType: OCI_MANIFEST, layers: [layer] }),
        OCI_MANIFEST,
      ],
      [
        'layers not an array',
        () => manifestBytes({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: layer }),
        OCI_MANIFEST,
      ],
      [
        'a layer without digest',
        () =>
          manifestBytes(
            imageManifest({ config, layers: [{ ...layer, digest: undefined as unknown as string }] }),
          ),
        OCI_MANIFEST,
      ],
      [
        'a layer with a malformed digest',
        () => manifestBytes(imageManifest({ config, layers: [{ ...layer, digest: 'sha256:abc' }] })),
        OCI_MANIFEST,
      ],
      [
        'a layer with an md5 digest',
        () =>
          manifestBytes(imageManifest({ config, layers: [{ ...layer, digest: `md5:${'a'.repeat(32)}` }] })),
        OCI_MANIFEST,
      ],
      [
        'a negative size',
        () => manifestBytes(imageManifest({ config, layers: [{ ...layer, size: -1 }] })),
        OCI_MANIFEST,
      ],
      [
        'a string size',
        () =>
          manifestBytes(imageManifest({ config, layers: [{ ...layer, size: '64' as unknown as number }] })),
        OCI_MANIFEST,
      ],
      [
        'a fractional size',
        () => manifestBytes(imageManifest({ config, layers: [{ ...layer, size: 1.5 }] })),
        OCI_MANIFEST,
      ],
      [
        'a descriptor without mediaType',
        () =>
          manifestBytes(
            imageManifest({
              config: { ...config, mediaType: undefined as unknown as string },
              layers: [layer],
            }),
          ),
        OCI_MANIFEST,
      ],
      [
        'a malformed descriptor mediaType',
        () => manifestBytes(imageManifest({ config, layers: [{ ...layer, mediaType: 'not a media type' }] })),
        OCI_MANIFEST,
      ],
      [
        'non-http urls',
        () => manifestBytes(imageManifest({ config, layers: [{ ...layer, urls: ['file:///etc/passwd'] }] })),
        OCI_MANIFEST,
      ],
      [
        'non-string annotations',
        () => manifestBytes({ ...imageManifest({ config, layers: [layer] }), annotations: { a: 1 } }),
        OCI_MANIFEST,
      ],
      [
        'a malformed artifactType',
        () => manifestBytes(imageManifest({ config, layers: [layer], artifactType: 'nope' })),
        OCI_MANIFEST,
      ],
      [
        'a malformed subject',
        () =>
          manifestBytes({ ...imageManifest({ config, layers: [layer] }), subject: { digest: 'sha256:abc' } }),
        OCI_MANIFEST,
      ],
      [
        'an index without manifests',
        () => manifestBytes({ schemaVersion: 2, mediaType: OCI_INDEX }),
        OCI_INDEX,
      ],
      [
        'an index with a bad child descriptor',
        () => manifestBytes(indexManifest([{ mediaType: OCI_MANIFEST, digest: 'x', size: 1 }])),
        OCI_INDEX,
      ],
      [
        'a manifest list with a non-manifest child',
        () =>
          manifestBytes(
            indexManifest([{ ...layer, mediaType: DOCKER_LAYER }], { mediaType: DOCKER_MANIFEST_LIST }),
          ),
        DOCKER_MANIFEST_LIST,
      ],
    ];
    for (const [label, body, contentType] of invalid) {
      it(`${label} answers 400 MANIFEST_INVALID`, async () => {
        const res = await reg.putManifest(repo, 'bad', body(), contentType);
        assertError(res, 400, 'MANIFEST_INVALID');
      });
    }

    /** A valid manifest with an extra field of arrays nested so that the document is `depth` levels deep. */
    function nestedManifest(depth: number): Buffer {
      const extra = '['.repeat(depth - 1) + ']'.repeat(depth - 1);
      const bytes = manifestBytes(imageManifest({ config, layers: [layer] }));
      return Buffer.concat([bytes.subarray(0, -1), Buffer.from(`,"extra":${extra}}`)]);
    }

    it(`a manifest nested ${MAX_JSON_DEPTH} levels deep is accepted`, async () => {
      const res = await reg.putManifest(repo, 'deep', nestedManifest(MAX_JSON_DEPTH));
      assert.equal(res.statusCode, 201, res.body);
    });

    it('one level deeper answers 400 MANIFEST_INVALID', async () => {
      assertError(
        await reg.putManifest(repo, 'bad', nestedManifest(MAX_JSON_DEPTH + 1)),
        400,
        'MANIFEST_INVALID',
      );
    });

    it('a million nested arrays answer 400 MANIFEST_INVALID, alone, unclosed or inside a manifest', async () => {
      const n = 1_000_000;
      for (const body of [
        Buffer.from('['.repeat(n) + ']'.repeat(n)),
        Buffer.from('['.repeat(n)),
        nestedManifest(n),
      ]) {
        assertError(await reg.putManifest(repo, 'bad', body), 400, 'MANIFEST_INVALID');
      }
    });

    it('nothing invalid was stored', async () => {
      assertError(
        await reg.inject({ method: 'GET', url: `/v2/${repo}/manifests/bad` }),
        404,
        'MANIFEST_UNKNOWN',
      );
    });

    for (const tag of [
      '-leading-dash',
      '.leading-dot',
      'a'.repeat(129),
      'with%20space',
      'caf%C3%A9',
      'x+y',
    ]) {
      it(`an invalid tag ${tag.length > 20 ? `of ${tag.length} chars` : tag} on PUT answers 400`, async () => {
        const bytes = manifestBytes(imageManifest({ config, layers: [layer] }));
        const res = await reg.putManifest(repo, tag, bytes);
        assertError(res, 400, 'MANIFEST_INVALID');
      });
    }

    it('the longest valid tag (128 characters) is accepted', async () => {
      const tag = `_${'a'.repeat(126)}.`;
      const bytes = manifestBytes(imageManifest({ config, layers: [layer] }));
      assert.equal((await reg.putManifest(repo, tag, bytes)).statusCode, 201);
      assert.equal(
        (await reg.inject({ method: 'GET', url: `/v2/${repo}/manifests/${tag}` })).statusCode,
        200,
      );
    });

    it('an invalid tag on GET is 404 MANIFEST_UNKNOWN', async () => {
      assertError(
        await reg.inject({ method: 'GET', url: `/v2/${repo}/manifests/-bad` }),
        404,
        'MANIFEST_UNKNOWN',
      );
    });
  });

  describe('delete', () => {
    it('DELETE by tag untags: 202, the tag is gone, the manifest still GETs by digest and other tags stay', async () => {
      const image = await reg.pushImage('del/tag', 'one');
      assert.equal((await reg.putManifest('del/tag', 'two', image.bytes)).statusCode, 201);
      const res = await reg.inject({ method: 'DELETE', url: '/v2/del/tag/manifests/one' });
      assert.equal(res.statusCode, 202);
      assertApiVersion(res);
      assertError(
        await reg.inject({ method: 'GET', url: '/v2/del/tag/manifests/one' }),
        404,
        'MANIFEST_UNKNOWN',
      );
      assert.equal(
        (await reg.inject({ method: 'GET', url: `/v2/del/tag/manifests/${image.digest}` })).statusCode,
        200,
      );
      assert.equal((await reg.inject({ method: 'GET', url: '/v2/del/tag/manifests/two' })).statusCode, 200);
      assert.deepEqual(json(await reg.inject({ method: 'GET', url: '/v2/del/tag/tags/list' })).tags, ['two']);
      assertError(
        await reg.inject({ method: 'DELETE', url: '/v2/del/tag/manifests/one' }),
        404,
        'MANIFEST_UNKNOWN',
      );
    });

    it('DELETE by digest removes the manifest and every tag on it', async () => {
      const image = await reg.pushImage('del/digest', 'one');
      const other = await reg.pushImage('del/digest', 'keep');
      assert.equal((await reg.putManifest('del/digest', 'two', image.bytes)).statusCode, 201);
      const res = await reg.inject({ method: 'DELETE', url: `/v2/del/digest/manifests/${image.digest}` });
      assert.equal(res.statusCode, 202);
      for (const ref of [image.digest, 'one', 'two']) {
        assertError(
          await reg.inject({ method: 'GET', url: `/v2/del/digest/manifests/${ref}` }),
          404,
          'MANIFEST_UNKNOWN',
        );
        assertError(
          await reg.inject({ method: 'HEAD', url: `/v2/del/digest/manifests/${ref}` }),
          404,
          'MANIFEST_UNKNOWN',
        );
      }
      assertError(
        await reg.inject({ method: 'DELETE', url: `/v2/del/digest/manifests/${image.digest}` }),
        404,
        'MANIFEST_UNKNOWN',
      );
      assert.deepEqual(json(await reg.inject({ method: 'GET', url: '/v2/del/digest/tags/list' })).tags, [
        'keep',
      ]);
      assert.equal(
        (await reg.inject({ method: 'GET', url: `/v2/del/digest/manifests/${other.digest}` })).statusCode,
        200,
      );
      // Its blobs are still there, and the manifest can be pushed again.
      assert.equal(
        (await reg.inject({ method: 'HEAD', url: `/v2/del/digest/blobs/${image.config.digest}` })).statusCode,
        200,
      );
      assert.equal((await reg.putManifest('del/digest', 'back', image.bytes)).statusCode, 201);
    });
  });
});

describe('manifests with tens of thousands of layers', () => {
  // A statement takes at most 32,766 bound variables on SQLite (65,535 on PostgreSQL): a manifest with more
  // descriptors than that must not turn into one variable per descriptor.
  const LAYERS = 70_000;
  let reg: TestRegistry;
  let config: Descriptor;
  let layers: Descriptor[];
  /** The one layer not in the registry at first, and its bytes. */
  let missing: Descriptor;
  let missingBytes: Buffer;
  before(async () => {
    // 70,000 descriptors take about 9 MiB of JSON.
    reg = await createTestRegistry({ 'registry.maxManifestSize': 16 * 1024 * 1024 });
    const configBytes = Buffer.from(JSON.stringify({ os: 'linux', architecture: 'amd64' }));
    await reg.pushBlob('huge/app', configBytes);
    config = descriptorOf(configBytes, OCI_CONFIG);
    missingBytes = randomBlob(32);
    missing = descriptorOf(missingBytes, OCI_LAYER);
    const present = Array.from({ length: LAYERS - 1 }, () => descriptorOf(randomBlob(32), OCI_LAYER));
    layers = [...present.slice(0, LAYERS / 2), missing, ...present.slice(LAYERS / 2)];
    // The links are written in bulk (pushing 70,000 blobs one by one would take minutes): the manifest check only
    // reads them.
    linkBlobsInSqlite(
      reg.config.metadata.sqlite.path ?? path.join(reg.dataDir, 'berth.db'),
      'huge/app',
      present.map((l) => l.digest),
    );
  });
  after(async () => {
    await reg.dispose();
  });

  /** PUTs an image manifest of `config` and `manifestLayers` at `tag`, then GETs it back byte-exact. */
  async function pushAndPull(tag: string, manifestLayers: Descriptor[]): Promise<void> {
    const bytes = manifestBytes(imageManifest({ config, layers: manifestLayers }));
    const res = await reg.putManifest('huge/app', tag, bytes);
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.headers['docker-content-digest'], sha256(bytes));
    const get = await reg.inject({ method: 'GET', url: `/v2/huge/app/manifests/${tag}` });
    assert.equal(get.statusCode, 200);
    assert.equal(get.headers['docker-content-digest'], sha256(bytes));
    assert.ok(get.rawPayload.equals(bytes));
  }

  it('a manifest of 40,000 layers answers 201 and is pullable', async () => {
    await pushAndPull(
      'forty-thousand',
      layers.slice(0, 40_001).filter((l) => l !== missing),
    );
  });

  it('a manifest of 70,000 layers with one missing answers 400 MANIFEST_BLOB_UNKNOWN naming it', async () => {
    const bytes = manifestBytes(imageManifest({ config, layers }));
    const res = await reg.putManifest('huge/app', 'seventy-thousand', bytes);
    assertError(res, 400, 'MANIFEST_BLOB_UNKNOWN');
    const detail = json<{ errors: { detail?: { digests?: string[] } }[] }>(res).errors[0]?.detail;
    assert.deepEqual(detail?.digests, [missing.digest]);
    assertError(
      await reg.inject({ method: 'GET', url: '/v2/huge/app/manifests/seventy-thousand' }),
      404,
      'MANIFEST_UNKNOWN',
    );
  });

  it('once the missing layer is pushed, the 70,000 layers answer 201 and are pullable', async () => {
    await reg.pushBlob('huge/app', missingBytes);
    await pushAndPull('seventy-thousand', layers);
  });
});

describe('manifest deletes disabled', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await createTestRegistry({ 'registry.deletes': false });
  });
  after(async () => {
    await reg.dispose();
  });

  it('manifest, tag and blob DELETE answer 405 UNSUPPORTED and nothing goes', async () => {
    const image = await reg.pushImage('nodel/app', 'latest');
    assertError(
      await reg.inject({ method: 'DELETE', url: `/v2/nodel/app/manifests/${image.digest}` }),
      405,
      'UNSUPPORTED',
    );
    assertError(
      await reg.inject({ method: 'DELETE', url: '/v2/nodel/app/manifests/latest' }),
      405,
      'UNSUPPORTED',
    );
    assertError(
      await reg.inject({ method: 'DELETE', url: `/v2/nodel/app/blobs/${image.layers[0]?.digest}` }),
      405,
      'UNSUPPORTED',
    );
    assert.equal(
      (await reg.inject({ method: 'GET', url: '/v2/nodel/app/manifests/latest' })).statusCode,
      200,
    );
    assert.equal(
      (await reg.inject({ method: 'GET', url: `/v2/nodel/app/manifests/${image.digest}` })).statusCode,
      200,
    );
    assert.equal(
      (await reg.inject({ method: 'HEAD', url: `/v2/nodel/app/blobs/${image.layers[0]?.digest}` }))
        .statusCode,
      200,
    );
  });
});

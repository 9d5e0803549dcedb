/**
 * The HTTP registry client against real registries on loopback: CNCF Distribution 2.8 without auth and with
 * htpasswd (Basic), and a second Berth in token mode (the Docker token flow with scopes, the referrers API).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { digestOf, type Digest } from '../../src/oci/digest.ts';
import { MediaType } from '../../src/oci/media-types.ts';
import { createRegistryClient, type HttpRegistryClient } from '../../src/remote/http-registry-client.ts';
import { RemoteError } from '../../src/remote/registry-client.ts';
import { startDistribution, type RunningRegistry } from '../helpers/distribution.ts';
import { startBerth, type RunningBerth } from '../helpers/server.ts';
import { skipOrFail } from '../helpers/skip.ts';

const hasDistribution = spawnSync('docker-registry', ['--version']).error === undefined;
const distributionSkip = skipOrFail(
  hasDistribution ? false : 'docker-registry (CNCF Distribution) is not installed',
);

interface Blob {
  readonly digest: Digest;
  readonly bytes: Buffer;
}

interface Image {
  readonly config: Blob;
  readonly layer: Blob;
  readonly manifest: Buffer;
  readonly digest: Digest;
}

function blob(bytes: Buffer): Blob {
  return { digest: digestOf(bytes), bytes };
}

/** A small OCI image with a random layer (so each call gives new digests). */
function sampleImage(layerSize = 200 * 1024): Image {
  const config = blob(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', salt: randomHex() })));
  const layer = blob(randomBytes(layerSize));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: MediaType.OciConfig, digest: config.digest, size: config.bytes.length },
      layers: [
        {
          mediaType: 'application/vnd.oci.image.layer.v1.tar',
          digest: layer.digest,
          size: layer.bytes.length,
        },
      ],
    }),
  );
  return { config, layer, manifest, digest: digestOf(manifest) };
}

function randomHex(): string {
  return randomBytes(8).toString('hex');
}

/** A stream of `bytes` in 16 KiB chunks (so uploads really stream). */
function chunked(bytes: Buffer): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += 16 * 1024) chunks.push(bytes.subarray(i, i + 16 * 1024));
  return Readable.from(chunks);
}

async function collect(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function all(items: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const item of items) out.push(item);
  return out;
}

async function pushImage(
  client: HttpRegistryClient,
  repository: string,
  tag: string,
  image: Image,
): Promise<void> {
  for (const b of [image.config, image.layer]) {
    await client.putBlob(repository, b.digest, b.bytes.length, chunked(b.bytes));
  }
  assert.equal(
    await client.putManifest(repository, tag, MediaType.OciManifest, image.manifest),
    image.digest,
  );
}

async function rejectsRemote(
  promise: Promise<unknown>,
  expected: { kind: RemoteError['kind']; status?: number | number[]; code?: string },
): Promise<RemoteError> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof RemoteError, `expected a RemoteError, got ${String(caught)}`);
  assert.equal(caught.kind, expected.kind, caught.message);
  if (expected.status !== undefined) {
    const statuses = Array.isArray(expected.status) ? expected.status : [expected.status];
    assert.ok(
      statuses.includes(caught.details.status ?? -1),
      `status ${caught.details.status}: ${caught.message}`,
    );
  }
  if (expected.code !== undefined) assert.equal(caught.details.code, expected.code, caught.message);
  return caught;
}

const USER = { username: 'replicator', password: 'replicator-secret' };

for (const mode of ['no auth', 'htpasswd'] as const) {
  describe(`remote client against Distribution 2.8 (${mode})`, { skip: distributionSkip }, () => {
    let registry: RunningRegistry;
    let client: HttpRegistryClient;
    const image = sampleImage();

    before(async () => {
      registry = await startDistribution(mode === 'htpasswd' ? { htpasswd: USER } : {});
      client = createRegistryClient({ urls: [registry.url], credentials: mode === 'htpasswd' ? USER : null });
    });

    after(async () => {
      client?.close();
      await registry?.stop();
    });

    it('pings', async () => {
      await client.ping();
      if (mode === 'htpasswd') {
        const anonymous = createRegistryClient({ urls: [registry.url] });
        try {
          await rejectsRemote(anonymous.ping(), { kind: 'http', status: 401 });
        } finally {
          anonymous.close();
        }
        const wrong = createRegistryClient({
          urls: [registry.url],
          credentials: { ...USER, password: 'nope' },
        });
        try {
          await rejectsRemote(wrong.ping(), { kind: 'http', status: 401 });
        } finally {
          wrong.close();
        }
      }
    });

    it('pushes blobs and a manifest and reads them back', async () => {
      assert.equal(await client.headBlob('lib/app', image.layer.digest), null);
      assert.equal(await client.getManifest('lib/app', 'v1'), null);
      await pushImage(client, 'lib/app', 'v1', image);

      assert.equal(await client.headBlob('lib/app', image.layer.digest), image.layer.bytes.length);
      const got = await client.getBlob('lib/app', image.layer.digest);
      assert.ok(got);
      assert.equal(got.size, image.layer.bytes.length);
      assert.ok((await collect(got.body)).equals(image.layer.bytes));
      assert.equal(await client.getBlob('lib/app', digestOf(Buffer.from('absent'))), null);

      const head = await client.headManifest('lib/app', 'v1');
      assert.deepEqual(head, {
        digest: image.digest,
        mediaType: MediaType.OciManifest,
        size: image.manifest.length,
      });
      for (const reference of ['v1', image.digest]) {
        const manifest = await client.getManifest('lib/app', reference);
        assert.ok(manifest);
        assert.equal(manifest.digest, image.digest);
        assert.equal(manifest.mediaType, MediaType.OciManifest);
        assert.ok(manifest.body.equals(image.manifest));
      }
      await rejectsRemote(client.getManifest('lib/app', 'v1', undefined, { maxSize: 10 }), {
        kind: 'protocol',
      });
    });

    it('pushing a blob that exists already succeeds; a wrong digest is refused by the remote', async () => {
      await client.putBlob(
        'lib/app',
        image.config.digest,
        image.config.bytes.length,
        chunked(image.config.bytes),
      );
      const bytes = randomBytes(1000);
      await rejectsRemote(
        client.putBlob('lib/app', digestOf(Buffer.from('other')), bytes.length, chunked(bytes)),
        {
          kind: 'http',
          status: 400,
          code: 'DIGEST_INVALID',
        },
      );
    });

    it('lists tags across pages and the catalog', async () => {
      const tags = ['a1', 'a2', 'b1', 'b2', 'c1'];
      for (const tag of tags) {
        await client.putManifest('lib/tags', tag, MediaType.OciManifest, image.manifest).catch(async () => {
          // the blobs live in lib/app: mount them first
          for (const b of [image.config, image.layer])
            assert.ok(await client.mountBlob('lib/tags', b.digest, 'lib/app'));
          await client.putManifest('lib/tags', tag, MediaType.OciManifest, image.manifest);
        });
      }
      // Distribution 2.8 ignores `n` on tag lists (Link pagination of tags is tested on a stub server); the
      // order it returns is not sorted.
      const paged = await all(client.listTags('lib/tags', { pageSize: 2 }));
      assert.deepEqual([...paged].sort(), tags);
      assert.deepEqual((await all(client.listTags('lib/tags'))).sort(), tags);
      assert.deepEqual(await all(client.listTags('lib/unknown')), []);
      // The catalog does paginate at n=1, so the client followed Link headers to get every repository.
      const page = await fetch(`${registry.url}/v2/_catalog?n=1`, {
        headers:
          mode === 'htpasswd'
            ? {
                authorization: `Basic ${Buffer.from(`${USER.username}:${USER.password}`).toString('base64')}`,
              }
            : {},
      });
      assert.equal(((await page.json()) as { repositories: string[] }).repositories.length, 1);
      assert.match(page.headers.get('link') ?? '', /rel="next"/);
      const catalog = await all(client.catalog({ pageSize: 1 }));
      assert.ok(catalog.includes('lib/app') && catalog.includes('lib/tags'), catalog.join(','));
      assert.deepEqual(catalog, [...new Set(catalog)].sort());
    });

    it('mounts a blob from another repository; an unknown blob is not mounted', async () => {
      assert.equal(await client.headBlob('lib/mounted', image.layer.digest), null);
      assert.equal(await client.mountBlob('lib/mounted', image.layer.digest, 'lib/app'), true);
      assert.equal(await client.headBlob('lib/mounted', image.layer.digest), image.layer.bytes.length);
      const absent = digestOf(randomBytes(10));
      assert.equal(await client.mountBlob('lib/mounted', absent, 'lib/app'), false);
    });

    it('has no referrers API (null)', async () => {
      assert.equal(await client.listReferrers('lib/app', image.digest), null);
    });

    it('deletes a manifest by digest', async () => {
      const other = sampleImage(1000);
      await pushImage(client, 'lib/delete', 'gone', other);
      assert.equal(await client.deleteManifest('lib/delete', other.digest), true);
      assert.equal(await client.getManifest('lib/delete', other.digest), null);
      assert.equal(await client.headManifest('lib/delete', 'gone'), null);
      assert.equal(await client.deleteManifest('lib/delete', other.digest), false);
    });
  });
}

describe('remote client against Berth in token mode', () => {
  const ADMIN_PASSWORD = 'remote-admin-password';
  let berth: RunningBerth;
  let admin: HttpRegistryClient;
  let anonymous: HttpRegistryClient;
  const image = sampleImage();

  before(async () => {
    berth = await startBerth({ env: { BERTH_AUTH_MODE: 'token', BERTH_ADMIN_PASSWORD: ADMIN_PASSWORD } });
    admin = createRegistryClient({
      urls: [berth.url],
      credentials: { username: 'admin', password: ADMIN_PASSWORD },
    });
    anonymous = createRegistryClient({ urls: [berth.url] });
    const res = await fetch(`${berth.url}/api/v1/namespaces`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ name: 'pub', visibility: 'public' }),
    });
    assert.equal(res.status, 201, await res.text());
  });

  after(async () => {
    admin?.close();
    anonymous?.close();
    await berth?.dispose();
  });

  it('runs the token flow: push and pull with the scopes each operation needs', async () => {
    await admin.ping();
    await pushImage(admin, 'pub/app', 'v1', image);
    const manifest = await admin.getManifest('pub/app', image.digest);
    assert.ok(manifest?.body.equals(image.manifest));
    const got = await admin.getBlob('pub/app', image.layer.digest);
    assert.ok(got && (await collect(got.body)).equals(image.layer.bytes));
    assert.deepEqual(await all(admin.listTags('pub/app')), ['v1']);
    assert.ok((await all(admin.catalog())).includes('pub/app'));
    assert.equal(await admin.mountBlob('pub/copy', image.layer.digest, 'pub/app'), true);
  });

  it('an anonymous token pulls from a public namespace but may not push', async () => {
    await anonymous.ping();
    const head = await anonymous.headManifest('pub/app', 'v1');
    assert.equal(head?.digest, image.digest);
    const other = sampleImage(100);
    await rejectsRemote(
      anonymous.putBlob(
        'pub/app',
        other.config.digest,
        other.config.bytes.length,
        chunked(other.config.bytes),
      ),
      {
        kind: 'http',
        status: [401, 403],
      },
    );
    await rejectsRemote(anonymous.putManifest('pub/app', 'v2', MediaType.OciManifest, image.manifest), {
      kind: 'http',
      status: [401, 403],
    });
    assert.equal(await anonymous.headManifest('pub/app', 'v2'), null);
  });

  it('lists referrers through the referrers API', async () => {
    const empty = blob(Buffer.from('{}'));
    await admin.putBlob('pub/app', empty.digest, empty.bytes.length, chunked(empty.bytes));
    const sbom = blob(Buffer.from(`sbom ${randomHex()}`));
    await admin.putBlob('pub/app', sbom.digest, sbom.bytes.length, chunked(sbom.bytes));
    const referrer = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciManifest,
        artifactType: 'application/vnd.example.sbom',
        config: { mediaType: MediaType.OciEmpty, digest: empty.digest, size: 2 },
        layers: [{ mediaType: 'text/plain', digest: sbom.digest, size: sbom.bytes.length }],
        subject: { mediaType: MediaType.OciManifest, digest: image.digest, size: image.manifest.length },
      }),
    );
    const referrerDigest = await admin.putManifest(
      'pub/app',
      digestOf(referrer),
      MediaType.OciManifest,
      referrer,
    );
    const referrers = await anonymous.listReferrers('pub/app', image.digest);
    assert.ok(referrers);
    assert.deepEqual(
      referrers.map((d) => [d.digest, d.artifactType]),
      [[referrerDigest, 'application/vnd.example.sbom']],
    );
    assert.deepEqual(await anonymous.listReferrers('pub/app', referrerDigest), []);
  });

  it('deletes by digest with a delete-scoped token', async () => {
    const other = sampleImage(100);
    await pushImage(admin, 'pub/del', 'x', other);
    await rejectsRemote(anonymous.deleteManifest('pub/del', other.digest), {
      kind: 'http',
      status: [401, 403],
    });
    assert.equal(await admin.deleteManifest('pub/del', other.digest), true);
    assert.equal(await admin.headManifest('pub/del', other.digest), null);
  });
});

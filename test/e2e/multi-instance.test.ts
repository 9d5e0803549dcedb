/**
 * Several stateless instances: three Berth processes on random ports sharing PostgreSQL (a fresh schema) and an
 * S3-protocol server (the patched s3rver of `test/helpers/fake-s3.ts`, in this process). Proves that upload
 * sessions continue on any instance (also after the instance that held them was killed), that what one instance
 * writes the others read at once, that concurrent pushes of one tag leave one consistent result, and that a real
 * client can push through one instance and pull through another.
 *
 * Needs PostgreSQL at BERTH_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test); skipped with the
 * reason when it does not answer.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import pg from 'pg';
import { POSTGRES_URL, postgresSkipReason } from '../helpers/postgres.ts';
import { credentials, startFakeS3, type FakeS3 } from '../helpers/fake-s3.ts';
import {
  completeUpload,
  imageManifest,
  locationPath,
  patchChunk,
  pushBlob,
  pushManifest,
  rangeSize,
  request,
  sha256,
  slowBody,
  startUpload,
  type BlobRef,
} from '../helpers/http-client.ts';
import { containersEnv, headManifestDigest, missing, removeTree, run, tempDir } from '../helpers/clients.ts';
import { layoutDescriptor, writeImageLayout } from '../helpers/oci-layout.ts';
import { startBerth, type RunningBerth } from '../helpers/server.ts';

const skipReason = await postgresSkipReason();

describe('several instances on PostgreSQL + S3', { skip: skipReason }, () => {
  const schema = `berth_mi_${randomBytes(4).toString('hex')}`;
  const bucket = `berth-mi-${randomBytes(4).toString('hex')}`;
  let s3: FakeS3;
  let admin: pg.Pool;
  let instances: RunningBerth[] = [];
  const dataDirs: string[] = [];

  const env = (): Record<string, string> => ({
    BERTH_LOG_LEVEL: 'info',
    BERTH_LOG_ACCESS_LOG: 'false',
    BERTH_STORAGE_DRIVER: 's3',
    BERTH_STORAGE_S3_BUCKET: bucket,
    BERTH_STORAGE_S3_ENDPOINT: s3.endpoint,
    BERTH_STORAGE_S3_FORCE_PATH_STYLE: 'true',
    BERTH_STORAGE_S3_ACCESS_KEY_ID: credentials.accessKeyId,
    BERTH_STORAGE_S3_SECRET_ACCESS_KEY: credentials.secretAccessKey,
    BERTH_METADATA_DRIVER: 'postgres',
    BERTH_METADATA_POSTGRES_URL: POSTGRES_URL,
    BERTH_METADATA_POSTGRES_SCHEMA: schema,
  });

  /** A Berth instance with its own (unused) data directory, so nothing is shared but PostgreSQL and S3. */
  const startInstance = async (extra: Record<string, string> = {}): Promise<RunningBerth> => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'berth-mi-'));
    dataDirs.push(dataDir);
    const instance = await startBerth({ dataDir, env: { ...env(), ...extra } });
    instances.push(instance);
    return instance;
  };

  before(async () => {
    s3 = await startFakeS3('multipart');
    await s3.admin.send(new CreateBucketCommand({ Bucket: bucket }));
    admin = new pg.Pool({ connectionString: POSTGRES_URL, max: 2 });
    // Three instances starting at once also race their migrations.
    await Promise.all([startInstance(), startInstance(), startInstance()]);
  });

  after(async () => {
    await Promise.all(instances.map((i) => i.stop()));
    await admin.query(`drop schema if exists ${schema} cascade`);
    await admin.end();
    await s3.close();
    await Promise.all(dataDirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  const url = (i: number): string => (instances[i % instances.length] as RunningBerth).url;

  /** Pushes `data` with each PATCH chunk sent to the next instance, round-robin, and the PUT to yet another. */
  async function pushRoundRobin(
    repo: string,
    data: Buffer,
    chunkSize: number,
    first: number,
  ): Promise<BlobRef> {
    let location = await startUpload(url(first), repo);
    let turn = first + 1;
    for (let off = 0; off < data.length; off += chunkSize) {
      location = await patchChunk(url(turn++), location, data.subarray(off, off + chunkSize), off);
    }
    const digest = sha256(data);
    const res = await completeUpload(url(turn), location, digest);
    assert.equal(res.status, 201, res.body.toString());
    return { digest, size: data.length };
  }

  it('starts every instance, migrated once, ready on /readyz', async () => {
    for (const instance of instances) {
      const res = await request(instance.url, '/readyz');
      assert.equal(res.status, 200, res.body.toString());
    }
    const { rows } = await admin.query(`select count(*)::int as n from ${schema}.berth_migrations`);
    assert.ok((rows[0] as { n: number }).n >= 3);
  });

  it('pushes a multi-layer image in chunks spread over the instances and pulls it from a third', async () => {
    const layers: Buffer[] = [randomBytes(7 * 1024 * 1024 + 123), randomBytes(300_000), randomBytes(1)];
    const refs: BlobRef[] = [];
    for (const [i, layer] of layers.entries())
      refs.push(await pushRoundRobin('mi/app', layer, 1024 * 1024 + 7, i));
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux' }));
    const configRef = { digest: await pushBlob(url(1), 'mi/app', config), size: config.length };
    const manifest = imageManifest(configRef, refs);
    const digest = await pushManifest(url(2), 'mi/app', 'v1', manifest);
    for (let i = 0; i < 3; i++) {
      const m = await request(url(i), '/v2/mi/app/manifests/v1', {
        headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
      });
      assert.equal(m.status, 200);
      assert.equal(m.headers['docker-content-digest'], digest);
      assert.deepEqual(m.body, manifest);
    }
    for (const [i, layer] of layers.entries()) {
      const res = await request(url(i + 2), `/v2/mi/app/blobs/${(refs[i] as BlobRef).digest}`, {
        timeoutMs: 60_000,
      });
      assert.equal(res.status, 200);
      assert.equal(sha256(res.body), sha256(layer));
    }
  });

  it('completes an upload through another instance after the one receiving a chunk is killed', async () => {
    const data = randomBytes(3 * 1024 * 1024);
    const chunk = 1024 * 1024;
    const victim = await startInstance();
    const others = instances.filter((i) => i !== victim);
    let location = await startUpload(victim.url, 'mi/killed');
    location = await patchChunk(victim.url, location, data.subarray(0, chunk), 0);
    // The second chunk trickles into the victim, which dies half-way through it.
    const inFlight = request(victim.url, location, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${chunk}-${2 * chunk - 1}` },
      body: slowBody(data.subarray(chunk, 2 * chunk), 64 * 1024, 20),
      timeoutMs: 60_000,
    }).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 150));
    await victim.kill();
    assert.ok((await inFlight) instanceof Error, 'the request to the killed instance fails');
    instances = others;

    const status = await request(others[0]!.url, location);
    assert.equal(status.status, 204);
    assert.equal(rangeSize(status), chunk, 'only the acknowledged chunk counts');
    location = locationPath(status);
    location = await patchChunk(others[1]!.url, location, data.subarray(chunk, 2 * chunk), chunk);
    location = await patchChunk(others[0]!.url, location, data.subarray(2 * chunk), 2 * chunk);
    const done = await completeUpload(others[1]!.url, location, sha256(data));
    assert.equal(done.status, 201, done.body.toString());
    const back = await request(others[0]!.url, `/v2/mi/killed/blobs/${sha256(data)}`, {
      timeoutMs: 60_000,
    });
    assert.equal(sha256(back.body), sha256(data));
  });

  it('concurrent pushes of one tag from two instances leave one consistent result', async () => {
    const layer = randomBytes(1000);
    const layerRef = { digest: await pushBlob(url(0), 'mi/race', layer), size: layer.length };
    for (let round = 0; round < 10; round++) {
      const manifests = [0, 1].map((i) => {
        const config = Buffer.from(JSON.stringify({ round, writer: i }));
        return { config, bytes: null as Buffer | null };
      });
      for (const [i, m] of manifests.entries()) {
        const ref = { digest: await pushBlob(url(i), 'mi/race', m.config), size: m.config.length };
        m.bytes = imageManifest(ref, [layerRef]);
      }
      const digests = await Promise.all(
        manifests.map((m, i) => pushManifest(url(i), 'mi/race', 'latest', m.bytes as Buffer)),
      );
      const seen = await Promise.all(
        [0, 1].map((i) =>
          request(url(i), '/v2/mi/race/manifests/latest', {
            headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
          }),
        ),
      );
      const winner = seen[0]!.headers['docker-content-digest'];
      assert.ok(digests.includes(winner as string), `round ${round}: the tag points at one of the pushes`);
      for (const res of seen) {
        assert.equal(res.status, 200);
        assert.equal(res.headers['docker-content-digest'], winner, `round ${round}: every instance agrees`);
        assert.equal(sha256(res.body), winner, `round ${round}: the body is the manifest the tag names`);
      }
      for (const d of digests) {
        const byDigest = await request(url(1), `/v2/mi/race/manifests/${d}`, { method: 'HEAD' });
        assert.equal(byDigest.status, 200, `round ${round}: both manifests exist by digest`);
      }
    }
    const tags = JSON.parse((await request(url(0), '/v2/mi/race/tags/list')).body.toString()) as {
      tags: string[];
    };
    assert.deepEqual(tags.tags, ['latest']);
  });

  it('redirects blob GETs to presigned storage URLs when storage.s3.redirect is on', async () => {
    const redirecting = await startInstance({
      BERTH_STORAGE_S3_REDIRECT: 'true',
      BERTH_STORAGE_S3_REDIRECT_EXPIRY: '5m',
    });
    const data = randomBytes(200_000);
    const digest = await pushBlob(url(0), 'mi/redirect', data);
    const res = await request(redirecting.url, `/v2/mi/redirect/blobs/${digest}`);
    assert.equal(res.status, 307);
    assert.equal(res.headers['docker-content-digest'], digest);
    const location = res.headers.location as string;
    assert.ok(location.startsWith(s3.endpoint), location);
    const direct = await fetch(location);
    assert.equal(sha256(Buffer.from(await direct.arrayBuffer())), digest);
    const ranged = await fetch(location, { headers: { Range: 'bytes=10-19' } });
    assert.equal(ranged.status, 206);
    assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), data.subarray(10, 20));
    // HEAD is answered by the registry itself; a repository that cannot see the blob gets no redirect.
    assert.equal(
      (await request(redirecting.url, `/v2/mi/redirect/blobs/${digest}`, { method: 'HEAD' })).status,
      200,
    );
    assert.equal((await request(redirecting.url, `/v2/mi/other/blobs/${digest}`)).status, 404);
  });

  it(
    'skopeo pushes through one instance and pulls through another',
    { skip: missing('skopeo') },
    async () => {
      const a = new URL(url(0)).host;
      const b = new URL(url(1)).host;
      const containers = await containersEnv([a, b]);
      const work = await tempDir('multi-instance');
      try {
        const image = await writeImageLayout(path.join(work, 'src'), {
          tag: 'v1',
          layers: 2,
          layerSize: 256 * 1024,
        });
        const opts = { env: containers.env };
        await run(
          'skopeo',
          ['copy', '--dest-tls-verify=false', image.reference, `docker://${a}/mi/skopeo:v1`],
          opts,
        );
        assert.equal(await headManifestDigest(url(2), 'mi/skopeo', 'v1'), image.manifestDigest);
        const back = path.join(work, 'back');
        await run(
          'skopeo',
          ['copy', '--src-tls-verify=false', `docker://${b}/mi/skopeo:v1`, `oci:${back}:v1`],
          opts,
        );
        assert.equal((await layoutDescriptor(back, 'v1')).digest, image.manifestDigest);
      } finally {
        await containers.cleanup();
        await removeTree(work);
      }
    },
  );
});

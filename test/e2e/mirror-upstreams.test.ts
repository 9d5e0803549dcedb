/**
 * The pull-through cache against upstreams that need credentials, and under a burst of concurrent pulls:
 *
 * - a CNCF Distribution 2.8 with htpasswd (HTTP Basic; the credentials are in the upstream's configuration);
 * - a second Berth in token mode (the cache goes through the Docker token flow: 401 with a Bearer challenge,
 *   a token from `/auth/token` with the configured credentials, then the request with the token);
 * - 50 concurrent GETs through Berth of a 200 MiB layer it has not cached: the upstream sends the blob once
 *   (counted by a relay between Berth and the upstream) and every client gets the right bytes (hashed while
 *   streaming).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  containersEnv,
  missing,
  removeTree,
  run,
  skipIf,
  tempDir,
  type ContainersEnv,
} from '../helpers/clients.ts';
import { type CountingRelay, startCountingRelay } from '../helpers/counting-relay.ts';
import { E2E_TARGET, startDistribution, type RunningRegistry } from '../helpers/distribution.ts';
import { hashedGet, seedUpstream, startCache } from '../helpers/mirror.ts';
import { type ImageLayout } from '../helpers/oci-layout.ts';
import { startBerth, type RunningBerth } from '../helpers/server.ts';

/** Berth's pull-through cache has no counterpart in Distribution (its proxy mode caches one upstream, unprefixed). */
const NOT_ON_DISTRIBUTION =
  E2E_TARGET === 'distribution' && 'Distribution has no namespaced pull-through cache';

const DIST_USER = { username: 'puller', password: 'dist-secret-1' };
const ADMIN_PASSWORD = 'token-admin-secret-1';
const BIG_LAYER = 200 * 1024 * 1024;
const CLIENTS = 50;

/** Writes `size` random bytes to `file` and returns their digest. */
async function writeRandomFile(file: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  const handle = await open(file, 'w');
  try {
    for (let written = 0; written < size;) {
      const chunk = randomBytes(Math.min(4 * 1024 * 1024, size - written));
      hash.update(chunk);
      await handle.write(chunk);
      written += chunk.length;
    }
  } finally {
    await handle.close();
  }
  return `sha256:${hash.digest('hex')}`;
}

/** Pushes `file` as a blob of `repo` with a POST and one streamed PUT. */
async function pushBlobFile(
  registryUrl: string,
  repo: string,
  file: string,
  digest: string,
  size: number,
): Promise<void> {
  const start = await fetch(`${registryUrl}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  await start.arrayBuffer();
  assert.equal(start.status, 202);
  const location = new URL(start.headers.get('location') as string, registryUrl);
  location.searchParams.set('digest', digest);
  const status = await new Promise<number>((resolve, reject) => {
    const req = httpRequest(
      location,
      {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    createReadStream(file).pipe(req);
  });
  assert.equal(status, 201);
}

describe(
  'pull-through cache upstreams',
  { skip: skipIf(NOT_ON_DISTRIBUTION, missing('docker-registry', 'skopeo')) },
  () => {
    let work: string;
    let containers: ContainersEnv;
    let basicUpstream: RunningRegistry;
    let tokenUpstream: RunningBerth;
    let tokenRelay: CountingRelay;
    let bigUpstream: RunningRegistry;
    let bigRelay: CountingRelay;
    let cache: RunningBerth;
    let basicImage: ImageLayout;
    let tokenImage: ImageLayout;

    const pullDigest = async (reference: string, dest: string): Promise<string> => {
      await run(
        'skopeo',
        [
          'copy',
          '--src-tls-verify=false',
          `docker://${cache.host}/${reference}`,
          `oci:${path.join(work, dest)}:x`,
        ],
        { env: containers.env },
      );
      const index = JSON.parse(await readFile(path.join(work, dest, 'index.json'), 'utf8')) as {
        manifests: { digest: string }[];
      };
      return index.manifests[0]?.digest ?? '';
    };

    before(async () => {
      work = await tempDir('mirror-upstreams');
      basicUpstream = await startDistribution({ htpasswd: DIST_USER });
      tokenUpstream = await startBerth({
        env: { BERTH_AUTH_MODE: 'token', BERTH_ADMIN_PASSWORD: ADMIN_PASSWORD },
      });
      tokenRelay = await startCountingRelay(tokenUpstream.url);
      bigUpstream = await startDistribution();
      bigRelay = await startCountingRelay(bigUpstream.url);
      containers = await containersEnv([basicUpstream.host, tokenUpstream.host, bigUpstream.host]);
      basicImage = await seedUpstream({
        dir: path.join(work, 'src'),
        host: basicUpstream.host,
        repo: 'team/basic',
        tag: 'v1',
        env: containers.env,
        creds: `${DIST_USER.username}:${DIST_USER.password}`,
      });
      tokenImage = await seedUpstream({
        dir: path.join(work, 'src'),
        host: tokenUpstream.host,
        repo: 'team/token',
        tag: 'v1',
        env: containers.env,
        creds: `admin:${ADMIN_PASSWORD}`,
      });
      cache = await startCache([
        {
          name: 'dist',
          namespace: 'dist',
          urls: [basicUpstream.url],
          username: DIST_USER.username,
          password: DIST_USER.password,
        },
        {
          name: 'tok',
          namespace: 'tok',
          urls: [tokenRelay.url],
          username: 'admin',
          password: ADMIN_PASSWORD,
        },
        { name: 'big', namespace: 'big', urls: [bigRelay.url], maxConcurrentFetches: 4 },
      ]);
    });

    after(async () => {
      await cache?.dispose();
      await tokenRelay?.close();
      await bigRelay?.close();
      await tokenUpstream?.dispose();
      await basicUpstream?.stop();
      await bigUpstream?.stop();
      await containers?.cleanup();
      if (work) await removeTree(work);
    });

    it('caches from a Distribution with htpasswd, sending the configured credentials', async () => {
      // The upstream really requires them.
      const anonymous = await fetch(`${basicUpstream.url}/v2/team/basic/manifests/v1`);
      await anonymous.arrayBuffer();
      assert.equal(anonymous.status, 401);
      assert.equal(await pullDigest('dist/team/basic:v1', 'basic'), basicImage.manifestDigest);
      assert.equal(
        await pullDigest(`dist/team/basic@${basicImage.manifestDigest}`, 'basic-digest'),
        basicImage.manifestDigest,
      );
    });

    it('caches from a Berth in token mode through the Docker token flow', async () => {
      const anonymous = await fetch(`${tokenUpstream.url}/v2/team/token/manifests/v1`);
      await anonymous.arrayBuffer();
      assert.equal(anonymous.status, 401);
      assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Bearer realm=/);
      assert.equal(await pullDigest('tok/team/token:v1', 'token'), tokenImage.manifestDigest);
      const tokenRequests = tokenRelay.requests.filter((r) => r.path.startsWith('/auth/token'));
      assert.ok(tokenRequests.length >= 1, `token requests: ${JSON.stringify(tokenRelay.requests)}`);
      for (const layer of tokenImage.layers) {
        assert.equal(tokenRelay.count('GET', `/v2/team/token/blobs/${layer.digest}`), 1);
      }
    });

    it(
      `${CLIENTS} concurrent pulls of an uncached ${BIG_LAYER / 1024 / 1024} MiB layer fetch it from upstream once`,
      { timeout: 600_000 },
      async () => {
        const file = path.join(work, 'big-layer');
        const digest = await writeRandomFile(file, BIG_LAYER);
        await pushBlobFile(bigUpstream.url, 'team/big', file, digest, BIG_LAYER);
        const url = `${cache.url}/v2/big/team/big/blobs/${digest}`;
        const results = await Promise.all(Array.from({ length: CLIENTS }, () => hashedGet(url)));
        for (const [i, r] of results.entries()) {
          assert.equal(r.status, 200, `client ${i}`);
          assert.equal(r.bytes, BIG_LAYER, `client ${i}`);
          assert.equal(r.digest, digest, `client ${i}`);
        }
        assert.equal(bigRelay.count('GET', `/blobs/${digest}`), 1, JSON.stringify(bigRelay.requests));
        // Later pulls are served from storage.
        const again = await hashedGet(url);
        assert.equal(again.digest, digest);
        assert.equal(bigRelay.count('GET', `/blobs/${digest}`), 1);
      },
    );
  },
);

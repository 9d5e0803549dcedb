/**
 * The pull-through cache over HTTP: a Berth (the cache, driven with inject) in front of another Berth (the
 * upstream, on a loopback port) with a counting relay between them that can fail as upstreams do.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { after, before, describe, it } from 'node:test';
import { get as httpGet } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  createTestRegistry,
  descriptorOf,
  indexManifest,
  manifestBytes,
  OCI_INDEX,
  OCI_MANIFEST,
  sha256,
  type TestRegistry,
} from '../helpers/app.ts';
import { addNamespace, addUser, basic, bearer, getToken } from '../helpers/auth.ts';
import { type CountingRelay, startCountingRelay } from '../helpers/counting-relay.ts';
import { POSTGRES_URL, postgresSkipReason } from '../helpers/postgres.ts';

async function listen(registry: TestRegistry): Promise<string> {
  await registry.app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(registry.app.server.address() as AddressInfo).port}`;
}

describe('pull-through cache', () => {
  let upstream: TestRegistry;
  let relay: CountingRelay;
  let cache: TestRegistry;

  before(async () => {
    upstream = await createTestRegistry();
    relay = await startCountingRelay(await listen(upstream));
    cache = await createTestRegistry({
      'proxy.upstreams': [
        { name: 'up', namespace: 'cache', urls: [relay.url], recheckInterval: '1h', hosts: ['up.example'] },
      ],
    });
  });
  after(async () => {
    await cache?.dispose();
    await relay?.close();
    await upstream?.dispose();
  });

  it('serves an image by tag from the upstream, then from the cache within the interval', async () => {
    const image = await upstream.pushImage('team/app', 'v1', { layers: 2 });
    const first = await cache.inject({ method: 'GET', url: '/v2/cache/team/app/manifests/v1' });
    assert.equal(first.statusCode, 200, first.body);
    assert.equal(first.headers['docker-content-digest'], image.digest);
    assert.deepEqual(first.rawPayload, image.bytes);
    for (const [i, layer] of image.layers.entries()) {
      const blob = await cache.inject({ method: 'GET', url: `/v2/cache/team/app/blobs/${layer.digest}` });
      assert.equal(blob.statusCode, 200);
      assert.deepEqual(blob.rawPayload, image.layerBytes[i]);
    }
    const heads = relay.count('HEAD', '/manifests/v1');
    const again = await cache.inject({ method: 'GET', url: '/v2/cache/team/app/manifests/v1' });
    assert.equal(again.statusCode, 200);
    assert.equal(
      relay.count('HEAD', '/manifests/v1'),
      heads,
      'a fresh tag is served without asking upstream',
    );
    // Cached blobs are served from storage: no second upstream GET.
    const layer = image.layers[0]?.digest as string;
    const gets = relay.count('GET', `/blobs/${layer}`);
    assert.equal(gets, 1);
    const blob = await cache.inject({ method: 'GET', url: `/v2/cache/team/app/blobs/${layer}` });
    assert.equal(blob.statusCode, 200);
    assert.equal(relay.count('GET', `/blobs/${layer}`), 1);
  });

  it('counts hits, misses and upstream bytes in the metrics', async () => {
    let body = '';
    const value = (line: string): number => {
      const found = body.split('\n').find((l) => l.startsWith(line));
      return found === undefined ? 0 : Number(found.slice(line.length).trim());
    };
    // Bytes are counted when a fetch has been committed, which may end after its clients were served.
    for (let i = 0; i < 50; i++) {
      const res = await cache.inject({ method: 'GET', url: '/metrics' });
      assert.equal(res.statusCode, 200);
      body = res.body;
      if (value('berth_proxy_upstream_bytes_total{upstream="up"}') === 256) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(value('berth_proxy_requests_total{upstream="up",kind="blob",result="miss"}'), 2);
    assert.equal(value('berth_proxy_requests_total{upstream="up",kind="blob",result="hit"}'), 1);
    assert.equal(value('berth_proxy_requests_total{upstream="up",kind="manifest",result="miss"}'), 1);
    assert.equal(value('berth_proxy_requests_total{upstream="up",kind="manifest",result="hit"}'), 1);
    assert.equal(value('berth_proxy_upstream_bytes_total{upstream="up"}'), 256);
  });

  it('refuses pushes into the cached namespace with 405 UNSUPPORTED', async () => {
    const res = await cache.inject({ method: 'POST', url: '/v2/cache/team/app/blobs/uploads/' });
    assert.equal(res.statusCode, 405);
    const body = JSON.parse(res.body) as { errors: { code: string; message: string }[] };
    assert.equal(body.errors[0]?.code, 'UNSUPPORTED');
    assert.match(body.errors[0]?.message ?? '', /pull-through cache/);
    const put = await cache.putManifest('cache/team/app', 'v9', Buffer.from('{}'));
    assert.equal(put.statusCode, 405);
  });

  it('routes ?ns= to the upstream with that host and answers OCI-Namespace', async () => {
    const image = await upstream.pushImage('ns/app', 'v1');
    const res = await cache.inject({ method: 'GET', url: '/v2/ns/app/manifests/v1?ns=up.example' });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.headers['docker-content-digest'], image.digest);
    assert.equal(res.headers['oci-namespace'], 'up.example');
    // Stored under the upstream's namespace.
    const local = await cache.inject({ method: 'GET', url: '/v2/cache/ns/app/manifests/v1' });
    assert.equal(local.statusCode, 200);
    // Without ns the name is a local repository, which does not exist.
    const plain = await cache.inject({ method: 'GET', url: '/v2/ns/app/manifests/v1' });
    assert.equal(plain.statusCode, 404);
  });

  it('fetches an index by tag and its children by digest (sparse until asked)', async () => {
    const amd = await upstream.pushImage('multi/app', null);
    const arm = await upstream.pushImage('multi/app', null);
    const index = manifestBytes(
      indexManifest([
        { ...amd.descriptor, platform: { os: 'linux', architecture: 'amd64' } },
        { ...arm.descriptor, platform: { os: 'linux', architecture: 'arm64' } },
      ] as never),
    );
    const put = await upstream.putManifest('multi/app', 'latest', index, OCI_INDEX);
    assert.equal(put.statusCode, 201, put.body);
    const res = await cache.inject({ method: 'GET', url: '/v2/cache/multi/app/manifests/latest' });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.headers['docker-content-digest'], sha256(index));
    const child = await cache.inject({ method: 'GET', url: `/v2/cache/multi/app/manifests/${arm.digest}` });
    assert.equal(child.statusCode, 200);
    assert.deepEqual(child.rawPayload, arm.bytes);
    assert.equal(child.headers['content-type'], OCI_MANIFEST);
  });

  it("lists the upstream's tags, uncached ones included, paginated", async () => {
    await upstream.pushImage('team/tags', 'a');
    await upstream.pushImage('team/tags', 'c');
    await upstream.pushImage('team/tags', 'b');
    const all = await cache.inject({ method: 'GET', url: '/v2/cache/team/tags/tags/list' });
    assert.equal(all.statusCode, 200, all.body);
    assert.deepEqual((JSON.parse(all.body) as { tags: string[] }).tags, ['a', 'b', 'c']);
    const page = await cache.inject({ method: 'GET', url: '/v2/cache/team/tags/tags/list?n=1&last=a' });
    assert.deepEqual((JSON.parse(page.body) as { tags: string[] }).tags, ['b']);
    assert.match(String(page.headers.link), /last=b/);
  });

  it('answers 404 for what the upstream does not have', async () => {
    const res = await cache.inject({ method: 'GET', url: '/v2/cache/team/none/manifests/v1' });
    assert.equal(res.statusCode, 404);
    const blob = await cache.inject({
      method: 'GET',
      url: `/v2/cache/team/app/blobs/sha256:${'0'.repeat(64)}`,
    });
    assert.equal(blob.statusCode, 404);
    assert.equal((JSON.parse(blob.body) as { errors: { code: string }[] }).errors[0]?.code, 'BLOB_UNKNOWN');
  });

  it('fetches a blob once however many clients ask at the same time', async () => {
    const big = Buffer.alloc(4 * 1024 * 1024, 7);
    const digest = await upstream.pushBlob('team/big', big);
    const responses = await Promise.all(
      Array.from({ length: 20 }, () =>
        cache.inject({ method: 'GET', url: `/v2/cache/team/big/blobs/${digest}` }),
      ),
    );
    for (const res of responses) {
      assert.equal(res.statusCode, 200);
      assert.equal(res.rawPayload.length, big.length);
      assert.equal(sha256(res.rawPayload), digest);
    }
    assert.equal(relay.count('GET', `/blobs/${digest}`), 1);
  });
});

describe('pull-through cache with a failing upstream', () => {
  let upstream: TestRegistry;
  let relay: CountingRelay;
  let cache: TestRegistry;
  let cacheUrl: string;

  before(async () => {
    upstream = await createTestRegistry();
    relay = await startCountingRelay(await listen(upstream));
    cache = await createTestRegistry({
      'proxy.upstreams': [
        { name: 'up', namespace: 'hub', urls: [relay.url], recheckInterval: 0, timeout: '2s' },
      ],
    });
    cacheUrl = await listen(cache);
  });
  after(async () => {
    await cache?.dispose();
    await relay?.close();
    await upstream?.dispose();
  });

  it('re-checks the tag each time with a zero interval and follows a moved tag', async () => {
    const v1 = await upstream.pushImage('team/app', 'latest');
    const a = await cache.inject({ method: 'GET', url: '/v2/hub/team/app/manifests/latest' });
    assert.equal(a.headers['docker-content-digest'], v1.digest);
    const v2 = await upstream.pushImage('team/app', 'latest');
    const heads = relay.count('HEAD', '/manifests/latest');
    const b = await cache.inject({ method: 'GET', url: '/v2/hub/team/app/manifests/latest' });
    assert.equal(b.headers['docker-content-digest'], v2.digest);
    assert.equal(relay.count('HEAD', '/manifests/latest'), heads + 1);
  });

  it('serves the cached manifest with a Warning when the upstream is down, and 503 for what is not cached', async () => {
    const image = await upstream.pushImage('team/stale', 'v1');
    const warm = await cache.inject({ method: 'GET', url: '/v2/hub/team/stale/manifests/v1' });
    assert.equal(warm.statusCode, 200);
    const layer = image.layers[0]?.digest as string;
    assert.equal(
      (await cache.inject({ method: 'GET', url: `/v2/hub/team/stale/blobs/${layer}` })).statusCode,
      200,
    );
    relay.setMode({ kind: 'down' });
    try {
      const stale = await cache.inject({ method: 'GET', url: '/v2/hub/team/stale/manifests/v1' });
      assert.equal(stale.statusCode, 200);
      assert.equal(stale.headers['docker-content-digest'], image.digest);
      assert.match(String(stale.headers.warning), /^110 /);
      const byDigest = await cache.inject({
        method: 'GET',
        url: `/v2/hub/team/stale/manifests/${image.digest}`,
      });
      assert.equal(byDigest.statusCode, 200);
      assert.equal(byDigest.headers.warning, undefined, 'by digest needs no upstream');
      const blob = await cache.inject({ method: 'GET', url: `/v2/hub/team/stale/blobs/${layer}` });
      assert.equal(blob.statusCode, 200);
      const tags = await cache.inject({ method: 'GET', url: '/v2/hub/team/stale/tags/list' });
      assert.equal(tags.statusCode, 200);
      assert.deepEqual((JSON.parse(tags.body) as { tags: string[] }).tags, ['v1'], 'the cached tags');
      const missing = await cache.inject({ method: 'GET', url: '/v2/hub/team/other/manifests/v1' });
      assert.equal(missing.statusCode, 503);
      assert.equal(
        (JSON.parse(missing.body) as { errors: { code: string }[] }).errors[0]?.code,
        'UNAVAILABLE',
      );
      relay.setMode({ kind: 'status', status: 429, retryAfter: 42 });
      const limited = await cache.inject({ method: 'GET', url: '/v2/hub/team/other/manifests/v1' });
      assert.equal(limited.statusCode, 429);
      assert.equal(limited.headers['retry-after'], '42');
    } finally {
      relay.setMode({ kind: 'pass' });
    }
  });

  it('aborts the client connection when the upstream cuts a blob short, and stores nothing', async () => {
    const blob = Buffer.alloc(2 * 1024 * 1024, 3);
    const digest = await upstream.pushBlob('team/cut', blob);
    relay.setMode({ kind: 'cut', bytes: 1024 * 1024 });
    try {
      const outcome = await new Promise<{ status: number; received: number; complete: boolean }>(
        (resolve) => {
          httpGet(`${cacheUrl}/v2/hub/team/cut/blobs/${digest}`, (res) => {
            let received = 0;
            res.on('data', (c: Buffer) => (received += c.length));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, received, complete: res.complete }));
            res.on('error', () => resolve({ status: res.statusCode ?? 0, received, complete: false }));
            res.on('close', () => resolve({ status: res.statusCode ?? 0, received, complete: res.complete }));
          }).on('error', () => resolve({ status: 0, received: 0, complete: false }));
        },
      );
      // Cut before the response started: an error status; after: an aborted response. Never a complete 200.
      assert.ok(
        outcome.status >= 500 || !outcome.complete,
        `a cut upstream must not look like a complete blob: ${JSON.stringify(outcome)}`,
      );
      if (outcome.status === 200) assert.ok(outcome.received < blob.length);
    } finally {
      relay.setMode({ kind: 'pass' });
    }
    assert.equal(await cache.services.metadata.findBlob(digest as never), null);
    const retry = await cache.inject({ method: 'GET', url: `/v2/hub/team/cut/blobs/${digest}` });
    assert.equal(retry.statusCode, 200);
    assert.equal(sha256(retry.rawPayload), digest);
  });
});

describe('pull-through cache mirror mode and Docker Hub names', () => {
  let upstream: TestRegistry;
  let cache: TestRegistry;

  before(async () => {
    upstream = await createTestRegistry();
    const url = await listen(upstream);
    cache = await createTestRegistry({
      'proxy.upstreams': [
        { name: 'hub', namespace: 'dockerhub', kind: 'dockerhub', mirror: true, urls: [url] },
      ],
    });
  });
  after(async () => {
    await cache?.dispose();
    await upstream?.dispose();
  });

  it('serves library/<name> as dockerd mirrors ask, and <ns>/<name> as library/<name>', async () => {
    const image = await upstream.pushImage('library/alpine', '3');
    const mirror = await cache.inject({ method: 'GET', url: '/v2/library/alpine/manifests/3' });
    assert.equal(mirror.statusCode, 200, mirror.body);
    assert.equal(mirror.headers['docker-content-digest'], image.digest);
    const short = await cache.inject({ method: 'GET', url: '/v2/dockerhub/alpine/manifests/3' });
    assert.equal(short.statusCode, 200, short.body);
    assert.equal(short.headers['docker-content-digest'], image.digest);
  });

  it('keeps local repositories local, pushes included', async () => {
    const local = await cache.pushImage('library/mine', 'v1');
    const res = await cache.inject({ method: 'GET', url: '/v2/library/mine/manifests/v1' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['docker-content-digest'], local.digest);
  });
});

describe('sparse manifests', () => {
  it('are refused by default and accepted with registry.sparseManifests', async () => {
    const missing = Buffer.from('not pushed');
    const index = manifestBytes(
      indexManifest([descriptorOf(manifestBytes({ x: 1 }), OCI_MANIFEST)] as never),
    );
    const strict = await createTestRegistry();
    try {
      const res = await strict.putManifest('team/sparse', 'v1', index, OCI_INDEX);
      assert.equal(res.statusCode, 400);
      assert.match(res.body, /MANIFEST_BLOB_UNKNOWN/);
    } finally {
      await strict.dispose();
    }
    const sparse = await createTestRegistry({ 'registry.sparseManifests': true });
    try {
      const res = await sparse.putManifest('team/sparse', 'v1', index, OCI_INDEX);
      assert.equal(res.statusCode, 201, res.body);
      const image = manifestBytes({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: descriptorOf(missing, 'application/vnd.oci.image.config.v1+json'),
        layers: [],
      });
      const put = await sparse.putManifest('team/sparse', 'img', image, OCI_MANIFEST);
      assert.equal(put.statusCode, 201, put.body);
      const back = await sparse.inject({ method: 'GET', url: '/v2/team/sparse/manifests/img' });
      assert.deepEqual(back.rawPayload, image);
    } finally {
      await sparse.dispose();
    }
  });
});

const pgSkip = await postgresSkipReason();

describe('pull-through cache across instances on PostgreSQL', { skip: pgSkip }, () => {
  const schema = `berth_test_${randomBytes(6).toString('hex')}`;
  let upstream: TestRegistry;
  let relay: CountingRelay;
  let one: TestRegistry;
  let two: TestRegistry;
  let storageRoot: string;

  before(async () => {
    upstream = await createTestRegistry();
    relay = await startCountingRelay(await listen(upstream));
    storageRoot = await mkdtemp(path.join(tmpdir(), 'berth-shared-blobs-'));
    const overrides = {
      'metadata.driver': 'postgres',
      'metadata.postgres.url': POSTGRES_URL,
      'metadata.postgres.schema': schema,
      'storage.filesystem.root': storageRoot,
      'proxy.upstreams': [{ name: 'up', namespace: 'cache', urls: [relay.url] }],
    };
    one = await createTestRegistry(overrides);
    two = await createTestRegistry(overrides);
  });
  after(async () => {
    await one?.dispose();
    await two?.dispose();
    await relay?.close();
    await upstream?.dispose();
    await rm(storageRoot, { recursive: true, force: true });
    const admin = new pg.Client({ connectionString: POSTGRES_URL });
    await admin.connect();
    await admin.query(`drop schema if exists "${schema}" cascade`).finally(() => admin.end());
  });

  it('fetches a blob once when two instances are asked for it at the same time', async () => {
    const big = randomBytes(8 * 1024 * 1024);
    const digest = await upstream.pushBlob('team/shared', big);
    const responses = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        (i % 2 === 0 ? one : two).inject({ method: 'GET', url: `/v2/cache/team/shared/blobs/${digest}` }),
      ),
    );
    for (const res of responses) {
      assert.equal(res.statusCode, 200);
      assert.equal(sha256(res.rawPayload), digest);
    }
    assert.equal(relay.count('GET', `/blobs/${digest}`), 1);
  });
});

describe('pull-through cache under token auth', () => {
  let upstream: TestRegistry;
  let cache: TestRegistry;
  const DEV = basic('dev', 'dev-password-1');
  const OUTSIDER = basic('outsider', 'outsider-password-1');

  before(async () => {
    upstream = await createTestRegistry();
    const url = await listen(upstream);
    cache = await createTestRegistry({
      'auth.mode': 'token',
      'proxy.upstreams': [{ name: 'hub', namespace: 'hub', kind: 'dockerhub', mirror: true, urls: [url] }],
    });
    await addUser(cache, 'dev', 'dev-password-1');
    await addUser(cache, 'outsider', 'outsider-password-1');
    await addNamespace(cache, 'hub', 'private', [['user', 'dev', 'reader']]);
  });
  after(async () => {
    await cache?.dispose();
    await upstream?.dispose();
  });

  it('decides pulls of mirror names on the cached namespace, for tokens too', async () => {
    const image = await upstream.pushImage('library/busybox', '1');
    // What dockerd does with a mirror: a token for the name it asked for, then the request.
    const challenge = await cache.inject({ method: 'GET', url: '/v2/library/busybox/manifests/1' });
    assert.equal(challenge.statusCode, 401);
    assert.match(String(challenge.headers['www-authenticate']), /scope="repository:library\/busybox:pull"/);
    const token = await getToken(cache, DEV, ['repository:library/busybox:pull']);
    const res = await cache.inject({
      method: 'GET',
      url: '/v2/library/busybox/manifests/1',
      headers: bearer(token),
    });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.headers['docker-content-digest'], image.digest);
    // Someone without a role on `hub` gets a token without pull, and no content.
    const other = await getToken(cache, OUTSIDER, ['repository:library/busybox:pull']);
    const denied = await cache.inject({
      method: 'GET',
      url: '/v2/library/busybox/manifests/1',
      headers: bearer(other),
    });
    assert.ok(denied.statusCode === 401 || denied.statusCode === 403, `got ${denied.statusCode}`);
  });
});

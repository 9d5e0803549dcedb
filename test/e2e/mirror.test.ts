/**
 * Berth as a Docker Hub mirror for real clients: a CNCF Distribution 2.8 plays Docker Hub (it holds
 * `library/<name>`), a counting relay sits between it and Berth, and Berth caches it as the `hub` namespace of a
 * `dockerhub` upstream with `mirror: true`.
 *
 * - dockerd with `registry-mirrors` pulls a bare `<name>` (it asks the mirror for `/v2/library/<name>/...`);
 * - podman with a `registries.conf` mirror (`127.0.0.1:PORT/hub`) pulls `docker.io/library/<name>`;
 * - containerd with a `hosts.toml` mirror pulls `docker.io/library/<name>` (it sends `?ns=docker.io`);
 * - plain HTTP with `?ns=` answers `OCI-Namespace`;
 * - with the upstream stopped, pulls by tag and by digest still work and a GET carries `Warning: 110`.
 *
 * No machine here reaches the internet: had a client fallen back from the mirror to docker.io, its pull would
 * have failed. The relay's count shows the upstream was asked for each image.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import {
  containersEnv,
  getManifest,
  missing,
  missingRoot,
  removeTree,
  run,
  skipIf,
  startContainerd,
  startDockerd,
  tempDir,
  which,
  type ContainersEnv,
} from '../helpers/clients.ts';
import { type CountingRelay, startCountingRelay } from '../helpers/counting-relay.ts';
import { E2E_TARGET, startDistribution, type RunningRegistry } from '../helpers/distribution.ts';
import { seedUpstream, startCache } from '../helpers/mirror.ts';
import { randomName, type ImageLayout } from '../helpers/oci-layout.ts';
import type { RunningBerth } from '../helpers/server.ts';

/** How long the cache trusts a tag: short, so the stale test below really has to ask the stopped upstream. */
/** Berth's pull-through cache has no counterpart in Distribution (its proxy mode caches one upstream, unprefixed). */
const NOT_ON_DISTRIBUTION =
  E2E_TARGET === 'distribution' && 'Distribution has no namespaced pull-through cache';

const RECHECK_MS = 1_000;

describe(
  'pull-through cache as a Docker Hub mirror',
  { skip: skipIf(NOT_ON_DISTRIBUTION, missing('docker-registry', 'skopeo')) },
  () => {
    let upstream: RunningRegistry;
    let relay: CountingRelay;
    let cache: RunningBerth;
    let containers: ContainersEnv;
    let work: string;
    const images = new Map<string, ImageLayout>();
    /** The repository names (on the upstream: `library/<name>`) each test pulls. */
    const names = {
      docker: randomName('dockerd'),
      podman: randomName('podman'),
      containerd: randomName('ctrd'),
      ns: randomName('ns'),
    };

    /** Asserts the upstream was asked for `library/<name>`'s manifest through the relay. */
    const assertFetchedUpstream = (name: string): void => {
      assert.ok(
        relay.count('GET', `/v2/library/${name}/manifests/`) +
          relay.count('HEAD', `/v2/library/${name}/manifests/`) >
          0,
        `the upstream was asked for library/${name}: ${JSON.stringify(relay.requests.slice(-20))}`,
      );
    };

    before(async () => {
      work = await tempDir('mirror');
      upstream = await startDistribution();
      relay = await startCountingRelay(upstream.url);
      containers = await containersEnv([upstream.host]);
      for (const [key, name] of Object.entries(names)) {
        images.set(
          key,
          await seedUpstream({
            dir: path.join(work, 'src'),
            host: upstream.host,
            repo: `library/${name}`,
            tag: 'latest',
            env: containers.env,
          }),
        );
      }
      cache = await startCache([
        {
          name: 'hub',
          namespace: 'hub',
          kind: 'dockerhub',
          urls: [relay.url],
          mirror: true,
          recheckInterval: `${RECHECK_MS}ms`,
        },
      ]);
    });

    after(async () => {
      await cache?.dispose();
      await relay?.close();
      await upstream?.stop();
      await containers?.cleanup();
      if (work) await removeTree(work);
    });

    it(
      'dockerd with registry-mirrors pulls a bare name through Berth',
      { skip: skipIf(missing('dockerd', 'docker'), missingRoot('dockerd')) },
      async () => {
        const image = images.get('docker') as ImageLayout;
        const dockerd = await startDockerd(undefined, {
          registryMirrors: [cache.url],
          insecureRegistries: [cache.host],
        });
        try {
          await dockerd.docker(['pull', names.docker], { timeoutMs: 180_000 });
          const [inspected] = JSON.parse(
            (await dockerd.docker(['image', 'inspect', names.docker])).stdout,
          ) as {
            RepoDigests: string[];
            RootFS: { Layers: string[] };
          }[];
          assert.ok(inspected);
          assert.deepEqual(inspected.RepoDigests, [`${names.docker}@${image.manifestDigest}`]);
          assert.deepEqual(
            inspected.RootFS.Layers,
            image.layers.map((l) => l.diffId),
          );
        } finally {
          await dockerd.stop();
        }
        assertFetchedUpstream(names.docker);
        for (const layer of image.layers) {
          assert.equal(relay.count('GET', `/v2/library/${names.docker}/blobs/${layer.digest}`), 1);
        }
        // The cached copy is a repository of the `hub` namespace.
        const cached = await getManifest(cache.url, `hub/library/${names.docker}`, image.manifestDigest);
        assert.equal(cached.status, 200);
        assert.equal(cached.bodyDigest, image.manifestDigest);
      },
    );

    it(
      'podman with a registries.conf mirror pulls docker.io/library/<name> through the hub namespace',
      { skip: missing('podman') },
      async () => {
        const image = images.get('podman') as ImageLayout;
        const env = await containersEnv([]);
        try {
          await writeFile(
            env.registriesConf,
            [
              'unqualified-search-registries = []',
              '',
              '[[registry]]',
              'location = "docker.io"',
              '',
              '[[registry.mirror]]',
              `location = "${cache.host}/hub"`,
              'insecure = true',
              '',
            ].join('\n'),
          );
          await run('podman', ['pull', `docker.io/library/${names.podman}:latest`], {
            env: env.env,
            timeoutMs: 180_000,
          });
          const out = await run(
            'podman',
            ['image', 'inspect', '--format', '{{.Digest}}', `docker.io/library/${names.podman}:latest`],
            { env: env.env },
          );
          assert.equal(out.stdout.trim(), image.manifestDigest);
        } finally {
          await env.cleanup();
        }
        assertFetchedUpstream(names.podman);
      },
    );

    it(
      'containerd with a hosts.toml mirror pulls docker.io/library/<name> (?ns=docker.io)',
      { skip: skipIf(missing('containerd', 'ctr'), missingRoot('containerd')) },
      async () => {
        const image = images.get('containerd') as ImageLayout;
        // A cache without mirror mode: only `?ns=docker.io` can route containerd's `/v2/library/<name>/...` there.
        const nsOnly = await startCache([
          { name: 'hub', namespace: 'hub', kind: 'dockerhub', urls: [relay.url] },
        ]);
        const plain = await fetch(`${nsOnly.url}/v2/library/${names.containerd}/manifests/latest`, {
          method: 'HEAD',
        });
        assert.equal(plain.status, 404, 'without ?ns= the name is a local repository');
        const containerd = await startContainerd();
        const hostsDir = path.join(work, 'containerd-hosts');
        await mkdir(path.join(hostsDir, 'docker.io'), { recursive: true });
        await writeFile(
          path.join(hostsDir, 'docker.io', 'hosts.toml'),
          [
            'server = "https://registry-1.docker.io"',
            '',
            `[host."${nsOnly.url}"]`,
            '  capabilities = ["pull", "resolve"]',
            '',
          ].join('\n'),
        );
        try {
          await containerd.ctr(
            ['images', 'pull', '--hosts-dir', hostsDir, `docker.io/library/${names.containerd}:latest`],
            { timeoutMs: 180_000 },
          );
          const list = await containerd.ctr(['images', 'list']);
          const line = list.stdout
            .split('\n')
            .find((l) => l.startsWith(`docker.io/library/${names.containerd}:latest`));
          assert.ok(line, list.stdout);
          assert.match(line, new RegExp(image.manifestDigest));
          // Cached under the upstream's namespace; every layer came from the upstream once.
          const before = relay.requests.length;
          const cached = await getManifest(
            nsOnly.url,
            `hub/library/${names.containerd}`,
            image.manifestDigest,
          );
          assert.equal(cached.status, 200);
          assert.equal(cached.bodyDigest, image.manifestDigest);
          assert.equal(relay.requests.length, before, 'served from the cache');
        } finally {
          await containerd.stop();
          await nsOnly.dispose();
        }
        assertFetchedUpstream(names.containerd);
        for (const layer of image.layers) {
          assert.equal(relay.count('GET', `/v2/library/${names.containerd}/blobs/${layer.digest}`), 1);
        }
      },
    );

    it('?ns= names the upstream by host and the answer carries OCI-Namespace', async () => {
      const image = images.get('ns') as ImageLayout;
      for (const host of ['docker.io', 'registry-1.docker.io']) {
        const res = await fetch(`${cache.url}/v2/library/${names.ns}/manifests/latest?ns=${host}`, {
          headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
        });
        const body = Buffer.from(await res.arrayBuffer());
        assert.equal(res.status, 200, body.toString());
        assert.equal(res.headers.get('oci-namespace'), host);
        assert.equal(res.headers.get('docker-content-digest'), image.manifestDigest);
        assert.deepEqual(body, image.manifestBytes);
      }
      // A one-component name is read as Docker Hub does: `<name>` is `library/<name>`.
      const short = await fetch(
        `${cache.url}/v2/${names.ns}/manifests/${image.manifestDigest}?ns=docker.io`,
        {
          headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
        },
      );
      await short.arrayBuffer();
      assert.equal(short.status, 200);
      const layer = image.layers[0]!;
      const blob = await fetch(`${cache.url}/v2/library/${names.ns}/blobs/${layer.digest}?ns=docker.io`);
      assert.equal(blob.status, 200);
      assert.equal(Buffer.from(await blob.arrayBuffer()).length, layer.size);
      // A host no upstream has: the name is a local repository, which does not exist.
      const unknown = await fetch(`${cache.url}/v2/library/${names.ns}/manifests/latest?ns=quay.io`, {
        method: 'HEAD',
      });
      // Mirror mode still serves it (reads of names that are not local go to the mirror upstream), without
      // claiming the unknown host as its namespace.
      assert.equal(unknown.status, 200);
      assert.equal(unknown.headers.get('oci-namespace'), null);
      const pushed = await fetch(`${cache.url}/v2/library/${names.ns}/blobs/uploads/?ns=docker.io`, {
        method: 'POST',
      });
      const body = (await pushed.json()) as { errors: { code: string }[] };
      assert.equal(pushed.status, 405, 'a push never lands in a cached namespace');
      assert.equal(body.errors[0]?.code, 'UNSUPPORTED');
    });

    it(
      'with the upstream stopped, pulls by tag and by digest work and a GET carries Warning: 110',
      { skip: missing('skopeo') },
      async () => {
        // A first pull through the cache (every blob), then the upstream goes away.
        const image = await seedUpstream({
          dir: path.join(work, 'src'),
          host: upstream.host,
          repo: 'library/stale',
          tag: 'v1',
          env: containers.env,
        });
        const ref = `docker://${cache.host}/hub/library/stale`;
        const copy = async (source: string, dest: string): Promise<void> => {
          await run('skopeo', ['copy', '--src-tls-verify=false', source, `oci:${path.join(work, dest)}:x`], {
            env: containers.env,
          });
        };
        await copy(`${ref}:v1`, 'stale-first');
        await upstream.stop();
        const fetchesBefore = relay.count('GET', '/blobs/');
        const asked = (): number =>
          relay.count('HEAD', '/v2/library/stale/manifests/v1') +
          relay.count('GET', '/v2/library/stale/manifests/v1');
        const askedBefore = asked();
        await delay(RECHECK_MS + 200); // the tag is due for a re-check now

        await copy(`${ref}:v1`, 'stale-by-tag');
        await copy(`${ref}@${image.manifestDigest}`, 'stale-by-digest');
        if (which('podman')) {
          await run('podman', ['pull', '--tls-verify=false', `${cache.host}/hub/library/stale:v1`], {
            env: containers.env,
          });
        }
        const res = await fetch(`${cache.url}/v2/hub/library/stale/manifests/v1`, {
          headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
        });
        await res.arrayBuffer();
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('docker-content-digest'), image.manifestDigest);
        assert.match(res.headers.get('warning') ?? '', /^110 /);
        // The relay was asked (and failed): the manifest came from the cache, no blob came from upstream.
        assert.equal(relay.count('GET', '/blobs/'), fetchesBefore);
        assert.ok(asked() > askedBefore, 'the stopped upstream was asked about the tag');
        // What was never cached cannot be served: 503 (or 429), not 404.
        const missingTag = await fetch(`${cache.url}/v2/hub/library/stale/manifests/never`);
        await missingTag.arrayBuffer();
        assert.ok([503, 429].includes(missingTag.status), `status ${missingTag.status}`);
      },
    );
  },
);

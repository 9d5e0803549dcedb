/**
 * The Docker engine (a private dockerd 20.10) against the registry: pull an OCI image and a two-platform index,
 * tag + push (dockerd converts to Docker schema 2 and mounts layers across repositories), push an imported
 * image (real layer uploads), `docker rmi` + pull back comparing RepoDigests with the registry's
 * Docker-Content-Digest, and `docker search HOST/TERM` (/v1/search).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  blobDigest,
  containersEnv,
  getManifest,
  headManifestDigest,
  missing,
  missingRoot,
  removeTree,
  run,
  skipIf,
  startDockerd,
  tempDir,
  type ContainersEnv,
  type RunResult,
  type RunningDockerd,
  seedImageAndIndex,
} from '../helpers/clients.ts';
import { lacksOnTarget, startTarget, type RunningRegistry } from '../helpers/distribution.ts';
import { type ImageLayout, type IndexLayout } from '../helpers/oci-layout.ts';

interface DockerImage {
  Id: string;
  RepoDigests: string[];
  Architecture: string;
  RootFS: { Layers: string[] };
}

describe('docker', { skip: skipIf(missing('dockerd', 'docker', 'skopeo'), missingRoot('dockerd')) }, () => {
  let registry: RunningRegistry;
  let containers: ContainersEnv;
  let dockerd: RunningDockerd;
  let work: string;
  let image: ImageLayout;
  let index: IndexLayout;

  const ref = (name: string): string => `${registry.host}/${name}`;
  const docker = (args: string[]): Promise<RunResult> => dockerd.docker(args);
  const inspect = async (name: string): Promise<DockerImage> => {
    const [first] = JSON.parse((await docker(['image', 'inspect', name])).stdout) as DockerImage[];
    assert.ok(first, `docker image inspect ${name}`);
    return first;
  };
  /** `docker push` prints `TAG: digest: sha256:... size: N`. */
  const pushedDigest = (out: RunResult): string => {
    const m = /digest: (sha256:[0-9a-f]{64})/.exec(out.stdout);
    assert.ok(m, `digest in docker push output:\n${out.stdout}`);
    return m[1] as string;
  };
  /** Removes every local image, so the next pull downloads everything. */
  const removeAllImages = async (): Promise<void> => {
    const ids = (await docker(['images', '--quiet', '--no-trunc'])).stdout.split('\n').filter(Boolean);
    if (ids.length) await docker(['rmi', '--force', ...new Set(ids)]);
    assert.equal((await docker(['images', '--quiet'])).stdout.trim(), '');
  };

  before(async () => {
    registry = await startTarget();
    containers = await containersEnv([registry.host]);
    work = await tempDir('docker-test');
    dockerd = await startDockerd();
    ({ image, index } = await seedImageAndIndex(
      path.join(work, 'src'),
      registry.host,
      'e2e/docker/base',
      containers.env,
    ));
  });

  after(async () => {
    await dockerd?.stop();
    await registry?.stop();
    await containers?.cleanup();
    if (work) await removeTree(work);
  });

  it('pulls an OCI image: the RepoDigest is the registry digest', async () => {
    await docker(['pull', ref('e2e/docker/base:v1')]);
    const pulled = await inspect(ref('e2e/docker/base:v1'));
    assert.equal(await headManifestDigest(registry.url, 'e2e/docker/base', 'v1'), image.manifestDigest);
    assert.deepEqual(pulled.RepoDigests, [`${ref('e2e/docker/base')}@${image.manifestDigest}`]);
    assert.equal(pulled.Id, image.configDigest);
    assert.deepEqual(
      pulled.RootFS.Layers,
      image.layers.map((l) => l.diffId),
    );
  });

  it('pulls the amd64 image of a two-platform index', async () => {
    await docker(['pull', '--platform', 'linux/amd64', ref('e2e/docker/base:multi')]);
    const pulled = await inspect(ref('e2e/docker/base:multi'));
    const amd64 = index.children.find((c) => c.platform.architecture === 'amd64');
    assert.ok(amd64);
    assert.ok(
      pulled.RepoDigests.includes(`${ref('e2e/docker/base')}@${index.indexDigest}`),
      pulled.RepoDigests.join(),
    );
    assert.equal(pulled.Architecture, 'amd64');
    assert.equal(pulled.Id, amd64.configDigest);
    assert.deepEqual(
      pulled.RootFS.Layers,
      amd64.layers.map((l) => l.diffId),
    );
  });

  it('tags and pushes under a new repository, then rmi + pull back', async () => {
    await docker(['tag', ref('e2e/docker/base:v1'), ref('e2e/docker/pushed:v1')]);
    const digest = pushedDigest(await docker(['push', ref('e2e/docker/pushed:v1')]));

    const got = await getManifest(registry.url, 'e2e/docker/pushed', 'v1');
    assert.equal(got.status, 200);
    assert.equal(got.digest, digest, "docker's digest is the registry's Docker-Content-Digest");
    assert.equal(got.bodyDigest, digest);
    const manifest = got.json as { layers: { digest: string }[] };
    assert.deepEqual(
      manifest.layers.map((l) => l.digest),
      image.layers.map((l) => l.digest),
      'layers were mounted across repositories, not recompressed',
    );

    await removeAllImages();
    await docker(['pull', ref('e2e/docker/pushed:v1')]);
    const back = await inspect(ref('e2e/docker/pushed:v1'));
    assert.deepEqual(back.RepoDigests, [`${ref('e2e/docker/pushed')}@${digest}`]);
    assert.equal(await headManifestDigest(registry.url, 'e2e/docker/pushed', 'v1'), digest);
    assert.deepEqual(
      back.RootFS.Layers,
      image.layers.map((l) => l.diffId),
    );
  });

  it('pushes an imported image (new layer upload) and pulls it back', async () => {
    const dir = path.join(work, 'rootfs');
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'random.bin'), randomBytes(1024 * 1024));
    const tarball = path.join(work, 'rootfs.tar.gz');
    await run('tar', ['-C', dir, '-czf', tarball, 'random.bin']);
    await docker(['import', tarball, ref('e2e/docker/imported:v1')]);
    const local = await inspect(ref('e2e/docker/imported:v1'));

    const digest = pushedDigest(await docker(['push', ref('e2e/docker/imported:v1')]));
    const got = await getManifest(registry.url, 'e2e/docker/imported', 'v1');
    assert.equal(got.digest, digest);
    assert.equal(got.contentType, 'application/vnd.docker.distribution.manifest.v2+json');
    const manifest = got.json as { config: { digest: string }; layers: { digest: string }[] };
    assert.equal(manifest.config.digest, local.Id);
    for (const d of [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) {
      assert.equal(await blobDigest(registry.url, 'e2e/docker/imported', d), d);
    }

    await removeAllImages();
    await docker(['pull', ref('e2e/docker/imported:v1')]);
    const back = await inspect(ref('e2e/docker/imported:v1'));
    assert.deepEqual(back.RepoDigests, [`${ref('e2e/docker/imported')}@${digest}`]);
    assert.equal(back.Id, local.Id);
    assert.deepEqual(back.RootFS.Layers, local.RootFS.Layers);
  });

  it('search HOST/TERM lists the repository', { skip: lacksOnTarget('v1-search') }, async () => {
    const out = await docker(['search', '--no-trunc', '--format', '{{.Name}}', `${registry.host}/docker`]);
    const names = out.stdout.split('\n').filter(Boolean);
    assert.ok(
      names.some((n) => n === 'e2e/docker/base' || n === ref('e2e/docker/base')),
      `docker search results: ${names.join(', ')}`,
    );
  });
});

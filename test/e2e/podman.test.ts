/**
 * podman against the registry: pull, tag + push under a new repository (OCI and Docker schema 2), pull back,
 * `podman search` (the /v1/search endpoint, or podman's /v2/_catalog fallback), and manifest lists pushed
 * with `podman manifest push --all`.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  containersEnv,
  getManifest,
  headManifestDigest,
  missing,
  removeTree,
  run,
  tempDir,
  type ContainersEnv,
  type RunResult,
} from '../helpers/clients.ts';
import { startTarget, type RunningRegistry } from '../helpers/distribution.ts';
import {
  writeImageLayout,
  writeIndexLayout,
  type ImageLayout,
  type IndexLayout,
} from '../helpers/oci-layout.ts';

interface PodmanImage {
  Digest: string;
  RepoDigests: string[];
  Architecture: string;
  RootFS: { Layers: string[] };
}

describe('podman', { skip: missing('podman', 'skopeo') }, () => {
  let registry: RunningRegistry;
  let containers: ContainersEnv;
  let work: string;
  let image: ImageLayout;
  let index: IndexLayout;

  const podman = (args: string[]): Promise<RunResult> => run('podman', args, { env: containers.env });
  const ref = (name: string): string => `${registry.host}/${name}`;
  const inspect = async (name: string): Promise<PodmanImage> => {
    const out = await podman(['image', 'inspect', name]);
    const [first] = JSON.parse(out.stdout) as PodmanImage[];
    assert.ok(first, `podman image inspect ${name}`);
    return first;
  };

  before(async () => {
    registry = await startTarget();
    containers = await containersEnv([registry.host]);
    work = await tempDir('podman');
    const src = path.join(work, 'src');
    image = await writeImageLayout(src, { tag: 'v1', layers: 2, layerSize: 512 * 1024 });
    index = await writeIndexLayout(src, { tag: 'multi', layers: 1, layerSize: 256 * 1024 });
    const seed = (layoutRef: string, dest: string, all = false): Promise<RunResult> =>
      run(
        'skopeo',
        ['copy', ...(all ? ['--all'] : []), '--dest-tls-verify=false', layoutRef, `docker://${ref(dest)}`],
        { env: containers.env },
      );
    await seed(image.reference, 'e2e/podman/base:v1');
    await seed(index.reference, 'e2e/podman/base:multi', true);
  });

  after(async () => {
    await registry?.stop();
    await containers?.cleanup();
    if (work) await removeTree(work);
  });

  it('pulls an image with the digest the registry reports', async () => {
    await podman(['pull', '--tls-verify=false', ref('e2e/podman/base:v1')]);
    const pulled = await inspect(ref('e2e/podman/base:v1'));
    assert.equal(pulled.Digest, image.manifestDigest);
    assert.ok(pulled.RepoDigests.includes(`${ref('e2e/podman/base')}@${image.manifestDigest}`));
    assert.deepEqual(
      pulled.RootFS.Layers,
      image.layers.map((l) => l.diffId),
    );
  });

  it('pushes a pulled image under a new repository and pulls it back', async () => {
    await podman(['tag', ref('e2e/podman/base:v1'), ref('e2e/podman/pushed:v2')]);
    const digestFile = path.join(work, 'pushed.digest');
    await podman(['push', '--tls-verify=false', '--digestfile', digestFile, ref('e2e/podman/pushed:v2')]);
    const pushedDigest = (await readFile(digestFile, 'utf8')).trim();
    assert.equal(await headManifestDigest(registry.url, 'e2e/podman/pushed', 'v2'), pushedDigest);

    // Empty the local store so the pull really downloads everything again.
    await podman(['rmi', '--all', '--force']);
    await podman(['pull', '--tls-verify=false', ref('e2e/podman/pushed:v2')]);
    const back = await inspect(ref('e2e/podman/pushed:v2'));
    assert.equal(back.Digest, pushedDigest);
    assert.deepEqual(back.RepoDigests, [`${ref('e2e/podman/pushed')}@${pushedDigest}`]);
    assert.deepEqual(
      back.RootFS.Layers,
      image.layers.map((l) => l.diffId),
      'same layer contents after the round trip',
    );
  });

  it('pushes as Docker schema 2 (--format v2s2) and pulls it back', async () => {
    await podman(['pull', '--tls-verify=false', ref('e2e/podman/base:v1')]);
    await podman(['tag', ref('e2e/podman/base:v1'), ref('e2e/podman/docker-format:v1')]);
    const digestFile = path.join(work, 'v2s2.digest');
    await podman([
      'push',
      '--tls-verify=false',
      '--format',
      'v2s2',
      '--digestfile',
      digestFile,
      ref('e2e/podman/docker-format:v1'),
    ]);
    const pushedDigest = (await readFile(digestFile, 'utf8')).trim();
    const got = await getManifest(registry.url, 'e2e/podman/docker-format', 'v1');
    assert.equal(got.status, 200);
    assert.equal(got.contentType, 'application/vnd.docker.distribution.manifest.v2+json');
    assert.equal(got.digest, pushedDigest);
    assert.equal(got.bodyDigest, pushedDigest);

    await podman(['rmi', '--all', '--force']);
    await podman(['pull', '--tls-verify=false', ref('e2e/podman/docker-format:v1')]);
    const back = await inspect(ref('e2e/podman/docker-format:v1'));
    assert.equal(back.Digest, pushedDigest);
    assert.deepEqual(back.RepoDigests, [`${ref('e2e/podman/docker-format')}@${pushedDigest}`]);
    assert.deepEqual(
      back.RootFS.Layers,
      image.layers.map((l) => l.diffId),
    );
  });

  it('search finds the repository', async () => {
    const out = await podman(['search', '--tls-verify=false', '--format', 'json', `${registry.host}/podman`]);
    const results = JSON.parse(out.stdout) as { Index: string; Name: string }[];
    const names = results.map((r) => r.Name);
    assert.ok(names.includes(ref('e2e/podman/base')), `search results: ${names.join(', ')}`);
    assert.ok(
      results.every((r) => r.Index === registry.host),
      'results come from this registry',
    );

    const tags = await podman([
      'search',
      '--tls-verify=false',
      '--list-tags',
      '--format',
      'json',
      ref('e2e/podman/base'),
    ]);
    const listed = JSON.parse(tags.stdout) as { Name: string; Tags: string[] }[];
    assert.deepEqual([...(listed[0]?.Tags ?? [])].sort(), ['multi', 'v1']);
  });

  it('manifest create + add + push --all pushes an index with both platforms', async () => {
    const list = ref('e2e/podman/list:v1');
    const [amd64, arm64] = index.children;
    assert.ok(amd64 && arm64);
    await podman(['manifest', 'create', list]);
    await podman(['manifest', 'add', '--tls-verify=false', list, `docker://${ref('e2e/podman/base:v1')}`]);
    await podman([
      'manifest',
      'add',
      '--tls-verify=false',
      list,
      `docker://${ref(`e2e/podman/base@${arm64.manifestDigest}`)}`,
    ]);
    const digestFile = path.join(work, 'list.digest');
    await podman([
      'manifest',
      'push',
      '--all',
      '--tls-verify=false',
      '--digestfile',
      digestFile,
      list,
      `docker://${list}`,
    ]);
    const listDigest = (await readFile(digestFile, 'utf8')).trim();

    const got = await getManifest(registry.url, 'e2e/podman/list', 'v1');
    assert.equal(got.status, 200);
    assert.equal(got.digest, listDigest);
    assert.equal(got.bodyDigest, listDigest);
    assert.match(
      got.contentType ?? '',
      /^application\/(vnd\.oci\.image\.index\.v1\+json|vnd\.docker\.distribution\.manifest\.list\.v2\+json)$/,
    );
    const body = got.json as { manifests: { digest: string; platform: { architecture: string } }[] };
    assert.deepEqual(
      body.manifests.map((m) => [m.digest, m.platform.architecture]),
      [
        [image.manifestDigest, 'amd64'],
        [arm64.manifestDigest, 'arm64'],
      ],
    );
    for (const m of body.manifests) {
      const child = await getManifest(registry.url, 'e2e/podman/list', m.digest);
      assert.equal(child.status, 200, `--all pushed ${m.platform.architecture} into the list's repository`);
      assert.equal(child.bodyDigest, m.digest);
    }

    // Pull the arm64 image back through the list (the local list goes first: it holds the name).
    await podman(['manifest', 'rm', list]);
    await podman(['rmi', '--all', '--force']);
    await podman(['pull', '--tls-verify=false', '--platform', 'linux/arm64', list]);
    const back = await inspect(list);
    // Pulled through a list, podman records the list's digest as the image digest, and both as repo digests.
    assert.equal(back.Digest, listDigest);
    assert.deepEqual(
      [...back.RepoDigests].sort(),
      [`${ref('e2e/podman/list')}@${arm64.manifestDigest}`, `${ref('e2e/podman/list')}@${listDigest}`].sort(),
    );
    assert.equal(back.Architecture, 'arm64');
    assert.deepEqual(
      back.RootFS.Layers,
      arm64.layers.map((l) => l.diffId),
    );
  });
});

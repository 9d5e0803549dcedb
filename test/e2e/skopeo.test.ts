/**
 * skopeo (containers/image) against the registry: push OCI layouts, pull them back byte-identical, multi-platform
 * indexes with `--all`, an artifact with a `subject` (and the referrers API), inspect, list-tags and delete.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
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
import { lacksOnTarget, startTarget, type RunningRegistry } from '../helpers/distribution.ts';
import {
  layoutDescriptor,
  readBlob,
  writeArtifactLayout,
  writeImageLayout,
  writeIndexLayout,
  type ArtifactLayout,
  type ImageLayout,
} from '../helpers/oci-layout.ts';

const SBOM_TYPE = 'application/vnd.example.sbom.v1';

interface OciManifest {
  mediaType?: string;
  artifactType?: string;
  config: { digest: string; mediaType: string };
  layers: { digest: string; mediaType: string; size: number }[];
  subject?: { digest: string };
}
interface OciIndex {
  mediaType?: string;
  manifests: {
    digest: string;
    mediaType: string;
    artifactType?: string;
    platform?: { architecture: string };
  }[];
}

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Reads a manifest from a layout and checks that every blob it names is there with the right digest. */
async function verifyLayoutImage(dir: string, manifestDigest: string): Promise<OciManifest> {
  const bytes = await readBlob(dir, manifestDigest);
  assert.equal(sha256(bytes), manifestDigest, 'manifest blob in the layout matches its digest');
  const manifest = JSON.parse(bytes.toString()) as OciManifest;
  for (const d of [manifest.config, ...manifest.layers]) {
    assert.equal(sha256(await readBlob(dir, d.digest)), d.digest, `blob ${d.digest} pulled back intact`);
  }
  return manifest;
}

describe('skopeo', { skip: missing('skopeo') }, () => {
  let registry: RunningRegistry;
  let containers: ContainersEnv;
  let work: string;
  let image: ImageLayout;
  let artifact: ArtifactLayout | undefined;

  const skopeo = (args: string[]): Promise<RunResult> => run('skopeo', args, { env: containers.env });
  const docker = (ref: string): string => `docker://${registry.host}/${ref}`;

  before(async () => {
    registry = await startTarget();
    containers = await containersEnv([registry.host]);
    work = await tempDir('skopeo');
    image = await writeImageLayout(path.join(work, 'src'), { tag: 'v1', layers: 3, layerSize: 512 * 1024 });
  });

  after(async () => {
    await registry?.stop();
    await containers?.cleanup();
    if (work) await removeTree(work);
  });

  it('copies an OCI layout to the registry and back with identical digests', async () => {
    await skopeo(['copy', '--dest-tls-verify=false', image.reference, docker('e2e/skopeo/image:v1')]);

    assert.equal(await headManifestDigest(registry.url, 'e2e/skopeo/image', 'v1'), image.manifestDigest);
    const got = await getManifest(registry.url, 'e2e/skopeo/image', image.manifestDigest);
    assert.equal(got.status, 200);
    assert.equal(got.contentType, 'application/vnd.oci.image.manifest.v1+json');
    assert.deepEqual(got.bytes, image.manifestBytes, 'the registry stores the exact manifest bytes');

    const back = path.join(work, 'back-image');
    await skopeo(['copy', '--src-tls-verify=false', docker('e2e/skopeo/image:v1'), `oci:${back}:v1`]);
    const desc = await layoutDescriptor(back, 'v1');
    assert.equal(desc.digest, image.manifestDigest);
    const manifest = await verifyLayoutImage(back, desc.digest);
    assert.equal(manifest.config.digest, image.configDigest);
    assert.deepEqual(
      manifest.layers.map((l) => l.digest),
      image.layers.map((l) => l.digest),
    );
  });

  it('copies a two-platform index with --all and pulls both children back', async () => {
    const index = await writeIndexLayout(path.join(work, 'src'), {
      tag: 'multi',
      layers: 2,
      layerSize: 256 * 1024,
    });
    await skopeo([
      'copy',
      '--all',
      '--dest-tls-verify=false',
      index.reference,
      docker('e2e/skopeo/multi:latest'),
    ]);

    const got = await getManifest(registry.url, 'e2e/skopeo/multi', 'latest');
    assert.equal(got.status, 200);
    assert.equal(got.digest, index.indexDigest);
    assert.equal(got.contentType, 'application/vnd.oci.image.index.v1+json');
    for (const child of index.children) {
      const c = await getManifest(registry.url, 'e2e/skopeo/multi', child.manifestDigest);
      assert.equal(c.status, 200, `child ${child.platform.architecture} is in the registry`);
      assert.equal(c.bodyDigest, child.manifestDigest);
    }

    const back = path.join(work, 'back-multi');
    await skopeo([
      'copy',
      '--all',
      '--src-tls-verify=false',
      docker('e2e/skopeo/multi:latest'),
      `oci:${back}:multi`,
    ]);
    const desc = await layoutDescriptor(back, 'multi');
    assert.equal(desc.digest, index.indexDigest);
    const pulled = JSON.parse((await readBlob(back, desc.digest)).toString()) as OciIndex;
    assert.deepEqual(
      pulled.manifests.map((m) => [m.digest, m.platform?.architecture]),
      index.children.map((c) => [c.manifestDigest, c.platform.architecture]),
    );
    for (const child of index.children) {
      const manifest = await verifyLayoutImage(back, child.manifestDigest);
      assert.deepEqual(
        manifest.layers.map((l) => l.digest),
        child.layers.map((l) => l.digest),
        `${child.platform.architecture} layers pulled back`,
      );
    }
  });

  it('copies an artifact with a subject, by tag and by digest', async () => {
    await skopeo(['copy', '--dest-tls-verify=false', image.reference, docker('e2e/skopeo/with-sbom:v1')]);
    const written = await writeArtifactLayout(path.join(work, 'sbom'), {
      tag: 'sbom',
      artifactType: SBOM_TYPE,
      subject: image.descriptor,
    });
    // By tag into the subject's repository, by digest (no tag) into another one.
    await skopeo(['copy', '--dest-tls-verify=false', written.reference, docker('e2e/skopeo/with-sbom:sbom')]);
    await skopeo([
      'copy',
      '--dest-tls-verify=false',
      written.reference,
      docker(`e2e/skopeo/sbom-by-digest@${written.manifestDigest}`),
    ]);

    for (const [repo, ref] of [
      ['e2e/skopeo/with-sbom', 'sbom'],
      ['e2e/skopeo/with-sbom', written.manifestDigest],
      ['e2e/skopeo/sbom-by-digest', written.manifestDigest],
    ] as const) {
      const got = await getManifest(registry.url, repo, ref);
      assert.equal(got.status, 200, `${repo}:${ref}`);
      assert.equal(got.digest, written.manifestDigest);
      assert.deepEqual(got.bytes, written.manifestBytes);
      const manifest = got.json as OciManifest;
      assert.equal(manifest.artifactType, SBOM_TYPE);
      assert.equal(manifest.subject?.digest, image.manifestDigest);
    }

    // And back: skopeo copies the artifact unchanged (it cannot `inspect` one: no image config).
    const back = path.join(work, 'back-sbom');
    await skopeo(['copy', '--src-tls-verify=false', docker('e2e/skopeo/with-sbom:sbom'), `oci:${back}:sbom`]);
    assert.equal((await layoutDescriptor(back, 'sbom')).digest, written.manifestDigest);
    const manifest = await verifyLayoutImage(back, written.manifestDigest);
    assert.equal(manifest.layers[0]?.digest, written.layer.digest);
    artifact = written;
  });

  it('lists the artifact as a referrer of its subject', { skip: lacksOnTarget('referrers') }, async () => {
    assert.ok(artifact, 'the artifact test ran first');
    const url = `${registry.url}/v2/e2e/skopeo/with-sbom/referrers/${image.manifestDigest}`;
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/vnd\.oci\.image\.index\.v1\+json/);
    const index = (await res.json()) as OciIndex;
    const found = index.manifests.find((m) => m.digest === artifact!.manifestDigest);
    assert.ok(found, `artifact ${artifact.manifestDigest} listed in ${JSON.stringify(index)}`);
    assert.equal(found.artifactType, SBOM_TYPE);
    assert.equal(found.mediaType, 'application/vnd.oci.image.manifest.v1+json');

    const filtered = await fetch(`${url}?artifactType=${encodeURIComponent(SBOM_TYPE)}`);
    assert.equal(filtered.status, 200);
    const filteredIndex = (await filtered.json()) as OciIndex;
    assert.ok(filteredIndex.manifests.some((m) => m.digest === artifact!.manifestDigest));
    if (filtered.headers.get('oci-filters-applied') === 'artifactType') {
      assert.ok(filteredIndex.manifests.every((m) => m.artifactType === SBOM_TYPE));
    }
  });

  it('inspect reports the digest and layers the registry holds', async () => {
    const out = await skopeo(['inspect', '--tls-verify=false', docker('e2e/skopeo/image:v1')]);
    const info = JSON.parse(out.stdout) as {
      Digest: string;
      Layers: string[];
      Architecture: string;
      Os: string;
    };
    assert.equal(info.Digest, image.manifestDigest);
    assert.deepEqual(
      info.Layers,
      image.layers.map((l) => l.digest),
    );
    assert.equal(info.Architecture, 'amd64');
    assert.equal(info.Os, 'linux');

    const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', docker('e2e/skopeo/image:v1')]);
    assert.equal(raw.stdout, image.manifestBytes.toString(), '--raw returns the exact manifest');
  });

  it('list-tags lists every tag of a repository', async () => {
    const tags = ['v1', 'v1.0.0', 'latest', 'Stable_2'];
    for (const tag of tags) {
      await skopeo(['copy', '--dest-tls-verify=false', image.reference, docker(`e2e/skopeo/tags:${tag}`)]);
    }
    const out = await skopeo(['list-tags', '--tls-verify=false', docker('e2e/skopeo/tags')]);
    const list = JSON.parse(out.stdout) as { Repository: string; Tags: string[] };
    assert.equal(list.Repository, `${registry.host}/e2e/skopeo/tags`);
    assert.deepEqual([...list.Tags].sort(), [...tags].sort());
  });

  it('delete removes the manifest: GET by digest answers 404', async () => {
    const doomed = await writeImageLayout(path.join(work, 'doomed'), {
      tag: 'x',
      layers: 1,
      layerSize: 64 * 1024,
    });
    await skopeo(['copy', '--dest-tls-verify=false', doomed.reference, docker('e2e/skopeo/doomed:x')]);
    await skopeo(['copy', '--dest-tls-verify=false', image.reference, docker('e2e/skopeo/doomed:keep')]);
    assert.equal(await headManifestDigest(registry.url, 'e2e/skopeo/doomed', 'x'), doomed.manifestDigest);

    await skopeo(['delete', '--tls-verify=false', docker('e2e/skopeo/doomed:x')]);

    const byDigest = await getManifest(registry.url, 'e2e/skopeo/doomed', doomed.manifestDigest);
    assert.equal(byDigest.status, 404);
    assert.equal((byDigest.json as { errors: { code: string }[] }).errors[0]?.code, 'MANIFEST_UNKNOWN');
    const byTag = await getManifest(registry.url, 'e2e/skopeo/doomed', 'x');
    assert.equal(byTag.status, 404, 'the tag went with the manifest');
    // The other manifest in the repository is untouched.
    assert.equal(await headManifestDigest(registry.url, 'e2e/skopeo/doomed', 'keep'), image.manifestDigest);
    const tags = JSON.parse(
      (await skopeo(['list-tags', '--tls-verify=false', docker('e2e/skopeo/doomed')])).stdout,
    ) as { Tags: string[] };
    assert.deepEqual(tags.Tags, ['keep']);
  });
});

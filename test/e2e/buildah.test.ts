/**
 * buildah against the registry: build images without a daemon (`from scratch`, `copy`, `commit`), push them,
 * and pull them back with skopeo to check every layer digest and the files inside the layers. The second image
 * is built FROM the first one pulled from the registry, so its base layer must be reused (blob HEAD) as is.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import {
  blobDigest,
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
import { layoutDescriptor, readBlob, readTar } from '../helpers/oci-layout.ts';

interface OciManifest {
  mediaType: string;
  config: { digest: string };
  layers: { digest: string; mediaType: string }[];
}
interface OciConfig {
  rootfs: { diff_ids: string[] };
}

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

describe('buildah', { skip: missing('buildah', 'skopeo') }, () => {
  let registry: RunningRegistry;
  let containers: ContainersEnv;
  let work: string;
  let firstLayer: string | undefined;

  const buildah = (args: string[]): Promise<RunResult> => run('buildah', args, { env: containers.env });
  const ref = (name: string): string => `${registry.host}/${name}`;

  /** Pulls `name` back with skopeo into an OCI layout and checks digests; returns manifest, config and layers. */
  async function pullBack(name: string, expectedDigest: string) {
    const dir = path.join(work, `back-${name.replaceAll(/[/:]/g, '-')}`);
    await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${ref(name)}`, `oci:${dir}:back`], {
      env: containers.env,
    });
    const desc = await layoutDescriptor(dir, 'back');
    assert.equal(desc.digest, expectedDigest, 'pulled back the manifest that was pushed');
    const manifest = JSON.parse((await readBlob(dir, desc.digest)).toString()) as OciManifest;
    const config = JSON.parse((await readBlob(dir, manifest.config.digest)).toString()) as OciConfig;
    const layers: Map<string, Buffer>[] = [];
    for (const [i, layer] of manifest.layers.entries()) {
      const blob = await readBlob(dir, layer.digest);
      assert.equal(sha256(blob), layer.digest, `layer ${i} bytes match its digest`);
      assert.match(layer.mediaType, /gzip$/);
      const tar = gunzipSync(blob);
      assert.equal(sha256(tar), config.rootfs.diff_ids[i], `layer ${i} matches its diff_id`);
      layers.push(readTar(tar));
    }
    return { manifest, config, layers };
  }

  before(async () => {
    registry = await startTarget();
    containers = await containersEnv([registry.host]);
    work = await tempDir('buildah');
  });

  after(async () => {
    await registry?.stop();
    await containers?.cleanup();
    if (work) await removeTree(work);
  });

  it('builds from scratch, pushes, and skopeo pulls back the same layer', async () => {
    const content = randomBytes(1024 * 1024);
    const file = path.join(work, 'random.bin');
    await writeFile(file, content);

    const container = (await buildah(['from', 'scratch'])).stdout.trim();
    await buildah(['copy', container, file, '/data/random.bin']);
    await buildah(['config', '--label', 'org.example.test=berth-e2e', container]);
    await buildah(['commit', container, ref('e2e/buildah/img:v1')]);
    await buildah(['rm', container]);

    const digestFile = path.join(work, 'v1.digest');
    await buildah(['push', '--tls-verify=false', '--digestfile', digestFile, ref('e2e/buildah/img:v1')]);
    const pushed = (await readFile(digestFile, 'utf8')).trim();
    assert.equal(await headManifestDigest(registry.url, 'e2e/buildah/img', 'v1'), pushed);

    const got = await getManifest(registry.url, 'e2e/buildah/img', 'v1');
    assert.equal(got.contentType, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(got.bodyDigest, pushed);
    const registryManifest = got.json as OciManifest;
    assert.equal(registryManifest.layers.length, 1);
    for (const d of [registryManifest.config, ...registryManifest.layers]) {
      assert.equal(await blobDigest(registry.url, 'e2e/buildah/img', d.digest), d.digest);
    }

    const back = await pullBack('e2e/buildah/img:v1', pushed);
    assert.deepEqual(
      back.manifest.layers.map((l) => l.digest),
      registryManifest.layers.map((l) => l.digest),
    );
    assert.deepEqual(back.layers[0]?.get('data/random.bin'), content, 'the file survived the round trip');
    firstLayer = registryManifest.layers[0]?.digest;
  });

  it('builds on the pushed image and reuses its layer', async () => {
    assert.ok(firstLayer, 'the first build ran');
    const content = randomBytes(256 * 1024);
    const file = path.join(work, 'second.bin');
    await writeFile(file, content);

    const container = (
      await buildah(['from', '--tls-verify=false', '--pull-always', ref('e2e/buildah/img:v1')])
    ).stdout.trim();
    await buildah(['copy', container, file, '/data/second.bin']);
    await buildah(['commit', container, ref('e2e/buildah/img:v2')]);
    await buildah(['rm', container]);
    const digestFile = path.join(work, 'v2.digest');
    await buildah(['push', '--tls-verify=false', '--digestfile', digestFile, ref('e2e/buildah/img:v2')]);
    const pushed = (await readFile(digestFile, 'utf8')).trim();
    assert.equal(await headManifestDigest(registry.url, 'e2e/buildah/img', 'v2'), pushed);

    const back = await pullBack('e2e/buildah/img:v2', pushed);
    assert.equal(back.manifest.layers.length, 2);
    assert.equal(back.manifest.layers[0]?.digest, firstLayer, 'the base layer was reused, not re-uploaded');
    assert.deepEqual(back.layers[1]?.get('data/second.bin'), content);
    assert.equal(back.layers[1]?.has('data/random.bin'), false, 'the new layer holds only the new file');
  });
});

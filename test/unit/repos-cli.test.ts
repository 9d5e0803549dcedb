/** `berth repos delete`, run as the real CLI on a temporary data directory. */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import { createServices, type Services } from '../../src/container.ts';
import { digestOf } from '../../src/oci/digest.ts';
import { runBerth, succeeded } from '../helpers/cli.ts';

describe('berth repos', () => {
  let data: string;
  let services: Services;

  before(async () => {
    data = await mkdtemp(path.join(tmpdir(), 'berth-repos-cli-'));
    services = await createServices(loadConfig({ env: {}, overrides: { data } }));
  });
  after(async () => {
    await services.close();
    await rm(data, { recursive: true, force: true });
  });

  it('delete removes the repository with its tags and manifests, audited as the system; unknown names fail', async () => {
    const blob = digestOf(Buffer.from('config'));
    await services.metadata.linkBlob('team/app', blob, 6);
    const payload = Buffer.from(JSON.stringify({ schemaVersion: 2, config: blob }));
    const put = await services.metadata.putManifest({
      repository: 'team/app',
      digest: digestOf(payload),
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      payload,
      subject: null,
      artifactType: null,
      annotations: null,
      blobs: [blob],
      manifests: [],
      tags: ['v1'],
    });
    assert.deepEqual(put, { ok: true });

    const out = succeeded(await runBerth(data, ['repos', 'delete', 'team/app']), 'repos delete');
    assert.match(out, /Deleted repository team\/app: 1 manifest\(s\), 1 tag\(s\), 1 blob link\(s\)\./);
    assert.equal(await services.metadata.repositoryExists('team/app'), false);
    const audit = await services.auth.store.queryAudit({ action: 'repository.delete', limit: 5 });
    assert.deepEqual(
      audit.items.map((a) => `${a.actorKind} ${a.target}`),
      ['system team/app'],
    );

    const again = await runBerth(data, ['repos', 'delete', 'team/app']);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /repository team\/app does not exist/);
    const bad = await runBerth(data, ['repos', 'delete', 'Not/Valid']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /not a repository name/);
  });
});

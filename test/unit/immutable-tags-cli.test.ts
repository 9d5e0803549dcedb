/** `berth immutable-tags add|list|remove`, and `berth repos delete` refused by an immutable tag, run as the real CLI. */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import { createServices, type Services } from '../../src/container.ts';
import { digestOf } from '../../src/oci/digest.ts';
import { runBerth, succeeded } from '../helpers/cli.ts';

describe('berth immutable-tags', () => {
  let data: string;
  let services: Services;

  before(async () => {
    data = await mkdtemp(path.join(tmpdir(), 'berth-immutable-cli-'));
    services = await createServices(loadConfig({ env: {}, overrides: { data } }));
  });
  after(async () => {
    await services.close();
    await rm(data, { recursive: true, force: true });
  });

  it('adds, lists and removes rules, audited as the system; bad input fails with exit 1', async () => {
    const added = succeeded(
      await runBerth(data, ['immutable-tags', 'add', 'team', 'v*', '--repository', 'app']),
      'immutable-tags add',
    );
    assert.match(added, /^Added immutable tag rule (\d+): tags v\* of team\/app\.$/m);
    const json = JSON.parse(
      succeeded(await runBerth(data, ['immutable-tags', 'add', 'team', 'release-*', '--json']), 'add --json'),
    ) as { id: number; repositoryGlob: string; tagGlob: string; createdBy: string | null };
    assert.equal(json.repositoryGlob, '**');
    assert.equal(json.tagGlob, 'release-*');
    assert.equal(json.createdBy, null);

    const table = succeeded(await runBerth(data, ['immutable-tags', 'list', 'team']), 'list');
    const lines = table.trim().split('\n');
    assert.match(lines[0] ?? '', /^ID\s+REPOSITORY\s+TAG\s+CREATED BY\s+CREATED$/);
    assert.match(lines[1] ?? '', /^\d+\s+app\s+v\*\s+-\s+\d{4}-/);
    assert.match(lines[2] ?? '', /^\d+\s+\*\*\s+release-\*\s+-\s+\d{4}-/);
    const listed = JSON.parse(
      succeeded(await runBerth(data, ['immutable-tags', 'list', 'team', '--json']), 'list --json'),
    ) as { items: { id: number }[]; next: string | null };
    assert.equal(listed.items.length, 2);
    assert.equal(listed.next, null);

    const dup = await runBerth(data, ['immutable-tags', 'add', 'team', 'v*', '--repository', 'app']);
    assert.equal(dup.status, 1);
    assert.match(dup.stderr, /already has the immutable tag rule app:v\*/);
    const bad = await runBerth(data, ['immutable-tags', 'add', 'team', 'v/1']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /invalid tagGlob/);

    const removed = succeeded(
      await runBerth(data, ['immutable-tags', 'remove', 'team', String(json.id)]),
      'remove',
    );
    assert.match(removed, new RegExp(`Removed immutable tag rule ${json.id} of team\\.`));
    const missing = await runBerth(data, ['immutable-tags', 'remove', 'other', String(json.id)]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /does not exist in namespace other/);

    const audit = await services.auth.store.queryAudit({ action: 'immutable-tag.', limit: 10 });
    assert.deepEqual(audit.items.map((a) => `${a.actorKind} ${a.action} ${a.target}`).reverse(), [
      'system immutable-tag.add team',
      'system immutable-tag.add team',
      'system immutable-tag.remove team',
    ]);
  });

  it('repos delete refuses a repository holding an immutable tag', async () => {
    succeeded(
      await runBerth(data, ['immutable-tags', 'add', 'team', 'v1', '--repository', 'svc']),
      'immutable-tags add',
    );
    const blob = digestOf(Buffer.from('config'));
    await services.metadata.linkBlob('team/svc', blob, 6);
    const payload = Buffer.from(JSON.stringify({ schemaVersion: 2, config: blob }));
    const put = await services.metadata.putManifest({
      repository: 'team/svc',
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
    const refused = await runBerth(data, ['repos', 'delete', 'team/svc']);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /tag v1 of team\/svc is immutable/);
    assert.equal(await services.metadata.repositoryExists('team/svc'), true);
  });
});

/** `berth retention show|set|remove|run`, run as the real CLI on a temporary data directory. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import { createServices, type Services } from '../../src/container.ts';
import { digestOf } from '../../src/oci/digest.ts';
import { runBerth, succeeded } from '../helpers/cli.ts';

describe('berth retention', () => {
  let data: string;
  let services: Services;

  before(async () => {
    data = await mkdtemp(path.join(tmpdir(), 'berth-retention-cli-'));
    services = await createServices(loadConfig({ env: {}, overrides: { data } }));
    const blob = digestOf(Buffer.from('config'));
    await services.metadata.linkBlob('team/app', blob, 6);
    for (const tag of ['v1', 'v2', 'latest']) {
      const payload = Buffer.from(JSON.stringify({ schemaVersion: 2, config: blob, tag }));
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
        tags: [tag],
      });
      assert.deepEqual(put, { ok: true });
    }
  });
  after(async () => {
    await services.close();
    await rm(data, { recursive: true, force: true });
  });

  it('sets a policy from YAML, shows it, dry-runs, runs and removes it, audited as the system', async () => {
    const file = path.join(data, 'policy.yaml');
    await writeFile(file, 'rules:\n  - kind: alwaysKeep\n    tags: [latest, v2]\n');
    succeeded(await runBerth(data, ['retention', 'set', 'team', '--file', file]), 'retention set');
    const shown = JSON.parse(
      succeeded(await runBerth(data, ['retention', 'show', 'team', '--json']), 'show'),
    );
    assert.deepEqual(shown.policy.rules, [{ kind: 'alwaysKeep', tags: ['latest', 'v2'] }]);

    const dry = succeeded(await runBerth(data, ['retention', 'run', '--dry-run', 'team']), 'run --dry-run');
    assert.match(dry, /team\/app\s+untag\s+v1\s+sha256:/);
    assert.match(dry, /\(dry run\): would untag 1 tag\(s\), would delete 0 untagged manifest\(s\), kept 2/);
    assert.deepEqual((await services.metadata.listTags('team/app', { limit: 10 })).items, [
      'latest',
      'v1',
      'v2',
    ]);

    const real = JSON.parse(succeeded(await runBerth(data, ['retention', 'run', 'team', '--json']), 'run'));
    assert.equal(real.tagsUntagged, 1);
    assert.deepEqual((await services.metadata.listTags('team/app', { limit: 10 })).items, ['latest', 'v2']);

    succeeded(await runBerth(data, ['retention', 'remove', 'team']), 'remove');
    const gone = await runBerth(data, ['retention', 'show', 'team']);
    assert.equal(gone.status, 1);
    assert.match(gone.stderr, /namespace team has no retention policy/);
    const audit = await services.auth.store.queryAudit({ action: 'retention.', limit: 10 });
    assert.deepEqual(audit.items.map((a) => `${a.action} ${a.actorKind} ${a.target}`).reverse(), [
      'retention.set system team',
      'retention.run system team',
      'retention.remove system team',
    ]);
  });

  it('refuses an invalid policy, naming the field', async () => {
    const file = path.join(data, 'bad.json');
    await writeFile(file, JSON.stringify({ rules: [{ kind: 'keepLastPushed' }] }));
    const bad = await runBerth(data, ['retention', 'set', 'team', '--file', file]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /rules\.0\.count/);
  });
});

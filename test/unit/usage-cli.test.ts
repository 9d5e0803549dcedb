/** `berth usage`, `berth quota set` and `berth repos list`, run as the real CLI on a temporary data directory. */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import { createServices, type Services } from '../../src/container.ts';
import { digestOf } from '../../src/oci/digest.ts';
import { runBerth, succeeded } from '../helpers/cli.ts';

describe('berth usage, quota and repos list', () => {
  let data: string;
  let services: Services;
  const layer = Buffer.alloc(3000, 1);
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, layers: [digestOf(layer)] }));

  before(async () => {
    data = await mkdtemp(path.join(tmpdir(), 'berth-usage-cli-'));
    services = await createServices(loadConfig({ env: {}, overrides: { data } }));
    await services.metadata.linkBlob('team/app', digestOf(layer), layer.length);
    await services.metadata.linkBlob('team/tools', digestOf(layer), layer.length);
    await services.metadata.linkBlob('other/x', digestOf(layer), layer.length);
    const put = await services.metadata.putManifest({
      repository: 'team/app',
      digest: digestOf(manifest),
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      payload: manifest,
      subject: null,
      artifactType: null,
      annotations: null,
      blobs: [digestOf(layer)],
      manifests: [],
      tags: ['v1'],
    });
    assert.deepEqual(put, { ok: true });
  });
  after(async () => {
    await services.close();
    await rm(data, { recursive: true, force: true });
  });

  it('quota set takes sizes with units, audited as the system; usage reports namespaces and one in detail', async () => {
    const set = succeeded(await runBerth(data, ['quota', 'set', 'team', '10KiB']), 'quota set');
    assert.match(set, /Quota of namespace team: 10 KiB \(uses 3(?:\.\d)? KiB\)\./);
    const bad = await runBerth(data, ['quota', 'set', 'team', 'lots']);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /expected a size/);

    const all = succeeded(await runBerth(data, ['usage']), 'usage');
    assert.match(all, /^NAMESPACE\s+USED\s+QUOTA\s+USE%$/m);
    assert.match(all, /^other\s+2\.9 KiB\s+unlimited\s+-$/m);
    assert.match(all, /^team\s+3(?:\.\d)? KiB\s+10 KiB\s+\d+\.\d%$/m);
    assert.match(all, /Stored in total \(each blob once\): 3(?:\.\d)? KiB/);

    const teamBytes = layer.length + manifest.length;
    const detail = JSON.parse(succeeded(await runBerth(data, ['usage', 'team', '--json']), 'usage team')) as {
      bytes: number;
      quota: number;
      repositories: { name: string; size: number }[];
    };
    assert.equal(detail.bytes, teamBytes, 'the layer shared by two repositories counts once');
    assert.equal(detail.quota, 10 * 1024);
    assert.deepEqual(
      detail.repositories.map((r) => [r.name, r.size]),
      [
        ['team/app', teamBytes],
        ['team/tools', layer.length],
      ],
    );
    const text = succeeded(await runBerth(data, ['usage', 'team']), 'usage team');
    assert.match(text, /^Quota:\s+10 KiB \(10240 bytes\)$/m);
    assert.match(text, /^team\/tools\s+2\.9 KiB\s+0\s+0\s+-$/m);

    succeeded(await runBerth(data, ['quota', 'set', 'team', 'none']), 'quota set none');
    assert.equal((await services.usage.namespaceUsage('team')).quota, null);
    const audit = await services.auth.store.queryAudit({ action: 'quota.set', limit: 5 });
    assert.deepEqual(
      audit.items.map((a) => `${a.actorKind} ${a.target} ${JSON.stringify(a.detail)}`),
      ['system team {"via":"cli","bytes":null}', 'system team {"via":"cli","bytes":10240}'],
    );
  });

  it('repos list shows each repository with counts, size, last push and pulls; --namespace filters', async () => {
    const out = succeeded(await runBerth(data, ['repos', 'list']), 'repos list');
    assert.match(out, /^REPOSITORY\s+TAGS\s+MANIFESTS\s+SIZE\s+LAST PUSH\s+LAST PULL\s+PULLS$/m);
    assert.match(out, /^team\/app\s+1\s+1\s+3(?:\.\d)? KiB\s+\d{4}-\d\d-\d\dT\S+Z\s+-\s+0$/m);
    assert.deepEqual(
      out
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => l.split(/\s+/)[0]),
      ['other/x', 'team/app', 'team/tools'],
    );
    const json = JSON.parse(
      succeeded(
        await runBerth(data, ['repos', 'list', '--namespace', 'team', '--json']),
        'repos list --json',
      ),
    ) as { items: { name: string; tags: number; manifests: number }[]; next: string | null };
    assert.deepEqual(
      json.items.map((r) => [r.name, r.tags, r.manifests]),
      [
        ['team/app', 1, 1],
        ['team/tools', 0, 0],
      ],
    );
    assert.equal(json.next, null);
  });
});

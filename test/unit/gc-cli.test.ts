/** `berth gc`, run as the real CLI on a temporary data directory. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import { createServices, type Services } from '../../src/container.ts';
import { digestOf } from '../../src/oci/digest.ts';
import { blobKey } from '../../src/storage/paths.ts';
import { runBerth, succeeded } from '../helpers/cli.ts';

describe('berth gc', () => {
  let data: string;
  let config: string;
  let services: Services;

  before(async () => {
    data = await mkdtemp(path.join(tmpdir(), 'berth-gc-cli-'));
    config = path.join(data, 'berth.yml');
    await writeFile(config, 'gc:\n  blobGracePeriod: 0\n  manifestGracePeriod: 0\n');
    services = await createServices(loadConfig({ env: {}, file: config, overrides: { data } }));
  });
  after(async () => {
    await services.close();
    await rm(data, { recursive: true, force: true });
  });

  it('a dry run reports what a collection then deletes; history and show list the runs', async () => {
    const bytes = Buffer.from('an unreferenced layer');
    const digest = digestOf(bytes);
    await services.storage.put(blobKey(digest), bytes);
    await services.metadata.linkBlob('team/app', digest, bytes.length);

    const dry = succeeded(await runBerth(data, ['gc', '--dry-run', '--config', config]), 'gc --dry-run');
    assert.match(dry, /\(dry run\): succeeded/);
    assert.match(dry, /Would delete 0 manifest\(s\) and 1 blob\(s\), freeing 21 B \(21 bytes\)/);
    assert.ok(await services.storage.stat(blobKey(digest)), 'a dry run deletes nothing');

    const real = succeeded(await runBerth(data, ['gc', '--config', config]), 'gc');
    assert.match(real, /Deleted 0 manifest\(s\) and 1 blob\(s\), freed 21 B/);
    assert.equal(await services.storage.stat(blobKey(digest)), null);

    const history = JSON.parse(
      succeeded(await runBerth(data, ['gc', 'history', '--json', '--config', config]), 'gc history'),
    ) as {
      items: { id: number; trigger: string; dryRun: boolean; state: string }[];
    };
    assert.deepEqual(
      history.items.map((r) => [r.trigger, r.dryRun, r.state]),
      [
        ['cli', false, 'succeeded'],
        ['cli', true, 'succeeded'],
      ],
    );
    const show = succeeded(
      await runBerth(data, ['gc', 'show', String(history.items[0]?.id), '--config', config]),
      'gc show',
    );
    assert.match(show, /Deleted 0 manifest\(s\) and 1 blob\(s\)/);
    const missing = await runBerth(data, ['gc', 'show', '9999', '--config', config]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /does not exist/);
  });
});

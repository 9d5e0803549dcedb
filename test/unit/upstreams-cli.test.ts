/** `berth upstreams add|list|show|update|check|remove`, run as the real CLI on a data directory. */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createTestRegistry, type TestRegistry } from '../helpers/app.ts';
import { runBerth, succeeded } from '../helpers/cli.ts';

describe('berth upstreams', () => {
  let data: string;
  let upstream: TestRegistry;
  let url: string;

  before(async () => {
    data = await mkdtemp(path.join(tmpdir(), 'berth-upstreams-cli-'));
    upstream = await createTestRegistry();
    await upstream.app.listen({ host: '127.0.0.1', port: 0 });
    url = `http://127.0.0.1:${(upstream.app.server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await upstream.dispose();
    await rm(data, { recursive: true, force: true });
  });

  it('adds, lists, shows, changes, checks and removes upstreams; the password is read from stdin, never shown', async () => {
    const added = succeeded(
      await runBerth(
        data,
        [
          'upstreams',
          'add',
          'local',
          '--namespace',
          'cache',
          '--url',
          url,
          '--recheck',
          '10m',
          '--username',
          'bob',
          '--password-stdin',
        ],
        { input: 'hunter2-secret\n' },
      ),
      'add',
    );
    assert.match(added, /^Added upstream local: http:\/\/127\.0\.0\.1:\d+ as cache\/\.$/m);
    // The key file was created (SQLite, no secrets.key), and the database holds no plain password.
    assert.ok((await readFile(path.join(data, 'secret.key'), 'utf8')).trim().length > 16);
    assert.ok(!(await readFile(path.join(data, 'berth.db'))).includes('hunter2-secret'));

    const table = succeeded(await runBerth(data, ['upstreams', 'list']), 'list');
    assert.match(table, /^NAME\s+NAMESPACE\s+URL\s+KIND\s+MIRROR\s+SOURCE$/m);
    assert.match(table, /^local\s+cache\s+http:\/\/127\.0\.0\.1:\d+\s+registry\s+-?\s*api$/m);

    const shown = JSON.parse(
      succeeded(await runBerth(data, ['upstreams', 'show', 'local', '--json']), 'show'),
    ) as Record<string, unknown>;
    assert.equal(shown.hasPassword, true);
    assert.equal((shown.settings as { recheckInterval: string }).recheckInterval, '10m');
    assert.ok(!JSON.stringify(shown).includes('hunter2'));

    succeeded(
      await runBerth(data, [
        'upstreams',
        'update',
        'local',
        '--no-password',
        '--mirror',
        '--evict-after-days',
        '7',
      ]),
      'update',
    );
    const updated = JSON.parse(
      succeeded(await runBerth(data, ['upstreams', 'show', 'local', '--json']), 'show'),
    ) as {
      hasPassword: boolean;
      settings: { mirror: boolean; evictAfterDays: number };
    };
    assert.equal(updated.hasPassword, false);
    assert.equal(updated.settings.mirror, true);
    assert.equal(updated.settings.evictAfterDays, 7);

    assert.match(
      succeeded(await runBerth(data, ['upstreams', 'check', 'local']), 'check'),
      /^local: answers \(\d+ ms\)$/m,
    );

    const overlap = await runBerth(data, [
      'upstreams',
      'add',
      'other',
      '--namespace',
      'cache/sub',
      '--url',
      url,
    ]);
    assert.equal(overlap.status, 1);
    assert.match(overlap.stderr, /overlaps cache/);
    const bad = await runBerth(data, ['upstreams', 'add', 'bad', '--namespace', 'bad', '--url', 'not a url']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /urls/);

    succeeded(await runBerth(data, ['upstreams', 'remove', 'local']), 'remove');
    const gone = await runBerth(data, ['upstreams', 'show', 'local']);
    assert.equal(gone.status, 1);
    assert.match(gone.stderr, /no upstream named local/);
  });
});

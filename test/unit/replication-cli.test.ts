/**
 * `berth replication registries|policies` and `berth replicate run|executions|show`, run as the real CLI on a
 * temporary data directory, replicating to a CNCF Distribution 2.8 on loopback.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import { createServices, type Services } from '../../src/container.ts';
import { LocalRegistryClient } from '../../src/replication/local-client.ts';
import { createRegistryClient } from '../../src/remote/http-registry-client.ts';
import { runBerth, succeeded } from '../helpers/cli.ts';
import { startDistribution, type RunningRegistry } from '../helpers/distribution.ts';
import { pushIndexWithReferrer } from '../helpers/replication.ts';
import { skipOrFail } from '../helpers/skip.ts';

function missingRegistry(): string | false {
  try {
    execFileSync('docker-registry', ['--version'], { stdio: 'ignore' });
    return false;
  } catch {
    return 'docker-registry (CNCF Distribution 2.8) is not installed';
  }
}

describe('berth replication and berth replicate', { skip: skipOrFail(missingRegistry()) }, () => {
  let data: string;
  let services: Services;
  let distribution: RunningRegistry;

  before(async () => {
    data = await mkdtemp(path.join(tmpdir(), 'berth-replication-cli-'));
    services = await createServices(loadConfig({ env: {}, overrides: { data } }));
    distribution = await startDistribution();
  });
  after(async () => {
    await services.close();
    await distribution.stop();
    await rm(data, { recursive: true, force: true });
  });

  it('manages registries without printing credentials', async () => {
    succeeded(
      await runBerth(data, ['replication', 'registries', 'add', 'dist', '--url', distribution.url]),
      'registries add',
    );
    succeeded(
      await runBerth(
        data,
        [
          'replication',
          'registries',
          'add',
          'secured',
          '--url',
          'https://registry.example.com',
          '--username',
          'bot',
          '--password-stdin',
        ],
        { input: 'cli-secret-password\n' },
      ),
      'registries add --password-stdin',
    );
    const listed = succeeded(
      await runBerth(data, ['replication', 'registries', 'list', '--json']),
      'registries list',
    );
    assert.ok(!listed.includes('cli-secret-password'));
    const items = (JSON.parse(listed) as { items: { name: string; hasCredentials: boolean }[] }).items;
    assert.deepEqual(
      items.map((r) => [r.name, r.hasCredentials]),
      [
        ['dist', false],
        ['secured', true],
      ],
    );
    succeeded(await runBerth(data, ['replication', 'registries', 'remove', 'secured']), 'registries remove');
    const bad = await runBerth(data, ['replication', 'registries', 'add', 'x', '--url', 'ftp://nope']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /url must be an http or https URL/);
  });

  it('runs a policy with --wait and shows the execution', async () => {
    const image = await pushIndexWithReferrer(new LocalRegistryClient(services.registry), 'team/app', 'v1');
    succeeded(
      await runBerth(data, [
        'replication',
        'policies',
        'add',
        'to-dist',
        '--registry',
        'dist',
        '--repository',
        'team/*',
        '--add-prefix',
        'copy',
      ]),
      'policies add',
    );
    assert.match(
      succeeded(await runBerth(data, ['replication', 'policies', 'list']), 'policies list'),
      /to-dist\s+dist\s+push\s+team\/\*\s+manual/,
    );
    const out = succeeded(await runBerth(data, ['replicate', 'run', 'to-dist', '--wait']), 'replicate run');
    assert.match(out, /Execution \d+ of to-dist: succeeded/);
    assert.match(out, /1 of 1 artifact\(s\) replicated, 0 failed/);

    const remote = createRegistryClient({ urls: [distribution.url] });
    assert.equal((await remote.headManifest('copy/team/app', 'v1'))?.digest, image.index);
    assert.equal(
      (await remote.headManifest('copy/team/app', `${image.index.replace(':', '-')}.sig`))?.digest,
      image.referrer,
    );

    const list = JSON.parse(
      succeeded(await runBerth(data, ['replicate', 'executions', '--json']), 'replicate executions'),
    ) as { items: { id: number; state: string; trigger: string }[] };
    assert.equal(list.items.length, 1);
    assert.equal(list.items[0]?.state, 'succeeded');
    const show = succeeded(
      await runBerth(data, ['replicate', 'show', String(list.items[0]?.id)]),
      'replicate show',
    );
    assert.match(show, /team\/app:v1\s+copy\/team\/app\s+succeeded\s+1/);

    const queued = succeeded(await runBerth(data, ['replicate', 'run', 'to-dist']), 'replicate run (queued)');
    assert.match(queued, /Execution \d+ of to-dist queued\./);
  });
});

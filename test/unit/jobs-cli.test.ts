/**
 * `berth jobs list|show|retry|cancel`, run as the real CLI (`node --import tsx src/main.ts ...`) on a temporary
 * data directory whose jobs the test puts in place through the store: tables and JSON, the state rules of retry
 * and cancel (exit 1 with a message when refused), and the audit records they leave.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import { createServices, type Services } from '../../src/container.ts';
import type { KyselyMetadataStore } from '../../src/metadata/kysely-store.ts';
import { runBerth, succeeded } from '../helpers/cli.ts';

const berth = runBerth;

const ok = succeeded;

describe('berth jobs', () => {
  let data: string;
  let services: Services;
  let queued = 0;
  let dead = 0;

  before(async () => {
    data = await mkdtemp(path.join(tmpdir(), 'berth-jobs-cli-'));
    services = await createServices(loadConfig({ env: {}, overrides: { data } }));
    const store = (services.metadata as KyselyMetadataStore).jobStore();
    const now = Date.now();
    queued = (await services.jobs.enqueue(
      'mail',
      { to: 'a' },
      { runAt: new Date(now + 3_600_000) },
    )) as number;
    dead = (await store.enqueue({
      queue: 'hook',
      payload: { n: 1 },
      runAt: now,
      maxAttempts: 1,
      now,
    })) as number;
    await store.claim({ queues: ['hook'], owner: 'test', now, leaseMs: 60_000, limit: 1 });
    assert.equal(await store.fail(dead, 'test', 'Error: connection refused\nat somewhere', null, now), true);
  });
  after(async () => {
    await services.close();
    await rm(data, { recursive: true, force: true });
  });

  it('lists and shows jobs, as tables and JSON', async () => {
    const [all, deadOnly, shown, json] = await Promise.all([
      berth(data, ['jobs', 'list']),
      berth(data, ['jobs', 'list', '--state', 'dead', '--json']),
      berth(data, ['jobs', 'show', String(dead)]),
      berth(data, ['jobs', 'show', String(queued), '--json']),
    ]);
    const lines = ok(all, 'list').trim().split('\n');
    assert.match(lines[0] as string, /^ID\s+QUEUE\s+STATE\s+ATTEMPTS\s+RUN AT\s+FINISHED\s+LAST ERROR$/);
    assert.match(
      lines[1] as string,
      new RegExp(`^${dead}\\s+hook\\s+dead\\s+1/1\\s+\\d{4}-.*Error: connection refused$`),
    );
    assert.match(lines[2] as string, new RegExp(`^${queued}\\s+mail\\s+queued\\s+0/5\\s+\\d{4}-`));
    const page = JSON.parse(ok(deadOnly, 'list --state dead')) as { items: { id: number }[]; next: null };
    assert.deepEqual(
      page.items.map((j) => j.id),
      [dead],
    );
    assert.match(ok(shown, 'show'), /^id:\s+\d+\nqueue:\s+hook\nstate:\s+dead\n/);
    assert.deepEqual((JSON.parse(ok(json, 'show --json')) as { payload: unknown }).payload, { to: 'a' });
  });

  it('retries and cancels by the state rules, refusing with exit 1', async () => {
    assert.match(ok(await berth(data, ['jobs', 'retry', String(dead)]), 'retry'), /is queued again/);
    const store = (services.metadata as KyselyMetadataStore).jobStore();
    assert.equal((await store.get(dead))?.state, 'queued');
    assert.equal((await store.get(dead))?.attempts, 0);
    assert.match(ok(await berth(data, ['jobs', 'cancel', String(queued)]), 'cancel'), /is cancelled/);
    assert.equal((await store.get(queued))?.state, 'cancelled');

    const [again, missing, badId, badState] = await Promise.all([
      berth(data, ['jobs', 'cancel', String(queued)]),
      berth(data, ['jobs', 'show', '999999']),
      berth(data, ['jobs', 'show', 'x']),
      berth(data, ['jobs', 'list', '--state', 'nope']),
    ]);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /^berth jobs cancel: cannot cancel job \d+: it is cancelled/);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /job 999999 does not exist/);
    assert.notEqual(badId.status, 0);
    assert.equal(badState.status, 1);
    assert.match(badState.stderr, /state must be one of/);

    const audit = JSON.parse(ok(await berth(data, ['audit', '--action', 'job.', '--json']), 'audit')) as {
      events: { action: string; target: string }[];
    };
    assert.deepEqual(audit.events.map((e) => `${e.action} ${e.target}`).sort(), [
      `job.cancel ${queued}`,
      `job.retry ${dead}`,
    ]);
  });
});

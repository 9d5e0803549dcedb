/**
 * The scheduled retention job on a real job runner and SQLite store: a slot of `retention.schedule` runs every
 * namespace's policy once, and the run is recorded as a succeeded job of the `retention` queue.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { JobRunner } from '../../src/jobs/runner.ts';
import { RETENTION_QUEUE, scheduleRetention } from '../../src/lifecycle/retention-job.ts';
import { RetentionService } from '../../src/lifecycle/retention.ts';
import { silentLogger } from '../../src/logger.ts';
import { createSqliteStore } from '../../src/metadata/dialects.ts';
import type { KyselyMetadataStore } from '../../src/metadata/kysely-store.ts';
import { digestOf } from '../../src/oci/digest.ts';

describe('the scheduled retention job', () => {
  let dir: string;
  let store: KyselyMetadataStore;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'berth-retention-job-'));
    store = createSqliteStore(path.join(dir, 'berth.db'));
    await store.migrate();
  });
  after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("runs every namespace's policy on its schedule", async () => {
    const config = digestOf(Buffer.from('config'));
    for (const repository of ['a/app', 'b/app']) {
      await store.linkBlob(repository, config, 6);
      for (const tag of ['old', 'latest']) {
        const payload = Buffer.from(JSON.stringify({ schemaVersion: 2, repository, tag }));
        await store.putManifest({
          repository,
          digest: digestOf(payload),
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          payload,
          subject: null,
          artifactType: null,
          annotations: null,
          blobs: [config],
          manifests: [],
          tags: [tag],
        });
      }
    }
    const retention = new RetentionService(store, store.lifecycleStore(), { logger: silentLogger });
    for (const ns of ['a', 'b']) {
      await retention.setPolicy(
        ns,
        {
          repositories: { include: ['**'], exclude: [] },
          rules: [{ kind: 'alwaysKeep', tags: ['latest'] }],
          untagged: { action: 'keep', afterDays: 7 },
        },
        null,
      );
    }
    const jobs = store.jobStore();
    const runner = new JobRunner(jobs, { pollIntervalMs: 20 });
    scheduleRetention(runner, retention, '* * * * * *', silentLogger);
    runner.start();
    try {
      const deadline = Date.now() + 10_000;
      const done = async (): Promise<number> =>
        (await jobs.list({ queue: RETENTION_QUEUE, state: 'succeeded', limit: 10 })).items.length;
      while ((await done()) === 0 && Date.now() < deadline) await sleep(10);
    } finally {
      await runner.stop();
    }
    for (const repository of ['a/app', 'b/app']) {
      assert.deepEqual((await store.listTags(repository, { limit: 10 })).items, ['latest']);
    }
    const completed = (await store.pendingEvents(1000))
      .map((e) => e.event)
      .filter((e) => e.type === 'retention.completed');
    assert.ok(completed.length >= 2);
    assert.deepEqual(
      completed.slice(0, 2).map((e) => [e.target.repository, e.target.tagsUntagged]),
      [
        ['a', 1],
        ['b', 1],
      ],
    );
  });
});

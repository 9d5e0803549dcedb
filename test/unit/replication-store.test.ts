/**
 * The ReplicationStore on SQLite and PostgreSQL: registries and policies (unique names, round trips, in-use
 * registries), executions (dedupe keys, planning once, state transitions, retry of failed tasks, progress
 * counters, the event stored with the outcome) and schedule slots claimed once.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ConflictError } from '../../src/metadata/auth-store.ts';
import type {
  NewReplicationPolicy,
  NewTask,
  ReplicationStore,
} from '../../src/metadata/replication-store.ts';
import { testDatabases, type TestDatabase } from '../helpers/databases.ts';

function policy(registryId: number, overrides: Partial<NewReplicationPolicy> = {}): NewReplicationPolicy {
  return {
    name: 'nightly',
    registryId,
    direction: 'push',
    repositories: ['prod/**'],
    excludeRepositories: ['prod/tmp'],
    tags: ['v*'],
    excludeTags: ['*-rc'],
    rewrite: { stripPrefix: 'prod', addPrefix: 'mirror' },
    trigger: 'schedule',
    schedule: '0 3 * * *',
    replicateDeletions: false,
    bandwidthLimit: 1_000_000,
    enabled: true,
    ...overrides,
  };
}

const task = (ref: string): NewTask => ({
  kind: 'copy',
  sourceRepository: 'prod/app',
  sourceReference: ref,
  destinationRepository: 'mirror/app',
});

for (const kind of await testDatabases()) {
  describe(`KyselyReplicationStore on ${kind.dialect}`, { skip: kind.skip }, () => {
    let db: TestDatabase;
    let store: ReplicationStore;
    let registryId: number;
    beforeEach(async () => {
      db = await kind.create();
      store = db.store.replicationStore();
      registryId = (
        await store.createRegistry({
          name: 'hub',
          url: 'https://registry.example.com',
          username: 'bot',
          sealedPassword: 'v1.sealed',
          caBundle: null,
          insecure: false,
          concurrency: 3,
        })
      ).id;
    });
    afterEach(() => db.cleanup());

    it('keeps registries and policies with every field, names unique', async () => {
      const r = await store.getRegistryByName('hub');
      assert.equal(r?.sealedPassword, 'v1.sealed');
      assert.equal(r?.concurrency, 3);
      await assert.rejects(
        store.createRegistry({ ...(r as NonNullable<typeof r>), name: 'hub' }),
        ConflictError,
      );
      const updated = await store.updateRegistry(registryId, { insecure: true, sealedPassword: null });
      assert.equal(updated?.insecure, true);
      assert.equal(updated?.sealedPassword, null);

      const p = await store.createPolicy(policy(registryId));
      const back = await store.getPolicy(p.id);
      assert.deepEqual(back?.repositories, ['prod/**']);
      assert.deepEqual(back?.excludeTags, ['*-rc']);
      assert.deepEqual(back?.rewrite, { stripPrefix: 'prod', addPrefix: 'mirror' });
      assert.equal(back?.bandwidthLimit, 1_000_000);
      assert.equal(back?.lastScheduledSlot, null);
      await assert.rejects(store.createPolicy(policy(registryId)), ConflictError);
      await assert.rejects(store.deleteRegistry(registryId), ConflictError);
      assert.equal((await store.updatePolicy(p.id, { trigger: 'event' }))?.trigger, 'event');
      assert.deepEqual(
        (await store.listPolicies(registryId)).map((x) => x.name),
        ['nightly'],
      );
      assert.equal(await store.deletePolicy(p.id), true);
      assert.equal(await store.deleteRegistry(registryId), true);
      assert.equal(await store.getRegistry(registryId), null);
    });

    it('claims each schedule slot once', async () => {
      const p = await store.createPolicy(policy(registryId));
      assert.equal(await store.claimScheduleSlot(p.id, 1000), true);
      assert.equal(await store.claimScheduleSlot(p.id, 1000), false);
      assert.equal(await store.claimScheduleSlot(p.id, 500), false);
      assert.equal(await store.claimScheduleSlot(p.id, 2000), true);
      assert.equal((await store.getPolicy(p.id))?.lastScheduledSlot, 2000);
    });

    it('runs executions through their states, with progress, retry and the outcome event', async () => {
      const p = await store.createPolicy(policy(registryId));
      const id = await store.createExecution({
        policy: p,
        trigger: 'event',
        requestedBy: null,
        planned: true,
        tasks: [task('v1'), task('v2')],
        dedupeKey: 'events:1:a:b',
      });
      assert.ok(id !== null);
      assert.equal(
        await store.createExecution({
          policy: p,
          trigger: 'event',
          requestedBy: null,
          planned: true,
          tasks: [task('v1')],
          dedupeKey: 'events:1:a:b',
        }),
        null,
        'a batch handed over twice creates one execution',
      );

      assert.equal(await store.startExecution(id, 10), true);
      const [t1, t2] = await store.unfinishedTasks(id);
      assert.ok(t1 && t2);
      await store.startTask(t1.id, 11);
      await store.updateTaskBytes(t1.id, 100);
      let e = await store.getExecution(id);
      assert.deepEqual(e?.progress, {
        total: 2,
        pending: 1,
        running: 1,
        succeeded: 0,
        failed: 0,
        bytes: 100,
      });
      await store.finishTask(t1.id, 'succeeded', 150, null, 12);
      await store.startTask(t2.id, 12);
      await store.finishTask(t2.id, 'failed', 0, 'boom', 13);
      assert.deepEqual(
        (await store.unfinishedTasks(id)).map((t) => t.id),
        [],
      );

      const before = (await db.store.pendingEvents(100)).length;
      assert.equal(
        await store.finishExecution(id, 'failed', '1 of 2 task(s) failed', 14, [
          {
            type: 'replication.failed',
            target: { repository: '' },
            actor: { name: 'replication', kind: 'system' },
            request: null,
            detail: { execution: id },
          },
        ]),
        true,
      );
      const events = await db.store.pendingEvents(100);
      assert.equal(events.length, before + 1);
      assert.equal(events[events.length - 1]?.event.type, 'replication.failed');
      assert.equal(await store.finishExecution(id, 'succeeded', null, 15, []), false, 'finished once');

      e = await store.getExecution(id);
      assert.equal(e?.state, 'failed');
      assert.deepEqual(e?.progress, {
        total: 2,
        pending: 0,
        running: 0,
        succeeded: 1,
        failed: 1,
        bytes: 150,
      });

      // Retry: only the failed task runs again.
      assert.equal(await store.retryExecution(id), true);
      assert.equal(await store.retryExecution(id), false);
      assert.deepEqual(
        (await store.unfinishedTasks(id)).map((t) => t.sourceReference),
        ['v2'],
      );
      assert.equal((await store.getExecution(id))?.state, 'queued');
      assert.equal(await store.cancelExecution(id, 20), true);
      assert.equal(await store.startExecution(id, 21), false, 'a canceled execution does not start');
      assert.equal(await store.cancelExecution(id, 22), false);

      // A running execution is asked to stop; its handler marks it canceled once it has.
      assert.equal(await store.retryExecution(id), true);
      assert.equal(await store.startExecution(id, 23), true);
      assert.equal(await store.cancelExecution(id, 24), true);
      assert.equal((await store.getExecution(id))?.state, 'canceling');
      assert.equal(await store.retryExecution(id), false, 'not while its handler may still run a task');
      assert.equal(await store.finishExecution(id, 'succeeded', null, 25, []), false);
      await store.stopExecution(id, 26);
      assert.equal((await store.getExecution(id))?.state, 'canceled');
      assert.equal(await store.retryExecution(id), true);
      // A handler that died while canceling: the next run of its job stops it.
      assert.equal(await store.startExecution(id, 27), true);
      assert.equal(await store.cancelExecution(id, 28), true);
      assert.equal(await store.startExecution(id, 29), false);
      assert.equal((await store.getExecution(id))?.state, 'canceled');

      const list = await store.listExecutions({ limit: 10, policyId: p.id });
      assert.deepEqual(
        list.map((x) => x.id),
        [id],
      );
      assert.deepEqual(
        (await store.listTasks(id, { limit: 1 })).map((t) => t.sourceReference),
        ['v1'],
      );
      assert.deepEqual(
        (await store.listTasks(id, { limit: 10, after: t1.id })).map((t) => t.sourceReference),
        ['v2'],
      );
    });

    it('plans an execution once, and keeps its history when the policy goes', async () => {
      const p = await store.createPolicy(policy(registryId));
      const id = await store.createExecution({
        policy: p,
        trigger: 'manual',
        requestedBy: 'user:root',
        planned: false,
        tasks: [],
      });
      assert.ok(id !== null);
      await store.planExecution(id, [task('v1'), task('v2'), task('v3')]);
      await store.planExecution(id, [task('v1')]);
      const e = await store.getExecution(id);
      assert.equal(e?.planned, true);
      assert.equal(e?.progress.total, 3, 'a second plan (after a crash) adds nothing');
      await store.deletePolicy(p.id);
      const kept = await store.getExecution(id);
      assert.equal(kept?.policyId, null);
      assert.equal(kept?.policyName, 'nightly');
    });
  });
}

/**
 * The replication service's triggers, in process: scheduled policies get one execution per schedule slot (none
 * for a slot before the policy existed), and push events become executions of event-triggered push policies with
 * copy and delete tasks, once per batch, never for replication's own writes.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { DomainEvent } from '../../src/events/event.ts';
import type { Digest } from '../../src/oci/digest.ts';
import { createTestRegistry, type TestRegistry } from '../helpers/app.ts';

const DIGEST = `sha256:${'b'.repeat(64)}` as Digest;

function event(type: DomainEvent['type'], target: DomainEvent['target'], actorName = 'alice'): DomainEvent {
  return {
    id: randomUUID(),
    type,
    occurredAt: new Date().toISOString(),
    target,
    actor: { name: actorName, kind: actorName === 'replication' ? 'system' : 'user' },
    request: null,
  };
}

describe('replication triggers', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await createTestRegistry({ 'secrets.key': 'service-test-secrets-key-012345' });
    await reg.services.replication.store.createRegistry({
      name: 'remote',
      url: 'http://127.0.0.1:9',
      username: null,
      sealedPassword: null,
      caBundle: null,
      insecure: false,
      concurrency: 2,
    });
  });
  after(() => reg.dispose());

  const base = {
    direction: 'push' as const,
    repositories: ['prod/**'],
    excludeRepositories: [],
    tags: [],
    excludeTags: ['*-rc'],
    rewrite: { stripPrefix: '', addPrefix: 'mirror' },
    schedule: null,
    replicateDeletions: true,
    bandwidthLimit: null,
    enabled: true,
  };

  it('creates one execution per schedule slot, none for a slot before the policy', async () => {
    const { store } = reg.services.replication;
    const registryId = (await store.getRegistryByName('remote'))!.id;
    const p = await store.createPolicy({
      ...base,
      name: 'hourly',
      registryId,
      trigger: 'schedule',
      schedule: '0 * * * *',
    });
    const hour = 3_600_000;
    const created = p.updatedAt.getTime();
    // The slot before the policy existed only sets where the schedule starts.
    await reg.services.replication.checkSchedules(created);
    assert.equal((await store.listExecutions({ limit: 10, policyId: p.id })).length, 0);
    const next = Math.floor(created / hour) * hour + hour;
    await reg.services.replication.checkSchedules(next + 1000);
    await reg.services.replication.checkSchedules(next + 2000);
    const executions = await store.listExecutions({ limit: 10, policyId: p.id });
    assert.equal(executions.length, 1);
    assert.equal(executions[0]?.trigger, 'schedule');
    assert.equal(executions[0]?.planned, false);
    await reg.services.replication.checkSchedules(next + hour);
    assert.equal((await store.listExecutions({ limit: 10, policyId: p.id })).length, 2);
  });

  it('cancels a running execution at once when no job is left to stop it', async () => {
    const { store } = reg.services.replication;
    const registryId = (await store.getRegistryByName('remote'))!.id;
    const p = await store.createPolicy({ ...base, name: 'cancel-me', registryId, trigger: 'manual' });
    // A live job (queued here): its handler is the one to stop it.
    const withJob = (await reg.services.replication.run(p, { trigger: 'manual', requestedBy: null }))!;
    await store.startExecution(withJob, Date.now());
    assert.equal(await reg.services.replication.cancel(withJob), true);
    assert.equal((await store.getExecution(withJob))?.state, 'canceling');
    // No job at all (it died on its last attempt): nobody else will.
    const orphan = (await store.createExecution({
      policy: p,
      trigger: 'manual',
      requestedBy: null,
      planned: true,
      tasks: [],
    }))!;
    await store.startExecution(orphan, Date.now());
    assert.equal(await reg.services.replication.cancel(orphan), true);
    assert.equal((await store.getExecution(orphan))?.state, 'canceled');
    assert.equal(await reg.services.replication.retry(orphan), true);
  });

  it('turns push and delete events into tasks, once per batch, ignoring its own writes', async () => {
    const { store } = reg.services.replication;
    const registryId = (await store.getRegistryByName('remote'))!.id;
    const p = await store.createPolicy({ ...base, name: 'on-push', registryId, trigger: 'event' });
    const batch = [
      event('manifest.pushed', { repository: 'prod/app', digest: DIGEST, tag: 'v1', tags: ['v1', 'v1-rc'] }),
      event('manifest.pushed', { repository: 'dev/app', digest: DIGEST, tag: 'v1', tags: ['v1'] }),
      event(
        'manifest.pushed',
        { repository: 'prod/app', digest: DIGEST, tag: 'v2', tags: ['v2'] },
        'replication',
      ),
      event('tag.deleted', { repository: 'prod/app', tag: 'old' }),
      event('manifest.deleted', { repository: 'prod/app', digest: DIGEST }),
    ];
    await reg.services.replication.handleEvents(batch);
    await reg.services.replication.handleEvents(batch);
    const executions = await store.listExecutions({ limit: 10, policyId: p.id });
    assert.equal(executions.length, 1, 'a batch handed over twice makes one execution');
    const tasks = await store.listTasks(executions[0]!.id, { limit: 10 });
    assert.deepEqual(
      tasks.map((t) => [t.kind, t.sourceRepository, t.sourceReference, t.destinationRepository]),
      [
        ['copy', 'prod/app', 'v1', 'mirror/prod/app'],
        ['delete', 'prod/app', 'old', 'mirror/prod/app'],
        ['delete', 'prod/app', DIGEST, 'mirror/prod/app'],
      ],
    );
    const jobs = await reg.services.jobs.list({ queue: 'replication', limit: 10 });
    assert.ok(
      jobs.items.some((j) => (j.payload as { executionId: number }).executionId === executions[0]!.id),
    );
  });
});

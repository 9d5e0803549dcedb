/**
 * Domain events from the registry use cases, stored in the outbox with the change that caused them: which events a
 * push, a tag move, deletes and a mount produce, with actor and request; none for a refused push; audit records
 * written with them; pull events only while a subscription wants them; the relay hands each event over once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DomainEvent } from '../../src/events/event.ts';
import { EventRelay } from '../../src/events/relay.ts';
import { silentLogger } from '../../src/logger.ts';
import {
  createTestRegistry,
  descriptorOf,
  imageManifest,
  manifestBytes,
  OCI_CONFIG,
  OCI_LAYER,
  OCI_MANIFEST,
  randomBlob,
  type TestRegistry,
} from '../helpers/app.ts';

/** Every event of the outbox, pending or not, in commit order. */
async function outbox(reg: TestRegistry): Promise<DomainEvent[]> {
  return (await reg.services.metadata.pendingEvents(10_000)).map((e) => e.event);
}

/** The events after the first `skip`, as `type target` lines. */
function summary(events: readonly DomainEvent[]): string[] {
  return events.map((e) => {
    const t = e.target;
    const ref = t.tag !== undefined ? `:${t.tag}` : t.digest !== undefined ? `@${t.digest.slice(0, 15)}` : '';
    return `${e.type} ${t.repository}${ref}`;
  });
}

describe('domain events in the outbox', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await createTestRegistry();
  });
  after(() => reg.dispose());

  it('a push yields the repository, then the manifest with its tag, actor and request; a repeat push only the push', async () => {
    const image = await reg.pushImage('events/app', 'v1');
    const events = await outbox(reg);
    assert.deepEqual(summary(events), ['repository.created events/app', 'manifest.pushed events/app:v1']);
    const pushed = events[1] as DomainEvent;
    assert.equal(pushed.target.digest, image.digest);
    assert.equal(pushed.target.mediaType, OCI_MANIFEST);
    assert.equal(pushed.target.size, image.bytes.length);
    assert.deepEqual(pushed.target.tags, ['v1']);
    assert.deepEqual(pushed.actor, { name: 'anonymous', kind: 'anonymous' });
    assert.equal(pushed.request?.method, 'PUT');
    assert.equal(pushed.request?.addr, '127.0.0.1');
    assert.match(pushed.id, /^[0-9a-f-]{36}$/);
    assert.ok(Date.parse(pushed.occurredAt) > Date.now() - 60_000);
    assert.notEqual(events[0]?.id, pushed.id);

    const res = await reg.putManifest('events/app', 'v1', image.bytes);
    assert.equal(res.statusCode, 201);
    assert.deepEqual(summary((await outbox(reg)).slice(2)), ['manifest.pushed events/app:v1']);
  });

  it('moving a tag reports the previous manifest; deleting a tag and a manifest report what they removed', async () => {
    const first = await reg.pushImage('events/move', 'latest');
    const second = await reg.pushImage('events/move', 'latest');
    const before = (await outbox(reg)).length;
    void before;
    const all = await outbox(reg);
    const moved = all.filter((e) => e.type === 'tag.moved' && e.target.repository === 'events/move');
    assert.equal(moved.length, 1);
    assert.equal(moved[0]?.target.tag, 'latest');
    assert.equal(moved[0]?.target.digest, second.digest);
    assert.equal(moved[0]?.target.previousDigest, first.digest);

    const start = all.length;
    assert.equal(
      (await reg.inject({ method: 'DELETE', url: '/v2/events/move/manifests/latest' })).statusCode,
      202,
    );
    assert.equal(
      (await reg.inject({ method: 'DELETE', url: `/v2/events/move/manifests/${first.digest}` })).statusCode,
      202,
    );
    const later = (await outbox(reg)).slice(start);
    assert.deepEqual(summary(later), [
      'tag.deleted events/move:latest',
      `manifest.deleted events/move@${first.digest.slice(0, 15)}`,
    ]);
    assert.equal(later[0]?.target.digest, second.digest);
    assert.equal(later[1]?.target.mediaType, OCI_MANIFEST);
    assert.equal(later[1]?.target.size, first.bytes.length);
  });

  it('deleting a manifest with tags lists them; a mount is an event; deletes are audited as before', async () => {
    const image = await reg.pushImage('events/tagged', 'a');
    await reg.putManifest('events/tagged', 'b', image.bytes);
    const start = (await outbox(reg)).length;
    const layer = image.layers[0]?.digest as string;
    const mount = await reg.inject({
      method: 'POST',
      url: `/v2/events/mounted/blobs/uploads/?mount=${layer}&from=events/tagged`,
    });
    assert.equal(mount.statusCode, 201);
    await reg.inject({ method: 'DELETE', url: `/v2/events/tagged/manifests/${image.digest}` });
    const later = (await outbox(reg)).slice(start);
    assert.deepEqual(summary(later), [
      'repository.created events/mounted',
      `blob.mounted events/mounted@${layer.slice(0, 15)}`,
      `manifest.deleted events/tagged@${image.digest.slice(0, 15)}`,
    ]);
    assert.equal(later[1]?.target.from, 'events/tagged');
    assert.deepEqual(later[2]?.target.tags, ['a', 'b']);

    const audit = await reg.services.auth.store.queryAudit({ action: 'delete', limit: 10 });
    assert.ok(audit.items.some((a) => a.target === `events/tagged@${image.digest}`));
    const pushes = await reg.services.auth.store.queryAudit({ action: 'push', limit: 100 });
    assert.ok(
      pushes.items.some((a) => a.target === 'events/tagged:a' && a.detail?.['digest'] === image.digest),
    );
  });

  it('a refused push (unknown layer, invalid manifest) stores no event and no audit record', async () => {
    const start = (await outbox(reg)).length;
    const audits = (await reg.services.auth.store.queryAudit({ action: 'push', limit: 1000 })).items.length;
    const config = randomBlob(32);
    await reg.pushBlob('events/refused', config);
    const afterBlob = (await outbox(reg)).length;
    const missing = manifestBytes(
      imageManifest({
        mediaType: OCI_MANIFEST,
        config: descriptorOf(config, OCI_CONFIG),
        layers: [descriptorOf(randomBlob(16), OCI_LAYER)],
      }),
    );
    assert.equal((await reg.putManifest('events/refused', 'x', missing)).statusCode, 400);
    assert.equal((await reg.putManifest('events/refused', 'y', Buffer.from('{not json'))).statusCode, 400);
    assert.equal((await outbox(reg)).length, afterBlob);
    assert.deepEqual(summary((await outbox(reg)).slice(start)), ['repository.created events/refused']);
    assert.equal(
      (await reg.services.auth.store.queryAudit({ action: 'push', limit: 1000 })).items.length,
      audits,
    );
  });

  it('pull events are stored only while some enabled webhook includes pulls', async () => {
    const image = await reg.pushImage('events/pulled', 'v1');
    const { pullEvents } = reg.services;
    await pullEvents.refresh();
    assert.equal(pullEvents.active, false);
    await reg.inject({
      method: 'GET',
      url: '/v2/events/pulled/manifests/v1',
      headers: { accept: OCI_MANIFEST },
    });
    await pullEvents.flush();
    assert.equal((await outbox(reg)).filter((e) => e.type === 'manifest.pulled').length, 0);

    await reg.services.webhooks.create({
      name: 'pulls',
      namespace: null,
      url: 'https://hooks.example.com/',
      format: 'cloudevents',
      events: [],
      repositoryGlob: '**',
      tagGlob: '*',
      includePulls: true,
      headers: {},
      secret: 'whsec_c2VjcmV0',
      createdBy: null,
    });
    await pullEvents.refresh();
    assert.equal(pullEvents.active, true);
    await reg.inject({
      method: 'GET',
      url: '/v2/events/pulled/manifests/v1',
      headers: { accept: OCI_MANIFEST },
    });
    await reg.inject({
      method: 'HEAD',
      url: '/v2/events/pulled/manifests/v1',
      headers: { accept: OCI_MANIFEST },
    });
    const layer = image.layers[0]?.digest as string;
    await reg.inject({ method: 'GET', url: `/v2/events/pulled/blobs/${layer}` });
    await reg.inject({
      method: 'GET',
      url: `/v2/events/pulled/blobs/${layer}`,
      headers: { range: 'bytes=10-20' },
    });
    await pullEvents.flush();
    const pulls = (await outbox(reg)).filter((e) => e.type.endsWith('.pulled'));
    assert.deepEqual(summary(pulls), [
      'manifest.pulled events/pulled:v1',
      `blob.pulled events/pulled@${layer.slice(0, 15)}`,
    ]);
    assert.equal(pulls[0]?.target.digest, image.digest);
    assert.equal(pulls[0]?.request?.method, 'GET');
  });
});

describe('the event relay', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await createTestRegistry();
  });
  after(() => reg.dispose());

  it('hands every event to every subscriber in commit order, marks them dispatched, and one relay works at a time', async () => {
    await reg.pushImage('relay/a', 'v1');
    await reg.pushImage('relay/b', 'v1');
    const expected = (await outbox(reg)).map((e) => e.id);
    const seenA: string[] = [];
    const seenB: string[] = [];
    const options = { pollIntervalMs: 50, retentionMs: 60_000, logger: silentLogger, batchSize: 2 };
    const one = new EventRelay(
      reg.services.metadata,
      [{ name: 'a', handle: async (es) => void seenA.push(...es.map((e) => e.id)) }],
      { ...options, instanceId: 'one' },
    );
    const two = new EventRelay(
      reg.services.metadata,
      [{ name: 'b', handle: async (es) => void seenB.push(...es.map((e) => e.id)) }],
      { ...options, instanceId: 'two' },
    );
    assert.equal(await one.relayPending(), expected.length);
    assert.equal(await two.relayPending(), 0, 'the other instance does not hold the lease');
    assert.deepEqual(seenA, expected);
    assert.deepEqual(seenB, []);
    assert.deepEqual(await reg.services.metadata.pendingEvents(10), []);
    await one.stop();
  });

  it('while the gate is busy, waits (at most maxDeferMs) and then relays the events together', async () => {
    const batches: number[] = [];
    let busy = true;
    const relay = new EventRelay(
      reg.services.metadata,
      [{ name: 'count', handle: async (es) => void batches.push(es.length) }],
      {
        pollIntervalMs: 20,
        retentionMs: 60_000,
        logger: silentLogger,
        instanceId: 'gated',
        gate: { busy: () => busy },
        maxDeferMs: 300,
      },
    );
    // Any earlier holder of the lease gives it up.
    for (const id of ['one', 'two', 'three']) await reg.services.metadata.releaseLease('event-relay', id);
    await reg.services.metadata.markEventsDispatched(
      (await reg.services.metadata.pendingEvents(1000)).map((e) => e.seq),
    );
    relay.start();
    try {
      const started = performance.now();
      await reg.pushImage('relay/gated', 'v1');
      await reg.pushImage('relay/gated', 'v2');
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.deepEqual(batches, [], 'nothing relayed while busy');
      const deadline = Date.now() + 5000;
      while (batches.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.ok(performance.now() - started >= 250, 'not before maxDeferMs');
      assert.deepEqual(batches, [3], 'both pushes (and the new repository) in one batch');
      busy = false;
      await reg.pushImage('relay/gated', 'v3');
      const again = Date.now() + 5000;
      while (batches.length < 2 && Date.now() < again) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(batches, [3, 1]);
    } finally {
      await relay.stop();
    }
  });

  it('a subscriber that fails leaves the batch pending, and it is handed over again', async () => {
    await reg.pushImage('relay/c', 'v1');
    let fail = true;
    const seen: string[] = [];
    const relay = new EventRelay(
      reg.services.metadata,
      [
        {
          name: 'flaky',
          handle: async (es) => {
            seen.push(...es.map((e) => e.id));
            if (fail) throw new Error('receiver down');
          },
        },
      ],
      { pollIntervalMs: 50, retentionMs: 60_000, logger: silentLogger, instanceId: 'three' },
    );
    await assert.rejects(relay.relayPending(), /receiver down/);
    const pending = (await reg.services.metadata.pendingEvents(10)).map((e) => e.event.id);
    assert.equal(pending.length, 2);
    fail = false;
    assert.equal(await relay.relayPending(), 2);
    assert.deepEqual(seen, [...pending, ...pending]);
    await relay.stop();
  });
});

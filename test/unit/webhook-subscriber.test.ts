/** Matching events to endpoints, and enqueueing each delivery once (dedupe keys), on a real database. */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { DomainEvent, EventType } from '../../src/events/event.ts';
import type { EnqueueOptions, JobQueue } from '../../src/jobs/job.ts';
import type { NewWebhook, WebhookStore } from '../../src/metadata/webhook-store.ts';
import type { Digest } from '../../src/oci/digest.ts';
import { WEBHOOK_DELIVERY_QUEUE, type WebhookDeliveryPayload } from '../../src/webhooks/delivery-job.ts';
import { webhookMatches, type WebhookFilter } from '../../src/webhooks/matcher.ts';
import { sendTestEvent, WebhookSubscriber } from '../../src/webhooks/subscriber.ts';
import { testDatabases, type TestDatabase } from '../helpers/databases.ts';

/** A JobQueue double that records jobs and honours dedupe keys as the contract says. */
class RecordingQueue implements JobQueue {
  readonly jobs: { queue: string; payload: WebhookDeliveryPayload; options: EnqueueOptions | undefined }[] =
    [];
  readonly #keys = new Set<string>();
  async enqueue(queue: string, payload: unknown, options?: EnqueueOptions): Promise<number | null> {
    if (options?.dedupeKey !== undefined) {
      const key = `${queue}\n${options.dedupeKey}`;
      if (this.#keys.has(key)) return null;
      this.#keys.add(key);
    }
    this.jobs.push({ queue, payload: payload as WebhookDeliveryPayload, options });
    return this.jobs.length;
  }
  async enqueueMany(
    queue: string,
    jobs: readonly { readonly payload: unknown; readonly options?: EnqueueOptions }[],
  ): Promise<number> {
    let added = 0;
    for (const job of jobs) if ((await this.enqueue(queue, job.payload, job.options)) !== null) added++;
    return added;
  }
}

let n = 0;
function event(type: EventType, repository: string, tag?: string): DomainEvent {
  n++;
  return {
    id: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
    type,
    occurredAt: '2026-12-07T05:00:00.000Z',
    target: {
      repository,
      digest: `sha256:${'d'.repeat(64)}` as Digest,
      ...(tag === undefined ? {} : { tag }),
    },
    actor: null,
    request: null,
  };
}

const filter = (overrides: Partial<WebhookFilter> = {}): WebhookFilter => ({
  namespace: null,
  events: [],
  includePulls: false,
  repositoryGlob: '**',
  tagGlob: '*',
  ...overrides,
});

describe('webhookMatches', () => {
  it('scopes a namespace endpoint to the repositories of its namespace', () => {
    const team = filter({ namespace: 'team' });
    assert.equal(webhookMatches(team, event('manifest.pushed', 'team/app')), true);
    assert.equal(webhookMatches(team, event('manifest.pushed', 'team/a/b')), true);
    assert.equal(webhookMatches(team, event('manifest.pushed', 'teamx/app')), false);
    assert.equal(webhookMatches(team, event('manifest.pushed', 'other/team')), false);
    assert.equal(webhookMatches(filter(), event('manifest.pushed', 'other/team')), true);
  });

  it('sends every type but pulls by default; pulls only with includePulls; a list restricts', () => {
    const all = filter();
    assert.equal(webhookMatches(all, event('repository.deleted', 'a/b')), true);
    assert.equal(webhookMatches(all, event('manifest.pulled', 'a/b')), false);
    assert.equal(webhookMatches(all, event('blob.pulled', 'a/b')), false);
    assert.equal(webhookMatches(filter({ includePulls: true }), event('manifest.pulled', 'a/b')), true);
    const pushes = filter({ events: ['manifest.pushed', 'manifest.pulled'] });
    assert.equal(webhookMatches(pushes, event('manifest.pushed', 'a/b')), true);
    assert.equal(webhookMatches(pushes, event('tag.deleted', 'a/b')), false);
    assert.equal(webhookMatches(pushes, event('manifest.pulled', 'a/b')), false);
    assert.equal(webhookMatches({ ...pushes, includePulls: true }, event('manifest.pulled', 'a/b')), true);
    assert.equal(webhookMatches({ ...pushes, includePulls: true }, event('blob.pulled', 'a/b')), false);
  });

  it('filters on the repository glob and the tag glob; events without a tag pass', () => {
    const f = filter({ repositoryGlob: 'team/*', tagGlob: 'v*' });
    assert.equal(webhookMatches(f, event('manifest.pushed', 'team/app', 'v1.2')), true);
    assert.equal(webhookMatches(f, event('manifest.pushed', 'team/app', 'latest')), false);
    assert.equal(webhookMatches(f, event('manifest.pushed', 'team/a/b', 'v1')), false);
    assert.equal(webhookMatches(f, event('manifest.deleted', 'team/app')), true);
    const multi = { ...event('manifest.pushed', 'team/app', 'latest') };
    const withTags: DomainEvent = { ...multi, target: { ...multi.target, tags: ['latest', 'v2'] } };
    assert.equal(webhookMatches(f, withTags), true);
  });
});

for (const kind of await testDatabases()) {
  describe(`WebhookSubscriber on ${kind.dialect}`, { skip: kind.skip }, () => {
    let db: TestDatabase;
    let store: WebhookStore;
    beforeEach(async () => {
      db = await kind.create();
      store = db.store.webhookStore();
    });
    afterEach(() => db.cleanup());

    const create = (overrides: Partial<NewWebhook>) =>
      store.create({
        name: 'w',
        namespace: null,
        url: 'https://hooks.example.com/',
        format: 'distribution',
        events: [],
        repositoryGlob: '**',
        tagGlob: '*',
        includePulls: false,
        headers: {},
        secret: 'whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0',
        createdBy: null,
        ...overrides,
      });

    it('enqueues one delivery per matching enabled endpoint and event, once even when handed twice', async () => {
      const global = await create({ name: 'global' });
      const team = await create({ name: 'team', namespace: 'team' });
      const pulls = await create({ name: 'pulls', includePulls: true, events: ['manifest.pulled'] });
      const disabled = await create({ name: 'off' });
      await store.update(disabled.id, { enabled: false, disabledReason: 'test' });
      const subscriber = new WebhookSubscriber({ store });
      const queue = new RecordingQueue();
      const events = [
        event('manifest.pushed', 'team/app', 'v1'),
        event('manifest.pushed', 'other/app', 'v1'),
        event('manifest.pulled', 'team/app', 'v1'),
      ];
      await subscriber.handle(events, queue);
      // Handed again (a relay retry, another instance): nothing new.
      await subscriber.handle(events, queue);
      const got = queue.jobs.map((j) => [j.payload.event.id, j.payload.webhookId]);
      assert.deepEqual(
        got.sort(),
        [
          [events[0]?.id, global.id],
          [events[0]?.id, team.id],
          [events[1]?.id, global.id],
          [events[2]?.id, pulls.id],
        ].sort(),
      );
      for (const job of queue.jobs) {
        assert.equal(job.queue, WEBHOOK_DELIVERY_QUEUE);
        assert.equal(job.options?.dedupeKey, `${job.payload.event.id}:${job.payload.webhookId}`);
        // The event travels whole in the payload, and survives a JSON round trip.
        assert.deepEqual(JSON.parse(JSON.stringify(job.payload)), job.payload);
      }
      await subscriber.handle([], queue);
      assert.equal(queue.jobs.length, 4);
    });

    it('sends a test event to one endpoint, whatever its filters, with a single attempt', async () => {
      const webhook = await create({ name: 'narrow', events: ['tag.deleted'], repositoryGlob: 'nothing' });
      const queue = new RecordingQueue();
      const { eventId, jobId } = await sendTestEvent(webhook, queue, {
        actor: { name: 'root', kind: 'user' },
        request: null,
      });
      assert.equal(jobId, 1);
      const [job] = queue.jobs;
      assert.ok(job);
      assert.equal(job.payload.webhookId, webhook.id);
      assert.equal(job.payload.event.id, eventId);
      assert.equal(job.payload.event.type, 'webhook.test');
      assert.equal(job.options?.maxAttempts, 1);
    });
  });
}

/**
 * The webhook delivery job end to end: a real database (SQLite and PostgreSQL), real HTTP receivers on 127.0.0.1
 * verifying signatures with the specification's verifier, the delivery log, 410, SSRF refusal.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { DomainEvent } from '../../src/events/event.ts';
import { PermanentJobError, RetryLaterError, type JobContext } from '../../src/jobs/job.ts';
import type { DeliveryOutcome, NewWebhook, WebhookStore } from '../../src/metadata/webhook-store.ts';
import type { Digest } from '../../src/oci/digest.ts';
import { AddressGuard } from '../../src/webhooks/address-guard.ts';
import {
  createWebhookDeliveryHandler,
  WEBHOOK_MAX_ATTEMPTS,
  type WebhookDeliveryPayload,
} from '../../src/webhooks/delivery-job.ts';
import { generateSecret, verify } from '../../src/webhooks/signing.ts';
import { createTestEvent } from '../../src/webhooks/subscriber.ts';
import { testDatabases, type TestDatabase } from '../helpers/databases.ts';
import { startReceiver, type Responder, type WebhookReceiver } from '../helpers/webhook-receiver.ts';

const NOW = new Date('2026-12-07T05:00:00.000Z');
const event: DomainEvent = {
  id: '0b0e7c5e-9a43-4d1f-8c11-1f2e3d4c5b6a',
  type: 'manifest.pushed',
  occurredAt: NOW.toISOString(),
  target: {
    repository: 'team/app',
    digest: `sha256:${'c'.repeat(64)}` as Digest,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    size: 100,
    tag: 'latest',
    tags: ['latest'],
  },
  actor: { name: 'alice', kind: 'user' },
  request: null,
};

function context(attempt: number, maxAttempts = WEBHOOK_MAX_ATTEMPTS): JobContext {
  return { id: 41, queue: 'webhook-delivery', attempt, maxAttempts, signal: new AbortController().signal };
}

for (const kind of await testDatabases()) {
  describe(`webhook delivery job on ${kind.dialect}`, { skip: kind.skip }, () => {
    let db: TestDatabase;
    let store: WebhookStore;
    let receiver: WebhookReceiver | null;
    let outcomes: DeliveryOutcome[];
    beforeEach(async () => {
      db = await kind.create();
      store = db.store.webhookStore();
      receiver = null;
      outcomes = [];
    });
    afterEach(async () => {
      await receiver?.close();
      await db.cleanup();
    });

    async function setup(
      respond: Responder,
      overrides: Partial<NewWebhook> = {},
      allowedHosts = ['127.0.0.1'],
    ) {
      receiver = await startReceiver(respond);
      const webhook = await store.create({
        name: 'ci',
        namespace: 'team',
        url: `${receiver.url}/hook`,
        format: 'distribution',
        events: [],
        repositoryGlob: '**',
        tagGlob: '*',
        includePulls: false,
        headers: { Authorization: 'Bearer r' },
        secret: generateSecret(),
        createdBy: null,
        ...overrides,
      });
      const handler = createWebhookDeliveryHandler({
        store,
        guard: new AddressGuard(allowedHosts),
        timeoutMs: 5000,
        deliveryLogSize: 50,
        render: { baseUrl: null, source: { addr: 'test:5000', instanceID: 'i-1' } },
        logger: { debug() {}, info() {}, warn() {}, error() {} },
        onOutcome: (o) => outcomes.push(o),
        now: () => NOW,
      });
      const payload: WebhookDeliveryPayload = { webhookId: webhook.id, event };
      return { webhook, handler, payload, receiver };
    }

    it('retries after a 500 at the scheduled time, then delivers; the log shows failed then delivered', async () => {
      const {
        webhook,
        handler,
        payload,
        receiver: r,
      } = await setup((_req, i) => (i === 0 ? { status: 500, body: 'boom' } : { status: 200, body: 'ok' }));
      const error = await handler(payload, context(1)).then(
        () => null,
        (e: unknown) => e,
      );
      assert.ok(error instanceof RetryLaterError, String(error));
      assert.equal(error.retryAt.getTime(), NOW.getTime() + 5_000);
      await handler(payload, context(2));
      assert.equal(r.requests.length, 2);
      // Both attempts carry the event id and verify with the endpoint's secret.
      for (const request of r.requests) {
        assert.equal(verify(webhook.secret, request.headers, request.body, { now: NOW }), event.id);
        assert.equal(request.headers['content-type'], 'application/vnd.docker.distribution.events.v2+json');
        assert.equal(request.headers['authorization'], 'Bearer r');
        const body = JSON.parse(request.body) as { events: { id: string; action: string }[] };
        assert.equal(body.events[0]?.id, event.id);
        assert.equal(body.events[0]?.action, 'push');
      }
      const log = await store.listDeliveries(webhook.id, { limit: 10 });
      assert.deepEqual(
        log.items.map((d) => [d.attempt, d.outcome, d.statusCode, d.responseSnippet, d.jobId, d.eventId]),
        [
          [2, 'delivered', 200, 'ok', 41, event.id],
          [1, 'failed', 500, 'boom', 41, event.id],
        ],
      );
      assert.deepEqual(outcomes, ['failed', 'delivered']);
    });

    it('honours a later Retry-After, and the last attempt is dead', async () => {
      const { webhook, handler, payload } = await setup(() => ({
        status: 503,
        headers: { 'retry-after': '3600' },
      }));
      await assert.rejects(handler(payload, context(1)), (e: unknown) => {
        assert.ok(e instanceof RetryLaterError);
        assert.equal(e.retryAt.getTime(), NOW.getTime() + 3_600_000);
        return true;
      });
      await assert.rejects(handler(payload, context(WEBHOOK_MAX_ATTEMPTS)), PermanentJobError);
      const log = await store.listDeliveries(webhook.id, { limit: 10 });
      assert.deepEqual(
        log.items.map((d) => d.outcome),
        ['dead', 'failed'],
      );
    });

    it('disables the endpoint on 410 Gone and finishes', async () => {
      const { webhook, handler, payload, receiver: r } = await setup(() => ({ status: 410 }));
      await handler(payload, context(1));
      const after = await store.get(webhook.id);
      assert.equal(after?.enabled, false);
      assert.match(after?.disabledReason ?? '', /410 Gone/);
      assert.equal((await store.listDeliveries(webhook.id, { limit: 10 })).items[0]?.outcome, 'gone');
      assert.deepEqual(outcomes, ['gone']);
      // A later job for the disabled endpoint sends nothing.
      await handler(payload, context(1));
      assert.equal(r.requests.length, 1);
    });

    it('refuses a private address not in allowedHosts: PermanentJobError, outcome refused, nothing sent', async () => {
      const { webhook, handler, payload, receiver: r } = await setup(() => ({ status: 200 }), {}, []);
      await assert.rejects(handler(payload, context(1)), PermanentJobError);
      assert.equal(r.requests.length, 0);
      const [entry] = (await store.listDeliveries(webhook.id, { limit: 10 })).items;
      assert.equal(entry?.outcome, 'refused');
      assert.match(entry?.error ?? '', /127\.0\.0\.1/);
      assert.deepEqual(outcomes, ['refused']);
    });

    it('sends CloudEvents, and a test event, through the same signed path', async () => {
      const {
        webhook,
        handler,
        receiver: r,
      } = await setup(() => ({ status: 204 }), { format: 'cloudevents' });
      const test = createTestEvent(webhook, { actor: { name: 'root', kind: 'user' }, request: null }, NOW);
      await handler({ webhookId: webhook.id, event: test }, context(1, 1));
      await handler({ webhookId: webhook.id, event }, context(1));
      assert.equal(r.requests.length, 2);
      const [first, second] = r.requests;
      assert.ok(first && second);
      assert.equal(first.headers['content-type'], 'application/cloudevents+json');
      assert.equal(verify(webhook.secret, first.headers, first.body, { now: NOW }), test.id);
      assert.equal((JSON.parse(first.body) as { type: string }).type, 'io.berth.webhook.test');
      assert.equal((JSON.parse(second.body) as { subject: string }).subject, 'team/app:latest');
      assert.deepEqual(
        (await store.listDeliveries(webhook.id, { limit: 10 })).items.map((d) => d.eventType),
        ['manifest.pushed', 'webhook.test'],
      );
    });

    it('signs with both secrets after a rotation; does nothing for a deleted endpoint', async () => {
      const { webhook, handler, payload, receiver: r } = await setup(() => ({ status: 200 }));
      const rotated = await store.rotateSecret(
        webhook.id,
        generateSecret(),
        new Date(NOW.getTime() + 86_400_000),
      );
      assert.ok(rotated);
      await handler(payload, context(1));
      const request = r.requests[0];
      assert.ok(request);
      assert.equal(String(request.headers['webhook-signature']).split(' ').length, 2);
      assert.equal(verify(webhook.secret, request.headers, request.body, { now: NOW }), event.id);
      assert.equal(verify(rotated.secret, request.headers, request.body, { now: NOW }), event.id);
      await store.delete(webhook.id);
      await handler(payload, context(1));
      assert.equal(r.requests.length, 1);
    });
  });
}

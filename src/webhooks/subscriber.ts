/**
 * The webhooks' subscriber to domain events: the event relay hands it each committed batch, and it enqueues one
 * `webhook-delivery` job per event and matching endpoint. The dedupe key (event id and endpoint id) makes a relay
 * that hands the same batch twice (a retry, or two instances racing) enqueue each delivery once.
 */
import { randomUUID } from 'node:crypto';
import type { DomainEvent, EventContext } from '../events/event.ts';
import type { JobQueue } from '../jobs/job.ts';
import { silentLogger, type Logger } from '../logger.ts';
import type { WebhookRecord, WebhookStore } from '../metadata/webhook-store.ts';
import { deliveryDedupeKey, WEBHOOK_DELIVERY_QUEUE, type WebhookDeliveryPayload } from './delivery-job.ts';
import { TEST_EVENT_TYPE, type WebhookTestEvent } from './formats.ts';
import { webhookMatches } from './matcher.ts';

export class WebhookSubscriber {
  readonly #store: WebhookStore;
  readonly #logger: Logger;

  constructor(options: { readonly store: WebhookStore; readonly logger?: Logger }) {
    this.#store = options.store;
    this.#logger = options.logger ?? silentLogger;
  }

  /**
   * Enqueues the deliveries of `events` to every enabled endpoint that matches each of them (endpoints read once
   * per call). Resolves when all are enqueued; rejects when the store or the queue fails (the relay retries the
   * batch, and the dedupe keys drop what was already enqueued).
   */
  async handle(events: readonly DomainEvent[], queue: JobQueue): Promise<void> {
    if (events.length === 0) return;
    const webhooks = await this.#store.listEnabled();
    if (webhooks.length === 0) return;
    // One insert for the whole batch: under load the relay hands over many events at once.
    const jobs: { payload: WebhookDeliveryPayload; options: { dedupeKey: string } }[] = [];
    for (const event of events) {
      for (const webhook of webhooks) {
        if (!webhookMatches(webhook, event)) continue;
        jobs.push({
          payload: { webhookId: webhook.id, event },
          options: { dedupeKey: deliveryDedupeKey(event.id, webhook.id) },
        });
      }
    }
    if (jobs.length === 0) return;
    const added = await queue.enqueueMany(WEBHOOK_DELIVERY_QUEUE, jobs);
    this.#logger.debug(
      { events: events.length, deliveries: jobs.length, added },
      'webhook deliveries enqueued',
    );
  }
}

/** A `webhook.test` event for `webhook`, caused by `context`. */
export function createTestEvent(
  webhook: Pick<WebhookRecord, 'id' | 'name'>,
  context: EventContext,
  now: Date = new Date(),
): WebhookTestEvent {
  return {
    id: randomUUID(),
    type: TEST_EVENT_TYPE,
    occurredAt: now.toISOString(),
    webhook: { id: webhook.id, name: webhook.name },
    actor: context.actor,
    request: context.request,
  };
}

/**
 * The "send a test event" action: enqueues a `webhook.test` delivery to `webhook` (whatever its filters), signed
 * and delivered like any other, and recorded in its delivery log. One attempt only: the admin wants to see the
 * answer now, not a retry hours later. Resolves to the event id and the job id.
 */
export async function sendTestEvent(
  webhook: Pick<WebhookRecord, 'id' | 'name'>,
  queue: JobQueue,
  context: EventContext,
): Promise<{ eventId: string; jobId: number | null }> {
  const event = createTestEvent(webhook, context);
  const payload: WebhookDeliveryPayload = { webhookId: webhook.id, event };
  const jobId = await queue.enqueue(WEBHOOK_DELIVERY_QUEUE, payload, {
    dedupeKey: deliveryDedupeKey(event.id, webhook.id),
    maxAttempts: 1,
  });
  return { eventId: event.id, jobId };
}

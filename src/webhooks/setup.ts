/**
 * Webhooks put together: the delivery handler on the job runner, the event subscriber that enqueues deliveries,
 * and what the admin use cases need (the SSRF check of new URLs, test events, redelivery).
 */
import type { WebhookServiceDeps } from '../admin/webhook-service.ts';
import type { Config } from '../config/schema.ts';
import type { EventContext } from '../events/event.ts';
import type { EventSubscriber } from '../events/relay.ts';
import type { JobRunner } from '../jobs/runner.ts';
import type { Logger } from '../logger.ts';
import type { DeliveryOutcome, WebhookStore } from '../metadata/webhook-store.ts';
import { AddressGuard, AddressRefusedError } from './address-guard.ts';
import {
  createWebhookDeliveryHandler,
  WEBHOOK_DELIVERY_QUEUE,
  WEBHOOK_MAX_ATTEMPTS,
} from './delivery-job.ts';
import { processEventSource } from './formats.ts';
import { sendTestEvent, WebhookSubscriber } from './subscriber.ts';

export interface Webhooks {
  /** Hands committed events to the endpoints that want them (one delivery job per event and endpoint). */
  readonly subscriber: EventSubscriber;
  /** What the admin API and `berth webhooks` need. */
  readonly admin: WebhookServiceDeps;
}

export interface WebhookSetupOptions {
  readonly store: WebhookStore;
  readonly jobs: JobRunner;
  readonly logger: Logger;
  /** Called with the outcome of every delivery attempt (metrics). */
  readonly onOutcome?: (outcome: DeliveryOutcome) => void;
}

/** Registers the delivery queue on `jobs` (before it starts) and returns the subscriber and the admin deps. */
export function setUpWebhooks(config: Config, options: WebhookSetupOptions): Webhooks {
  const { store, jobs, logger } = options;
  const guard = new AddressGuard(config.webhooks.allowedHosts);
  jobs.register(
    WEBHOOK_DELIVERY_QUEUE,
    createWebhookDeliveryHandler({
      store,
      guard,
      timeoutMs: config.webhooks.timeout,
      deliveryLogSize: config.webhooks.deliveryLogSize,
      render: { baseUrl: config.publicUrl, source: processEventSource(listenPort(config.listen)) },
      logger,
      ...(options.onOutcome ? { onOutcome: options.onOutcome } : {}),
    }),
    { maxAttempts: WEBHOOK_MAX_ATTEMPTS },
  );
  const subscriber = new WebhookSubscriber({ store, logger });
  return {
    subscriber: { name: 'webhooks', handle: (events) => subscriber.handle(events, jobs) },
    admin: {
      store,
      secretGracePeriod: config.webhooks.secretGracePeriod,
      async checkUrl(url) {
        try {
          await guard.check(url);
        } catch (e) {
          // A name that does not resolve now may later: deliveries check again, after every resolution.
          if (e instanceof AddressRefusedError) throw e;
        }
      },
      async sendTest(webhook, actor) {
        const context: EventContext = {
          actor: actor.principal
            ? { name: actor.principal.name, kind: actor.principal.kind }
            : { name: 'berth', kind: 'system' },
          request: null,
        };
        await sendTestEvent(webhook, jobs, context);
      },
      async redeliver(jobId) {
        const job = await jobs.get(jobId);
        if (job === null || job.queue !== WEBHOOK_DELIVERY_QUEUE || job.state !== 'dead') return false;
        return (await jobs.retry(jobId))?.changed ?? false;
      },
    },
  };
}

/** The port of a `HOST:PORT` listen address; undefined for 0 (a random port). */
function listenPort(listen: string): number | undefined {
  const port = Number(/:(\d+)$/.exec(listen)?.[1] ?? 0);
  return port === 0 ? undefined : port;
}

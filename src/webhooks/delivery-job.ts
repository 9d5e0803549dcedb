/**
 * The handler of the `webhook-delivery` job queue: one job per event and endpoint (the event travels in the
 * payload), one attempt per run. The runner retries it when it throws `RetryLaterError` at the time the Standard
 * Webhooks schedule (or the receiver's `Retry-After`) gives, up to `WEBHOOK_MAX_ATTEMPTS` attempts.
 *
 * Every attempt is recorded in the endpoint's delivery log. The `webhook-id` header is the event id on every
 * attempt, so a receiver drops the duplicates that at-least-once delivery (a retry after a lost answer, a job
 * run again after its instance died) can send.
 */
import type { JobHandler } from '../jobs/job.ts';
import { PermanentJobError, RetryLaterError } from '../jobs/job.ts';
import type { Logger } from '../logger.ts';
import type { DeliveryOutcome, WebhookStore } from '../metadata/webhook-store.ts';
import { AddressRefusedError, type AddressGuard, type CheckedAddress } from './address-guard.ts';
import { deliver, deliveryHeaders, type DeliveryResult } from './deliver.ts';
import { renderEvent, type RenderOptions, type WebhookEvent } from './formats.ts';
import { nextAttemptAt } from './retry-schedule.ts';
import { sign } from './signing.ts';

export { WEBHOOK_MAX_ATTEMPTS } from './retry-schedule.ts';

/** The job queue of webhook deliveries. */
export const WEBHOOK_DELIVERY_QUEUE = 'webhook-delivery';

/** A delivery job's payload. */
export interface WebhookDeliveryPayload {
  readonly webhookId: number;
  readonly event: WebhookEvent;
}

export interface WebhookDeliveryOptions {
  readonly store: WebhookStore;
  readonly guard: AddressGuard;
  /** `webhooks.timeout`, in ms. */
  readonly timeoutMs: number;
  /** `webhooks.deliveryLogSize`. */
  readonly deliveryLogSize: number;
  readonly render: RenderOptions;
  readonly logger: Logger;
  /** Called once per attempt with its outcome (metrics). */
  readonly onOutcome?: (outcome: DeliveryOutcome) => void;
  readonly now?: () => Date;
}

/** The dedupe key of the delivery of `eventId` to endpoint `webhookId`. */
export function deliveryDedupeKey(eventId: string, webhookId: number): string {
  return `${eventId}:${webhookId}`;
}

/**
 * The job handler. Outcomes: the endpoint gone or disabled, or the event not expressible in its format -> done
 * without sending; 2xx -> `delivered`; 410 -> `gone`, the endpoint is disabled and the job is done; the address
 * refused -> `refused` and `PermanentJobError`; any other failure -> `failed` and `RetryLaterError`, or on the
 * last attempt `dead` and `PermanentJobError`.
 */
export function createWebhookDeliveryHandler(
  options: WebhookDeliveryOptions,
): JobHandler<WebhookDeliveryPayload> {
  const now = options.now ?? ((): Date => new Date());
  const { store, logger } = options;

  return async (payload, context) => {
    const { webhookId, event } = payload;
    const log = { webhookId, eventId: event.id, eventType: event.type, attempt: context.attempt };
    const webhook = await store.get(webhookId);
    if (webhook === null) {
      logger.info(log, 'webhook delivery dropped: the endpoint no longer exists');
      return;
    }
    if (!webhook.enabled) {
      logger.info(
        { ...log, reason: webhook.disabledReason },
        'webhook delivery dropped: the endpoint is disabled',
      );
      return;
    }
    const rendered = renderEvent(webhook.format, event, options.render);
    if (rendered === null) {
      logger.debug(
        { ...log, format: webhook.format },
        'webhook delivery skipped: the format has no such event',
      );
      return;
    }

    const record = async (
      outcome: DeliveryOutcome,
      result: Pick<DeliveryResult, 'statusCode' | 'durationMs' | 'error' | 'snippet'>,
    ): Promise<void> => {
      await store.recordDelivery(
        {
          webhookId,
          eventId: event.id,
          eventType: event.type,
          jobId: context.id,
          attempt: context.attempt,
          outcome,
          statusCode: result.statusCode,
          durationMs: result.durationMs,
          error: result.error,
          responseSnippet: result.snippet,
        },
        options.deliveryLogSize,
      );
      options.onOutcome?.(outcome);
    };

    const refuse = async (message: string): Promise<never> => {
      await record('refused', { statusCode: null, durationMs: 0, error: message, snippet: null });
      logger.warn({ ...log, error: message }, 'webhook delivery refused');
      throw new PermanentJobError(`webhook ${webhookId}: ${message}`);
    };
    const failed = async (result: DeliveryResult): Promise<never> => {
      const message = `webhook ${webhookId}: ${result.error ?? 'failed'}`;
      if (context.attempt >= context.maxAttempts) {
        await record('dead', result);
        logger.warn({ ...log, error: result.error }, 'webhook delivery failed for the last time');
        throw new PermanentJobError(message);
      }
      await record('failed', result);
      const retryAt = nextAttemptAt(context.attempt, now(), result.retryAfter);
      logger.info({ ...log, error: result.error, retryAt: retryAt.toISOString() }, 'webhook delivery failed');
      throw new RetryLaterError(message, retryAt);
    };

    if (!URL.canParse(webhook.url)) return refuse('the endpoint URL is not a valid URL');
    const url = new URL(webhook.url);
    let address: CheckedAddress;
    try {
      address = await options.guard.check(url);
    } catch (error) {
      const message = (error as Error).message;
      if (error instanceof AddressRefusedError) return refuse(message);
      // A name that does not resolve (now): retried like any failure to connect.
      return failed({
        ok: false,
        statusCode: null,
        durationMs: 0,
        error: message,
        snippet: null,
        retryAfter: null,
      });
    }

    const headers = deliveryHeaders(
      webhook.headers,
      rendered.contentType,
      sign(event.id, rendered.body, webhook, now()),
    );
    const result = await deliver(
      { url, address, headers, body: rendered.body },
      { timeoutMs: options.timeoutMs, signal: context.signal, now },
    );
    if (result.ok) {
      await record('delivered', result);
      return;
    }
    if (result.statusCode === 410) {
      await record('gone', result);
      const reason = `the receiver answered 410 Gone at ${now().toISOString()}`;
      await store.update(webhookId, { enabled: false, disabledReason: reason });
      logger.warn({ ...log }, 'webhook endpoint disabled: the receiver answered 410 Gone');
      return;
    }
    return failed(result);
  };
}

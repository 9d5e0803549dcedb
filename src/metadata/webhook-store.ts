/**
 * The WebhookStore port: webhook endpoints (global, or per namespace) and the log of their delivery attempts.
 * One implementation, `KyselyWebhookStore` (get it with `KyselyMetadataStore.webhookStore()`), on the tables of
 * migration 0006.
 *
 * Names are unique per scope (the namespace, or global). Secrets are stored as given (`whsec_` + base64): the
 * registry must sign with them, so they cannot be hashed; the admin API shows a secret only when it is created or
 * rotated.
 */
import type { EventType } from '../events/event.ts';
import type { Page } from './store.ts';

/** How an endpoint wants its events. */
export type WebhookFormat = 'distribution' | 'cloudevents';

export interface WebhookRecord {
  readonly id: number;
  readonly name: string;
  /** null: global, hears about every repository; else the namespace whose repositories it hears about. */
  readonly namespace: string | null;
  readonly url: string;
  readonly format: WebhookFormat;
  /** The event types sent; empty: every type but pulls (pulls need `includePulls`). */
  readonly events: readonly EventType[];
  /** Glob on the repository name (`*` within a path component, `**` across); `**` matches all. */
  readonly repositoryGlob: string;
  /** Glob on the tag, for events with a tag; `*` matches all. Events without a tag pass. */
  readonly tagGlob: string;
  /** Pull events are sent (they are recorded only while some endpoint wants them). */
  readonly includePulls: boolean;
  /** Static request headers (e.g. `Authorization` for the receiver). */
  readonly headers: Readonly<Record<string, string>>;
  /** The current `whsec_...` signing secret. */
  readonly secret: string;
  /** The secret before the last rotation, also signed with until `previousSecretUntil`. */
  readonly previousSecret: string | null;
  readonly previousSecretUntil: Date | null;
  readonly enabled: boolean;
  /** Why it was disabled (e.g. the receiver answered 410 Gone), or null. */
  readonly disabledReason: string | null;
  readonly createdBy: string | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface NewWebhook {
  readonly name: string;
  readonly namespace: string | null;
  readonly url: string;
  readonly format: WebhookFormat;
  readonly events: readonly EventType[];
  readonly repositoryGlob: string;
  readonly tagGlob: string;
  readonly includePulls: boolean;
  readonly headers: Readonly<Record<string, string>>;
  readonly secret: string;
  readonly createdBy: string | null;
}

/** Fields of an endpoint that an update may change (absent: unchanged). */
export interface WebhookPatch {
  readonly url?: string;
  readonly format?: WebhookFormat;
  readonly events?: readonly EventType[];
  readonly repositoryGlob?: string;
  readonly tagGlob?: string;
  readonly includePulls?: boolean;
  readonly headers?: Readonly<Record<string, string>>;
  /** true re-enables (clearing the reason); false disables with `disabledReason`. */
  readonly enabled?: boolean;
  readonly disabledReason?: string | null;
}

/** What happened to one delivery attempt. */
export type DeliveryOutcome = 'delivered' | 'failed' | 'dead' | 'gone' | 'refused';

export interface DeliveryAttemptInput {
  readonly webhookId: number;
  readonly eventId: string;
  readonly eventType: string;
  readonly jobId: number | null;
  readonly attempt: number;
  readonly outcome: DeliveryOutcome;
  readonly statusCode: number | null;
  readonly durationMs: number;
  readonly error: string | null;
  /** The start of the response body (bounded by the caller). */
  readonly responseSnippet: string | null;
}

export interface DeliveryAttemptRecord extends DeliveryAttemptInput {
  readonly id: number;
  readonly at: Date;
}

export interface WebhookStore {
  /** Creates an endpoint; throws `ConflictError` when its scope has one of that name. */
  create(webhook: NewWebhook): Promise<WebhookRecord>;

  /** The endpoint, or null. */
  get(id: number): Promise<WebhookRecord | null>;

  /** The endpoint named `name` in `namespace` (null: global), or null. */
  getByName(namespace: string | null, name: string): Promise<WebhookRecord | null>;

  /**
   * Endpoints ordered by id, after id `after`, at most `limit`. `namespace`: undefined lists every endpoint, null
   * the global ones, a string that namespace's.
   */
  list(options: { namespace?: string | null; limit: number; after?: number }): Promise<Page<WebhookRecord>>;

  /** Every enabled endpoint (what the event relay matches events against). */
  listEnabled(): Promise<WebhookRecord[]>;

  /** True when an enabled endpoint wants pull events. */
  wantsPulls(): Promise<boolean>;

  /** Applies `patch`; returns the updated endpoint, or null when it does not exist. */
  update(id: number, patch: WebhookPatch): Promise<WebhookRecord | null>;

  /**
   * Replaces the secret; the old one stays valid for signing until `previousUntil`. Returns the updated endpoint,
   * or null when it does not exist.
   */
  rotateSecret(id: number, secret: string, previousUntil: Date): Promise<WebhookRecord | null>;

  /** Deletes the endpoint and its delivery log; false when it did not exist. */
  delete(id: number): Promise<boolean>;

  /**
   * Appends a delivery attempt to the endpoint's log, which keeps about its `keep` most recent attempts (trimmed
   * now and then, so it may hold a few more for a while). Does nothing when the endpoint no longer exists.
   */
  recordDelivery(attempt: DeliveryAttemptInput, keep: number): Promise<void>;

  /** The endpoint's delivery attempts, newest first, before id `before`, at most `limit`. */
  listDeliveries(
    webhookId: number,
    options: { limit: number; before?: number; outcome?: DeliveryOutcome },
  ): Promise<Page<DeliveryAttemptRecord>>;
}

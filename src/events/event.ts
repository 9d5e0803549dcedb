/**
 * Domain events: what happened to the registry's content, as the registry use cases (`registry/`) report it.
 * A metadata write stores its events in the same transaction (the outbox, see `metadata/store.ts`), so a
 * committed change always has its events and a rolled-back one never does. Subscribers (the audit log, webhooks,
 * and later replication and scanning) receive them from there.
 *
 * Later producers add their own types to `EventType`; a subscriber ignores types it does not know.
 */
import type { Digest } from '../oci/digest.ts';

/** Every event type, as stored and as sent in CloudEvents (`type` is `io.berth.<type>`). */
export const EVENT_TYPES = [
  'repository.created',
  'repository.deleted',
  'manifest.pushed',
  'manifest.deleted',
  'manifest.pulled',
  'tag.moved',
  'tag.deleted',
  'blob.mounted',
  'blob.deleted',
  'blob.pulled',
  'gc.completed',
  'retention.completed',
  'quota.warning',
  'quota.exceeded',
  'replication.completed',
  'replication.failed',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

/** Pull events are recorded outside the write path, best effort, and only while some subscription wants them. */
export const PULL_EVENT_TYPES: readonly EventType[] = ['manifest.pulled', 'blob.pulled'];

export function isEventType(value: string): value is EventType {
  return (EVENT_TYPES as readonly string[]).includes(value);
}

/** Who caused the event. */
export interface EventActor {
  /** Account name (user, robot, external token subject), `anonymous`, or the system task's name. */
  readonly name: string;
  readonly kind: 'user' | 'robot' | 'external' | 'anonymous' | 'system';
}

/** The HTTP request that caused the event, when there was one. */
export interface EventRequest {
  /** Fastify's request id. */
  readonly id: string;
  /** The client's address (behind trusted proxies, the client's, not the proxy's). */
  readonly addr: string;
  /** The `Host` the client asked for. */
  readonly host: string;
  readonly method: string;
  readonly userAgent: string;
}

/** Who and what caused a change: passed by callers of the use cases down to the events they produce. */
export interface EventContext {
  readonly actor: EventActor | null;
  readonly request: EventRequest | null;
}

/** What the event is about. Fields absent when they do not apply. */
export interface EventTarget {
  readonly repository: string;
  readonly digest?: Digest;
  readonly mediaType?: string;
  readonly size?: number;
  readonly tag?: string;
  /** `tag.moved`: the manifest the tag pointed at before. */
  readonly previousDigest?: Digest;
  /** `blob.mounted`: the repository the blob was mounted from, when known. */
  readonly from?: string;
  /** `manifest.pushed`: every tag the push set (the manifest's `tag` is the first of them). */
  readonly tags?: readonly string[];
  /** `retention.completed` (whose `repository` is the namespace): tags the run untagged. */
  readonly tagsUntagged?: number;
  /** `retention.completed`: untagged manifests the run deleted. */
  readonly manifestsDeleted?: number;
  /** `quota.*`: the namespace of `repository`, its usage (bytes, before a refused push) and its quota (bytes). */
  readonly namespace?: string;
  readonly usage?: number;
  readonly quota?: number;
}

export interface DomainEvent {
  /** A UUID, unique per event; subscribers use it to drop duplicates (delivery is at least once). */
  readonly id: string;
  readonly type: EventType;
  /** ISO 8601 UTC time of the change. */
  readonly occurredAt: string;
  readonly target: EventTarget;
  readonly actor: EventActor | null;
  readonly request: EventRequest | null;
  /**
   * Figures of an event about more than one piece of content (`gc.completed`: what the run freed), absent
   * otherwise. Such an event's `target.repository` is empty when it concerns the whole registry.
   */
  readonly detail?: Readonly<Record<string, unknown>>;
}

/** A domain event not yet given an id and time (what the use cases produce). */
export type NewDomainEvent = Omit<DomainEvent, 'id' | 'occurredAt'>;

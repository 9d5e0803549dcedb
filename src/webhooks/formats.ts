/**
 * What a webhook endpoint receives: an event rendered in the endpoint's format.
 *
 * - `distribution`: the notification envelope of the CNCF Distribution registry
 *   (`application/vnd.docker.distribution.events.v2+json`), with exactly its field names and its omit-empty rules
 *   (Go's `omitempty`: empty strings and zero numbers are left out; the `target`, `request`, `actor` and `source`
 *   objects are always present, and `request.id`, `request.method` and `request.useragent` always have a value),
 *   so receivers written for Distribution work unchanged.
 * - `cloudevents`: CloudEvents 1.0 structured JSON (`application/cloudevents+json`).
 *
 * See docs/webhooks.md for the mapping of Berth's event types to Distribution's actions.
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { DomainEvent, EventActor, EventRequest } from '../events/event.ts';
import type { WebhookFormat } from '../metadata/webhook-store.ts';

export const DISTRIBUTION_EVENTS_MEDIA_TYPE = 'application/vnd.docker.distribution.events.v2+json';
export const CLOUDEVENTS_MEDIA_TYPE = 'application/cloudevents+json';

/** The type of the synthetic event of the "send a test event" action. */
export const TEST_EVENT_TYPE = 'webhook.test';

/** The event the "send a test event" action sends; it travels the same path as a domain event. */
export interface WebhookTestEvent {
  readonly id: string;
  readonly type: typeof TEST_EVENT_TYPE;
  readonly occurredAt: string;
  /** The endpoint the test was sent to. */
  readonly webhook: { readonly id: number; readonly name: string };
  readonly actor: EventActor | null;
  readonly request: EventRequest | null;
}

/** What a webhook delivery carries. */
export type WebhookEvent = DomainEvent | WebhookTestEvent;

export function isTestEvent(event: WebhookEvent): event is WebhookTestEvent {
  return event.type === TEST_EVENT_TYPE;
}

/** The registry node that generated the event (Distribution's `source`). */
export interface EventSource {
  /** Host name and port of the instance. */
  readonly addr: string;
  /** Identifies the running process; changes at each start. */
  readonly instanceID: string;
}

export interface RenderOptions {
  /** The registry's public URL (`publicUrl`); null: `https://<the request's Host>`. Used for URLs and sources. */
  readonly baseUrl: string | null;
  readonly source: EventSource;
}

export interface RenderedPayload {
  readonly contentType: string;
  /** The exact bytes sent and signed. */
  readonly body: string;
}

const INSTANCE_ID = randomUUID();

/** This process's `source`: the host name with `port` (when given) and an id drawn at start. */
export function processEventSource(port?: number): EventSource {
  return { addr: port === undefined ? hostname() : `${hostname()}:${port}`, instanceID: INSTANCE_ID };
}

/** Renders `event` for an endpoint of `format`; null when the format has no way to say it (see each renderer). */
export function renderEvent(
  format: WebhookFormat,
  event: WebhookEvent,
  options: RenderOptions,
): RenderedPayload | null {
  return format === 'distribution' ? renderDistribution(event, options) : renderCloudEvent(event, options);
}

type DistributionAction = 'push' | 'pull' | 'delete' | 'mount' | 'test';

/**
 * Distribution's action for an event type; null for `repository.created`, which Distribution never reports (a
 * repository appears with its first push, which is reported), nor for `gc.completed`, `retention.completed` and the
 * `quota.*` events, which it has no action for.
 */
export function distributionAction(type: WebhookEvent['type']): DistributionAction | null {
  switch (type) {
    case 'manifest.pushed':
    case 'tag.moved':
      return 'push';
    case 'manifest.pulled':
    case 'blob.pulled':
      return 'pull';
    case 'manifest.deleted':
    case 'tag.deleted':
    case 'blob.deleted':
    case 'repository.deleted':
      return 'delete';
    case 'blob.mounted':
      return 'mount';
    case 'webhook.test':
      return 'test';
    case 'repository.created':
    case 'gc.completed':
    case 'retention.completed':
    case 'quota.warning':
    case 'quota.exceeded':
    case 'replication.completed':
    case 'replication.failed':
      return null;
  }
}

/** The base URL of content links: the configured public URL, else the Host the client asked for. */
function base(event: WebhookEvent, options: RenderOptions): string | null {
  if (options.baseUrl !== null) return options.baseUrl.replace(/\/+$/, '');
  return event.request ? `https://${event.request.host}` : null;
}

/** Sets `key` only when `value` is a non-empty string or a non-zero number (Go's `omitempty`). */
function put(into: Record<string, unknown>, key: string, value: string | number | undefined | null): void {
  if (value === undefined || value === null || value === '' || value === 0) return;
  into[key] = value;
}

/**
 * Distribution's envelope with one event. Field order is Distribution's (Go marshals in struct order). Pushes and
 * pulls of manifests, blob pulls and mounts carry the content's descriptor and URL (manifest URLs by digest, as
 * Distribution builds them); deletes carry the digest, the tag, or only the repository, as Distribution's
 * manifest, tag and repository deletes do. Null for `repository.created`.
 */
export function renderDistribution(event: WebhookEvent, options: RenderOptions): RenderedPayload | null {
  const action = distributionAction(event.type);
  if (action === null) return null;
  const target: Record<string, unknown> = {};
  if (!isTestEvent(event)) {
    const t = event.target;
    const withContent = action === 'push' || action === 'pull' || action === 'mount';
    if (withContent) {
      put(target, 'mediaType', t.mediaType);
      put(target, 'size', t.size);
    }
    // Distribution's tag and repository deletes name no digest.
    if (event.type !== 'tag.deleted' && event.type !== 'repository.deleted') put(target, 'digest', t.digest);
    if (withContent) put(target, 'length', t.size);
    put(target, 'repository', t.repository);
    if (action === 'mount') put(target, 'fromRepository', t.from);
    const root = base(event, options);
    if (withContent && root !== null && t.digest !== undefined) {
      const kind = event.type.startsWith('blob.') ? 'blobs' : 'manifests';
      put(target, 'url', `${root}/v2/${t.repository}/${kind}/${t.digest}`);
    }
    put(target, 'tag', t.tag);
  }
  const request: Record<string, unknown> = { id: event.request?.id ?? '' };
  put(request, 'addr', event.request?.addr);
  put(request, 'host', event.request?.host);
  request['method'] = event.request?.method ?? '';
  request['useragent'] = event.request?.userAgent ?? '';
  const actor: Record<string, unknown> = {};
  put(actor, 'name', event.actor?.name);
  const source: Record<string, unknown> = {};
  put(source, 'addr', options.source.addr);
  put(source, 'instanceID', options.source.instanceID);
  const record = {
    id: event.id,
    timestamp: event.occurredAt,
    action,
    target,
    request,
    actor,
    source,
  };
  return { contentType: DISTRIBUTION_EVENTS_MEDIA_TYPE, body: JSON.stringify({ events: [record] }) };
}

/** CloudEvents `source`: the public URL, else `/registry/<host>` (the request's Host, else this instance's). */
export function cloudEventSource(event: WebhookEvent, options: RenderOptions): string {
  if (options.baseUrl !== null) return options.baseUrl.replace(/\/+$/, '');
  return `/registry/${event.request?.host ?? options.source.addr}`;
}

/**
 * A CloudEvents 1.0 structured-mode event: `type` is `io.berth.<event type>`, `subject` the repository with
 * `:tag` or `@digest`, `data` the target with the actor and request. Absent fields are left out.
 */
export function renderCloudEvent(event: WebhookEvent, options: RenderOptions): RenderedPayload {
  const data: Record<string, unknown> = {};
  let subject: string | undefined;
  if (isTestEvent(event)) {
    data['webhook'] = { id: event.webhook.id, name: event.webhook.name };
  } else {
    const t = event.target;
    subject =
      t.repository === ''
        ? undefined
        : t.tag !== undefined
          ? `${t.repository}:${t.tag}`
          : t.digest !== undefined
            ? `${t.repository}@${t.digest}`
            : t.repository;
    data['repository'] = t.repository;
    data['digest'] = t.digest;
    data['mediaType'] = t.mediaType;
    data['size'] = t.size;
    data['tag'] = t.tag;
    data['tags'] = t.tags;
    data['previousDigest'] = t.previousDigest;
    data['fromRepository'] = t.from;
    if (event.detail !== undefined) data['detail'] = event.detail;
    data['namespace'] = t.namespace;
    data['usage'] = t.usage;
    data['quota'] = t.quota;
    const root = base(event, options);
    if (root !== null && t.digest !== undefined && !event.type.endsWith('.deleted')) {
      const kind = event.type.startsWith('blob.') ? 'blobs' : 'manifests';
      data['url'] = `${root}/v2/${t.repository}/${kind}/${t.digest}`;
    }
  }
  data['actor'] = event.actor ? { name: event.actor.name, kind: event.actor.kind } : null;
  data['request'] = event.request
    ? {
        id: event.request.id,
        addr: event.request.addr,
        host: event.request.host,
        method: event.request.method,
        userAgent: event.request.userAgent,
      }
    : null;
  const cloudEvent = {
    specversion: '1.0',
    id: event.id,
    source: cloudEventSource(event, options),
    type: `io.berth.${event.type}`,
    time: event.occurredAt,
    subject,
    datacontenttype: 'application/json',
    data,
  };
  return { contentType: CLOUDEVENTS_MEDIA_TYPE, body: JSON.stringify(cloudEvent) };
}

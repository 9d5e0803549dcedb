/**
 * Which events an endpoint hears about: its scope (a namespace endpoint hears about the repositories of its
 * namespace, the first path component of their names, as authorization scopes them; a global one about all), its
 * event types, its repository glob and its tag glob.
 */
import { splitNamespace } from '../auth/authorizer.ts';
import { globMatch } from '../auth/glob.ts';
import { PULL_EVENT_TYPES, type DomainEvent } from '../events/event.ts';
import type { WebhookRecord } from '../metadata/webhook-store.ts';

/** The endpoint's filter fields (a `WebhookRecord` fits). */
export type WebhookFilter = Pick<
  WebhookRecord,
  'namespace' | 'events' | 'includePulls' | 'repositoryGlob' | 'tagGlob'
>;

/**
 * True when `event` is for `webhook`: in its scope; of a listed type (an empty list: every type but pulls); a pull
 * only when `includePulls` (and, with a list, listed); the repository matching `repositoryGlob`; and, for an event
 * with tags, one of them matching `tagGlob` (events without a tag pass).
 */
export function webhookMatches(webhook: WebhookFilter, event: DomainEvent): boolean {
  const repository = event.target.repository;
  if (webhook.namespace !== null && splitNamespace(repository).namespace !== webhook.namespace) return false;
  const isPull = PULL_EVENT_TYPES.includes(event.type);
  if (isPull && !webhook.includePulls) return false;
  if (webhook.events.length > 0 && !webhook.events.includes(event.type)) return false;
  if (!globMatch(webhook.repositoryGlob, repository)) return false;
  const tags = event.target.tags ?? (event.target.tag === undefined ? [] : [event.target.tag]);
  if (tags.length > 0 && !tags.some((tag) => globMatch(webhook.tagGlob, tag))) return false;
  return true;
}

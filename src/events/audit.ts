/**
 * The audit log as a subscriber of domain events: which events are audited, and how. The metadata store writes
 * the audit record in the same transaction as the change and its event (see `KyselyMetadataStore`), so the audit
 * log never misses a committed change and never records one that rolled back.
 */
import type { AuditEventInput } from '../metadata/auth-store.ts';
import type { DomainEvent } from './event.ts';

/** The audit record of `event`, or null when the event is not audited (it repeats another, or is a read). */
export function auditEntryOf(event: DomainEvent, time: Date): AuditEventInput | null {
  const { target } = event;
  let action: string;
  let where: string;
  let detail: Record<string, unknown> | null = null;
  switch (event.type) {
    case 'manifest.pushed':
      action = 'push';
      where =
        target.tag !== undefined
          ? `${target.repository}:${target.tag}`
          : `${target.repository}@${target.digest}`;
      detail = {
        digest: target.digest ?? null,
        ...(target.tags && target.tags.length > 1 ? { tags: target.tags } : {}),
      };
      break;
    case 'manifest.deleted':
    case 'blob.deleted':
      action = 'delete';
      where = `${target.repository}@${target.digest}`;
      break;
    case 'repository.deleted':
      action = 'repository.delete';
      where = target.repository;
      break;
    case 'tag.deleted':
      action = 'delete';
      where = `${target.repository}:${target.tag}`;
      detail = { digest: target.digest ?? null };
      break;
    default:
      return null;
  }
  const actor = event.actor;
  return {
    time,
    actor: actor === null || actor.kind === 'system' ? null : actor.name,
    actorKind: actor ? actor.kind : 'system',
    action,
    target: where,
    sourceAddr: event.request?.addr ?? null,
    success: true,
    detail,
  };
}

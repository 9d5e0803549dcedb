/**
 * The domain events each registry use case produces (see `events/event.ts`), built from what the metadata write
 * reports it changed. The store saves them in the write's own transaction.
 */
import type { EventContext, NewDomainEvent } from '../events/event.ts';
import type {
  DeleteManifestOutcome,
  DeleteRepositoryOutcome,
  DeleteTagOutcome,
  EventsOf,
  LinkBlobOutcome,
  PutManifestOutcome,
  UnlinkBlobOutcome,
} from '../metadata/store.ts';
import type { Digest } from '../oci/digest.ts';

/** No caller, no request: a change made by the registry itself. */
export const SYSTEM_CONTEXT: EventContext = { actor: { name: 'berth', kind: 'system' }, request: null };

function base(context: EventContext): Pick<NewDomainEvent, 'actor' | 'request'> {
  return { actor: context.actor, request: context.request };
}

function repositoryCreated(context: EventContext, repository: string): NewDomainEvent {
  return { type: 'repository.created', target: { repository }, ...base(context) };
}

/** A manifest push: the repository if new, the push (with its tags), and each tag moved from another manifest. */
export function manifestPushed(
  context: EventContext,
  manifest: { repository: string; digest: Digest; mediaType: string; size: number; tags: readonly string[] },
): EventsOf<PutManifestOutcome> {
  return (outcome) => {
    const { repository, digest, mediaType, size, tags } = manifest;
    const events: NewDomainEvent[] = [];
    if (outcome.repositoryCreated) events.push(repositoryCreated(context, repository));
    events.push({
      type: 'manifest.pushed',
      target: {
        repository,
        digest,
        mediaType,
        size,
        ...(tags.length > 0 ? { tag: tags[0] as string, tags } : {}),
      },
      ...base(context),
    });
    for (const [tag, previousDigest] of outcome.movedTags) {
      events.push({
        type: 'tag.moved',
        target: { repository, digest, mediaType, size, tag, previousDigest },
        ...base(context),
      });
    }
    return events;
  };
}

export function manifestDeleted(
  context: EventContext,
  repository: string,
  digest: Digest,
): EventsOf<DeleteManifestOutcome> {
  return (outcome) => [
    {
      type: 'manifest.deleted',
      target: {
        repository,
        digest,
        mediaType: outcome.mediaType,
        size: outcome.size,
        ...(outcome.tags.length > 0 ? { tags: outcome.tags } : {}),
      },
      ...base(context),
    },
  ];
}

export function tagDeleted(
  context: EventContext,
  repository: string,
  tag: string,
): EventsOf<DeleteTagOutcome> {
  return (outcome) => [
    {
      type: 'tag.deleted',
      target: { repository, tag, digest: outcome.digest, mediaType: outcome.mediaType },
      ...base(context),
    },
  ];
}

/** A blob linked by an upload: only the repository's creation is an event (blob pushes are not). */
export function blobLinked(context: EventContext, repository: string): EventsOf<LinkBlobOutcome> {
  return (outcome) => (outcome.repositoryCreated ? [repositoryCreated(context, repository)] : []);
}

export function blobMounted(
  context: EventContext,
  repository: string,
  blob: { digest: Digest; size: number },
  from: string | undefined,
): EventsOf<LinkBlobOutcome> {
  return (outcome) => [
    ...(outcome.repositoryCreated ? [repositoryCreated(context, repository)] : []),
    {
      type: 'blob.mounted',
      target: {
        repository,
        digest: blob.digest,
        size: blob.size,
        ...(from !== undefined ? { from } : {}),
      },
      ...base(context),
    },
  ];
}

export function repositoryDeleted(
  context: EventContext,
  repository: string,
): EventsOf<DeleteRepositoryOutcome> {
  return () => [{ type: 'repository.deleted', target: { repository }, ...base(context) }];
}

export function blobDeleted(
  context: EventContext,
  repository: string,
  digest: Digest,
): EventsOf<UnlinkBlobOutcome> {
  return (outcome) => [
    { type: 'blob.deleted', target: { repository, digest, size: outcome.size }, ...base(context) },
  ];
}

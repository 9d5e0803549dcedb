/** Repositories as a whole: deleting one with everything in it. */
import type { EventContext } from '../events/event.ts';
import { NameUnknownError, UnsupportedError } from '../oci/errors.ts';
import { repositoryDeleted, SYSTEM_CONTEXT } from './events.ts';
import type { RegistryDeps } from './options.ts';
import { ImmutableTagError } from './tag-immutability.ts';

export class RepositoryService {
  constructor(private readonly deps: RegistryDeps) {}

  /**
   * Deletes `name` with its tags, manifests and blob links (the bytes wait for garbage collection); NAME_UNKNOWN
   * when it does not exist, UNSUPPORTED when deletes are disabled, DENIED (`ImmutableTagError`) when it holds an
   * immutable tag. Returns what was removed.
   */
  async delete(
    name: string,
    context: EventContext = SYSTEM_CONTEXT,
  ): Promise<{ manifests: number; tags: number; blobs: number }> {
    if (!this.deps.options.deletes) throw new UnsupportedError('deletes are disabled on this registry');
    const immutable = await this.deps.immutableTags?.firstImmutableTag(name);
    if (immutable !== undefined && immutable !== null) throw new ImmutableTagError(name, immutable);
    let removed = { manifests: 0, tags: 0, blobs: 0 };
    const deleted = await this.deps.metadata.deleteRepository(name, (outcome) => {
      removed = { ...outcome };
      return repositoryDeleted(context, name)(outcome);
    });
    if (!deleted) throw new NameUnknownError(undefined, { detail: { name } });
    return removed;
  }
}

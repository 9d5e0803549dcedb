/**
 * Repositories as things to manage: deleting a whole repository (its tags, manifests and blob links; the bytes
 * wait for garbage collection). Allowed to system administrators and the admins of the repository's namespace;
 * the deletion is audited and reported as a `repository.deleted` event in the transaction that makes it.
 */
import { splitNamespace } from '../auth/authorizer.ts';
import type { EventContext } from '../events/event.ts';
import { NameUnknownError, UnsupportedError } from '../oci/errors.ts';
import { isValidRepositoryName } from '../oci/reference.ts';
import type { Registry } from '../registry/registry.ts';
import { ImmutableTagError } from '../registry/tag-immutability.ts';
import type { Actor, AdminService } from './admin-service.ts';
import { conflict, forbidden, invalid, notFound } from './errors.ts';

export interface RepositoryDeletion {
  readonly name: string;
  readonly manifests: number;
  readonly tags: number;
  /** Blob links removed (the bytes stay until garbage collection). */
  readonly blobs: number;
}

export class RepositoryAdmin {
  constructor(
    private readonly admin: AdminService,
    private readonly registry: Registry,
  ) {}

  /**
   * Deletes the repository `name`; not-found when it does not exist, conflict when deletes are disabled, forbidden
   * when it holds an immutable tag (`tag v1 of team/app is immutable`).
   */
  async delete(actor: Actor, name: string): Promise<RepositoryDeletion> {
    if (!isValidRepositoryName(name))
      throw invalid(`${JSON.stringify(name)} is not a repository name`, 'name');
    const { namespace } = splitNamespace(name);
    await this.admin.requireNamespaceAdmin(
      actor,
      namespace,
      'deleting the repositories of namespace',
      'repository.delete',
    );
    const context: EventContext = {
      actor: actor.principal
        ? { name: actor.principal.name, kind: actor.principal.kind }
        : { name: 'berth', kind: 'system' },
      request: null,
    };
    try {
      return { name, ...(await this.registry.repositories.delete(name, context)) };
    } catch (e) {
      if (e instanceof NameUnknownError) throw notFound(`repository ${name} does not exist`);
      if (e instanceof UnsupportedError) throw conflict(e.message);
      if (e instanceof ImmutableTagError) throw forbidden(e.message);
      throw e;
    }
  }
}

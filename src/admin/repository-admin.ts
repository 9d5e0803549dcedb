/**
 * Repositories as things to manage: listing them with what they hold (tags, manifests, size, last push), and
 * deleting a whole repository (its tags, manifests and blob links; the bytes wait for garbage collection). System
 * administrators list every repository; a namespace's admins list its repositories (`namespace` filter) and may
 * delete them. The deletion is audited and reported as a `repository.deleted` event in the transaction that makes
 * it.
 */
import { splitNamespace } from '../auth/authorizer.ts';
import type { EventContext } from '../events/event.ts';
import { NameUnknownError, UnsupportedError } from '../oci/errors.ts';
import { isValidRepositoryName } from '../oci/reference.ts';
import type { UsageStore } from '../metadata/usage.ts';
import type { Registry } from '../registry/registry.ts';
import { ImmutableTagError } from '../registry/tag-immutability.ts';
import {
  DEFAULT_PAGE_SIZE,
  MAX_PAGE_SIZE,
  type Actor,
  type AdminService,
  type PageInput,
} from './admin-service.ts';
import { conflict, forbidden, invalid, notFound } from './errors.ts';
import { repositorySummaryView, type RepositorySummaryView } from './usage-admin.ts';
import { checkLimit, checkNamespaceName } from './validation.ts';
import type { ListResult } from './views.ts';

export interface RepositoryDeletion {
  readonly name: string;
  readonly manifests: number;
  readonly tags: number;
  /** Blob links removed (the bytes stay until garbage collection). */
  readonly blobs: number;
}

export class RepositoryAdmin {
  /** @param usage the repository summaries (`list`); without it, `list` is unavailable. */
  constructor(
    private readonly admin: AdminService,
    private readonly registry: Registry,
    private readonly usage?: UsageStore,
  ) {}

  /**
   * Repositories in byte-wise name order with their tag and manifest counts, size and last push, paginated (the
   * cursor is a name). Without `namespace`, system administrators only; with it, also the namespace's admins.
   */
  async list(
    actor: Actor,
    options: PageInput & { namespace?: string | undefined } = {},
  ): Promise<ListResult<RepositorySummaryView>> {
    const { namespace } = options;
    if (namespace === undefined) await this.admin.requireSystem(actor, 'listing every repository');
    else {
      checkNamespaceName(namespace, 'namespace');
      await this.admin.requireNamespaceAdmin(actor, namespace, 'listing the repositories of namespace');
    }
    if (this.usage === undefined) throw conflict('repository listing is not available here');
    const limit = options.limit === undefined ? DEFAULT_PAGE_SIZE : checkLimit(options.limit, MAX_PAGE_SIZE);
    const after = options.after === '' ? undefined : options.after;
    const page = await this.usage.listRepositorySummaries({ limit, after, namespace });
    const last = page.items[page.items.length - 1];
    return {
      items: page.items.map(repositorySummaryView),
      next: page.hasMore && last !== undefined ? last.name : null,
    };
  }

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

/**
 * Storage usage and quotas per namespace, as the metadata store keeps them (see `usage-accounting.ts` for how the
 * writes maintain them and `kysely-usage-store.ts` for the reads).
 *
 * A namespace is the first path component of a repository name (`splitNamespace`). Its usage is the sum of the
 * sizes of the distinct blobs linked in any of its repositories (a layer shared by two of its repositories counts
 * once; a blob linked in two namespaces counts in each) plus the sizes of the manifests stored in its repositories.
 */
import type { Page } from './store.ts';

/** How a write changed a namespace's usage (bytes before and after, and the quota it was checked against). */
export interface UsageChange {
  readonly namespace: string;
  readonly before: number;
  readonly after: number;
  /** The namespace's quota in bytes; null: unlimited. */
  readonly quota: number | null;
}

/**
 * A write that would take the namespace's usage past its quota: thrown from inside the write's transaction, which
 * therefore rolls back (nothing of the write is stored).
 */
export class QuotaExceededError extends Error {
  constructor(
    readonly namespace: string,
    /** The namespace's usage when the write was refused, in bytes. */
    readonly usage: number,
    readonly quota: number,
    /** The bytes the write would have added. */
    readonly requested: number,
  ) {
    super(`quota exceeded: namespace ${namespace} uses ${usage} of ${quota} bytes (needs ${requested} more)`);
    this.name = 'QuotaExceededError';
  }
}

/** One namespace's usage and quota. */
export interface NamespaceUsage {
  readonly namespace: string;
  /** Bytes held (distinct blobs plus manifests). */
  readonly bytes: number;
  /** null: unlimited. */
  readonly quota: number | null;
}

/** A repository as something to manage: what it holds, computed when asked. */
export interface RepositorySummary {
  readonly name: string;
  readonly tags: number;
  readonly manifests: number;
  /** The sizes of its distinct linked blobs plus those of its manifests, in bytes. */
  readonly size: number;
  /** The latest manifest push or tag change; null when it never had either. */
  readonly lastPush: Date | null;
  /** The latest pull of any of its manifests, as the pull statistics last flushed it (once a minute); or null. */
  readonly lastPull: Date | null;
  /** Pulls of its manifests so far (flushed once a minute). */
  readonly pulls: number;
}

/** Reads of usage and repository summaries, and the quota setting. */
export interface UsageStore {
  /** The namespace's usage and quota (0 and null for a namespace that never held anything nor had a quota). */
  namespaceUsage(namespace: string): Promise<NamespaceUsage>;

  /** Every namespace with a usage row (it held something, or has a quota), sorted by name. */
  listNamespaceUsage(): Promise<NamespaceUsage[]>;

  /** Bytes of every blob row (linked or waiting for garbage collection) plus every manifest: what storage holds. */
  physicalBytes(): Promise<number>;

  /**
   * Sets (or with null removes) the namespace's quota in bytes and returns its usage. A quota below the current
   * usage is accepted: it refuses further growth, it removes nothing.
   */
  setQuota(namespace: string, bytes: number | null): Promise<NamespaceUsage>;

  /**
   * Repository summaries in byte-wise name order, after `after`, at most `limit`; with `namespace`, only that
   * namespace's repositories.
   */
  listRepositorySummaries(options: {
    limit: number;
    after?: string | undefined;
    namespace?: string | undefined;
  }): Promise<Page<RepositorySummary>>;
}

/**
 * Storage usage and quotas as things to manage: each namespace's usage (kept by the metadata writes, see
 * `metadata/usage-accounting.ts`) and its quota. System administrators see every namespace and the physical total
 * and set quotas (audited as `quota.set`); a namespace's admins read its usage, quota and per-repository sizes.
 */
import type { AuditLog } from '../auth/audit.ts';
import type { NamespaceUsage, RepositorySummary, UsageStore } from '../metadata/usage.ts';
import type { Actor, AdminService } from './admin-service.ts';
import { invalid } from './errors.ts';
import { checkNamespaceName } from './validation.ts';

/** A repository's summary as the API shows it. */
export interface RepositorySummaryView {
  readonly name: string;
  readonly tags: number;
  readonly manifests: number;
  /** Its distinct linked blobs plus its manifests, in bytes. */
  readonly size: number;
  readonly lastPush: Date | null;
  /** The latest pull of any of its manifests (statistics are written once a minute); null when never pulled. */
  readonly lastPull: Date | null;
  readonly pulls: number;
}

export interface NamespaceUsageView {
  readonly namespace: string;
  /** Bytes held: its distinct blobs plus its manifests. */
  readonly bytes: number;
  /** Bytes; null: unlimited. */
  readonly quota: number | null;
}

/** One namespace's usage with the sizes of its repositories. */
export interface NamespaceUsageDetail extends NamespaceUsageView {
  readonly repositories: RepositorySummaryView[];
}

/** Every namespace's usage and what storage holds in total. */
export interface UsageReport {
  readonly namespaces: NamespaceUsageView[];
  /**
   * Every stored blob (linked or waiting for garbage collection) once, plus every manifest: less than the sum of
   * the namespaces' usage when namespaces share blobs.
   */
  readonly physicalBytes: number;
}

export function usageView(u: NamespaceUsage): NamespaceUsageView {
  return { namespace: u.namespace, bytes: u.bytes, quota: u.quota };
}

export function repositorySummaryView(r: RepositorySummary): RepositorySummaryView {
  return {
    name: r.name,
    tags: r.tags,
    manifests: r.manifests,
    size: r.size,
    lastPush: r.lastPush,
    lastPull: r.lastPull,
    pulls: r.pulls,
  };
}

/** The largest quota accepted: byte counts stay exact as JSON numbers. */
const MAX_QUOTA = Number.MAX_SAFE_INTEGER;

export class UsageAdmin {
  constructor(
    private readonly admin: AdminService,
    private readonly usage: UsageStore,
    private readonly audit: AuditLog,
  ) {}

  /** Every namespace's usage and quota, and the physical total; system administrators only. */
  async report(actor: Actor): Promise<UsageReport> {
    await this.admin.requireSystem(actor, 'reading the storage usage');
    const namespaces = (await this.usage.listNamespaceUsage()).map(usageView);
    return { namespaces, physicalBytes: await this.usage.physicalBytes() };
  }

  /** The namespace's usage, quota and per-repository sizes; its admins and system administrators. */
  async namespaceUsage(actor: Actor, namespace: string): Promise<NamespaceUsageDetail> {
    checkNamespaceName(namespace, 'namespace');
    await this.admin.requireNamespaceAdmin(actor, namespace, 'reading the storage usage of namespace');
    const usage = await this.usage.namespaceUsage(namespace);
    const repositories: RepositorySummaryView[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.usage.listRepositorySummaries({ limit: 1000, after, namespace });
      repositories.push(...page.items.map(repositorySummaryView));
      const last = page.items[page.items.length - 1];
      if (!page.hasMore || last === undefined) break;
      after = last.name;
    }
    return { ...usageView(usage), repositories };
  }

  /**
   * Sets the namespace's quota in bytes (null: unlimited); system administrators only, audited. A quota below the
   * current usage is accepted: pushes that add bytes are refused until usage falls under it.
   */
  async setQuota(actor: Actor, namespace: string, bytes: number | null): Promise<NamespaceUsageView> {
    checkNamespaceName(namespace, 'namespace');
    await this.admin.requireSystem(
      actor,
      `setting the quota of namespace ${namespace}`,
      'quota.set',
      namespace,
    );
    if (bytes !== null && (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > MAX_QUOTA))
      throw invalid('bytes must be a whole number of bytes (0 or more), or null for no quota', 'bytes');
    const usage = await this.usage.setQuota(namespace, bytes);
    await this.audit.record({
      actor: actor.principal,
      action: 'quota.set',
      target: namespace,
      sourceAddr: actor.sourceAddr ?? null,
      success: true,
      detail: { ...(actor.via ? { via: actor.via } : {}), bytes },
    });
    return usageView(usage);
  }
}

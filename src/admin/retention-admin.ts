/**
 * Retention policies as things to manage: show, set, remove and run a namespace's policy. Allowed to system
 * administrators and the namespace's admins (`admin-service.ts` decides who they are). Changes and real runs are
 * audited (`retention.set`, `retention.remove`, `retention.run`), as are refused ones; reads and dry runs are not.
 * Used by the admin API (`http/admin/retention.ts`) and the CLI (`berth retention`, as the system).
 */
import type { AuditLog } from '../auth/audit.ts';
import { recordAction } from './audit-action.ts';
import {
  parseRetentionPolicy,
  RetentionPolicyError,
  type RetentionPolicy,
} from '../lifecycle/retention-policy.ts';
import type { RetentionRun, RetentionService } from '../lifecycle/retention.ts';
import type { Actor, AdminService } from './admin-service.ts';
import { invalid, notFound } from './errors.ts';
import { checkNamespaceName } from './validation.ts';

/** A namespace's policy as the API and the CLI show it. */
export interface RetentionPolicyView {
  readonly namespace: string;
  readonly policy: RetentionPolicy;
  readonly updatedBy: string | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export class RetentionAdmin {
  constructor(
    private readonly admin: AdminService,
    private readonly audit: AuditLog,
    private readonly retention: Pick<RetentionService, 'storedPolicy' | 'setPolicy' | 'removePolicy' | 'run'>,
  ) {}

  /** The namespace's policy; not-found when it has none. */
  async get(actor: Actor, namespace: string): Promise<RetentionPolicyView> {
    const ns = checkNamespaceName(namespace, 'namespace');
    await this.admin.requireNamespaceAdmin(actor, ns, 'reading the retention policy of namespace');
    const stored = await this.retention.storedPolicy(ns);
    if (stored === null) throw notFound(`namespace ${ns} has no retention policy`);
    return {
      namespace: stored.namespace,
      policy: parseRetentionPolicy(stored.policy),
      updatedBy: stored.updatedBy,
      createdAt: new Date(stored.createdAt),
      updatedAt: new Date(stored.updatedAt),
    };
  }

  /** Creates or replaces the namespace's policy (validated, defaults filled in). */
  async set(actor: Actor, namespace: string, value: unknown): Promise<RetentionPolicyView> {
    const ns = checkNamespaceName(namespace, 'namespace');
    await this.admin.requireNamespaceAdmin(
      actor,
      ns,
      'changing the retention policy of namespace',
      'retention.set',
    );
    let policy: RetentionPolicy;
    try {
      policy = parseRetentionPolicy(value);
    } catch (e) {
      if (e instanceof RetentionPolicyError) throw invalid(e.message, e.field);
      throw e;
    }
    const stored = await this.retention.setPolicy(ns, policy, actor.principal?.name ?? null);
    await recordAction(this.audit, actor, 'retention.set', ns, { policy });
    return {
      namespace: ns,
      policy,
      updatedBy: stored.updatedBy,
      createdAt: new Date(stored.createdAt),
      updatedAt: new Date(stored.updatedAt),
    };
  }

  /** Removes the namespace's policy; not-found when it has none. */
  async remove(actor: Actor, namespace: string): Promise<void> {
    const ns = checkNamespaceName(namespace, 'namespace');
    await this.admin.requireNamespaceAdmin(
      actor,
      ns,
      'removing the retention policy of namespace',
      'retention.remove',
    );
    if (!(await this.retention.removePolicy(ns))) {
      throw notFound(`namespace ${ns} has no retention policy`);
    }
    await recordAction(this.audit, actor, 'retention.remove', ns, {});
  }

  /** Runs the namespace's policy now (a dry run changes nothing); not-found when it has none. */
  async run(actor: Actor, namespace: string, dryRun: boolean): Promise<RetentionRun> {
    const ns = checkNamespaceName(namespace, 'namespace');
    await this.admin.requireNamespaceAdmin(
      actor,
      ns,
      'running the retention policy of namespace',
      dryRun ? null : 'retention.run',
    );
    const run = await this.retention.run(ns, { dryRun });
    if (run === null) throw notFound(`namespace ${ns} has no retention policy`);
    if (!dryRun) {
      await recordAction(this.audit, actor, 'retention.run', ns, {
        tagsUntagged: run.tagsUntagged,
        manifestsDeleted: run.manifestsDeleted,
      });
    }
    return run;
  }
}

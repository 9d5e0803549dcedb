/**
 * Retention: applies a namespace's policy (`retention-policy.ts`) to its repositories. A run first computes a
 * plan (which tags to untag, which untagged manifests to delete) from the current tags and statistics, then, unless
 * it is a dry run, applies that same plan: a dry run and the real run at the same moment agree by construction.
 *
 * Retention only untags (`deleteTag`) and deletes manifests no tag points at and nothing present needs
 * (`deleteManifest`); garbage collection reclaims the bytes. Every change goes through the metadata store with its
 * events (`tag.deleted`, `manifest.deleted`) in the same transaction, with the policy as the actor
 * (`system`/`retention:<namespace>`), and each real run ends with a `retention.completed` event.
 *
 * Concurrency: a plan is read, then applied a change at a time, while pushes go on. Before untagging, the tag is
 * read again and left alone if it has moved since the plan (a push wins); before deleting untagged manifests, the
 * repository's removable manifests are read again and only those still removable are deleted. What remains is a
 * window of one statement, in which a push that tags the manifest just checked loses that tag (the manifest
 * delete takes its tags); a retention run in another process at the same time repeats the same decisions, and
 * removing what is gone already is a no-op.
 */
import type { EventActor, EventContext, NewDomainEvent } from '../events/event.ts';
import type { Logger } from '../logger.ts';
import type { LifecycleStore, StoredRetentionPolicy } from '../metadata/lifecycle-store.ts';
import type { MetadataStore } from '../metadata/store.ts';
import type { Digest } from '../oci/digest.ts';
import { manifestDeleted, tagDeleted } from '../registry/events.ts';
import {
  parseRetentionPolicy,
  selectsRepository,
  tagFacts,
  tagsToUntag,
  untaggedExpired,
  type RetentionPolicy,
} from './retention-policy.ts';

/** True when `tag` of `repository` must never be untagged (immutable tags, say). */
export type TagProtection = (repository: string, tag: string) => Promise<boolean>;

/** What a run does (or would do, for a dry run) in one repository. */
export interface RepositoryRetention {
  readonly repository: string;
  /** Tags not kept by any rule, with the manifest each pointed at, by name. */
  readonly untag: readonly { readonly tag: string; readonly digest: Digest }[];
  /** Tags no rule keeps that the protection hook keeps, by name. */
  readonly protected: readonly string[];
  /** Untagged manifests older than the policy's delay, by digest. */
  readonly deleteManifests: readonly Digest[];
  /** Tags kept. */
  readonly kept: number;
}

/** The outcome of a run of one namespace's policy. */
export interface RetentionRun {
  readonly namespace: string;
  readonly dryRun: boolean;
  /** Repositories the policy selects, with what it does in each (those with nothing to do included). */
  readonly repositories: readonly RepositoryRetention[];
  /** Tags untagged (planned ones, for a dry run). */
  readonly tagsUntagged: number;
  /** Manifests deleted (planned ones, for a dry run). */
  readonly manifestsDeleted: number;
  readonly tagsKept: number;
}

export interface RetentionServiceOptions {
  readonly logger: Logger;
  /** Tags that must never be untagged; default none. */
  readonly protect?: TagProtection;
  /** The clock (epoch ms). Default `Date.now`. */
  readonly now?: () => number;
}

/** The actor of a policy's changes. */
export function retentionActor(namespace: string): EventActor {
  return { kind: 'system', name: `retention:${namespace}` };
}

export class RetentionService {
  private readonly now: () => number;

  constructor(
    private readonly metadata: MetadataStore,
    private readonly lifecycle: LifecycleStore,
    private readonly options: RetentionServiceOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** The namespace's policy as stored (with who changed it last and when), or null when it has none. */
  storedPolicy(namespace: string): Promise<StoredRetentionPolicy | null> {
    return this.lifecycle.getRetentionPolicy(namespace);
  }

  /** Creates or replaces the namespace's policy (already validated by `parseRetentionPolicy`). */
  setPolicy(
    namespace: string,
    policy: RetentionPolicy,
    updatedBy: string | null,
  ): Promise<StoredRetentionPolicy> {
    return this.lifecycle.putRetentionPolicy(namespace, policy, updatedBy);
  }

  /** Removes the namespace's policy; false when it had none. */
  removePolicy(namespace: string): Promise<boolean> {
    return this.lifecycle.deleteRetentionPolicy(namespace);
  }

  /** The namespace's policy, or null when it has none. */
  async policy(namespace: string): Promise<RetentionPolicy | null> {
    const stored = await this.lifecycle.getRetentionPolicy(namespace);
    return stored === null ? null : parseRetentionPolicy(stored.policy);
  }

  /**
   * What `policy` does to the repositories of `namespace` now: the plan both dry and real runs compute. Reads only.
   */
  async plan(namespace: string, policy: RetentionPolicy): Promise<RepositoryRetention[]> {
    const now = this.now();
    const plans: RepositoryRetention[] = [];
    for (const repository of await this.lifecycle.namespaceRepositories(namespace)) {
      if (!selectsRepository(policy, namespace, repository)) continue;
      const stats = await this.lifecycle.tagStats(repository);
      const digests = new Map(stats.map((s) => [s.tag, s.digest]));
      const untag: { tag: string; digest: Digest }[] = [];
      const kept: string[] = [];
      for (const tag of tagsToUntag(policy, stats.map(tagFacts), now)) {
        if (this.options.protect && (await this.options.protect(repository, tag))) kept.push(tag);
        else untag.push({ tag, digest: digests.get(tag) as Digest });
      }
      const deleteManifests =
        policy.untagged.action === 'delete'
          ? (await this.lifecycle.removableUntagged(repository))
              .filter((m) => untaggedExpired(policy, m, now))
              .map((m) => m.digest)
          : [];
      plans.push({
        repository,
        untag,
        protected: kept,
        deleteManifests,
        kept: stats.length - untag.length,
      });
    }
    return plans;
  }

  /**
   * Runs the stored policy of `namespace` (null when there is none): plans, and unless `dryRun` applies the plan
   * and records `retention.completed`.
   */
  async run(namespace: string, options: { dryRun: boolean }): Promise<RetentionRun | null> {
    const policy = await this.policy(namespace);
    if (policy === null) return null;
    const plans = await this.plan(namespace, policy);
    const tagsKept = plans.reduce((n, p) => n + p.kept, 0);
    if (options.dryRun) {
      return {
        namespace,
        dryRun: true,
        repositories: plans,
        tagsUntagged: plans.reduce((n, p) => n + p.untag.length, 0),
        manifestsDeleted: plans.reduce((n, p) => n + p.deleteManifests.length, 0),
        tagsKept,
      };
    }
    const context: EventContext = { actor: retentionActor(namespace), request: null };
    const applied: RepositoryRetention[] = [];
    let tagsUntagged = 0;
    let manifestsDeleted = 0;
    for (const plan of plans) {
      const untag: { tag: string; digest: Digest }[] = [];
      for (const entry of plan.untag) {
        const current = await this.metadata.getManifestByTag(plan.repository, entry.tag);
        // Moved or removed since the plan: a push wins over the policy's view of the past.
        if (current?.digest !== entry.digest) continue;
        if (
          await this.metadata.deleteTag(
            plan.repository,
            entry.tag,
            tagDeleted(context, plan.repository, entry.tag),
          )
        )
          untag.push(entry);
      }
      const deleteManifests: Digest[] = [];
      if (plan.deleteManifests.length > 0) {
        const still = new Set((await this.lifecycle.removableUntagged(plan.repository)).map((m) => m.digest));
        for (const digest of plan.deleteManifests) {
          if (!still.has(digest)) continue;
          if (
            await this.metadata.deleteManifest(
              plan.repository,
              digest,
              manifestDeleted(context, plan.repository, digest),
            )
          )
            deleteManifests.push(digest);
        }
      }
      tagsUntagged += untag.length;
      manifestsDeleted += deleteManifests.length;
      applied.push({ ...plan, untag, deleteManifests });
    }
    await this.metadata.appendEvents([
      retentionCompleted(context, namespace, tagsUntagged, manifestsDeleted),
    ]);
    if (tagsUntagged > 0 || manifestsDeleted > 0) {
      this.options.logger.info({ namespace, tagsUntagged, manifestsDeleted }, 'retention policy applied');
    }
    return { namespace, dryRun: false, repositories: applied, tagsUntagged, manifestsDeleted, tagsKept };
  }

  /**
   * Runs every namespace's policy (the scheduled job), one after another. A namespace that fails is logged and the
   * others still run; then the first failure is thrown (the job is retried: repeating a run is harmless).
   */
  async runAll(): Promise<RetentionRun[]> {
    const runs: RetentionRun[] = [];
    let failure: unknown;
    for (const { namespace } of await this.lifecycle.listRetentionPolicies()) {
      try {
        const run = await this.run(namespace, { dryRun: false });
        if (run) runs.push(run);
      } catch (err) {
        this.options.logger.warn({ err, namespace }, 'retention run failed');
        failure ??= err;
      }
    }
    if (failure !== undefined) throw failure;
    return runs;
  }
}

/** The event that ends a real run: the namespace (as `repository`) and what the run removed. */
export function retentionCompleted(
  context: EventContext,
  namespace: string,
  tagsUntagged: number,
  manifestsDeleted: number,
): NewDomainEvent {
  return {
    type: 'retention.completed',
    target: { repository: namespace, tagsUntagged, manifestsDeleted },
    actor: context.actor,
    request: context.request,
  };
}

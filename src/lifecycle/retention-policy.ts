/**
 * Retention policies: what a namespace keeps, and the pure function that decides it.
 *
 * A policy selects repositories of its namespace by globs (relative to the namespace, as repository rules are:
 * `*` within a path component, `**` across), then decides every tag of each: a tag is KEPT when any rule keeps it
 * (the rules are OR-ed); the others are untagged. Untagged manifests are kept, or removed once older than a delay.
 *
 * Deterministic: the same tags, times and `now` give the same decision; "the last N" orders by time, newest first,
 * and equal times by tag name in byte order (tags are ASCII, so code-unit order is byte order).
 */
import { z } from 'zod';
import { globMatch } from '../auth/glob.ts';
import { schemaProblem } from '../util/schema-problem.ts';
import type { TagStats } from '../metadata/lifecycle-store.ts';

const DAY_MS = 86_400_000;

const glob = z.string().min(1).max(256);
const globs = z.array(glob).max(100);
const count = z.number().int().min(1).max(1_000_000);
const days = z.number().min(0).max(36_500);

/** One rule: each keeps some tags; a tag any rule keeps is kept. */
export const retentionRuleSchema = z.discriminatedUnion('kind', [
  /** The `count` tags pushed (pointed at their manifest) most recently. */
  z.object({ kind: z.literal('keepLastPushed'), count }).strict(),
  /** The `count` tags pulled most recently (tags never pulled are not among them). */
  z.object({ kind: z.literal('keepLastPulled'), count }).strict(),
  /** Tags pushed within the last `days` days. */
  z.object({ kind: z.literal('pushedWithin'), days }).strict(),
  /** Tags pulled within the last `days` days. */
  z.object({ kind: z.literal('pulledWithin'), days }).strict(),
  /** Tags matching an `include` glob and no `exclude` glob. */
  z.object({ kind: z.literal('tagPattern'), include: globs.min(1), exclude: globs.default([]) }).strict(),
  /** Tags matching any of `tags` (e.g. `latest`, `release-*`). */
  z.object({ kind: z.literal('alwaysKeep'), tags: globs.min(1) }).strict(),
]);

export const retentionPolicySchema = z
  .object({
    repositories: z
      .object({ include: globs.min(1).default(['**']), exclude: globs.default([]) })
      .strict()
      .prefault({}),
    rules: z.array(retentionRuleSchema).min(1).max(50),
    untagged: z
      .object({
        action: z.enum(['keep', 'delete']).default('keep'),
        afterDays: days.default(7),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type RetentionRule = z.output<typeof retentionRuleSchema>;
export type RetentionPolicy = z.output<typeof retentionPolicySchema>;

/** Thrown for a policy that does not parse, naming the offending field. */
export class RetentionPolicyError extends Error {
  constructor(
    message: string,
    readonly field: string | undefined,
  ) {
    super(message);
    this.name = 'RetentionPolicyError';
  }
}

/** The policy `value` describes, with defaults filled in; throws RetentionPolicyError. */
export function parseRetentionPolicy(value: unknown): RetentionPolicy {
  const result = retentionPolicySchema.safeParse(value);
  if (result.success) return result.data;
  const { message, field } = schemaProblem(result.error, 'policy');
  throw new RetentionPolicyError(message, field);
}

/** True when the policy applies to `repository` of `namespace`. */
export function selectsRepository(policy: RetentionPolicy, namespace: string, repository: string): boolean {
  const rest = repository === namespace ? '' : repository.slice(namespace.length + 1);
  const { include, exclude } = policy.repositories;
  return include.some((g) => globMatch(g, rest)) && !exclude.some((g) => globMatch(g, rest));
}

/** A tag as retention sees it: when it was pushed, and when its content was last pulled. */
export interface TagFacts {
  readonly tag: string;
  readonly pushedAt: number;
  /** The latest pull by this tag or of its manifest by digest; null if never. */
  readonly lastPulledAt: number | null;
}

/** The facts retention decides on, from stored statistics. */
export function tagFacts(stats: TagStats): TagFacts {
  const pulls = [stats.lastPulledAt, stats.manifestLastPulledAt].filter((t): t is number => t !== null);
  return { tag: stats.tag, pushedAt: stats.pushedAt, lastPulledAt: pulls.length ? Math.max(...pulls) : null };
}

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The `n` first of `tags` by `time` descending, ties by name; tags without a time are left out. */
function lastN(tags: readonly TagFacts[], n: number, time: (t: TagFacts) => number | null): string[] {
  return tags
    .filter((t) => time(t) !== null)
    .sort((a, b) => (time(b) as number) - (time(a) as number) || byName(a.tag, b.tag))
    .slice(0, n)
    .map((t) => t.tag);
}

/** The tags `rule` keeps, of `tags`. */
export function keptBy(rule: RetentionRule, tags: readonly TagFacts[], now: number): Set<string> {
  switch (rule.kind) {
    case 'keepLastPushed':
      return new Set(lastN(tags, rule.count, (t) => t.pushedAt));
    case 'keepLastPulled':
      return new Set(lastN(tags, rule.count, (t) => t.lastPulledAt));
    case 'pushedWithin': {
      const since = now - rule.days * DAY_MS;
      return new Set(tags.filter((t) => t.pushedAt >= since).map((t) => t.tag));
    }
    case 'pulledWithin': {
      const since = now - rule.days * DAY_MS;
      return new Set(
        tags.filter((t) => t.lastPulledAt !== null && t.lastPulledAt >= since).map((t) => t.tag),
      );
    }
    case 'tagPattern':
      return new Set(
        tags
          .filter(
            (t) =>
              rule.include.some((g) => globMatch(g, t.tag)) && !rule.exclude.some((g) => globMatch(g, t.tag)),
          )
          .map((t) => t.tag),
      );
    case 'alwaysKeep':
      return new Set(tags.filter((t) => rule.tags.some((g) => globMatch(g, t.tag))).map((t) => t.tag));
  }
}

/** The tags of one repository the policy does not keep (by name), given its tags' facts at time `now`. */
export function tagsToUntag(policy: RetentionPolicy, tags: readonly TagFacts[], now: number): string[] {
  const kept = new Set<string>();
  for (const rule of policy.rules) for (const tag of keptBy(rule, tags, now)) kept.add(tag);
  return tags
    .map((t) => t.tag)
    .filter((t) => !kept.has(t))
    .sort(byName);
}

/**
 * True when the untagged manifest is old enough to remove under the policy: pushed more than `afterDays` ago and
 * not pulled (by digest) within that time either.
 */
export function untaggedExpired(
  policy: RetentionPolicy,
  manifest: { readonly pushedAt: number; readonly lastPulledAt: number | null },
  now: number,
): boolean {
  if (policy.untagged.action !== 'delete') return false;
  const before = now - policy.untagged.afterDays * DAY_MS;
  return manifest.pushedAt < before && (manifest.lastPulledAt === null || manifest.lastPulledAt < before);
}

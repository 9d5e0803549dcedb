/**
 * Immutable tags: per-namespace rules (a repository glob and a tag glob) naming tags that, once they exist, may
 * not move to another digest or be deleted, whether directly, by deleting the manifest they point at, or by
 * deleting their repository. The registry asks through `TagImmutability` (`RegistryDeps.immutableTags`); the
 * retention job asks `isImmutable` to skip such tags; the admin use cases change the rules through `add` and
 * `remove`.
 *
 * Matching, as repository rules do (`auth/authorizer.ts`): the repository glob is matched against the name AFTER
 * the namespace (`team/app/api` is namespace `team`, rest `app/api`; a repository with no `/` has the rest ``),
 * with `*` within one path component, `**` across, `?` one character; the tag glob against the whole tag.
 *
 * Why a cache: `isImmutable` runs for every tag of every push and delete. A namespace's rules are remembered for
 * `cacheTtl` (a bounded LRU cache), forgotten at once when this process changes them; another instance sees a
 * change within `cacheTtl` (`auth.cacheTtl`, as permission changes).
 */
import { LRUCache } from 'lru-cache';
import { splitNamespace } from '../auth/authorizer.ts';
import { globMatch } from '../auth/glob.ts';
import type {
  ImmutableTagRuleRecord,
  ImmutableTagStore,
  NewImmutableTagRule,
} from '../metadata/immutable-tag-store.ts';
import type { MetadataStore } from '../metadata/store.ts';
import type { Digest } from '../oci/digest.ts';
import type { TagImmutability } from '../registry/tag-immutability.ts';

export interface ImmutableTagsOptions {
  /** How long (ms) a namespace's rules are cached. */
  readonly cacheTtl: number;
}

/** Tags of a repository read per query when looking for an immutable one. */
const TAG_PAGE = 1000;

export class ImmutableTags implements TagImmutability {
  private readonly rules: LRUCache<string, Promise<readonly ImmutableTagRuleRecord[]>>;

  /**
   * @param store the rules (and the tags on a digest).
   * @param metadata the registry's metadata, for the tags of a repository.
   */
  constructor(
    private readonly store: ImmutableTagStore,
    private readonly metadata: Pick<MetadataStore, 'listTags'>,
    options: ImmutableTagsOptions,
  ) {
    this.rules = new LRUCache({ max: 10_000, ttl: Math.max(1, options.cacheTtl) });
  }

  /** True when a rule of the repository's namespace makes `tag` of `repository` immutable (cached). */
  async isImmutable(repository: string, tag: string): Promise<boolean> {
    const match = await this.matcher(repository);
    return match !== null && match(tag);
  }

  async immutableTagsOn(repository: string, digest: Digest): Promise<string[]> {
    const match = await this.matcher(repository);
    if (match === null) return [];
    return (await this.store.tagsOn(repository, digest)).filter(match);
  }

  async firstImmutableTag(repository: string): Promise<string | null> {
    const match = await this.matcher(repository);
    if (match === null) return null;
    let after: string | undefined;
    for (;;) {
      const page = await this.metadata.listTags(repository, { limit: TAG_PAGE, after });
      const found = page.items.find(match);
      if (found !== undefined) return found;
      const last = page.items[page.items.length - 1];
      if (!page.hasMore || last === undefined) return null;
      after = last;
    }
  }

  /** The rules of `namespace`, ordered by id (read from the store, not the cache). */
  list(namespace: string): Promise<ImmutableTagRuleRecord[]> {
    return this.store.list(namespace);
  }

  /** Adds a rule (`ConflictError` when the namespace has the same one); it applies in this process at once. */
  async add(rule: NewImmutableTagRule): Promise<ImmutableTagRuleRecord> {
    try {
      return await this.store.add(rule);
    } finally {
      this.invalidate(rule.namespace);
    }
  }

  /** Removes rule `id` of `namespace`; returns it, or null when there is none. Applies here at once. */
  async remove(namespace: string, id: number): Promise<ImmutableTagRuleRecord | null> {
    try {
      return await this.store.delete(namespace, id);
    } finally {
      this.invalidate(namespace);
    }
  }

  /** Forgets the cached rules of `namespace` (of every namespace when absent). */
  invalidate(namespace?: string): void {
    if (namespace === undefined) this.rules.clear();
    else this.rules.delete(namespace);
  }

  /** A predicate on the tags of `repository`, or null when no rule of its namespace covers the repository. */
  private async matcher(repository: string): Promise<((tag: string) => boolean) | null> {
    const { namespace, rest } = splitNamespace(repository);
    const rules = (await this.rulesOf(namespace)).filter((r) => globMatch(r.repositoryGlob, rest));
    if (rules.length === 0) return null;
    return (tag) => rules.some((r) => globMatch(r.tagGlob, tag));
  }

  private rulesOf(namespace: string): Promise<readonly ImmutableTagRuleRecord[]> {
    const cached = this.rules.get(namespace);
    if (cached) return cached;
    const rules = this.store.list(namespace);
    // A failed read is not remembered: the next request asks the database again.
    rules.catch(() => {
      if (this.rules.get(namespace) === rules) this.rules.delete(namespace);
    });
    this.rules.set(namespace, rules);
    return rules;
  }
}

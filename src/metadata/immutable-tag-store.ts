/**
 * The ImmutableTagStore port: the immutable tag rules of each namespace (table of migration 0009), and the one
 * read of the registry's tags that enforcing them needs and `MetadataStore` lacks (the tags on a digest). One
 * implementation, `KyselyImmutableTagStore` (get it with `KyselyMetadataStore.immutableTagStore()`).
 */
import type { Digest } from '../oci/digest.ts';

export interface ImmutableTagRuleRecord {
  readonly id: number;
  readonly namespace: string;
  /** Glob on the repository name after the namespace (`*` within a path component, `**` across). */
  readonly repositoryGlob: string;
  /** Glob on the tag (`*` and `?`). */
  readonly tagGlob: string;
  /** Who added it (`user:alice`, `system`), or null. */
  readonly createdBy: string | null;
  readonly createdAt: Date;
}

export interface NewImmutableTagRule {
  readonly namespace: string;
  readonly repositoryGlob: string;
  readonly tagGlob: string;
  readonly createdBy: string | null;
}

export interface ImmutableTagStore {
  /** The rules of `namespace`, ordered by id (a namespace has few: tens at most). */
  list(namespace: string): Promise<ImmutableTagRuleRecord[]>;

  /** Adds a rule; `ConflictError` when the namespace has one with the same two globs. */
  add(rule: NewImmutableTagRule): Promise<ImmutableTagRuleRecord>;

  /** Deletes rule `id` of `namespace`; returns it, or null when that namespace has no such rule. */
  delete(namespace: string, id: number): Promise<ImmutableTagRuleRecord | null>;

  /** The tags of `repository` pointing at the manifest `digest`, in byte-wise order (empty when none). */
  tagsOn(repository: string, digest: Digest): Promise<string[]>;
}

/**
 * The LifecycleStore port: what pull statistics and retention need of the metadata database, beside the registry's
 * own `MetadataStore`. Statistics are written in batches (never one pull at a time); retention reads the tags and
 * manifests of a repository with their push and pull times and stores one policy per namespace.
 */
import type { Digest } from '../oci/digest.ts';

/** Pulls of one manifest (by tag or digest) since the previous batch. */
export interface ManifestPulls {
  readonly repository: string;
  readonly digest: Digest;
  /** Pulls to add, > 0. */
  readonly count: number;
  /** The latest of them (epoch ms). */
  readonly at: number;
}

/** Pulls by one tag since the previous batch. */
export interface TagPulls {
  readonly repository: string;
  readonly tag: string;
  readonly count: number;
  readonly at: number;
}

/** A tag with what retention decides on. Times are epoch ms. */
export interface TagStats {
  readonly tag: string;
  readonly digest: Digest;
  /** When the tag was last pointed at its manifest (a push or a move). */
  readonly pushedAt: number;
  /** The latest pull by this tag; null if never. */
  readonly lastPulledAt: number | null;
  readonly pullCount: number;
  /** The latest pull of its manifest by any tag or by digest; null if never. */
  readonly manifestLastPulledAt: number | null;
}

/** A manifest with its statistics. */
export interface ManifestStats {
  readonly digest: Digest;
  readonly mediaType: string;
  /** When it was first pushed. */
  readonly pushedAt: number;
  readonly lastPulledAt: number | null;
  readonly pullCount: number;
  /** How many tags point at it. */
  readonly tags: number;
}

/** A stored retention policy (validated by its owner, stored verbatim). */
export interface StoredRetentionPolicy {
  readonly namespace: string;
  readonly policy: unknown;
  readonly updatedBy: string | null;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface LifecycleStore {
  /**
   * Adds the counts and moves the latest-pull times forward (never back), in one transaction of one statement per
   * table however many entries. Entries naming a manifest or tag that no longer exists are ignored.
   */
  addPulls(manifests: readonly ManifestPulls[], tags: readonly TagPulls[]): Promise<void>;

  /** The tags of `repository` with their statistics, by tag name (byte order); empty for an unknown repository. */
  tagStats(repository: string): Promise<TagStats[]>;

  /** The manifests of `repository` with their statistics, by digest. */
  manifestStats(repository: string): Promise<ManifestStats[]>;

  /**
   * The manifests of `repository` that no tag points at and that nothing present needs: not a child of an index
   * in the repository, not a referrer whose subject is in the repository. By digest.
   */
  removableUntagged(repository: string): Promise<ManifestStats[]>;

  /** The repositories of `namespace` (the repository named like it and those under `namespace/`), sorted. */
  namespaceRepositories(namespace: string): Promise<string[]>;

  getRetentionPolicy(namespace: string): Promise<StoredRetentionPolicy | null>;

  /** Creates or replaces the policy of `namespace`. */
  putRetentionPolicy(
    namespace: string,
    policy: unknown,
    updatedBy: string | null,
  ): Promise<StoredRetentionPolicy>;

  /** Removes the policy; false when there was none. */
  deleteRetentionPolicy(namespace: string): Promise<boolean>;

  /** Every policy, by namespace. */
  listRetentionPolicies(): Promise<StoredRetentionPolicy[]>;
}

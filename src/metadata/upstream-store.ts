/**
 * Upstream registries of the pull-through cache managed through the API, and the record of when each cached tag
 * was last compared with its upstream (tables of migration 0012).
 */

/** An upstream as stored: settings as the JSON value it was saved with (validated by `proxy/upstream.ts`). */
export interface StoredUpstream {
  readonly id: number;
  readonly name: string;
  readonly namespace: string;
  readonly settings: unknown;
  readonly username: string | null;
  /** The sealed password (see `remote/secret-box.ts`), or null. */
  readonly sealedPassword: string | null;
  readonly createdBy: string | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface NewStoredUpstream {
  readonly name: string;
  readonly namespace: string;
  readonly settings: unknown;
  readonly username: string | null;
  readonly sealedPassword: string | null;
  readonly createdBy: string | null;
}

/** A change to a stored upstream; absent fields stay. */
export interface StoredUpstreamChange {
  readonly settings?: unknown;
  readonly username?: string | null;
  readonly sealedPassword?: string | null;
}

/** When a cached tag was last compared with its upstream, and the digest the upstream had then. */
export interface TagCheck {
  readonly digest: string;
  readonly checkedAt: Date;
}

export interface UpstreamStore {
  /** Every stored upstream, by name. */
  list(): Promise<StoredUpstream[]>;

  /** The upstream named `name`, or null. */
  get(name: string): Promise<StoredUpstream | null>;

  /** Stores a new upstream; throws ConflictError when its name or namespace is taken. */
  create(upstream: NewStoredUpstream): Promise<StoredUpstream>;

  /** Changes the upstream `name` (touching `updatedAt`); null when it does not exist. */
  update(name: string, change: StoredUpstreamChange): Promise<StoredUpstream | null>;

  /** Deletes the upstream `name` (cached content stays); false when it did not exist. */
  delete(name: string): Promise<boolean>;

  /** When the tag of the cached repository was last checked, or null when never. */
  getTagCheck(repository: string, tag: string): Promise<TagCheck | null>;

  /** Records a check of the tag (insert or overwrite). */
  recordTagCheck(repository: string, tag: string, check: TagCheck): Promise<void>;
}

/**
 * The MetadataStore port: everything the registry knows besides blob bytes. Repositories, which blobs each
 * repository may see (links), manifests with the exact bytes and what they reference, tags, the referrers
 * index, and upload sessions. One implementation (`KyselyMetadataStore`) serves SQLite and PostgreSQL.
 *
 * Contract shared by every implementation (checked by `testing/store-suite.ts`):
 * - Every method is atomic: a failure leaves no partial write; concurrent callers (other processes included)
 *   see either the state before or after a call.
 * - Names, tags and digests are validated by callers; the store stores them verbatim (case-sensitive).
 * - Lists are sorted by byte-wise (C collation) order of the name; `after` is exclusive.
 */
import type { DomainEvent, NewDomainEvent } from '../events/event.ts';
import type { Digest } from '../oci/digest.ts';
import type { UploadHandle } from '../storage/driver.ts';
import type { UsageChange } from './usage.ts';

export interface BlobLink {
  readonly digest: Digest;
  readonly size: number;
}

export interface ManifestRecord {
  readonly repository: string;
  readonly digest: Digest;
  readonly mediaType: string;
  /** The exact bytes pushed; the digest is computed over them. */
  readonly payload: Buffer;
  readonly size: number;
  /** The `subject` descriptor's digest, when the manifest has one. */
  readonly subject: Digest | null;
  /** What the referrers API reports: the manifest's `artifactType`, else its config media type, else null. */
  readonly artifactType: string | null;
  /** The manifest's top-level `annotations`, or null. */
  readonly annotations: Record<string, string> | null;
  readonly createdAt: Date;
  /**
   * Set by the pull-through cache when it serves the manifest without having asked its upstream (which failed):
   * the value of the response's `Warning` header.
   */
  readonly warning?: string;
}

export interface PutManifestInput {
  readonly repository: string;
  readonly digest: Digest;
  readonly mediaType: string;
  readonly payload: Buffer;
  readonly subject: Digest | null;
  readonly artifactType: string | null;
  readonly annotations: Record<string, string> | null;
  /** Blobs the manifest requires (config, non-foreign layers): each must be linked in the repository. */
  readonly blobs: readonly Digest[];
  /** Manifests the manifest requires (index children): each must exist in the repository. */
  readonly manifests: readonly Digest[];
  /** Tags to point at this manifest (created or moved), possibly none. */
  readonly tags: readonly string[];
  /**
   * Store it although required blobs or manifests are missing (a sparse manifest: a pull-through cache stores an
   * index before its children and an image manifest before its layers). The references are recorded all the same.
   */
  readonly sparse?: boolean;
}

export type PutManifestResult =
  | { readonly ok: true }
  | {
      readonly ok: false;
      readonly missingBlobs: readonly Digest[];
      readonly missingManifests: readonly Digest[];
    };

/** One entry of the referrers index. */
export interface ReferrerRecord {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly size: number;
  readonly artifactType: string | null;
  readonly annotations: Record<string, string> | null;
}

export interface UploadSessionRecord {
  /** The session id that appears in the upload URL (a UUID). */
  readonly id: string;
  readonly repository: string;
  /** Bytes received and stored so far. */
  readonly size: number;
  /** The storage driver's handle, stored verbatim. */
  readonly handle: UploadHandle;
  /**
   * The identity of the principal that started the session (e.g. `user:alice`, `robot:robot$ci`), stored
   * verbatim; null when the session is bound to nobody (access control off, or started before owners existed).
   */
  readonly owner: string | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/**
 * The domain events a write stores in its own transaction (the outbox), computed from what the write found and
 * changed (`outcome`). Called inside the transaction, only when the write succeeds; must not throw.
 */
export type EventsOf<Outcome> = (outcome: Outcome) => readonly NewDomainEvent[];

/** Options of `linkBlob`. */
export interface LinkBlobOptions {
  /** Releases this hold (see `holdBlob`) in the same transaction. */
  readonly holder?: string;
  /**
   * Link only a blob the registry has and is not deleting (a mount): returns false instead of creating the blob's
   * row, since this caller has not written its bytes.
   */
  readonly mustExist?: boolean;
}

/** How long garbage collection leaves new content alone (see docs/gc.md). */
export interface ReviewTimings {
  /** A blob is reviewed this long after it was last linked (`gc.blobGracePeriod`). */
  readonly blobGracePeriodMs: number;
  /** A new manifest is reviewed this long after it was pushed (`gc.manifestGracePeriod`). */
  readonly manifestGracePeriodMs: number;
}

/** The blob is being deleted by garbage collection: it cannot be linked until that finishes. */
export class BlobDeletingError extends Error {
  constructor(readonly digest: string) {
    super(`blob ${digest} is being deleted by garbage collection`);
    this.name = 'BlobDeletingError';
  }
}

/** What `linkBlob` changed. */
export interface LinkBlobOutcome {
  /** The repository did not exist before. */
  readonly repositoryCreated: boolean;
  /** How the link changed the namespace's usage; null or absent: it did not (the namespace held the blob). */
  readonly usage?: UsageChange | null;
}

/** What a successful `putManifest` changed. */
export interface PutManifestOutcome {
  readonly repositoryCreated: boolean;
  /** The manifest was not in the repository before (false: a repeated push). */
  readonly manifestCreated: boolean;
  /** Of the tags pointed at the manifest, those that pointed at another manifest before, with that manifest. */
  readonly movedTags: ReadonlyMap<string, Digest>;
  /** How the push changed the namespace's usage; null or absent: it did not (a repeated push). */
  readonly usage?: UsageChange | null;
}

/** What a successful `deleteManifest` removed. */
export interface DeleteManifestOutcome {
  readonly mediaType: string;
  readonly size: number;
  /** The tags that pointed at it (deleted with it). */
  readonly tags: readonly string[];
}

/** What a successful `deleteTag` removed. */
export interface DeleteTagOutcome {
  /** The manifest the tag pointed at. */
  readonly digest: Digest;
  readonly mediaType: string;
}

/** What a successful `deleteRepository` removed. */
export interface DeleteRepositoryOutcome {
  readonly manifests: number;
  readonly tags: number;
  /** Blob links (the bytes stay for garbage collection). */
  readonly blobs: number;
}

/** What a successful `unlinkBlob` removed. */
export interface UnlinkBlobOutcome {
  readonly size: number;
}

/** An event of the outbox, with its position. */
export interface StoredEvent {
  /** Commit order on this database (increasing). */
  readonly seq: number;
  readonly event: DomainEvent;
}

export interface Page<T> {
  readonly items: T[];
  /** True when items exist after the last one returned. */
  readonly hasMore: boolean;
}

export interface PageOptions {
  /** Maximum number of items, >= 0. */
  readonly limit: number;
  /** Exclusive lower bound (byte-wise order). */
  readonly after?: string | undefined;
}

export interface MetadataStore {
  /** Applies pending forward-only migrations. Safe to call concurrently from several processes. */
  migrate(): Promise<void>;

  /**
   * Checks the database answers (readiness), and for a database file that it is still the file this store
   * opened (not removed or replaced under the running process). Throws when not.
   */
  ping(): Promise<void>;

  /** Closes connections. The store is unusable afterwards. */
  close(): Promise<void>;

  // --- repositories -------------------------------------------------------------------------------

  /** True when the repository exists (it has ever had a blob linked or a manifest pushed, and not been removed). */
  repositoryExists(name: string): Promise<boolean>;

  /**
   * Deletes the repository with its tags, manifests and blob links, in one transaction; returns false when it does
   * not exist. Blob bytes stay for garbage collection. Upload sessions are left alone: one completed later links its
   * blob into a new, empty repository of the same name.
   */
  deleteRepository(name: string, events?: EventsOf<DeleteRepositoryOutcome>): Promise<boolean>;

  /** Repository names in byte-wise order, after `after`, at most `limit`. */
  listRepositories(options: PageOptions): Promise<Page<string>>;

  /**
   * Repository names containing `query` (case-insensitive substring; `%` and `_` are literal), sorted,
   * skipping `offset`, at most `limit`; `total` counts all matches.
   */
  searchRepositories(
    query: string,
    options: { limit: number; offset: number },
  ): Promise<{ total: number; names: string[] }>;

  // --- blobs ---------------------------------------------------------------------------------------

  /**
   * Records that the blob `digest` of `size` bytes is stored and visible in `repository` (creating the
   * repository if needed), and queues the blob for garbage collection review after its grace period. Idempotent.
   * The caller has already committed the bytes to storage, under a hold (`holdBlob`) it names in `options.holder`.
   * Throws `BlobDeletingError` when garbage collection is deleting the blob. With `options.mustExist` (a mount),
   * links only a blob that exists and is not being deleted, and returns false otherwise; else returns true.
   * Throws `QuotaExceededError` (and links nothing) when the blob is new to the repository's namespace and does not
   * fit its quota (see `usage.ts`); re-linking a blob the namespace holds is always allowed.
   */
  linkBlob(
    repository: string,
    digest: Digest,
    size: number,
    events?: EventsOf<LinkBlobOutcome>,
    options?: LinkBlobOptions,
  ): Promise<boolean>;

  /**
   * Holds the digest for a writer about to commit its bytes to storage, until `releaseBlobHold(holder)`, a link
   * naming `holder`, or `ttlMs`: garbage collection deletes no held blob. Returns false (holding nothing) while
   * garbage collection is deleting the blob; the caller waits and asks again. Creates the blob's row if needed.
   */
  holdBlob(digest: Digest, size: number, holder: string, ttlMs: number): Promise<boolean>;

  /** Ends the hold `holder` (idempotent). */
  releaseBlobHold(holder: string): Promise<void>;

  /** Sets the grace periods new content gets before garbage collection reviews it (default: a day each). */
  configureReview(timings: ReviewTimings): void;

  /** The blob as visible in `repository`, or null when it is not linked there. */
  getBlobLink(repository: string, digest: Digest): Promise<BlobLink | null>;

  /** The blob if it is known to the registry in any repository (for cross-repository mounts), or null. */
  findBlob(digest: Digest): Promise<BlobLink | null>;

  /**
   * Removes the blob's link from `repository` and queues the blob for garbage collection review; returns false when
   * it was not linked.
   */
  unlinkBlob(repository: string, digest: Digest, events?: EventsOf<UnlinkBlobOutcome>): Promise<boolean>;

  // --- manifests and tags --------------------------------------------------------------------------

  /**
   * Stores a manifest and points `tags` at it, in one transaction, after checking in that same transaction that
   * every required blob is linked and every required manifest exists in the repository. When some are missing,
   * nothing is written and they are listed; a blob garbage collection is deleting counts as missing. Pushing an
   * existing digest again is idempotent (tags still move). Creates the repository if needed. A new manifest is
   * queued for garbage collection review after its grace period, and manifests the tags leave are queued now.
   * Throws `QuotaExceededError` (and stores nothing) when the manifest is new to the repository and does not fit
   * its namespace's quota.
   */
  putManifest(input: PutManifestInput, events?: EventsOf<PutManifestOutcome>): Promise<PutManifestResult>;

  /** The manifest `digest` in `repository`, or null. */
  getManifest(repository: string, digest: Digest): Promise<ManifestRecord | null>;

  /** The manifest the tag points at, or null when the tag does not exist. */
  getManifestByTag(repository: string, tag: string): Promise<ManifestRecord | null>;

  /**
   * Deletes the manifest and every tag pointing at it, and queues what it referenced (blobs, index children) and
   * its referrers for garbage collection review; returns false when it did not exist.
   */
  deleteManifest(
    repository: string,
    digest: Digest,
    events?: EventsOf<DeleteManifestOutcome>,
  ): Promise<boolean>;

  /**
   * Deletes the tag only (the manifest stays, reachable by digest, and is queued for garbage collection review);
   * returns false when it did not exist.
   */
  deleteTag(repository: string, tag: string, events?: EventsOf<DeleteTagOutcome>): Promise<boolean>;

  /** Tag names of the repository in byte-wise order, after `after`, at most `limit`. */
  listTags(repository: string, options: PageOptions): Promise<Page<string>>;

  /**
   * Manifests in `repository` whose subject is `subject`, optionally only those whose artifactType equals
   * `artifactType`, ordered by digest.
   */
  listReferrers(
    repository: string,
    subject: Digest,
    options?: { artifactType?: string },
  ): Promise<ReferrerRecord[]>;

  // --- upload sessions -----------------------------------------------------------------------------

  /**
   * Records a new upload session with size 0, owned by `owner` (absent or null: no owner). Fails when a session
   * with this id exists.
   */
  createUploadSession(session: {
    id: string;
    repository: string;
    handle: UploadHandle;
    owner?: string | null;
  }): Promise<void>;

  /** The session, or null when unknown (never existed, finished, cancelled or purged). */
  getUploadSession(id: string): Promise<UploadSessionRecord | null>;

  /**
   * Compare-and-set: moves the session from `expectedSize` to `size` with the new driver handle, and touches
   * `updatedAt`. Returns false (and changes nothing) when the session is gone or its size is not `expectedSize`,
   * i.e. another request advanced it first.
   */
  advanceUploadSession(
    id: string,
    expectedSize: number,
    size: number,
    handle: UploadHandle,
  ): Promise<boolean>;

  /** Deletes the session; returns false when it did not exist. Whoever gets true owns the cleanup/commit. */
  deleteUploadSession(id: string): Promise<boolean>;

  /** Sessions not updated since `before`, oldest first, at most `limit` (for purging). */
  listStaleUploadSessions(before: Date, limit: number): Promise<UploadSessionRecord[]>;

  /**
   * Of `handleIds` (ids of storage driver upload handles), those that the handle of some session has as its `id`,
   * in no particular order and each once: what the purge asks before it removes upload bytes as orphans.
   */
  findUploadSessionHandles(handleIds: readonly string[]): Promise<string[]>;

  // --- the event outbox ---------------------------------------------------------------------------
  // Writes given `events` store them in their own transaction, with the audit records of those that are audited
  // (`events/audit.ts`). The relay (`events/relay.ts`) reads them back in commit order and marks them dispatched.

  /** Stores events outside any write (pull events: best effort), each with a new id and the current time. */
  appendEvents(events: readonly NewDomainEvent[]): Promise<void>;

  /** Undispatched events in commit order, at most `limit`. */
  pendingEvents(limit: number): Promise<StoredEvent[]>;

  /** Marks the events dispatched (idempotent). */
  markEventsDispatched(seqs: readonly number[]): Promise<void>;

  /** Deletes dispatched events dispatched before `before`, at most `limit`; returns how many. */
  pruneEvents(before: Date, limit: number): Promise<number>;

  /** Calls `listener` after each commit that stored events (in this process), e.g. to wake the relay. */
  onEventsCommitted(listener: () => void): void;

  // --- leases --------------------------------------------------------------------------------------

  /**
   * Claims the lease `name` for `holder` for `ttlMs`, when it is free, expired, or already held by `holder`
   * (then it is extended). Returns whether `holder` now holds it. Atomic across processes, so of several
   * instances asking at once exactly one gets it.
   */
  tryAcquireLease(name: string, holder: string, ttlMs: number): Promise<boolean>;

  /** Gives the lease up if `holder` holds it. */
  releaseLease(name: string, holder: string): Promise<void>;
}

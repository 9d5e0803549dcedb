/**
 * The GcStore port: what garbage collection reads and writes in the metadata database. The review queues are
 * filled by the MetadataStore's writes (see `review-queue.ts`); this port drains them. The concurrency argument is
 * in docs/gc.md; in short, every decision is taken in a transaction that holds the row locks the writers also
 * take, after re-checking that the row is still due.
 *
 * Contract shared by the implementations (checked by `testing/gc-store-suite.ts`): every method is atomic.
 */
import type { NewDomainEvent } from '../events/event.ts';
import type { Digest } from '../oci/digest.ts';
import type { GcRunState } from './schema.ts';

/** What to do with a referrer whose subject is gone (`gc.orphanedReferrers`). */
export type OrphanedReferrers = 'delete' | 'keep';

/** A manifest garbage collection deleted (or would delete, in a dry run). */
export interface CollectedManifest {
  readonly repository: string;
  readonly digest: Digest;
  readonly mediaType: string;
  readonly size: number;
}

/** A blob garbage collection marked as deleting. */
export interface CollectedBlob {
  readonly digest: Digest;
  readonly size: number;
}

/** What a manifest review found, for the dry run's simulation (see `Collector`). */
export interface ManifestFacts extends CollectedManifest {
  readonly id: number;
  readonly repositoryId: number;
  /** Due for review now. */
  readonly due: boolean;
  readonly tagged: boolean;
  /** Ids of the indexes in its repository that list it. */
  readonly parents: readonly number[];
  /** Its subject's id in its repository; null when it has no subject; `absent` when the subject is not there. */
  readonly subject: number | null | 'absent';
  /** Ids of the manifests in its repository it lists (an index's children) and of its referrers. */
  readonly dependents: readonly number[];
  /** The blobs it references. */
  readonly blobs: readonly Digest[];
}

/** What a blob review found, for the dry run. */
export interface BlobFacts extends CollectedBlob {
  readonly due: boolean;
  /** Ids of the manifests (any repository) referencing it. */
  readonly referencedBy: readonly number[];
  /** A writer holds it (`holdBlob`). */
  readonly held: boolean;
}

/** The counters of a run, as stored and reported. */
export interface GcProgress {
  /** Due items found when the run started (what the progress bar counts against; cascades add to it). */
  readonly total: number;
  readonly manifestsReviewed: number;
  readonly manifestsDeleted: number;
  readonly blobsReviewed: number;
  readonly blobsDeleted: number;
  readonly bytesFreed: number;
  /** Blob bytes in storage no metadata knew (left by a crash), removed. */
  readonly orphansDeleted: number;
  /** Rows purged by the housekeeping sweeps (refresh tokens, audit events, dead jobs, webhook deliveries). */
  readonly purged: Readonly<Record<string, number>>;
}

export const EMPTY_PROGRESS: GcProgress = {
  total: 0,
  manifestsReviewed: 0,
  manifestsDeleted: 0,
  blobsReviewed: 0,
  blobsDeleted: 0,
  bytesFreed: 0,
  orphansDeleted: 0,
  purged: {},
};

/** One garbage collection run. */
export interface GcRunRecord {
  readonly id: number;
  readonly state: GcRunState;
  readonly dryRun: boolean;
  /** `schedule`, `api` or `cli`. */
  readonly trigger: string;
  readonly requestedBy: string | null;
  readonly phase: string;
  readonly progress: GcProgress;
  readonly error: string | null;
  readonly createdAt: Date;
  readonly startedAt: Date | null;
  readonly finishedAt: Date | null;
}

export interface GcStore {
  /** How many manifests and blobs are due for review at `now`. */
  countDue(now: number): Promise<{ manifests: number; blobs: number }>;

  /** Ids of the manifests due for review at `now`, the longest due first, at most `limit`. */
  dueManifests(now: number, limit: number): Promise<number[]>;

  /**
   * Reviews the manifests `ids` in one transaction, each under a row lock and only if still due: one without a
   * tag, without a parent index in its repository, and without a present subject (or, with `keep`, without any
   * subject) is deleted with its references, and what it held on to (blobs, children, referrers) is queued for
   * review now; any other is taken off the queue. `events` gives the events each deletion stores in the same
   * transaction. Returns the deleted manifests.
   */
  collectManifests(
    ids: readonly number[],
    now: number,
    orphanedReferrers: OrphanedReferrers,
    events: (m: CollectedManifest) => readonly NewDomainEvent[],
  ): Promise<CollectedManifest[]>;

  /** The facts of the manifests `ids` (those that exist), without changing anything (dry runs). */
  manifestFacts(ids: readonly number[], now: number): Promise<ManifestFacts[]>;

  /** Digests of the blobs due for review at `now` (not being deleted), the longest due first, at most `limit`. */
  dueBlobs(now: number, limit: number): Promise<Digest[]>;

  /**
   * Reviews the blobs `digests` in one transaction, each under a row lock and only if still due and not being
   * deleted: one no manifest references and no writer holds is marked as deleting and unlinked from every
   * repository (from then on absent to readers, mounts and manifest pushes); a held one is queued again for when
   * its hold expires; any other is taken off the queue. Returns the blobs marked as deleting: the caller removes
   * their bytes, then calls `forgetBlobs`.
   */
  markBlobsDeleting(digests: readonly Digest[], now: number): Promise<CollectedBlob[]>;

  /** The facts of the blobs `digests` (those that exist), without changing anything (dry runs). */
  blobFacts(digests: readonly Digest[], now: number): Promise<BlobFacts[]>;

  /** Deletes the rows of blobs marked as deleting (their bytes are gone). Rows not so marked are left alone. */
  forgetBlobs(digests: readonly Digest[]): Promise<void>;

  /** Blobs marked as deleting (by this run, or left by an interrupted one), at most `limit`. */
  deletingBlobs(limit: number): Promise<CollectedBlob[]>;

  /** Of `digests`, those the metadata has a blob row for. */
  knownBlobs(digests: readonly Digest[]): Promise<Set<Digest>>;

  /**
   * Claims a digest whose bytes are in storage but which has no blob row (an orphan left by a crash): inserts its
   * row marked as deleting, so writers wait until `forgetBlobs`. Returns false when a row exists (nothing claimed).
   */
  claimOrphan(digest: Digest, now: number): Promise<boolean>;

  /** Deletes expired blob holds; returns how many. */
  purgeExpiredHolds(now: number): Promise<number>;

  /** Stores events outside any other write (the run's summary). */
  appendEvents(events: readonly NewDomainEvent[]): Promise<void>;

  // --- runs --------------------------------------------------------------------------------------------

  /** Records a queued run; returns its id. */
  createRun(input: {
    dryRun: boolean;
    trigger: string;
    requestedBy: string | null;
    now: number;
  }): Promise<number>;

  /** Marks the run running (at `now`). */
  startRun(id: number, now: number): Promise<void>;

  /** Stores the run's phase and counters. */
  updateRun(id: number, phase: string, progress: GcProgress): Promise<void>;

  /** Marks the run finished. */
  finishRun(
    id: number,
    state: 'succeeded' | 'failed',
    progress: GcProgress,
    error: string | null,
    now: number,
  ): Promise<void>;

  /** The run, or null. */
  getRun(id: number): Promise<GcRunRecord | null>;

  /** Runs, newest first, with ids below `before` when given, at most `limit`. */
  listRuns(limit: number, before?: number): Promise<GcRunRecord[]>;

  /**
   * Marks runs other than `exceptId` still running as failed (`error`): called by a run holding the `gc` lease, so
   * any other running one was interrupted (its process died).
   */
  failAbandonedRuns(exceptId: number, error: string, now: number): Promise<number>;

  /** Deletes finished runs finished before `before`; returns how many. */
  pruneRuns(before: number): Promise<number>;

  // --- housekeeping ------------------------------------------------------------------------------------

  /** Deletes refresh tokens that expired (or were revoked) before `before`, at most `limit`; returns how many. */
  purgeRefreshTokens(before: number, limit: number): Promise<number>;

  /** Deletes audit events older than `before`, at most `limit`; returns how many. */
  purgeAuditEvents(before: number, limit: number): Promise<number>;

  /** Deletes dead jobs finished before `before`, at most `limit`; returns how many. */
  purgeDeadJobs(before: number, limit: number): Promise<number>;

  /** Deletes webhook delivery records older than `before`, at most `limit`; returns how many. */
  purgeWebhookDeliveries(before: number, limit: number): Promise<number>;
}
